"""Kit of the webhooks tests: a migrated fresh database, the app, tokens, fed events, and a real receiver on
127.0.0.1 that verifies with the Standard Webhooks reference implementation and dedupes on webhook-id."""
from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from spvhub_common.events import CloudEvent, Event, encode, to_envelope
from spvhub_common.events.efactura import InvoiceDownloaded
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.migrate import upgrade_async
from spvhub_common.outbox import KafkaPublisher
from spvhub_common.runtime import ServiceRuntime
from spvhub_devtools.testing import make_settings
from spvhub_devtools.testtokens import TokenMinter
from spvhub_webhooks import handlers
from spvhub_webhooks.bootstrap import build
from spvhub_webhooks.settings import Settings
from standardwebhooks import Webhook

MIGRATIONS = Path(__file__).resolve().parents[1] / "spvhub_webhooks" / "migrations"
FIRM, CLIENT, OTHER = "11111110", "22222229", "33333338"  # valid CIFs (control digit)
INVOICE = "ro.spvhub.efactura.invoice-downloaded.v1"
STRONG = {"service_token": "st-" + "Q7w9Zk2Lm4Np6Rt8" * 2, "s3_secret_key": "s3-" + "Vb5Xc7Hj9Kd2Fg4S" * 2,
          "token_key_spec": "k2:" + base64.b64encode(b"k" * 32).decode(), "token_key_active": "k2",
          "pii_secret": "pii-" + "Gh4Jk6Lp8Qr2St5V" * 2}


def settings_for(database: str, **kw: Any) -> Settings:
    base = make_settings(service="webhooks", database=database).model_dump()
    base.pop("service_name", None)
    base.update(send_interval=0.1, retry_base_seconds=0.2, retry_max_seconds=1.0, lease_seconds=5.0,
                request_timeout=3.0, connect_timeout=1.0)
    base.update(kw)
    return Settings(**base)


@dataclass
class Env:
    app: Any
    runtime: ServiceRuntime
    client: httpx.AsyncClient
    minter: TokenMinter
    settings: Settings

    def h(self, user: str) -> dict[str, str]:
        return self.minter.headers(user, email=f"{user}@example.ro", name=user)

    @property
    def deps(self) -> handlers.Deps:
        return self.app.state.deps  # type: ignore[no-any-return]

    async def feed(self, event: Event) -> CloudEvent:
        """Apply a consumed event as the consumers would (inside a unit of work, inbox-claimed)."""
        from spvhub_common.access import apply_access_changed
        from spvhub_common.inbox import claim
        from spvhub_webhooks.adapters.orm import access_grants
        env = to_envelope(event, "test")
        async with self.runtime.uow() as uow:
            assert await claim(uow.session, "webhooks.test", env.id)
            if isinstance(event, AccessChanged):
                await apply_access_changed(uow.session, access_grants, event)
            else:
                await handlers.on_event(event, env, uow, self.deps)
            await uow.commit()
        return env

    async def fetch(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text
        async with self.runtime.sessions() as s:
            return list((await s.execute(text(sql), params)).all())


async def make_env(database: str, *, running: bool = False, **kw: Any) -> Env:
    s = settings_for(database, **kw)
    await upgrade_async(s, MIGRATIONS)
    app, runtime = build(s, start_consumers=running, start_relay=running, start_jobs=running)
    minter = TokenMinter()
    app.state.jwks = minter.verifier()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhooks")
    return Env(app, runtime, client, minter, s)


@pytest.fixture
async def env(fresh_database: str) -> Any:
    e = await make_env(fresh_database)
    yield e
    await e.client.aclose()
    await e.deps.sender.close()
    await e.runtime.engine.dispose()


def local_name() -> str:
    """A host name other than `localhost` that resolves to this machine (a name, so the resolution is checked)."""
    name = socket.gethostname()
    assert {i[4][0] for i in socket.getaddrinfo(name, 443)} <= {"127.0.0.1", "127.0.1.1", "::1"}, name
    return name


def invoice(cif: str, n: int = 1) -> InvoiceDownloaded:
    return InvoiceDownloaded(cif=cif, message_id=f"m{cif}{n}", direction="received", document_type="invoice",
                             number=f"F-{n}")


async def setup_tenants(env: Env) -> None:
    """FIRM's verified owner `firm-owner` reaches CLIENT through a collaboration; OTHER is another tenant with its
    own verified owner; `firm-member` is a plain member of FIRM."""
    await env.feed(AccessChanged(cif=FIRM, user_id="firm-owner", role="owner", granted=True, can_file=True))
    await env.feed(AccessChanged(cif=CLIENT, user_id="firm-owner", role="accountant", granted=True,
                                 via_firm_cif=FIRM))
    await env.feed(AccessChanged(cif=FIRM, user_id="firm-member", role="member", granted=True))
    await env.feed(AccessChanged(cif=OTHER, user_id="other-owner", role="owner", granted=True, can_file=True))


@dataclass
class Receiver:
    """A real HTTP receiver: verifies every request with `Webhook.verify`, records what verified, dedupes on
    webhook-id (as an integrator should), and answers `status` (or is down when stopped)."""

    secret: str = ""
    status: int = 200
    got: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    seen_ids: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        self.raw.append((body, headers))
        if self.status >= 300:
            self.refused += 1
            return web.Response(status=self.status, text="not now")
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except Exception:
            return web.Response(status=400, text="bad signature")
        wid = headers["webhook-id"]
        self.seen_ids[wid] = self.seen_ids.get(wid, 0) + 1
        if self.seen_ids[wid] == 1:
            self.got.append(payload)
        return web.Response(status=204)

    async def start(self, port: int = 0) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def publish_all(kafka: str, prefix: str, events: list[Any]) -> list[str]:
    producer = KafkaPublisher(kafka, "test-webhooks-producer")
    await producer.start()
    try:
        ids = []
        for ev in events:
            env = to_envelope(ev, "test")
            await producer.send(prefix + ev.topic, ev.partition_key().encode(), encode(env), [])
            ids.append(env.id)
        return ids
    finally:
        await producer.stop()


async def create_topics(bootstrap: str, prefix: str) -> None:
    """Every topic the service consumes, before its consumers start (a consumer learns of a topic created later
    only at its next metadata refresh)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from spvhub_webhooks.domain import SUBSCRIBABLE
    names = sorted({prefix + s.cls.topic for s in SUBSCRIBABLE} | {prefix + AccessChanged.topic})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
    finally:
        await admin.close()


async def eventually(fn: Callable[[], Awaitable[Any]], limit: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        got = await fn()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.2)

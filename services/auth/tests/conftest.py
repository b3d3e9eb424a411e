"""Harness for the auth service tests: real PostgreSQL (fresh database, migrations applied) and Kafka (prefixed
topics, the real outbox relay), the ANAF emulator in-process as the ANAF base URL, its clock as the platform
clock, and a browser that follows the emulator's certificate page."""
from __future__ import annotations

import asyncio
import copy
import os
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from anaf_emulator import create_app as create_emulator
from anaf_emulator.hosts import PREFIXES, FamilyHosts, family_settings
from anaf_emulator.scenario import _load_raw
from argon2 import PasswordHasher
from spvhub_auth.adapters.orm import access_grants, outbox
from spvhub_auth.bootstrap import build
from spvhub_auth.settings import Settings
from spvhub_common.access import apply_access_changed
from spvhub_common.events import decode
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.migrate import upgrade_async
from spvhub_devtools.testing import make_settings
from sqlalchemy import select

MIGRATIONS = Path(__file__).resolve().parents[1] / "spvhub_auth" / "migrations"
PUBLIC = "https://spvhub.test"
CALLBACK = f"{PUBLIC}/api/auth/anaf/callback"
OTHER_CALLBACK = "https://client.example/cb"
SERVICE_HEADERS = {"X-Service-Token": "dev-service-token", "X-Service-Name": "efactura"}


def scenario() -> dict[str, Any]:
    raw = copy.deepcopy(_load_raw("minimal.json"))
    raw["applications"][0]["redirect_uris"].append(CALLBACK)
    return raw


class EmulatorClock:
    """The platform clock in tests: exactly the emulator's clock (no polling delay)."""

    def __init__(self, emu_state: Any) -> None:
        self.emu = emu_state

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.emu.clock.timestamp(), UTC)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.certificates: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        if tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        if tag == "input" and a.get("type") == "radio" and a.get("name") == "certificate":
            self.certificates.append(a.get("value", ""))


class Harness:
    def __init__(self, settings: Settings, emu_app: Any, *, families: bool = False, **build_kw: Any) -> None:
        self.settings = settings
        self.families = families
        self.oauth_prefix = PREFIXES["oauth"] if families else ""  # where the emulator serves OAuth
        self.emu_app = emu_app
        self.emu_state = emu_app.state.emulator
        self.emu = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu_app), base_url="http://emulator")
        self.clock = EmulatorClock(self.emu_state)
        self.app, self.runtime = self.build_replica(**build_kw)
        self.deps = self.app.state.deps
        self.error_bodies: list[str] = []

        async def keep_errors(resp: httpx.Response) -> None:
            if resp.status_code >= 400:
                await resp.aread()
                self.error_bodies.append(resp.text)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=PUBLIC,
                                        event_hooks={"response": [keep_errors]})
        self.secrets: set[str] = set()  # every secret value seen in a test, for the leak scan
        self._users = 0

    def build_replica(self, **build_kw: Any) -> Any:
        """One more process of the auth service on the same database (for races between replicas)."""
        kw: dict[str, Any] = dict(start_consumers=False, start_jobs=False)
        kw.update(build_kw)
        return build(self.settings, clock=self.clock, anaf_transport=httpx.ASGITransport(app=self.emu_app),
                     budget=False, hasher=PasswordHasher(time_cost=1, memory_cost=8192), **kw)

    # --- accounts -------------------------------------------------------------------------------
    async def signup(self, name: str = "Maria Ionescu", email: str | None = None, password: str = "correct horse 1",
                     locale: str = "ro") -> dict[str, Any]:
        self._users += 1
        email = email or f"user{self._users}@example.ro"
        r = await self.client.post("/api/auth/signup", json={"email": email, "password": password, "name": name,
                                                             "locale": locale})
        assert r.status_code == 201, r.text
        body = r.json()
        self.secrets.update({body["access_token"], body["refresh_token"], password})
        body["headers"] = {"Authorization": f"Bearer {body['access_token']}"}
        return body

    async def grant(self, user_id: str, cif: str, role: str = "owner", *, verified: bool = True,
                    via_firm_cif: str | None = None) -> None:
        """What portfolio's `portfolio.access-changed` does to the local read model."""
        async with self.runtime.uow() as uow:
            await apply_access_changed(uow.session, access_grants, AccessChanged(
                cif=cif, user_id=user_id, role=role, granted=True, verified=verified, via_firm_cif=via_firm_cif,
                can_file=verified and role in ("owner", "admin") and via_firm_cif is None))
            await uow.commit()

    # --- the browser at ANAF --------------------------------------------------------------------
    async def browse_authorize(self, authorize_url: str, certificate: str | None, pin: str | None = None,
                               action: str = "login") -> httpx.Response:
        """GET the emulator's certificate page, fill the form as a person would, POST it; returns ANAF's answer
        (a 302 to the callback)."""
        parts = urlsplit(authorize_url)
        page = await self.emu.get(f"{parts.path}?{parts.query}")
        assert page.status_code == 200, page.text
        form = _FormParser()
        form.feed(page.text)
        data = dict(form.hidden)
        if certificate is not None:
            assert certificate in form.certificates
            data["certificate"] = certificate
        data["pin"] = pin if pin is not None else self.emu_state.certs[certificate].pin if certificate else ""
        data["action"] = action
        return await self.emu.post(form.action, data=data)

    async def follow_to_callback(self, anaf_redirect: httpx.Response) -> httpx.Response:
        assert anaf_redirect.status_code == 302, anaf_redirect.text
        loc = anaf_redirect.headers["location"]
        assert loc.startswith(CALLBACK), loc
        m = re.search(r"[?&]code=([0-9a-f]+)", loc)
        if m:
            self.secrets.add(m.group(1))
        parts = urlsplit(loc)
        return await self.client.get(f"{parts.path}?{parts.query}")

    async def start(self, headers: dict[str, str], cif: str) -> dict[str, Any]:
        r = await self.client.post("/api/auth/anaf/authorizations", json={"company_cif": cif}, headers=headers)
        assert r.status_code == 201, r.text
        return r.json()

    async def authorize(self, headers: dict[str, str], cif: str, certificate: str = "acc") -> httpx.Response:
        started = await self.start(headers, cif)
        return await self.follow_to_callback(await self.browse_authorize(started["authorize_url"], certificate))

    async def authorized(self, cif: str, certificate: str = "acc", user: dict[str, Any] | None = None,
                         name: str = "Maria Ionescu") -> tuple[dict[str, Any], dict[str, Any]]:
        """A signed-up user with access to `cif` and an active connection for it (full browser flow)."""
        user = user or await self.signup(name=name)
        await self.grant(user["user"]["id"], cif)
        r = await self.authorize(user["headers"], cif, certificate=certificate)
        assert r.status_code == 200, r.text
        return r.json(), user

    @staticmethod
    async def wait_for(pred: Any, seconds: float = 10.0) -> Any:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            v = await pred()
            if v:
                return v
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.05)

    # --- clock, tokens, events ------------------------------------------------------------------
    def at_day(self, day: float, start: datetime) -> None:
        self.emu_state.clock.set(start + timedelta(days=day))

    async def access_token(self, connection_id: str) -> httpx.Response:
        r = await self.client.get(f"/internal/connections/{connection_id}/access-token", headers=SERVICE_HEADERS)
        if r.status_code == 200:
            self.secrets.add(r.json()["access_token"])
        return r

    async def stored_refresh_token(self, connection_id: str) -> str:
        from spvhub_auth.adapters.orm import anaf_connections
        async with self.runtime.uow() as uow:
            enc = (await uow.session.execute(select(anaf_connections.c.refresh_token_enc).where(
                anaf_connections.c.id == connection_id))).scalar()
        token = self.deps.box.decrypt(bytes(enc), aad=f"anaf:{connection_id}:refresh")
        self.secrets.add(token)
        return token

    async def anaf_list(self, access_token: str, cif: str) -> httpx.Response:
        api = PREFIXES["api"] if self.families else ""
        return await self.emu.get(f"{api}/test/FCTEL/rest/listaMesajeFactura", params={"zile": 1, "cif": cif},
                                  headers={"Authorization": f"Bearer {access_token}"})

    async def events(self, topic: str | None = None) -> list[tuple[str, Any]]:
        async with self.runtime.uow() as uow:
            rows = (await uow.session.execute(select(outbox).order_by(outbox.c.seq))).all()
        out = []
        for r in rows:
            if topic is None or r.topic == topic:
                _env, ev = decode(bytes(r.payload))
                out.append((r.topic, ev))
        return out

    async def outbox_payloads(self) -> list[bytes]:
        async with self.runtime.uow() as uow:
            return [bytes(r.payload) for r in (await uow.session.execute(select(outbox))).all()]

    async def counters(self) -> dict[str, Any]:
        return (await self.emu.get("/__admin/counters")).json()

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.emu.aclose()


def families_mode(param: dict[str, Any]) -> bool:
    """Each ANAF host family on its own emulator prefix (anaf_emulator.hosts): asked by a test, or for the whole
    run with SPVHUB_TEST_ANAF_FAMILIES=1."""
    return bool(param.get("families")) or os.environ.get("SPVHUB_TEST_ANAF_FAMILIES", "") == "1"


def auth_settings(database: str, topic_prefix: str, *, families: bool = False, **overrides: Any) -> Settings:
    base = make_settings("auth", database=database, kafka_topic_prefix=topic_prefix)
    values = {k: getattr(base, k) for k in type(base).model_fields}
    if families:
        values.update(family_settings("http://emulator"))
    else:
        values.update(anaf_emulator_url="http://emulator")
    # auth's own callback (no spvhub web in front of it here)
    values.update(service_name="auth", public_base_url=PUBLIC, anaf_redirect_uri=CALLBACK,
                  anaf_client_id=scenario()["applications"][0]["client_id"],
                  anaf_client_secret=scenario()["applications"][0]["client_secret"], access_wait_seconds=0.3)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def harness(request: pytest.FixtureRequest, fresh_database: str, kafka_up: str,  # type: ignore[no-untyped-def]
                  topic_prefix: str):
    """`@pytest.mark.parametrize("harness", [{"settings": {...}, "build": {...}}], indirect=True)` tunes it."""
    param = getattr(request, "param", {}) or {}
    families = families_mode(param)
    settings = auth_settings(fresh_database, topic_prefix, families=families, **param.get("settings", {}))
    await upgrade_async(settings, MIGRATIONS)
    emu_app = create_emulator(scenario())
    h = Harness(settings, FamilyHosts(emu_app) if families else emu_app, families=families,
                **param.get("build", {}))
    async with h.app.router.lifespan_context(h.app):
        yield h
    await h.aclose()

"""Test kit of the portfolio service: the in-process ANAF emulator, a fake of auth's internal token endpoint
(tokens issued by the emulator's admin API), the service built against the real PostgreSQL (and Kafka when a
test starts the runtime), and helpers to read the events it wrote to its outbox."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from anaf_emulator import create_app as create_emulator
from anaf_emulator.hosts import FamilyHosts, family_settings
from fastapi import FastAPI
from spvhub_common.anaf.budget import PostgresBudget, ensure_schema
from spvhub_common.clock import SystemClock
from spvhub_common.events import decode
from spvhub_common.events.auth import ConnectionAuthorized
from spvhub_common.migrate import upgrade_async
from spvhub_common.runtime import ServiceRuntime
from spvhub_devtools.testing import make_settings
from spvhub_devtools.testtokens import TokenMinter
from spvhub_portfolio import handlers as h
from spvhub_portfolio.adapters.orm import outbox
from spvhub_portfolio.bootstrap import build
from spvhub_portfolio.settings import Settings
from sqlalchemy import select

MIGRATIONS = Path(__file__).resolve().parents[1] / "spvhub_portfolio" / "migrations"
CLIENT_ID = "6f97e46422c3ed35112f7e85aa6e15462d3b4f475669b753"
CLIENT_SECRET = "4d437da71feca3e0e4c761a890d25019902ba4e3114db833d1b63ef4bf52d8e5"
KEY = "753217532"


def make_cif(body: int | str) -> str:
    text = str(body)
    key = KEY[-len(text):]
    d = sum(int(a) * int(b) for a, b in zip(text, key, strict=True)) * 10 % 11
    return f"{text}{0 if d == 10 else d}"


FIRM_A = make_cif(1400001)  # accounting firm A (its certificate: "firm_a")
FIRM_B = make_cif(1500001)  # accounting firm B (certificate "firm_b")
CLIENTS_A = [make_cif(2100000 + i * 7) for i in range(39)]  # A's certificate has rights on FIRM_A + these 39
CLIENTS_B = [make_cif(3100000 + i * 7) for i in range(3)]
OTHERS = [make_cif(4100000 + i * 7) for i in range(6)]  # registered in ANAF, no rights for anyone
COUNTIES = ["CJ", "B", "IS", "TM", "CT", "BV"]


def company(cui: str, i: int) -> dict[str, Any]:
    return {"cui": cui, "name": f"FIRMA {i:02d} SRL", "county": COUNTIES[i % len(COUNTIES)], "city": "Cluj-Napoca",
            "street": f"Str. Exemplu {i}", "number": str(i + 1), "postal_code": "400001",
            "nr_reg_com": f"J12/{1000 + i}/2015", "vat": i % 2 == 0, "efactura_registered": i % 3 == 0}


def scenario() -> dict[str, Any]:
    cuis = [FIRM_A, FIRM_B, *CLIENTS_A, *CLIENTS_B, *OTHERS]
    return {
        "seed": 11, "clock": {"start": "2026-03-10T10:00:00+02:00"},
        "applications": [{"name": "spvhub", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                          "redirect_uris": ["https://localhost:9002/callback"],
                          "services": ["E-Factura", "E-Transport"]}],
        "certificates": [
            {"id": "firm_a", "name": "POPA ION", "cnp": "1800101123456",
             "serial": "34:00:00:00:00:00:00:00:00:00:00:00:00:00:00:0a", "rights": [FIRM_A, *CLIENTS_A]},
            {"id": "firm_b", "name": "RADU ANA", "cnp": "2800101123457",
             "serial": "34:00:00:00:00:00:00:00:00:00:00:00:00:00:00:0b", "rights": [FIRM_B, *CLIENTS_B]},
        ],
        "companies": [company(c, i) for i, c in enumerate(cuis)],
    }


class EmulatorClock:
    """The platform clock following the in-process emulator's clock (as FollowingClock does over HTTP)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def now(self) -> datetime:
        return self.state.clock.now().astimezone(UTC)


def fake_auth(emulator: httpx.AsyncClient, connections: dict[str, dict[str, str]]) -> FastAPI:
    """auth's internal endpoints: a token issued by the emulator for the connection's certificate."""
    app = FastAPI()

    async def token(connection_id: str) -> Any:
        from fastapi.responses import JSONResponse
        c = connections.get(connection_id)
        if c is None:
            return JSONResponse({"error": {"code": "no_connection", "message": "unknown"}}, status_code=404)
        if c.get("status") == "reauthorization_required":
            return JSONResponse({"error": {"code": "reauthorization_required", "message": "x"}}, status_code=409)
        r = await emulator.post("/__admin/tokens", json={"client_id": CLIENT_ID, "certificate": c["certificate"]})
        r.raise_for_status()
        return {"connection_id": connection_id, "access_token": r.json()["access_token"],
                "expires_at": "2026-06-01T00:00:00Z", "certificate_serial": "x", "company_cif": c["cif"],
                "status": "active"}

    app.add_api_route("/internal/connections/{connection_id}/access-token", token, methods=["GET"])
    app.add_api_route("/internal/connections/{connection_id}/refresh", token, methods=["POST"])
    return app


@dataclass
class Env:
    settings: Settings
    app: FastAPI
    runtime: ServiceRuntime
    emulator_app: FastAPI
    emulator: httpx.AsyncClient
    api: httpx.AsyncClient
    minter: TokenMinter
    connections: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def deps(self) -> h.Deps:
        return self.app.state.deps  # type: ignore[no-any-return]

    def headers(self, user: str) -> dict[str, str]:
        return self.minter.headers(user)

    async def events(self, topic: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        async with self.runtime.uow() as uow:
            rows = (await uow.session.execute(select(outbox.c.topic, outbox.c.payload).order_by(outbox.c.seq))).all()
        out = []
        for t, payload in rows:
            if topic is None or t == topic:
                env, _ = decode(payload)
                out.append((t, env.data))
        return out

    async def connect(self, connection_id: str, certificate: str, cif: str, user: str) -> None:
        """What auth.connection-authorized does, delivered straight to the handler."""
        self.connections[connection_id] = {"certificate": certificate, "cif": cif}
        now = self.deps.clock.now()
        ev = ConnectionAuthorized(connection_id=connection_id, company_cif=cif, user_id=user, holder_name="POPA ION",
                                  certificate_serial="34:00", services=["efactura", "etransport"], authorized_at=now,
                                  access_expires_at=now + timedelta(days=90),
                                  refresh_expires_at=now + timedelta(days=365), must_act_by=now + timedelta(days=700))
        await self.handle(ev)

    async def handle(self, ev: Any) -> None:
        from spvhub_common.events import to_envelope
        handler = h.EVENT_HANDLERS[type(ev)]
        async with self.runtime.uow() as uow:
            await handler(ev, to_envelope(ev, "test"), uow, self.deps)
            await uow.commit()

    async def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = await self.emulator.post(path, json=body or {})
        assert r.status_code == 200, r.text
        return r.json()

    async def register(self, user: str, cif: str, *, verify: bool = True) -> dict[str, Any]:
        """Register the company through the API; `verify` then marks the membership verified as a proof of control
        would (an ANAF authorization with rights, done by the tests that are about it)."""
        r = await self.api.post("/api/portfolio/companies", json={"cif": cif}, headers=self.headers(user))
        assert r.status_code in (200, 201), r.text
        if verify:
            await self.verify(user, cif)
        return r.json()  # type: ignore[no-any-return]

    async def verify(self, user: str, cif: str, via: str = "authorization") -> None:
        async with self.runtime.uow() as uow:
            await h.verify_member(uow, self.deps, cif, user, via)
            await uow.commit()

    async def user(self, user_id: str, email: str | None = None) -> str:
        """A platform account as auth announces it (so owners can add the person by e-mail)."""
        from spvhub_common.events.auth import UserRegistered
        email = email or f"{user_id}@example.test"
        await self.handle(UserRegistered(user_id=user_id, email=email, name=user_id.upper()))
        return email

    async def add_member(self, actor: str, cif: str, user_id: str, role: str = "member") -> httpx.Response:
        email = await self.user(user_id)
        return await self.api.post(f"/api/portfolio/companies/{cif}/members", json={"email": email, "role": role},
                                   headers=self.headers(actor))


async def make_env(database: str, topic_prefix: str, *, live: bool = False, families: bool = False,
                   **switches: Any) -> Env:
    """`live=True` builds the runtime with Kafka consumers, the outbox relay and the jobs (start it yourself).
    `families=True` (or SPVHUB_TEST_ANAF_FAMILIES=1 for a whole run) serves each ANAF host family only under its
    own emulator prefix and configures portfolio with four bases (anaf_emulator.hosts)."""
    families = families or os.environ.get("SPVHUB_TEST_ANAF_FAMILIES", "") == "1"
    base = make_settings("portfolio", database=database, kafka_topic_prefix=topic_prefix)
    anaf = family_settings("http://emulator") if families else {"anaf_emulator_url": "http://emulator"}
    settings = Settings(**{**base.model_dump(), "service_name": "portfolio", "pg_database": database,
                           "jobs_tick_seconds": 0.2, **anaf})
    await upgrade_async(settings, MIGRATIONS)
    emulator_app: Any = create_emulator(scenario(), **switches)
    if families:
        emulator_app = FamilyHosts(emulator_app)
    emulator = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url="http://emulator")
    connections: dict[str, dict[str, str]] = {}
    auth_app = fake_auth(emulator, connections)
    app, runtime = build(settings, anaf_transport=httpx.ASGITransport(app=emulator_app),
                         auth_transport=httpx.ASGITransport(app=auth_app),
                         clock=EmulatorClock(emulator_app.state.emulator),
                         start_consumers=live, start_relay=live, start_jobs=live)
    deps: h.Deps = app.state.deps
    budget = PostgresBudget(runtime.engine, clock=SystemClock())
    await ensure_schema(runtime.engine)
    deps.efactura.budget = budget  # type: ignore[attr-defined]
    minter = TokenMinter()
    app.state.jwks = minter.verifier()
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portfolio")
    return Env(settings, app, runtime, emulator_app, emulator, api, minter, connections)


@asynccontextmanager
async def running_env(database: str, topic_prefix: str, **kw: Any) -> AsyncIterator[Env]:
    """An `Env` for one test (`make_env`'s options), its HTTP clients and database engine closed afterwards."""
    e = await make_env(database, topic_prefix, **kw)
    try:
        yield e
    finally:
        await e.api.aclose()
        await e.emulator.aclose()
        await e.runtime.engine.dispose()
        await asyncio.sleep(0)


@pytest.fixture
async def env(fresh_database: str, topic_prefix: str, kafka_up: str) -> AsyncIterator[Env]:
    async with running_env(fresh_database, topic_prefix) as e:
        yield e

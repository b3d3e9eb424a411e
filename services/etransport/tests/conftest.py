"""Fixtures and harness of the etransport tests: the ANAF emulator in-process, a fake of auth's internal token
endpoint backed by the emulator's `POST /__admin/tokens`, the service built on the real PostgreSQL and Kafka,
and helpers to declare e-Transport changes through the emulator's upload endpoint."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from anaf_emulator import create_app as create_emulator
from anaf_emulator.cif import make_cif
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from spvhub_common.access import apply_access_changed
from spvhub_common.anaf import PostgresBudget, ensure_schema
from spvhub_common.clock import MAX_SLEEP
from spvhub_common.db import create_engine
from spvhub_common.events import decode
from spvhub_common.events.portfolio import AccessChanged, EntitledConnection, EntitlementsChanged
from spvhub_common.migrate import upgrade_async
from spvhub_devtools.testing import STACK
from spvhub_devtools.testtokens import TokenMinter
from spvhub_etransport import handlers
from spvhub_etransport.adapters.orm import access_grants
from spvhub_etransport.bootstrap import build
from spvhub_etransport.handlers import Deps
from spvhub_etransport.settings import Settings
from sqlalchemy import text

MIGRATIONS = Path(__file__).resolve().parents[1] / "spvhub_etransport" / "migrations"
CLIENT_ID = "6f97e46422c3ed35112f7e85aa6e15462d3b4f475669b753"
CLIENT_SECRET = "4d437da71feca3e0e4c761a890d25019902ba4e3114db833d1b63ef4bf52d8e5"
CARRIERS = [make_cif(b) for b in ("3100001", "3100002", "3100003")]
DECLARANTS = [make_cif(b) for b in ("1200001", "1200002", "1200003", "1200004")]
OUTSIDER = make_cif("1900009")  # a carrier nobody on the platform tracks
NS = "mfp:anaf:dgti:eTransport:declaratie:v2"


def scenario(**switches: Any) -> dict[str, Any]:
    companies = [{"cui": c, "name": f"CARRIER {i} TRANSPORT SRL", "caen": "4941"} for i, c in enumerate(CARRIERS, 1)]
    companies += [{"cui": c, "name": f"DECLARANT {i} SRL"} for i, c in enumerate(DECLARANTS, 1)]
    companies.append({"cui": OUTSIDER, "name": "OUTSIDER SRL"})
    certs = [{"id": f"cert-{c}", "name": f"HOLDER {c}", "cnp": "1800101123456",
              "serial": "34:" + ":".join(f"{int(x):02x}" for x in c.zfill(15)[:15]), "rights": [c]}
             for c in CARRIERS + DECLARANTS + [OUTSIDER]]
    return {
        "seed": 11, "clock": {"start": "2026-03-10T10:00:00+02:00", "frozen": True},
        "applications": [{"name": "spvhub", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                          "redirect_uris": ["https://client.example/cb"], "services": ["E-Factura", "E-Transport"]}],
        "certificates": certs, "companies": companies,
        "switches": {"processing_delay_seconds": 0, **switches},
    }


class EmulatorClock:
    """The platform clock reading the in-process emulator's clock directly (no caching), as UTC; its sleep is
    capped like the platform clocks' (the emulator's time may jump while one waits)."""

    def __init__(self, emulator_state: Any) -> None:
        self._state = emulator_state

    def now(self) -> datetime:
        return self._state.clock.now().astimezone(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, MAX_SLEEP)))


@dataclass
class FakeAuth:
    """auth's internal token endpoint: a token from the emulator for the connection's certificate."""

    emu: httpx.AsyncClient
    certificates: dict[str, str]  # connection id -> certificate id
    reauth: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)  # answered 503, as auth does when ANAF cannot renew
    statuses: dict[str, str] = field(default_factory=dict)  # the connection status reported with its token
    calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/internal/connections/{cid}/access-token")
        async def token(cid: str, x_service_token: str | None = Header(None)) -> Any:
            self.calls += 1
            if x_service_token != "dev-service-token":
                return JSONResponse({"error": {"code": "service_auth_required"}}, status_code=401)
            if cid in self.reauth:
                return JSONResponse({"error": {"code": "reauthorization_required", "message": "x"}}, status_code=409)
            if cid in self.failing:
                return JSONResponse({"error": {"code": "anaf_unavailable", "message": "x"}}, status_code=503)
            cert = self.certificates.get(cid)
            if cert is None:
                return JSONResponse({"error": {"code": "no_connection", "message": "x"}}, status_code=404)
            r = await self.emu.post("/__admin/tokens", json={"client_id": CLIENT_ID, "certificate": cert})
            body = r.json()
            clock = (await self.emu.get("/__admin/clock")).json()
            exp = datetime.fromtimestamp(clock["epoch_ms"] / 1000, UTC) + timedelta(seconds=body["expires_in"])
            return {"connection_id": cid, "access_token": body["access_token"], "expires_at": exp.isoformat(),
                    "certificate_serial": "", "company_cif": "", "status": self.statuses.get(cid, "active")}

        @app.post("/internal/connections/{cid}/refresh")
        async def refresh(cid: str) -> Any:
            return {"connection_id": cid, "status": "active"}
        return app


@dataclass
class Harness:
    settings: Settings
    app: FastAPI
    runtime: Any
    deps: Deps
    emu_app: Any
    emu: httpx.AsyncClient
    api: httpx.AsyncClient
    auth: FakeAuth
    minter: TokenMinter

    @property
    def emu_state(self) -> Any:
        return self.emu_app.state.emulator

    def advance(self, **kw: float) -> None:
        self.emu_state.clock.advance(timedelta(**kw).total_seconds())

    async def uow_run(self, fn: Any) -> None:
        async with self.runtime.uow() as uow:
            await fn(uow)
            await uow.commit()

    async def track(self, cif: str, connection_id: str | None = None) -> str:
        """portfolio.entitlements-changed: the carrier's own connection (its own certificate) alone serves it."""
        cid = connection_id or f"conn-{cif}"
        self.auth.certificates[cid] = f"cert-{cif}"
        await self.entitle(cif, (cid, cif))
        return cid

    async def entitle(self, cif: str, *connections: tuple[str, str], services: tuple[str, ...] = (
            "efactura", "etransport")) -> None:
        """One CIF's entitlements snapshot: (connection id, holder CIF), best first; none = nobody may act."""
        ev = EntitlementsChanged(cif=cif, connections=[
            EntitledConnection(connection_id=cid, holder_cif=holder, services=list(services), may_file=cif == holder)
            for cid, holder in connections])
        await self.uow_run(lambda uow: handlers.on_entitlements_changed(ev, None, uow, self.deps))

    async def grant(self, user_id: str, cif: str, *, verified: bool = True, role: str = "owner",
                    via_firm_cif: str | None = None) -> None:
        ev = AccessChanged(cif=cif, user_id=user_id, role=role, granted=True, verified=verified,
                           via_firm_cif=via_firm_cif, can_file=verified and role == "owner")
        await self.uow_run(lambda uow: apply_access_changed(uow.session, access_grants, ev))

    def headers(self, user_id: str) -> dict[str, str]:
        return self.minter.headers(user_id)

    async def bearer(self, cif: str) -> dict[str, str]:
        r = await self.emu.post("/__admin/tokens", json={"client_id": CLIENT_ID, "certificate": f"cert-{cif}"})
        return {"Authorization": "Bearer " + r.json()["access_token"], "Content-Type": "application/xml"}

    async def new_transport(self, declarant: str, carrier: str, **kw: Any) -> str:
        r = await self.emu.post("/__admin/transports", json={"declarant": declarant, "carrier": carrier, **kw})
        assert r.status_code == 200, r.text
        return str(r.json()["uit"])

    async def declare(self, cif: str, inner: str) -> dict[str, Any]:
        xml = f'<eTransport xmlns="{NS}" codDeclarant="{cif}">{inner}</eTransport>'
        r = await self.emu.post(f"/test/ETRANSPORT/ws/v1/upload/ETRANSP/{cif}/2", content=xml.encode(),
                                headers=await self.bearer(cif))
        body = r.json()
        assert r.status_code == 200 and body.get("ExecutionStatus") == 0, r.text
        up = self.emu_state.et_uploads[int(body["index_incarcare"])]
        assert up.ok, (inner, up.errors)
        return body

    async def change_vehicle(self, cif: str, uit: str, plate: str, trailer: str | None = None) -> None:
        when = self.emu_state.clock.now().replace(microsecond=0).isoformat()
        rem = f' nrRemorca1="{trailer}"' if trailer else ""
        await self.declare(cif, f'<modifVehicul uit="{uit}" nrVehicul="{plate}"{rem} dataModificare="{when}"/>')

    async def delete(self, declarant: str, uit: str) -> None:
        await self.declare(declarant, f'<stergere uit="{uit}"/>')

    async def confirm(self, cif: str, uit: str, kind: str = "10") -> None:
        await self.declare(cif, f'<confirmare uit="{uit}" tipConfirmare="{kind}"/>')

    async def correct(self, declarant: str, uit: str, carrier: str, data_transp: str, plate: str) -> None:
        inner = (
            f'<notificare codTipOperatiune="30"><corectie uit="{uit}"/>'
            '<bunuriTransportate codScopOperatiune="101" codTarifar="73089059" denumireMarfa="Profile" '
            'cantitate="10" codUnitateMasura="KGM" greutateNeta="10" greutateBruta="12" valoareLeiFaraTva="100"/>'
            '<partenerComercial codTara="RO" cod="14399840" denumire="PARTENER SRL"/>'
            f'<dateTransport nrVehicul="{plate}" codTaraOrgTransport="RO" codOrgTransport="{carrier}" '
            f'denumireOrgTransport="CARRIER" dataTransport="{data_transp}"/>'
            '<locStartTraseuRutier><locatie codJudet="12" denumireLocalitate="Cluj-Napoca" '
            'denumireStrada="Str. Corectata" numar="5"/></locStartTraseuRutier>'
            '<locFinalTraseuRutier><locatie codJudet="40" denumireLocalitate="Bucuresti" '
            'denumireStrada="Bd. Corectat" numar="9"/></locFinalTraseuRutier>'
            f'<documenteTransport tipDocument="30" numarDocument="AV-1" dataDocument="{data_transp}"/>'
            '</notificare>')
        await self.declare(declarant, inner)

    async def truth(self) -> list[dict[str, Any]]:
        return list((await self.emu.get("/__admin/transports")).json())

    carriers = CARRIERS
    declarants = DECLARANTS
    outsider = OUTSIDER

    async def outbox_rows(self) -> list[tuple[Any, Any]]:
        return await outbox_rows(self)

    async def wait_published(self, within: float = 30.0) -> None:
        await wait_published(self, within)

    async def read_topics(self, topics: list[str], expect: int, within: float = 30.0) -> list[Any]:
        return await read_topics(self.settings.kafka_bootstrap, topics, expect, within)


async def start_harness(database: str, topic_prefix: str, *, start_relay: bool = True,
                        start_consumers: bool = False, **settings_kw: Any) -> tuple[Harness, Any]:
    emu_app = create_emulator(scenario(**settings_kw.pop("switches", {})), admin=True)
    emu = httpx.AsyncClient(transport=httpx.ASGITransport(app=emu_app), base_url="http://emulator")
    auth = FakeAuth(emu, {})
    settings = Settings(service_name="etransport", env="test", pg_port=int(STACK["SPVHUB_PG_PORT"]),
                        pg_database=database, kafka_bootstrap=f"127.0.0.1:{STACK['SPVHUB_KAFKA_PORT']}",
                        kafka_topic_prefix=topic_prefix, outbox_poll_interval=0.05, anaf_emulator_url="http://emulator",
                        auth_url="http://auth", **settings_kw)
    await upgrade_async(settings, MIGRATIONS)
    clock = EmulatorClock(emu_app.state.emulator)
    # the test's own budget (in its fresh database): counters of earlier runs on the same simulated days
    # must not leak into this one
    budget_engine = create_engine(settings)
    await ensure_schema(budget_engine)
    app, runtime = build(settings, clock=clock, budget=PostgresBudget(budget_engine, clock=clock),
                         anaf_transport=httpx.ASGITransport(app=emu_app),
                         auth_transport=httpx.ASGITransport(app=auth.app()),
                         start_consumers=start_consumers, start_jobs=False, start_relay=start_relay)
    minter = TokenMinter()
    app.state.jwks = minter.verifier()
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://etransport")
    h = Harness(settings, app, runtime, app.state.deps, emu_app, emu, api, auth, minter)

    async def stop() -> None:
        await api.aclose()
        await ctx.__aexit__(None, None, None)
        await budget_engine.dispose()
        await emu.aclose()
    return h, stop


async def outbox_rows(h: Harness) -> list[tuple[Any, Any]]:
    async with h.runtime.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT event_id, topic, payload, published_at FROM outbox ORDER BY seq"))).all()
    return [(r, decode(bytes(r.payload))) for r in rows]


async def wait_published(h: Harness, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        async with h.runtime.engine.connect() as conn:
            left = (await conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))).scalar()
        if left == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("outbox not drained")


async def read_topics(bootstrap: str, topics: list[str], expect: int, within: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(got) < expect and asyncio.get_running_loop().time() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(msgs)
        for msgs in (await consumer.getmany(timeout_ms=1500)).values():  # anything beyond the expected
            got.extend(msgs)
    finally:
        await consumer.stop()
    return got


@pytest.fixture
async def harness(fresh_database: str, kafka_up: str, topic_prefix: str):
    """`await harness(**options)` builds the service on a fresh database (one per test), torn down after."""
    stops: list[Any] = []

    async def make(**kw: Any) -> Harness:
        h, stop = await start_harness(fresh_database, topic_prefix, **kw)
        stops.append(stop)
        return h
    yield make
    for stop in stops:
        await stop()

"""Test kit: an emulator scenario with N companies, the in-process emulator, tokens minted through its admin API,
a clock that follows it, and a harness that builds the efactura service against the real stack."""
from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from anaf_emulator import create_app as create_emulator
from anaf_emulator.cif import make_cif
from anaf_emulator.hosts import FamilyHosts, family_settings
from spvhub_common.anaf.budget import PostgresBudget, ensure_schema
from spvhub_common.clock import MAX_SLEEP
from spvhub_common.db import create_engine
from spvhub_common.events.portfolio import EntitledConnection, EntitlementsChanged
from spvhub_common.migrate import upgrade_async
from spvhub_common.tokens import InternalToken
from spvhub_devtools.testing import make_settings
from spvhub_efactura.adapters.orm import messages
from spvhub_efactura.bootstrap import budget_limits, build
from spvhub_efactura.handlers import on_entitlements_changed
from sqlalchemy import func, select

MIGRATIONS = Path(__file__).resolve().parents[1] / "spvhub_efactura" / "migrations"
CLIENT_ID = "6f97e46422c3ed35112f7e85aa6e15462d3b4f475669b753"
CLIENT_SECRET = "4d437da71feca3e0e4c761a890d25019902ba4e3114db833d1b63ef4bf52d8e5"


def company_cifs(n: int) -> list[str]:
    return [make_cif(str(1_234_000 + 17 * i)) for i in range(n)]


def scenario(n_companies: int, start: str = "2026-03-10T10:00:00+02:00", **switches: Any) -> dict[str, Any]:
    cifs = company_cifs(n_companies)
    return {
        "description": "efactura tests", "seed": 11, "clock": {"start": start},
        "applications": [{"name": "spvhub", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                          "redirect_uris": ["https://client.example/cb"], "services": ["E-Factura", "E-Transport"]}],
        "certificates": [{"id": "acc", "name": "POPA ION", "cnp": "1800101123456",
                          "serial": "34:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01", "rights": cifs}],
        "companies": [{"cui": c, "name": f"Firma Ţară Nr {i} SRL", "county": "CJ"} for i, c in enumerate(cifs)],
        "switches": switches,
    }


class EmulatorClock:
    """The platform clock of the test follows the in-process emulator's clock."""

    def __init__(self, app: Any) -> None:
        self.state = app.state.emulator

    def now(self) -> datetime:
        return self.state.clock.now().astimezone(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, MAX_SLEEP)))


class EmulatorTokens:
    """Stands in for auth's internal endpoint: tokens minted by the emulator's admin API (connection = cert id)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.cache: dict[str, str] = {}
        self.refreshes = 0

    async def access_token(self, connection_id: str) -> InternalToken:
        if connection_id not in self.cache:
            r = await self.client.post("/__admin/tokens", json={"client_id": CLIENT_ID, "certificate": connection_id})
            r.raise_for_status()
            self.cache[connection_id] = r.json()["access_token"]
        return InternalToken(connection_id, self.cache[connection_id], None)

    async def refresh(self, connection_id: str) -> InternalToken:
        self.refreshes += 1
        self.cache.pop(connection_id, None)
        return await self.access_token(connection_id)


def efactura_settings(database: str, topic_prefix: str, **over: Any) -> Any:
    from spvhub_efactura.settings import Settings
    base = make_settings("efactura", database=database)
    values = {k: getattr(base, k) for k in type(base).model_fields}
    values.update(service_name="efactura", kafka_topic_prefix=topic_prefix,
                  s3_bucket=f"efact-test-{uuid.uuid4().hex[:10]}", anaf_budget_database=database,
                  retention_days=1, scheduler_tick_seconds=0.2, lease_seconds=5, anaf_timeout=2.0,
                  anaf_backoff=0.05, retry_base_seconds=1.0, anaf_calls_per_minute=1_000_000,
                  sync_interval_seconds=900)
    values.update(over)
    return Settings(**values)


class Harness:
    """The efactura service in-process against the real stack and the in-process emulator."""

    def __init__(self, settings: Any, emulator: Any, *, start_consumers: bool = False, start_relay: bool = True,
                 start_jobs: bool = False, blobs: Any = None, families: bool = False) -> None:
        external = isinstance(emulator, str)  # the URL of an emulator process
        # families: each ANAF host family only under its own emulator prefix, four bases configured (asked by a
        # test, or for a whole run with SPVHUB_TEST_ANAF_FAMILIES=1)
        self.families = not external and (families or os.environ.get("SPVHUB_TEST_ANAF_FAMILIES", "") == "1")
        if self.families:
            emulator = FamilyHosts(emulator)
        self.settings = settings
        self.emulator = emulator
        if external:
            from spvhub_common.clock import FollowingClock
            self.emu = httpx.AsyncClient(base_url=emulator, timeout=60)
            refresh = float(os.environ.get("EFACTURA_CLOCK_REFRESH", "0.5"))
            self.clock: Any = FollowingClock(f"{emulator}/__admin/clock", refresh=refresh)
        else:
            self.emu = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url="http://emulator",
                                         timeout=30)
            self.clock = EmulatorClock(emulator)
        self.tokens = EmulatorTokens(self.emu)
        self.budget_engine = create_engine(settings, settings.anaf_budget_database)
        self.budget = PostgresBudget(self.budget_engine, budget_limits(settings), self.clock)
        if self.families:
            for name, value in family_settings("http://emulator").items():
                setattr(settings, name, value)
        else:
            settings.anaf_emulator_url = emulator if external else "http://emulator"
        self.app, self.runtime = build(settings,
                                       anaf_transport=None if external else httpx.ASGITransport(app=emulator),
                                       tokens=self.tokens, clock=self.clock,
                                       budget=self.budget, blobs=blobs, start_consumers=start_consumers,
                                       start_relay=start_relay, start_jobs=start_jobs)
        self.deps = self.app.state.deps
        self.sync = self.deps.sync
        self.engine = self.sync  # the name the submissions' tests still use
        self._lifespan: Any = None

    async def __aenter__(self) -> Harness:
        await upgrade_async(self.settings, MIGRATIONS)
        await ensure_schema(self.budget_engine)
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._lifespan.__aexit__(None, None, None)
        await self.budget_engine.dispose()
        await self.emu.aclose()

    async def grant(self, connection_id: str, cifs: list[str], holder: str | None = None,
                    may_file: bool = True) -> None:
        """Portfolio's entitlements: the connection (alone) may act for each CIF, applied as the consumer would."""
        await apply_entitlements(self.runtime, {c: [(connection_id, holder or cifs[0], may_file)] for c in cifs})

    async def entitle(self, cif: str, *connections: tuple[str, str, bool]) -> None:
        """One CIF's snapshot: (connection id, holder CIF, may file), best first; none = nobody may act for it."""
        await apply_entitlements(self.runtime, {cif: list(connections)})

    async def sync_until_settled(self, cifs: list[str] | None = None, rounds: int = 50) -> None:
        """Drive the scheduler until every ledger row is terminal or waiting for a future retry."""
        for _ in range(rounds):
            if cifs is not None:
                for c in cifs:
                    await self.sync.request_sync(c)
            claimed = await self.sync.tick()
            await self.sync.wait_idle()
            if not claimed:
                if await self.pending_due() == 0:
                    return
                await asyncio.sleep(0.3)
            cifs = None
        raise AssertionError("sync did not settle")

    async def pending_due(self) -> int:
        now = self.clock.now()
        async with self.runtime.sessions() as s:
            return int((await s.execute(select(func.count()).select_from(messages).where(
                messages.c.state.in_(["listed", "failed"]),
                (messages.c.next_attempt_at.is_(None)) | (messages.c.next_attempt_at <= now)))).scalar() or 0)

    async def ledger(self) -> dict[tuple[str, str], dict[str, Any]]:
        async with self.runtime.sessions() as s:
            rows = (await s.execute(select(messages))).mappings().all()
        return {(r["cif"], r["message_id"]): dict(r) for r in rows}

    async def emulator_messages(self, cif: str | None = None) -> list[dict[str, Any]]:
        r = await self.emu.get("/__admin/messages", params={"cif": cif} if cif else {})
        r.raise_for_status()
        return list(r.json())

    async def admin(self, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        r = await self.emu.request(method, f"/__admin/{path}", json=body)
        r.raise_for_status()
        return r.json()


async def apply_entitlements(runtime: Any, snapshots: dict[str, list[tuple[str, str, bool]]],
                             services: tuple[str, ...] = ("efactura",)) -> None:
    """portfolio.entitlements-changed per CIF as the consumer applies it; `runtime` has `uow()` or is the factory."""
    make_uow = getattr(runtime, "uow", runtime)
    async with make_uow() as uow:
        for cif, conns in snapshots.items():
            ev = EntitlementsChanged(cif=cif, connections=[
                EntitledConnection(connection_id=cid, holder_cif=holder, services=list(services), may_file=mf)
                for cid, holder, mf in conns])
            await on_entitlements_changed(ev, None, uow, None)
        await uow.commit()


def new_emulator(n_companies: int, **switches: Any) -> Any:
    return create_emulator(scenario(n_companies, **switches), admin=True)

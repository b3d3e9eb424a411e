"""Kit of the invitations tests: a migrated fresh database, the app with a hand-moved clock, tokens, events."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from spvhub_common.clock import ManualClock
from spvhub_common.events import CloudEvent, Event, to_envelope
from spvhub_common.events.portfolio import AccessChanged, CompanyRegistered, RightsDiscovered
from spvhub_common.migrate import upgrade_async
from spvhub_common.runtime import ServiceRuntime
from spvhub_devtools.testing import make_settings
from spvhub_devtools.testtokens import TokenMinter
from spvhub_invitations import handlers
from spvhub_invitations.bootstrap import build
from spvhub_invitations.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[1] / "spvhub_invitations" / "migrations"
FIRM, CLIENT_A, CLIENT_B, OTHER = "11111110", "22222229", "33333338", "44444447"


def settings_for(database: str, **kw: Any) -> Settings:
    base = make_settings(service="invitations", database=database, **kw).model_dump()
    base.pop("service_name", None)
    base.setdefault("access_wait_seconds", 0.3)
    return Settings(**base)


@dataclass
class Env:
    app: Any
    runtime: ServiceRuntime
    client: httpx.AsyncClient
    clock: ManualClock
    minter: TokenMinter
    settings: Settings

    def h(self, user: str) -> dict[str, str]:
        return self.minter.headers(user, email=f"{user}@example.ro", name=user)

    async def feed(self, event: Event) -> CloudEvent:
        """Apply a consumed event as the consumer would (inside a unit of work, inbox-claimed)."""
        from spvhub_common.inbox import claim
        env = to_envelope(event, "test")
        async with self.runtime.uow() as uow:
            assert await claim(uow.session, "invitations.read-models", env.id)
            if isinstance(event, AccessChanged):
                from spvhub_common.access import apply_access_changed
                from spvhub_invitations.adapters.orm import access_grants
                await apply_access_changed(uow.session, access_grants, event)
            else:
                await handlers.EVENT_HANDLERS[type(event)](event, env, uow, self.app.state.deps)
            await uow.commit()
        return env

    async def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        from spvhub_common.events import decode
        from spvhub_invitations.adapters.orm import outbox
        from sqlalchemy import select
        async with self.runtime.sessions() as s:
            rows = (await s.execute(select(outbox.c.payload).order_by(outbox.c.seq))).all()
        out = []
        for r in rows:
            env, ev = decode(bytes(r.payload))
            out.append((ev.topic, ev.model_dump(mode="json")))
        return out


@pytest.fixture
async def env(fresh_database: str) -> Any:
    s = settings_for(fresh_database, public_base_url="https://spv.example.ro")
    await upgrade_async(s, MIGRATIONS)
    clock = ManualClock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    app, runtime = build(s, clock=clock, start_consumers=False, start_relay=False, start_jobs=False)
    minter = TokenMinter()
    app.state.jwks = minter.verifier()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://invitations")
    yield Env(app, runtime, client, clock, minter, s)
    await client.aclose()
    await runtime.engine.dispose()


async def setup_firm(env: Env, user: str = "firm-user", clients: tuple[str, ...] = (CLIENT_A, CLIENT_B)) -> None:
    await env.feed(CompanyRegistered(cif=FIRM, name="Contabil Expert SRL", provides_accounting_services=True))
    for cif, name in ((CLIENT_A, "Firma X SRL"), (CLIENT_B, "Brutăria Ștefan SRL")):
        await env.feed(CompanyRegistered(cif=cif, name=name, address="Str. Lungă 1, Brașov",
                                         trade_register_no="J08/1/2020"))
    await env.feed(AccessChanged(cif=FIRM, user_id=user, role="owner", granted=True))
    await env.feed(RightsDiscovered(connection_id="conn-1", holder_cif=FIRM, cifs=[FIRM, *clients],
                                    gained=list(clients), services=["efactura"]))

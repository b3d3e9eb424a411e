"""Kit of the notifier tests: notifier and invitations in-process on fresh databases, the SMTP capture
(devmail) on free ports, a hand-moved clock, and a bridge that hands published events to consumers."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from spvhub_common.clock import ManualClock
from spvhub_common.db import drop_database, ensure_database
from spvhub_common.events import CloudEvent, Event, decode, to_envelope
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.inbox import claim
from spvhub_common.migrate import upgrade_async
from spvhub_common.runtime import ServiceRuntime
from spvhub_devtools.devmail import DevMail
from spvhub_devtools.testing import make_settings
from spvhub_devtools.testtokens import TokenMinter
from spvhub_invitations import handlers as inv_handlers
from spvhub_invitations.adapters.orm import outbox as inv_outbox
from spvhub_invitations.bootstrap import build as build_invitations
from spvhub_invitations.settings import Settings as InvSettings
from spvhub_notifier import handlers
from spvhub_notifier.adapters.invitations_client import HttpInvitationLinks
from spvhub_notifier.adapters.orm import access_grants, email_outbox, notifications
from spvhub_notifier.adapters.orm import outbox as ntf_outbox
from spvhub_notifier.bootstrap import build as build_notifier
from spvhub_notifier.settings import Settings
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[3]
NTF_MIGRATIONS = ROOT / "services" / "notifier" / "spvhub_notifier" / "migrations"
INV_MIGRATIONS = ROOT / "services" / "invitations" / "spvhub_invitations" / "migrations"
SERVICE_TOKEN = "dev-service-token"


def _settings(cls: type, service: str, database: str, **kw: Any) -> Any:
    base = make_settings(service=service, database=database).model_dump()
    base.pop("service_name", None)
    base.update(kw)
    return cls(**base)


@dataclass
class Stack:
    ntf_app: Any
    ntf: ServiceRuntime
    inv_app: Any
    inv: ServiceRuntime
    notifier: httpx.AsyncClient
    invitations: httpx.AsyncClient
    mail: DevMail
    clock: ManualClock
    minter: TokenMinter
    relayed: set[int] = field(default_factory=set)

    def h(self, user: str, locale: str = "ro") -> dict[str, str]:
        return self.minter.headers(user, email=f"{user}@example.ro", name=user, locale=locale)

    @property
    def deps(self) -> handlers.Deps:
        return self.ntf_app.state.deps  # type: ignore[no-any-return]

    async def feed(self, event: Event | CloudEvent, *, consumer: str = "notifier.notifications",
                   skip_inbox: bool = False) -> CloudEvent:
        """Deliver one event to the notifier as its consumer does (inbox claim + handler in one transaction).
        Passing the same CloudEvent again is a Kafka redelivery; `skip_inbox` replays it past the inbox claim
        (as if the inbox row were gone), to prove the per-(event, channel, recipient) constraints."""
        env = event if isinstance(event, CloudEvent) else to_envelope(event, "test")
        _, ev = decode(env.model_dump(mode="json"))
        async with self.ntf.uow() as uow:
            if not skip_inbox and not await claim(uow.session, consumer, env.id):
                return env
            if isinstance(ev, AccessChanged):
                from spvhub_common.access import apply_access_changed
                await apply_access_changed(uow.session, access_grants, ev)
            else:
                await handlers.EVENT_HANDLERS[type(ev)](ev, env, uow, self.deps)
            await uow.commit()
        return env

    async def feed_invitations(self, event: Event) -> None:
        env = to_envelope(event, "test")
        async with self.inv.uow() as uow:
            if isinstance(event, AccessChanged):
                from spvhub_common.access import apply_access_changed
                from spvhub_invitations.adapters.orm import access_grants as inv_access
                await apply_access_changed(uow.session, inv_access, event)
            else:
                await inv_handlers.EVENT_HANDLERS[type(event)](event, env, uow, self.inv_app.state.deps)
            await uow.commit()

    async def relay_invitations(self) -> list[CloudEvent]:
        """Hand what invitations published (its outbox) to the notifier, like the relay + Kafka would."""
        async with self.inv.sessions() as s:
            rows = (await s.execute(select(inv_outbox.c.seq, inv_outbox.c.payload).order_by(inv_outbox.c.seq))).all()
        out = []
        for r in rows:
            if r.seq in self.relayed:
                continue
            self.relayed.add(r.seq)
            env, _ = decode(bytes(r.payload))
            await self.feed(env)
            out.append(env)
        return out

    async def send_all(self, rounds: int = 20) -> None:
        """Run the sender until nothing is due (retries included)."""
        for _ in range(rounds):
            await handlers.send_due_emails(self.deps)
            async with self.ntf.sessions() as s:
                left = (await s.execute(select(email_outbox.c.id).where(
                    email_outbox.c.status.in_(["pending", "sending"])))).all()
            if not left:
                return
            await asyncio.sleep(0.05)

    def mails(self, to: str | None = None) -> list[dict[str, Any]]:
        return self.mail.store.list(to)

    async def inbox_rows(self, user: str | None = None) -> list[Any]:
        async with self.ntf.sessions() as s:
            q = select(notifications).order_by(notifications.c.created_at)
            if user:
                q = q.where(notifications.c.user_id == user)
            return list((await s.execute(q)).mappings())

    async def published(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.ntf.sessions() as s:
            rows = (await s.execute(select(ntf_outbox.c.payload).order_by(ntf_outbox.c.seq))).all()
        return [(ev.topic, ev.model_dump(mode="json")) for ev in (decode(bytes(r.payload))[1] for r in rows)]


@pytest.fixture
async def stack(fresh_database: str, kafka_up: str, topic_prefix: str) -> Any:
    inv_db = f"t_{uuid.uuid4().hex[:12]}"
    clock = ManualClock(datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
    mail = DevMail().start()
    inv_s = _settings(InvSettings, "invitations", inv_db, public_base_url="https://spv.example.ro",
                      kafka_topic_prefix=topic_prefix, access_wait_seconds=0.3)
    await ensure_database(inv_s)
    await upgrade_async(inv_s, INV_MIGRATIONS)
    ntf_s = _settings(Settings, "notifier", fresh_database, smtp_port=mail.smtp_port,
                      public_base_url="https://spv.example.ro", email_retry_base=0.05, email_retry_max=0.2,
                      kafka_topic_prefix=topic_prefix)
    await upgrade_async(ntf_s, NTF_MIGRATIONS)
    minter = TokenMinter()
    inv_app, inv_rt = build_invitations(inv_s, clock=clock, start_consumers=False, start_relay=False,
                                        start_jobs=False)
    inv_app.state.jwks = minter.verifier()
    inv_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=inv_app), base_url="http://invitations")
    links = HttpInvitationLinks("http://invitations", SERVICE_TOKEN, client=inv_client)
    ntf_app, ntf_rt = build_notifier(ntf_s, clock=clock, links=links, start_consumers=False, start_relay=False,
                                     start_jobs=False)
    ntf_app.state.jwks = minter.verifier()
    ntf_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=ntf_app), base_url="http://notifier")
    st = Stack(ntf_app, ntf_rt, inv_app, inv_rt, ntf_client, inv_client, mail, clock, minter)
    yield st
    await ntf_client.aclose()
    await inv_client.aclose()
    await ntf_rt.engine.dispose()
    await inv_rt.engine.dispose()
    mail.stop()
    await drop_database(inv_s, inv_db)

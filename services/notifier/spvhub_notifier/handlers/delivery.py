"""Delivery of a notice in the consumer's transaction: inbox items and e-mail outbox rows, idempotent per event,
channel and recipient; and who is told about a company."""
from __future__ import annotations

import uuid
from typing import Any

from spvhub_common.events.notifier import NotificationSent
from spvhub_common.uow import SqlUnitOfWork

from spvhub_notifier.adapters import repository as repo
from spvhub_notifier.domain import KINDS, Notice


async def deliver(uow: SqlUnitOfWork, notice: Notice, source_event_id: str) -> None:
    """Write the inbox items and e-mail outbox rows of a notice in the consumer's transaction. The unique
    constraints make a second delivery of the same event to the same recipient on the same channel a no-op."""
    spec = KINDS[notice.kind]
    session = uow.session
    seen: set[str] = set()
    for user_id in notice.users:
        if not user_id or user_id in seen:
            continue
        seen.add(user_id)
        nid: str | None = None
        if spec.inbox:
            nid = await repo.add_notification(
                session, id=str(uuid.uuid4()), user_id=user_id, kind=notice.kind, source_event_id=source_event_id,
                cif=notice.cif, params=notice.params, actionable=notice.kind == "invitation_received")
            if nid is not None:
                uow.publish(NotificationSent(notification_id=nid, user_id=user_id, kind=notice.kind,
                                             channel="inbox", cif=notice.cif, source_event_id=source_event_id))
        chosen = await repo.email_choice(session, user_id, notice.kind)
        if spec.email_default if chosen is None else chosen:
            await repo.queue_email(session, id=str(uuid.uuid4()), source_event_id=source_event_id,
                                   recipient=f"user:{user_id}", user_id=user_id, kind=notice.kind, cif=notice.cif,
                                   params=notice.params, notification_id=nid)
    if notice.email_to:
        addr = notice.email_to.strip()
        await repo.queue_email(session, id=str(uuid.uuid4()), source_event_id=source_event_id,
                               recipient=f"email:{addr.lower()}", to_address=addr, locale=notice.email_locale,
                               kind=notice.kind, cif=notice.cif, params=notice.params)


async def users_for_cif(uow: SqlUnitOfWork, cif: str, *, direct_only: bool = False,
                        roles: tuple[str, ...] | None = None) -> list[str]:
    """Who hears about a company's ANAF data: its verified people only (a registration by CIF alone proves
    nothing, so an unverified member is told nothing that came from ANAF)."""
    return await repo.users_for_cif(uow.session, cif, direct_only=direct_only, roles=roles)


async def to_company(uow: SqlUnitOfWork, kind: str, cif: str, source_event_id: str, params: dict[str, Any],
                     recipients: list[str] | None = None) -> None:
    """A company-scoped notice: to its verified users unless the caller names the recipients."""
    if recipients is None:
        recipients = await users_for_cif(uow, cif)
    params = {"cif": cif, "company_name": await repo.company_name(uow.session, cif), **params}
    await deliver(uow, Notice(kind, params, cif=cif, users=recipients), source_event_id)

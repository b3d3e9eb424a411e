"""The expiry job: pending invitations past their 15 days become expired, and the firm is told."""
from __future__ import annotations

from datetime import datetime

from spvhub_common.events.invitations import InvitationExpired
from spvhub_common.uow import SqlUnitOfWork

from spvhub_invitations.adapters import repository as repo
from spvhub_invitations.adapters.repository import Invitation
from spvhub_invitations.domain import Status
from spvhub_invitations.handlers.deps import Deps
from spvhub_invitations.handlers.views import event_base


async def expire(uow: SqlUnitOfWork, inv: Invitation, now: datetime) -> None:
    """Mark one invitation expired and publish `invitation-expired` (also used when a new invitation replaces a
    pending one past its expiry)."""
    await repo.set_fields(uow.session, inv.id, status=Status.EXPIRED.value, expired_at=now, updated_at=now)
    names = await repo.company_names(uow.session, [inv.firm_cif, inv.client_cif])
    uow.publish(InvitationExpired(**event_base(inv, names), expired_at=inv.expires_at))


async def expire_due(deps: Deps, batch: int = 200) -> int:
    """Mark pending invitations past their expiry as expired and tell the firm (`invitation-expired`)."""
    total = 0
    while True:
        now = deps.clock.now()
        async with deps.uow() as uow:
            rows = await repo.due_for_expiry(uow.session, now, batch)
            for row in rows:
                await expire(uow, row, now)
            await uow.commit()
        total += len(rows)
        if len(rows) < batch:
            return total

"""Collaborations between an accounting firm and its clients: opened by the invitations service's events (a claim
may be a join request), changed only with the client's consent, ended by either side."""
from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from spvhub_common.errors import NotFound
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
    InvitationRevoked,
    InvitationSent,
)
from spvhub_common.events.portfolio import (
    CollaborationEnded,
    CollaborationPermissionsChanged,
    CollaborationStarted,
    JoinRequested,
)
from spvhub_common.logging import get_logger
from spvhub_common.pii import is_person_key, parse_company_id
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.domain import CollaborationStatus, Role
from spvhub_portfolio.handlers.access import require_role, sync_access
from spvhub_portfolio.handlers.companies import ensure_company, identity
from spvhub_portfolio.handlers.deps import Deps
from spvhub_portfolio.handlers.entitlements import sync_entitlements
from spvhub_portfolio.handlers.members import verify_member

log = get_logger(__name__)


async def on_invitation_sent(ev: InvitationSent, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await repo.upsert_invitation(uow.session, ev.invitation_id, parse_company_id(ev.firm_cif),
                                 parse_company_id(ev.client_cif), "sent", deps.clock.now())


async def _firm_covers(uow: SqlUnitOfWork, firm: str, client: str) -> bool:
    """The firm holds an active authorization whose certificate has SPV rights on the client."""
    return any(f.active and client in f.rights and f.holder_cif == firm
               for f in await repo.connection_facts_for(uow.session, client))


async def on_invitation_claimed(ev: InvitationClaimed, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """The client's representative created an account from the link. A link proves only that the firm chose this
    e-mail address, so: when the company has no verified owner yet and the firm's certificate has SPV rights on it,
    the claimant becomes its verified owner; when it has one, the claim is a join request its owners decide on;
    otherwise the claimant is an unverified member until they prove control. A pending collaboration opens.

    A natural person is never verified by a link: a verified member is shown the person's CNP in clear, and a link
    sent to a mistyped (or the firm's own) address must not show it to whoever opens it. The person proves control
    with their own certificate (an ANAF authorization with rights on the CNP), then accepts."""
    firm, client = parse_company_id(ev.firm_cif), parse_company_id(ev.client_cif)
    now = deps.clock.now()
    await repo.upsert_invitation(uow.session, ev.invitation_id, firm, client, "claimed", now)
    await ensure_company(uow, deps, client, ev.user_id)
    existing = await repo.direct_membership(uow.session, ev.user_id, client)
    if await repo.has_verified_owner(uow.session, client):
        if existing is None:
            await repo.upsert_member(uow.session, client, ev.user_id, Role.MEMBER.value)
            uow.publish(JoinRequested(cif=client, user_id=ev.user_id, via="invitation", invitation_id=ev.invitation_id,
                                      firm_cif=firm,
                                      notify_user_ids=await repo.verified_people(uow.session, client, domain.MANAGERS)))
            log.info("claim on a company with a verified owner became a join request", cif=client, user_id=ev.user_id)
    else:
        if existing is None:
            await repo.upsert_member(uow.session, client, ev.user_id, Role.OWNER.value)
        if not is_person_key(client) and await _firm_covers(uow, firm, client):
            await verify_member(uow, deps, client, ev.user_id, "invitation")
    if await repo.open_collaboration(uow.session, firm, client, lock=True) is None:
        await repo.insert_collaboration(uow.session, {
            "id": str(uuid.uuid4()), "firm_cif": firm, "client_cif": client, "status": "pending",
            "invitation_id": ev.invitation_id, "created_at": now})
    await sync_access(uow, {client})


async def on_invitation_accepted(ev: InvitationAccepted, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """The client accepted: the collaboration is active and the firm's users reach the client's data. Only a
    verified owner or administrator of the client can consent; anything else is refused here too, whatever the
    invitations service let through."""
    firm, client = parse_company_id(ev.firm_cif), parse_company_id(ev.client_cif)
    now = deps.clock.now()
    accepter = await repo.direct_membership(uow.session, ev.user_id, client)
    if accepter is None or not accepter.verified or accepter.role not in domain.MANAGERS:
        log.warning("acceptance by someone who cannot consent for the client ignored", cif=client,
                    user_id=ev.user_id, invitation_id=ev.invitation_id)
        return
    await repo.upsert_invitation(uow.session, ev.invitation_id, firm, client, "accepted", now)
    c = await repo.open_collaboration(uow.session, firm, client, lock=True)
    if c is None:
        await repo.insert_collaboration(uow.session, {
            "id": str(uuid.uuid4()), "firm_cif": firm, "client_cif": client, "status": "active",
            "invitation_id": ev.invitation_id, "created_at": now, "activated_at": now})
    elif c.status == CollaborationStatus.PENDING:
        await repo.set_collaboration(uow.session, c.id, {"status": "active", "activated_at": now,
                                                         "invitation_id": ev.invitation_id})
    else:
        return  # already active
    uow.publish(CollaborationStarted(firm_cif=firm, client_cif=client, may_file=False, accepted_by=ev.user_id))
    await sync_access(uow, {client})
    await sync_entitlements(uow, {client})


async def _close_pending(ev: InvitationDeclined | InvitationExpired | InvitationRevoked, uow: SqlUnitOfWork, deps: Deps,
                         status: str) -> None:
    firm, client = parse_company_id(ev.firm_cif), parse_company_id(ev.client_cif)
    now = deps.clock.now()
    await repo.upsert_invitation(uow.session, ev.invitation_id, firm, client, status, now)
    c = await repo.open_collaboration(uow.session, firm, client, lock=True)
    if c is not None and c.status == CollaborationStatus.PENDING and c.invitation_id == ev.invitation_id:
        await repo.set_collaboration(uow.session, c.id, {"status": "ended", "ended_at": now,
                                                         "end_reason": f"invitation_{status}"})
        uow.publish(CollaborationEnded(firm_cif=firm, client_cif=client, reason=f"invitation_{status}"))


async def on_invitation_declined(ev: InvitationDeclined, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await _close_pending(ev, uow, deps, "declined")


async def on_invitation_expired(ev: InvitationExpired, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await _close_pending(ev, uow, deps, "expired")


async def on_invitation_revoked(ev: InvitationRevoked, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    await _close_pending(ev, uow, deps, "revoked")


def collaboration_view(c: repo.Collaboration, names: dict[str, repo.Company], perspective: str,
                       pii: Any = None) -> dict[str, Any]:
    """One collaboration as one side sees it; `kind`/`tax_id` name the counterpart (a natural person client's CNP
    masked: the firm is not one of its members)."""
    other = c.client_cif if perspective == c.firm_cif else c.firm_cif
    if other in names:
        ident = identity(names[other], pii, may_see=False)
    else:
        ident = {"kind": "cnp" if is_person_key(other) else "cif", "tax_id": other}
    return {"id": c.id, "firm_cif": c.firm_cif, "client_cif": c.client_cif, "status": c.status,
            "side": "firm" if perspective == c.firm_cif else "client", "counterpart_cif": other, **ident,
            "counterpart_name": names[other].name if other in names else "", "created_at": c.created_at,
            "activated_at": c.activated_at, "ended_at": c.ended_at, "end_reason": c.end_reason,
            "may_file": bool(c.may_file)}


async def list_collaborations(deps: Deps, user_id: str, raw_cif: str) -> list[dict[str, Any]]:
    async with deps.uow() as uow:
        cif = parse_company_id(raw_cif)
        await require_role(uow, user_id, cif, direct_only=True)
        rows = await repo.collaborations_of(uow.session, cif)
        names = await repo.company_rows(uow.session, {c.firm_cif for c in rows} | {c.client_cif for c in rows})
        return [collaboration_view(c, names, cif, deps.pii) for c in rows]


async def end_collaboration(deps: Deps, user_id: str, raw_cif: str, raw_other: str,
                            reason: str) -> dict[str, Any]:
    """Either side (an owner or administrator) ends the collaboration; the firm's users lose the client."""
    async with deps.transaction() as uow:
        cif, other = parse_company_id(raw_cif), parse_company_id(raw_other)
        await require_role(uow, user_id, cif, domain.MANAGERS, direct_only=True)
        c = await repo.open_collaboration(uow.session, cif, other, lock=True) or await repo.open_collaboration(
            uow.session, other, cif, lock=True)
        if c is None:
            raise NotFound(f"CIF {cif} has no open collaboration with CIF {other}.", code="collaboration_not_found")
        now = deps.clock.now()
        why = reason or ("ended_by_firm" if c.firm_cif == cif else "ended_by_client")
        await repo.set_collaboration(uow.session, c.id, {"status": "ended", "ended_at": now, "ended_by": user_id,
                                                         "end_reason": why})
        uow.publish(CollaborationEnded(firm_cif=c.firm_cif, client_cif=c.client_cif, reason=why))
        await sync_access(uow, {c.client_cif})
        await sync_entitlements(uow, {c.client_cif}, reason="collaboration_ended",
                                message=f"The collaboration with the accounting firm (CIF {c.firm_cif}) ended and no "
                                        "other ANAF authorization covers this company: its e-Factura invoices are no "
                                        "longer downloaded. Authorize ANAF access for the company to resume.")
        names = await repo.company_rows(uow.session, {c.firm_cif, c.client_cif})
        return collaboration_view(replace(c, status="ended", ended_at=now, end_reason=why), names, cif, deps.pii)


async def set_collaboration_permissions(deps: Deps, user_id: str, raw_cif: str, raw_firm: str,
                                        may_file: bool) -> dict[str, Any]:
    """The client's verified owner or administrator decides whether the firm may file in the client's name."""
    async with deps.transaction() as uow:
        client, firm = parse_company_id(raw_cif), parse_company_id(raw_firm)
        await require_role(uow, user_id, client, domain.MANAGERS, direct_only=True)
        c = await repo.open_collaboration(uow.session, firm, client, lock=True)
        if c is None or c.status != CollaborationStatus.ACTIVE:
            raise NotFound(f"CIF {client} has no active collaboration with the accounting firm CIF {firm}.",
                           code="collaboration_not_found")
        if c.may_file != may_file:
            await repo.set_collaboration(uow.session, c.id, {"may_file": may_file})
            uow.publish(CollaborationPermissionsChanged(firm_cif=firm, client_cif=client, may_file=may_file,
                                                        changed_by=user_id))
            await sync_access(uow, {client})
            await sync_entitlements(uow, {client})
        names = await repo.company_rows(uow.session, {firm, client})
        return collaboration_view(replace(c, may_file=may_file), names, client, deps.pii)

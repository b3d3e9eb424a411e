"""The client company's side: the sign-up page's preview of a link, the claim from the new account, the consent
(accept or decline) of the client's own verified owners and administrators, and the invitations they received."""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from spvhub_common.access import MANAGERS, require_grant
from spvhub_common.errors import Conflict, Forbidden, NotFound
from spvhub_common.events.invitations import InvitationAccepted, InvitationClaimed, InvitationDeclined
from spvhub_common.security import Principal

from spvhub_invitations import domain
from spvhub_invitations.adapters import repository as repo
from spvhub_invitations.adapters.orm import access_grants
from spvhub_invitations.adapters.repository import Invitation
from spvhub_invitations.domain import Status
from spvhub_invitations.handlers.deps import Deps
from spvhub_invitations.handlers.views import Gone, client_identity, event_base, status_of, view


def _refuse_unusable(inv: Invitation | None, now: datetime) -> Invitation:
    """Clear refusals for a link that cannot be used (shared by preview and claim)."""
    if inv is None:
        raise NotFound("This invitation link is not valid: it may have been replaced by a newer e-mail. Ask the "
                       "firm to send it again.", code="invitation_not_found")
    st = status_of(inv, now)
    if st == Status.EXPIRED:
        raise Gone(f"This invitation expired on {inv.expires_at:%Y-%m-%d} (invitations are valid for 15 days). "
                   "Ask the firm to send it again.", code="invitation_expired",
                   details={"expires_at": inv.expires_at.isoformat()})
    if st == Status.REVOKED:
        raise Gone("This invitation was withdrawn by the firm.", code="invitation_revoked")
    if st != Status.PENDING:
        raise Conflict("This invitation link was already used; sign in to the account created with it.",
                       code="invitation_already_used", details={"status": st.value})
    return inv


async def preview(deps: Deps, token: str) -> dict[str, Any]:
    """What the sign-up page shows before the account exists (no authentication: the token is the secret). A natural
    person client is shown with the CNP masked, as to anyone who is not yet one of its verified members."""
    now = deps.clock.now()
    if not domain.plausible_token(token):
        raise NotFound("This invitation link is not valid.", code="invitation_not_found")
    async with deps.uow() as uow:
        inv = _refuse_unusable(await repo.by_token_hash(uow.session, domain.token_hash(token)), now)
        firm = await repo.company(uow.session, inv.firm_cif)
        client = await repo.company(uow.session, inv.client_cif)
    shown = client_identity(inv.client_cif, inv.client_tax_id or (client.cnp_masked if client else None))
    return {"invitation_id": inv.id, "status": Status.PENDING.value, "expires_at": inv.expires_at,
            "firm": {"cif": inv.firm_cif, "name": firm.name if firm else None},
            "client_company": {"cif": inv.client_cif, "kind": shown["client_kind"],
                               "tax_id": shown["client_tax_id"], "name": client.name if client else None,
                               "address": client.address if client else None,
                               "trade_register_no": client.trade_register_no if client else None},
            "representative": {"name": inv.name, "email": inv.email}}


async def claim(deps: Deps, user: Principal, token: str) -> dict[str, Any]:
    """Single use: the signed-in user takes the invitation; portfolio then adds the client company to the
    account and opens a pending collaboration (from `invitations.invitation-claimed`)."""
    now = deps.clock.now()
    if not domain.plausible_token(token):
        raise NotFound("This invitation link is not valid.", code="invitation_not_found")
    async with deps.uow() as uow:
        inv = _refuse_unusable(await repo.by_token_hash(uow.session, domain.token_hash(token), for_update=True), now)
        await repo.set_fields(uow.session, inv.id, status=Status.CLAIMED.value, claimed_by=user.user_id,
                              claimed_at=now, updated_at=now)
        names = await repo.company_names(uow.session, [inv.firm_cif, inv.client_cif])
        uow.publish(InvitationClaimed(**event_base(inv, names), user_id=user.user_id))
        await uow.commit()
        fresh = await repo.get(uow.session, inv.id)
        assert fresh is not None
        return view(fresh, now, names)


async def _require_client_manager_soon(deps: Deps, user: Principal, client_cif: str) -> None:
    """Only a verified owner or administrator of the client company answers for it. The read model gets a moment
    to catch up: the claimer's membership (and its verification) reaches this service through Kafka a little
    after the claim. A role that is not enough is final at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.access_wait_seconds
    while True:
        async with deps.uow() as uow:
            try:
                await require_grant(uow.session, access_grants, user.user_id, client_cif, roles=MANAGERS,
                                    direct_only=True)
                return
            except Forbidden as exc:
                if exc.code not in ("no_access_to_company", "company_not_verified") or loop.time() >= deadline:
                    raise
        await asyncio.sleep(0.2)


async def _answer(deps: Deps, user: Principal, invitation_id: str, accept: bool) -> dict[str, Any]:
    now = deps.clock.now()
    target = Status.ACCEPTED if accept else Status.DECLINED
    async with deps.uow() as uow:
        inv = await repo.get(uow.session, invitation_id)
    if inv is None:
        raise NotFound("No such invitation.", code="invitation_not_found")
    if inv.claimed_by is None and inv.status == Status.PENDING:
        raise Forbidden("Open the invitation link and create your account first.", code="invitation_not_claimed")
    # The collaboration changes only with the client's consent: whoever claimed the link does not matter here.
    await _require_client_manager_soon(deps, user, inv.client_cif)
    async with deps.uow() as uow:
        locked = await repo.get(uow.session, invitation_id, for_update=True)
        assert locked is not None
        names = await repo.company_names(uow.session, [locked.firm_cif, locked.client_cif])
        if locked.status == target:  # a repeated click: same answer, nothing new
            return view(locked, now, names)
        if locked.status != Status.CLAIMED:
            code = "invitation_revoked" if locked.status == Status.REVOKED else "invitation_already_answered"
            raise Conflict(f"This invitation is already {locked.status}.", code=code,
                           details={"status": locked.status})
        await repo.set_fields(uow.session, locked.id, status=target.value, answered_at=now, updated_at=now)
        ev_cls = InvitationAccepted if accept else InvitationDeclined
        uow.publish(ev_cls(**event_base(locked, names), user_id=user.user_id))
        await uow.commit()
        fresh = await repo.get(uow.session, locked.id)
        assert fresh is not None
        return view(fresh, now, names)


async def accept(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    return await _answer(deps, user, invitation_id, True)


async def decline(deps: Deps, user: Principal, invitation_id: str) -> dict[str, Any]:
    return await _answer(deps, user, invitation_id, False)


async def received(deps: Deps, user: Principal) -> list[dict[str, Any]]:
    """The invitations the caller claimed, and those claimed for a company the caller answers for (a verified owner
    or administrator of the client who did not open the link themselves)."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        managed = await repo.managed_cifs(uow.session, user.user_id)
        rows = await repo.received(uow.session, user.user_id, managed)
        names = await repo.company_names(uow.session, [c for r in rows for c in (r.firm_cif, r.client_cif)])
    return [view(r, now, names) for r in rows]

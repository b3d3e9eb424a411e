"""Members of a company and their verification (proof of control): the owners' and administrators' commands, a
pending member's approval, and the account directory auth's events keep."""
from __future__ import annotations

from typing import Any

from spvhub_common.errors import AppError, Conflict, Forbidden, NotFound
from spvhub_common.events.auth import EmailVerified, UserRegistered
from spvhub_common.events.envelope import CloudEvent
from spvhub_common.events.portfolio import MembershipVerified
from spvhub_common.logging import get_logger
from spvhub_common.paging import decode_time_cursor, encode_cursor
from spvhub_common.pii import parse_company_id
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo
from spvhub_portfolio.domain import Role
from spvhub_portfolio.handlers.access import require_role, sync_access_of_firm
from spvhub_portfolio.handlers.deps import Deps

log = get_logger(__name__)


async def verify_member(uow: SqlUnitOfWork, deps: Deps, cif: str, user_id: str, via: str) -> bool:
    """Verify an existing membership (proof of control). The first verified member of a company is its owner; a
    later one keeps the role asked for, never above administrator. Returns whether anything changed."""
    m = await repo.direct_membership(uow.session, user_id, cif)
    if m is None or m.verified:
        return False
    if await repo.email_unverified(uow.session, user_id):
        # a verified e-mail comes first: the proof is kept and applied on `auth.email-verified`
        await repo.record_pending_verification(uow.session, user_id, cif, via, deps.clock.now())
        log.info("membership verification waits for the e-mail's", cif=cif, user_id=user_id, via=via)
        return False
    has_owner = await repo.has_verified_owner(uow.session, cif)
    # a grant names its role; any other proof makes the first verified member the owner, later ones at most admin
    role = m.role if via == "grant" else Role.OWNER.value if not has_owner else (
        Role.ADMIN.value if m.role == Role.OWNER else m.role)
    await repo.upsert_member(uow.session, cif, user_id, role, verified_via=via, at=deps.clock.now())
    uow.publish(MembershipVerified(cif=cif, user_id=user_id, role=role, via=via))
    await sync_access_of_firm(uow, cif)
    log.info("membership verified", cif=cif, user_id=user_id, via=via, role=role)
    return True


MEMBER_STATUSES = {"active": True, "pending_approval": False}


async def list_members(deps: Deps, user_id: str, raw_cif: str, *, status: str | None = None, limit: int = 50,
                       cursor: str | None = None) -> dict[str, Any]:
    """One page of the members, in the order they joined, with their role and verification; unverified ones
    (`status` `pending_approval`) are requests to join an owner or admin approves (by setting their role) or drops
    (by removing them)."""
    verified = MEMBER_STATUSES[status] if status is not None else None
    async with deps.uow() as uow:
        cif = parse_company_id(raw_cif)
        await require_role(uow, user_id, cif, direct_only=True)
        after = decode_time_cursor(cursor) if cursor else None
        rows = await repo.members(uow.session, cif, verified=verified, after=after, limit=limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        total = await repo.count_members(uow.session, cif, verified=verified)
        people = await repo.users_by_id(uow.session, [m.user_id for m in rows])
    items = []
    for m in rows:
        person = people.get(m.user_id)
        items.append({"user_id": m.user_id, "email": person.email if person else None,
                      "name": person.name if person else None, "role": m.role, "since": m.created_at,
                      "verified": m.verified_at is not None, "verified_via": m.verified_via,
                      "status": "active" if m.verified_at is not None else "pending_approval"})
    last = rows[-1] if more and rows else None
    return {"items": items, "next_cursor": encode_cursor(last.created_at, last.user_id) if last else None,
            "total": total}


async def add_member(deps: Deps, actor: str, raw_cif: str, email: str,
                     role: str) -> dict[str, Any]:
    """A verified owner or administrator adds an existing platform user, named by e-mail; the new member is
    verified by that grant."""
    async with deps.transaction() as uow:
        cif = parse_company_id(raw_cif)
        await require_role(uow, actor, cif, domain.MANAGERS, direct_only=True)
        user = await repo.user_by_email(uow.session, email)
        if user is None:
            raise NotFound("No platform account uses this e-mail address. Ask the person to sign up first, then add "
                           "them again.", code="user_not_found",
                           messages={"ro": "Nicio cont de pe platformă nu folosește această adresă de e-mail. Rugați "
                                           "persoana să își creeze un cont, apoi adăugați-o din nou."})
        return await _set_member(uow, deps, actor, cif, user.user_id, role, adding=True)


async def set_member(deps: Deps, actor: str, raw_cif: str, member_id: str, role: str) -> dict[str, Any]:
    """Change a member's role, or approve a pending (unverified) member with a role (owner/admin only; admins never
    touch owners). Only `add_member` adds someone new."""
    async with deps.transaction() as uow:
        return await _set_member(uow, deps, actor, raw_cif, member_id, role)


async def _set_member(uow: SqlUnitOfWork, deps: Deps, actor: str, raw_cif: str, member_id: str, role: str, *,
                      adding: bool = False) -> dict[str, Any]:
    cif = parse_company_id(raw_cif)
    if role not in [r.value for r in domain.MEMBER_ROLES]:
        raise AppError("role must be owner, admin or member.", code="invalid_role", status=422)
    actor_role = (await require_role(uow, actor, cif, domain.MANAGERS, direct_only=True)).role
    await repo.get_company(uow.session, cif, lock=True)  # serialise membership changes of one company
    current = await repo.direct_membership(uow.session, member_id, cif)
    if current is None and not adding:
        raise NotFound(f"User {member_id} is not a member of CIF {cif}; add people by their e-mail address.",
                       code="member_not_found")
    current_role = current.role if current and current.verified else None
    if not domain.can_assign(actor_role, role, current_role):
        raise Forbidden("Only an owner can make or change owners.", code="insufficient_role",
                        details={"cif": cif, "role": actor_role})
    if current_role == Role.OWNER and role != Role.OWNER:
        await _keep_one_owner(uow, cif, member_id)
    if current is not None and current.verified:
        await repo.upsert_member(uow.session, cif, member_id, role)
        await sync_access_of_firm(uow, cif)
        return {"user_id": member_id, "role": role, "verified": True}
    # a new or pending member: the grant is their proof of control, applied once their e-mail is verified
    await repo.upsert_member(uow.session, cif, member_id, role)
    verified = await verify_member(uow, deps, cif, member_id, "grant")
    if not verified:
        await sync_access_of_firm(uow, cif)
    return {"user_id": member_id, "role": role, "verified": verified}


async def remove_member(deps: Deps, actor: str, raw_cif: str, member_id: str) -> None:
    async with deps.transaction() as uow:
        cif = parse_company_id(raw_cif)
        if actor == member_id:
            await require_role(uow, actor, cif, direct_only=True, allow_unverified=True)  # anyone may leave
            actor_role = Role.OWNER.value
        else:
            actor_role = (await require_role(uow, actor, cif, domain.MANAGERS, direct_only=True)).role
        await repo.get_company(uow.session, cif, lock=True)
        current = await repo.direct_membership(uow.session, member_id, cif)
        if current is None:
            raise NotFound(f"User {member_id} is not a member of CIF {cif}.", code="member_not_found")
        current_role = current.role if current.verified else None
        if not domain.can_assign(actor_role, Role.MEMBER.value, current_role):
            raise Forbidden("Only an owner can remove an owner.", code="insufficient_role")
        if current_role == Role.OWNER:
            await _keep_one_owner(uow, cif, member_id)
        await repo.delete_member(uow.session, cif, member_id)
        await sync_access_of_firm(uow, cif)


async def _keep_one_owner(uow: SqlUnitOfWork, cif: str, leaving: str) -> None:
    owners = [u for u in await repo.verified_people(uow.session, cif, [Role.OWNER.value]) if u != leaving]
    if not owners:
        raise Conflict("A company needs at least one owner: make someone else owner first.", code="last_owner")


async def on_user_registered(ev: UserRegistered, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """Keep the account directory that lets owners add people by e-mail."""
    await repo.upsert_user(uow.session, ev.user_id, ev.email, ev.name, ev.email_verified)


async def on_email_verified(ev: EmailVerified, _env: CloudEvent, uow: SqlUnitOfWork, deps: Deps) -> None:
    """The person's e-mail is verified (or changed and confirmed): apply the proofs of control that waited."""
    await repo.set_email_verified(uow.session, ev.user_id, ev.email)
    for cif, via in await repo.take_pending_verifications(uow.session, ev.user_id):
        await verify_member(uow, deps, cif, ev.user_id, via)

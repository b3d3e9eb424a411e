"""Who may act for a company: the caller's grant on a CIF (direct membership, or accountant through an active
collaboration), and `portfolio.access-changed` published for every (user, CIF) whose effective access changed."""
from __future__ import annotations

from spvhub_common.access import insufficient_role, no_access, not_verified
from spvhub_common.events.portfolio import AccessChanged
from spvhub_common.uow import SqlUnitOfWork

from spvhub_portfolio import domain
from spvhub_portfolio.adapters import repository as repo


async def role_on(uow: SqlUnitOfWork, user_id: str, cif: str) -> domain.Grant | None:
    direct = await repo.direct_membership(uow.session, user_id, cif)
    firms = [] if direct else await repo.firms_of_user_with_active_collaboration(uow.session, user_id, cif)
    return domain.effective_grant(direct, firms)


async def require_role(uow: SqlUnitOfWork, user_id: str, cif: str, allowed: tuple[str, ...] | None = None,
                       *, direct_only: bool = False, allow_unverified: bool = False) -> domain.Grant:
    """The caller's grant on `cif` (direct membership, or accountant through an active collaboration), or 403.

    `allowed` restricts the roles; `direct_only` refuses firm users reaching a client (company administration);
    only a verified membership passes unless `allow_unverified`.
    """
    grant = await role_on(uow, user_id, cif)
    if grant is None or (direct_only and grant.via_firm_cif):
        raise no_access(cif)
    if not grant.verified and not allow_unverified:
        raise not_verified(cif)
    if allowed is not None and grant.role not in allowed:
        raise insufficient_role(cif, grant.role, tuple(allowed))
    return grant


async def sync_access(uow: SqlUnitOfWork, cifs: set[str] | list[str]) -> None:
    """Publish `portfolio.access-changed` for every (user, CIF) whose effective access differs from what
    portfolio last published: grants, role changes, verification and revokes, all explicit and idempotent."""
    for cif in sorted(set(cifs)):
        direct, via = await repo.desired_access(uow.session, cif)
        current = await repo.published_access(uow.session, cif)
        for user_id in sorted(set(direct) | set(via) | set(current)):
            want = domain.effective_grant(direct.get(user_id), via.get(user_id, []))
            have = current.get(user_id)
            if want is None and have is not None:
                await repo.delete_published(uow.session, user_id, cif)
                uow.publish(AccessChanged(cif=cif, user_id=user_id, role=have.role, granted=False,
                                          via_firm_cif=have.via_firm_cif, verified=bool(have.verified)))
            elif want is not None and (have is None or (have.role, have.via_firm_cif, have.verified, have.can_file)
                                       != (want.role, want.via_firm_cif, want.verified, want.can_file)):
                await repo.set_published(uow.session, user_id, cif, want.role, want.via_firm_cif, want.verified,
                                         want.can_file)
                uow.publish(AccessChanged(cif=cif, user_id=user_id, role=want.role, granted=True,
                                          via_firm_cif=want.via_firm_cif, verified=want.verified,
                                          can_file=want.can_file))


async def sync_access_of_firm(uow: SqlUnitOfWork, cif: str) -> None:
    """After a membership change: the company itself and every client it reaches as a firm."""
    await sync_access(uow, {cif, *await repo.active_client_cifs(uow.session, cif)})

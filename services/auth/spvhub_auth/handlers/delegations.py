"""Delegation links: a company's owner or administrator lets another person (an accountant, the certificate
holder) authorize the company with their own certificate, through a single-use, expiring, revocable link."""
from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from spvhub_common.errors import AppError, Forbidden, NotFound
from spvhub_common.pii import parse_company_id
from spvhub_common.security import Principal

from spvhub_auth.adapters import repository as repo
from spvhub_auth.handlers import throttle
from spvhub_auth.handlers.connections import (
    company_of_request,
    new_state,
    remember_cnp,
    require_manager,
    require_manager_soon,
)
from spvhub_auth.handlers.deps import SLOW_DOWN, Deps, sha256


def _delegation_view(d: repo.DelegationLink, now: datetime) -> dict[str, Any]:
    status = ("revoked" if d.revoked_at else "used" if d.used_at else "expired" if d.expires_at <= now else "open")
    return {"id": d.id, "company_cif": d.company_cif, "created_by": d.created_by, "created_at": d.created_at,
            "expires_at": d.expires_at, "status": status, "used_at": d.used_at, "used_by_name": d.used_by_name,
            "connection_id": d.connection_id, "revoked_at": d.revoked_at}


async def create_delegation(deps: Deps, principal: Principal, raw_cif: str) -> dict[str, Any]:
    """A single-use link (24 h, revocable) that lets another person authorize this company with their own
    certificate. Only its hash is stored; the token is returned once. A natural person is named by CNP or key."""
    cif, cnp = company_of_request(deps, raw_cif)
    now = deps.clock.now()
    token = secrets.token_urlsafe(32)
    did = str(uuid.uuid4())
    await require_manager_soon(deps, principal.user_id, cif)
    await remember_cnp(deps, cif, cnp)
    async with deps.uow() as uow:
        await repo.insert_delegation(uow.session, delegation_id=did, token_hash=sha256(token), cif=cif,
                                     created_by=principal.user_id, now=now,
                                     expires_at=now + timedelta(hours=deps.settings.delegation_ttl_hours))
        d = await repo.get_delegation(uow.session, did)
        assert d is not None
        await uow.commit()
    view = _delegation_view(d, now)
    view["token"] = token
    view["url"] = f"{deps.settings.public_base_url.rstrip('/')}/api/auth/anaf/delegations/open?token={token}"
    return view


async def list_delegations(deps: Deps, principal: Principal, raw_cif: str) -> list[dict[str, Any]]:
    cif = parse_company_id(raw_cif)
    async with deps.uow() as uow:
        await require_manager(uow, principal.user_id, cif)
        rows = await repo.delegations_of(uow.session, cif)
    now = deps.clock.now()
    return [_delegation_view(r, now) for r in rows]


async def revoke_delegation(deps: Deps, principal: Principal, delegation_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    async with deps.uow() as uow:
        d = await repo.get_delegation(uow.session, delegation_id)
        if d is None:
            raise NotFound("No such delegation link.", code="no_delegation")
        await require_manager(uow, principal.user_id, d.company_cif)
        if d.used_at is None and d.revoked_at is None:
            await repo.revoke_delegation(uow.session, d.id, now)
        fresh = await repo.get_delegation(uow.session, d.id)
        assert fresh is not None
        await uow.commit()
    return _delegation_view(fresh, now)


async def open_delegation(deps: Deps, *, token: str, name: str | None, principal: Principal | None,
                          client: str = "unknown") -> dict[str, Any]:
    """The delegate opens the link: start an authorization for the link's company with their own certificate.
    Rate limited per client address and per link (429 `rate_limited`), before the link is even looked up."""
    s = deps.settings
    await throttle.limit(deps.uow, deps.wall.now(), [
        (f"deleg-ip:{client}", s.delegation_open_ip_max, s.delegation_open_window_seconds),
        (f"deleg:{sha256(token or '')[:40]}", s.delegation_open_link_max, s.delegation_open_window_seconds)],
        message=SLOW_DOWN)
    now = deps.clock.now()
    async with deps.uow() as uow:
        d = await repo.delegation_by_token_hash(uow.session, sha256(token or ""))
        if d is None:
            raise NotFound("This delegation link is not valid.", code="delegation_link_invalid")
        if d.revoked_at is not None:
            raise AppError("This delegation link was revoked by the company. Ask for a new link.",
                           code="delegation_link_revoked", status=410)
        if d.used_at is not None:
            raise AppError("This delegation link was already used. Ask the company for a new link.",
                           code="delegation_link_used", status=410)
        if d.expires_at <= now:
            raise AppError("This delegation link expired (links are valid for 24 hours). Ask for a new link.",
                           code="delegation_link_expired", status=410)
        try:  # the connection will belong to the link's creator: they must still manage the company
            await require_manager(uow, d.created_by, d.company_cif)
        except Forbidden:
            raise AppError("This delegation link no longer works: the person who created it no longer manages the "
                           "company. Ask the company for a new link.", code="delegation_link_revoked", status=410,
                           details={"reason": "creator_no_longer_manager"}) from None
        holder = (principal.name if principal and principal.name else (name or "").strip()) or "delegate"
        state, expires_at = await new_state(deps, uow, user_id=d.created_by, cif=d.company_cif, holder_name=holder,
                                            delegation_id=d.id)
        await uow.commit()
    return {"company_cif": d.company_cif, "authorize_url": deps.anaf.authorize_url(state),
            "state_expires_at": expires_at, "delegation_expires_at": d.expires_at}

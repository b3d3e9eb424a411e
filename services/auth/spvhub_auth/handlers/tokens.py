"""Internal: current ANAF access tokens for the other services (efactura, etransport), refreshed first when
expired or after ANAF refused one, single-flight with the renewal job; every grant is recorded."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from spvhub_common.errors import AppError, Conflict, NotFound
from spvhub_common.pii import parse_company_id

from spvhub_auth import domain
from spvhub_auth.adapters import repository as repo
from spvhub_auth.handlers.deps import Deps
from spvhub_auth.handlers.renewal import renew_connection

SINGLE_FLIGHT_SECONDS = 30  # a refresh this recent (another caller's) is reused instead of refreshing again


async def _record_grant(deps: Deps, connection_id: str, caller: str, kind: str, outcome: str) -> None:
    async with deps.uow() as uow:
        await repo.record_token_grant(uow.session, connection_id=connection_id, caller=caller[:100], kind=kind,
                                      outcome=outcome, now=deps.clock.now())
        await uow.commit()


def _unusable(c: repo.Connection) -> AppError:
    msg = c.reauth_message or (f"The ANAF connection for company CIF {c.company_cif} was revoked; a person must "
                               f"authorize again." if c.state == domain.REVOKED else
                               f"The ANAF connection for company CIF {c.company_cif} needs a new authorization.")
    return Conflict(msg, code="reauthorization_required",
                    details={"connection_id": c.id, "company_cif": c.company_cif, "state": c.state,
                             "reason": c.reauth_reason or ("revoked" if c.state == domain.REVOKED else "unknown")})


async def _load(deps: Deps, connection_id: str) -> repo.Connection | None:
    async with deps.uow() as uow:
        return await repo.get_connection(uow.session, connection_id)


def _token_body(deps: Deps, c: repo.Connection) -> dict[str, Any]:
    assert c.access_token_enc is not None
    return {"connection_id": c.id, "access_token": deps.box.decrypt(bytes(c.access_token_enc),
                                                                    aad=f"anaf:{c.id}:access"),
            "expires_at": c.access_expires_at, "certificate_serial": c.certificate_serial,
            "company_cif": c.company_cif, "status": c.state}


async def _wait_out_renewal(deps: Deps, connection_id: str, wait_seconds: float = 20.0) -> repo.Connection:
    """Single flight: another runner is refreshing; wait for it instead of refreshing again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    c = await _load(deps, connection_id)
    while c is not None and c.state == domain.RENEWING and loop.time() < deadline:
        await asyncio.sleep(0.1)
        c = await _load(deps, connection_id)
    if c is None:
        raise NotFound("No ANAF connection with this id.", code="no_connection")
    return c


async def access_token_for(deps: Deps, connection_id: str, caller: str) -> dict[str, Any]:
    """`GET /internal/connections/{id}/access-token`: a current access token; refreshed first if expired."""
    c = await _load(deps, connection_id)
    if c is None:
        raise NotFound("No ANAF connection with this id.", code="no_connection")
    if c.state == domain.RENEWING:
        c = await _wait_out_renewal(deps, connection_id)
    if c.state in (domain.REAUTH, domain.REVOKED):
        await _record_grant(deps, c.id, caller, "access-token", c.state)
        raise _unusable(c)
    if c.access_expires_at <= deps.clock.now() + timedelta(seconds=60):
        await renew_connection(deps, c.id, force=True)
        c = await _wait_out_renewal(deps, connection_id)
        if c.state in (domain.REAUTH, domain.REVOKED) or c.access_expires_at <= deps.clock.now():
            await _record_grant(deps, c.id, caller, "access-token", "unavailable")
            if c.state in (domain.REAUTH, domain.REVOKED):
                raise _unusable(c)
            raise AppError("ANAF could not renew the expired access token right now; retry shortly.",
                           code="anaf_unavailable", status=503, details={"connection_id": c.id})
    await _record_grant(deps, c.id, caller, "access-token", "granted")
    return _token_body(deps, c)


async def access_token_for_cif(deps: Deps, raw_cif: str, caller: str) -> dict[str, Any]:
    """The best connection of a company itself (its own CIF): active first, then the most recently authorized."""
    cif = parse_company_id(raw_cif)
    async with deps.uow() as uow:
        rows = await repo.connections_for_cif(uow.session, cif)
    if not rows:
        raise NotFound(f"No ANAF connection for company CIF {cif}.", code="no_connection")
    rank = {domain.ACTIVE: 0, domain.EXPIRING: 0, domain.RENEWING: 1, domain.REAUTH: 2, domain.REVOKED: 3}
    best = sorted(rows, key=lambda r: rank.get(r.state, 9))[0]
    return await access_token_for(deps, best.id, caller)


async def refresh_for_caller(deps: Deps, connection_id: str, caller: str) -> dict[str, Any]:
    """`POST /internal/connections/{id}/refresh` after an ANAF 401/403: refresh once, single-flight. A refresh that
    completed within the last 30 seconds (another caller's) is reused instead of refreshing again."""
    c = await _load(deps, connection_id)
    if c is None:
        raise NotFound("No ANAF connection with this id.", code="no_connection")
    now = deps.clock.now()
    recent = c.last_refreshed_at is not None and now - c.last_refreshed_at < timedelta(seconds=SINGLE_FLIGHT_SECONDS)
    if c.state in domain.LIVE_STATES and not recent:
        await renew_connection(deps, c.id, force=True)
    c = await _wait_out_renewal(deps, connection_id)
    if c.state in (domain.REAUTH, domain.REVOKED):
        await _record_grant(deps, c.id, caller, "refresh", c.state)
        raise _unusable(c)
    if c.state == domain.RENEWING or (c.last_error and c.renew_attempts > 0):
        await _record_grant(deps, c.id, caller, "refresh", "retry_later")
        raise AppError("ANAF could not renew the access token right now; retry shortly.", code="anaf_unavailable",
                       status=503, details={"connection_id": c.id})
    await _record_grant(deps, c.id, caller, "refresh", "granted")
    return _token_body(deps, c)


async def token_grants(deps: Deps, connection_id: str) -> list[dict[str, Any]]:
    async with deps.uow() as uow:
        rows = await repo.token_grants(uow.session, connection_id)
    return [{"caller_service": r.caller_service, "kind": r.kind, "outcome": r.outcome, "at": r.granted_at}
            for r in rows]

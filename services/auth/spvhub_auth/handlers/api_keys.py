"""API keys for machine clients (an ERP, an invoicing front end): created by a person who manages the companies,
shown once, stored as a SHA-256 hash, scoped to companies and permissions, optionally expiring, revocable at once.

Other services resolve a key on every request through `POST /internal/api-keys/introspect` (no cache, so a
revocation takes effect on the next request); that call also counts the use: the per-key rate limit, the last use
and a row in `api_key_usage` (request id, service, method, path, outcome). No key ever reaches a log.
"""
from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from spvhub_common.access import MANAGERS, Grant, grant_of, insufficient_role, no_access, not_verified
from spvhub_common.errors import AppError, Forbidden, NotFound, TooManyRequests, Unauthorized
from spvhub_common.logging import get_logger
from spvhub_common.pii import parse_company_id
from spvhub_common.security import API_KEY_PREFIX, KEY_PERMISSIONS, Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_auth.adapters import repository as repo
from spvhub_auth.adapters.orm import access_grants
from spvhub_auth.handlers.deps import Deps, sha256

log = get_logger(__name__)


def _status(row: repo.ApiKey, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _view(row: repo.ApiKey, now: datetime) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_by": row.created_by,
            "companies": list(row.companies), "permissions": list(row.permissions), "status": _status(row, now),
            "created_at": row.created_at, "expires_at": row.expires_at, "revoked_at": row.revoked_at,
            "last_used_at": row.last_used_at, "last_used_request_id": row.last_used_request_id,
            "use_count": int(row.use_count)}


def _human(principal: Principal) -> None:
    if principal.is_api_key:  # keys never manage keys (the gateway-level table refuses it too)
        raise Forbidden("API keys cannot manage API keys; sign in as a person.", code="api_key_not_allowed",
                        messages={"ro": "Cheile API nu pot administra chei API; autentificați-vă ca persoană."})


async def _may_manage(uow: SqlUnitOfWork, user_id: str, cif: str) -> Grant:
    """The creator's verified grant on `cif` when they manage it: a direct owner/admin, or an owner/admin of the
    accounting firm that reaches it through an active collaboration. Otherwise 403 with the access model's code."""
    g = await grant_of(uow.session, access_grants, user_id, cif)
    if g is None:
        raise no_access(cif)
    if not g.verified:
        raise not_verified(cif)
    if g.direct:
        if g.role not in MANAGERS:
            raise insufficient_role(cif, g.role, MANAGERS)
        return g
    firm = await grant_of(uow.session, access_grants, user_id, g.via_firm_cif or "")
    if firm is None or not firm.direct or not firm.verified or firm.role not in MANAGERS:
        raise insufficient_role(cif, g.role, MANAGERS)
    return g


async def _visible_key(uow: SqlUnitOfWork, principal: Principal, key_id: str) -> repo.ApiKey:
    """The key when the caller created it or manages one of its companies (they see and may revoke it)."""
    managed = await repo.managed_cifs(uow.session, principal.user_id)
    row = await repo.visible_key(uow.session, principal.user_id, managed, key_id)
    if row is None:  # someone else's key answers like a missing one
        raise NotFound("No such API key.", code="api_key_not_found", messages={"ro": "Cheia API nu există."})
    return row


async def create_key(deps: Deps, principal: Principal, *, name: str, companies: list[str], permissions: list[str],
                     expires_at: datetime | None) -> dict[str, Any]:
    _human(principal)
    now = deps.wall.now()
    cifs = sorted({deps.pii.company_key(c) for c in companies})
    perms = sorted(set(permissions), key=KEY_PERMISSIONS.index)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise AppError("expires_at needs a time zone (e.g. 2027-01-31T00:00:00Z).", code="invalid_expiry",
                           status=422,
                           messages={"ro": "expires_at trebuie să aibă fus orar (ex. 2027-01-31T00:00:00Z)."})
        if expires_at <= now or expires_at > now + timedelta(days=deps.settings.api_key_max_days):
            raise AppError(f"expires_at must be in the future and at most {deps.settings.api_key_max_days} days "
                           "ahead.", code="invalid_expiry", status=422,
                           details={"max_days": deps.settings.api_key_max_days},
                           messages={"ro": "expires_at trebuie să fie în viitor și la cel mult "
                                           f"{deps.settings.api_key_max_days} de zile."})
    key_id = uuid.uuid4().hex
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    async with deps.uow() as uow:
        for cif in cifs:
            g = await _may_manage(uow, principal.user_id, cif)
            if "file" in perms and not g.can_file:
                raise Forbidden(
                    f"You may not file in the name of CIF {cif}, so a key cannot either.",
                    code="filing_not_allowed", details={"cif": cif},
                    messages={"ro": f"Nu puteți transmite documente în numele CIF {cif}, deci nici o cheie API."})
        await repo.insert_api_key(uow.session, key_id=key_id, key_hash=sha256(key), prefix=key[:12],
                                  name=name.strip() or "API key", created_by=principal.user_id, companies=cifs,
                                  permissions=perms, now=now, expires_at=expires_at)
        row = await repo.get_api_key(uow.session, key_id)
        assert row is not None
        await uow.commit()
    log.info("api key created", key_id=key_id, created_by=principal.user_id, companies=cifs, permissions=perms)
    return {**_view(row, now), "key": key}


async def list_keys(deps: Deps, principal: Principal, company_cif: str | None) -> list[dict[str, Any]]:
    """The caller's keys and the keys on companies they manage directly (never the secret)."""
    _human(principal)
    now = deps.wall.now()
    async with deps.uow() as uow:
        managed = await repo.managed_cifs(uow.session, principal.user_id)
        rows = await repo.visible_keys(uow.session, principal.user_id, managed,
                                       parse_company_id(company_cif) if company_cif else None)
    return [_view(r, now) for r in rows]


async def revoke_key(deps: Deps, principal: Principal, key_id: str) -> dict[str, Any]:
    """The creator, or a verified owner/admin of one of the key's companies, revokes it; idempotent."""
    _human(principal)
    now = deps.wall.now()
    async with deps.uow() as uow:
        await _visible_key(uow, principal, key_id)
        await repo.revoke_api_key(uow.session, key_id, now, principal.user_id)
        row = await repo.get_api_key(uow.session, key_id)
        assert row is not None
        await uow.commit()
    log.info("api key revoked", key_id=key_id, revoked_by=principal.user_id)
    return _view(row, now)


async def key_usage(deps: Deps, principal: Principal, key_id: str, limit: int,
                    cursor: str | None) -> dict[str, Any]:
    """Every use of the key, newest first, a page at a time."""
    _human(principal)
    before: int | None = None
    if cursor:
        try:
            before = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
        except ValueError:
            raise AppError("The cursor is not valid.", code="invalid_cursor", status=422,
                           messages={"ro": "Cursorul nu este valid."}) from None
    async with deps.uow() as uow:
        await _visible_key(uow, principal, key_id)
        rows = await repo.key_uses(uow.session, key_id, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = base64.urlsafe_b64encode(str(rows[-1].id).encode()).decode().rstrip("=") if more else None
    return {"items": [{"at": r.at, "service": r.service, "method": r.method, "path": r.path,
                       "request_id": r.request_id, "client": r.client, "outcome": r.outcome} for r in rows],
            "next_cursor": nxt}


async def introspect(deps: Deps, caller: str, *, key: str, method: str, path: str, request_id: str | None,
                     client: str | None) -> dict[str, Any]:
    """What a presented key is, for the service `caller`; counts the use. 401 invalid/revoked/expired, 429 over
    the per-key limit (with `retry_after_seconds`)."""
    s = deps.settings
    now = deps.wall.now()
    if not key.startswith(API_KEY_PREFIX):
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    refusal: AppError | None = None
    async with deps.uow() as uow:
        row = await repo.api_key_by_hash(uow.session, sha256(key))
        if row is None:
            raise Unauthorized("The API key is not valid.", code="invalid_api_key")
        user = await repo.get_user(uow.session, row.created_by)
        outcome = "ok"
        if row.revoked_at is not None:
            outcome, refusal = "revoked", Unauthorized("The API key was revoked.", code="api_key_revoked")
        elif row.expires_at is not None and row.expires_at <= now:
            outcome, refusal = "expired", Unauthorized("The API key has expired.", code="api_key_expired")
        elif user is None:
            outcome, refusal = "invalid", Unauthorized("The API key is not valid.", code="invalid_api_key")
        else:
            window_start, count = await repo.count_key_request(uow.session, row.id, now,
                                                               s.api_key_rate_window_seconds)
            if count > s.api_key_rate_limit:
                window = timedelta(seconds=s.api_key_rate_window_seconds)
                retry = max((window_start + window - now).total_seconds(), 1.0)
                outcome = "rate_limited"
                refusal = TooManyRequests("Too many requests with this API key; retry later.",
                                          code="api_key_rate_limited",
                                          details={"retry_after_seconds": int(retry + 0.999),
                                                   "limit": s.api_key_rate_limit,
                                                   "window_seconds": s.api_key_rate_window_seconds})
            else:
                await repo.note_key_used(uow.session, row.id, now, request_id)
        await repo.insert_key_use(uow.session, key_id=row.id, outcome=outcome, at=now, service=caller[:100],
                                  method=method[:16].upper(), path=path.split("?", 1)[0][:1000],
                                  request_id=request_id, client=client)
        await uow.commit()
    if refusal is not None:
        log.info("api key refused", key_id=row.id, outcome=outcome, service=caller)
        raise refusal
    assert user is not None
    return {"key_id": row.id, "user_id": user.id, "email": user.email, "name": user.name, "locale": user.locale,
            "companies": list(row.companies), "permissions": list(row.permissions)}


async def purge_usage(uow: SqlUnitOfWork, now: datetime, keep_days: int) -> int:
    """Forget uses older than `keep_days` (the keys themselves, with their counters and last use, stay)."""
    return await repo.purge_key_usage(uow.session, now - timedelta(days=keep_days))

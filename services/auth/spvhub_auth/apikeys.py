"""API keys for machine clients (an ERP, an invoicing front end): created by a person who manages the companies,
shown once, stored as a SHA-256 hash, scoped to companies and permissions, optionally expiring, revocable at once.

Other services resolve a key on every request through `POST /internal/api-keys/introspect` (no cache, so a
revocation takes effect on the next request); that call also counts the use: the per-key rate limit, the last use
and a row in `api_key_usage` (request id, service, method, path, outcome). No key ever reaches a log.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from spvhub_common.access import MANAGERS, grant_of, insufficient_role, no_access, not_verified
from spvhub_common.anaf.models import normalize_cif
from spvhub_common.errors import AppError, Forbidden, NotFound, TooManyRequests, Unauthorized
from spvhub_common.logging import get_logger
from spvhub_common.security import API_KEY_PREFIX, KEY_PERMISSIONS, CurrentUser, Principal, ServiceCaller
from sqlalchemy import case, insert, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.sql.expression import cast

from spvhub_auth.adapters.orm import access_grants, api_key_usage, api_keys, users
from spvhub_auth.handlers import Deps

log = get_logger(__name__)

router = APIRouter(prefix="/api-keys", tags=["api keys"])
internal = APIRouter(prefix="/api-keys", tags=["internal"])
Permission = Literal["read", "sync", "file", "invitations"]
MAX_COMPANIES = 200


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


D = Annotated[Deps, Depends(_deps)]


# --- schemas -------------------------------------------------------------------------------------

class CreateKey(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="what the key is for, e.g. 'ERP production'")
    companies: list[str] = Field(min_length=1, max_length=MAX_COMPANIES,
                                 description="CIFs the key may act on; the creator must manage each one")
    permissions: list[Permission] = Field(min_length=1, description="read, sync, file (invoices), invitations")
    expires_at: datetime | None = Field(None, description="optional; at most api_key_max_days ahead")


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the key's first characters, to recognize it; never the key")
    created_by: str
    companies: list[str]
    permissions: list[str]
    status: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    last_used_request_id: str | None = None
    use_count: int


class CreatedKey(KeyOut):
    key: str = Field(description="the secret, shown this once: send it as `Authorization: Bearer spvk_...`")


class KeyList(BaseModel):
    items: list[KeyOut]


class UsageOut(BaseModel):
    at: datetime
    service: str
    method: str
    path: str
    request_id: str | None = None
    client: str | None = None
    outcome: str


class UsagePage(BaseModel):
    items: list[UsageOut]
    next_cursor: str | None = None


class Introspect(BaseModel):
    key: str = Field(max_length=200)
    method: str = Field("GET", max_length=16)
    path: str = Field("", max_length=2000)
    request_id: str | None = Field(None, max_length=128)
    client: str | None = Field(None, max_length=64)


class IntrospectOut(BaseModel):
    key_id: str
    user_id: str
    email: str
    name: str
    locale: str
    companies: list[str]
    permissions: list[str]


# --- helpers -------------------------------------------------------------------------------------

def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _status(row: Any, now: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _view(row: Any, now: datetime) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "prefix": row.prefix, "created_by": row.created_by,
            "companies": list(row.companies), "permissions": list(row.permissions), "status": _status(row, now),
            "created_at": row.created_at, "expires_at": row.expires_at, "revoked_at": row.revoked_at,
            "last_used_at": row.last_used_at, "last_used_request_id": row.last_used_request_id,
            "use_count": int(row.use_count)}


def _cif(raw: str) -> str:
    cif = normalize_cif(raw)
    if not cif.isdigit() or not 2 <= len(cif) <= 13:
        raise AppError(f"{raw!r} is not a CIF.", code="invalid_cif", status=422, details={"cif": raw},
                       messages={"ro": f"{raw!r} nu este un CIF."})
    return cif


def _human(principal: Principal) -> None:
    if principal.is_api_key:  # keys never manage keys (the gateway-level table refuses it too)
        raise Forbidden("API keys cannot manage API keys; sign in as a person.", code="api_key_not_allowed",
                        messages={"ro": "Cheile API nu pot administra chei API; autentificați-vă ca persoană."})


async def _may_manage(session: Any, user_id: str, cif: str) -> Any:
    """The creator's verified grant on `cif` when they manage it: a direct owner/admin, or an owner/admin of the
    accounting firm that reaches it through an active collaboration. Otherwise 403 with the access model's code."""
    g = await grant_of(session, access_grants, user_id, cif)
    if g is None:
        raise no_access(cif)
    if not g.verified:
        raise not_verified(cif)
    if g.direct:
        if g.role not in MANAGERS:
            raise insufficient_role(cif, g.role, MANAGERS)
        return g
    firm = await grant_of(session, access_grants, user_id, g.via_firm_cif or "")
    if firm is None or not firm.direct or not firm.verified or firm.role not in MANAGERS:
        raise insufficient_role(cif, g.role, MANAGERS)
    return g


async def _managed_cifs(session: Any, user_id: str) -> list[str]:
    """CIFs the user manages directly (verified owner/admin): they see and may revoke every key on them."""
    rows = await session.execute(select(access_grants.c.cif).where(
        access_grants.c.user_id == user_id, access_grants.c.verified.is_(True),
        access_grants.c.via_firm_cif.is_(None), access_grants.c.role.in_(MANAGERS)))
    return [r[0] for r in rows]


def _visible_to(user_id: str, managed: list[str]) -> Any:
    cond = api_keys.c.created_by == user_id
    if managed:
        cond = or_(cond, api_keys.c.companies.op("?|")(array(managed)))
    return cond


# --- use cases -----------------------------------------------------------------------------------

async def create_key(deps: Deps, principal: Principal, body: CreateKey) -> dict[str, Any]:
    _human(principal)
    now = deps.wall.now()
    companies = sorted({_cif(c) for c in body.companies})
    permissions = sorted(set(body.permissions), key=KEY_PERMISSIONS.index)
    if body.expires_at is not None:
        exp = body.expires_at
        if exp.tzinfo is None:
            raise AppError("expires_at needs a time zone (e.g. 2027-01-31T00:00:00Z).", code="invalid_expiry",
                           status=422,
                           messages={"ro": "expires_at trebuie să aibă fus orar (ex. 2027-01-31T00:00:00Z)."})
        if exp <= now or exp > now + timedelta(days=deps.settings.api_key_max_days):
            raise AppError(f"expires_at must be in the future and at most {deps.settings.api_key_max_days} days "
                           "ahead.", code="invalid_expiry", status=422,
                           details={"max_days": deps.settings.api_key_max_days},
                           messages={"ro": "expires_at trebuie să fie în viitor și la cel mult "
                                           f"{deps.settings.api_key_max_days} de zile."})
    key_id = uuid.uuid4().hex
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    async with deps.uow() as uow:
        for cif in companies:
            g = await _may_manage(uow.session, principal.user_id, cif)
            if "file" in permissions and not g.can_file:
                raise Forbidden(
                    f"You may not file in the name of CIF {cif}, so a key cannot either.",
                    code="filing_not_allowed", details={"cif": cif},
                    messages={"ro": f"Nu puteți transmite documente în numele CIF {cif}, deci nici o cheie API."})
        await uow.session.execute(insert(api_keys).values(
            id=key_id, key_hash=_hash(key), prefix=key[:12], name=body.name.strip() or "API key",
            created_by=principal.user_id, companies=companies, permissions=permissions, created_at=now,
            expires_at=body.expires_at))
        row = (await uow.session.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
        await uow.commit()
    log.info("api key created", key_id=key_id, created_by=principal.user_id, companies=companies,
             permissions=permissions)
    return {**_view(row, now), "key": key}


async def list_keys(deps: Deps, principal: Principal, company_cif: str | None) -> list[dict[str, Any]]:
    _human(principal)
    now = deps.wall.now()
    async with deps.uow() as uow:
        managed = await _managed_cifs(uow.session, principal.user_id)
        q = select(api_keys).where(_visible_to(principal.user_id, managed))
        if company_cif:
            q = q.where(api_keys.c.companies.contains(cast([_cif(company_cif)], JSONB)))
        rows = (await uow.session.execute(q.order_by(api_keys.c.created_at.desc(), api_keys.c.id))).all()
    return [_view(r, now) for r in rows]


async def _visible_key(uow: Any, principal: Principal, key_id: str) -> Any:
    managed = await _managed_cifs(uow.session, principal.user_id)
    row = (await uow.session.execute(select(api_keys).where(
        api_keys.c.id == key_id, _visible_to(principal.user_id, managed)))).first()
    if row is None:  # someone else's key answers like a missing one
        raise NotFound("No such API key.", code="api_key_not_found", messages={"ro": "Cheia API nu există."})
    return row


async def revoke_key(deps: Deps, principal: Principal, key_id: str) -> dict[str, Any]:
    """The creator, or a verified owner/admin of one of the key's companies, revokes it; idempotent."""
    _human(principal)
    now = deps.wall.now()
    async with deps.uow() as uow:
        await _visible_key(uow, principal, key_id)
        await uow.session.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                                  .values(revoked_at=now, revoked_by=principal.user_id))
        row = (await uow.session.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
        await uow.commit()
    log.info("api key revoked", key_id=key_id, revoked_by=principal.user_id)
    return _view(row, now)


async def key_usage(deps: Deps, principal: Principal, key_id: str, limit: int,
                    cursor: str | None) -> dict[str, Any]:
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
        q = select(api_key_usage).where(api_key_usage.c.key_id == key_id)
        if before is not None:
            q = q.where(api_key_usage.c.id < before)
        rows = (await uow.session.execute(q.order_by(api_key_usage.c.id.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = base64.urlsafe_b64encode(str(rows[-1].id).encode()).decode().rstrip("=") if more else None
    return {"items": [{"at": r.at, "service": r.service, "method": r.method, "path": r.path,
                       "request_id": r.request_id, "client": r.client, "outcome": r.outcome} for r in rows],
            "next_cursor": nxt}


async def introspect(deps: Deps, caller: str, body: Introspect) -> dict[str, Any]:
    """What a presented key is, for the service `caller`; counts the use. 401 invalid/revoked/expired, 429 over
    the per-key limit (with `retry_after_seconds`)."""
    s = deps.settings
    now = deps.wall.now()
    if not body.key.startswith(API_KEY_PREFIX):
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")
    usage = {"service": caller[:100], "method": body.method[:16].upper(), "path": body.path.split("?", 1)[0][:1000],
             "request_id": body.request_id, "client": body.client, "at": now}
    refusal: AppError | None = None
    async with deps.uow() as uow:
        row = (await uow.session.execute(select(api_keys).where(api_keys.c.key_hash == _hash(body.key)))).first()
        if row is None:
            raise Unauthorized("The API key is not valid.", code="invalid_api_key")
        user = (await uow.session.execute(select(users.c.id, users.c.email, users.c.name, users.c.locale)
                                          .where(users.c.id == row.created_by))).first()
        outcome = "ok"
        if row.revoked_at is not None:
            outcome, refusal = "revoked", Unauthorized("The API key was revoked.", code="api_key_revoked")
        elif row.expires_at is not None and row.expires_at <= now:
            outcome, refusal = "expired", Unauthorized("The API key has expired.", code="api_key_expired")
        elif user is None:
            outcome, refusal = "invalid", Unauthorized("The API key is not valid.", code="invalid_api_key")
        else:
            window = timedelta(seconds=s.api_key_rate_window_seconds)
            fresh = or_(api_keys.c.rate_window_start.is_(None), api_keys.c.rate_window_start <= now - window)
            counted = (await uow.session.execute(
                update(api_keys).where(api_keys.c.id == row.id).values(
                    rate_window_start=case((fresh, now), else_=api_keys.c.rate_window_start),
                    rate_count=case((fresh, 1), else_=api_keys.c.rate_count + 1))
                .returning(api_keys.c.rate_window_start, api_keys.c.rate_count))).one()
            if counted.rate_count > s.api_key_rate_limit:
                retry = max((counted.rate_window_start + window - now).total_seconds(), 1.0)
                outcome = "rate_limited"
                refusal = TooManyRequests("Too many requests with this API key; retry later.",
                                          code="api_key_rate_limited",
                                          details={"retry_after_seconds": int(retry + 0.999),
                                                   "limit": s.api_key_rate_limit,
                                                   "window_seconds": s.api_key_rate_window_seconds})
            else:
                await uow.session.execute(update(api_keys).where(api_keys.c.id == row.id).values(
                    last_used_at=now, last_used_request_id=body.request_id, use_count=api_keys.c.use_count + 1))
        await uow.session.execute(insert(api_key_usage).values(key_id=row.id, outcome=outcome, **usage))
        await uow.commit()
    if refusal is not None:
        log.info("api key refused", key_id=row.id, outcome=outcome, service=caller)
        raise refusal
    assert user is not None
    return {"key_id": row.id, "user_id": user.id, "email": user.email, "name": user.name, "locale": user.locale,
            "companies": list(row.companies), "permissions": list(row.permissions)}


async def purge_usage(uow: Any, now: datetime, keep_days: int) -> int:
    """Forget uses older than `keep_days` (the keys themselves, with their counters and last use, stay)."""
    res = await uow.session.execute(api_key_usage.delete().where(api_key_usage.c.at < now - timedelta(days=keep_days)))
    return int(res.rowcount or 0)


# --- routes --------------------------------------------------------------------------------------

@router.post("", status_code=201, response_model=CreatedKey,
             summary="Create an API key (shown once) for companies you manage")
async def create(body: CreateKey, user: CurrentUser, d: D) -> dict[str, Any]:
    return await create_key(d, user, body)


@router.get("", response_model=KeyList, summary="Your keys and the keys on companies you manage (never the secret)")
async def list_(user: CurrentUser, d: D, company_cif: str | None = Query(None, max_length=20)) -> dict[str, Any]:
    return {"items": await list_keys(d, user, company_cif)}


@router.post("/{key_id}/revoke", response_model=KeyOut, summary="Revoke a key; the next request with it gets 401")
async def revoke(key_id: str, user: CurrentUser, d: D) -> dict[str, Any]:
    return await revoke_key(d, user, key_id[:64])


@router.get("/{key_id}/usage", response_model=UsagePage, summary="Every use of the key, newest first")
async def usage(key_id: str, user: CurrentUser, d: D, limit: int = Query(50, ge=1, le=500),
                cursor: str | None = Query(None, max_length=100)) -> dict[str, Any]:
    return await key_usage(d, user, key_id[:64], limit, cursor)


@internal.post("/introspect", response_model=IntrospectOut,
               summary="Resolve an API key for a service and count its use")
async def introspect_route(body: Introspect, caller: ServiceCaller, d: D) -> dict[str, Any]:
    return await introspect(d, caller, body)

"""SQL of the auth service: accounts and their sessions, the e-mailed account links, throttle counters, ANAF
connections with their OAuth states, delegation links and token grants, API keys and their usage log.

Every function takes the unit of work's session and returns small typed records (never the raw rows), so the
handlers read as use cases and never build a statement themselves.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from spvhub_common.access import MANAGERS
from sqlalchemy import and_, case, cast, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_auth import domain
from spvhub_auth.adapters.orm import (
    access_grants,
    access_token_grants,
    account_tokens,
    anaf_connections,
    api_key_usage,
    api_keys,
    delegation_links,
    login_throttle,
    oauth_states,
    person_ids,
    refresh_tokens,
    users,
)

R = TypeVar("R")


def _record(cls: type[R], row: Any) -> R:
    """The record `cls` from a result row (the row may hold more columns than the record names)."""
    m = row._mapping
    return cls(**{f.name: m[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def _maybe(cls: type[R], row: Any) -> R | None:
    return None if row is None else _record(cls, row)


# ================================================================================================
# Records
# ================================================================================================

@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    locale: str
    password_hash: str
    email_verified_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: str
    family_id: str
    user_id: str
    token_hash: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenSession:
    """One refresh-token family, as the session list shows it (its latest token's user agent and address)."""

    family_id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    client_address: str | None


@dataclass(frozen=True, slots=True)
class AccountToken:
    id: str
    user_id: str
    purpose: str
    email: str
    nonce: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class ThrottleCounter:
    key: str
    window_start: datetime
    failures: int


@dataclass(frozen=True, slots=True)
class Connection:
    id: str
    company_cif: str
    user_id: str
    holder_name: str
    certificate_serial: str
    services: list[str]
    state: str
    state_before_renewal: str | None
    delegation_id: str | None
    authorized_at: datetime
    access_issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    family_expires_at: datetime | None
    must_act_by: datetime
    next_renewal_at: datetime
    last_refreshed_at: datetime | None
    access_token_enc: bytes | None
    refresh_token_enc: bytes | None
    lease_until: datetime | None
    renew_attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    warnings_sent: list[int]
    reauth_reason: str | None
    reauth_message: str | None
    revoked_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Deadline:
    id: str
    company_cif: str
    must_act_by: datetime | None
    state: str


@dataclass(frozen=True, slots=True)
class OAuthState:
    id: str
    user_id: str
    company_cif: str
    delegation_id: str | None
    holder_name: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DelegationLink:
    id: str
    company_cif: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by_name: str | None
    connection_id: str | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenGrant:
    caller_service: str
    kind: str
    outcome: str
    granted_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_by: str
    companies: list[str]
    permissions: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_request_id: str | None
    use_count: int


@dataclass(frozen=True, slots=True)
class KeyUse:
    id: int
    at: datetime
    service: str
    method: str
    path: str
    request_id: str | None
    client: str | None
    outcome: str


# ================================================================================================
# Accounts
# ================================================================================================

async def get_user(session: AsyncSession, user_id: str, *, for_update: bool = False) -> User | None:
    q = select(users).where(users.c.id == user_id)
    if for_update:
        q = q.with_for_update()
    return _maybe(User, (await session.execute(q)).first())


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return _maybe(User, (await session.execute(select(users).where(users.c.email == email))).first())


async def email_taken(session: AsyncSession, email: str, *, except_user: str | None = None) -> bool:
    q = select(users.c.id).where(users.c.email == email)
    if except_user is not None:
        q = q.where(users.c.id != except_user)
    return (await session.execute(q)).first() is not None


async def locale_of(session: AsyncSession, user_id: str) -> str:
    loc = (await session.execute(select(users.c.locale).where(users.c.id == user_id))).scalar()
    return str(loc or "ro")


async def insert_user(session: AsyncSession, *, user_id: str, email: str, name: str, locale: str,
                      password_hash: str, now: datetime) -> None:
    await session.execute(insert(users).values(id=user_id, email=email, name=name, locale=locale,
                                               password_hash=password_hash, created_at=now, updated_at=now))


async def update_user(session: AsyncSession, user_id: str, **values: Any) -> None:
    await session.execute(update(users).where(users.c.id == user_id).values(**values))


async def set_email_verified(session: AsyncSession, user_id: str, email: str, now: datetime) -> None:
    await update_user(session, user_id, email=email, email_verified_at=now, updated_at=now)


# ================================================================================================
# Sessions (refresh-token families)
# ================================================================================================

async def add_refresh_token(session: AsyncSession, *, token_id: str, family_id: str, user_id: str,
                            token_hash: str, issued_at: datetime, expires_at: datetime, user_agent: str | None,
                            client_address: str | None) -> None:
    await session.execute(insert(refresh_tokens).values(
        id=token_id, family_id=family_id, user_id=user_id, token_hash=token_hash, issued_at=issued_at,
        expires_at=expires_at, user_agent=user_agent, client_address=client_address))


async def refresh_token(session: AsyncSession, token_id: str, *, for_update: bool = False) -> RefreshToken | None:
    q = select(refresh_tokens).where(refresh_tokens.c.id == token_id)
    if for_update:
        q = q.with_for_update()
    return _maybe(RefreshToken, (await session.execute(q)).first())


async def mark_refresh_used(session: AsyncSession, token_id: str, now: datetime) -> None:
    await session.execute(update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(used_at=now))


async def revoke_family(session: AsyncSession, family_id: str, now: datetime) -> None:
    await session.execute(update(refresh_tokens).where(
        refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=now))


async def revoke_user_family(session: AsyncSession, user_id: str, family_id: str, now: datetime) -> int:
    """Revoke one open family of `user_id`; returns how many tokens it ended (0: no such open session)."""
    res = await session.execute(update(refresh_tokens).where(
        refresh_tokens.c.user_id == user_id, refresh_tokens.c.family_id == family_id,
        refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_sessions(session: AsyncSession, user_id: str, now: datetime,
                          keep_family: str | None = None) -> int:
    """End every open session of the user (but `keep_family`); returns how many sessions ended."""
    q = update(refresh_tokens).where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
    if keep_family:
        q = q.where(refresh_tokens.c.family_id != keep_family)
    families = (await session.execute(q.values(revoked_at=now).returning(refresh_tokens.c.family_id))).all()
    return len({f[0] for f in families})


async def open_sessions(session: AsyncSession, user_id: str, now: datetime) -> list[OpenSession]:
    """The user's unrevoked, unexpired families, newest use first (a family may repeat when two of its tokens
    share the latest issue time; the caller keeps the first)."""
    rt = refresh_tokens
    latest = (select(rt.c.family_id, func.min(rt.c.issued_at).label("created_at"),
                     func.max(rt.c.issued_at).label("last_used_at"), func.max(rt.c.expires_at).label("expires_at"))
              .where(rt.c.user_id == user_id).group_by(rt.c.family_id)
              .having(func.bool_and(rt.c.revoked_at.is_(None))).subquery())
    rows = (await session.execute(
        select(latest, rt.c.user_agent, rt.c.client_address)
        .join(rt, (rt.c.family_id == latest.c.family_id) & (rt.c.issued_at == latest.c.last_used_at))
        .where(latest.c.expires_at > now).order_by(latest.c.last_used_at.desc()))).all()
    return [_record(OpenSession, r) for r in rows]


# ================================================================================================
# Account links (verification, change of address, password reset)
# ================================================================================================

async def revoke_open_links(session: AsyncSession, user_id: str, purposes: Iterable[str], now: datetime, *,
                            except_id: str | None = None) -> None:
    q = update(account_tokens).where(
        account_tokens.c.user_id == user_id, account_tokens.c.purpose.in_(list(purposes)),
        account_tokens.c.used_at.is_(None), account_tokens.c.revoked_at.is_(None))
    if except_id is not None:
        q = q.where(account_tokens.c.id != except_id)
    await session.execute(q.values(revoked_at=now))


async def insert_account_token(session: AsyncSession, *, token_id: str, user_id: str, purpose: str, email: str,
                               nonce: str, token_hash: str, now: datetime, expires_at: datetime) -> None:
    await session.execute(insert(account_tokens).values(
        id=token_id, user_id=user_id, purpose=purpose, email=email, nonce=nonce, token_hash=token_hash,
        created_at=now, expires_at=expires_at))


async def account_token(session: AsyncSession, token_id: str) -> AccountToken | None:
    return _maybe(AccountToken, (await session.execute(
        select(account_tokens).where(account_tokens.c.id == token_id))).first())


async def account_token_by_hash(session: AsyncSession, token_hash: str) -> AccountToken | None:
    """The link row (locked: it is about to be spent)."""
    return _maybe(AccountToken, (await session.execute(select(account_tokens).where(
        account_tokens.c.token_hash == token_hash).with_for_update())).first())


async def mark_link_used(session: AsyncSession, token_id: str, now: datetime) -> None:
    await session.execute(update(account_tokens).where(account_tokens.c.id == token_id).values(used_at=now))


# ================================================================================================
# Throttle counters
# ================================================================================================

async def throttle_hit(session: AsyncSession, key: str, now: datetime, window_seconds: int) -> tuple[int, datetime]:
    """Count one event for `key` in its current window (one atomic upsert); returns (count so far, window start)."""
    window = timedelta(seconds=window_seconds)
    expired = login_throttle.c.window_start <= now - window
    stmt = pg_insert(login_throttle).values(key=key[:200], window_start=now, failures=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={"window_start": case((expired, now), else_=login_throttle.c.window_start),
              "failures": case((expired, 1), else_=login_throttle.c.failures + 1)},
    ).returning(login_throttle.c.failures, login_throttle.c.window_start)
    row = (await session.execute(upsert)).one()
    return int(row.failures), row.window_start


async def throttle_counter(session: AsyncSession, key: str, *, for_update: bool = False) -> ThrottleCounter | None:
    q = select(login_throttle).where(login_throttle.c.key == key[:200])
    if for_update:
        q = q.with_for_update()
    return _maybe(ThrottleCounter, (await session.execute(q)).first())


async def throttle_set(session: AsyncSession, key: str, failures: int, window_start: datetime) -> None:
    stmt = pg_insert(login_throttle).values(key=key, failures=failures, window_start=window_start)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["key"], set_={"failures": failures, "window_start": window_start}))


async def throttle_clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(login_throttle).where(login_throttle.c.key == key))


async def throttle_purge(session: AsyncSession, before: datetime) -> int:
    res = await session.execute(delete(login_throttle).where(login_throttle.c.window_start < before))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


# ================================================================================================
# ANAF connections
# ================================================================================================

async def get_connection(session: AsyncSession, connection_id: str) -> Connection | None:
    return _maybe(Connection, (await session.execute(
        select(anaf_connections).where(anaf_connections.c.id == connection_id))).first())


async def connections_of(session: AsyncSession, cifs: Sequence[str]) -> list[Connection]:
    c = anaf_connections.c
    rows = (await session.execute(select(anaf_connections).where(c.company_cif.in_(list(cifs)))
                                  .order_by(c.company_cif, c.updated_at.desc()))).all()
    return [_record(Connection, r) for r in rows]


async def connections_for_cif(session: AsyncSession, cif: str) -> list[Connection]:
    """The company's connections, most recently authorized first."""
    rows = (await session.execute(select(anaf_connections).where(anaf_connections.c.company_cif == cif)
                                  .order_by(anaf_connections.c.authorized_at.desc()))).all()
    return [_record(Connection, r) for r in rows]


async def reusable_connection(session: AsyncSession, cif: str, serial: str) -> Connection | None:
    """The connection a new authorization replaces (same certificate, or one waiting for re-authorization),
    locked."""
    c = anaf_connections.c
    row = (await session.execute(select(anaf_connections).where(
        c.company_cif == cif, c.state != domain.REVOKED,
        or_(c.certificate_serial == serial, c.state == domain.REAUTH))
        .order_by(c.updated_at.desc()).limit(1).with_for_update())).first()
    return _maybe(Connection, row)


async def insert_connection(session: AsyncSession, connection_id: str, now: datetime, **values: Any) -> None:
    await session.execute(insert(anaf_connections).values(id=connection_id, created_at=now, **values))


async def update_connection(session: AsyncSession, connection_id: str, **values: Any) -> None:
    await session.execute(update(anaf_connections).where(anaf_connections.c.id == connection_id).values(**values))


def _claimable(now: datetime, force: bool) -> Any:
    c = anaf_connections.c
    lease_over = and_(c.state == domain.RENEWING, c.lease_until < now)
    if force:
        return or_(c.state.in_(domain.LIVE_STATES), lease_over)
    due = and_(c.state.in_(domain.LIVE_STATES), c.next_renewal_at <= now,
               or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
    return or_(due, lease_over)


def _prior_state_expr() -> Any:
    """The state to return to after a renewal: the current one, or (taking over a lapsed lease) the one the
    lapsed runner recorded."""
    c = anaf_connections.c
    return case((c.state == domain.RENEWING, func.coalesce(c.state_before_renewal, literal(domain.ACTIVE))),
                else_=c.state)


async def due_for_renewal(session: AsyncSession, now: datetime, limit: int = 500) -> list[str]:
    """Connections whose renewal time came, or whose renewing lease ran out."""
    rows = (await session.execute(select(anaf_connections.c.id).where(_claimable(now, force=False))
                                  .order_by(anaf_connections.c.next_renewal_at).limit(limit))).all()
    return [r[0] for r in rows]


async def claim_for_renewal(session: AsyncSession, connection_id: str, now: datetime, lease: datetime, *,
                            force: bool) -> Connection | None:
    """One conditional UPDATE: the caller that gets the row back is the one runner that refreshes it."""
    c = anaf_connections.c
    row = (await session.execute(
        update(anaf_connections).where(c.id == connection_id, _claimable(now, force))
        .values(state=domain.RENEWING, lease_until=lease, state_before_renewal=_prior_state_expr())
        .returning(*anaf_connections.c))).first()
    return _maybe(Connection, row)


async def update_leased(session: AsyncSession, connection_id: str, lease: datetime | None, **values: Any) -> bool:
    """Update a connection while this runner still holds its renewal lease (`lease` None: unconditionally);
    False when another runner took the row over."""
    c = anaf_connections.c
    cond = [c.id == connection_id]
    if lease is not None:
        cond.append(c.lease_until == lease)
    done = (await session.execute(update(anaf_connections).where(*cond).values(**values).returning(c.id))).first()
    return done is not None


async def warning_candidates(session: AsyncSession, now: datetime, until: datetime) -> list[Connection]:
    """Live connections whose date to act falls between now and `until`."""
    c = anaf_connections.c
    rows = (await session.execute(select(anaf_connections).where(
        c.state.in_((domain.ACTIVE, domain.EXPIRING, domain.RENEWING)),
        c.must_act_by <= until, c.must_act_by > now))).all()
    return [_record(Connection, r) for r in rows]


async def record_warning(session: AsyncSession, connection_id: str, sent_before: list[int], sent_now: list[int],
                         now: datetime) -> bool:
    """Record the warnings sent if nobody recorded others since `sent_before` was read (compare-and-set); the
    connection becomes `expiring`. False when another replica won."""
    c = anaf_connections.c
    won = (await session.execute(update(anaf_connections).where(
        c.id == connection_id, c.warnings_sent == cast(sent_before, JSONB)).values(
        warnings_sent=sent_now,
        state=case((c.state == domain.ACTIVE, domain.EXPIRING), else_=c.state),
        state_before_renewal=case((c.state == domain.RENEWING, domain.EXPIRING), else_=c.state_before_renewal),
        updated_at=now).returning(c.id))).first()
    return won is not None


async def deadlines(session: AsyncSession) -> list[Deadline]:
    c = anaf_connections.c
    rows = (await session.execute(select(c.id, c.company_cif, c.must_act_by, c.state))).all()
    return [_record(Deadline, r) for r in rows]


async def record_token_grant(session: AsyncSession, *, connection_id: str, caller: str, kind: str, outcome: str,
                             now: datetime) -> None:
    await session.execute(insert(access_token_grants).values(
        connection_id=connection_id, caller_service=caller, kind=kind, outcome=outcome, granted_at=now))


async def token_grants(session: AsyncSession, connection_id: str) -> list[TokenGrant]:
    rows = (await session.execute(select(access_token_grants).where(
        access_token_grants.c.connection_id == connection_id).order_by(access_token_grants.c.id))).all()
    return [_record(TokenGrant, r) for r in rows]


# ================================================================================================
# OAuth states
# ================================================================================================

async def insert_oauth_state(session: AsyncSession, *, nonce: str, user_id: str, cif: str,
                             delegation_id: str | None, holder_name: str, now: datetime,
                             expires_at: datetime) -> None:
    await session.execute(insert(oauth_states).values(
        id=nonce, user_id=user_id, company_cif=cif, delegation_id=delegation_id, holder_name=holder_name,
        created_at=now, expires_at=expires_at))


async def remember_person(session: AsyncSession, key: str, cnp_sealed: str, now: datetime) -> None:
    """Keep a natural person's sealed CNP under its key (the latest typed wins: the same CNP, a fresh seal)."""
    await session.execute(pg_insert(person_ids).values(person_key=key, cnp_sealed=cnp_sealed, recorded_at=now)
                          .on_conflict_do_update(index_elements=[person_ids.c.person_key],
                                                 set_={"cnp_sealed": cnp_sealed, "recorded_at": now}))


async def sealed_cnp(session: AsyncSession, key: str) -> str | None:
    return (await session.execute(select(person_ids.c.cnp_sealed).where(person_ids.c.person_key == key))).scalar()


async def spend_oauth_state(session: AsyncSession, nonce: str, now: datetime) -> OAuthState | None:
    """Mark the state used; None when it is unknown or was used already."""
    row = (await session.execute(update(oauth_states).where(
        oauth_states.c.id == nonce, oauth_states.c.used_at.is_(None)).values(used_at=now)
        .returning(*oauth_states.c))).first()
    return _maybe(OAuthState, row)


async def oauth_state_exists(session: AsyncSession, nonce: str) -> bool:
    return (await session.execute(select(oauth_states.c.id).where(oauth_states.c.id == nonce))).first() is not None


async def set_oauth_outcome(session: AsyncSession, nonce: str, outcome: str, *, message: str | None = None,
                            connection_id: str | None = None, with_message: bool = True) -> None:
    values: dict[str, Any] = {"outcome": outcome, "connection_id": connection_id}
    if with_message:
        values["outcome_message"] = message
    await session.execute(update(oauth_states).where(oauth_states.c.id == nonce).values(**values))


# ================================================================================================
# Delegation links
# ================================================================================================

async def insert_delegation(session: AsyncSession, *, delegation_id: str, token_hash: str, cif: str,
                            created_by: str, now: datetime, expires_at: datetime) -> None:
    await session.execute(insert(delegation_links).values(
        id=delegation_id, token_hash=token_hash, company_cif=cif, created_by=created_by, created_at=now,
        expires_at=expires_at))


async def get_delegation(session: AsyncSession, delegation_id: str) -> DelegationLink | None:
    return _maybe(DelegationLink, (await session.execute(
        select(delegation_links).where(delegation_links.c.id == delegation_id))).first())


async def delegation_by_token_hash(session: AsyncSession, token_hash: str) -> DelegationLink | None:
    return _maybe(DelegationLink, (await session.execute(
        select(delegation_links).where(delegation_links.c.token_hash == token_hash))).first())


async def delegations_of(session: AsyncSession, cif: str) -> list[DelegationLink]:
    rows = (await session.execute(select(delegation_links).where(delegation_links.c.company_cif == cif)
                                  .order_by(delegation_links.c.created_at.desc()))).all()
    return [_record(DelegationLink, r) for r in rows]


async def revoke_delegation(session: AsyncSession, delegation_id: str, now: datetime) -> None:
    await session.execute(update(delegation_links).where(delegation_links.c.id == delegation_id)
                          .values(revoked_at=now))


async def use_delegation(session: AsyncSession, delegation_id: str, now: datetime, holder: str) -> bool:
    """Spend a delegation link that is still open; False when it was used, revoked or expired meanwhile."""
    d = delegation_links.c
    used = (await session.execute(update(delegation_links).where(
        d.id == delegation_id, d.used_at.is_(None), d.revoked_at.is_(None), d.expires_at > now).values(
        used_at=now, used_by_name=holder).returning(d.id))).first()
    return used is not None


async def link_delegation_connection(session: AsyncSession, delegation_id: str, connection_id: str) -> None:
    await session.execute(update(delegation_links).where(delegation_links.c.id == delegation_id)
                          .values(connection_id=connection_id))


# ================================================================================================
# API keys
# ================================================================================================

async def managed_cifs(session: AsyncSession, user_id: str) -> list[str]:
    """CIFs the user manages directly (verified owner/admin)."""
    rows = await session.execute(select(access_grants.c.cif).where(
        access_grants.c.user_id == user_id, access_grants.c.verified.is_(True),
        access_grants.c.via_firm_cif.is_(None), access_grants.c.role.in_(MANAGERS)))
    return [r[0] for r in rows]


def _visible_to(user_id: str, managed: list[str]) -> Any:
    cond = api_keys.c.created_by == user_id
    if managed:
        cond = or_(cond, api_keys.c.companies.op("?|")(array(managed)))
    return cond


async def visible_keys(session: AsyncSession, user_id: str, managed: list[str],
                       company_cif: str | None = None) -> list[ApiKey]:
    """The user's own keys and the keys on companies they manage (of one company when `company_cif`)."""
    q = select(api_keys).where(_visible_to(user_id, managed))
    if company_cif:
        q = q.where(api_keys.c.companies.contains(cast([company_cif], JSONB)))
    rows = (await session.execute(q.order_by(api_keys.c.created_at.desc(), api_keys.c.id))).all()
    return [_record(ApiKey, r) for r in rows]


async def visible_key(session: AsyncSession, user_id: str, managed: list[str], key_id: str) -> ApiKey | None:
    return _maybe(ApiKey, (await session.execute(select(api_keys).where(
        api_keys.c.id == key_id, _visible_to(user_id, managed)))).first())


async def get_api_key(session: AsyncSession, key_id: str) -> ApiKey | None:
    return _maybe(ApiKey, (await session.execute(select(api_keys).where(api_keys.c.id == key_id))).first())


async def insert_api_key(session: AsyncSession, *, key_id: str, key_hash: str, prefix: str, name: str,
                         created_by: str, companies: list[str], permissions: list[str], now: datetime,
                         expires_at: datetime | None) -> None:
    await session.execute(insert(api_keys).values(
        id=key_id, key_hash=key_hash, prefix=prefix, name=name, created_by=created_by, companies=companies,
        permissions=permissions, created_at=now, expires_at=expires_at))


async def revoke_api_key(session: AsyncSession, key_id: str, now: datetime, by: str) -> None:
    await session.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                          .values(revoked_at=now, revoked_by=by))


async def api_key_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return _maybe(ApiKey, (await session.execute(
        select(api_keys).where(api_keys.c.key_hash == key_hash))).first())


async def count_key_request(session: AsyncSession, key_id: str, now: datetime,
                            window_seconds: int) -> tuple[datetime, int]:
    """Count one request in the key's fixed rate window (a new window once the last one is over); returns the
    window start and the count in it."""
    window = timedelta(seconds=window_seconds)
    fresh = or_(api_keys.c.rate_window_start.is_(None), api_keys.c.rate_window_start <= now - window)
    counted = (await session.execute(
        update(api_keys).where(api_keys.c.id == key_id).values(
            rate_window_start=case((fresh, now), else_=api_keys.c.rate_window_start),
            rate_count=case((fresh, 1), else_=api_keys.c.rate_count + 1))
        .returning(api_keys.c.rate_window_start, api_keys.c.rate_count))).one()
    return counted.rate_window_start, int(counted.rate_count)


async def note_key_used(session: AsyncSession, key_id: str, now: datetime, request_id: str | None) -> None:
    await session.execute(update(api_keys).where(api_keys.c.id == key_id).values(
        last_used_at=now, last_used_request_id=request_id, use_count=api_keys.c.use_count + 1))


async def insert_key_use(session: AsyncSession, *, key_id: str, outcome: str, at: datetime, service: str,
                         method: str, path: str, request_id: str | None, client: str | None) -> None:
    await session.execute(insert(api_key_usage).values(
        key_id=key_id, outcome=outcome, at=at, service=service, method=method, path=path, request_id=request_id,
        client=client))


async def key_uses(session: AsyncSession, key_id: str, before: int | None, limit: int) -> list[KeyUse]:
    """Uses of the key, newest first, with ids below `before` (a page of the usage log)."""
    q = select(api_key_usage).where(api_key_usage.c.key_id == key_id)
    if before is not None:
        q = q.where(api_key_usage.c.id < before)
    rows = (await session.execute(q.order_by(api_key_usage.c.id.desc()).limit(limit))).all()
    return [_record(KeyUse, r) for r in rows]


async def purge_key_usage(session: AsyncSession, before: datetime) -> int:
    res = await session.execute(api_key_usage.delete().where(api_key_usage.c.at < before))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]

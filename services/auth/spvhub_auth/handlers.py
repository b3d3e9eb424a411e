"""Use cases of the auth service: platform accounts and sessions, ANAF authorization (start, callback, rights
check), renewal and horizon warnings, delegation links, the internal access-token endpoint, revocation.

Every command runs in one unit of work; events leave through the outbox in the same transaction.
Platform sessions (JWT iat/exp, login lockouts) use the system time, because other services verify platform
JWTs against the wall clock; everything about ANAF connections uses the injected clock (it follows the
emulator in dev and tests).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Gauge
from spvhub_common.access import MANAGERS, accessible_cifs, require_grant
from spvhub_common.anaf import errors as E
from spvhub_common.clock import Clock, SystemClock
from spvhub_common.crypto import SecretBox
from spvhub_common.errors import AppError, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from spvhub_common.events.auth import (
    ConnectionAuthorized,
    ConnectionRevoked,
    ReauthorizationRequired,
    TokenExpiring,
    TokenRefreshed,
    UserRegistered,
)
from spvhub_common.logging import get_logger
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork
from sqlalchemy import and_, case, cast, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB

from spvhub_auth import account, throttle
from spvhub_auth import domain as D
from spvhub_auth.adapters.anaf import AnafGateway, TokenSet
from spvhub_auth.adapters.keys import KeyRing
from spvhub_auth.adapters.orm import (
    access_grants,
    access_token_grants,
    anaf_connections,
    delegation_links,
    oauth_states,
    refresh_tokens,
    users,
)
from spvhub_auth.settings import Settings

log = get_logger(__name__)
STATE_AUDIENCE = "spvhub-auth:anaf-state"
LOCALES = ("ro", "en")
SINGLE_FLIGHT_SECONDS = 30  # a refresh this recent (another caller's) is reused instead of refreshing again


@dataclass
class Deps:
    """The ports handlers work with (built by bootstrap; tests substitute any of them)."""

    settings: Settings
    uow: Callable[[], SqlUnitOfWork]
    clock: Clock                 # ANAF timeline (follows the emulator in dev/test)
    ring: KeyRing
    box: SecretBox
    anaf: AnafGateway
    hasher: PasswordHasher
    wall: Clock = SystemClock()  # platform sessions


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _err(exc: D.DomainError, status: int = 400) -> AppError:
    return AppError(exc.message, code=exc.code, status=status, details=exc.details)


# ================================================================================================
# Platform accounts and sessions
# ================================================================================================

def _user_view(u: Any) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "locale": u.locale, "created_at": u.created_at,
            "email_verified": u.email_verified_at is not None}


async def _issue_session(deps: Deps, uow: SqlUnitOfWork, user: Any, family_id: str | None = None, *,
                         client: str | None = None, user_agent: str | None = None) -> dict[str, Any]:
    s = deps.settings
    now = deps.wall.now()
    family_id = family_id or uuid.uuid4().hex
    # `sid` names the session (refresh-token family): the session list marks the current one, and a password
    # change keeps it while ending the others.
    claims = {"sub": user.id, "email": user.email, "name": user.name, "locale": user.locale, "typ": "access",
              "iss": s.jwt_issuer, "aud": s.jwt_audience, "iat": int(now.timestamp()),
              "exp": int(now.timestamp()) + s.access_token_ttl_seconds, "jti": uuid.uuid4().hex, "sid": family_id}
    access = deps.ring.sign(claims)
    rid = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    refresh = f"{rid}.{secret}"
    await uow.session.execute(insert(refresh_tokens).values(
        id=rid, family_id=family_id, user_id=user.id, token_hash=_sha256(refresh),
        issued_at=now, expires_at=now + timedelta(days=s.refresh_token_ttl_days),
        user_agent=(user_agent or None) and user_agent[:300], client_address=(client or None) and client[:100]))
    return {"access_token": access, "token_type": "Bearer", "expires_in": s.access_token_ttl_seconds,
            "refresh_token": refresh, "user": _user_view(user)}


async def sign_up(deps: Deps, *, email: str, password: str, name: str, locale: str = "ro",
                  invitation_id: str | None = None, client: str | None = None,
                  user_agent: str | None = None) -> dict[str, Any]:
    """Create a platform account (argon2id hash) and open a session; publishes `auth.user-registered` and asks
    for the e-mail with the address's verification link."""
    try:
        email = D.normalize_email(email)
    except D.DomainError as e:
        raise _err(e, 422) from None
    if len(password) < deps.settings.password_min_length:
        raise AppError(f"The password must have at least {deps.settings.password_min_length} characters.",
                       code="weak_password", status=422)
    if locale not in LOCALES:
        raise AppError("Locale must be 'ro' or 'en'.", code="invalid_locale", status=422)
    name = name.strip()
    if not name:
        raise AppError("Enter your name.", code="name_required", status=422)
    pw_hash = await asyncio.to_thread(deps.hasher.hash, password)
    now = deps.wall.now()
    async with deps.uow() as uow:
        exists = (await uow.session.execute(select(users.c.id).where(users.c.email == email))).first()
        if exists:
            raise Conflict("An account with this e-mail already exists; sign in instead.", code="email_taken")
        uid = str(uuid.uuid4())
        await uow.session.execute(insert(users).values(id=uid, email=email, name=name, locale=locale,
                                                       password_hash=pw_hash, created_at=now, updated_at=now))
        user = (await uow.session.execute(select(users).where(users.c.id == uid))).one()
        session = await _issue_session(deps, uow, user, client=client, user_agent=user_agent)
        uow.publish(UserRegistered(user_id=uid, email=email, name=name, locale=locale, invitation_id=invitation_id,
                                   email_verified=False))
        await account.request_link(deps, uow, user, account.VERIFY_EMAIL, email, now)
        await uow.commit()
    log.info("user registered", user_id=uid)
    return session


_DUMMY_HASH: str | None = None
_SLOW_DOWN = ("Prea multe cereri într-un timp scurt. Încercați din nou peste {retry} secunde. / "
              "Too many requests in a short time. Try again in {retry} seconds.")


async def log_in(deps: Deps, *, email: str, password: str, client: str = "unknown",
                 user_agent: str | None = None) -> dict[str, Any]:
    """Password login. Failures slow the e-mail down (429 `login_throttled` for 1, 2, 4 ... s, capped; never a
    lockout, so the owner gets in from anywhere after the short delay) and are limited per client address
    (429 `too_many_login_attempts`). Both are checked before the password, so a delayed guess learns nothing."""
    global _DUMMY_HASH
    s = deps.settings
    email = (email or "").strip().lower()
    now = deps.wall.now()
    key = f"ip:{client}"[:200]
    async with deps.uow() as uow:
        ip_failures, ip_start = await throttle.failures_of(uow, key, now, s.login_ip_window_seconds)
        if ip_failures >= s.login_ip_max_failures and ip_start is not None:
            retry = int((ip_start + timedelta(seconds=s.login_ip_window_seconds) - now).total_seconds()) + 1
            raise TooManyRequests(f"Prea multe autentificări eșuate de la această adresă. Încercați din nou peste "
                                  f"{retry} secunde. / Too many failed sign-ins from this address. Try again in "
                                  f"{retry} seconds.", code="too_many_login_attempts",
                                  details={"retry_after_seconds": retry})
        acct = await throttle.account_state(uow, email)
        if acct is not None and acct.window_start > now:
            retry = max(1, int((acct.window_start - now).total_seconds() + 0.999))
            raise TooManyRequests(f"După mai multe parole greșite, următoarea încercare pentru acest cont este "
                                  f"posibilă peste {retry} secunde. / After several wrong passwords, the next attempt "
                                  f"for this account is possible in {retry} seconds.", code="login_throttled",
                                  details={"retry_after_seconds": retry})
        user = (await uow.session.execute(select(users).where(users.c.email == email))).first()
        ok = False
        if user is None:
            if _DUMMY_HASH is None:
                _DUMMY_HASH = await asyncio.to_thread(deps.hasher.hash, secrets.token_hex(8))
            try:  # same cost as a real check, so response time does not reveal which e-mails exist
                await asyncio.to_thread(deps.hasher.verify, _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                pass
        else:
            try:
                ok = await asyncio.to_thread(deps.hasher.verify, user.password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                ok = False
        if not ok:
            await throttle.hit(uow, key, now, s.login_ip_window_seconds)
            delay = await throttle.account_failed(uow, email, acct, now, free=s.login_free_failures,
                                                  base=s.login_delay_base_seconds, cap=s.login_delay_max_seconds,
                                                  memory_seconds=s.login_failure_memory_seconds)
            await uow.commit()
            raise Unauthorized("Wrong e-mail or password.", code="invalid_credentials",
                               details={"retry_after_seconds": max(1, int(delay + 0.999))} if delay else None)
        if deps.hasher.check_needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(deps.hasher.hash, password)
            await uow.session.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
        await throttle.account_succeeded(uow, email)
        session = await _issue_session(deps, uow, user, client=client, user_agent=user_agent)
        await uow.commit()
    return session


async def refresh_session(deps: Deps, *, refresh_token: str, client: str = "unknown",
                          user_agent: str | None = None) -> dict[str, Any]:
    """Rotate a platform refresh token; presenting a used one revokes its whole family (theft detection).
    Rate limited per client address (every attempt) and per user (rotations): 429 `rate_limited`."""
    s = deps.settings
    now = deps.wall.now()
    rid = (refresh_token or "").split(".", 1)[0]
    await throttle.limit(deps.uow, now, [(f"refresh-ip:{client}", s.refresh_ip_max, s.refresh_window_seconds)],
                         message=_SLOW_DOWN)
    async with deps.uow() as uow:
        row = (await uow.session.execute(select(refresh_tokens).where(refresh_tokens.c.id == rid)
                                         .with_for_update())).first()
        if row is None or not hmac.compare_digest(row.token_hash, _sha256(refresh_token or "")):
            raise Unauthorized("The refresh token is not valid; sign in again.", code="invalid_refresh_token")
        rotations, start = await throttle.hit(uow, f"refresh-user:{row.user_id}", now, s.refresh_window_seconds)
        if rotations > s.refresh_user_max:
            retry = max(1, int((start + timedelta(seconds=s.refresh_window_seconds) - now).total_seconds() + 0.999))
            await uow.commit()  # the count, nothing else: the token is not rotated
            raise TooManyRequests(_SLOW_DOWN.format(retry=retry), code="rate_limited",
                                  details={"retry_after_seconds": retry})
        if row.revoked_at is not None:
            raise Unauthorized("This session was ended; sign in again.", code="session_revoked")
        if row.used_at is not None:
            await uow.session.execute(update(refresh_tokens).where(
                refresh_tokens.c.family_id == row.family_id, refresh_tokens.c.revoked_at.is_(None)).values(
                revoked_at=now))
            await uow.commit()
            log.warning("refresh token reuse detected; session family revoked", user_id=row.user_id)
            raise Unauthorized("This refresh token was already used, so the session was ended for safety. "
                               "Sign in again.", code="refresh_token_reused")
        if row.expires_at <= now:
            raise Unauthorized("The session expired; sign in again.", code="session_expired")
        await uow.session.execute(update(refresh_tokens).where(refresh_tokens.c.id == rid).values(used_at=now))
        user = (await uow.session.execute(select(users).where(users.c.id == row.user_id))).one()
        session = await _issue_session(deps, uow, user, family_id=row.family_id, client=client,
                                       user_agent=user_agent)
        await uow.commit()
    return session


async def log_out(deps: Deps, *, refresh_token: str) -> None:
    rid = (refresh_token or "").split(".", 1)[0]
    async with deps.uow() as uow:
        row = (await uow.session.execute(select(refresh_tokens).where(refresh_tokens.c.id == rid))).first()
        if row is not None and hmac.compare_digest(row.token_hash, _sha256(refresh_token or "")):
            await uow.session.execute(update(refresh_tokens).where(
                refresh_tokens.c.family_id == row.family_id, refresh_tokens.c.revoked_at.is_(None)).values(
                revoked_at=deps.wall.now()))
            await uow.commit()


async def get_profile(deps: Deps, principal: Principal) -> dict[str, Any]:
    async with deps.uow() as uow:
        u = (await uow.session.execute(select(users).where(users.c.id == principal.user_id))).first()
    if u is None:
        raise NotFound("No such user.", code="no_user")
    return _user_view(u)


async def update_profile(deps: Deps, principal: Principal, *, name: str | None, locale: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": deps.wall.now()}
    if name is not None:
        if not name.strip():
            raise AppError("Enter your name.", code="name_required", status=422)
        values["name"] = name.strip()
    if locale is not None:
        if locale not in LOCALES:
            raise AppError("Locale must be 'ro' or 'en'.", code="invalid_locale", status=422)
        values["locale"] = locale
    async with deps.uow() as uow:
        await uow.session.execute(update(users).where(users.c.id == principal.user_id).values(**values))
        u = (await uow.session.execute(select(users).where(users.c.id == principal.user_id))).first()
        if u is None:
            raise NotFound("No such user.", code="no_user")
        await uow.commit()
    return _user_view(u)


# ================================================================================================
# ANAF authorization
# ================================================================================================

def _cif(raw: str) -> str:
    try:
        return D.normalize_cif(raw)
    except D.DomainError as e:
        raise _err(e, 422) from None


async def _new_state(deps: Deps, uow: SqlUnitOfWork, *, user_id: str, cif: str, holder_name: str,
                     delegation_id: str | None) -> tuple[str, datetime]:
    now = deps.clock.now()
    nonce = uuid.uuid4().hex
    expires_at = now + timedelta(seconds=deps.settings.oauth_state_ttl_seconds)
    await uow.session.execute(insert(oauth_states).values(
        id=nonce, user_id=user_id, company_cif=cif, delegation_id=delegation_id, holder_name=holder_name[:200],
        created_at=now, expires_at=expires_at))
    token = deps.ring.sign({"typ": "anaf_state", "nonce": nonce, "sub": user_id, "cif": cif, "dlg": delegation_id,
                            "iss": deps.settings.jwt_issuer, "aud": STATE_AUDIENCE})
    return token, expires_at


async def _require_manager_soon(deps: Deps, user_id: str, cif: str) -> None:
    """The caller must be a direct owner or administrator of `cif`, verified or not (authorizing and delegating is
    how a company's people get verified). The read model gets a moment to catch up: a company registered a second
    ago reaches auth as `portfolio.access-changed` through Kafka, and its owner's first authorization must not fail
    on that. Only a missing row is waited for; a wrong role is final at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.settings.access_wait_seconds
    while True:
        async with deps.uow() as uow:
            try:
                await _require_manager(uow, user_id, cif)
                return
            except Forbidden as exc:
                if exc.code != "no_access_to_company" or loop.time() >= deadline:
                    raise
        await asyncio.sleep(0.2)


async def _require_manager(uow: SqlUnitOfWork, user_id: str, cif: str) -> None:
    await require_grant(uow.session, access_grants, user_id, cif, roles=MANAGERS, direct_only=True,
                        allow_unverified=True)


async def start_authorization(deps: Deps, principal: Principal, company_cif: str) -> dict[str, Any]:
    """Return ANAF's authorize URL with a signed, single-use `state` bound to the user and the company."""
    cif = _cif(company_cif)
    await _require_manager_soon(deps, principal.user_id, cif)
    async with deps.uow() as uow:
        name = principal.name or principal.email or principal.user_id
        state, expires_at = await _new_state(deps, uow, user_id=principal.user_id, cif=cif, holder_name=name,
                                             delegation_id=None)
        await uow.commit()
    return {"company_cif": cif, "authorize_url": deps.anaf.authorize_url(state), "state_expires_at": expires_at}


async def _record_outcome(deps: Deps, nonce: str, outcome: str, message: str, connection_id: str | None = None) -> None:
    async with deps.uow() as uow:
        await uow.session.execute(update(oauth_states).where(oauth_states.c.id == nonce).values(
            outcome=outcome, outcome_message=message[:1000], connection_id=connection_id))
        await uow.commit()


async def complete_authorization(deps: Deps, *, code: str | None, state: str | None, error: str | None,
                                 error_description: str | None) -> dict[str, Any]:
    """ANAF's redirect back: check the state, exchange the code (ANAF allows 60 s), check SPV rights on the
    company, and store the connection with both tokens encrypted. Nothing is stored on any failure."""
    s = deps.settings
    if not state:
        raise AppError("The ANAF callback has no `state`: start the authorization again from the platform.",
                       code="missing_state", status=400)
    try:
        claims = deps.ring.verify(state, audience=STATE_AUDIENCE, issuer=s.jwt_issuer)
        if claims.get("typ") != "anaf_state":
            raise jwt.InvalidTokenError("not a state")
    except jwt.PyJWTError:
        await deps.ring.load()  # a key rotated by another replica?
        try:
            claims = deps.ring.verify(state, audience=STATE_AUDIENCE, issuer=s.jwt_issuer)
        except jwt.PyJWTError:
            raise AppError("The `state` of this ANAF callback is not valid (altered or not issued by this "
                           "platform). Start the authorization again.", code="invalid_state", status=400) from None
    nonce = str(claims.get("nonce"))
    now = deps.clock.now()
    async with deps.uow() as uow:
        row = (await uow.session.execute(update(oauth_states).where(
            oauth_states.c.id == nonce, oauth_states.c.used_at.is_(None)).values(used_at=now)
            .returning(*oauth_states.c))).first()
        if row is None:
            exists = (await uow.session.execute(select(oauth_states.c.id).where(oauth_states.c.id == nonce))).first()
            if exists:
                raise Conflict("This authorization was already completed or attempted (each ANAF callback can be "
                               "used once). Start the authorization again.", code="state_already_used")
            raise AppError("The `state` of this ANAF callback is unknown. Start the authorization again.",
                           code="invalid_state", status=400)
        if row.user_id != claims.get("sub") or row.company_cif != claims.get("cif"):
            raise AppError("The `state` of this ANAF callback is not valid. Start the authorization again.",
                           code="invalid_state", status=400)
        await uow.commit()  # the state is spent even if what follows fails (single use)
    if row.expires_at <= now:
        await _record_outcome(deps, nonce, "expired", "state expired")
        raise AppError(f"This authorization was started more than {s.oauth_state_ttl_seconds // 60} minutes ago and "
                       f"has expired. Start it again.", code="state_expired", status=400)
    cif = row.company_cif
    if error:
        code_, message = D.authorize_error(error)
        await _record_outcome(deps, nonce, "anaf_error", code_)
        raise AppError(message, code=code_, status=400, details={"anaf_error": error[:40], "cif": cif})
    if not code:
        await _record_outcome(deps, nonce, "anaf_error", "missing code")
        raise AppError("ANAF's callback carries no authorization code. Start the authorization again.",
                       code="missing_code", status=400)
    try:
        tokens = await deps.anaf.exchange_code(code)
    except E.InvalidGrant:
        await _record_outcome(deps, nonce, "exchange_failed", "invalid_grant")
        raise AppError("ANAF refused the authorization code: it was already used, it expired (ANAF allows 60 "
                       "seconds), or it was issued for another redirect address. Nothing was saved; start the "
                       "authorization again.", code="anaf_code_rejected", status=400, details={"cif": cif}) from None
    except E.OAuthError as exc:
        await _record_outcome(deps, nonce, "exchange_failed", exc.error)
        raise AppError("ANAF refused the platform's application credentials; the administrator must check the "
                       "ANAF OAuth client configuration.", code="anaf_client_rejected", status=502,
                       details={"anaf_error": exc.error}) from None
    except E.AnafError as exc:
        await _record_outcome(deps, nonce, "exchange_failed", type(exc).__name__)
        raise AppError("ANAF could not be reached to complete the authorization. Start it again in a few minutes.",
                       code="anaf_unavailable", status=503) from None
    facts = D.TokenFacts.read(tokens.access_token, tokens.refresh_token, now, tokens.expires_in)
    rights_checked = True
    try:
        await deps.anaf.check_rights(tokens.access_token, cif)
    except E.NoRights:
        message = D.no_rights_message(cif, facts.serial)
        await _record_outcome(deps, nonce, "no_rights", message)
        raise AppError(message, code="no_spv_rights", status=403,
                       details={"cif": cif, "certificate_serial": facts.serial,
                                "likely_causes": ["other_company_certificate", "spv_enrolment_under_24h"]}) from None
    except E.AnafError as exc:  # transient or not e-Factura: keep the authorization, say the check is pending
        rights_checked = False
        log.warning("rights check after authorization did not complete", cif=cif, error=type(exc).__name__)
    return await _store_connection(deps, row, facts, tokens, now, rights_checked)


async def _store_connection(deps: Deps, st: Any, facts: D.TokenFacts, tokens: TokenSet, now: datetime,
                            rights_checked: bool) -> dict[str, Any]:
    s = deps.settings
    cif = st.company_cif
    login_at = facts.certificate_login_at or now
    family = D.family_horizon(login_at, s.family_horizon_days)
    act_by = D.must_act_by(facts.refresh_expires_at, family)
    renew_at = D.next_renewal(facts.access_issued_at, facts.access_expires_at, act_by, s.renew_at_fraction)
    holder = st.holder_name or "?"
    async with deps.uow() as uow:
        if st.delegation_id:
            used = (await uow.session.execute(update(delegation_links).where(
                delegation_links.c.id == st.delegation_id, delegation_links.c.used_at.is_(None),
                delegation_links.c.revoked_at.is_(None), delegation_links.c.expires_at > now).values(
                used_at=now, used_by_name=holder).returning(delegation_links.c.id))).first()
            if used is None:
                raise AppError("This delegation link was already used, revoked or has expired; nothing was saved. "
                               "Ask the company for a new link.", code="delegation_link_unusable", status=410)
        existing = (await uow.session.execute(select(anaf_connections).where(
            anaf_connections.c.company_cif == cif, anaf_connections.c.state != D.REVOKED,
            or_(anaf_connections.c.certificate_serial == facts.serial, anaf_connections.c.state == D.REAUTH))
            .order_by(anaf_connections.c.updated_at.desc()).limit(1).with_for_update())).first()
        cid = existing.id if existing else str(uuid.uuid4())
        values = dict(
            company_cif=cif, user_id=st.user_id, holder_name=holder, certificate_serial=facts.serial,
            services=facts.services, state=D.ACTIVE, state_before_renewal=None, delegation_id=st.delegation_id,
            authorized_at=now, access_issued_at=facts.access_issued_at, access_expires_at=facts.access_expires_at,
            refresh_expires_at=facts.refresh_expires_at, family_expires_at=family, must_act_by=act_by,
            next_renewal_at=renew_at, last_refreshed_at=None,
            access_token_enc=deps.box.encrypt(tokens.access_token, aad=f"anaf:{cid}:access"),
            refresh_token_enc=deps.box.encrypt(tokens.refresh_token, aad=f"anaf:{cid}:refresh"),
            lease_until=None, renew_attempts=0, next_attempt_at=None, last_error=None, warnings_sent=[],
            reauth_reason=None, reauth_message=None, revoked_at=None, updated_at=now)
        if existing:
            await uow.session.execute(update(anaf_connections).where(anaf_connections.c.id == cid).values(**values))
        else:
            await uow.session.execute(insert(anaf_connections).values(id=cid, created_at=now, **values))
        if st.delegation_id:
            await uow.session.execute(update(delegation_links).where(delegation_links.c.id == st.delegation_id)
                                      .values(connection_id=cid))
        await uow.session.execute(update(oauth_states).where(oauth_states.c.id == st.id).values(
            outcome="authorized", connection_id=cid))
        uow.publish(ConnectionAuthorized(
            connection_id=cid, company_cif=cif, user_id=st.user_id, holder_name=holder,
            certificate_serial=facts.serial, services=facts.services, authorized_at=now,
            access_expires_at=facts.access_expires_at, refresh_expires_at=facts.refresh_expires_at,
            must_act_by=act_by, via_delegation=bool(st.delegation_id), next_renewal_at=renew_at,
            rights_confirmed=rights_checked))
        conn = (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.id == cid))).one()
        await uow.commit()
    log.info("anaf connection authorized", connection_id=cid, cif=cif, serial=facts.serial)
    view = connection_view(conn, now)
    view["rights_checked"] = rights_checked
    view["message"] = (f"ANAF access for company CIF {cif} is active, authorized by {holder}."
                       if rights_checked else
                       f"ANAF access for company CIF {cif} is saved, authorized by {holder}; ANAF could not confirm "
                       f"the SPV rights right now, the platform will check again.")
    return view


def connection_view(c: Any, now: datetime | None = None) -> dict[str, Any]:
    v = {
        "id": c.id, "company_cif": c.company_cif, "state": c.state, "authorizing_person": c.holder_name,
        "authorized_by_user_id": c.user_id, "certificate_serial": c.certificate_serial, "services": c.services,
        "authorized_at": c.authorized_at, "access_expires_at": c.access_expires_at,
        "refresh_expires_at": c.refresh_expires_at, "family_expires_at": c.family_expires_at,
        "must_act_by": c.must_act_by, "next_renewal_at": c.next_renewal_at, "last_refreshed_at": c.last_refreshed_at,
        "via_delegation": c.delegation_id is not None, "warnings_sent_days": list(c.warnings_sent or []),
        "reauthorization_reason": c.reauth_reason, "reauthorization_message": c.reauth_message,
        "revoked_at": c.revoked_at, "last_error": c.last_error,
    }
    if now is not None and c.state not in (D.REAUTH, D.REVOKED):
        v["days_until_must_act"] = D.days_left(c.must_act_by, now)
    return v


# ================================================================================================
# Connections (user view), revocation
# ================================================================================================

async def _visible_connection(uow: SqlUnitOfWork, principal: Principal, connection_id: str) -> Any:
    """The connection, when the caller holds a verified grant on its company. No grant at all answers 404 (the id
    says nothing to a stranger); an unverified member gets 403 `company_not_verified`. Having authorized the
    connection gives no access by itself: a person who left the company no longer sees it."""
    c = (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.id == connection_id))).first()
    if c is None:
        raise NotFound("No such ANAF connection.", code="no_connection")
    try:
        await require_grant(uow.session, access_grants, principal.user_id, c.company_cif)
    except Forbidden as exc:
        if exc.code == "no_access_to_company":
            raise NotFound("No such ANAF connection.", code="no_connection") from None
        raise
    return c


async def list_connections(deps: Deps, principal: Principal, company_cif: str | None = None) -> list[dict[str, Any]]:
    """The connections of the companies the caller is verified for (of one company: 403 without a verified grant)."""
    async with deps.uow() as uow:
        if company_cif:
            cifs = [_cif(company_cif)]
            await require_grant(uow.session, access_grants, principal.user_id, cifs[0])
        else:
            cifs = await accessible_cifs(uow.session, access_grants, principal.user_id)
        q = select(anaf_connections).where(anaf_connections.c.company_cif.in_(cifs))
        rows = (await uow.session.execute(q.order_by(anaf_connections.c.company_cif,
                                                     anaf_connections.c.updated_at.desc()))).all()
    now = deps.clock.now()
    return [connection_view(r, now) for r in rows]


async def get_connection(deps: Deps, principal: Principal, connection_id: str) -> dict[str, Any]:
    async with deps.uow() as uow:
        c = await _visible_connection(uow, principal, connection_id)
    return connection_view(c, deps.clock.now())


async def revoke_connection(deps: Deps, principal: Principal, connection_id: str) -> dict[str, Any]:
    """Stop using a connection: tokens are erased, `auth.connection-revoked` is published."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        c = await _visible_connection(uow, principal, connection_id)
        # Only the company's own verified owners and administrators: not a plain member, not a firm's accountant,
        # and not the person who authorized it unless they still are one.
        await require_grant(uow.session, access_grants, principal.user_id, c.company_cif, roles=MANAGERS,
                            direct_only=True)
        if c.state == D.REVOKED:
            return connection_view(c, now)
        await uow.session.execute(update(anaf_connections).where(anaf_connections.c.id == c.id).values(
            state=D.REVOKED, revoked_at=now, access_token_enc=None, refresh_token_enc=None, lease_until=None,
            updated_at=now))
        uow.publish(ConnectionRevoked(connection_id=c.id, company_cif=c.company_cif, user_id=principal.user_id,
                                      reason="revoked_by_user"))
        c = (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.id == c.id))).one()
        await uow.commit()
    return connection_view(c, now)


# ================================================================================================
# Delegation links
# ================================================================================================

def _delegation_view(d: Any, now: datetime) -> dict[str, Any]:
    status = ("revoked" if d.revoked_at else "used" if d.used_at else "expired" if d.expires_at <= now else "open")
    return {"id": d.id, "company_cif": d.company_cif, "created_by": d.created_by, "created_at": d.created_at,
            "expires_at": d.expires_at, "status": status, "used_at": d.used_at, "used_by_name": d.used_by_name,
            "connection_id": d.connection_id, "revoked_at": d.revoked_at}


async def create_delegation(deps: Deps, principal: Principal, company_cif: str) -> dict[str, Any]:
    """A single-use link (24 h, revocable) that lets another person authorize this company with their own
    certificate. Only its hash is stored; the token is returned once."""
    cif = _cif(company_cif)
    now = deps.clock.now()
    token = secrets.token_urlsafe(32)
    did = str(uuid.uuid4())
    await _require_manager_soon(deps, principal.user_id, cif)
    async with deps.uow() as uow:
        await uow.session.execute(insert(delegation_links).values(
            id=did, token_hash=_sha256(token), company_cif=cif, created_by=principal.user_id, created_at=now,
            expires_at=now + timedelta(hours=deps.settings.delegation_ttl_hours)))
        d = (await uow.session.execute(select(delegation_links).where(delegation_links.c.id == did))).one()
        await uow.commit()
    view = _delegation_view(d, now)
    view["token"] = token
    view["url"] = f"{deps.settings.public_base_url.rstrip('/')}/api/auth/anaf/delegations/open?token={token}"
    return view


async def list_delegations(deps: Deps, principal: Principal, company_cif: str) -> list[dict[str, Any]]:
    cif = _cif(company_cif)
    async with deps.uow() as uow:
        await _require_manager(uow, principal.user_id, cif)
        rows = (await uow.session.execute(select(delegation_links).where(delegation_links.c.company_cif == cif)
                                          .order_by(delegation_links.c.created_at.desc()))).all()
    now = deps.clock.now()
    return [_delegation_view(r, now) for r in rows]


async def revoke_delegation(deps: Deps, principal: Principal, delegation_id: str) -> dict[str, Any]:
    now = deps.clock.now()
    async with deps.uow() as uow:
        d = (await uow.session.execute(select(delegation_links).where(delegation_links.c.id == delegation_id))).first()
        if d is None:
            raise NotFound("No such delegation link.", code="no_delegation")
        await _require_manager(uow, principal.user_id, d.company_cif)
        if d.used_at is None and d.revoked_at is None:
            await uow.session.execute(update(delegation_links).where(delegation_links.c.id == d.id)
                                      .values(revoked_at=now))
        d = (await uow.session.execute(select(delegation_links).where(delegation_links.c.id == d.id))).one()
        await uow.commit()
    return _delegation_view(d, now)


async def open_delegation(deps: Deps, *, token: str, name: str | None, principal: Principal | None,
                          client: str = "unknown") -> dict[str, Any]:
    """The delegate opens the link: start an authorization for the link's company with their own certificate.
    Rate limited per client address and per link (429 `rate_limited`), before the link is even looked up."""
    s = deps.settings
    await throttle.limit(deps.uow, deps.wall.now(), [
        (f"deleg-ip:{client}", s.delegation_open_ip_max, s.delegation_open_window_seconds),
        (f"deleg:{_sha256(token or '')[:40]}", s.delegation_open_link_max, s.delegation_open_window_seconds)],
        message=_SLOW_DOWN)
    now = deps.clock.now()
    async with deps.uow() as uow:
        d = (await uow.session.execute(select(delegation_links).where(
            delegation_links.c.token_hash == _sha256(token or "")))).first()
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
            await _require_manager(uow, d.created_by, d.company_cif)
        except Forbidden:
            raise AppError("This delegation link no longer works: the person who created it no longer manages the "
                           "company. Ask the company for a new link.", code="delegation_link_revoked", status=410,
                           details={"reason": "creator_no_longer_manager"}) from None
        holder = (principal.name if principal and principal.name else (name or "").strip()) or "delegate"
        state, expires_at = await _new_state(deps, uow, user_id=d.created_by, cif=d.company_cif, holder_name=holder,
                                             delegation_id=d.id)
        await uow.commit()
    return {"company_cif": d.company_cif, "authorize_url": deps.anaf.authorize_url(state),
            "state_expires_at": expires_at, "delegation_expires_at": d.expires_at}


# ================================================================================================
# Renewal, warnings, re-authorization
# ================================================================================================

async def _locale_of(uow: SqlUnitOfWork, user_id: str) -> str:
    loc = (await uow.session.execute(select(users.c.locale).where(users.c.id == user_id))).scalar()
    return str(loc or "ro")


def _claimable(now: datetime, force: bool) -> Any:
    c = anaf_connections.c
    lease_over = and_(c.state == D.RENEWING, c.lease_until < now)
    if force:
        return or_(c.state.in_(D.LIVE_STATES), lease_over)
    due = and_(c.state.in_(D.LIVE_STATES), c.next_renewal_at <= now,
               or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
    return or_(due, lease_over)


async def renew_connection(deps: Deps, connection_id: str, *, force: bool = False) -> str:
    """Renew one connection if this caller wins the row claim. Returns `renewed`, `not_claimed`,
    `reauthorization_required` or `retry_later`. Exactly one runner refreshes: the claim is one conditional
    UPDATE; both rotated tokens are stored in the transaction that records success."""
    s = deps.settings
    now = deps.clock.now()
    lease = now + timedelta(seconds=s.renewal_lease_seconds)
    c = anaf_connections.c
    async with deps.uow() as uow:
        claimed = (await uow.session.execute(
            update(anaf_connections).where(c.id == connection_id, _claimable(now, force))
            .values(state=D.RENEWING, lease_until=lease,
                    state_before_renewal=_prior_state_expr())
            .returning(*anaf_connections.c))).first()
        await uow.commit()
    if claimed is None:
        return "not_claimed"
    refresh_enc = claimed.refresh_token_enc
    if refresh_enc is None:
        return await _require_reauth(deps, claimed, D.UNKNOWN, lease)
    refresh_token = deps.box.decrypt(bytes(refresh_enc), aad=f"anaf:{claimed.id}:refresh")
    try:
        tokens = await deps.anaf.refresh(refresh_token)
    except E.InvalidGrant as exc:
        reason = D.reauth_reason(exc.description or exc.text, now, claimed.must_act_by, claimed.family_expires_at)
        return await _require_reauth(deps, claimed, reason, lease)
    except E.AnafError as exc:
        return await _retry_later(deps, claimed, lease, f"{type(exc).__name__}: {exc.text[:200]}")
    except Exception as exc:  # network stack surprises: retried, never a reason to drop the authorization
        return await _retry_later(deps, claimed, lease, type(exc).__name__)
    facts = D.TokenFacts.read(tokens.access_token, tokens.refresh_token, now, tokens.expires_in)
    family = claimed.family_expires_at
    if facts.certificate_login_at is not None:
        family = D.family_horizon(facts.certificate_login_at, s.family_horizon_days)
    if family is not None and now >= family:
        family = None  # ANAF still renews past the assumed horizon: the horizon is not what we thought
    act_by = D.must_act_by(facts.refresh_expires_at, family)
    renew_at = D.next_renewal(facts.access_issued_at, facts.access_expires_at, act_by, s.renew_at_fraction)
    sent_before = list(claimed.warnings_sent or [])
    still_due = [o for o in sent_before if now >= act_by - timedelta(days=o)]
    prior = claimed.state_before_renewal or D.ACTIVE
    new_state = D.EXPIRING if still_due else D.ACTIVE
    async with deps.uow() as uow:
        done = (await uow.session.execute(update(anaf_connections).where(
            c.id == claimed.id, c.state == D.RENEWING, c.lease_until == lease).values(
            state=new_state, state_before_renewal=None, lease_until=None,
            access_token_enc=deps.box.encrypt(tokens.access_token, aad=f"anaf:{claimed.id}:access"),
            refresh_token_enc=deps.box.encrypt(tokens.refresh_token, aad=f"anaf:{claimed.id}:refresh"),
            access_issued_at=facts.access_issued_at, access_expires_at=facts.access_expires_at,
            refresh_expires_at=facts.refresh_expires_at, family_expires_at=family, must_act_by=act_by,
            next_renewal_at=renew_at, last_refreshed_at=now, renew_attempts=0, next_attempt_at=None,
            last_error=None, warnings_sent=still_due, updated_at=now).returning(c.id))).first()
        if done is None:
            # Our lease ran out and another runner took over; it holds the row now.
            log.error("renewal lost its lease after refreshing", connection_id=claimed.id)
            return "lease_lost"
        uow.publish(TokenRefreshed(connection_id=claimed.id, company_cif=claimed.company_cif,
                                   access_expires_at=facts.access_expires_at,
                                   refresh_expires_at=facts.refresh_expires_at,
                                   after_warning=bool(sent_before) or prior == D.EXPIRING,
                                   must_act_by=act_by, next_renewal_at=renew_at))
        await uow.commit()
    log.info("anaf tokens renewed", connection_id=claimed.id, cif=claimed.company_cif,
             access_expires_at=facts.access_expires_at.isoformat())
    return "renewed"


def _prior_state_expr() -> Any:
    """The state to return to after a renewal: the current one, or (taking over a lapsed lease) the one the
    lapsed runner recorded."""
    c = anaf_connections.c
    return case((c.state == D.RENEWING, func.coalesce(c.state_before_renewal, literal(D.ACTIVE))), else_=c.state)


async def _retry_later(deps: Deps, claimed: Any, lease: datetime, error: str) -> str:
    s = deps.settings
    now = deps.clock.now()
    attempts = claimed.renew_attempts + 1
    wait = D.backoff_seconds(attempts, s.renewal_backoff_base_seconds, s.renewal_backoff_max_seconds)
    async with deps.uow() as uow:
        await uow.session.execute(update(anaf_connections).where(
            anaf_connections.c.id == claimed.id, anaf_connections.c.lease_until == lease).values(
            state=claimed.state_before_renewal or D.ACTIVE, state_before_renewal=None, lease_until=None,
            renew_attempts=attempts, next_attempt_at=now + timedelta(seconds=wait), last_error=error[:300],
            updated_at=now))
        await uow.commit()
    log.warning("anaf renewal failed, will retry", connection_id=claimed.id, attempt=attempts, retry_in_s=wait,
                error=error[:200])
    return "retry_later"


async def _require_reauth(deps: Deps, claimed: Any, reason: str, lease: datetime | None) -> str:
    now = deps.clock.now()
    c = anaf_connections.c
    async with deps.uow() as uow:
        locale = await _locale_of(uow, claimed.user_id)
        message = D.reauth_message(reason, claimed.company_cif, claimed.certificate_serial, locale)
        cond = [c.id == claimed.id]
        if lease is not None:
            cond.append(c.lease_until == lease)
        done = (await uow.session.execute(update(anaf_connections).where(*cond).values(
            state=D.REAUTH, state_before_renewal=None, lease_until=None, access_token_enc=None,
            refresh_token_enc=None, reauth_reason=reason, reauth_message=message, updated_at=now)
            .returning(c.id))).first()
        if done is None:
            return "lease_lost"
        uow.publish(ReauthorizationRequired(connection_id=claimed.id, company_cif=claimed.company_cif,
                                            user_id=claimed.user_id, reason=reason, message=message,
                                            certificate_serial=claimed.certificate_serial))
        await uow.commit()
    log.warning("anaf re-authorization required", connection_id=claimed.id, cif=claimed.company_cif, reason=reason)
    return "reauthorization_required"


async def renew_due(deps: Deps) -> dict[str, int]:
    """The renewal job: every connection whose renewal time came (or whose renewing lease ran out)."""
    now = deps.clock.now()
    async with deps.uow() as uow:
        ids = [r[0] for r in (await uow.session.execute(
            select(anaf_connections.c.id).where(_claimable(now, force=False))
            .order_by(anaf_connections.c.next_renewal_at).limit(500))).all()]
    outcomes: dict[str, int] = {}
    for cid in ids:
        try:
            out = await renew_connection(deps, cid)
        except Exception as exc:  # one bad row must not stop the others
            log.exception("renewal crashed", connection_id=cid, error=type(exc).__name__)
            out = "error"
        outcomes[out] = outcomes.get(out, 0) + 1
    return outcomes


async def send_warnings(deps: Deps) -> int:
    """`auth.token-expiring` at each configured offset before the date a person must act, each exactly once."""
    s = deps.settings
    offsets = sorted(set(s.warning_offsets_days), reverse=True)
    if not offsets:
        return 0
    now = deps.clock.now()
    c = anaf_connections.c
    async with deps.uow() as uow:
        rows = (await uow.session.execute(select(anaf_connections).where(
            c.state.in_((D.ACTIVE, D.EXPIRING, D.RENEWING)),
            c.must_act_by <= now + timedelta(days=offsets[0]), c.must_act_by > now))).all()
    sent = 0
    for r in rows:
        due = D.warning_due(r.must_act_by, now, offsets, list(r.warnings_sent or []))
        if due is None:
            continue
        offset, settled = due
        new_list = sorted(set(list(r.warnings_sent or []) + settled), reverse=True)
        async with deps.uow() as uow:
            won = (await uow.session.execute(update(anaf_connections).where(
                c.id == r.id, c.warnings_sent == cast(list(r.warnings_sent or []), JSONB)).values(
                warnings_sent=new_list,
                state=case((c.state == D.ACTIVE, D.EXPIRING), else_=c.state),
                state_before_renewal=case((c.state == D.RENEWING, D.EXPIRING), else_=c.state_before_renewal),
                updated_at=now).returning(c.id))).first()
            if won is None:
                continue  # another replica sent it
            locale = await _locale_of(uow, r.user_id)
            left = D.days_left(r.must_act_by, now)
            horizon = r.family_expires_at is not None and r.family_expires_at <= r.refresh_expires_at
            uow.publish(TokenExpiring(connection_id=r.id, company_cif=r.company_cif, user_id=r.user_id,
                                      must_act_by=r.must_act_by, days_left=left, offset_days=offset,
                                      reason="horizon" if horizon else "refresh_expiry",
                                      message=D.expiring_message(r.company_cif, r.must_act_by, left, locale)))
            await uow.commit()
            sent += 1
    return sent


MUST_ACT_DAYS = Gauge("auth_connection_must_act_days",
                      "Days until the connection's holder must authorize again (0 when overdue)",
                      ["connection", "cif"])


async def export_deadline_metrics(deps: Deps) -> dict[str, float]:
    """Set `auth_connection_must_act_days` for every live connection; revoked ones lose their series."""
    now = deps.clock.now()
    c = anaf_connections.c
    async with deps.uow() as uow:
        rows = (await uow.session.execute(select(c.id, c.company_cif, c.must_act_by, c.state))).all()
    values: dict[str, float] = {}
    for r in rows:
        if r.state == D.REVOKED or r.must_act_by is None:
            try:
                MUST_ACT_DAYS.remove(r.id, r.company_cif)
            except KeyError:
                pass
            continue
        days = max((r.must_act_by - now).total_seconds() / 86400, 0.0)
        MUST_ACT_DAYS.labels(r.id, r.company_cif).set(round(days, 3))
        values[r.id] = days
    return values


async def run_lifecycle(deps: Deps) -> None:
    """One pass of the periodic job: warnings first (they concern the date a person must act), then renewals,
    then the deadline gauge SRE alerts on."""
    await send_warnings(deps)
    await renew_due(deps)
    await export_deadline_metrics(deps)


# ================================================================================================
# Internal: access tokens for other services
# ================================================================================================

async def _record_grant(deps: Deps, connection_id: str, caller: str, kind: str, outcome: str) -> None:
    async with deps.uow() as uow:
        await uow.session.execute(insert(access_token_grants).values(
            connection_id=connection_id, caller_service=caller[:100], kind=kind, outcome=outcome,
            granted_at=deps.clock.now()))
        await uow.commit()


def _unusable(c: Any) -> AppError:
    msg = c.reauth_message or (f"The ANAF connection for company CIF {c.company_cif} was revoked; a person must "
                               f"authorize again." if c.state == D.REVOKED else
                               f"The ANAF connection for company CIF {c.company_cif} needs a new authorization.")
    return Conflict(msg, code="reauthorization_required",
                    details={"connection_id": c.id, "company_cif": c.company_cif, "state": c.state,
                             "reason": c.reauth_reason or ("revoked" if c.state == D.REVOKED else "unknown")})


async def _load(deps: Deps, connection_id: str) -> Any:
    async with deps.uow() as uow:
        return (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.id == connection_id))
                ).first()


def _token_body(deps: Deps, c: Any) -> dict[str, Any]:
    return {"connection_id": c.id, "access_token": deps.box.decrypt(bytes(c.access_token_enc),
                                                                    aad=f"anaf:{c.id}:access"),
            "expires_at": c.access_expires_at, "certificate_serial": c.certificate_serial,
            "company_cif": c.company_cif, "status": c.state}


async def _wait_out_renewal(deps: Deps, connection_id: str, wait_seconds: float = 20.0) -> Any:
    """Single flight: another runner is refreshing; wait for it instead of refreshing again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    c = await _load(deps, connection_id)
    while c is not None and c.state == D.RENEWING and loop.time() < deadline:
        await asyncio.sleep(0.1)
        c = await _load(deps, connection_id)
    return c


async def access_token_for(deps: Deps, connection_id: str, caller: str) -> dict[str, Any]:
    """`GET /internal/connections/{id}/access-token`: a current access token; refreshed first if expired."""
    c = await _load(deps, connection_id)
    if c is None:
        raise NotFound("No ANAF connection with this id.", code="no_connection")
    if c.state == D.RENEWING:
        c = await _wait_out_renewal(deps, connection_id)
    if c.state in (D.REAUTH, D.REVOKED):
        await _record_grant(deps, c.id, caller, "access-token", c.state)
        raise _unusable(c)
    if c.access_expires_at <= deps.clock.now() + timedelta(seconds=60):
        await renew_connection(deps, c.id, force=True)
        c = await _wait_out_renewal(deps, connection_id)
        if c.state in (D.REAUTH, D.REVOKED) or c.access_expires_at <= deps.clock.now():
            await _record_grant(deps, c.id, caller, "access-token", "unavailable")
            if c.state in (D.REAUTH, D.REVOKED):
                raise _unusable(c)
            raise AppError("ANAF could not renew the expired access token right now; retry shortly.",
                           code="anaf_unavailable", status=503, details={"connection_id": c.id})
    await _record_grant(deps, c.id, caller, "access-token", "granted")
    return _token_body(deps, c)


async def access_token_for_cif(deps: Deps, cif: str, caller: str) -> dict[str, Any]:
    """The best connection of a company itself (its own CIF): active first, then the most recently authorized."""
    cif = _cif(cif)
    async with deps.uow() as uow:
        rows = (await uow.session.execute(select(anaf_connections).where(anaf_connections.c.company_cif == cif)
                                          .order_by(anaf_connections.c.authorized_at.desc()))).all()
    if not rows:
        raise NotFound(f"No ANAF connection for company CIF {cif}.", code="no_connection")
    rank = {D.ACTIVE: 0, D.EXPIRING: 0, D.RENEWING: 1, D.REAUTH: 2, D.REVOKED: 3}
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
    if c.state in D.LIVE_STATES and not recent:
        await renew_connection(deps, c.id, force=True)
    c = await _wait_out_renewal(deps, connection_id)
    if c.state in (D.REAUTH, D.REVOKED):
        await _record_grant(deps, c.id, caller, "refresh", c.state)
        raise _unusable(c)
    if c.state == D.RENEWING or (c.last_error and c.renew_attempts > 0):
        await _record_grant(deps, c.id, caller, "refresh", "retry_later")
        raise AppError("ANAF could not renew the access token right now; retry shortly.", code="anaf_unavailable",
                       status=503, details={"connection_id": c.id})
    await _record_grant(deps, c.id, caller, "refresh", "granted")
    return _token_body(deps, c)


async def token_grants(deps: Deps, connection_id: str) -> list[dict[str, Any]]:
    async with deps.uow() as uow:
        rows = (await uow.session.execute(select(access_token_grants).where(
            access_token_grants.c.connection_id == connection_id).order_by(access_token_grants.c.id))).all()
    return [{"caller_service": r.caller_service, "kind": r.kind, "outcome": r.outcome, "at": r.granted_at}
            for r in rows]


def now_utc() -> datetime:
    return datetime.now(UTC)

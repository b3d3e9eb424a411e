"""Platform accounts and sessions: sign-up, password login (slowed down, never locked), refresh-token rotation
with reuse detection, logout, the profile.

Sessions are JWT access tokens signed by the key ring plus a refresh token per session family; every command
runs in one unit of work and its events leave through the outbox in the same transaction.
"""
from __future__ import annotations

import asyncio
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from spvhub_common.errors import AppError, Conflict, NotFound, TooManyRequests, Unauthorized
from spvhub_common.events.auth import ProfileUpdated, UserRegistered
from spvhub_common.logging import get_logger
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_auth import domain
from spvhub_auth.adapters import repository as repo
from spvhub_auth.handlers import account_lifecycle, throttle
from spvhub_auth.handlers.deps import LOCALES, SLOW_DOWN, Deps, domain_error, sha256

log = get_logger(__name__)


def user_view(u: repo.User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "locale": u.locale, "created_at": u.created_at,
            "email_verified": u.email_verified_at is not None}


async def _issue_session(deps: Deps, uow: SqlUnitOfWork, user: repo.User, family_id: str | None = None, *,
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
    await repo.add_refresh_token(
        uow.session, token_id=rid, family_id=family_id, user_id=user.id, token_hash=sha256(refresh),
        issued_at=now, expires_at=now + timedelta(days=s.refresh_token_ttl_days),
        user_agent=(user_agent or None) and user_agent[:300], client_address=(client or None) and client[:100])
    return {"access_token": access, "token_type": "Bearer", "expires_in": s.access_token_ttl_seconds,
            "refresh_token": refresh, "user": user_view(user)}


async def sign_up(deps: Deps, *, email: str, password: str, name: str, locale: str = "ro",
                  invitation_id: str | None = None, client: str | None = None,
                  user_agent: str | None = None) -> dict[str, Any]:
    """Create a platform account (argon2id hash) and open a session; publishes `auth.user-registered` and asks
    for the e-mail with the address's verification link."""
    try:
        email = domain.normalize_email(email)
    except domain.DomainError as e:
        raise domain_error(e, 422) from None
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
        if await repo.email_taken(uow.session, email):
            raise Conflict("An account with this e-mail already exists; sign in instead.", code="email_taken")
        uid = str(uuid.uuid4())
        await repo.insert_user(uow.session, user_id=uid, email=email, name=name, locale=locale,
                               password_hash=pw_hash, now=now)
        user = await repo.get_user(uow.session, uid)
        assert user is not None
        session = await _issue_session(deps, uow, user, client=client, user_agent=user_agent)
        uow.publish(UserRegistered(user_id=uid, email=email, name=name, locale=locale, invitation_id=invitation_id,
                                   email_verified=False))
        await account_lifecycle.request_link(deps, uow, user, account_lifecycle.VERIFY_EMAIL, email, now)
        await uow.commit()
    log.info("user registered", user_id=uid)
    return session


_DUMMY_HASH: str | None = None


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
        user = await repo.user_by_email(uow.session, email)
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
        if not ok or user is None:
            await throttle.hit(uow, key, now, s.login_ip_window_seconds)
            delay = await throttle.account_failed(uow, email, acct, now, free=s.login_free_failures,
                                                  base=s.login_delay_base_seconds, cap=s.login_delay_max_seconds,
                                                  memory_seconds=s.login_failure_memory_seconds)
            await uow.commit()
            raise Unauthorized("Wrong e-mail or password.", code="invalid_credentials",
                               details={"retry_after_seconds": max(1, int(delay + 0.999))} if delay else None)
        if deps.hasher.check_needs_rehash(user.password_hash):
            new_hash = await asyncio.to_thread(deps.hasher.hash, password)
            await repo.update_user(uow.session, user.id, password_hash=new_hash)
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
                         message=SLOW_DOWN)
    async with deps.uow() as uow:
        row = await repo.refresh_token(uow.session, rid, for_update=True)
        if row is None or not hmac.compare_digest(row.token_hash, sha256(refresh_token or "")):
            raise Unauthorized("The refresh token is not valid; sign in again.", code="invalid_refresh_token")
        rotations, start = await throttle.hit(uow, f"refresh-user:{row.user_id}", now, s.refresh_window_seconds)
        if rotations > s.refresh_user_max:
            retry = max(1, int((start + timedelta(seconds=s.refresh_window_seconds) - now).total_seconds() + 0.999))
            await uow.commit()  # the count, nothing else: the token is not rotated
            raise TooManyRequests(SLOW_DOWN.format(retry=retry), code="rate_limited",
                                  details={"retry_after_seconds": retry})
        if row.revoked_at is not None:
            raise Unauthorized("This session was ended; sign in again.", code="session_revoked")
        if row.used_at is not None:
            await repo.revoke_family(uow.session, row.family_id, now)
            await uow.commit()
            log.warning("refresh token reuse detected; session family revoked", user_id=row.user_id)
            raise Unauthorized("This refresh token was already used, so the session was ended for safety. "
                               "Sign in again.", code="refresh_token_reused")
        if row.expires_at <= now:
            raise Unauthorized("The session expired; sign in again.", code="session_expired")
        await repo.mark_refresh_used(uow.session, rid, now)
        user = await repo.get_user(uow.session, row.user_id)
        if user is None:
            raise Unauthorized("The refresh token is not valid; sign in again.", code="invalid_refresh_token")
        session = await _issue_session(deps, uow, user, family_id=row.family_id, client=client,
                                       user_agent=user_agent)
        await uow.commit()
    return session


async def log_out(deps: Deps, *, refresh_token: str) -> None:
    rid = (refresh_token or "").split(".", 1)[0]
    async with deps.uow() as uow:
        row = await repo.refresh_token(uow.session, rid)
        if row is not None and hmac.compare_digest(row.token_hash, sha256(refresh_token or "")):
            await repo.revoke_family(uow.session, row.family_id, deps.wall.now())
            await uow.commit()


async def get_profile(deps: Deps, principal: Principal) -> dict[str, Any]:
    async with deps.uow() as uow:
        u = await repo.get_user(uow.session, principal.user_id)
    if u is None:
        raise NotFound("No such user.", code="no_user")
    return user_view(u)


async def update_profile(deps: Deps, principal: Principal, *, name: str | None, locale: str | None) -> dict[str, Any]:
    """Change the name or the language. The language is the user's one locale (API messages, e-mails,
    notifications); a change publishes `auth.profile-updated`, and the next access token carries it."""
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
        before = await repo.get_user(uow.session, principal.user_id, for_update=True)
        if before is None:
            raise NotFound("No such user.", code="no_user")
        await repo.update_user(uow.session, principal.user_id, **values)
        u = await repo.get_user(uow.session, principal.user_id)
        assert u is not None
        if (u.name, u.locale) != (before.name, before.locale):
            # The profile language is the user's one locale: services keeping a copy of it follow this event.
            uow.publish(ProfileUpdated(user_id=u.id, name=u.name, locale=u.locale, updated_at=values["updated_at"]))
        await uow.commit()
    return user_view(u)


async def signing_keys(deps: Deps) -> dict[str, Any]:
    """The JWKS other services verify platform tokens with (current and recently retired keys)."""
    jwks: dict[str, Any] = await deps.ring.jwks_fresh()
    return jwks

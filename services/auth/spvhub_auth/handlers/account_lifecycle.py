"""Use cases of the account lifecycle: e-mail verification, password reset by e-mail, change of password, change of
e-mail with re-verification, and the list of a person's sessions (refresh-token families).

Links e-mailed to a person are single-use, expiring and stored only as a hash (see orm.account_tokens): auth
publishes `auth.account-email-requested` with the request's id, never the token, and the notifier fetches the
link from `link_for` (internal) when it sends the e-mail. The public requests that e-mail a link (resend,
forgot password) answer 202 with the same body whether or not the address has an account.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from spvhub_common.errors import AppError, Conflict, NotFound, Unauthorized
from spvhub_common.events.auth import AccountEmailRequested, EmailVerified
from spvhub_common.logging import get_logger
from spvhub_common.security import Principal
from spvhub_common.uow import SqlUnitOfWork

from spvhub_auth import domain
from spvhub_auth.adapters import repository as repo
from spvhub_auth.handlers import throttle
from spvhub_auth.handlers.deps import SLOW_DOWN, Deps, sha256

log = get_logger(__name__)

VERIFY_EMAIL, CHANGE_EMAIL, RESET_PASSWORD = "verify_email", "change_email", "reset_password"
# the notifier's kind for each purpose
MAIL_KIND = {VERIFY_EMAIL: "email_verification", CHANGE_EMAIL: "email_change", RESET_PASSWORD: "password_reset"}
ACCEPTED = {"status": "accepted",
            "message": "Dacă adresa are un cont spvhub, am trimis un e-mail cu linkul. / "
                       "If the address has an spvhub account, an e-mail with the link is on its way."}


def _link_key(deps: Deps) -> bytes:
    """A key of its own for account links, derived from the token key spec (a secret that never leaves auth)."""
    spec = deps.settings.token_key_spec.get_secret_value().encode()
    return hmac.new(spec, b"spvhub-auth:account-links", hashlib.sha256).digest()


def _derive(deps: Deps, token_id: str, nonce: str) -> str:
    mac = hmac.new(_link_key(deps), f"{token_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _ttl(deps: Deps, purpose: str) -> timedelta:
    s = deps.settings
    if purpose == RESET_PASSWORD:
        return timedelta(minutes=s.password_reset_ttl_minutes)
    if purpose == CHANGE_EMAIL:
        return timedelta(hours=s.email_change_ttl_hours)
    return timedelta(hours=s.email_verification_ttl_hours)


def _bad_link() -> AppError:
    return AppError("This link is not valid any more (already used, replaced by a newer one, or expired). "
                    "Ask for a new one.", code="invalid_link", status=400,
                    messages={"ro": "Linkul nu mai este valabil (a fost deja folosit, înlocuit de unul mai nou sau "
                                    "a expirat). Cereți unul nou."})


def _weak(deps: Deps) -> AppError:
    n = deps.settings.password_min_length
    return AppError(f"The password must have at least {n} characters.", code="weak_password", status=422,
                    messages={"ro": f"Parola trebuie să aibă cel puțin {n} caractere."})


async def request_link(deps: Deps, uow: SqlUnitOfWork, user: repo.User, purpose: str, email: str,
                       now: datetime) -> str:
    """A new single-use link for `purpose` (earlier unused ones of the same purpose stop working) and the event
    that makes the notifier e-mail it. Returns the request id."""
    await repo.revoke_open_links(uow.session, user.id, (purpose,), now)
    tid = uuid.uuid4().hex
    nonce = secrets.token_urlsafe(32)
    await repo.insert_account_token(uow.session, token_id=tid, user_id=user.id, purpose=purpose, email=email,
                                    nonce=nonce, token_hash=sha256(_derive(deps, tid, nonce)), now=now,
                                    expires_at=now + _ttl(deps, purpose))
    uow.publish(AccountEmailRequested(user_id=user.id, kind=MAIL_KIND[purpose], email=email, name=user.name,
                                      locale=user.locale, request_id=tid))
    return tid


def _notice(uow: SqlUnitOfWork, user: repo.User, kind: str, email: str, new_email: str | None = None) -> None:
    uow.publish(AccountEmailRequested(user_id=user.id, kind=kind, email=email, name=user.name, locale=user.locale,
                                      new_email=new_email))


async def link_for(deps: Deps, token_id: str) -> dict[str, Any]:
    """Internal (notifier): the link of a request that can still be used, re-derived; 410 otherwise."""
    now = deps.wall.now()
    async with deps.uow() as uow:
        row = await repo.account_token(uow.session, token_id)
    if row is None:
        raise NotFound("No such account link.", code="account_link_not_found")
    if row.used_at is not None or row.revoked_at is not None or row.expires_at <= now:
        raise AppError("This link was used, replaced or expired; its e-mail must not be sent.",
                       code="account_link_gone", status=410)
    token = _derive(deps, row.id, row.nonce)
    path = deps.settings.reset_password_path if row.purpose == RESET_PASSWORD else deps.settings.verify_email_path
    return {"request_id": row.id, "purpose": row.purpose, "email": row.email, "expires_at": row.expires_at,
            "link": deps.settings.links_base + path.format(token=token)}


async def _token_row(uow: SqlUnitOfWork, token: str, purposes: tuple[str, ...], now: datetime) -> repo.AccountToken:
    if not token or len(token) > 100:
        raise _bad_link()
    row = await repo.account_token_by_hash(uow.session, sha256(token))
    if (row is None or row.purpose not in purposes or row.used_at is not None or row.revoked_at is not None
            or row.expires_at <= now):
        raise _bad_link()
    return row


async def _mark_verified(uow: SqlUnitOfWork, user: repo.User, email: str, now: datetime,
                         previous: str | None = None) -> None:
    await repo.set_email_verified(uow.session, user.id, email, now)
    uow.publish(EmailVerified(user_id=user.id, email=email, verified_at=now, previous_email=previous))


# ---------------------------------------------------------------- e-mail verification and change

async def verify_email(deps: Deps, token: str) -> dict[str, Any]:
    """Confirm an address from its link: the sign-up address, or the new address of a change."""
    now = deps.wall.now()
    async with deps.uow() as uow:
        row = await _token_row(uow, token, (VERIFY_EMAIL, CHANGE_EMAIL), now)
        user = await repo.get_user(uow.session, row.user_id, for_update=True)
        if user is None:
            raise _bad_link()
        if row.purpose == VERIFY_EMAIL:
            if row.email != user.email:  # the address changed since this link was sent
                raise _bad_link()
            if user.email_verified_at is None:
                await _mark_verified(uow, user, user.email, now)
        else:
            if await repo.email_taken(uow.session, row.email, except_user=user.id):
                raise Conflict("Another account uses this address now; the change cannot be completed.",
                               code="email_taken",
                               messages={"ro": "Adresa este folosită acum de alt cont; schimbarea nu se poate "
                                               "încheia."})
            await _mark_verified(uow, user, row.email, now, previous=user.email)
            await repo.revoke_open_links(uow.session, user.id, (VERIFY_EMAIL, CHANGE_EMAIL), now, except_id=row.id)
        await repo.mark_link_used(uow.session, row.id, now)
        await uow.commit()
    log.info("e-mail verified", user_id=row.user_id, purpose=row.purpose)
    return {"status": "verified", "email": row.email, "email_verified": True}


async def resend_verification(deps: Deps, *, email: str, client: str) -> dict[str, Any]:
    """Send the sign-up verification link again. Same answer whether the address has an account or not."""
    return await _public_request(deps, email=email, client=client, purpose=VERIFY_EMAIL)


async def forgot_password(deps: Deps, *, email: str, client: str) -> dict[str, Any]:
    """E-mail a password reset link. Same answer whether the address has an account or not."""
    return await _public_request(deps, email=email, client=client, purpose=RESET_PASSWORD)


async def _public_request(deps: Deps, *, email: str, client: str, purpose: str) -> dict[str, Any]:
    s = deps.settings
    now = deps.wall.now()
    address = (email or "").strip().lower()[:320]
    await throttle.limit(deps.uow, now, [(f"mail-ip:{client}", s.account_email_ip_max,
                                          s.account_email_window_seconds)], message=SLOW_DOWN)
    async with deps.uow() as uow:
        # counted for every address asked for, existing or not: the limit itself tells nothing
        sent, _ = await throttle.hit(uow, f"mail:{purpose}:{sha256(address)}", now, s.account_email_window_seconds)
        user = await repo.user_by_email(uow.session, address)
        if user is not None and sent <= s.account_email_address_max and not (
                purpose == VERIFY_EMAIL and user.email_verified_at is not None):
            await request_link(deps, uow, user, purpose, user.email, now)
        await uow.commit()
    return dict(ACCEPTED)


async def _check_password(deps: Deps, user: repo.User, password: str) -> None:
    try:
        await asyncio.to_thread(deps.hasher.verify, user.password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise Unauthorized("The current password is wrong.", code="wrong_password",
                           messages={"ro": "Parola actuală este greșită."}) from None


async def _user(uow: SqlUnitOfWork, user_id: str) -> repo.User:
    u = await repo.get_user(uow.session, user_id, for_update=True)
    if u is None:
        raise NotFound("No such user.", code="no_user")
    return u


async def change_email(deps: Deps, principal: Principal, *, new_email: str, password: str) -> dict[str, Any]:
    """Ask to move the account to a new address: the new one gets a link to confirm (nothing changes before),
    the old one is told. An address another account uses gets no link, and the answer does not say so."""
    try:
        address = domain.normalize_email(new_email)
    except domain.DomainError as e:
        raise AppError(e.message, code=e.code, status=422,
                       messages={"ro": "Introduceți o adresă de e-mail validă."}) from None
    now = deps.wall.now()
    async with deps.uow() as uow:
        user = await _user(uow, principal.user_id)
        await _check_password(deps, user, password)
        if address == user.email:
            raise AppError("This is already the account's address.", code="same_email", status=422,
                           messages={"ro": "Aceasta este deja adresa contului."})
        if not await repo.email_taken(uow.session, address):
            await request_link(deps, uow, user, CHANGE_EMAIL, address, now)
        _notice(uow, user, "email_changed", user.email, new_email=address)
        await uow.commit()
    return {"status": "pending", "pending_email": address,
            "message": "Confirmați noua adresă din linkul primit pe ea; până atunci contul rămâne pe adresa actuală. "
                       "/ Confirm the new address from the link sent to it; until then the account keeps the "
                       "current one."}


# ---------------------------------------------------------------- passwords

async def reset_password(deps: Deps, *, token: str, password: str) -> dict[str, Any]:
    """Set a new password from a reset link; every session of the account ends. The link also proves the
    address, so an unverified one becomes verified."""
    if len(password or "") < deps.settings.password_min_length:
        raise _weak(deps)
    pw_hash = await asyncio.to_thread(deps.hasher.hash, password)
    now = deps.wall.now()
    async with deps.uow() as uow:
        row = await _token_row(uow, token, (RESET_PASSWORD,), now)
        user = await _user(uow, row.user_id)
        if row.email != user.email:
            raise _bad_link()
        await repo.update_user(uow.session, user.id, password_hash=pw_hash, updated_at=now)
        if user.email_verified_at is None:
            await _mark_verified(uow, user, user.email, now)
        await repo.mark_link_used(uow.session, row.id, now)
        ended = await repo.revoke_sessions(uow.session, user.id, now)
        await throttle.account_succeeded(uow, user.email)
        _notice(uow, user, "password_changed", user.email)
        await uow.commit()
    log.info("password reset", user_id=row.user_id, sessions_ended=ended)
    return {"status": "password_reset", "sessions_ended": ended}


async def change_password(deps: Deps, principal: Principal, *, current_password: str,
                          new_password: str) -> dict[str, Any]:
    """Change the password (the current one required); every other session ends, this one stays."""
    if len(new_password or "") < deps.settings.password_min_length:
        raise _weak(deps)
    now = deps.wall.now()
    async with deps.uow() as uow:
        user = await _user(uow, principal.user_id)
        await _check_password(deps, user, current_password)
        pw_hash = await asyncio.to_thread(deps.hasher.hash, new_password)
        await repo.update_user(uow.session, user.id, password_hash=pw_hash, updated_at=now)
        ended = await repo.revoke_sessions(uow.session, user.id, now, keep_family=principal.claims.get("sid"))
        await repo.revoke_open_links(uow.session, user.id, (RESET_PASSWORD,), now)
        _notice(uow, user, "password_changed", user.email)
        await uow.commit()
    return {"status": "password_changed", "sessions_ended": ended}


# ---------------------------------------------------------------- sessions

async def list_sessions(deps: Deps, principal: Principal) -> dict[str, Any]:
    """The account's open sessions (one per sign-in, kept across token refreshes), newest use first."""
    now = deps.wall.now()
    async with deps.uow() as uow:
        rows = await repo.open_sessions(uow.session, principal.user_id, now)
    current = principal.claims.get("sid")
    seen: set[str] = set()
    items = []
    for r in rows:
        if r.family_id in seen:
            continue
        seen.add(r.family_id)
        items.append({"id": r.family_id, "created_at": r.created_at, "last_used_at": r.last_used_at,
                      "expires_at": r.expires_at, "user_agent": r.user_agent, "address": r.client_address,
                      "current": r.family_id == current})
    return {"items": items}


async def revoke_session(deps: Deps, principal: Principal, session_id: str) -> None:
    """End one session of the caller's: its refresh token stops working at once (an access token already issued
    lives out its few minutes)."""
    now = deps.wall.now()
    async with deps.uow() as uow:
        if not await repo.revoke_user_family(uow.session, principal.user_id, session_id[:64], now):
            raise NotFound("No such open session.", code="session_not_found",
                           messages={"ro": "Nu există o sesiune deschisă cu acest identificator."})
        await uow.commit()

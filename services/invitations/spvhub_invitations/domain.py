"""Invitation rules: input validation (e-mail, phone, name; the CIF is checked by spvhub_common.ids), the
single-use link token, statuses and expiry. Pure functions and values; no I/O."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email

TTL = timedelta(days=15)


class Status(StrEnum):
    PENDING = "pending"      # e-mailed, waiting for the representative to sign up from the link
    CLAIMED = "claimed"      # account created from the link; waiting for accept/decline in the inbox
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"      # not claimed within 15 days of (re)sending
    REVOKED = "revoked"      # withdrawn by the firm


OPEN = (Status.PENDING, Status.CLAIMED)


class InvalidInput(ValueError):
    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def normalize_email(raw: str) -> str:
    try:
        return validate_email((raw or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput("invalid_email", f"'{raw}' is not a valid e-mail address: {exc}", "email") from exc


_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")


def normalize_phone(raw: str) -> str:
    """Romanian national numbers (07xx xxx xxx, 02x/03x landlines), +40 / 0040 forms, or any E.164 number;
    returned in E.164 (`+40722123456`)."""
    s = _PHONE_SEPARATORS.sub("", raw or "")
    if s.startswith("00"):
        s = "+" + s[2:]
    if re.fullmatch(r"0[237][0-9]{8}", s):
        return "+40" + s[1:]
    if s.startswith("+40"):
        if re.fullmatch(r"\+40[237][0-9]{8}", s):
            return s
        raise InvalidInput("invalid_phone", f"'{raw}' is not a valid Romanian phone number "
                           "(+40 followed by 9 digits, e.g. +40 722 123 456).", "phone")
    if re.fullmatch(r"\+[1-9][0-9]{7,14}", s):
        return s
    raise InvalidInput("invalid_phone", f"'{raw}' is not a valid phone number: use a Romanian number "
                       "(0722 123 456) or the international form (+40 722 123 456).", "phone")


def normalize_name(raw: str) -> str:
    name = " ".join((raw or "").split())
    if len(name) < 2 or len(name) > 200:
        raise InvalidInput("invalid_name", "The representative's name must have 2 to 200 characters.", "name")
    return name


# ---------------------------------------------------------------- the link token
# The token is never stored anywhere. It is derived from a random 32-byte nonce (stored) with a server key
# (a secret, not in the database): token = b64url(HMAC-SHA256(key, "<invitation id>:<nonce>")). The
# database keeps the nonce and SHA-256(token) for look-up, so a database dump alone cannot produce a working
# link, while the internal link endpoint can re-derive the link whenever the notifier renders the e-mail.
# Re-sending draws a new nonce: the previous token's hash no longer matches anything.

def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def derive_token(key: bytes, invitation_id: str, nonce: str) -> str:
    mac = hmac.new(key, f"{invitation_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible_token(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]{20,100}", token or ""))


@dataclass(frozen=True)
class InvitationView:
    """What a status check needs of a stored invitation."""

    status: str
    expires_at: datetime


def effective_status(inv: InvitationView, now: datetime) -> Status:
    """A pending invitation past its expiry is expired even before the expiry job has marked it."""
    st = Status(inv.status)
    if st == Status.PENDING and now >= inv.expires_at:
        return Status.EXPIRED
    return st


def expires_at(sent_at: datetime) -> datetime:
    return sent_at + TTL

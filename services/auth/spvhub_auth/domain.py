"""Rules of the auth service: ANAF token lifetimes, renewal schedule, horizon warnings, re-authorization
reasons and the human messages that go with them. No I/O here."""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = timedelta(days=1)

ACTIVE, RENEWING, EXPIRING, REAUTH, REVOKED = "active", "renewing", "expiring", "reauthorization_required", "revoked"
LIVE_STATES = (ACTIVE, EXPIRING)

HORIZON_REACHED, CERTIFICATE_RENEWED, REVOKED_REASON, UNKNOWN = "horizon_reached", "certificate_renewed", "revoked", \
    "unknown"

SERVICE_CLAIMS = {"efactura": "efactura", "etransport": "etransport"}


class DomainError(Exception):
    """A rule was broken; `code` is stable, the message is for a person."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def normalize_email(raw: str) -> str:
    email = (raw or "").strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise DomainError("invalid_email", "Enter a valid e-mail address.")
    return email


def _b64json(segment: str) -> dict[str, Any]:
    pad = "=" * (-len(segment) % 4)
    claims = json.loads(base64.urlsafe_b64decode(segment + pad))
    if not isinstance(claims, dict):
        raise ValueError("a JWT payload is a JSON object")
    return claims


def jwt_claims(token: str) -> dict[str, Any]:
    """Claims of an ANAF JWT as received over TLS from the token endpoint (not re-verified: the platform has
    no ANAF public key; the token came straight from ANAF's token endpoint)."""
    try:
        return _b64json(token.split(".")[1])
    except (IndexError, ValueError) as exc:
        raise DomainError("anaf_token_unreadable", "ANAF returned a token the platform cannot read.") from exc


def _ts(claims: dict[str, Any], name: str) -> datetime | None:
    v = claims.get(name)
    return datetime.fromtimestamp(int(v), UTC) if isinstance(v, (int, float)) else None


@dataclass(frozen=True)
class TokenFacts:
    """What the platform reads from an ANAF token pair (never the tokens themselves in logs or events)."""

    serial: str
    services: list[str]
    access_issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    certificate_login_at: datetime | None  # `auth_time` of the refresh token, when ANAF/emulator gives it

    @classmethod
    def read(cls, access_token: str, refresh_token: str, now: datetime, expires_in: int | None) -> TokenFacts:
        a = jwt_claims(access_token)
        try:
            r = jwt_claims(refresh_token)
        except DomainError:
            r = {}
        serial = str(a.get("serial") or "")
        if not serial:
            for item in a.get("scope_data") or []:
                if isinstance(item, dict) and item.get("id") == "serial":
                    serial = str(item.get("value") or "")
        iat = _ts(a, "iat") or now
        exp = _ts(a, "exp") or (iat + timedelta(seconds=expires_in or 90 * 86400))
        rexp = _ts(r, "exp") or (iat + timedelta(days=365))
        auth_time = _ts(r, "auth_time")
        services = [s for s, claim in SERVICE_CLAIMS.items() if a.get(claim)]
        return cls(serial=serial, services=services, access_issued_at=iat, access_expires_at=exp,
                   refresh_expires_at=rexp, certificate_login_at=auth_time)


def family_horizon(login_at: datetime, horizon_days: int) -> datetime | None:
    return login_at + timedelta(days=horizon_days) if horizon_days > 0 else None


def must_act_by(refresh_expires_at: datetime, family_expires_at: datetime | None) -> datetime:
    """The date a person must act: the earliest of the refresh-token expiry and the family horizon."""
    return min(refresh_expires_at, family_expires_at) if family_expires_at else refresh_expires_at


def next_renewal(access_issued_at: datetime, access_expires_at: datetime, act_by: datetime,
                 fraction: float) -> datetime:
    """Renew at `fraction` of the access token's life, and no later than the date a person must act (a refresh
    then tells for certain whether ANAF still accepts the family)."""
    life = access_expires_at - access_issued_at
    return min(access_issued_at + life * fraction, act_by)


def days_left(act_by: datetime, now: datetime) -> int:
    return max(0, math.ceil((act_by - now) / DAY))


def warning_due(act_by: datetime, now: datetime, offsets: list[int], sent: list[int]) -> tuple[int, list[int]] | None:
    """The warning to send now, and every offset it settles. When several thresholds passed at once
    (the service was down, or the clock jumped) only the most urgent is sent: stale warnings help nobody."""
    passed = [o for o in sorted(set(offsets), reverse=True) if now >= act_by - timedelta(days=o) and o not in sent]
    if not passed or now >= act_by:
        return None
    return passed[-1], passed


def reauth_reason(description: str, now: datetime, act_by: datetime, family_expires_at: datetime | None) -> str:
    """Why ANAF refused a refresh (`invalid_grant` or a certificate refusal), as one of the catalogue reasons."""
    d = (description or "").lower()
    if "serial" in d and ("renew" in d or "replaced" in d):
        return CERTIFICATE_RENEWED
    if "family" in d or "new certificate login" in d:
        return HORIZON_REACHED
    if "revoked" in d or "no longer valid" in d or "already used" in d:
        return REVOKED_REASON
    if "expired" in d or now >= act_by or (family_expires_at is not None and now >= family_expires_at):
        return HORIZON_REACHED
    return UNKNOWN


REAUTH_MESSAGES = {
    "en": {
        HORIZON_REACHED: "ANAF requires a new certificate login for company CIF {cif}: the authorization has reached "
                         "its periodic limit and can no longer be renewed automatically. The certificate holder must "
                         "authorize again.",
        CERTIFICATE_RENEWED: "The certificate (serial {serial}) used for company CIF {cif} was replaced by a renewed "
                             "certificate, so ANAF refuses the old authorization. Authorize again with the new "
                             "certificate.",
        REVOKED_REASON: "ANAF revoked the authorization for company CIF {cif} (the certificate or the authorization "
                        "was revoked). The certificate holder must authorize again.",
        UNKNOWN: "ANAF refused to renew the authorization for company CIF {cif} without giving a reason. The "
                 "certificate holder must authorize again.",
    },
    "ro": {
        HORIZON_REACHED: "ANAF cere o nouă autentificare cu certificatul pentru firma cu CIF {cif}: autorizarea a "
                         "atins limita periodică și nu mai poate fi reînnoită automat. Titularul certificatului "
                         "trebuie să autorizeze din nou.",
        CERTIFICATE_RENEWED: "Certificatul (serie {serial}) folosit pentru firma cu CIF {cif} a fost înlocuit de un "
                             "certificat reînnoit, iar ANAF refuză vechea autorizare. Autorizați din nou cu noul "
                             "certificat.",
        REVOKED_REASON: "ANAF a revocat autorizarea pentru firma cu CIF {cif} (certificatul sau autorizarea au fost "
                        "revocate). Titularul certificatului trebuie să autorizeze din nou.",
        UNKNOWN: "ANAF a refuzat reînnoirea autorizării pentru firma cu CIF {cif} fără să precizeze motivul. "
                 "Titularul certificatului trebuie să autorizeze din nou.",
    },
}


def reauth_message(reason: str, cif: str, serial: str, locale: str = "ro") -> str:
    table = REAUTH_MESSAGES.get(locale, REAUTH_MESSAGES["ro"])
    return table.get(reason, table[UNKNOWN]).format(cif=cif, serial=serial)


def expiring_message(cif: str, act_by: datetime, left: int, locale: str = "ro") -> str:
    day = act_by.date().isoformat()
    if locale == "en":
        return (f"The ANAF authorization for company CIF {cif} must be renewed by the certificate holder by {day} "
                f"({left} day(s) left); after that, downloads from ANAF stop.")
    return (f"Autorizarea ANAF pentru firma cu CIF {cif} trebuie reînnoită de titularul certificatului până la {day} "
            f"(mai sunt {left} zile); după această dată descărcările din ANAF se opresc.")


def no_rights_message(cif: str, serial: str) -> str:
    return (f"The certificate you picked (serial {serial}) has no SPV rights on company CIF {cif}, so the "
            f"authorization was not saved. Most likely another company's certificate was picked, or this "
            f"certificate's SPV enrolment for CIF {cif} is less than a day old (ANAF needs about 24 hours before "
            f"e-Factura works). Pick the certificate registered in SPV for CIF {cif}, or try again tomorrow.")


AUTHORIZE_ERRORS = {
    "access_denied": ("anaf_access_denied",
                      "ANAF did not authorize the access: no certificate was presented, the PIN was wrong, the token "
                      "or smart card was not inserted, or the login was cancelled. Insert the token, check that the "
                      "certificate is enrolled in SPV, and start the authorization again."),
    "unsupported_response_type": ("anaf_authorize_error",
                                  "ANAF refused the authorization request (unsupported response type). This is a "
                                  "platform configuration problem; contact support."),
    "invalid_request": ("anaf_authorize_error",
                        "ANAF refused the authorization request (invalid request). Start the authorization again; if "
                        "it keeps failing, contact support."),
    "server_error": ("anaf_unavailable", "ANAF had an internal error during the login. Try again in a few minutes."),
    "temporarily_unavailable": ("anaf_unavailable", "ANAF is temporarily unavailable. Try again in a few minutes."),
}


def authorize_error(error: str) -> tuple[str, str]:
    return AUTHORIZE_ERRORS.get(error, ("anaf_authorize_error",
                                        f"ANAF did not complete the authorization (error '{error[:40]}'). Start the "
                                        f"authorization again."))


def backoff_seconds(attempt: int, base: int, cap: int) -> int:
    return int(min(base * (2 ** max(attempt - 1, 0)), cap))


def account_throttle_key(email: str) -> str:
    """The throttle key of one e-mail's consecutive failed logins (a hash: the table names no address)."""
    return "acct:" + hashlib.sha256(email.encode()).hexdigest()[:40]


def account_delay(failures: int, *, free: int, base: float, cap: float) -> float:
    """Seconds an account waits after `failures` consecutive failed logins: none for the first `free`, then
    base, 2*base, 4*base ... up to `cap`."""
    if failures < free:
        return 0.0
    return float(min(cap, base * (2 ** min(failures - free, 30))))

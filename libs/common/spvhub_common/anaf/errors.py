"""Typed ANAF errors and the classifier that maps ANAF's exact wording onto them.

Every exception carries ANAF's original text (scrubbed of anything token-shaped) so callers can
show it, and a `transient` flag so nobody retries a limit or rights error blindly.
"""

from __future__ import annotations

import re
from datetime import datetime

# Any JWT (ANAF's header segment is pretty-printed JSON, so it starts "ewog", not "eyJ").
_JWT_RE = re.compile(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{4,}")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def scrub(text: str) -> str:
    """Remove anything that looks like a JWT or bearer credential from `text`."""
    text = _JWT_RE.sub("[redacted]", text)
    return _BEARER_RE.sub(r"\1[redacted]", text)


class AnafError(Exception):
    """Base of every error raised by the ANAF client.

    `text` is ANAF's own message (or a short description of what went wrong), `endpoint` the
    logical endpoint name, `status` the HTTP status when a response was received.
    """

    transient: bool = False
    # ANAF's answer as received, when the caller may want to keep it (an upload's rejection `header`).
    response: bytes | None = None

    def __init__(self, text: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        self.text = scrub(text)
        self.endpoint = endpoint
        self.status = status
        super().__init__(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r}, endpoint={self.endpoint!r}, status={self.status!r})"


class NoMessages(AnafError):
    """Benign: ANAF has nothing for the query ("Nu exista mesaje ...", "Nu exista informatii ...")."""


class NoRights(AnafError):
    """The token's certificate holder has no SPV rights on `cif` (None when ANAF does not say which)."""

    def __init__(self, cif: str | None, text: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(text, endpoint=endpoint, status=status)
        self.cif = cif


class LimitReached(AnafError):
    """A limit stops this call until `resets_at` (aware UTC); never retry before that."""

    def __init__(
        self, text: str, *, resets_at: datetime | None, endpoint: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(text, endpoint=endpoint, status=status)
        self.resets_at = resets_at


class DailyLimitReached(LimitReached):
    """ANAF reported a daily cap ("S-au facut deja ... in cursul zilei"); `scope` is `kind:key`. `limit` is the
    cap ANAF's text names (e.g. 20 in "S-au facut deja 20 descarcari de mesaj"), read rather than assumed: the
    published values disagree with what ANAF enforces (anaf-api.md §11.16)."""

    def __init__(
        self,
        scope: str,
        text: str,
        *,
        resets_at: datetime | None,
        endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(text, resets_at=resets_at, endpoint=endpoint, status=status)
        self.scope = scope
        m = _CAP_RE.search(text)
        self.limit: int | None = int(m.group(1)) if m else None


class BudgetExhausted(LimitReached):
    """Our shared budget refuses the call before it reaches ANAF (daily cap for `kind`/`key` spent)."""

    def __init__(self, kind: str, key: str | None, resets_at: datetime) -> None:
        super().__init__(
            f"ANAF budget exhausted for {kind}" + (f" key={key}" if key else "") + f" until {resets_at.isoformat()}",
            resets_at=resets_at,
        )
        self.kind = kind
        self.key = key


class RateLimited(AnafError):
    """HTTP 429 from ANAF (1000 calls/minute); `retry_after` seconds if ANAF sent Retry-After."""

    transient = True

    def __init__(
        self, text: str, *, retry_after: float | None, endpoint: str | None = None, status: int | None = 429
    ) -> None:
        super().__init__(text, endpoint=endpoint, status=status)
        self.retry_after = retry_after


class Unauthorized(AnafError):
    """401/403 or the F5 login wall: the access token is expired, revoked or lacks the service; refresh it."""


class WafRejected(AnafError):
    """The F5 WAF answered an HTML "Request Rejected" page (often with HTTP 200)."""

    def __init__(
        self, text: str, *, support_id: str | None, endpoint: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(text, endpoint=endpoint, status=status)
        self.support_id = support_id


class MessageExpired(AnafError):
    """The message is past ANAF's 60-day download window; terminal. `reason` is ANAF's text."""

    @property
    def reason(self) -> str:
        return self.text


class ValidationError(AnafError):
    """ANAF refused the parameters or the document (bad CIF, window, page, standard, XML...)."""


AnafValidationError = ValidationError


class TooManyMessages(ValidationError):
    """listaMesajeFactura has more than 500 results: use the paginated endpoint."""


class PageOutOfRange(ValidationError):
    """The requested page is beyond `numar_total_pagini`."""


class InvalidDocument(ValidationError):
    """The XML was rejected (upload XSD/SAX failure, validare/transformare `nok`); `messages` lists ANAF's."""

    def __init__(
        self,
        text: str,
        *,
        messages: list[str] | None = None,
        endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(text, endpoint=endpoint, status=status)
        self.messages = messages if messages is not None else [self.text]


class NotFound(AnafError):
    """ANAF knows no such upload index / download id / transport declaration."""


class AnafUnavailable(AnafError):
    """Transient: 5xx, timeouts, connection errors, ANAF's "A aparut o eroare tehnica".

    `sent` is False only when no byte of the request can have reached ANAF (the connection was never made): only
    then is a call that files something (an upload) safe to repeat.
    """

    transient = True
    sent: bool = True


class UnexpectedResponse(AnafError):
    """A response the client cannot interpret (a new ANAF wording or format); not retried automatically."""


# --- OAuth ---------------------------------------------------------------------------------------


class OAuthError(AnafError):
    """An RFC 6749 error from the token endpoint; `error` is the code, `text` the description."""

    def __init__(self, error: str, description: str = "", *, endpoint: str | None = None, status: int | None = None):
        super().__init__(f"{error}: {description}" if description else error, endpoint=endpoint, status=status)
        self.error = error
        self.description = scrub(description)


class InvalidGrant(OAuthError):
    """Code or refresh token expired, used or unknown: a person must authorize again."""


class InvalidClient(OAuthError):
    """Client id/secret refused: configuration problem."""


class InvalidRequest(OAuthError):
    """Malformed token request."""


class AuthorizeError(AnafError):
    """The authorize redirect came back with `error=` (e.g. `access_denied`: no certificate, cancelled)."""

    def __init__(self, error: str, description: str = "", state: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error, endpoint="oauth.authorize")
        self.error = error
        self.description = scrub(description)
        self.state = state


class AccessDenied(AuthorizeError):
    """`error=access_denied`: no valid certificate presented, wrong PIN, or the user cancelled."""


_OAUTH_ERRORS: dict[str, type[OAuthError]] = {
    "invalid_grant": InvalidGrant,
    "invalid_client": InvalidClient,
    "unauthorized_client": InvalidClient,
    "invalid_request": InvalidRequest,
    "unsupported_grant_type": InvalidRequest,
}


def oauth_error(error: str, description: str = "", *, status: int | None = None) -> OAuthError:
    """Map an RFC 6749 error code onto its typed exception."""
    cls = _OAUTH_ERRORS.get(error, OAuthError)
    return cls(error, description, endpoint="oauth.token", status=status)


# --- business-text classification ---------------------------------------------------------------

_RIGHTS_CIF_RE = re.compile(r"Nu aveti drept in SPV pentru CIF\s*=\s*(\d+)")
_CAP_RE = re.compile(r"S-au (?:facut|incarcat) deja (\d+)")
_DAILY_RE = re.compile(r"S-au (?:facut|incarcat) deja .* in cursul zilei", re.S)
_SUPPORT_ID_RE = re.compile(r"support ID is:\s*([0-9A-Za-z-]+)", re.I)

# (prefix or fragment, exception class); order matters: first match wins.
_FRAGMENTS: list[tuple[str, type[AnafError]]] = [
    ("Nu exista mesaje", NoMessages),
    ("Nu exista informatii pentru aceasta solicitare", NoMessages),
    ("Nu aveti dreptul de inteorgare", NoRights),
    ("Nu aveti dreptul sa descarcati", NoRights),
    ("Nu exista niciun CIF", NoRights),
    ("Fisierul nu mai poate fi descarcat", MessageExpired),
    ("a trecut perioada de 60 de zile", MessageExpired),
    ("Lista de mesaje este mai mare decat", TooManyMessages),
    ("Pagina solicitata", PageOutOfRange),
    ("Fisierul transmis nu este valid", InvalidDocument),
    ("Nu exista factura cu id_incarcare", NotFound),
    ("nu exista inregistrata nici o factura", NotFound),
    ("Nu exista declaratia de transport", NotFound),
    ("A aparut o eroare tehnica", AnafUnavailable),
    ("nu este un numar", ValidationError),
    ("Numarul de zile trebuie", ValidationError),
    ("Valorile acceptate pentru parametrul", ValidationError),
    ("Valoarea acceptata pentru parametrul", ValidationError),
    ("valoarea acceptata este DA", ValidationError),
    ("nu poate fi mai vechi de", ValidationError),
    ("nu poate fi <=", ValidationError),
    ("nu poate in viitor", ValidationError),
    ("Marime fisier transmis mai mare", ValidationError),
    ("executari silite", ValidationError),
    ("obligatori", ValidationError),
    ("Trebuie sa aveti atasat in request", ValidationError),
    ("UIT-ul nu poate fi identificat", ValidationError),
]


def is_waf_page(body: str) -> bool:
    """True for the F5 "Request Rejected" HTML page."""
    head = body[:4000]
    return "Request Rejected" in head or ("support ID" in head and "<html" in head.lower())


def waf_error(body: str, *, endpoint: str | None, status: int | None) -> WafRejected:
    m = _SUPPORT_ID_RE.search(body)
    support_id = m.group(1) if m else None
    return WafRejected(
        "Request Rejected" + (f" (support ID {support_id})" if support_id else ""),
        support_id=support_id,
        endpoint=endpoint,
        status=status,
    )


def classify_text(
    text: str,
    *,
    endpoint: str | None = None,
    status: int | None = None,
    cif: str | None = None,
    limit_scope: str | None = None,
    resets_at: datetime | None = None,
) -> AnafError:
    """Turn one ANAF business message into its typed exception.

    `cif` is the CIF the call was about (used when ANAF's rights text does not name one);
    `limit_scope`/`resets_at` fill a DailyLimitReached.
    """
    if _DAILY_RE.search(text):
        return DailyLimitReached(
            limit_scope or (endpoint or "unknown"), text, resets_at=resets_at, endpoint=endpoint, status=status
        )
    m = _RIGHTS_CIF_RE.search(text)
    if m:
        return NoRights(m.group(1), text, endpoint=endpoint, status=status)
    for fragment, cls in _FRAGMENTS:
        if fragment in text:
            if cls is NoRights:
                return NoRights(cif, text, endpoint=endpoint, status=status)
            return cls(text, endpoint=endpoint, status=status)
    return UnexpectedResponse(text, endpoint=endpoint, status=status)

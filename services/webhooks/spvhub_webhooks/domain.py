"""Rules of webhooks: which catalogue events an endpoint may subscribe to and which companies each is about, the
Standard Webhooks message id and signature, the retry schedule, and which targets are allowed (no SSRF)."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from spvhub_common.errors import AppError
from spvhub_common.events import Event
from spvhub_common.events import auth as ev_auth
from spvhub_common.events import efactura as ev_ef
from spvhub_common.events import etransport as ev_et
from spvhub_common.events import portfolio as ev_pf
from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Subscribable:
    """A catalogue event an integrator may receive, and the companies it is about (the CIFs the tenant must be
    entitled to see for it to be delivered)."""

    cls: type[Event]
    description: str
    cifs: Callable[[Event], list[str]]

    @property
    def type(self) -> str:
        return str(self.cls.event_type())


def _field(ev: Event, name: str) -> str:
    # each catalogue class names its company field differently; the table below says which one to read
    return str(getattr(ev, name))


def _cif(ev: Event) -> list[str]:
    return [_field(ev, "cif")]


def _company_cif(ev: Event) -> list[str]:
    return [_field(ev, "company_cif")]


def _carrier(ev: Event) -> list[str]:
    return [_field(ev, "carrier_cif")]


def _both_sides(ev: Event) -> list[str]:
    # a collaboration is news for the firm and for the client: each side's tenant hears of it
    return [_field(ev, "firm_cif"), _field(ev, "client_cif")]


# Only events about one company's own ANAF data or its collaborations; nothing that carries people's contact
# details (invitations), other tenants' rights (discovery, entitlements) or the access model itself.
SUBSCRIBABLE: tuple[Subscribable, ...] = (
    Subscribable(ev_ef.InvoiceDownloaded, "An invoice (received or sent) was downloaded from SPV and archived.", _cif),
    Subscribable(ev_ef.InvoiceErrorReceived, "ANAF answered an upload with an error message.", _cif),
    Subscribable(ev_ef.InvoiceSubmitted, "An invoice was uploaded to ANAF.", _cif),
    Subscribable(ev_ef.InvoiceAccepted, "A submitted invoice was accepted by ANAF.", _cif),
    Subscribable(ev_ef.InvoiceRejected, "A submitted invoice was rejected.", _cif),
    Subscribable(ev_ef.FilingDeadlineApproaching, "An invoice's legal filing deadline is near.", _cif),
    Subscribable(ev_ef.FiledLate, "An invoice was filed after its legal deadline.", _cif),
    Subscribable(ev_ef.MessageExpiring, "An SPV message will be purged by ANAF before it could be archived.", _cif),
    Subscribable(ev_ef.MessageLost, "An SPV message could not be archived before ANAF purged it.", _cif),
    Subscribable(ev_ef.DocumentFlagged, "A downloaded document has a problem (signature, parse).", _cif),
    Subscribable(ev_ef.SyncCompleted, "A synchronisation with SPV finished.", _cif),
    Subscribable(ev_et.TransportAssigned, "A transport was assigned to the company as carrier.", _carrier),
    Subscribable(ev_et.TransportUpdated, "A carried transport changed.", _carrier),
    Subscribable(ev_et.UitExpiring, "A transport's UIT code is about to expire.", _carrier),
    Subscribable(ev_auth.TokenExpiring, "The company's ANAF authorization expires soon.", _company_cif),
    Subscribable(ev_auth.ReauthorizationRequired, "The company's ANAF authorization must be renewed.",
                 _company_cif),
    Subscribable(ev_auth.ConnectionRevoked, "An ANAF authorization of the company was revoked.", _company_cif),
    Subscribable(ev_pf.AccessLost, "SPV access for the company was lost: its sync stopped.", _cif),
    Subscribable(ev_pf.CollaborationStarted, "An accounting firm and a client started collaborating.", _both_sides),
    Subscribable(ev_pf.CollaborationEnded, "A collaboration between a firm and a client ended.", _both_sides),
)
BY_TYPE: dict[str, Subscribable] = {s.type: s for s in SUBSCRIBABLE}
BY_CLASS: dict[type[Event], Subscribable] = {s.cls: s for s in SUBSCRIBABLE}


def unknown_event_types(types: list[str]) -> list[str]:
    return [t for t in types if t not in BY_TYPE]


# ---------------------------------------------------------------- Standard Webhooks

def new_secret() -> str:
    """24 random bytes, base64, with the scheme's `whsec_` prefix (what the integrator configures)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_id(event_id: str, endpoint_id: str) -> str:
    """Stable per (event, endpoint): every attempt and replay of one event to one endpoint carries the same id, so a
    receiver can dedupe on it; two endpoints never share one."""
    return "msg_" + hashlib.sha256(f"{endpoint_id}:{event_id}".encode()).hexdigest()[:32]


def signed_headers(secret: str, msg_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers: `webhook-signature` = v1,base64(HMAC-SHA256(secret, id.timestamp.body))."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body)}


# ---------------------------------------------------------------- retries

def next_delay(attempt: int, base: float, cap: float) -> timedelta:
    """Exponential backoff after the `attempt`-th failure (1-based), capped, with +-20% jitter so endpoints that came
    back are not hit by every retry at once."""
    raw = min(base * (2 ** min(attempt - 1, 30)), cap)
    return timedelta(seconds=raw * random.uniform(0.8, 1.2))


# ---------------------------------------------------------------- targets

class TargetRefused(OSError):
    """The target URL or one of its addresses is not allowed (scheme, private or local range)."""


def target_refused(url: str, reason: str) -> AppError:
    return AppError(
        f"The endpoint URL is not allowed: {reason}.", code="webhook_target_refused", status=422,
        details={"url": url, "reason": reason},
        messages={"ro": f"Adresa endpoint-ului nu este permisă: {reason}."})


def address_allowed(addr: str) -> bool:
    """Only public unicast addresses: never private, loopback, link-local, multicast, reserved or unspecified
    (an IPv4-mapped IPv6 address is judged as the IPv4 address it carries)."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                       or ip.is_reserved or ip.is_unspecified)


def check_url_shape(url: str, *, strict: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of a valid target, or AppError 422 `webhook_target_refused`. `strict` (outside dev and
    test): HTTPS only, and a literal IP address must be a public one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise target_refused(url, "not a valid URL") from exc
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in ("http", "https") or not host:
        raise target_refused(url, "an http(s) URL with a host is required")
    if parts.username or parts.password:
        raise target_refused(url, "credentials in the URL are not allowed")
    if strict and scheme != "https":
        raise target_refused(url, "HTTPS is required")
    if strict:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise target_refused(url, "a loopback address")
        try:
            ipaddress.ip_address(host)
            literal = True
        except ValueError:
            literal = False
        if literal and not address_allowed(host):
            raise target_refused(url, "a private, loopback or link-local address")
    return scheme, host, port or (443 if scheme == "https" else 80)

"""Notification kinds and their rules: who is told, whether e-mail is on by default, where the action link
points, and the retry schedule of e-mails. Pure; no I/O."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

LOCALES = ("ro", "en")
DEFAULT_LOCALE = "ro"


@dataclass(frozen=True)
class Kind:
    name: str
    link: str  # path under the app base URL; {placeholders} from the params
    inbox: bool = True  # delivered to the in-app inbox (False: e-mail only, e.g. to a person without account)
    email_default: bool = True


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("invitation", "", inbox=False),  # to the client's representative; the link comes from invitations
    Kind("invitation_received", "/inbox"),  # the claiming user: accept or decline (actionable)
    Kind("invitation_accepted", "/companies/{firm_cif}/invitations"),
    Kind("invitation_declined", "/companies/{firm_cif}/invitations"),
    Kind("invitation_expired", "/companies/{firm_cif}/invitations"),
    Kind("token_expiring", "/companies/{cif}/authorization"),
    Kind("reauthorization_required", "/companies/{cif}/authorization"),
    Kind("authorization_renewed", "/companies/{cif}/authorization"),
    Kind("invoice_digest", "/companies/{cif}/invoices"),
    Kind("invoice_error", "/companies/{cif}/invoices/errors"),
    Kind("invoice_rejected", "/companies/{cif}/submissions/{submission_id}"),  # to the sender
    Kind("message_expiring", "/companies/{cif}/invoices"),
    # the filing clock: the company's people and its collaborating accounting firm's
    Kind("filing_deadline_approaching", "/companies/{cif}/submissions/{submission_id}"),
    Kind("filed_late", "/companies/{cif}/submissions/{submission_id}"),
    Kind("transport_assigned", "/companies/{cif}/transports"),
    Kind("uit_expiring", "/companies/{cif}/transports"),
    Kind("access_lost", "/companies/{cif}"),
    Kind("webhook_disabled", "/companies/{cif}"),  # the tenant company's owners and administrators
    Kind("collaboration_started", "/companies/{client_cif}"),  # both companies' owners and administrators
    Kind("collaboration_ended", "/companies/{client_cif}"),
    Kind("join_requested", "/companies/{cif}/members"),  # the owners and administrators who decide
    Kind("company_verified", "/companies/{cif}"),  # the person who just proved control
    # the account's own e-mails, sent to an address (not an inbox) and never switched off; the first three carry a
    # single-use link the notifier fetches from auth when it sends them
    Kind("email_verification", "", inbox=False),
    Kind("email_change", "", inbox=False),  # to the new address: confirm it
    Kind("password_reset", "", inbox=False),
    Kind("email_changed", "/account", inbox=False),  # to the old address: a change was asked for
    Kind("password_changed", "/account", inbox=False),
)}
LINKED_KINDS = {"invitation", "email_verification", "email_change", "password_reset"}  # the link comes with the send
ACCOUNT_KINDS = {"email_verification", "email_change", "password_reset", "email_changed", "password_changed"}


def action_url(base: str, kind: str, params: dict[str, Any], paths: dict[str, str] | None = None) -> str:
    """The person-facing link: the UI base plus the kind's path (`paths` overrides the defaults per kind)."""
    if kind in LINKED_KINDS:
        return str(params.get("link", ""))
    link = (paths or {}).get(kind) or KINDS[kind].link
    # the filing clock about something that is no submission: no submission page to link to
    if kind == "filed_late" and params.get("filed_outside"):
        link = "/companies/{cif}/invoices"  # a sent invoice filed outside spvhub
    elif kind == "filing_deadline_approaching" and params.get("draft_id"):
        link = "/companies/{cif}/submissions"  # a draft not filed yet
    try:
        return base.rstrip("/") + link.format(**params)
    except (KeyError, IndexError):
        return base.rstrip("/") + "/inbox"


def inbox_actions(kind: str, params: dict[str, Any], action_state: str | None) -> list[dict[str, str]]:
    """Actionable items link to the owning service's commands (the gateway routes /api/invitations)."""
    if kind != "invitation_received" or action_state is not None:
        return []
    iid = params["invitation_id"]
    return [{"action": "accept", "method": "POST", "href": f"/api/invitations/{iid}/accept"},
            {"action": "decline", "method": "POST", "href": f"/api/invitations/{iid}/decline"}]


@dataclass
class Notice:
    """One thing to tell: a kind, the company it is about, template parameters, and to whom."""

    kind: str
    params: dict[str, Any]
    cif: str | None = None
    users: list[str] = field(default_factory=list)
    email_to: str | None = None  # a direct address (no account): e-mail only
    email_locale: str | None = None


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: base, 2*base, 4*base, ... capped."""
    d: float = min(cap, base * 2.0 ** max(0, attempt - 1))
    return d * random.uniform(0.8, 1.0)


def normalize_locale(value: str | None) -> str:
    v = (value or "").lower()[:2]
    return v if v in LOCALES else DEFAULT_LOCALE

"""What every section says about a stored invitation: its status as of now, its API view, the fields its events
share, and the 410 of something that can no longer be used."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from spvhub_common.errors import AppError
from spvhub_common.events.invitations import InvitationSent
from spvhub_common.pii import is_person_key

from spvhub_invitations import domain
from spvhub_invitations.adapters.repository import Invitation
from spvhub_invitations.domain import Status


class Gone(AppError):
    status, code = 410, "gone"


def status_of(inv: Invitation, now: datetime) -> Status:
    """The status as of `now` (a pending invitation past its expiry is expired before the job marks it)."""
    return domain.effective_status(domain.InvitationView(inv.status, inv.expires_at), now)


def client_identity(cif: str, tax_id: str | None) -> dict[str, Any]:
    """`client_kind` and `client_tax_id`: the CIF; a natural person's CNP masked (nobody reads an invitation as one
    of the person's own members), the person key when the CNP is not known here."""
    if not is_person_key(cif):
        return {"client_kind": "cif", "client_tax_id": cif}
    return {"client_kind": "cnp", "client_tax_id": tax_id or cif}


def view(inv: Invitation, now: datetime, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The API shape of an invitation (the status accounts for an expiry the job has not marked yet)."""
    names = names or {}
    return {"id": inv.id, "firm_cif": inv.firm_cif, "firm_name": names.get(inv.firm_cif),
            "client_cif": inv.client_cif, **client_identity(inv.client_cif, inv.client_tax_id),
            "client_name": names.get(inv.client_cif), "name": inv.name, "email": inv.email, "phone": inv.phone,
            "locale": inv.locale,
            "status": status_of(inv, now).value, "created_at": inv.created_at, "sent_at": inv.sent_at,
            "expires_at": inv.expires_at, "send_count": inv.send_count, "claimed_by": inv.claimed_by,
            "claimed_at": inv.claimed_at, "answered_at": inv.answered_at, "expired_at": inv.expired_at,
            "revoked_at": inv.revoked_at}


def event_base(inv: Invitation, names: dict[str, str]) -> dict[str, Any]:
    """The fields every invitations event carries."""
    return {"invitation_id": inv.id, "firm_cif": inv.firm_cif, "client_cif": inv.client_cif,
            "firm_name": names.get(inv.firm_cif), "client_name": names.get(inv.client_cif)}


def sent_event(inv: Invitation, names: dict[str, str], resent: bool) -> InvitationSent:
    return InvitationSent(**event_base(inv, names), email=inv.email, name=inv.name, phone=inv.phone,
                          locale=inv.locale, expires_at=inv.expires_at, resent=resent)

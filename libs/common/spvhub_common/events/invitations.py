"""Events published by the invitations service. The invitation token never travels: only the invitation id
(the notifier asks invitations for the link over `GET /internal/invitations/{id}/link` when it renders)."""
from __future__ import annotations

from datetime import datetime

from spvhub_common.events.base import Event, register


class _Invitation(Event):
    key_field = "client_cif"
    invitation_id: str
    firm_cif: str
    client_cif: str
    firm_name: str | None = None
    client_name: str | None = None


@register
class InvitationSent(_Invitation):
    """Sent for the first time or re-sent (`resent`); a re-send kills the previous link."""

    topic = "invitations.invitation-sent"
    email: str
    name: str
    expires_at: datetime
    phone: str | None = None
    locale: str = "ro"
    resent: bool = False


@register
class InvitationClaimed(_Invitation):
    """The representative created an account from the link: add the client company to `user_id`'s account
    (pre-filled from the registry) and create a pending collaboration."""

    topic = "invitations.invitation-claimed"
    user_id: str


@register
class InvitationAccepted(_Invitation):
    topic = "invitations.invitation-accepted"
    user_id: str


@register
class InvitationDeclined(_Invitation):
    topic = "invitations.invitation-declined"
    user_id: str


@register
class InvitationExpired(_Invitation):
    topic = "invitations.invitation-expired"
    expired_at: datetime | None = None


@register
class InvitationRevoked(_Invitation):
    """The firm withdrew the invitation (before it was answered); its link no longer works."""

    topic = "invitations.invitation-revoked"
    revoked_by: str
    claimed_by: str | None = None

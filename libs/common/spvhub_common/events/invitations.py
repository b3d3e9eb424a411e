"""Events published by the invitations service (the token itself never travels; only its id)."""
from __future__ import annotations

from datetime import datetime

from spvhub_common.events.base import Event, register


class _Invitation(Event):
    key_field = "client_cif"
    invitation_id: str
    firm_cif: str
    client_cif: str


@register
class InvitationSent(_Invitation):
    topic = "invitations.invitation-sent"
    email: str
    name: str
    expires_at: datetime


@register
class InvitationClaimed(_Invitation):
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

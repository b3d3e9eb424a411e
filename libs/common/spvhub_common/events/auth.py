"""Events published by the auth service. Tokens never appear here."""
from __future__ import annotations

from datetime import datetime

from spvhub_common.events.base import Event, register


@register
class UserRegistered(Event):
    topic = "auth.user-registered"
    key_field = "user_id"
    user_id: str
    email: str
    name: str
    locale: str = "ro"
    invitation_id: str | None = None
    # auth sends False at sign-up, until the person confirms the address from the e-mailed link
    # (`auth.email-verified`). Absent in events from before e-mail verification existed: those accounts were
    # marked verified by the upgrade, hence the default.
    email_verified: bool = True


@register
class EmailVerified(Event):
    """The person proved control of `email` (the sign-up address, or a new address after a change)."""
    topic = "auth.email-verified"
    key_field = "user_id"
    user_id: str
    email: str
    verified_at: datetime
    previous_email: str | None = None  # set when this confirms a change of address


@register
class ProfileUpdated(Event):
    """The person changed their name or language. `locale` is the one language of the user: the API's messages,
    the e-mails and the notifications are all in it (copies of it in other services follow this event)."""
    topic = "auth.profile-updated"
    key_field = "user_id"
    user_id: str
    name: str
    locale: str
    updated_at: datetime


@register
class AccountEmailRequested(Event):
    """An account e-mail to send: `email_verification`, `email_change` (to the new address), `password_reset`
    carry a link the notifier fetches from auth's internal endpoint at send time by `request_id` (the token never
    travels here); `email_changed` (to the old address) and `password_changed` are notices without a link."""
    topic = "auth.account-email-requested"
    key_field = "user_id"
    user_id: str
    kind: str
    email: str
    name: str = ""
    locale: str = "ro"
    request_id: str | None = None
    new_email: str | None = None  # email_changed: the address asked for (told to the old one)


@register
class ConnectionAuthorized(Event):
    topic = "auth.connection-authorized"
    key_field = "company_cif"
    connection_id: str
    company_cif: str
    user_id: str
    holder_name: str
    certificate_serial: str
    services: list[str]
    authorized_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime
    must_act_by: datetime
    via_delegation: bool = False
    next_renewal_at: datetime | None = None
    # ANAF confirmed right after the callback that the certificate has SPV rights on `company_cif`; the
    # authorizing member is then verified for the company. False when the check could not complete.
    rights_confirmed: bool = True


@register
class TokenRefreshed(Event):
    topic = "auth.token-refreshed"
    key_field = "company_cif"
    connection_id: str
    company_cif: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    after_warning: bool = False
    must_act_by: datetime | None = None
    next_renewal_at: datetime | None = None


@register
class TokenExpiring(Event):
    topic = "auth.token-expiring"
    key_field = "company_cif"
    connection_id: str
    company_cif: str
    user_id: str
    must_act_by: datetime
    days_left: int
    offset_days: int | None = None  # which configured warning (30, 14, 7, 1) this is
    reason: str = "horizon"  # horizon (periodic re-authorization) | refresh_expiry
    message: str = ""


@register
class ReauthorizationRequired(Event):
    topic = "auth.reauthorization-required"
    key_field = "company_cif"
    connection_id: str
    company_cif: str
    user_id: str
    reason: str  # horizon_reached | certificate_renewed | revoked | unknown
    message: str
    certificate_serial: str = ""


@register
class ConnectionRevoked(Event):
    topic = "auth.connection-revoked"
    key_field = "company_cif"
    connection_id: str
    company_cif: str
    user_id: str
    reason: str

"""Use cases of the notifier, one module per section: `notices` (consumed events -> notices), `read_models`
(users and companies), `delivery` (inbox items and e-mail outbox rows, idempotent per event, channel and recipient),
`digest` and `sender` (the jobs), `inbox` and `preferences` (the API's commands). The routing table of consumed
events is at the bottom."""
from __future__ import annotations

from spvhub_common.events import Event
from spvhub_common.events.auth import (
    AccountEmailRequested,
    EmailVerified,
    ProfileUpdated,
    ReauthorizationRequired,
    TokenExpiring,
    TokenRefreshed,
    UserRegistered,
)
from spvhub_common.events.efactura import (
    FiledLate,
    FilingDeadlineApproaching,
    InvoiceDownloaded,
    InvoiceErrorReceived,
    InvoiceRejected,
    MessageExpiring,
)
from spvhub_common.events.etransport import TransportAssigned, UitExpiring
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
    InvitationRevoked,
    InvitationSent,
)
from spvhub_common.events.portfolio import (
    AccessLost,
    CollaborationEnded,
    CollaborationStarted,
    CompanyRegistered,
    CompanyUpdated,
    JoinRequested,
    MembershipVerified,
)
from spvhub_common.events.webhooks import EndpointDisabled
from spvhub_common.runtime import EventHandler

from spvhub_notifier.handlers.delivery import deliver
from spvhub_notifier.handlers.deps import Deps
from spvhub_notifier.handlers.digest import DIGEST_ITEMS_SHOWN, run_digests
from spvhub_notifier.handlers.inbox import list_inbox, mark_all_read, mark_read, unread_count
from spvhub_notifier.handlers.notices import (
    on_access_lost,
    on_account_email,
    on_collaboration_ended,
    on_collaboration_started,
    on_filed_late,
    on_filing_deadline_approaching,
    on_invitation_accepted,
    on_invitation_claimed,
    on_invitation_declined,
    on_invitation_expired,
    on_invitation_revoked,
    on_invitation_sent,
    on_invoice_downloaded,
    on_invoice_error,
    on_invoice_rejected,
    on_join_requested,
    on_membership_verified,
    on_message_expiring,
    on_reauthorization_required,
    on_token_expiring,
    on_token_refreshed,
    on_transport_assigned,
    on_uit_expiring,
    on_webhook_disabled,
)
from spvhub_notifier.handlers.preferences import EMAIL_KINDS, get_preferences, update_preferences
from spvhub_notifier.handlers.read_models import (
    on_company,
    on_email_verified,
    on_profile_updated,
    on_user_registered,
)
from spvhub_notifier.handlers.sender import send_due_emails

__all__ = [
    "DIGEST_ITEMS_SHOWN", "EMAIL_KINDS", "EVENT_HANDLERS", "READ_MODEL_EVENTS", "Deps", "deliver",
    "get_preferences", "list_inbox", "mark_all_read", "mark_read", "run_digests", "send_due_emails",
    "unread_count", "update_preferences",
]

# consumed by `notifier.read-models`; every other event of the table by `notifier.notifications`
READ_MODEL_EVENTS: frozenset[type[Event]] = frozenset({UserRegistered, ProfileUpdated, EmailVerified,
                                                       CompanyRegistered, CompanyUpdated})

EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    UserRegistered: on_user_registered,
    ProfileUpdated: on_profile_updated,
    EmailVerified: on_email_verified,
    CompanyRegistered: on_company,
    CompanyUpdated: on_company,
    InvitationSent: on_invitation_sent,
    InvitationClaimed: on_invitation_claimed,
    InvitationAccepted: on_invitation_accepted,
    InvitationDeclined: on_invitation_declined,
    InvitationExpired: on_invitation_expired,
    InvitationRevoked: on_invitation_revoked,
    TokenExpiring: on_token_expiring,
    ReauthorizationRequired: on_reauthorization_required,
    TokenRefreshed: on_token_refreshed,
    InvoiceDownloaded: on_invoice_downloaded,
    InvoiceErrorReceived: on_invoice_error,
    InvoiceRejected: on_invoice_rejected,
    MessageExpiring: on_message_expiring,
    FilingDeadlineApproaching: on_filing_deadline_approaching,
    FiledLate: on_filed_late,
    TransportAssigned: on_transport_assigned,
    UitExpiring: on_uit_expiring,
    AccessLost: on_access_lost,
    EndpointDisabled: on_webhook_disabled,
    CollaborationStarted: on_collaboration_started,
    CollaborationEnded: on_collaboration_ended,
    JoinRequested: on_join_requested,
    MembershipVerified: on_membership_verified,
    AccountEmailRequested: on_account_email,
}

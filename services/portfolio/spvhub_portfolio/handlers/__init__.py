"""Use cases of the portfolio service, one module per section: access (grants and `portfolio.access-changed`),
members and their verification, companies and ANAF's registry, entitlements, connections (auth's events),
discovery of SPV rights and the candidate list, collaborations (the invitations service's events), and the firm's
portfolio view.

Every command runs in one unit of work (one transaction); the table at the bottom maps consumed events to
handlers.
"""
from __future__ import annotations

from spvhub_common.events import Event
from spvhub_common.events.auth import (
    ConnectionAuthorized,
    ConnectionRevoked,
    EmailVerified,
    ReauthorizationRequired,
    TokenRefreshed,
    UserRegistered,
)
from spvhub_common.events.invitations import (
    InvitationAccepted,
    InvitationClaimed,
    InvitationDeclined,
    InvitationExpired,
    InvitationRevoked,
    InvitationSent,
)
from spvhub_common.runtime import EventHandler

from spvhub_portfolio.handlers.access import require_role, role_on, sync_access, sync_access_of_firm
from spvhub_portfolio.handlers.collaborations import (
    collaboration_view,
    end_collaboration,
    list_collaborations,
    on_invitation_accepted,
    on_invitation_claimed,
    on_invitation_declined,
    on_invitation_expired,
    on_invitation_revoked,
    on_invitation_sent,
    set_collaboration_permissions,
)
from spvhub_portfolio.handlers.companies import (
    RegistryUnavailable,
    company_view,
    ensure_company,
    get_company,
    list_companies,
    refresh_registry,
    register_company,
    registry_data,
    registry_lookup,
    update_company_profile,
)
from spvhub_portfolio.handlers.connections import (
    on_connection_authorized,
    on_connection_revoked,
    on_reauthorization_required,
    on_token_refreshed,
)
from spvhub_portfolio.handlers.deps import Deps
from spvhub_portfolio.handlers.discovery import (
    MAX_CANDIDATES,
    DiscoveryResult,
    discover,
    discover_on_demand,
    discover_recording_errors,
    discovery_due,
    list_candidates,
    upload_candidates,
)
from spvhub_portfolio.handlers.entitlements import connection_scope, reconcile, sync_entitlements
from spvhub_portfolio.handlers.firm import list_discovered, portfolio_status
from spvhub_portfolio.handlers.members import (
    add_member,
    list_members,
    on_email_verified,
    on_user_registered,
    remove_member,
    set_member,
    verify_member,
)

__all__ = [
    "EVENT_HANDLERS", "MAX_CANDIDATES", "Deps", "DiscoveryResult", "RegistryUnavailable", "add_member",
    "collaboration_view", "company_view", "connection_scope", "discover", "discover_on_demand",
    "discover_recording_errors", "discovery_due", "end_collaboration", "ensure_company", "get_company",
    "list_candidates", "list_collaborations", "list_companies", "list_discovered", "list_members",
    "on_connection_authorized", "on_connection_revoked", "on_email_verified", "on_invitation_accepted",
    "on_invitation_claimed", "on_invitation_declined", "on_invitation_expired", "on_invitation_revoked",
    "on_invitation_sent", "on_reauthorization_required", "on_token_refreshed", "on_user_registered",
    "portfolio_status", "reconcile", "refresh_registry", "register_company", "registry_data", "registry_lookup",
    "remove_member", "require_role", "role_on", "set_collaboration_permissions", "set_member", "sync_access",
    "sync_access_of_firm", "sync_entitlements", "update_company_profile", "upload_candidates", "verify_member",
]

# -- routing table: consumed events -> handlers ------------------------------------------------------------
EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    UserRegistered: on_user_registered,
    EmailVerified: on_email_verified,
    ConnectionAuthorized: on_connection_authorized,
    TokenRefreshed: on_token_refreshed,
    ReauthorizationRequired: on_reauthorization_required,
    ConnectionRevoked: on_connection_revoked,
    InvitationSent: on_invitation_sent,
    InvitationClaimed: on_invitation_claimed,
    InvitationAccepted: on_invitation_accepted,
    InvitationDeclined: on_invitation_declined,
    InvitationExpired: on_invitation_expired,
    InvitationRevoked: on_invitation_revoked,
}

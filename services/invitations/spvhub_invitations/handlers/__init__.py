"""Use cases of the invitations service, one module per section: `firm` (invite, re-send, withdraw, list, the
candidates), `client` (preview, claim, accept, decline, received), `link` (the notifier's link), `expiry` (the job)
and `read_models` (consumed events); `views` says what every section says about an invitation, `deps` what they
all need. The routing table of consumed events is at the bottom."""
from __future__ import annotations

from spvhub_common.events import Event
from spvhub_common.events.auth import ConnectionRevoked
from spvhub_common.events.portfolio import CompanyRegistered, CompanyUpdated, RightsDiscovered
from spvhub_common.runtime import EventHandler

from spvhub_invitations.handlers.client import accept, claim, decline, preview, received
from spvhub_invitations.handlers.deps import Deps
from spvhub_invitations.handlers.expiry import expire_due
from spvhub_invitations.handlers.firm import (
    BulkResult,
    ItemResult,
    NewInvitation,
    candidates,
    get_for_user,
    list_for_firm,
    resend,
    revoke,
    send_invitations,
)
from spvhub_invitations.handlers.link import link
from spvhub_invitations.handlers.read_models import on_company, on_connection_revoked, on_rights_discovered
from spvhub_invitations.handlers.views import Gone, view

__all__ = [
    "EVENT_HANDLERS", "BulkResult", "Deps", "Gone", "ItemResult", "NewInvitation", "accept", "candidates", "claim",
    "decline", "expire_due", "get_for_user", "link", "list_for_firm", "on_company", "on_connection_revoked",
    "on_rights_discovered", "preview", "received", "resend", "revoke", "send_invitations", "view",
]

# -- routing table: consumed events -> handlers ------------------------------------------------------------
EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    CompanyRegistered: on_company,
    CompanyUpdated: on_company,
    RightsDiscovered: on_rights_discovered,
    ConnectionRevoked: on_connection_revoked,
}

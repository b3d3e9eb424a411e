"""Events published by the portfolio service, including who may see which CIF (access scoping)."""
from __future__ import annotations

from pydantic import BaseModel

from spvhub_common.events.base import Event, register


@register
class CompanyRegistered(Event):
    topic = "portfolio.company-registered"
    key_field = "cif"
    cif: str
    name: str
    address: str = ""
    trade_register_no: str = ""
    vat_payer: bool = False
    efactura_registered: bool = False
    registered_by: str | None = None
    provides_accounting_services: bool = False
    # For a natural person identified by CNP, `cif` is the person key (spvhub_common.pii) and this is the CNP sealed
    # to it; the clear CNP never travels.
    cnp_sealed: str | None = None


@register
class CompanyUpdated(Event):
    """Registry data refreshed or a profile flag changed (e.g. provides accounting services)."""

    topic = "portfolio.company-updated"
    key_field = "cif"
    cif: str
    name: str
    address: str = ""
    trade_register_no: str = ""
    vat_payer: bool = False
    efactura_registered: bool = False
    provides_accounting_services: bool = False


@register
class RightsDiscovered(Event):
    topic = "portfolio.rights-discovered"
    key_field = "holder_cif"
    connection_id: str
    holder_cif: str
    cifs: list[str]
    gained: list[str] = []
    lost: list[str] = []
    services: list[str] = ["efactura"]
    mode: str = ""  # inventory (ANAF's `cui` field) | probe (candidates probed one by one)
    complete: bool = True  # False: some candidates could not be probed (budget, ANAF down); they kept their state
    names: dict[str, str] = {}  # CIF -> name from ANAF's public registry, for the CIFs that have one


@register
class AccessLost(Event):
    topic = "portfolio.access-lost"
    key_field = "cif"
    cif: str
    connection_id: str
    reason: str  # spv_rights_removed | connection_revoked
    holder_cif: str = ""
    message: str = ""  # human explanation, ready to show or e-mail
    notify_user_ids: list[str] = []  # the people concerned (firm managers and the connection's user)


@register
class AccessChanged(Event):
    """Who may see which CIF: other services keep a local read model of these."""

    topic = "portfolio.access-changed"
    key_field = "cif"
    cif: str
    user_id: str
    role: str  # owner | admin | member | accountant
    granted: bool
    via_firm_cif: str | None = None
    # False: the user registered or claimed the company but has not proven control yet; such a member sees the
    # public registry data and nothing that came from ANAF (403 `company_not_verified`).
    verified: bool = True
    # May act at ANAF in the company's name (file invoices, send buyer messages): owners and admins, and a
    # firm's users when the client allowed filing on the collaboration.
    can_file: bool = False


@register
class CollaborationStarted(Event):
    topic = "portfolio.collaboration-started"
    key_field = "client_cif"
    firm_cif: str
    client_cif: str
    may_file: bool = False  # the client allowed the firm to file invoices in its name
    accepted_by: str | None = None


@register
class CollaborationEnded(Event):
    topic = "portfolio.collaboration-ended"
    key_field = "client_cif"
    firm_cif: str
    client_cif: str
    reason: str = ""


@register
class CollaborationPermissionsChanged(Event):
    """The client changed what the firm may do in its name."""

    topic = "portfolio.collaboration-permissions-changed"
    key_field = "client_cif"
    firm_cif: str
    client_cif: str
    may_file: bool
    changed_by: str | None = None


class EntitledConnection(BaseModel):
    connection_id: str
    holder_cif: str
    services: list[str] = ["efactura"]
    may_file: bool = False


@register
class EntitlementsChanged(Event):
    """The ANAF connections that may act for a CIF, best first (a full snapshot that replaces the previous one).

    A connection is entitled for CIF X when its certificate has SPV rights on X, it is active, and X is its holder
    company or a client in an active collaboration with the holder. Services that call ANAF for X use the first
    entitled connection that serves their purpose and never any other; an empty list means X is not synced.
    """

    topic = "portfolio.entitlements-changed"
    key_field = "cif"
    cif: str
    connections: list[EntitledConnection] = []
    # A person key's CNP sealed to it (spvhub_common.pii): what a service unseals to name the company to ANAF
    # (`cif=` of listaMesaje and upload). None for a CIF.
    cnp_sealed: str | None = None


@register
class MembershipVerified(Event):
    """A member proved control of a company (ANAF authorization with rights, a grant by a verified owner or
    administrator, or an invitation from a firm whose certificate covers the company)."""

    topic = "portfolio.membership-verified"
    key_field = "cif"
    cif: str
    user_id: str
    role: str
    via: str  # authorization | grant | invitation | migration


@register
class JoinRequested(Event):
    """Someone asked to join a company that already has a verified owner; its owners and admins decide."""

    topic = "portfolio.join-requested"
    key_field = "cif"
    cif: str
    user_id: str
    via: str  # registration | invitation
    invitation_id: str | None = None
    firm_cif: str | None = None
    notify_user_ids: list[str] = []

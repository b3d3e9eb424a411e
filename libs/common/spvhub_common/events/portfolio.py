"""Events published by the portfolio service, including who may see which CIF (access scoping)."""
from __future__ import annotations

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


@register
class CollaborationStarted(Event):
    topic = "portfolio.collaboration-started"
    key_field = "client_cif"
    firm_cif: str
    client_cif: str


@register
class CollaborationEnded(Event):
    topic = "portfolio.collaboration-ended"
    key_field = "client_cif"
    firm_cif: str
    client_cif: str
    reason: str = ""

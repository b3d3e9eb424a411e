"""Events published by the etransport service."""
from __future__ import annotations

from datetime import date, datetime

from spvhub_common.events.base import Event, register


@register
class TransportAssigned(Event):
    topic = "etransport.transport-assigned"
    key_field = "carrier_cif"
    carrier_cif: str
    uit: str
    declarant_cif: str
    vehicle: str | None = None
    transport_date: date | None = None
    uit_expires_at: datetime | None = None
    route_start: str | None = None
    route_end: str | None = None


@register
class TransportUpdated(Event):
    topic = "etransport.transport-updated"
    key_field = "carrier_cif"
    carrier_cif: str
    uit: str
    change: str  # vehicle_changed | confirmed | deleted | corrected
    vehicle: str | None = None


@register
class UitExpiring(Event):
    topic = "etransport.uit-expiring"
    key_field = "carrier_cif"
    carrier_cif: str
    uit: str
    uit_expires_at: datetime

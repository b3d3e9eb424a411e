"""Events published by the etransport service (the carrier's view of e-Transport).

Each event is emitted once per (carrier_cif, uit, change, change_version): the service records every emission in a
ledger with a unique key in the same transaction as its outbox row. `change_version` counts occurrences of the same
kind of change on one UIT (the 2nd vehicle change has version 2). Kafka key: the carrier CIF.
"""
from __future__ import annotations

from datetime import date, datetime

from spvhub_common.events.base import Event, register


@register
class TransportAssigned(Event):
    """A UIT, still valid, in which the company is declared as carrier (transport organizer), seen the first time.
    UITs discovered only after their expiry (history backfill) are stored without this event."""

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
    # optional additions (compatible)
    trailer1: str | None = None
    trailer2: str | None = None
    declarant_name: str | None = None
    change_version: int = 1


@register
class TransportUpdated(Event):
    """Something changed on a known UIT. `change` is one of: vehicle_changed, confirmed, deleted, corrected,
    reinstated (a UIT taken for deleted came back in ANAF's carrier view)."""

    topic = "etransport.transport-updated"
    key_field = "carrier_cif"
    carrier_cif: str
    uit: str
    change: str  # vehicle_changed | confirmed | deleted | corrected | reinstated
    vehicle: str | None = None
    # optional additions (compatible)
    change_version: int = 1
    state: str | None = None  # active | expired | deleted, after the change
    trailer1: str | None = None
    trailer2: str | None = None
    vehicle_changed_at: datetime | None = None
    confirmation: str | None = None  # confirmed | partially_confirmed | rejected
    corrected_fields: list[str] = []
    declarant_cif: str | None = None
    transport_date: date | None = None
    uit_expires_at: datetime | None = None


@register
class UitExpiring(Event):
    """An active UIT reaches its expiry within the configured lead (default 24 hours); once per UIT."""

    topic = "etransport.uit-expiring"
    key_field = "carrier_cif"
    carrier_cif: str
    uit: str
    uit_expires_at: datetime
    # optional additions (compatible)
    vehicle: str | None = None
    declarant_cif: str | None = None

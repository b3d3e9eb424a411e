"""Events published by the efactura service."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from spvhub_common.events.base import Event, register


@register
class InvoiceDownloaded(Event):
    topic = "efactura.invoice-downloaded"
    key_field = "cif"
    cif: str
    message_id: str
    direction: str  # received | sent
    document_type: str  # invoice | credit_note
    number: str | None = None
    issue_date: date | None = None
    partner_cif: str | None = None
    partner_name: str | None = None
    currency: str | None = None
    total_amount: Decimal | None = None
    blob_keys: dict[str, str] = {}


@register
class InvoiceErrorReceived(Event):
    topic = "efactura.invoice-error-received"
    key_field = "cif"
    cif: str
    message_id: str
    upload_index: str | None = None
    errors: list[str] = []


@register
class SyncCompleted(Event):
    topic = "efactura.sync-completed"
    key_field = "cif"
    cif: str
    new_messages: int
    window_start: datetime
    window_end: datetime
    first_sync: bool = False


@register
class MessageExpiring(Event):
    topic = "efactura.message-expiring"
    key_field = "cif"
    cif: str
    message_id: str
    purge_at: datetime


@register
class QuotaExhausted(Event):
    topic = "efactura.quota-exhausted"
    key_field = "scope_key"
    kind: str
    scope_key: str
    resets_at: datetime

"""Events published by the efactura service (owner: efactura). Adding optional fields keeps version 1."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from spvhub_common.events.base import Event, register


@register
class InvoiceDownloaded(Event):
    """An Invoice or CreditNote was archived (signed ZIP in the blob store) and parsed; once per (cif, message)."""

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
    # optional additions (compatible)
    invoice_id: int | None = None
    type_code: str | None = None
    due_date: date | None = None
    seller_cif: str | None = None
    buyer_cif: str | None = None
    self_billing: bool = False
    net_amount: Decimal | None = None
    vat_amount: Decimal | None = None
    upload_index: str | None = None
    listed_at: datetime | None = None
    message_type: str | None = None  # ANAF `tip`
    signature_valid: bool | None = None


@register
class InvoiceErrorReceived(Event):
    """ANAF rejected an uploaded invoice: the error report (`mesajEroriFactuta`) was archived. `submission_id` is set
    when the upload was a submission made through spvhub, whose `efactura.invoice-rejected` explains the errors."""

    topic = "efactura.invoice-error-received"
    key_field = "cif"
    cif: str
    message_id: str
    upload_index: str | None = None
    errors: list[str] = []
    listed_at: datetime | None = None
    blob_keys: dict[str, str] = {}
    submission_id: str | None = None


@register
class SyncCompleted(Event):
    topic = "efactura.sync-completed"
    key_field = "cif"
    cif: str
    new_messages: int
    window_start: datetime
    window_end: datetime
    first_sync: bool = False
    # optional additions
    archived: int = 0
    pending: int = 0
    lost: int = 0
    reconciliation: bool = False
    complete: bool | None = None  # reconciliation: every listed id archived or recorded lost


@register
class MessageExpiring(Event):
    topic = "efactura.message-expiring"
    key_field = "cif"
    cif: str
    message_id: str
    purge_at: datetime
    days_left: int | None = None
    last_error: str | None = None


@register
class QuotaExhausted(Event):
    topic = "efactura.quota-exhausted"
    key_field = "scope_key"
    kind: str
    scope_key: str
    resets_at: datetime
    cif: str | None = None
    message_id: str | None = None
    anaf_text: str | None = None  # ANAF's own wording, or our budget's refusal


@register
class MessageLost(Event):
    """ANAF listed a message that can no longer be downloaded; recorded with ANAF's reason, not retried."""

    topic = "efactura.message-lost"
    key_field = "cif"
    cif: str
    message_id: str
    reason: str
    listed_at: datetime | None = None


@register
class DocumentFlagged(Event):
    """An archived document someone should look at, kept as received: unreadable or hostile, a signature that is not
    `valid`, or fields its invoice row could not store as parsed (left empty, named in `detail`)."""

    topic = "efactura.document-flagged"
    key_field = "cif"
    cif: str
    message_id: str
    # unparseable | hostile | signature_invalid | signature_missing | signature_valid_untrusted_signer |
    # fields_not_stored
    problem: str
    detail: str = ""
    blob_keys: dict[str, str] = {}


# --- outgoing submissions (invoices, credit notes, buyer messages the platform files at ANAF) ---------

@register
class InvoiceSubmitted(Event):
    """ANAF accepted the upload of a submission (it has an `index_incarcare`); once per submission."""

    topic = "efactura.invoice-submitted"
    key_field = "cif"
    cif: str
    submission_id: str
    upload_index: str
    kind: str = "invoice"  # invoice | buyer_message
    standard: str = "UBL"  # UBL | CN | RASP
    document_type: str | None = None
    number: str | None = None
    issue_date: date | None = None
    buyer_cif: str | None = None
    b2c: bool = False
    submitted_by: str | None = None


@register
class InvoiceAccepted(Event):
    """stareMesaj answered `ok` for a submission: ANAF validated it and the buyer receives it."""

    topic = "efactura.invoice-accepted"
    key_field = "cif"
    cif: str
    submission_id: str
    upload_index: str
    id_descarcare: str | None = None
    kind: str = "invoice"
    document_type: str | None = None
    number: str | None = None
    issue_date: date | None = None
    buyer_cif: str | None = None
    submitted_by: str | None = None


@register
class InvoiceRejected(Event):
    """A submission was refused: by ANAF's validation before filing (`stage=validation`), at upload
    (`upload`) or after processing (`processing`, stareMesaj `nok`). `errors` are the explained errors:
    dicts with `code`, `field`, `message` (ANAF's text), `explanation_ro`, `explanation_en`."""

    topic = "efactura.invoice-rejected"
    key_field = "cif"
    cif: str
    submission_id: str
    stage: str
    upload_index: str | None = None
    kind: str = "invoice"
    document_type: str | None = None
    number: str | None = None
    issue_date: date | None = None
    error_codes: list[str] = []
    errors: list[dict[str, str | None]] = []
    submitted_by: str | None = None


@register
class FilingDeadlineApproaching(Event):
    """An invoice not filed yet (or rejected and not filed again) is close to its legal filing deadline: 5 working
    days after its issue date (OUG 89/2025). Once per submission, `working_hours_left` ahead at most; likewise once
    per draft saved and not filed yet (`draft_id`)."""

    topic = "efactura.filing-deadline-approaching"
    key_field = "cif"
    cif: str
    submission_id: str
    number: str | None = None
    issue_date: date
    deadline: date  # the last day of the term (it ends at 23:59:59 Bucharest time)
    deadline_at: datetime
    working_hours_left: float
    state: str  # the submission's state: received | uploading | unknown | rejected; `draft` for a draft
    submitted_by: str | None = None  # a draft: who saved it
    # optional additions (compatible)
    draft_id: str | None = None  # a draft not filed yet (then `submission_id` is empty)


@register
class FiledLate(Event):
    """An invoice was filed after its legal deadline: ANAF accepted the upload (`filed_at`, the filing moment)
    after the last day of the 5-working-day term. Once per submission, when ANAF's processing says `ok`; and once
    per sent invoice the inbox finds that was filed outside spvhub (`filed_outside`: then `submission_id` is empty,
    `invoice_id` and `message_id` name the inbox row, and `filed_at` is the message's data_creare)."""

    topic = "efactura.filed-late"
    key_field = "cif"
    cif: str
    submission_id: str  # "" when filed outside spvhub
    number: str | None = None
    issue_date: date
    deadline: date
    filed_at: datetime
    upload_index: str | None = None
    working_days_late: int = 0
    submitted_by: str | None = None
    # optional additions (compatible)
    filed_outside: bool = False
    invoice_id: int | None = None
    message_id: str | None = None

"""e-Factura domain rules: list windows, message kinds and direction, ledger states and their transitions, the
retry schedule, download priority, and the invoice row and event built from a parsed document.

Pure functions and values; no I/O.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from spvhub_common.events import Event
from spvhub_common.events.efactura import FiledLate, InvoiceDownloaded, InvoiceErrorReceived
from spvhub_common.ids import strip_ro

from spvhub_efactura import ubl
from spvhub_efactura.submissions import filing

BUCHAREST = ZoneInfo("Europe/Bucharest")
RETENTION = timedelta(days=60)  # ANAF keeps a message listable for 60 days after data_creare


class MessageState(StrEnum):
    LISTED = "listed"      # seen in a list, not yet archived
    ARCHIVED = "archived"  # signed ZIP in the blob store (terminal)
    LOST = "lost"          # ANAF refuses the download for good (terminal, with ANAF's reason)
    FAILED = "failed"      # last attempt failed; retried at next_attempt_at


# Still to be archived: the only states a message leaves. Every ledger transition is conditional on these, so a
# replica that arrives second (or a run repairing a killed one) changes nothing.
PENDING: frozenset[MessageState] = frozenset({MessageState.LISTED, MessageState.FAILED})
_MOVES: dict[MessageState, frozenset[MessageState]] = {
    MessageState.LISTED: frozenset({MessageState.FAILED, MessageState.LOST, MessageState.ARCHIVED}),
    MessageState.FAILED: frozenset({MessageState.FAILED, MessageState.LOST, MessageState.ARCHIVED}),
    MessageState.ARCHIVED: frozenset(),  # terminal (a reprocess re-parses it in place, the state stays)
    MessageState.LOST: frozenset(),      # terminal: ANAF refused it for good
}


def may_move(src: MessageState, dst: MessageState) -> bool:
    """Whether the ledger lets a message go from `src` to `dst`."""
    return dst in _MOVES[src]


def pending_states() -> list[str]:
    """The pending states as the ledger stores them, in a stable order (SQL `IN` lists)."""
    return sorted(s.value for s in PENDING)


class MessageKind(StrEnum):
    SENT = "sent"                  # FACTURA TRIMISA
    RECEIVED = "received"          # FACTURA PRIMITA
    ERRORS = "errors"              # ERORI FACTURA
    BUYER_MESSAGE = "buyer_message"  # MESAJ CUMPARATOR ...
    OTHER = "other"


def kind_of(tip: str) -> MessageKind:
    t = (tip or "").strip().upper()
    if t.startswith("FACTURA TRIMISA"):
        return MessageKind.SENT
    if t.startswith("FACTURA PRIMITA"):
        return MessageKind.RECEIVED
    if t.startswith("ERORI FACTURA"):
        return MessageKind.ERRORS
    if t.startswith("MESAJ CUMPARATOR"):
        return MessageKind.BUYER_MESSAGE
    return MessageKind.OTHER


_SELF_BILLED = re.compile(r"autofactu", re.I)
_DETAIL_CIFS = re.compile(r"cif_emitent=(\d+).*?cif_beneficiar=(\d+)", re.S)
_DETAIL_SELF = re.compile(r"transmisa de cif=(\d+).*?in numele cif=(\d+)", re.S)


@dataclass(frozen=True)
class DetailParties:
    seller: str | None
    buyer: str | None
    self_billing: bool


def parse_detalii(detalii: str) -> DetailParties:
    """The CIFs ANAF puts in `detalii` (normal and self-billed wordings; both spellings of autofactura)."""
    m = _DETAIL_SELF.search(detalii or "")
    if m:
        return DetailParties(seller=m.group(2), buyer=m.group(1), self_billing=True)
    m = _DETAIL_CIFS.search(detalii or "")
    if m:
        return DetailParties(seller=m.group(1), buyer=m.group(2), self_billing=bool(_SELF_BILLED.search(detalii)))
    return DetailParties(None, None, bool(_SELF_BILLED.search(detalii or "")))


def direction_for(own_cif: str, kind: MessageKind, seller: str | None, buyer: str | None) -> str:
    """received or sent, from the company's point of view: "sent" when it is the seller, "received" when it is
    the buyer.

    The parties decide (callers pass those of `detalii`, else of the document); the list `tip` only when the
    company is neither. Self-billing is why: the buyer files in the seller's name, and which of the two ANAF lists
    as FACTURA TRIMISA is not settled (the emulator's default gives the uploading buyer TRIMISA, e-factura-go's
    fixture PRIMITA; anaf-api.md §11.13), so `tip` alone would file a purchase as a sale.
    """
    own = strip_ro(own_cif)
    if seller and strip_ro(seller) == own:
        return "sent"
    if buyer and strip_ro(buyer) == own:
        return "received"
    if kind == MessageKind.SENT:
        return "sent"
    return "received"


def parse_data_creare(value: str) -> datetime:
    """`yyyyMMddHHmm` in Romania wall time -> aware UTC."""
    local = datetime.strptime(value.strip()[:12], "%Y%m%d%H%M").replace(tzinfo=BUCHAREST)
    return local.astimezone(UTC)


def purge_at(data_creare: datetime) -> datetime:
    return data_creare + RETENTION


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    first_sync: bool
    full: bool


def list_window(now: datetime, watermark: datetime | None, *, start_margin: timedelta, end_margin: timedelta,
                overlap: timedelta, full: bool = False) -> Window:
    """The window to list: [now - 60d + margin, now - end_margin], narrowed to start `overlap` before the
    watermark once a first sync succeeded (late-indexed messages fall inside the overlap)."""
    floor = now - RETENTION + start_margin
    end = now - end_margin
    first = watermark is None
    if watermark is None or full:
        start = floor
    else:
        start = max(floor, watermark - overlap)
    if start >= end:
        start = end - timedelta(seconds=1)
    return Window(start=start, end=end, first_sync=first, full=full or first)


def priority_key(now: datetime, purge: datetime, listed_at: datetime, urgent: timedelta) -> tuple[int, float]:
    """Smaller = sooner. Messages close to purge first (soonest purge first), then the freshest."""
    if purge - now <= urgent:
        return (0, purge.timestamp())
    return (1, -listed_at.timestamp())


def retry_delay(attempts: int, base: float, cap: float) -> float:
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


def days_left(now: datetime, purge: datetime) -> int:
    return max(0, int((purge - now).total_seconds() // 86400))


def download_retry_at(now: datetime, purge: datetime, attempts: int, *, base: float, cap: float) -> datetime | None:
    """When a message whose download failed is tried again (backoff on the attempts so far); None once its purge
    date has passed: ANAF no longer keeps it, so it is lost rather than retried."""
    if now >= purge:
        return None
    return now + timedelta(seconds=retry_delay(attempts + 1, base, cap))


def archive_retry_at(now: datetime, attempts: int, *, base: float, cap: float) -> datetime:
    """When a message downloaded but not archived (blob store or database trouble) is tried again."""
    return now + timedelta(seconds=retry_delay(attempts + 1, base, cap))


MIN_RESYNC = timedelta(seconds=5)


def next_sync_at(now: datetime, interval_seconds: int, earliest_retry: datetime | None) -> datetime:
    """The company's next sync: after its interval, or sooner when a message's retry falls due first (never
    sooner than a few seconds: a retry already due does not make the sync spin)."""
    nxt = now + timedelta(seconds=interval_seconds)
    if earliest_retry is not None:
        nxt = min(nxt, max(earliest_retry, now + MIN_RESYNC))
    return nxt


# --------------------------------------------------------------------------------------------------
# A listed message as the ledger records it


@dataclass(frozen=True)
class ListedMessage:
    cif: str
    message_id: str
    tip: str
    kind: MessageKind
    upload_index: str | None
    detalii: str
    listed_at: datetime
    purge_at: datetime


def listed_message(cif: str, item: Mapping[str, Any], now: datetime) -> ListedMessage | None:
    """One item of ANAF's list as the ledger records it; None when it is another CIF's to download (ANAF lists
    per CIF; Odoo filters the same way). Raises ValueError for an item without a usable id."""
    mid = str(item.get("id") or "").strip()
    if not mid.isdigit():
        raise ValueError(f"list item without a usable id: {str(dict(item))[:200]}")
    owner = strip_ro(str(item.get("cif") or cif))
    if owner and owner != cif:
        return None
    try:
        listed = parse_data_creare(str(item.get("data_creare")))
    except ValueError:
        listed = now
    tip = str(item.get("tip") or "")
    return ListedMessage(cif=cif, message_id=mid, tip=tip[:80], kind=kind_of(tip),
                         upload_index=str(item.get("id_solicitare") or "") or None,
                         detalii=str(item.get("detalii") or "")[:2000], listed_at=listed, purge_at=purge_at(listed))


# --------------------------------------------------------------------------------------------------
# The invoice row and event of an archived, parsed document

_CENTS = Decimal("0.01")
_WIDE = Context(prec=60)


def money(v: Decimal | None) -> Decimal | None:
    """To cents; a value no column holds (infinite, NaN, too many digits) is returned as is, for
    `unfit_fields` to report."""
    if v is None or not v.is_finite():
        return v
    try:
        return v.quantize(_CENTS, context=_WIDE)
    except InvalidOperation:
        return v


_JSON_SCALARS = (str, int, float, bool, type(None))


def jsonable(obj: Any) -> Any:
    """A JSON-ready copy: containers copied, scalars kept, anything else (Decimal, date) as its str() (what
    `json.dumps(default=str)` wrote, at a third of the cost of that round trip)."""
    if isinstance(obj, _JSON_SCALARS):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return str(obj)


def archive_problem(parse_status: str, parse_error: str | None, signature_status: str | None,
                    signature_detail: str | None) -> str | None:
    """What the ledger says is wrong with an archived document (None: nothing); the flagged count of the sync
    health counts these."""
    if parse_status != "ok":
        return f"{parse_status}: {parse_error or ''}"[:2000]
    if signature_status is not None and signature_status != "valid":
        return f"signature_{signature_status}: {signature_detail}"[:2000]
    return None


@dataclass(frozen=True)
class ColumnCapacity:
    """What a column of the invoices table holds: numeric(precision, scale), a varchar's length, or (text under a
    btree index, where PostgreSQL refuses an entry over ~2700 bytes) how many characters are kept."""
    precision: int | None = None
    scale: int | None = None
    numeric: bool = False
    length: int | None = None
    indexed: int | None = None


def unfit_fields(values: dict[str, Any], capacity: Mapping[str, ColumnCapacity]) -> list[str]:
    """Empty, in place, each value its column cannot hold as parsed; `column: why` for each."""
    problems: list[str] = []
    for name, value in values.items():
        cap = capacity.get(name)
        if value is None or cap is None:
            continue
        why = None
        if isinstance(value, Decimal) and cap.numeric:
            digits = (cap.precision or 38) - (cap.scale or 0)
            if not value.is_finite() or value.adjusted() >= digits:
                shown = str(value)
                if value.is_finite():  # as written, about: 1E+30, 123456789012345678901234567890
                    n = value.normalize(context=_WIDE)
                    shown = min(str(n), format(n, "f"), key=len)
                why = f"{shown} does not fit numeric({cap.precision},{cap.scale})"
        elif isinstance(value, str) and cap.length and len(value) > cap.length:
            why = f"{len(value)} characters, the column holds {cap.length}"
        elif isinstance(value, str) and cap.indexed is not None and len(value) > cap.indexed:
            why = f"{len(value)} characters, at most {cap.indexed} are kept"
        if why:
            values[name] = None
            problems.append(f"{name}: {why}")
    return problems


@dataclass(frozen=True)
class ArchivedMessage:
    """The ledger's facts about a message this run archived (what its invoice row is built from)."""
    cif: str
    message_id: str
    tip: str | None
    listed_at: datetime
    upload_index: str | None
    detalii: str | None


@dataclass
class InvoiceRow:
    """One row of the invoices table (its id and creation time are the database's)."""
    cif: str
    message_id: str
    message_type: str | None
    listed_at: datetime
    upload_index: str | None
    zip_key: str
    xml_key: str | None
    signature_status: str | None
    direction: str | None = None
    document_type: str | None = None
    type_code: str | None = None
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    currency: str | None = None
    tax_currency: str | None = None
    seller_cif: str | None = None
    seller_name: str | None = None
    buyer_cif: str | None = None
    buyer_name: str | None = None
    partner_cif: str | None = None
    partner_name: str | None = None
    self_billing: bool = False
    net_amount: Decimal | None = None
    vat_amount: Decimal | None = None
    total_amount: Decimal | None = None
    payable_amount: Decimal | None = None
    vat_breakdown: Any = None
    details: Any = None
    preceding_number: str | None = None
    problem: str | None = None
    filed_late: bool | None = None  # a sent invoice accepted (data_creare) after its legal filing deadline


# What a row keeps when the database refused its parsed fields: enough to find and serve the document.
_BARE_KEPT = frozenset({"cif", "message_id", "message_type", "listed_at", "upload_index", "zip_key", "xml_key",
                        "signature_status", "direction", "document_type"})

Parsed: TypeAlias = "ubl.Document | ubl.ErrorReport | ubl.BuyerMessage"


def filed_late(direction: str | None, issue_date: date | None, listed_at: datetime) -> bool | None:
    """Whether a sent invoice was filed after its legal deadline (issue date + 5 working days). The filing moment
    is ANAF's acceptance of the upload: the message's data_creare as listed. None for received documents."""
    if direction != "sent" or issue_date is None:
        return None
    return listed_at >= filing.deadline(issue_date).ends_at


def invoice_row(msg: ArchivedMessage, doc: Parsed, *, zip_key: str, xml_key: str | None,
                signature_status: str | None, signature: dict[str, Any] | None, problems: list[str],
                capacity: Mapping[str, ColumnCapacity], refused: str | None = None) -> InvoiceRow:
    """The invoices row of one archived, parsed message. A value its column cannot hold is left empty and named in
    `problem` (a document is never refused for its values); `refused`: the database refused the parsed row (why),
    so only the essentials are kept."""
    cif, tip, upload_index = msg.cif, msg.tip, msg.upload_index
    base: dict[str, Any] = {"cif": cif, "message_id": msg.message_id, "message_type": tip,
                            "listed_at": msg.listed_at, "upload_index": upload_index, "zip_key": zip_key,
                            "xml_key": xml_key, "signature_status": signature_status}
    if isinstance(doc, ubl.Document):
        parties = parse_detalii(msg.detalii or "")
        direction = direction_for(cif, kind_of(tip or ""), parties.seller or doc.seller.cif,
                                  parties.buyer or doc.buyer.cif)
        partner = doc.seller if direction == "received" else doc.buyer
        base.update(
            direction=direction, document_type=doc.document_type, type_code=doc.type_code, number=doc.number,
            issue_date=doc.issue_date, due_date=doc.due_date, currency=doc.currency, tax_currency=doc.tax_currency,
            seller_cif=(doc.seller.cif or parties.seller), seller_name=doc.seller.name,
            buyer_cif=(doc.buyer.cif or parties.buyer), buyer_name=doc.buyer.name,
            partner_cif=partner.cif or (parties.seller if direction == "received" else parties.buyer),
            partner_name=partner.name, self_billing=doc.self_billing or parties.self_billing,
            net_amount=money(doc.tax_exclusive if doc.tax_exclusive is not None else doc.line_extension),
            vat_amount=money(doc.vat_amount), total_amount=money(doc.tax_inclusive), payable_amount=money(doc.payable),
            vat_breakdown=jsonable([v.__dict__ for v in doc.vat_breakdown]),
            details=jsonable({"seller": doc.seller.__dict__, "buyer": doc.buyer.__dict__, "notes": doc.notes,
                              "customization": doc.customization, "lines": doc.line_count,
                              "vat_amount_accounting": doc.vat_amount_accounting, "signature": signature}),
            preceding_number=doc.preceding_number,
            filed_late=filed_late(direction, doc.issue_date, msg.listed_at))
    elif isinstance(doc, ubl.ErrorReport):
        base.update(direction="sent", document_type="error_report", upload_index=doc.upload_index or upload_index,
                    seller_cif=doc.issuer_cif, details=jsonable({"errors": doc.errors}))
    else:
        parties = parse_detalii(msg.detalii or "")
        direction = "received" if "PRIMIT" in (tip or "").upper() else "sent"
        base.update(direction=direction, document_type="buyer_message",
                    details=jsonable({"message": doc.message, "invoice_upload_index": doc.upload_index}),
                    partner_cif=parties.seller if direction == "received" else parties.buyer)
    found = list(problems) + unfit_fields(base, capacity)
    if refused is not None:
        for k in base:
            if k not in _BARE_KEPT:
                base[k] = False if k == "self_billing" else None
        found = [f"parsed fields not stored, the database refused them: {refused}"]
    base["problem"] = "; ".join(found)[:2000] if found else None
    return InvoiceRow(**base)


def document_event(row: InvoiceRow, doc: Parsed, *, invoice_id: int, blob_keys: dict[str, str],
                   submission_id: str | None) -> Event | None:
    """The event of a document whose invoice row was inserted now (None: buyer messages have none)."""
    if isinstance(doc, ubl.Document):
        sig = row.signature_status
        return InvoiceDownloaded(
            cif=row.cif, message_id=row.message_id, direction=row.direction or "received",
            document_type=doc.document_type, number=doc.number, issue_date=doc.issue_date,
            partner_cif=row.partner_cif, partner_name=row.partner_name, currency=row.currency,
            total_amount=row.total_amount, blob_keys=blob_keys, invoice_id=invoice_id, type_code=doc.type_code,
            due_date=doc.due_date, seller_cif=row.seller_cif, buyer_cif=row.buyer_cif,
            self_billing=row.self_billing, net_amount=row.net_amount, vat_amount=row.vat_amount,
            upload_index=row.upload_index, listed_at=row.listed_at, message_type=row.message_type,
            signature_valid=(sig == "valid") if sig else None)
    if isinstance(doc, ubl.ErrorReport):
        return InvoiceErrorReceived(cif=row.cif, message_id=row.message_id, upload_index=row.upload_index,
                                    errors=doc.errors[:50], listed_at=row.listed_at, blob_keys=blob_keys,
                                    submission_id=submission_id)
    return None


def filed_late_event(row: InvoiceRow, *, invoice_id: int) -> FiledLate | None:
    """`efactura.filed-late` for a sent invoice the inbox found filed after its deadline, when it was filed outside
    spvhub (a submission tells its own); None when it was filed on time or is not a sent invoice."""
    if not row.filed_late or row.issue_date is None:
        return None
    dl = filing.deadline(row.issue_date)
    return FiledLate(cif=row.cif, submission_id="", number=row.number, issue_date=row.issue_date,
                     deadline=dl.last_day, filed_at=row.listed_at, upload_index=row.upload_index,
                     working_days_late=filing.working_days_late(dl, row.listed_at), filed_outside=True,
                     invoice_id=invoice_id, message_id=row.message_id)

"""Reads: the API's (invoice list with keyset pagination, detail, sync health, always scoped to the CIFs the
caller may see) and the sync's (entitled connections, ledger counts, documents to reprocess)."""
from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from spvhub_common.pii import PersonIds, is_person_key
from sqlalchemy import and_, func, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spvhub_efactura import domain
from spvhub_efactura.adapters.ledger import LedgerMessage
from spvhub_efactura.adapters.orm import companies, connections, entitlements, invoices, messages

_PENDING = domain.pending_states()

@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """An invoice as the list and the export show it, with where its documents are archived."""

    id: int
    cif: str
    message_id: str
    direction: str
    document_type: str
    message_type: str | None
    type_code: str | None
    number: str | None
    issue_date: date | None
    due_date: date | None
    currency: str | None
    partner_cif: str | None
    partner_name: str | None
    seller_cif: str | None
    seller_name: str | None
    buyer_cif: str | None
    buyer_name: str | None
    self_billing: bool
    net_amount: Decimal | None
    vat_amount: Decimal | None
    total_amount: Decimal | None
    payable_amount: Decimal | None
    listed_at: datetime
    signature_status: str | None
    upload_index: str | None
    preceding_number: str | None
    zip_key: str
    xml_key: str | None
    filed_late: bool | None


@dataclass(frozen=True, slots=True)
class Invoice(InvoiceSummary):
    """An invoice with everything its detail shows."""

    tax_currency: str | None
    vat_breakdown: list[dict[str, Any]] | None
    details: dict[str, Any] | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A message ANAF listed for the company and what the sync did with it."""

    message_id: str
    tip: str
    kind: str
    upload_index: str | None
    listed_at: datetime
    purge_at: datetime
    state: str  # a domain.MessageState value
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    lost_reason: str | None
    archived_at: datetime | None
    parse_status: str | None
    signature_status: str | None
    needs_reprocess: bool
    problem: str | None


@dataclass(frozen=True, slots=True)
class MessageArchive:
    """What archiving a message found (None before it was archived)."""

    zip_sha256: str | None
    archived_at: datetime | None
    signature_status: str | None
    signature_detail: str | None
    signer_subject: str | None
    signer_serial: str | None
    signer_sha256: str | None
    signer_trusted: bool | None
    signature_shape: str | None
    problem: str | None
    purge_at: datetime
    parse_status: str | None


def _columns(record: type[Any], table: Any) -> list[Any]:
    """The table's columns a record is read from, named as its fields."""
    return [table.c[f.name] for f in fields(record)]


LIST_COLUMNS = _columns(InvoiceSummary, invoices)


@dataclass
class InvoiceFilter:
    cifs: list[str]
    direction: str | None = None
    partner: str | None = None  # a CIF (digits, optional RO) or part of the partner's name
    number: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    document_type: str | None = None
    type_code: str | None = None


def encode_cursor(listed_at: datetime, id_: int) -> str:
    return base64.urlsafe_b64encode(f"{listed_at.isoformat()}|{id_}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    ts, id_ = raw.split("|", 1)
    return datetime.fromisoformat(ts), int(id_)


def _where(f: InvoiceFilter) -> list[Any]:
    cond: list[Any] = [invoices.c.cif.in_(f.cifs) if len(f.cifs) != 1 else invoices.c.cif == f.cifs[0]]
    if f.direction:
        cond.append(invoices.c.direction == f.direction)
    if f.partner:
        p = f.partner.strip()
        digits = p.upper().removeprefix("RO").strip()
        if digits.isdigit():
            cond.append(invoices.c.partner_cif == digits)
        else:
            cond.append(invoices.c.partner_name.ilike(f"%{_like(p)}%"))
    if f.number:
        cond.append(invoices.c.number == f.number)
    if f.date_from:
        cond.append(invoices.c.issue_date >= f.date_from)
    if f.date_to:
        cond.append(invoices.c.issue_date <= f.date_to)
    if f.amount_min is not None:
        cond.append(invoices.c.total_amount >= f.amount_min)
    if f.amount_max is not None:
        cond.append(invoices.c.total_amount <= f.amount_max)
    if f.document_type:
        cond.append(invoices.c.document_type == f.document_type)
    if f.type_code:
        cond.append(invoices.c.type_code == f.type_code)
    return cond


def _like(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_invoices(session: AsyncSession, f: InvoiceFilter, limit: int, cursor: str | None
                        ) -> tuple[list[InvoiceSummary], str | None]:
    """Newest first by ANAF's listing date; keyset pagination on (listed_at, id)."""
    if not f.cifs:
        return [], None
    cond = _where(f)
    if cursor:
        at, id_ = decode_cursor(cursor)
        cond.append(tuple_(invoices.c.listed_at, invoices.c.id) < tuple_(at, id_))
    q = (select(*LIST_COLUMNS).where(and_(*cond))
         .order_by(invoices.c.listed_at.desc(), invoices.c.id.desc()).limit(limit + 1))
    rows = [InvoiceSummary(**r) for r in (await session.execute(q)).mappings().all()]
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].listed_at, rows[-1].id)
    return rows, nxt


async def iter_invoices(sessions: async_sessionmaker[AsyncSession], f: InvoiceFilter, max_items: int,
                        chunk: int = 200) -> AsyncIterator[InvoiceSummary]:
    """All matching rows in pages (a short transaction per page, so a long export holds no connection)."""
    cursor: str | None = None
    seen = 0
    while seen < max_items:
        async with sessions() as s:
            rows, cursor = await list_invoices(s, f, min(chunk, max_items - seen), cursor)
        for r in rows:
            yield r
        seen += len(rows)
        if cursor is None:
            return


async def get_invoice(session: AsyncSession, invoice_id: int) -> Invoice | None:
    row = (await session.execute(select(*_columns(Invoice, invoices)).where(invoices.c.id == invoice_id))
           ).mappings().first()
    return Invoice(**row) if row else None


async def get_message(session: AsyncSession, cif: str, message_id: str) -> MessageArchive | None:
    """What archiving the message found, for an invoice's detail."""
    row = (await session.execute(select(*_columns(MessageArchive, messages)).where(
        messages.c.cif == cif, messages.c.message_id == message_id))).mappings().first()
    return MessageArchive(**row) if row else None


async def list_messages(session: AsyncSession, cif: str, state: str | None, limit: int) -> list[LedgerEntry]:
    q = select(*_columns(LedgerEntry, messages)).where(messages.c.cif == cif)
    if state:
        q = q.where(messages.c.state == state)
    q = q.order_by(messages.c.listed_at.desc()).limit(limit)
    return [LedgerEntry(**r) for r in (await session.execute(q)).mappings().all()]


FLAGGED_SHOWN = 20
FIRST_SYNC_DAYS = 60  # how far back the first sync lists (ANAF keeps 60 days)


@dataclass(frozen=True, slots=True)
class FirstSync:
    reaches_back_days: int
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessageCounts:
    archived: int
    pending: int  # listed or failed, not archived yet
    failed: int
    lost: int
    flagged: int  # archived with a problem or waiting to be parsed again


@dataclass(frozen=True, slots=True)
class FlaggedDocument:
    message_id: str
    archived_at: datetime | None
    problem: str | None
    signature_status: str | None


@dataclass(frozen=True, slots=True)
class SyncErrors:
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    last_at: datetime | None
    complete: bool | None


@dataclass(frozen=True, slots=True)
class PurgeCountdown:
    next_purge_at: datetime  # when ANAF drops the oldest message not archived yet
    seconds_left: int
    days_left: int


@dataclass(frozen=True, slots=True)
class SyncedThrough:
    """Whose ANAF authorization syncs the company (never a connection id: it may be another tenant's)."""

    kind: str  # own | accounting_firm
    firm_cif: str | None
    active: bool
    may_file: bool


@dataclass(frozen=True, slots=True)
class SyncHealth:
    """How a company's sync is doing, as its health page shows it."""

    cif: str
    status: str  # active | paused | stopped | not_synced
    interval_seconds: int
    last_success_at: datetime | None
    last_started_at: datetime | None
    next_sync_at: datetime | None
    sync_requested: bool
    watermark: datetime | None
    lag_seconds: int | None
    first_sync: FirstSync
    messages: MessageCounts
    flagged_documents: list[FlaggedDocument]  # the latest few
    errors: SyncErrors
    blocked_until: datetime | None
    reconciliation: Reconciliation
    purge_countdown: PurgeCountdown | None
    stop_reason: str | None
    synced_through: SyncedThrough | None


async def sync_health(session: AsyncSession, cifs: list[str], now: datetime, interval_default: int,
                      ids: PersonIds | None = None) -> list[SyncHealth]:
    if not cifs:
        return []
    comp = {r["cif"]: dict(r) for r in (await session.execute(
        select(companies).where(companies.c.cif.in_(cifs)))).mappings().all()}
    counts: dict[str, dict[str, int]] = {}
    for cif, state, n in (await session.execute(
            select(messages.c.cif, messages.c.state, func.count()).where(messages.c.cif.in_(cifs))
            .group_by(messages.c.cif, messages.c.state))).all():
        counts.setdefault(cif, {})[state] = int(n)
    purge = dict((await session.execute(
        select(messages.c.cif, func.min(messages.c.purge_at)).where(
            messages.c.cif.in_(cifs), messages.c.state.in_(_PENDING)).group_by(messages.c.cif))).all())
    flagged_where = (messages.c.cif.in_(cifs), or_(messages.c.problem.is_not(None), messages.c.needs_reprocess))
    flagged = dict((await session.execute(
        select(messages.c.cif, func.count()).where(*flagged_where).group_by(messages.c.cif))).all())
    recent_flagged: dict[str, list[FlaggedDocument]] = {}
    if flagged:
        # the latest few per company, to name them (the count says how many there are)
        ranked = select(messages.c.cif, messages.c.message_id, messages.c.archived_at, messages.c.problem,
                        messages.c.parse_status, messages.c.signature_status,
                        func.row_number().over(partition_by=messages.c.cif,
                                               order_by=messages.c.archived_at.desc()).label("n")
                        ).where(*flagged_where).subquery()
        for r in (await session.execute(select(ranked).where(ranked.c.n <= FLAGGED_SHOWN))).mappings():
            recent_flagged.setdefault(r["cif"], []).append(FlaggedDocument(
                message_id=r["message_id"], archived_at=r["archived_at"],
                problem=r["problem"] or f"{r['parse_status']}", signature_status=r["signature_status"]))
    entitled: dict[str, list[Any]] = {}
    for r in (await session.execute(
            select(entitlements.c.cif, entitlements.c.holder_cif, entitlements.c.may_file,
                   func.coalesce(connections.c.status, "active").label("status"))
            .select_from(entitlements.outerjoin(
                connections, connections.c.connection_id == entitlements.c.connection_id))
            .where(entitlements.c.cif.in_(cifs), entitlements.c.services.any("efactura"))
            .order_by(entitlements.c.cif, entitlements.c.rank))).all():
        entitled.setdefault(r.cif, []).append(r)
    out = []
    for cif in cifs:
        c = comp.get(cif)
        status, stop_reason, through = _sync_route(cif, c is not None, entitled.get(cif, []))
        if status == "active" and c is not None and (cnp_problem := _cnp_problem(cif, c["cnp_sealed"], ids)):
            status, stop_reason = "paused", cnp_problem
        wm = c["watermark"] if c else None
        first_purge = purge.get(cif)
        out.append(SyncHealth(
            cif=cif, status=status,
            interval_seconds=c["interval_seconds"] if c and c["interval_seconds"] else interval_default,
            last_success_at=c["last_success_at"] if c else None,
            last_started_at=c["last_started_at"] if c else None,
            next_sync_at=c["next_sync_at"] if c else None,
            sync_requested=bool(c and c["sync_requested"]),
            watermark=wm,
            lag_seconds=int((now - wm).total_seconds()) if wm else None,
            first_sync=FirstSync(reaches_back_days=FIRST_SYNC_DAYS,
                                 started_at=c["first_sync_started_at"] if c else None,
                                 completed_at=c["first_sync_completed_at"] if c else None),
            messages=_counts(counts.get(cif, {}), int(flagged.get(cif, 0))),
            flagged_documents=recent_flagged.get(cif, []),
            errors=SyncErrors(last_error=_scrub(c["last_error"]) if c else None,
                              last_error_at=c["last_error_at"] if c else None,
                              consecutive_failures=c["consecutive_failures"] if c else 0),
            blocked_until=c["blocked_until"] if c else None,
            reconciliation=Reconciliation(last_at=c["last_reconciled_at"] if c else None,
                                          complete=c["last_reconcile_complete"] if c else None),
            purge_countdown=None if first_purge is None else PurgeCountdown(
                next_purge_at=first_purge,
                seconds_left=max(0, int((first_purge - now).total_seconds())),
                days_left=max(0, (first_purge - now) // timedelta(days=1))),
            stop_reason=stop_reason,
            synced_through=through,
        ))
    return out


def _counts(by_state: dict[str, int], flagged: int) -> MessageCounts:
    def n(state: domain.MessageState) -> int:
        return by_state.get(state.value, 0)
    return MessageCounts(archived=n(domain.MessageState.ARCHIVED), failed=n(domain.MessageState.FAILED),
                         pending=n(domain.MessageState.LISTED) + n(domain.MessageState.FAILED),
                         lost=n(domain.MessageState.LOST), flagged=flagged)


def _sync_route(cif: str, known: bool, entitled: list[Any]) -> tuple[str, str | None, SyncedThrough | None]:
    """(status, stop_reason, synced_through) of a company. Which connection serves it is told as whose
    authorization it is (the company's own or its accounting firm's, with the firm's CIF), never as connection
    ids: those may belong to another tenant."""
    if not entitled:
        return ("stopped" if known else "not_synced"), "no_entitled_connection", None
    active = [e for e in entitled if e.status == "active"]
    first = (active or entitled)[0]
    own = first.holder_cif == cif
    through = SyncedThrough(kind="own" if own else "accounting_firm", firm_cif=None if own else first.holder_cif,
                            active=bool(active), may_file=any(e.may_file for e in active))
    if active:
        return "active", None, through
    reason = "connection_revoked" if first.status == "revoked" else "reauthorization_required"
    return "paused", reason, through


def _cnp_problem(cif: str, sealed: str | None, ids: PersonIds | None) -> str | None:
    """Why a person key cannot be synced for want of its CNP (the sync pauses for it): cnp_missing, cnp_invalid
    (checked when `ids` is given), else None."""
    if not is_person_key(cif):
        return None
    if not sealed:
        return "cnp_missing"
    if ids is not None:
        try:
            ids.unseal(sealed, cif)
        except ValueError:
            return "cnp_invalid"
    return None


_CONNECTION_ID = re.compile(r"connection \S+ needs")


def _scrub(error: str | None) -> str | None:
    """Errors recorded before connection ids were kept out of them."""
    return _CONNECTION_ID.sub("the connection needs", error) if error else error



async def can_file_through_anaf(session: AsyncSession, cif: str) -> bool:
    """Some connection portfolio entitles for `cif` on e-Factura may file in its name."""
    q = select(entitlements.c.connection_id).where(
        entitlements.c.cif == cif, entitlements.c.may_file.is_(True), entitlements.c.services.any("efactura")).limit(1)
    return (await session.execute(q)).first() is not None


# --------------------------------------------------------------------------------------------------
# What the sync reads


class EntitledConnection(NamedTuple):
    connection_id: str
    may_file: bool
    status: str  # active | paused | revoked (active when auth never told us otherwise)


async def entitled_connections(session: AsyncSession, cif: str) -> list[EntitledConnection]:
    """The connections portfolio entitles for `cif` on e-Factura, best first, with their status here."""
    q = (select(entitlements.c.connection_id, entitlements.c.may_file,
                func.coalesce(connections.c.status, "active").label("status"))
         .select_from(entitlements.outerjoin(connections, connections.c.connection_id == entitlements.c.connection_id))
         .where(entitlements.c.cif == cif, entitlements.c.services.any("efactura"))
         .order_by(entitlements.c.rank))
    return [EntitledConnection(str(r.connection_id), bool(r.may_file), str(r.status))
            for r in (await session.execute(q)).all()]


class CnpUnavailable(Exception):
    """A person key whose CNP cannot be had here: `code` cnp_missing (portfolio has not sent it sealed) or
    cnp_invalid (the sealed value is not this key's CNP: tampered, swapped, another installation's secret). The
    text names the key, never a CNP."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


async def anaf_id_of(session: AsyncSession, cif: str, ids: PersonIds) -> str:
    """What names the company to ANAF (`cif=` of the lists and of upload/uploadb2c): a CIF itself; for a person key,
    its CNP unsealed from the sync state (raises `CnpUnavailable`). The clear CNP is for the ANAF call only: never
    log it, store it or put it in an event."""
    if not is_person_key(cif):
        return cif
    sealed = (await session.execute(select(companies.c.cnp_sealed).where(companies.c.cif == cif))).scalar()
    if not sealed:
        raise CnpUnavailable(f"no CNP is known for person key {cif}: ANAF cannot be asked for it until portfolio "
                             "sends it (sealed)", "cnp_missing")
    try:
        return ids.unseal(sealed, cif)
    except ValueError as e:
        raise CnpUnavailable(f"the sealed CNP stored for person key {cif} does not open with this installation's "
                             "PII secret or belongs to another key", "cnp_invalid") from e


async def submissions_of(session: AsyncSession, uploads: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The spvhub submissions behind these (cif, upload index) pairs: error reports that answer them are
    explained by the submission's own rejection event."""
    if not uploads:
        return {}
    rows = await session.execute(text(
        "SELECT s.cif, s.anaf_index, s.id FROM submissions s JOIN unnest(CAST(:cifs AS text[]), "
        "CAST(:idx AS text[])) AS u(cif, idx) ON s.cif = u.cif AND s.anaf_index = u.idx"),
        {"cifs": [c for c, _ in uploads], "idx": [i for _, i in uploads]})
    return {(r.cif, r.anaf_index): r.id for r in rows}


async def flagged_for_reprocess(session: AsyncSession, cif: str) -> list[LedgerMessage]:
    """Archived messages of the company flagged to be parsed again from their ZIP."""
    rows = (await session.execute(select(messages).where(
        messages.c.cif == cif, messages.c.needs_reprocess,
        messages.c.state == domain.MessageState.ARCHIVED.value))).mappings().all()
    return [LedgerMessage.of(r) for r in rows]


async def message_states(session: AsyncSession, cif: str) -> dict[str, int]:
    """How many of the company's messages are in each state."""
    return {state: int(n) for state, n in (await session.execute(
        select(messages.c.state, func.count()).where(messages.c.cif == cif).group_by(messages.c.state))).all()}


async def count_still_pending(session: AsyncSession, cif: str, message_ids: list[str]) -> int:
    """How many of these messages are neither archived nor lost."""
    missing = 0
    for i in range(0, len(message_ids), 5000):
        chunk = message_ids[i:i + 5000]
        missing += int((await session.execute(select(func.count()).where(
            messages.c.cif == cif, messages.c.message_id.in_(chunk), messages.c.state.in_(_PENDING)))).scalar() or 0)
    return missing


async def companies_with_expiring(session: AsyncSession, horizon: datetime) -> list[str]:
    """Companies with a pending message purged before `horizon` and not announced yet."""
    return list((await session.execute(select(messages.c.cif).distinct().where(
        messages.c.state.in_(_PENDING), messages.c.purge_at <= horizon,
        messages.c.expiring_notified_at.is_(None)))).scalars().all())

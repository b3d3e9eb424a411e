"""SQL of outgoing submissions: insert-or-get by (cif, idempotency key), leased claims (database time), conditional
transitions, the ledger/inbox rows a submission links to, and the evidence used to reconcile an interrupted upload.
Every transition is a conditional UPDATE so replicas and restarts can run the same step concurrently."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_efactura.adapters.ledger import LedgerMessage
from spvhub_efactura.adapters.orm import companies, invoices, messages, submissions
from spvhub_efactura.submissions.domain import NOT_FILED, Evidence


@dataclass(frozen=True, slots=True)
class Submission:
    """A row of `submissions`: an invoice or credit note filed at ANAF, or a buyer message (RASP)."""
    id: str
    cif: str  # the filing company (a CIF or a person key)
    kind: str  # invoice | buyer_message
    idempotency_key: str
    key_source: str  # client | derived
    xml_sha256: str
    xml_key: str
    xml_size: int
    standard: str  # UBL | CN | RASP
    document_type: str | None
    extern: bool
    autofactura: bool
    b2c: bool
    route_reason: str | None  # routing.RouteReason; None for buyer messages and older rows
    validate_first: bool
    number: str | None
    issue_date: date | None
    seller_cif: str | None
    buyer_cif: str | None
    invoice_id: int | None  # buyer message: the received invoice it answers
    ref_upload_index: str | None
    submitted_by: str | None
    state: str  # domain.SubmissionState
    lease_owner: str | None
    lease_until: datetime | None
    next_attempt_at: datetime | None
    upload_attempts: int
    upload_started_at: datetime | None
    uploaded_at: datetime | None
    anaf_index: str | None
    upload_response_key: str | None
    anaf_state: str | None
    id_descarcare: str | None
    state_checks: int
    next_check_at: datetime | None
    last_checked_at: datetime | None
    validation: dict[str, Any] | None
    error_stage: str | None
    errors: list[dict[str, Any]] | None
    error_report_key: str | None
    error_report_invoice_id: int | None
    sent_invoice_id: int | None
    last_error: str | None
    reconcile_note: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    deadline_warned_at: datetime | None

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> Submission:  # a RowMapping (its keys may be columns too)
        return cls(**{name: row[name] for name in _COLUMNS})


_COLUMNS = tuple(f.name for f in fields(Submission))


def _submissions(rows: Sequence[Mapping[Any, Any]]) -> list[Submission]:
    return [Submission.of(r) for r in rows]


class Recovered(NamedTuple):
    """A submission whose claimer died: back to `received`, or `unknown` once its upload had started."""
    id: str
    cif: str
    state: str


@dataclass(frozen=True)
class AnswerMessage:
    """The ledger row of the ANAF message that answers a submission (its error report or its sent invoice)."""
    message: LedgerMessage
    last_error: str | None


@dataclass(frozen=True)
class AnswerDocument:
    """What the inbox parsed from that message: its invoice row, its stored XML and the details (the errors of an
    error report)."""
    id: int
    xml_key: str | None
    details: dict[str, Any] | None

    @property
    def error_texts(self) -> list[str]:
        return list((self.details or {}).get("errors") or [])


async def insert_or_get(session: AsyncSession, values: dict[str, Any]) -> tuple[Submission, bool]:
    """The UNIQUE (cif, idempotency_key) decides: the first writer creates, every other gets the existing row."""
    row = (await session.execute(insert(submissions).values(**values).on_conflict_do_nothing(
        constraint="uq_submissions_cif_key").returning(*submissions.c))).mappings().first()
    if row is not None:
        return Submission.of(row), True
    existing = (await session.execute(select(submissions).where(
        submissions.c.cif == values["cif"], submissions.c.idempotency_key == values["idempotency_key"]))
    ).mappings().first()
    assert existing is not None  # the conflicting row is committed (ON CONFLICT waited for it)
    return Submission.of(existing), False


async def get(session: AsyncSession, submission_id: str) -> Submission | None:
    row = (await session.execute(select(submissions).where(submissions.c.id == submission_id))).mappings().first()
    return Submission.of(row) if row else None


async def list_for(session: AsyncSession, cif: str, state: str | None, limit: int, *,
                   after: tuple[datetime, str] | None = None, before: datetime | None = None
                   ) -> list[Submission]:
    """Newest first; `after` is the (created_at, id) of the last row already shown (keyset: rows created in the
    same instant are neither skipped nor repeated), `before` the older created_at bound."""
    q = select(submissions).where(submissions.c.cif == cif)
    if state:
        q = q.where(submissions.c.state == state)
    if after is not None:
        q = q.where(tuple_(submissions.c.created_at, submissions.c.id) < tuple_(*after))
    if before is not None:
        q = q.where(submissions.c.created_at < before)
    rows = (await session.execute(q.order_by(submissions.c.created_at.desc(), submissions.c.id.desc())
                                  .limit(limit))).mappings().all()
    return _submissions(rows)


async def claim_received(session: AsyncSession, me: str, lease: float, now: datetime, n: int,
                         submission_id: str | None = None) -> list[Submission]:
    """received -> uploading under a lease; only one claimer wins a row (SKIP LOCKED + conditional state)."""
    only = "AND id = :sid" if submission_id else ""
    rows = (await session.execute(text(f"""
        UPDATE submissions SET state = 'uploading', lease_owner = :me,
               lease_until = now() + make_interval(secs => :lease), updated_at = now()
        WHERE id IN (SELECT id FROM submissions
                     WHERE state = 'received' AND (next_attempt_at IS NULL OR next_attempt_at <= :now) {only}
                     ORDER BY created_at LIMIT :n FOR UPDATE SKIP LOCKED)
        RETURNING *"""), {"me": me, "lease": lease, "now": now, "n": n, "sid": submission_id})).mappings().all()
    return _submissions(rows)


async def claim_due(session: AsyncSession, state: str, me: str, lease: float, now: datetime,
                    n: int) -> list[Submission]:
    """A processing/unknown/accepted-unlinked row due for work, leased so one replica works on it at a time."""
    cond = {"processing": "state = 'processing'", "unknown": "state = 'unknown'",
            "link": "state = 'accepted' AND sent_invoice_id IS NULL"}[state]
    rows = (await session.execute(text(f"""
        UPDATE submissions SET lease_owner = :me, lease_until = now() + make_interval(secs => :lease)
        WHERE id IN (SELECT id FROM submissions
                     WHERE {cond} AND (next_check_at IS NULL OR next_check_at <= :now)
                       AND (lease_until IS NULL OR lease_until < now())
                     ORDER BY next_check_at NULLS FIRST LIMIT :n FOR UPDATE SKIP LOCKED)
        RETURNING *"""), {"me": me, "lease": lease, "now": now, "n": n})).mappings().all()
    return _submissions(rows)


async def recover_expired(session: AsyncSession) -> list[Recovered]:
    """A claimer died (lease expired while `uploading`). Before the upload call started it is simply claimable
    again; once it started nobody knows whether ANAF filed it, so it becomes `unknown` (never re-uploaded blindly)."""
    rows = (await session.execute(text("""
        UPDATE submissions SET
            state = CASE WHEN upload_started_at IS NULL THEN 'received' ELSE 'unknown' END,
            lease_owner = NULL, lease_until = NULL, next_check_at = NULL, updated_at = now(),
            reconcile_note = CASE WHEN upload_started_at IS NULL THEN reconcile_note
                ELSE 'interrupted during the upload call: looking for it at ANAF before any new upload' END
        WHERE state = 'uploading' AND lease_until < now()
        RETURNING id, cif, state"""))).mappings().all()
    return [Recovered(r["id"], r["cif"], r["state"]) for r in rows]


async def renew(session: AsyncSession, submission_id: str, me: str, lease: float) -> None:
    await session.execute(text(
        "UPDATE submissions SET lease_until = now() + make_interval(secs => :lease) "
        "WHERE id = :id AND lease_owner = :me"), {"lease": lease, "id": submission_id, "me": me})


async def transition(session: AsyncSession, submission_id: str, where: dict[str, Any],
                     **values: Any) -> Submission | None:
    """UPDATE ... WHERE id AND <conditions> RETURNING *; `where` maps column -> value, list (IN) or None (IS NULL)."""
    cond = [submissions.c.id == submission_id]
    for col, v in where.items():
        c = submissions.c[col]
        if v is None:
            cond.append(c.is_(None))
        elif isinstance(v, (list, tuple, set)):
            cond.append(c.in_(list(v)))
        else:
            cond.append(c == v)
    values.setdefault("updated_at", func.now())
    row = (await session.execute(update(submissions).where(and_(*cond)).values(**values)
                                 .returning(*submissions.c))).mappings().first()
    return Submission.of(row) if row else None


async def delete_unsent(session: AsyncSession, submission_id: str) -> bool:
    res = await session.execute(submissions.delete().where(
        submissions.c.id == submission_id, submissions.c.state == "received",
        submissions.c.upload_started_at.is_(None), submissions.c.anaf_index.is_(None)))
    return bool(res.rowcount)


async def ensure_ledger_message(session: AsyncSession, cif: str, message_id: str, tip: str, kind: str,
                                upload_index: str, now: datetime, purge: datetime, submission_id: str) -> None:
    """The ANAF message that answers a submission, known from stareMesaj's id_descarcare before any list shows it.
    The inbox sync upserts the same (cif, message_id) later: one ledger row, one inbox row."""
    await session.execute(insert(messages).values(
        cif=cif, message_id=message_id, tip=tip, kind=kind, upload_index=upload_index, listed_at=now, purge_at=purge,
        first_seen_at=now, last_seen_at=now, state="listed", submission_id=submission_id,
        detalii=f"(known from stareMesaj of id_incarcare={upload_index})").on_conflict_do_nothing())
    await session.execute(update(messages).where(messages.c.cif == cif, messages.c.message_id == message_id)
                          .values(submission_id=submission_id))


async def ledger_message(session: AsyncSession, cif: str, message_id: str) -> AnswerMessage | None:
    row = (await session.execute(select(messages).where(messages.c.cif == cif, messages.c.message_id == message_id))
           ).mappings().first()
    return AnswerMessage(LedgerMessage.of(dict(row)), row["last_error"]) if row else None


async def invoice_by_message(session: AsyncSession, cif: str, message_id: str) -> AnswerDocument | None:
    row = (await session.execute(select(invoices.c.id, invoices.c.xml_key, invoices.c.details).where(
        invoices.c.cif == cif, invoices.c.message_id == message_id))).mappings().first()
    return AnswerDocument(row["id"], row["xml_key"], row["details"]) if row else None


async def link_inbox(session: AsyncSession, cif: str, upload_index: str, submission_id: str,
                     error_report: bool) -> int | None:
    """Mark the inbox rows answering `upload_index` as this submission's; returns the sent invoice (or error
    report) row id."""
    await session.execute(update(messages).where(messages.c.cif == cif, messages.c.upload_index == upload_index)
                          .values(submission_id=submission_id))
    kind_cond = invoices.c.document_type == "error_report" if error_report else \
        invoices.c.document_type != "error_report"
    ids = (await session.execute(update(invoices).where(
        invoices.c.cif == cif, invoices.c.upload_index == upload_index, kind_cond).values(
        submission_id=submission_id).returning(invoices.c.id))).scalars().all()
    return min(ids) if ids else None


async def reconcile_evidence(session: AsyncSession, cif: str, since: datetime) -> list[Evidence]:
    """Inbox messages of `cif` since `since` that answer an upload no submission claims yet (candidates for an
    interrupted upload), with what the inbox parsed from them."""
    rows = (await session.execute(text("""
        SELECT m.message_id, m.kind, m.tip, m.upload_index, m.state, m.listed_at,
               i.id AS invoice_id, i.number, i.issue_date, i.seller_cif, i.buyer_cif, i.xml_key, i.document_type
        FROM messages m LEFT JOIN invoices i ON i.cif = m.cif AND i.message_id = m.message_id
        WHERE m.cif = :cif AND m.kind IN ('sent', 'errors', 'buyer_message', 'received')
          AND m.upload_index IS NOT NULL AND m.listed_at >= :since
          AND NOT EXISTS (SELECT 1 FROM submissions s WHERE s.cif = m.cif AND s.anaf_index = m.upload_index)
        ORDER BY m.listed_at"""), {"cif": cif, "since": since})).mappings().all()
    return [Evidence(**r) for r in rows]


async def unknown_count(session: AsyncSession, cif: str) -> int:
    return int((await session.execute(select(func.count()).select_from(submissions).where(
        submissions.c.cif == cif, submissions.c.state == "unknown"))).scalar() or 0)


async def watermark(session: AsyncSession, cif: str) -> datetime | None:
    return (await session.execute(select(companies.c.watermark).where(companies.c.cif == cif))).scalar()


# -- the filing clock -------------------------------------------------------------------------------
# An invoice still to be filed (domain.NOT_FILED): not uploaded yet, interrupted, or rejected with no later
# submission of the same document (same company, number and issue date) that ANAF took.
_NOT_FILED = [str(s) for s in NOT_FILED]


def _not_refiled() -> Any:
    other = submissions.alias("other")
    return ~select(other.c.id).where(
        other.c.cif == submissions.c.cif, other.c.number == submissions.c.number,
        other.c.issue_date == submissions.c.issue_date, other.c.id != submissions.c.id,
        other.c.state.in_(("processing", "accepted", "received", "uploading", "unknown"))).exists()


async def by_deadline(session: AsyncSession, cifs: list[str], *, open_only: bool, limit: int,
                      since: date | None = None) -> list[Submission]:
    """Invoices of `cifs` by deadline, soonest first (the deadline grows with the issue date, so issue date
    order is deadline order). `open_only`: those still to be filed."""
    if not cifs:
        return []
    q = select(submissions).where(submissions.c.cif.in_(cifs), submissions.c.kind == "invoice",
                                  submissions.c.issue_date.is_not(None))
    if open_only:
        q = q.where(submissions.c.state.in_(_NOT_FILED),
                    (submissions.c.state != "rejected") | _not_refiled())
    if since is not None:
        q = q.where(submissions.c.issue_date >= since)
    rows = (await session.execute(q.order_by(submissions.c.issue_date, submissions.c.created_at, submissions.c.id)
                                  .limit(limit))).mappings().all()
    return _submissions(rows)


async def unwarned_open(session: AsyncSession, since: date, limit: int) -> list[Submission]:
    """Invoices still to be filed, issued on or after `since`, not warned about their deadline yet."""
    q = (select(submissions).where(submissions.c.kind == "invoice", submissions.c.deadline_warned_at.is_(None),
                                   submissions.c.issue_date >= since, submissions.c.state.in_(_NOT_FILED),
                                   (submissions.c.state != "rejected") | _not_refiled())
         .order_by(submissions.c.issue_date).limit(limit))
    return _submissions((await session.execute(q)).mappings().all())


async def mark_warned(session: AsyncSession, submission_id: str, at: datetime) -> bool:
    """Claims the one warning of a submission (a concurrent scan gets False)."""
    res = await session.execute(update(submissions).where(submissions.c.id == submission_id,
                                                          submissions.c.deadline_warned_at.is_(None))
                                .values(deadline_warned_at=at).returning(submissions.c.id))
    return res.first() is not None

"""Drafts on the filing clock: an invoice saved by the company but not filed yet. The legal term (issue date + 5
working days) runs from its issue date whether or not it is filed, so a draft is stored, validated offline, listed
by deadline beside the submissions (per company and across an accounting firm's clients) and warned about like a
submission still to be filed; it is filed later through the normal submission path (same checks, same
idempotency), and from then on the submission carries the clock.

Who may touch drafts: only those who may file for the company (the submissions' own grant check); a draft is not
data that came from ANAF, but it is the company's filing work and only its filers see it."""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spvhub_common.access import grant_of, key_scope, require_grant
from spvhub_common.errors import AppError, Forbidden, NotFound
from spvhub_common.events.efactura import FilingDeadlineApproaching
from spvhub_common.ids import strip_ro
from spvhub_common.logging import get_logger
from spvhub_common.pii import parse_company_id
from spvhub_common.ro_calendar import RO_TZ, default_calendar
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from spvhub_efactura.adapters.orm import access_grants, metadata, submissions
from spvhub_efactura.submissions import domain, errors, filing
from spvhub_efactura.submissions.document import inspect_invoice_xml

if TYPE_CHECKING:
    from spvhub_efactura.submissions.service import SubmissionService, Submitted

log = get_logger(__name__)

DRAFT, FILED = "draft", "filed"

submission_drafts = Table(
    "submission_drafts", metadata,
    Column("id", String(64), primary_key=True),
    Column("cif", String(16), nullable=False),
    Column("xml_sha256", String(64), nullable=False),
    Column("xml_key", Text, nullable=False),
    Column("xml_size", Integer, nullable=False),
    Column("standard", String(8), nullable=False),  # UBL | CN
    Column("document_type", String(20)),
    Column("number", Text),
    Column("issue_date", Date, nullable=False),
    Column("seller_cif", String(32)),
    Column("buyer_cif", String(32)),
    Column("extern", Boolean),  # the caller's flag; NULL: as the document says when it is filed
    Column("autofactura", Boolean, nullable=False, server_default=text("false")),
    Column("b2c", Boolean),
    Column("warnings", JSONB),  # what the offline validation pointed out without refusing
    Column("state", String(16), nullable=False, server_default=DRAFT),  # draft | filed
    Column("created_by", String(64)),
    Column("submission_id", String(64)),  # once filed: the submission that carries the clock
    Column("filed_by", String(64)),
    Column("filed_at", DateTime(timezone=True)),
    Column("deadline_warned_at", DateTime(timezone=True)),  # filing-deadline-approaching published
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("cif", "xml_sha256", name="uq_submission_drafts_cif_xml"),
    Index("ix_submission_drafts_open", "cif", "issue_date", postgresql_where=text("state = 'draft'")),
)


@dataclass(frozen=True, slots=True)
class Draft:
    """A row of `submission_drafts`."""
    id: str
    cif: str
    xml_sha256: str
    xml_key: str
    xml_size: int
    standard: str  # UBL | CN
    document_type: str | None
    number: str | None
    issue_date: date
    seller_cif: str | None
    buyer_cif: str | None
    extern: bool | None  # None: as the document says when it is filed
    autofactura: bool
    b2c: bool | None
    warnings: list[dict[str, Any]] | None  # what the offline validation pointed out without refusing (stored)
    state: str  # draft | filed
    created_by: str | None
    submission_id: str | None
    filed_by: str | None
    filed_at: datetime | None
    deadline_warned_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> Draft:  # a RowMapping (its keys may be columns too)
        return cls(**{name: row[name] for name in _COLUMNS})


_COLUMNS = tuple(f.name for f in fields(Draft))


# -- refusals -------------------------------------------------------------------------------------------------------

def draft_not_found(draft_id: str) -> NotFound:
    return NotFound(f"Draft {draft_id} not found.", code="draft_not_found", details={"draft_id": draft_id},
                    messages={"ro": f"Ciorna {draft_id} nu există."})


def no_issue_date() -> AppError:
    return AppError(
        "The invoice has no issue date (cbc:IssueDate), so its filing deadline cannot be known.",
        code="draft_without_issue_date", status=422,
        messages={"ro": "Factura nu are dată de emitere (cbc:IssueDate), deci termenul de depunere nu poate fi "
                        "calculat."})


# -- SQL ------------------------------------------------------------------------------------------------------------

async def _insert_or_get(session: AsyncSession, values: dict[str, Any]) -> tuple[Draft, bool]:
    """The same XML saved twice for a company is the same draft (UNIQUE (cif, xml_sha256))."""
    row = (await session.execute(insert(submission_drafts).values(**values).on_conflict_do_nothing(
        constraint="uq_submission_drafts_cif_xml").returning(*submission_drafts.c))).mappings().first()
    if row is not None:
        return Draft.of(row), True
    existing = (await session.execute(select(submission_drafts).where(
        submission_drafts.c.cif == values["cif"], submission_drafts.c.xml_sha256 == values["xml_sha256"]))
    ).mappings().first()
    assert existing is not None
    return Draft.of(existing), False


async def _get(session: AsyncSession, draft_id: str) -> Draft | None:
    row = (await session.execute(select(submission_drafts).where(submission_drafts.c.id == draft_id))
           ).mappings().first()
    return Draft.of(row) if row else None


def _not_sent_otherwise() -> Any:
    """No submission of the same document (company, number, issue date) is on its way or filed: one sent directly
    instead of through the draft carries the clock, and the draft would only count it twice."""
    return ~select(submissions.c.id).where(
        submissions.c.cif == submission_drafts.c.cif, submissions.c.kind == "invoice",
        submissions.c.number == submission_drafts.c.number,
        submissions.c.issue_date == submission_drafts.c.issue_date,
        submissions.c.state.in_(("received", "uploading", "processing", "unknown", "accepted"))).exists()


async def open_drafts(session: AsyncSession, cifs: list[str], limit: int) -> list[Draft]:
    """Drafts of `cifs` not filed yet, soonest deadline first (deadline order is issue date order)."""
    if not cifs:
        return []
    q = (select(submission_drafts).where(submission_drafts.c.cif.in_(cifs), submission_drafts.c.state == DRAFT,
                                         _not_sent_otherwise())
         .order_by(submission_drafts.c.issue_date, submission_drafts.c.created_at, submission_drafts.c.id)
         .limit(limit))
    return [Draft.of(r) for r in (await session.execute(q)).mappings().all()]


def company_id(raw: str) -> str:
    """A company id from a URL (a CIF, or a natural person's key), read as the submissions' routes read it."""
    return parse_company_id(raw)


# -- access ---------------------------------------------------------------------------------------------------------

async def require_filer(svc: SubmissionService, user_id: str, cif: str) -> None:
    """The submissions' grant check for filing (verified, may act at ANAF in the company's name), or 403."""
    async with svc.uow() as uow:
        await require_grant(uow.session, access_grants, user_id, cif, file=True)


async def fileable(svc: SubmissionService, user_id: str, cifs: list[str]) -> list[str]:
    """Those of `cifs` the caller may file for (whose drafts they may see)."""
    out = []
    async with svc.uow() as uow:
        if key_scope.get() is None:  # a person (no API key): one query for a firm's many clients
            rows = await uow.session.execute(select(access_grants.c.cif).where(
                access_grants.c.user_id == user_id, access_grants.c.cif.in_(cifs),
                access_grants.c.verified.is_(True), access_grants.c.can_file.is_(True)))
            return sorted(r.cif for r in rows)
        for c in cifs:  # an API key: its own restrictions too, as require_grant applies them
            try:
                await require_grant(uow.session, access_grants, user_id, c, file=True)
            except Forbidden:
                continue
            out.append(c)
    return out


async def readable(svc: SubmissionService, user_id: str, draft_id: str) -> Draft:
    """The draft, when the caller may file for its company. A stranger to the company gets 404 (as if it did not
    exist); one of its members who may not file is told why (403)."""
    async with svc.uow() as uow:
        row = await _get(uow.session, draft_id)
        if row is None:
            raise draft_not_found(draft_id)
        try:
            await require_grant(uow.session, access_grants, user_id, row.cif, file=True)
        except Forbidden as e:
            if await grant_of(uow.session, access_grants, user_id, row.cif) is None:
                raise draft_not_found(draft_id) from e
            raise
    return row


# -- use cases ------------------------------------------------------------------------------------------------------

async def save(svc: SubmissionService, cif: str, xml: bytes, user_id: str | None, *, extern: bool | None = None,
               autofactura: bool = False, b2c: bool | None = None) -> tuple[Draft, bool]:
    """Store a draft after the checks a submission gets before filing (the document, its owner, the offline
    validation). Returns (row, created); the same XML again is the same draft."""
    ins = await asyncio.to_thread(inspect_invoice_xml, xml, svc.settings.submission_max_xml_bytes)
    own = domain.owner_cif(ins.seller_cif, ins.buyer_cif, autofactura)
    if strip_ro(own or "").upper() != cif:
        raise errors.seller_mismatch("buyer (self-billing)" if autofactura else "seller", own, cif)
    if ins.issue_date is None:
        raise no_issue_date()
    report = await svc.validator.validate_async(xml)
    if not report.ok:
        raise errors.invalid_document(report)
    warnings = [f.as_dict() for f in report.warnings[:50]]
    sha = hashlib.sha256(xml).hexdigest()
    xml_key = f"efactura/{cif}/drafts/xml/{sha}.xml"
    await svc.blobs.put(xml_key, xml, "application/xml")  # blob before the row that points at it
    async with svc.uow() as uow:
        row, created = await _insert_or_get(uow.session, dict(
            id=uuid.uuid4().hex, cif=cif, xml_sha256=sha, xml_key=xml_key, xml_size=len(xml), standard=ins.standard,
            document_type=ins.document_type, number=ins.number, issue_date=ins.issue_date,
            seller_cif=ins.seller_cif, buyer_cif=ins.buyer_cif, extern=extern, autofactura=autofactura, b2c=b2c,
            warnings=warnings, created_by=user_id))
        await uow.commit()
    return row, created


async def mark_filed(svc: SubmissionService, draft_id: str, submission_id: str, user_id: str | None) -> Draft:
    """The draft is now carried by `submission_id` (a second filing call keeps the first's)."""
    async with svc.uow() as uow:
        await uow.session.execute(update(submission_drafts).where(
            submission_drafts.c.id == draft_id, submission_drafts.c.state == DRAFT).values(
            state=FILED, submission_id=submission_id, filed_by=user_id, filed_at=svc.clock.now(),
            updated_at=func.now()))
        row = await _get(uow.session, draft_id)
        await uow.commit()
    assert row is not None
    return row


async def by_deadline(svc: SubmissionService, cifs: list[str], limit: int) -> list[Draft]:
    async with svc.uow() as uow:
        return await open_drafts(uow.session, cifs, limit)


def clock_of(row: Draft, now: datetime, due_soon_hours: float) -> dict[str, Any]:
    """The filing-clock fields of a draft: not filed, so its state is read at `now`."""
    dl = filing.deadline(row.issue_date)
    return {"filing_deadline": dl.last_day, "filing_deadline_at": dl.last_moment,
            "deadline_state": filing.state_at(dl, now, None, due_soon_hours), "filed_late": None}


async def scan_deadlines(svc: SubmissionService, now: datetime) -> int:
    """Publish `efactura.filing-deadline-approaching` once for each draft whose deadline is at most the configured
    working hours away (as for a submission still to be filed; never for one already late)."""
    since: date = now.astimezone(RO_TZ).date() - timedelta(days=svc.settings.submission_deadline_scan_days)
    cal = default_calendar()
    async with svc.uow() as uow:
        rows = [Draft.of(r) for r in (await uow.session.execute(select(submission_drafts).where(
            submission_drafts.c.state == DRAFT, submission_drafts.c.deadline_warned_at.is_(None),
            submission_drafts.c.issue_date >= since, _not_sent_otherwise())
            .order_by(submission_drafts.c.issue_date).limit(1000))).mappings().all()]
    told = 0
    for row in rows:
        dl = filing.deadline(row.issue_date, cal)
        left = filing.warning_due(dl, now, svc.settings.submission_deadline_warning_working_hours, cal)
        if left is None:
            continue
        async with svc.uow() as uow:
            claimed = (await uow.session.execute(update(submission_drafts).where(
                submission_drafts.c.id == row.id, submission_drafts.c.state == DRAFT,
                submission_drafts.c.deadline_warned_at.is_(None)).values(deadline_warned_at=now)
                .returning(submission_drafts.c.id))).first()
            if claimed is not None:
                uow.publish(FilingDeadlineApproaching(
                    cif=row.cif, submission_id="", number=row.number, issue_date=row.issue_date,
                    deadline=dl.last_day, deadline_at=dl.last_moment, working_hours_left=round(left / 3600, 1),
                    state=DRAFT, submitted_by=row.created_by, draft_id=row.id))
                told += 1
            await uow.commit()
    return told


async def file_draft(svc: SubmissionService, draft: Draft, user_id: str | None) -> Submitted:
    """File a draft through the normal submission path (its checks, its idempotency: the key derived from the
    seller, number and issue date, so a draft filed twice, or also sent directly, is one submission). A draft
    already filed answers its submission (not created, no warnings: they belong to the call that filed it)."""
    from spvhub_efactura.submissions.service import SubmitCommand, Submitted  # the service imports this module

    if draft.state == FILED and draft.submission_id:
        row = await svc.get(draft.submission_id)
        if row is not None:
            return Submitted(row, created=False)
    xml = await svc.blobs.get(draft.xml_key)
    # a flag the caller gave when saving; left out, the submission decides as it does for a direct one
    done = await svc.submit(SubmitCommand(cif=draft.cif, xml=xml, user_id=user_id, autofactura=draft.autofactura,
                                          extern=draft.extern, b2c=draft.b2c))
    await mark_filed(svc, draft.id, done.submission.id, user_id)
    log.info("draft filed", draft_id=draft.id, submission_id=done.submission.id, created=done.created)
    return done


async def delete_draft(svc: SubmissionService, draft_id: str) -> bool:
    """A draft not filed yet is dropped (a filed one stays: its submission is the record)."""
    async with svc.uow() as uow:
        res = await uow.session.execute(submission_drafts.delete().where(
            submission_drafts.c.id == draft_id, submission_drafts.c.state == DRAFT))
        await uow.commit()
    return bool(res.rowcount)


def draft_already_filed(draft_id: str, submission_id: str | None) -> AppError:
    return AppError(f"Draft {draft_id} is filed already (submission {submission_id}); it stays as its record.",
                    code="draft_already_filed", status=409, details={"draft_id": draft_id,
                                                                     "submission_id": submission_id},
                    messages={"ro": f"Ciorna {draft_id} a fost deja depusă (trimiterea {submission_id}); rămâne "
                                    "ca evidență."})

"""HTTP API of outgoing submissions: submit an invoice/credit note, list and read submissions with their
explained errors and links, send a buyer message (RASP) about a received invoice. Every route is scoped by the
access read model."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from spvhub_common.http import app_deps
from spvhub_common.paging import Page
from spvhub_common.pii import parse_company_id
from spvhub_common.security import CurrentUser

from spvhub_efactura import handlers
from spvhub_efactura.api import binary_download
from spvhub_efactura.handlers import Deps
from spvhub_efactura.submissions import drafts, errors, filing
from spvhub_efactura.submissions.repository import Submission
from spvhub_efactura.submissions.service import SubmitCommand

ServiceDeps = Annotated[Deps, Depends(app_deps)]

router = APIRouter(prefix="/api/efactura", tags=["efactura submissions"])
_XML_TYPES = ("application/xml", "text/xml", "text/plain", "application/octet-stream", "")
_XML = binary_download("application/xml", "the XML as stored")


class SubmissionOut(BaseModel):
    id: str
    cif: str
    kind: str
    state: str = Field(description="received | uploading | processing | accepted | rejected | unknown")
    idempotency_key: str
    key_source: str
    standard: str
    document_type: str | None = None
    number: str | None = None
    issue_date: date | None = None
    seller_cif: str | None = None
    buyer_cif: str | None = None
    extern: bool = False
    autofactura: bool = False
    b2c: bool = False
    route: str = Field("upload", description="the e-Factura route it is filed through: upload | uploadb2c")
    route_reason: str | None = Field(None, description="why, read from the document: buyer_cnp | buyer_placeholder "
                                     "(13 zeros) | buyer_without_tax_id (B2C, uploadb2c); buyer_tax_id | "
                                     "buyer_abroad_ro_vat (upload) | buyer_abroad (upload, extern=DA) | "
                                     "self_billing; None for buyer messages and submissions filed before it was "
                                     "recorded")
    validate_first: bool = False
    anaf_index: str | None = Field(None, description="ANAF's index_incarcare")
    anaf_state: str | None = Field(None, description="last stareMesaj answer")
    id_descarcare: str | None = None
    state_checks: int = 0
    upload_attempts: int = 0
    uploaded_at: datetime | None = None
    error_stage: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list, description="code, field, message (ANAF), "
                                         "explanation_ro, explanation_en")
    validation: dict[str, Any] | None = None
    last_error: str | None = None
    reconcile_note: str | None = None
    submitted_by: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    filing_deadline: date | None = Field(None, description="last day to file (5 working days after the issue date, "
                                         "OUG 89/2025; the term ends at 23:59:59 Bucharest time)")
    filing_deadline_at: datetime | None = None
    deadline_state: str | None = Field(None, description="on_time | due_soon | late: by the filing moment (ANAF's "
                                       "acceptance of the upload) once filed, else by now")
    filed_late: bool | None = Field(None, description="filed after the deadline (None while not filed)")
    warnings: list[dict[str, Any]] = Field(default_factory=list, description="on submit only: what the offline "
                                           "validation pointed out without refusing (e.g. a VAT rate that does not "
                                           "match the invoice's date, SPVHUB-VAT-01/02); not stored")
    links: dict[str, str] = {}


_CLOCK_FIELDS = ("filing_deadline", "filing_deadline_at", "deadline_state", "filed_late")


_COPIED = tuple(k for k in SubmissionOut.model_fields
                if k not in ("links", "errors", "warnings", "route", *_CLOCK_FIELDS))


def out(row: Submission, now: datetime | None = None, due_soon_hours: float = 24.0,
        warnings: Sequence[dict[str, Any]] = ()) -> SubmissionOut:
    """The API view of a submission; the filing clock is read at `now` (the service's clock). `warnings`: those of
    the submit call that answers it (not stored)."""
    clock = filing.clock_of(row, now or datetime.now(UTC), due_soon_hours)
    return SubmissionOut(**{k: getattr(row, k) for k in _COPIED}, **clock, errors=row.errors or [],
                         warnings=list(warnings), route="uploadb2c" if row.b2c else "upload",
                         links=error_links(row))


def error_links(row: Submission) -> dict[str, str]:
    base = f"/api/efactura/submissions/{row.id}"
    links = {"self": base, "xml": f"{base}/xml"}
    if row.upload_response_key:
        links["anaf_response"] = f"{base}/anaf-response"
    if row.error_report_key or row.error_report_invoice_id:
        links["error_report"] = f"{base}/error-report"
    if row.error_report_invoice_id:
        links["error_report_invoice"] = f"/api/efactura/invoices/{row.error_report_invoice_id}"
    if row.sent_invoice_id:
        links["sent_invoice"] = f"/api/efactura/invoices/{row.sent_invoice_id}"
    if row.invoice_id:
        links["invoice"] = f"/api/efactura/invoices/{row.invoice_id}"
    return links


def _out(deps: Deps, row: Submission, warnings: Sequence[dict[str, Any]] = ()) -> SubmissionOut:
    return out(row, deps.clock.now(), deps.settings.submission_deadline_warning_working_hours, warnings)


async def _read_body(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """Raw XML body (streamed, stops past the limit) or multipart (`file` + optional form fields)."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=20)
        item = form.get("file")
        if item is None or isinstance(item, str):
            raise errors.multipart_without_file()
        data = await item.read(limit + 1)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return data, fields
    if ctype not in _XML_TYPES:
        raise errors.unsupported_media_type(ctype)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            break  # enough to refuse it as too large
    return bytes(buf), {}


def _flag(query: bool | None, form: dict[str, str], name: str) -> bool:
    return bool(_said(query, form, name))


def _said(query: bool | None, form: dict[str, str], name: str) -> bool | None:
    """The caller's flag, None when it said nothing (then the document decides)."""
    if query is not None:
        return query
    if name not in form:
        return None
    return form[name].strip().lower() in ("1", "true", "da", "yes", "on")


@router.post("/companies/{cif}/submissions", status_code=202, response_model=SubmissionOut,
             summary="File a UBL 2.1 / CIUS-RO invoice or credit note (idempotent)",
             responses={200: {"description": "the existing submission for this Idempotency-Key"},
                        409: {"description": "idempotency_key_reused"},
                        422: {"description": "invoice_invalid (offline validation: rule ids and findings in "
                                             "details), seller_mismatch, b2c_mismatch, extern_mismatch, "
                                             "xml_not_ubl_invoice ..."},
                        413: {"description": "xml_too_large"}})
async def submit(request: Request, response: Response, deps: ServiceDeps, user: CurrentUser, cif: str,
                 idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
                 standard: Annotated[str | None, Query(description="UBL or CN; inferred from the root")] = None,
                 extern: Annotated[bool | None, Query(description="buyer outside Romania without a Romanian tax id "
                                                      "(extern=DA); derived from the document when left out, "
                                                      "422 extern_mismatch when it contradicts it")] = None,
                 autofactura: Annotated[bool | None, Query(description="self-billing")] = None,
                 b2c: Annotated[bool | None, Query(description="file through uploadb2c (a buyer identified by a CNP, "
                                                   "0000000000000, or no tax id in Romania); derived from the "
                                                   "document when left out, 422 b2c_mismatch when it contradicts "
                                                   "it")] = None,
                 validate_first: Annotated[bool | None, Query(description="ANAF validare before upload")] = None,
                 offline_validation: Annotated[bool | None, Query(
                     description="validate offline (schema, EN 16931, CIUS-RO) before storing or sending; "
                                 "on by default, refused with 422 invoice_invalid")] = None,
                 ) -> SubmissionOut:
    # the grant is checked before the body is read or anything stored
    c = await deps.submissions.scoped_cif(user.user_id, parse_company_id(cif), file=True)
    data, form = await _read_body(request, deps.settings.submission_max_xml_bytes)
    cmd = SubmitCommand(cif=c, xml=data, user_id=user.user_id,
                        client_key=idempotency_key or form.get("idempotency_key"),
                        extern=_said(extern, form, "extern"), autofactura=_flag(autofactura, form, "autofactura"),
                        b2c=_said(b2c, form, "b2c"), validate_first=_flag(validate_first, form, "validate_first"),
                        standard=standard or form.get("standard") or None,
                        offline_validation=offline_validation if offline_validation is not None else (
                            _flag(None, form, "offline_validation") if "offline_validation" in form else None))
    done = await deps.submissions.submit(cmd)
    response.status_code = 202 if done.created else 200
    return _out(deps, done.submission, done.warnings)


class ValidationOut(BaseModel):
    """ANAF's `validare` answer (`stare`, `Messages` when it fails) plus the structured findings."""

    model_config = ConfigDict(extra="allow")
    stare: str = Field(description="ok | nok")
    Messages: list[dict[str, Any]] | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list, description="rule id, field, ANAF's text and the "
                                           "explanation in Romanian and English")
    cius_ro_version: str | None = None


@router.post("/validation", response_model=ValidationOut, response_model_exclude_unset=True,
             summary="Validate a UBL 2.1 invoice or credit note offline (no ANAF call, no budget)",
             responses={413: {"description": "xml_too_large"}})
async def validate_offline(request: Request, deps: ServiceDeps, user: CurrentUser) -> ValidationOut:
    """The UBL 2.1 schema, the EN 16931 and CIUS-RO rules and the VAT rates by date, applied locally; answers in
    the shape of ANAF's `validare` (`stare`, `Messages`) with each finding's rule id, field, ANAF's text and the
    explanation in Romanian and English. Works while ANAF is down; reads no company data."""
    limit = deps.settings.submission_max_xml_bytes
    data, _ = await _read_body(request, limit)
    if len(data) > limit:
        raise errors.body_too_large(limit)
    if not data.strip():
        raise errors.xml_missing()
    return ValidationOut(**(await deps.submissions.validator.validate_async(data)).validare())


class DraftOut(BaseModel):
    """An invoice saved as a draft (not filed): on the filing clock from its issue date all the same."""

    id: str
    cif: str
    kind: Literal["draft"] = "draft"
    state: str = Field(description="draft (not filed yet) | filed (see submission_id)")
    standard: str
    document_type: str | None = None
    number: str | None = None
    issue_date: date
    seller_cif: str | None = None
    buyer_cif: str | None = None
    extern: bool | None = Field(None, description="as given when saved; None: the document decides when filed")
    autofactura: bool = False
    b2c: bool | None = Field(None, description="as given when saved; None: the document decides when filed")
    warnings: list[dict[str, Any]] = Field(default_factory=list, description="what the offline validation pointed "
                                           "out without refusing")
    created_by: str | None = None
    created_at: datetime
    submission_id: str | None = Field(None, description="once filed: the submission that carries the clock")
    filed_by: str | None = None
    filed_at: datetime | None = None
    filing_deadline: date | None = Field(None, description="last day to file (5 working days after the issue date; "
                                         "the term ends at 23:59:59 Bucharest time)")
    filing_deadline_at: datetime | None = None
    deadline_state: str | None = Field(None, description="on_time | due_soon | late, by now (a draft is not filed)")
    filed_late: bool | None = Field(None, description="always None: a draft is not filed")
    links: dict[str, str] = {}


_DRAFT_COPIED = tuple(k for k in DraftOut.model_fields if k not in ("kind", "warnings", "links", *_CLOCK_FIELDS))


def draft_out(deps: Deps, row: drafts.Draft, now: datetime | None = None) -> DraftOut:
    base = f"/api/efactura/drafts/{row.id}"
    links = {"self": base, "xml": f"{base}/xml", "file": f"{base}/file"}
    if row.submission_id:
        links["submission"] = f"/api/efactura/submissions/{row.submission_id}"
    clock = drafts.clock_of(row, now or deps.clock.now(), deps.settings.submission_deadline_warning_working_hours)
    return DraftOut(**{k: getattr(row, k) for k in _DRAFT_COPIED}, **clock, warnings=row.warnings or [],
                    links=links)


class DeadlinesOut(BaseModel):
    items: list[SubmissionOut | DraftOut] = Field(description="submissions and drafts (kind=draft) together, "
                                                  "soonest deadline first; drafts only of the companies the caller "
                                                  "may file for")
    counts: dict[str, int] = Field(description="how many items are late, due_soon and on_time")
    open_only: bool


async def _deadlines(deps: Deps, cifs: list[str], open_only: bool, limit: int,
                     user_id: str | None = None) -> DeadlinesOut:
    rows = await deps.submissions.by_deadline(cifs, open_only, limit)
    now = deps.clock.now()
    hours = deps.settings.submission_deadline_warning_working_hours
    items: list[SubmissionOut | DraftOut] = [out(r, now, hours) for r in rows]
    if user_id is not None:  # drafts are the filers' work: only of the companies the caller may file for
        mine = await drafts.by_deadline(deps.submissions, await drafts.fileable(deps.submissions, user_id, cifs),
                                        limit)
        items += [draft_out(deps, d, now) for d in mine]
        # one order for both (stable: submissions before drafts of the same deadline, each in its own order)
        items = sorted(items, key=lambda i: i.filing_deadline or date.max)[:limit]
    counts = {s: sum(1 for i in items if i.deadline_state == s) for s in (filing.LATE, filing.DUE_SOON, filing.ON_TIME)}
    return DeadlinesOut(items=items, counts=counts, open_only=open_only)


@router.get("/companies/{cif}/filing-deadlines", response_model=DeadlinesOut,
            summary="A company's invoices by legal filing deadline, soonest first (on_time / due_soon / late)")
async def company_deadlines(deps: ServiceDeps, user: CurrentUser, cif: str,
                            open_only: Annotated[bool, Query(alias="open", description="only those still to be "
                                                             "filed (default); false: the last 90 days")] = True,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> DeadlinesOut:
    c = await deps.submissions.scoped_cif(user.user_id, parse_company_id(cif))
    return await _deadlines(deps, [c], open_only, limit, user.user_id)


@router.get("/filing-deadlines", response_model=DeadlinesOut,
            summary="Invoices by legal filing deadline across every company the caller may see (an accounting "
                    "firm: its own and its clients'), soonest first")
async def all_deadlines(deps: ServiceDeps, user: CurrentUser,
                        open_only: Annotated[bool, Query(alias="open")] = True,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> DeadlinesOut:
    return await _deadlines(deps, await deps.submissions.readable_cifs(user.user_id), open_only, limit,
                            user.user_id)


class SubmissionPage(Page[SubmissionOut]):
    next_before: str | None = Field(None, deprecated=True, description="created_at of the last item, for the "
                                    "older `before=` paging; follow `next_cursor` instead (None: the end)")


@router.get("/companies/{cif}/submissions", response_model=SubmissionPage,
            summary="Submissions of a company, newest first (cursor paging)")
async def list_submissions(deps: ServiceDeps, user: CurrentUser, cif: str, state: str | None = None,
                           limit: Annotated[int, Query(ge=1, le=500)] = 50,
                           cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
                           before: Annotated[datetime | None, Query(
                               deprecated=True, description="only those created before this instant; use cursor")
                           ] = None) -> SubmissionPage:
    c = await deps.submissions.scoped_cif(user.user_id, parse_company_id(cif))
    rows, next_cursor = await deps.submissions.list_page(c, state, limit, cursor, before)
    items = [_out(deps, r) for r in rows]
    return SubmissionPage(items=items, next_cursor=next_cursor,
                          next_before=items[-1].created_at.isoformat() if next_cursor else None)


@router.get("/submissions/{submission_id}", response_model=SubmissionOut,
            summary="A submission: state, ANAF index, explained errors, links")
async def get_submission(deps: ServiceDeps, user: CurrentUser, submission_id: str) -> SubmissionOut:
    return _out(deps, await deps.submissions.readable(user.user_id, submission_id))


@router.get("/submissions/{submission_id}/xml", response_class=Response, responses=_XML,
            summary="The submitted XML")
async def submission_xml(deps: ServiceDeps, user: CurrentUser, submission_id: str) -> Response:
    row = await deps.submissions.readable(user.user_id, submission_id)
    return Response(await deps.submissions.blob(row.xml_key), media_type="application/xml")


@router.get("/submissions/{submission_id}/anaf-response", response_class=Response, responses=_XML,
            summary="ANAF's answer to the upload")
async def submission_response(deps: ServiceDeps, user: CurrentUser, submission_id: str) -> Response:
    row = await deps.submissions.readable(user.user_id, submission_id)
    if not row.upload_response_key:
        raise errors.no_anaf_response()
    return Response(await deps.submissions.blob(row.upload_response_key), media_type="application/xml")


@dataclass(frozen=True)
class _ArchivedZip:
    """ANAF's signed ZIP of an error report with no XML stored apart: what `handlers.xml_of` reads it from."""
    zip_key: str
    xml_key: str | None = None


@router.get("/submissions/{submission_id}/error-report", response_class=Response, responses=_XML,
            summary="ANAF's error report (mesajEroriFactuta)")
async def submission_error_report(deps: ServiceDeps, user: CurrentUser, submission_id: str) -> Response:
    row = await deps.submissions.readable(user.user_id, submission_id)
    key = row.error_report_key
    if not key:
        raise errors.no_error_report()
    # the report lives inside ANAF's signed ZIP (the archive); serve its XML
    data = await (handlers.xml_of(deps, _ArchivedZip(key)) if key.endswith(".zip")  # type: ignore[arg-type]
                  else deps.submissions.blob(key))
    return Response(data, media_type="application/xml")


class BuyerMessageIn(BaseModel):
    message: str = Field(min_length=1, max_length=2000, description="text sent to the seller through ANAF (RASP)")


@router.post("/invoices/{invoice_id}/buyer-messages", status_code=202, response_model=SubmissionOut,
             summary="Send a buyer message (RASP) about a received invoice (1000/day per CUI)",
             responses={200: {"description": "the existing buyer message for this Idempotency-Key"},
                        429: {"description": "quota_exhausted (with resets_at and Retry-After)"}})
async def buyer_message(response: Response, deps: ServiceDeps, user: CurrentUser, invoice_id: int,
                        body: BuyerMessageIn,
                        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
                        ) -> SubmissionOut:
    inv = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    await deps.submissions.may_send_buyer_message(user.user_id, inv.cif)
    row, created = await deps.submissions.submit_buyer_message(inv, body.message, user.user_id, idempotency_key)
    response.status_code = 202 if created else 200
    return _out(deps, row)


# -- drafts: saved, on the filing clock, filed later ------------------------------------------------------------------

class DraftsOut(BaseModel):
    items: list[DraftOut]
    counts: dict[str, int] = Field(description="how many drafts are late, due_soon and on_time")


@router.post("/companies/{cif}/drafts", status_code=201, response_model=DraftOut,
             summary="Save an invoice or credit note as a draft: validated offline, not filed, on the filing clock",
             responses={200: {"description": "the existing draft of the same XML"},
                        422: {"description": "invoice_invalid, seller_mismatch, draft_without_issue_date ..."},
                        413: {"description": "xml_too_large"}})
async def save_draft(request: Request, response: Response, deps: ServiceDeps, user: CurrentUser, cif: str,
                     extern: Annotated[bool | None, Query(description="as for a submission; left out: the document "
                                                          "decides when the draft is filed")] = None,
                     autofactura: Annotated[bool | None, Query(description="self-billing")] = None,
                     b2c: Annotated[bool | None, Query(description="as for a submission; left out: the document "
                                                       "decides when the draft is filed")] = None) -> DraftOut:
    # the same grant as filing, checked before the body is read or anything stored
    c = drafts.company_id(cif)
    await drafts.require_filer(deps.submissions, user.user_id, c)
    limit = deps.settings.submission_max_xml_bytes
    data, form = await _read_body(request, limit)
    if len(data) > limit:
        raise errors.body_too_large(limit)
    if not data.strip():
        raise errors.xml_missing()
    said = {k: v if v is not None else (form[k].strip().lower() in ("1", "true", "da", "yes", "on")
                                         if k in form else None)
            for k, v in (("extern", extern), ("autofactura", autofactura), ("b2c", b2c))}
    row, created = await drafts.save(deps.submissions, c, data, user.user_id, extern=said["extern"],
                                     autofactura=bool(said["autofactura"]), b2c=said["b2c"])
    response.status_code = 201 if created else 200
    return draft_out(deps, row)


@router.get("/companies/{cif}/drafts", response_model=DraftsOut,
            summary="A company's drafts not filed yet, soonest filing deadline first")
async def list_drafts(deps: ServiceDeps, user: CurrentUser, cif: str,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> DraftsOut:
    c = drafts.company_id(cif)
    await drafts.require_filer(deps.submissions, user.user_id, c)
    now = deps.clock.now()
    items = [draft_out(deps, r, now) for r in await drafts.by_deadline(deps.submissions, [c], limit)]
    counts = {s: sum(1 for i in items if i.deadline_state == s) for s in (filing.LATE, filing.DUE_SOON, filing.ON_TIME)}
    return DraftsOut(items=items, counts=counts)


@router.get("/drafts/{draft_id}", response_model=DraftOut, summary="A draft, with its filing deadline and state")
async def get_draft(deps: ServiceDeps, user: CurrentUser, draft_id: str) -> DraftOut:
    return draft_out(deps, await drafts.readable(deps.submissions, user.user_id, draft_id))


@router.get("/drafts/{draft_id}/xml", response_class=Response, responses=_XML, summary="The draft's XML")
async def draft_xml(deps: ServiceDeps, user: CurrentUser, draft_id: str) -> Response:
    row = await drafts.readable(deps.submissions, user.user_id, draft_id)
    return Response(await deps.submissions.blob(row.xml_key), media_type="application/xml")


@router.post("/drafts/{draft_id}/file", status_code=202, response_model=SubmissionOut,
             summary="File a draft: it becomes a submission (the normal path: its checks and idempotency)",
             responses={200: {"description": "the draft was filed already (or the same invoice was): its "
                                             "submission"},
                        409: {"description": "idempotency_key_reused (another XML filed under the same number and "
                                             "issue date)"}})
async def file_draft(response: Response, deps: ServiceDeps, user: CurrentUser, draft_id: str) -> SubmissionOut:
    row = await drafts.readable(deps.submissions, user.user_id, draft_id)
    # as a direct submission: the grant and an ANAF authorization that may file for the company
    await deps.submissions.scoped_cif(user.user_id, row.cif, file=True)
    done = await drafts.file_draft(deps.submissions, row, user.user_id)
    response.status_code = 202 if done.created else 200
    return _out(deps, done.submission, done.warnings)


@router.delete("/drafts/{draft_id}", status_code=204, response_class=Response,
               summary="Drop a draft not filed yet (a filed one stays, 409 draft_already_filed)")
async def delete_draft(deps: ServiceDeps, user: CurrentUser, draft_id: str) -> Response:
    row = await drafts.readable(deps.submissions, user.user_id, draft_id)
    if row.state != drafts.DRAFT or not await drafts.delete_draft(deps.submissions, draft_id):
        fresh = await drafts.readable(deps.submissions, user.user_id, draft_id)
        raise drafts.draft_already_filed(draft_id, fresh.submission_id)
    return Response(status_code=204)

"""HTTP API of outgoing submissions: submit an invoice/credit note, list and read submissions with their
explained errors and links, send a buyer message (RASP) about a received invoice. Every route is scoped by the
access read model."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from spvhub_common.access import accessible_cifs, require_access, require_grant
from spvhub_common.errors import AppError, Forbidden, NotFound
from spvhub_common.security import CurrentUser

from spvhub_efactura.adapters import queries
from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.api import _cif
from spvhub_efactura.submissions import filing
from spvhub_efactura.submissions import repository as repo
from spvhub_efactura.submissions.service import SubmissionService, SubmitCommand, error_links

router = APIRouter(prefix="/api/efactura", tags=["efactura submissions"])
_XML_TYPES = ("application/xml", "text/xml", "text/plain", "application/octet-stream", "")


def _svc(request: Request) -> SubmissionService:
    return request.app.state.submissions  # type: ignore[no-any-return]


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


def out(row: dict[str, Any], now: datetime | None = None, due_soon_hours: float = 24.0) -> SubmissionOut:
    """The API view of a submission row; the filing clock is read at `now` (the service's clock)."""
    data = {k: row.get(k) for k in SubmissionOut.model_fields
            if k not in ("links", "errors", "warnings", *_CLOCK_FIELDS)}
    clock = filing.clock_of(row, now or datetime.now(UTC), due_soon_hours)
    return SubmissionOut(**data, **clock, errors=row.get("errors") or [], warnings=row.get("_warnings") or [],
                         links=error_links(row))


def _out(request: Request, row: dict[str, Any]) -> SubmissionOut:
    svc = _svc(request)
    return out(row, svc.clock.now(), svc.settings.submission_deadline_warning_working_hours)


async def _scoped_cif(request: Request, user_id: str, raw: str, *, file: bool = False) -> str:
    """A verified grant on the CIF; to file, one that may act at ANAF in its name (`filing_not_allowed`)."""
    cif = _cif(raw)
    async with _svc(request).uow() as uow:
        await require_grant(uow.session, access_grants, user_id, cif, file=file)
        if file and not await queries.can_file_through_anaf(uow.session, cif):
            # Refused now rather than accepted and never sent: no authorization may file for this company.
            raise AppError(
                f"No ANAF authorization may file in the name of CIF {cif}: authorize ANAF access for the company, "
                "or, for an accounting firm's authorization, ask the client to allow filing on the collaboration.",
                code="no_filing_connection", status=409, details={"cif": cif},
                messages={"ro": f"Nicio autorizare ANAF nu poate transmite documente în numele CIF {cif}: autorizați "
                                "accesul ANAF pentru companie sau, pentru autorizarea unei firme de contabilitate, "
                                "cereți clientului să permită transmiterea în colaborare."})
    return cif


async def _read_body(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """Raw XML body (streamed, stops past the limit) or multipart (`file` + optional form fields)."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=20)
        item = form.get("file")
        if item is None or isinstance(item, str):
            raise AppError("The multipart body needs the XML in a part named 'file'.", code="xml_malformed",
                           status=400)
        data = await item.read(limit + 1)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        return data, fields
    if ctype not in _XML_TYPES:
        raise AppError(f"Send the XML as application/xml (or multipart/form-data), not {ctype}.",
                       code="unsupported_media_type", status=415)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            break  # enough to refuse it as too large
    return bytes(buf), {}


def _flag(query: bool | None, form: dict[str, str], name: str) -> bool:
    if query is not None:
        return query
    return form.get(name, "").strip().lower() in ("1", "true", "da", "yes", "on")


@router.post("/companies/{cif}/submissions", status_code=202, response_model=SubmissionOut,
             summary="File a UBL 2.1 / CIUS-RO invoice or credit note (idempotent)",
             responses={200: {"description": "the existing submission for this Idempotency-Key"},
                        409: {"description": "idempotency_key_reused"},
                        422: {"description": "invoice_invalid (offline validation: rule ids and findings in "
                                             "details), seller_mismatch, xml_not_ubl_invoice ..."},
                        413: {"description": "xml_too_large"}})
async def submit(request: Request, user: CurrentUser, cif: str,
                 idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
                 standard: Annotated[str | None, Query(description="UBL or CN; inferred from the root")] = None,
                 extern: Annotated[bool | None, Query(description="buyer outside Romania")] = None,
                 autofactura: Annotated[bool | None, Query(description="self-billing")] = None,
                 b2c: Annotated[bool | None, Query(description="file through uploadb2c")] = None,
                 validate_first: Annotated[bool | None, Query(description="ANAF validare before upload")] = None,
                 offline_validation: Annotated[bool | None, Query(
                     description="validate offline (schema, EN 16931, CIUS-RO) before storing or sending; "
                                 "on by default, refused with 422 invoice_invalid")] = None,
                 ) -> Response:
    c = await _scoped_cif(request, user.user_id, cif, file=True)  # before the body is read or anything stored
    svc = _svc(request)
    data, form = await _read_body(request, svc.settings.submission_max_xml_bytes)
    cmd = SubmitCommand(cif=c, xml=data, user_id=user.user_id,
                        client_key=idempotency_key or form.get("idempotency_key"),
                        extern=_flag(extern, form, "extern"), autofactura=_flag(autofactura, form, "autofactura"),
                        b2c=_flag(b2c, form, "b2c"), validate_first=_flag(validate_first, form, "validate_first"),
                        standard=standard or form.get("standard") or None,
                        offline_validation=offline_validation if offline_validation is not None else (
                            _flag(None, form, "offline_validation") if "offline_validation" in form else None))
    row, created = await svc.submit(cmd)
    return JSONResponse(_out(request, row).model_dump(mode="json"), status_code=202 if created else 200)


@router.post("/validation", summary="Validate a UBL 2.1 invoice or credit note offline (no ANAF call, no budget)",
             responses={413: {"description": "xml_too_large"}})
async def validate_offline(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The UBL 2.1 schema, the EN 16931 and CIUS-RO rules and the VAT rates by date, applied locally; answers in
    the shape of ANAF's `validare` (`stare`, `Messages`) with each finding's rule id, field, ANAF's text and the
    explanation in Romanian and English. Works while ANAF is down; reads no company data."""
    svc = _svc(request)
    data, _ = await _read_body(request, svc.settings.submission_max_xml_bytes)
    if len(data) > svc.settings.submission_max_xml_bytes:
        raise AppError(f"The XML is larger than {svc.settings.submission_max_xml_bytes // (1024 * 1024)} MB.",
                       code="xml_too_large", status=413)
    if not data.strip():
        raise AppError("The request has no XML document.", code="xml_malformed", status=400)
    return (await svc.validator.validate_async(data)).validare()


async def _deadlines(request: Request, cifs: list[str], open_only: bool, limit: int) -> dict[str, Any]:
    svc = _svc(request)
    now = svc.clock.now()
    since = now.astimezone(filing.RO_TZ).date() - timedelta(days=90) if not open_only else None
    async with svc.uow() as uow:
        rows = await repo.by_deadline(uow.session, cifs, open_only=open_only, limit=limit, since=since)
    hours = svc.settings.submission_deadline_warning_working_hours
    items = [out(r, now, hours) for r in rows]
    counts = {s: sum(1 for i in items if i.deadline_state == s) for s in (filing.LATE, filing.DUE_SOON, filing.ON_TIME)}
    return {"items": [i.model_dump(mode="json") for i in items], "counts": counts, "open_only": open_only}


@router.get("/companies/{cif}/filing-deadlines",
            summary="A company's invoices by legal filing deadline, soonest first (on_time / due_soon / late)")
async def company_deadlines(request: Request, user: CurrentUser, cif: str,
                            open_only: Annotated[bool, Query(alias="open", description="only those still to be "
                                                             "filed (default); false: the last 90 days")] = True,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    c = await _scoped_cif(request, user.user_id, cif)
    return await _deadlines(request, [c], open_only, limit)


@router.get("/filing-deadlines",
            summary="Invoices by legal filing deadline across every company the caller may see (an accounting "
                    "firm: its own and its clients'), soonest first")
async def all_deadlines(request: Request, user: CurrentUser,
                        open_only: Annotated[bool, Query(alias="open")] = True,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    async with _svc(request).uow() as uow:
        cifs = await accessible_cifs(uow.session, access_grants, user.user_id)
    return await _deadlines(request, cifs, open_only, limit)


@router.get("/companies/{cif}/submissions", summary="Submissions of a company, newest first")
async def list_submissions(request: Request, user: CurrentUser, cif: str, state: str | None = None,
                           limit: Annotated[int, Query(ge=1, le=500)] = 50,
                           before: datetime | None = None) -> dict[str, Any]:
    c = await _scoped_cif(request, user.user_id, cif)
    async with _svc(request).uow() as uow:
        rows = await repo.list_for(uow.session, c, state, limit, before)
    items = [_out(request, r) for r in rows]
    return {"items": [i.model_dump(mode="json") for i in items],
            "next_before": items[-1].created_at.isoformat() if len(items) == limit else None}


async def _submission(request: Request, user: Any, submission_id: str) -> dict[str, Any]:
    svc = _svc(request)
    row = await svc.get(submission_id)
    if row is None:
        raise NotFound(f"No submission {submission_id}.", code="submission_not_found")
    async with svc.uow() as uow:
        try:
            await require_access(uow.session, access_grants, user.user_id, row["cif"])
        except Forbidden as e:  # do not reveal that it exists
            raise NotFound(f"No submission {submission_id}.", code="submission_not_found") from e
    return row


@router.get("/submissions/{submission_id}", response_model=SubmissionOut,
            summary="A submission: state, ANAF index, explained errors, links")
async def get_submission(request: Request, user: CurrentUser, submission_id: str) -> SubmissionOut:
    return _out(request, await _submission(request, user, submission_id))


@router.get("/submissions/{submission_id}/xml", summary="The submitted XML")
async def submission_xml(request: Request, user: CurrentUser, submission_id: str) -> Response:
    row = await _submission(request, user, submission_id)
    return Response(await _svc(request).blobs.get(row["xml_key"]), media_type="application/xml")


@router.get("/submissions/{submission_id}/anaf-response", summary="ANAF's answer to the upload")
async def submission_response(request: Request, user: CurrentUser, submission_id: str) -> Response:
    row = await _submission(request, user, submission_id)
    if not row.get("upload_response_key"):
        raise NotFound("ANAF has not answered this upload (yet).", code="no_anaf_response")
    return Response(await _svc(request).blobs.get(row["upload_response_key"]), media_type="application/xml")


@router.get("/submissions/{submission_id}/error-report", summary="ANAF's error report (mesajEroriFactuta)")
async def submission_error_report(request: Request, user: CurrentUser, submission_id: str) -> Response:
    row = await _submission(request, user, submission_id)
    key = row.get("error_report_key")
    if not key:
        raise NotFound("This submission has no error report.", code="no_error_report")
    # the report lives inside ANAF's signed ZIP (the archive); serve its XML
    data = await (request.app.state.efactura.xml_of({"zip_key": key}) if key.endswith(".zip")
                  else _svc(request).blobs.get(key))
    return Response(data, media_type="application/xml")


class BuyerMessageIn(BaseModel):
    message: str = Field(min_length=1, max_length=2000, description="text sent to the seller through ANAF (RASP)")


@router.post("/invoices/{invoice_id}/buyer-messages", status_code=202, response_model=SubmissionOut,
             summary="Send a buyer message (RASP) about a received invoice (1000/day per CUI)",
             responses={429: {"description": "quota_exhausted (with resets_at and Retry-After)"}})
async def buyer_message(request: Request, user: CurrentUser, invoice_id: int, body: BuyerMessageIn,
                        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> Response:
    svc = _svc(request)
    async with svc.uow() as uow:
        inv = await queries.get_invoice(uow.session, invoice_id)
        if inv is None:
            raise NotFound(f"No invoice {invoice_id}.", code="invoice_not_found")
        try:
            await require_access(uow.session, access_grants, user.user_id, inv["cif"])
        except Forbidden as e:
            raise NotFound(f"No invoice {invoice_id}.", code="invoice_not_found") from e
        # the caller may read the invoice; sending at ANAF in the company's name needs more
        await require_grant(uow.session, access_grants, user.user_id, inv["cif"], file=True)
    row, created = await svc.submit_buyer_message(inv, body.message, user.user_id, idempotency_key)
    return JSONResponse(_out(request, row).model_dump(mode="json"), status_code=202 if created else 200)

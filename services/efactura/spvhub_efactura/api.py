"""HTTP API of the efactura service: request -> handler; every route is scoped by the access read model (no CIF
is taken on trust), which the handlers check."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from spvhub_common.access import MANAGERS
from spvhub_common.errors import AppError
from spvhub_common.http import app_deps
from spvhub_common.pii import parse_company_id
from spvhub_common.security import CurrentUser

from spvhub_efactura import handlers
from spvhub_efactura.adapters import queries
from spvhub_efactura.handlers import Deps
from spvhub_efactura.zipstream import ZipStream

ServiceDeps = Annotated[Deps, Depends(app_deps)]

router = APIRouter(prefix="/api/efactura", tags=["efactura"])

# Answers built from database rows were written by FastAPI's encoder, which renders an aware datetime with
# isoformat() ("+00:00"); pydantic would write "Z". Their models keep the text clients already parse.
Stamp = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json"),
                  WithJsonSchema({"type": "string", "format": "date-time"})]

_BINARY = {"schema": {"type": "string", "format": "binary"}}


def binary_download(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a download: its real media type, plus application/octet-stream as a second name for the
    same bytes, which is what lets client generators that know no XML/PDF/ZIP type (openapi-python-client) hand the
    body back as bytes instead of parsing it as JSON."""
    return {200: {"description": description, "content": {media_type: _BINARY, "application/octet-stream": _BINARY}}}


async def _scope(deps: Deps, user_id: str, cif: str | None, *, roles: tuple[str, ...] | None = None) -> list[str]:
    """The CIFs the request may read (see handlers.readable_cifs)."""
    return await handlers.readable_cifs(deps, user_id, parse_company_id(cif) if cif else None, roles=roles)


class InvoiceOut(BaseModel):
    id: int
    cif: str
    message_id: str
    direction: str
    document_type: str
    message_type: str | None = None
    type_code: str | None = None
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    currency: str | None = None
    partner_cif: str | None = None
    partner_name: str | None = None
    seller_cif: str | None = None
    seller_name: str | None = None
    buyer_cif: str | None = None
    buyer_name: str | None = None
    self_billing: bool = False
    net_amount: Decimal | None = None
    vat_amount: Decimal | None = None
    total_amount: Decimal | None = None
    payable_amount: Decimal | None = None
    listed_at: datetime = Field(description="ANAF's creation date of the message (data_creare)")
    signature_status: str | None = None
    upload_index: str | None = None
    preceding_number: str | None = None
    filed_late: bool | None = Field(None, description="a sent invoice ANAF accepted (data_creare) after its legal "
                                    "filing deadline (issue date + 5 working days); None for received documents")
    links: dict[str, str] = {}


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    next_cursor: str | None = None


def _links(inv: queries.InvoiceSummary) -> dict[str, str]:
    base = f"/api/efactura/invoices/{inv.id}"
    links = {"self": base, "xml": f"{base}/xml", "zip": f"{base}/zip"}
    if inv.document_type in ("invoice", "credit_note"):
        links["pdf"] = f"{base}/pdf"
    return links


def _out(inv: queries.InvoiceSummary) -> InvoiceOut:
    return InvoiceOut.model_validate(inv, from_attributes=True).model_copy(update={"links": _links(inv)})


class ArchiveOut(BaseModel):
    """Where the document is stored and what its archiving found (the ledger's fields; None before archiving)."""

    zip_key: str | None = None
    xml_key: str | None = None
    zip_sha256: str | None = None
    archived_at: Stamp | None = None
    signature_status: str | None = None
    signature_detail: str | None = None
    signer_subject: str | None = None
    signer_serial: str | None = None
    signer_sha256: str | None = None
    signer_trusted: bool | None = None
    signature_shape: str | None = None
    problem: str | None = None
    purge_at: Stamp | None = None
    parse_status: str | None = None


class InvoiceDetailOut(InvoiceOut):
    vat_breakdown: list[dict[str, Any]] | None = Field(None, description="per VAT category: category, percent, "
                                                       "taxable, amount, exemption")
    details: dict[str, Any] | None = Field(None, description="the other parsed fields (parties, notes, or an "
                                           "error report's texts / a buyer message's text)")
    tax_currency: str | None = None
    archive: ArchiveOut
    problem: str | None = Field(None, description="fields present in the document but not stored, and why")


# the column is a bigint: an id past int64 is a 422 at the edge, never a query the driver cannot encode
InvoiceId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# totals are numeric(19,2): a bound beyond what the column holds filters nothing, so it is refused as a mistake
AMOUNT_BOUND = Decimal("1e17")


class Filters(BaseModel):
    cif: str | None = None
    direction: Literal["received", "sent"] | None = None
    partner: str | None = Field(None, description="partner CIF (with or without RO) or part of its name")
    number: str | None = None
    date_from: date | None = Field(None, description="issue date from (inclusive)")
    date_to: date | None = None
    amount_min: Decimal | None = Field(None, description="total with VAT, from", ge=-AMOUNT_BOUND, le=AMOUNT_BOUND,
                                       allow_inf_nan=False)
    amount_max: Decimal | None = Field(None, ge=-AMOUNT_BOUND, le=AMOUNT_BOUND, allow_inf_nan=False)
    type: Literal["invoice", "credit_note", "error_report", "buyer_message"] | None = None
    type_code: str | None = None


async def _filter(deps: Deps, user: Any, f: Filters) -> queries.InvoiceFilter:
    cifs = await _scope(deps, user.user_id, f.cif)
    return queries.InvoiceFilter(cifs=cifs, direction=f.direction, partner=f.partner, number=f.number,
                                 date_from=f.date_from, date_to=f.date_to, amount_min=f.amount_min,
                                 amount_max=f.amount_max, document_type=f.type, type_code=f.type_code)


@router.get("/invoices", response_model=InvoicePage, summary="Invoices newest first (keyset paging, filters)")
async def list_invoices(deps: ServiceDeps, user: CurrentUser, f: Annotated[Filters, Query()],
                        limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> InvoicePage:
    flt = await _filter(deps, user, f)
    found, nxt = await handlers.list_invoices(deps, flt, limit, cursor)
    return InvoicePage(items=[_out(inv) for inv in found], next_cursor=nxt)


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetailOut,
            summary="Invoice detail: parsed fields, VAT breakdown, archive status")
async def invoice_detail(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId) -> InvoiceDetailOut:
    inv = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    msg = await handlers.ledger_message(deps, inv.cif, inv.message_id)
    archive = (ArchiveOut.model_validate(msg, from_attributes=True) if msg else ArchiveOut()).model_copy(
        update={"zip_key": inv.zip_key, "xml_key": inv.xml_key})
    return InvoiceDetailOut(**_out(inv).model_dump(), vat_breakdown=inv.vat_breakdown, details=inv.details,
                            tax_currency=inv.tax_currency, archive=archive, problem=inv.problem)


def _fname(inv: queries.InvoiceSummary, ext: str) -> str:
    num = re.sub(r"[^A-Za-z0-9._-]+", "_", inv.number or "")[:60]
    return f"{inv.cif}_{inv.message_id}{'_' + num if num else ''}.{ext}"


@router.get("/invoices/{invoice_id}/xml", summary="The invoice XML exactly as archived", response_class=Response,
            responses=binary_download("application/xml", "the XML as archived"))
async def invoice_xml(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId) -> Response:
    inv = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    data = await handlers.xml_of(deps, inv)
    return Response(data, media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{_fname(inv, "xml")}"'})


@router.get("/invoices/{invoice_id}/zip", summary="The signed original ZIP from ANAF", response_class=Response,
            responses=binary_download("application/zip", "ANAF's signed ZIP, as downloaded"))
async def invoice_zip(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId) -> StreamingResponse:
    inv = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    return StreamingResponse(handlers.zip_stream(deps, inv), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{_fname(inv, "zip")}"'})


@router.get("/invoices/{invoice_id}/pdf", summary="PDF rendered locally from the archived XML",
            response_class=Response, responses=binary_download("application/pdf", "the invoice as PDF"))
async def invoice_pdf(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId,
                      source: Literal["local", "anaf"] = "local") -> Response:
    inv = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    if inv.document_type not in ("invoice", "credit_note"):
        raise AppError("Only invoices and credit notes have a PDF.", code="no_pdf", status=409)
    if source == "anaf":
        data = await handlers.anaf_pdf_of(deps, inv)
    else:
        data = await handlers.pdf_of(deps, inv)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{_fname(inv, "pdf")}"'})


@router.get("/invoices-export.zip", summary="Bulk ZIP export of a filtered set (streamed)",
            response_class=Response,
            responses=binary_download("application/zip", "a ZIP with a folder per company and direction"))
async def export_zip(deps: ServiceDeps, user: CurrentUser, f: Annotated[Filters, Query()],
                     include: Annotated[str, Query(description="comma list of xml, zip, pdf")] = "xml,zip"
                     ) -> StreamingResponse:
    flt = await _filter(deps, user, f)
    parts = {p.strip() for p in include.split(",") if p.strip()}
    if not parts or parts - {"xml", "zip", "pdf"}:
        raise AppError("include must list xml, zip and/or pdf.", code="invalid_include", status=422)

    async def entries() -> AsyncIterator[tuple[str, datetime | None, AsyncIterator[bytes]]]:
        async for inv in handlers.export_rows(deps, flt):
            folder = f"{inv.cif}/{inv.direction}"
            if "zip" in parts:
                yield f"{folder}/{_fname(inv, 'zip')}", inv.listed_at, handlers.zip_stream(deps, inv)
            if "xml" in parts:
                yield f"{folder}/{_fname(inv, 'xml')}", inv.listed_at, _once(handlers.xml_of(deps, inv))
            if "pdf" in parts and inv.document_type in ("invoice", "credit_note"):
                yield f"{folder}/{_fname(inv, 'pdf')}", inv.listed_at, _once(handlers.pdf_of(deps, inv))

    return StreamingResponse(ZipStream(entries()).__aiter__(), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="efactura-export.zip"'})


async def _once(coro: Awaitable[bytes]) -> AsyncIterator[bytes]:
    yield await coro


class FirstSyncOut(BaseModel):
    reaches_back_days: int = Field(description="how far back the first sync lists (ANAF keeps 60 days)")
    started_at: Stamp | None = None
    completed_at: Stamp | None = None


class MessageCountsOut(BaseModel):
    archived: int
    pending: int = Field(description="listed or failed, not archived yet")
    failed: int
    lost: int
    flagged: int = Field(description="archived with a problem or waiting to be parsed again")


class FlaggedDocumentOut(BaseModel):
    message_id: str
    archived_at: Stamp | None = None
    problem: str | None = None
    signature_status: str | None = None


class SyncErrorsOut(BaseModel):
    last_error: str | None = None
    last_error_at: Stamp | None = None
    consecutive_failures: int = 0


class ReconciliationOut(BaseModel):
    last_at: Stamp | None = None
    complete: bool | None = None


class PurgeCountdownOut(BaseModel):
    next_purge_at: Stamp = Field(description="when ANAF drops the oldest message not archived yet")
    seconds_left: int
    days_left: int


class SyncedThroughOut(BaseModel):
    """Whose ANAF authorization syncs the company (never a connection id: it may be another tenant's)."""

    kind: Literal["own", "accounting_firm"]
    firm_cif: str | None = None
    active: bool
    may_file: bool


class SyncHealthOut(BaseModel):
    cif: str
    status: str = Field(description="active | paused | stopped | not_synced")
    interval_seconds: int
    last_success_at: Stamp | None = None
    last_started_at: Stamp | None = None
    next_sync_at: Stamp | None = None
    sync_requested: bool
    watermark: Stamp | None = None
    lag_seconds: int | None = None
    first_sync: FirstSyncOut
    messages: MessageCountsOut
    flagged_documents: list[FlaggedDocumentOut] = Field(description="the latest few flagged documents")
    errors: SyncErrorsOut
    blocked_until: Stamp | None = None
    reconciliation: ReconciliationOut
    purge_countdown: PurgeCountdownOut | None = None
    stop_reason: str | None = Field(None, description="no_entitled_connection | connection_revoked | "
                                    "reauthorization_required | cnp_missing | cnp_invalid (a natural person's "
                                    "CNP not received sealed, or not opening for its key)")
    synced_through: SyncedThroughOut | None = None


class SyncOverviewOut(BaseModel):
    items: list[SyncHealthOut]


@router.get("/sync", response_model=SyncOverviewOut, summary="Sync health of every company the caller can see")
async def sync_overview(deps: ServiceDeps, user: CurrentUser) -> SyncOverviewOut:
    cifs = await _scope(deps, user.user_id, None)
    return SyncOverviewOut(items=[SyncHealthOut.model_validate(h, from_attributes=True)
                                  for h in await handlers.sync_health(deps, cifs)])


@router.get("/companies/{cif}/sync", response_model=SyncHealthOut,
            summary="Sync health: last success, lag, pending, errors, purge countdown")
async def sync_status(deps: ServiceDeps, user: CurrentUser, cif: str) -> SyncHealthOut:
    cifs = await _scope(deps, user.user_id, cif)
    return SyncHealthOut.model_validate((await handlers.sync_health(deps, cifs))[0], from_attributes=True)


class SyncRequestedOut(BaseModel):
    cif: str
    sync_requested: bool


@router.post("/companies/{cif}/sync", status_code=202, response_model=SyncRequestedOut,
             summary="Sync this company now")
async def trigger_sync(deps: ServiceDeps, user: CurrentUser, cif: str) -> SyncRequestedOut:
    (c,) = await _scope(deps, user.user_id, cif)
    await handlers.request_sync(deps, c)
    return SyncRequestedOut(cif=c, sync_requested=True)


class SyncSettings(BaseModel):
    interval_minutes: int | None = Field(None, ge=5, le=1440, description="null = the service default (15)")


class SyncSettingsOut(BaseModel):
    cif: str
    interval_minutes: int | None = Field(description="null = the service default")


@router.put("/companies/{cif}/sync-settings", response_model=SyncSettingsOut, summary="Per-company sync interval")
async def put_sync_settings(deps: ServiceDeps, user: CurrentUser, cif: str, body: SyncSettings) -> SyncSettingsOut:
    (c,) = await _scope(deps, user.user_id, cif, roles=MANAGERS)
    await handlers.set_interval(deps, c, None if body.interval_minutes is None else body.interval_minutes * 60)
    return SyncSettingsOut(cif=c, interval_minutes=body.interval_minutes)


class LedgerMessageOut(BaseModel):
    """A message ANAF listed for the company and what the sync did with it."""

    message_id: str
    tip: str = Field(description="ANAF's message type (FACTURA PRIMITA, FACTURA TRIMISA, ERORI FACTURA, ...)")
    kind: str
    upload_index: str | None = None
    listed_at: Stamp
    purge_at: Stamp
    state: str = Field(description="listed | archived | lost | failed")
    attempts: int
    next_attempt_at: Stamp | None = None
    last_error: str | None = None
    lost_reason: str | None = None
    archived_at: Stamp | None = None
    parse_status: str | None = None
    signature_status: str | None = None
    needs_reprocess: bool
    problem: str | None = None


class LedgerMessagesOut(BaseModel):
    items: list[LedgerMessageOut]


@router.get("/companies/{cif}/messages", response_model=LedgerMessagesOut,
            summary="The ANAF message ledger of a company")
async def company_messages(deps: ServiceDeps, user: CurrentUser, cif: str,
                           state: Literal["listed", "archived", "lost", "failed"] | None = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> LedgerMessagesOut:
    (c,) = await _scope(deps, user.user_id, cif)
    return LedgerMessagesOut(items=[LedgerMessageOut.model_validate(m, from_attributes=True)
                                    for m in await handlers.company_messages(deps, c, state, limit)])


class ReprocessOut(BaseModel):
    cif: str
    reprocessed: int = Field(description="how many flagged documents were parsed again")


@router.post("/companies/{cif}/reprocess", response_model=ReprocessOut,
             summary="Re-parse archived documents flagged for reprocessing")
async def reprocess(deps: ServiceDeps, user: CurrentUser, cif: str) -> ReprocessOut:
    (c,) = await _scope(deps, user.user_id, cif)
    return ReprocessOut(cif=c, reprocessed=await handlers.reprocess(deps, c))

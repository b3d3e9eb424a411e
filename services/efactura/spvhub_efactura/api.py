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
from pydantic import BaseModel, Field
from spvhub_common.access import MANAGERS
from spvhub_common.errors import AppError
from spvhub_common.http import app_deps
from spvhub_common.ids import normalize_cif
from spvhub_common.security import CurrentUser

from spvhub_efactura import handlers
from spvhub_efactura.adapters import queries
from spvhub_efactura.handlers import Deps
from spvhub_efactura.zipstream import ZipStream

ServiceDeps = Annotated[Deps, Depends(app_deps)]

router = APIRouter(prefix="/api/efactura", tags=["efactura"])


async def _scope(deps: Deps, user_id: str, cif: str | None, *, roles: tuple[str, ...] | None = None) -> list[str]:
    """The CIFs the request may read (see handlers.readable_cifs)."""
    return await handlers.readable_cifs(deps, user_id, normalize_cif(cif) if cif else None, roles=roles)


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
    links: dict[str, str] = {}


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    next_cursor: str | None = None


def _out(row: dict[str, Any]) -> InvoiceOut:
    base = f"/api/efactura/invoices/{row['id']}"
    links = {"self": base, "xml": f"{base}/xml", "zip": f"{base}/zip"}
    if row["document_type"] in ("invoice", "credit_note"):
        links["pdf"] = f"{base}/pdf"
    return InvoiceOut(**{k: row.get(k) for k in InvoiceOut.model_fields if k != "links"}, links=links)


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
    rows, nxt = await handlers.list_invoices(deps, flt, limit, cursor)
    return InvoicePage(items=[_out(r) for r in rows], next_cursor=nxt)


@router.get("/invoices/{invoice_id}", summary="Invoice detail: parsed fields, VAT breakdown, archive status")
async def invoice_detail(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId) -> dict[str, Any]:
    row = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    msg = await handlers.ledger_message(deps, row["cif"], row["message_id"])
    out = _out(row).model_dump(mode="json")
    out.update(vat_breakdown=row["vat_breakdown"], details=row["details"], tax_currency=row["tax_currency"],
               archive={"zip_key": row["zip_key"], "xml_key": row["xml_key"],
                        "zip_sha256": msg and msg["zip_sha256"], "archived_at": msg and msg["archived_at"],
                        "signature_status": msg and msg["signature_status"],
                        "signature_detail": msg and msg["signature_detail"],
                        "signer_subject": msg and msg["signer_subject"],
                        "signer_serial": msg and msg["signer_serial"],
                        "signer_sha256": msg and msg["signer_sha256"],
                        "signer_trusted": msg and msg["signer_trusted"],
                        "signature_shape": msg and msg["signature_shape"],
                        "problem": msg and msg["problem"],
                        "purge_at": msg and msg["purge_at"], "parse_status": msg and msg["parse_status"]},
               problem=row.get("problem"))
    return out


def _fname(row: dict[str, Any], ext: str) -> str:
    num = re.sub(r"[^A-Za-z0-9._-]+", "_", row.get("number") or "")[:60]
    return f"{row['cif']}_{row['message_id']}{'_' + num if num else ''}.{ext}"


@router.get("/invoices/{invoice_id}/xml", summary="The invoice XML exactly as archived")
async def invoice_xml(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId) -> Response:
    row = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    data = await handlers.xml_of(deps, row)
    return Response(data, media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{_fname(row, "xml")}"'})


@router.get("/invoices/{invoice_id}/zip", summary="The signed original ZIP from ANAF")
async def invoice_zip(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId) -> StreamingResponse:
    row = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    return StreamingResponse(handlers.zip_stream(deps, row), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{_fname(row, "zip")}"'})


@router.get("/invoices/{invoice_id}/pdf", summary="PDF rendered locally from the archived XML")
async def invoice_pdf(deps: ServiceDeps, user: CurrentUser, invoice_id: InvoiceId,
                      source: Literal["local", "anaf"] = "local") -> Response:
    row = await handlers.readable_invoice(deps, user.user_id, invoice_id)
    if row["document_type"] not in ("invoice", "credit_note"):
        raise AppError("Only invoices and credit notes have a PDF.", code="no_pdf", status=409)
    if source == "anaf":
        data = await handlers.anaf_pdf_of(deps, row)
    else:
        data = await handlers.pdf_of(deps, row)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{_fname(row, "pdf")}"'})


@router.get("/invoices-export.zip", summary="Bulk ZIP export of a filtered set (streamed)")
async def export_zip(deps: ServiceDeps, user: CurrentUser, f: Annotated[Filters, Query()],
                     include: Annotated[str, Query(description="comma list of xml, zip, pdf")] = "xml,zip"
                     ) -> StreamingResponse:
    flt = await _filter(deps, user, f)
    parts = {p.strip() for p in include.split(",") if p.strip()}
    if not parts or parts - {"xml", "zip", "pdf"}:
        raise AppError("include must list xml, zip and/or pdf.", code="invalid_include", status=422)

    async def entries() -> AsyncIterator[tuple[str, datetime | None, AsyncIterator[bytes]]]:
        async for row in handlers.export_rows(deps, flt):
            folder = f"{row['cif']}/{row['direction']}"
            if "zip" in parts:
                yield f"{folder}/{_fname(row, 'zip')}", row["listed_at"], handlers.zip_stream(deps, row)
            if "xml" in parts:
                yield f"{folder}/{_fname(row, 'xml')}", row["listed_at"], _once(handlers.xml_of(deps, row))
            if "pdf" in parts and row["document_type"] in ("invoice", "credit_note"):
                yield f"{folder}/{_fname(row, 'pdf')}", row["listed_at"], _once(handlers.pdf_of(deps, row))

    return StreamingResponse(ZipStream(entries()).__aiter__(), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="efactura-export.zip"'})


async def _once(coro: Awaitable[bytes]) -> AsyncIterator[bytes]:
    yield await coro


@router.get("/sync", summary="Sync health of every company the caller can see")
async def sync_overview(deps: ServiceDeps, user: CurrentUser) -> dict[str, Any]:
    cifs = await _scope(deps, user.user_id, None)
    return {"items": await handlers.sync_health(deps, cifs)}


@router.get("/companies/{cif}/sync", summary="Sync health: last success, lag, pending, errors, purge countdown")
async def sync_status(deps: ServiceDeps, user: CurrentUser, cif: str) -> dict[str, Any]:
    cifs = await _scope(deps, user.user_id, cif)
    return (await handlers.sync_health(deps, cifs))[0]


@router.post("/companies/{cif}/sync", status_code=202, summary="Sync this company now")
async def trigger_sync(deps: ServiceDeps, user: CurrentUser, cif: str) -> dict[str, Any]:
    (c,) = await _scope(deps, user.user_id, cif)
    await handlers.request_sync(deps, c)
    return {"cif": c, "sync_requested": True}


class SyncSettings(BaseModel):
    interval_minutes: int | None = Field(None, ge=5, le=1440, description="null = the service default (15)")


@router.put("/companies/{cif}/sync-settings", summary="Per-company sync interval")
async def put_sync_settings(deps: ServiceDeps, user: CurrentUser, cif: str, body: SyncSettings) -> dict[str, Any]:
    (c,) = await _scope(deps, user.user_id, cif, roles=MANAGERS)
    await handlers.set_interval(deps, c, None if body.interval_minutes is None else body.interval_minutes * 60)
    return {"cif": c, "interval_minutes": body.interval_minutes}


@router.get("/companies/{cif}/messages", summary="The ANAF message ledger of a company")
async def company_messages(deps: ServiceDeps, user: CurrentUser, cif: str,
                           state: Literal["listed", "archived", "lost", "failed"] | None = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    (c,) = await _scope(deps, user.user_id, cif)
    return {"items": await handlers.company_messages(deps, c, state, limit)}


@router.post("/companies/{cif}/reprocess", summary="Re-parse archived documents flagged for reprocessing")
async def reprocess(deps: ServiceDeps, user: CurrentUser, cif: str) -> dict[str, Any]:
    (c,) = await _scope(deps, user.user_id, cif)
    return {"cif": c, "reprocessed": await handlers.reprocess(deps, c)}

"""HTTP API of the efactura service: request -> query/command -> handler; every route is scoped by the access
read model (no CIF is taken on trust)."""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from spvhub_common.access import MANAGERS, accessible_cifs, require_access, require_grant
from spvhub_common.errors import AppError, Forbidden, NotFound
from spvhub_common.security import CurrentUser

from spvhub_efactura.adapters import queries
from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.domain import normalize_cif
from spvhub_efactura.handlers import SyncPaused
from spvhub_efactura.pdf import render_pdf
from spvhub_efactura.zipstream import ZipStream

router = APIRouter(prefix="/api/efactura", tags=["efactura"])


def _svc(request: Request) -> Any:
    return request.app.state.efactura


def _cif(raw: str) -> str:
    cif = normalize_cif(raw)
    if not cif.isdigit() or not 2 <= len(cif) <= 13:
        raise AppError(f"{raw!r} is not a CIF.", code="invalid_cif", status=422)
    return cif


async def _scope(request: Request, user_id: str, cif: str | None, *,
                 roles: tuple[str, ...] | None = None) -> list[str]:
    """The CIFs the request may read: the one named (a verified grant on it, else 403 `no_access_to_company` /
    `company_not_verified` / `insufficient_role`), or every CIF the caller is verified for."""
    svc = _svc(request)
    async with svc.sessions() as s:
        if cif:
            c = _cif(cif)
            await require_grant(s, access_grants, user_id, c, roles=roles)
            return [c]
        return await accessible_cifs(s, access_grants, user_id)


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


async def _filter(request: Request, user: Any, f: Filters) -> queries.InvoiceFilter:
    cifs = await _scope(request, user.user_id, f.cif)
    return queries.InvoiceFilter(cifs=cifs, direction=f.direction, partner=f.partner, number=f.number,
                                 date_from=f.date_from, date_to=f.date_to, amount_min=f.amount_min,
                                 amount_max=f.amount_max, document_type=f.type, type_code=f.type_code)


@router.get("/invoices", response_model=InvoicePage, summary="Invoices newest first (keyset paging, filters)")
async def list_invoices(request: Request, user: CurrentUser, f: Annotated[Filters, Query()],
                        limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> InvoicePage:
    flt = await _filter(request, user, f)
    try:
        async with _svc(request).sessions() as s:
            rows, nxt = await queries.list_invoices(s, flt, limit, cursor)
    except (ValueError, UnicodeDecodeError) as e:
        raise AppError("The cursor is not valid.", code="invalid_cursor", status=422) from e
    return InvoicePage(items=[_out(r) for r in rows], next_cursor=nxt)


async def _invoice(request: Request, user: Any, invoice_id: int) -> dict[str, Any]:
    async with _svc(request).sessions() as s:
        row = await queries.get_invoice(s, invoice_id)
        if row is None:
            raise NotFound(f"No invoice {invoice_id}.", code="invoice_not_found")
        try:
            await require_access(s, access_grants, user.user_id, row["cif"])
        except Forbidden as e:  # do not reveal that the id exists
            raise NotFound(f"No invoice {invoice_id}.", code="invoice_not_found") from e
    return row


@router.get("/invoices/{invoice_id}", summary="Invoice detail: parsed fields, VAT breakdown, archive status")
async def invoice_detail(request: Request, user: CurrentUser, invoice_id: InvoiceId) -> dict[str, Any]:
    row = await _invoice(request, user, invoice_id)
    async with _svc(request).sessions() as s:
        msg = await queries.get_message(s, row["cif"], row["message_id"])
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
async def invoice_xml(request: Request, user: CurrentUser, invoice_id: InvoiceId) -> Response:
    row = await _invoice(request, user, invoice_id)
    data = await _svc(request).xml_of(row)
    return Response(data, media_type="application/xml",
                    headers={"Content-Disposition": f'attachment; filename="{_fname(row, "xml")}"'})


@router.get("/invoices/{invoice_id}/zip", summary="The signed original ZIP from ANAF")
async def invoice_zip(request: Request, user: CurrentUser, invoice_id: InvoiceId) -> StreamingResponse:
    row = await _invoice(request, user, invoice_id)
    return StreamingResponse(_svc(request).blobs.stream(row["zip_key"]), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{_fname(row, "zip")}"'})


@router.get("/invoices/{invoice_id}/pdf", summary="PDF rendered locally from the archived XML")
async def invoice_pdf(request: Request, user: CurrentUser, invoice_id: InvoiceId,
                      source: Literal["local", "anaf"] = "local") -> Response:
    row = await _invoice(request, user, invoice_id)
    if row["document_type"] not in ("invoice", "credit_note"):
        raise AppError("Only invoices and credit notes have a PDF.", code="no_pdf", status=409)
    svc = _svc(request)
    if source == "anaf":
        data = await svc.anaf_pdf_of(row)
    else:
        data = await svc.pdf_of(row)
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{_fname(row, "pdf")}"'})


@router.get("/invoices-export.zip", summary="Bulk ZIP export of a filtered set (streamed)")
async def export_zip(request: Request, user: CurrentUser, f: Annotated[Filters, Query()],
                     include: Annotated[str, Query(description="comma list of xml, zip, pdf")] = "xml,zip"
                     ) -> StreamingResponse:
    flt = await _filter(request, user, f)
    parts = {p.strip() for p in include.split(",") if p.strip()}
    if not parts or parts - {"xml", "zip", "pdf"}:
        raise AppError("include must list xml, zip and/or pdf.", code="invalid_include", status=422)
    svc = _svc(request)

    async def entries() -> AsyncIterator[tuple[str, datetime | None, AsyncIterator[bytes]]]:
        async for row in queries.iter_invoices(svc.sessions, flt, svc.settings.export_max_items):
            folder = f"{row['cif']}/{row['direction']}"
            if "zip" in parts:
                yield f"{folder}/{_fname(row, 'zip')}", row["listed_at"], svc.blobs.stream(row["zip_key"])
            if "xml" in parts:
                yield f"{folder}/{_fname(row, 'xml')}", row["listed_at"], _once(svc.xml_of(row))
            if "pdf" in parts and row["document_type"] in ("invoice", "credit_note"):
                yield f"{folder}/{_fname(row, 'pdf')}", row["listed_at"], _once(svc.pdf_of(row))

    return StreamingResponse(ZipStream(entries()).__aiter__(), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="efactura-export.zip"'})


async def _once(coro: Any) -> AsyncIterator[bytes]:
    yield await coro


@router.get("/sync", summary="Sync health of every company the caller can see")
async def sync_overview(request: Request, user: CurrentUser) -> dict[str, Any]:
    cifs = await _scope(request, user.user_id, None)
    svc = _svc(request)
    async with svc.sessions() as s:
        items = await queries.sync_health(s, cifs, svc.clock.now(), svc.settings.sync_interval_seconds)
    return {"items": items}


@router.get("/companies/{cif}/sync", summary="Sync health: last success, lag, pending, errors, purge countdown")
async def sync_status(request: Request, user: CurrentUser, cif: str) -> dict[str, Any]:
    cifs = await _scope(request, user.user_id, cif)
    svc = _svc(request)
    async with svc.sessions() as s:
        return (await queries.sync_health(s, cifs, svc.clock.now(), svc.settings.sync_interval_seconds))[0]


@router.post("/companies/{cif}/sync", status_code=202, summary="Sync this company now")
async def trigger_sync(request: Request, user: CurrentUser, cif: str) -> dict[str, Any]:
    (c,) = await _scope(request, user.user_id, cif)
    engine = _svc(request).engine
    try:
        await engine._connection_for(c)
    except SyncPaused as e:
        raise _not_syncable(c, e.code) from e
    if not await engine.request_sync(c):
        raise _not_syncable(c, "no_entitled_connection")
    return {"cif": c, "sync_requested": True}


def _not_syncable(cif: str, reason: str) -> AppError:
    if reason == "no_entitled_connection":
        return AppError(
            f"No ANAF authorization may sync CIF {cif}: authorize ANAF access for the company (or let your "
            "accounting firm's authorization cover it through an active collaboration).",
            code="no_entitled_connection", status=409, details={"cif": cif, "reason": reason},
            messages={"ro": f"Nicio autorizare ANAF nu poate sincroniza CIF {cif}: autorizați accesul ANAF pentru "
                            "companie (sau lăsați autorizarea firmei de contabilitate să o acopere printr-o "
                            "colaborare activă)."})
    return AppError(f"The ANAF authorization that syncs CIF {cif} must be renewed before it can sync.",
                    code="connection_paused", status=409, details={"cif": cif, "reason": reason},
                    messages={"ro": f"Autorizarea ANAF care sincronizează CIF {cif} trebuie reînnoită înainte de "
                                    "sincronizare."})


class SyncSettings(BaseModel):
    interval_minutes: int | None = Field(None, ge=5, le=1440, description="null = the service default (15)")


@router.put("/companies/{cif}/sync-settings", summary="Per-company sync interval")
async def put_sync_settings(request: Request, user: CurrentUser, cif: str, body: SyncSettings) -> dict[str, Any]:
    (c,) = await _scope(request, user.user_id, cif, roles=MANAGERS)
    ok = await _svc(request).set_interval(c, None if body.interval_minutes is None else body.interval_minutes * 60)
    if not ok:
        raise NotFound(f"CIF {c} is not synced.", code="company_not_synced")
    return {"cif": c, "interval_minutes": body.interval_minutes}


@router.get("/companies/{cif}/messages", summary="The ANAF message ledger of a company")
async def company_messages(request: Request, user: CurrentUser, cif: str,
                           state: Literal["listed", "archived", "lost", "failed"] | None = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    (c,) = await _scope(request, user.user_id, cif)
    async with _svc(request).sessions() as s:
        return {"items": await queries.list_messages(s, c, state, limit)}


@router.post("/companies/{cif}/reprocess", summary="Re-parse archived documents flagged for reprocessing")
async def reprocess(request: Request, user: CurrentUser, cif: str) -> dict[str, Any]:
    (c,) = await _scope(request, user.user_id, cif)
    return {"cif": c, "reprocessed": await _svc(request).engine.reprocess(c)}


_ = (asyncio, render_pdf)

"""Use cases of the efactura service: the read models fed by auth/portfolio events, and what the API asks for
(access-scoped reads, the archived XML and PDFs, sync requests and settings). The sync itself is the `sync`
package; the routing table is at the bottom."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from spvhub_common.access import accessible_cifs, require_access, require_grant
from spvhub_common.anaf.errors import AnafError
from spvhub_common.blobs import BlobNotFound, BlobStore
from spvhub_common.clock import Clock
from spvhub_common.errors import AppError, Forbidden, NotFound
from spvhub_common.events import Event
from spvhub_common.events.auth import ConnectionAuthorized, ConnectionRevoked, ReauthorizationRequired, TokenRefreshed
from spvhub_common.events.portfolio import EntitlementsChanged
from spvhub_common.ids import strip_ro
from spvhub_common.pii import PersonIds, is_person_key
from spvhub_common.runtime import EventHandler, ServiceRuntime
from spvhub_common.uow import SqlUnitOfWork

from spvhub_efactura import pdfworker
from spvhub_efactura.adapters import ledger, queries
from spvhub_efactura.adapters.orm import access_grants
from spvhub_efactura.processing import process_zip
from spvhub_efactura.settings import Settings
from spvhub_efactura.submissions.service import SubmissionService
from spvhub_efactura.sync import InboxSync, SyncPaused

__all__ = ["Deps", "EVENT_HANDLERS", "SyncPaused"]


@dataclass
class Deps:
    """What the API, the consumers and the jobs use, built once per process by `bootstrap.build`."""
    settings: Settings
    runtime: ServiceRuntime
    sync: InboxSync
    blobs: BlobStore
    clock: Clock
    submissions: SubmissionService


# --------------------------------------------------------------------------------------------------
# Read models fed by events (run inside the consumer's transaction; never commit here)


def service_name(raw: str) -> str:
    """`E-Factura`, `efactura`, `e_factura` -> `efactura` (how the entitlements store service names)."""
    return re.sub(r"[^a-z]", "", raw.lower())


async def on_entitlements_changed(event: EntitlementsChanged, _envelope: Any, uow: SqlUnitOfWork,
                                  _deps: Deps | None) -> None:
    """The CIF's entitled connections, best first, replace what we knew. A CIF with an e-Factura one is synced
    (due now when it had none); with none, its sync stops (the company row and its archive stay). A person key's
    sealed CNP is stored with its sync state as it came (sealed): the sync unseals it only to call ANAF."""
    cif = strip_ro(event.cif)
    if not cif:
        return
    await ledger.replace_entitlements(uow.session, cif, [
        ledger.Entitlement(connection_id=c.connection_id, holder_cif=strip_ro(c.holder_cif),
                           services=sorted({service_name(x) for x in c.services} - {""}), may_file=c.may_file)
        for c in event.connections], cnp_sealed=event.cnp_sealed if is_person_key(cif) else None)


async def on_reauthorization_required(event: ReauthorizationRequired, _envelope: Any, uow: SqlUnitOfWork,
                                      _deps: Deps | None) -> None:
    """Pause: the watermark and the ledger stay, so the sync resumes where it stopped."""
    await ledger.upsert_connection(uow.session, event.connection_id, event.company_cif, "paused",
                                   f"{event.reason}: {event.message}"[:500])


async def on_connection_revoked(event: ConnectionRevoked, _envelope: Any, uow: SqlUnitOfWork,
                                _deps: Deps | None) -> None:
    await ledger.upsert_connection(uow.session, event.connection_id, event.company_cif, "revoked",
                                   event.reason[:500])


async def on_token_refreshed(event: TokenRefreshed, _envelope: Any, uow: SqlUnitOfWork, _deps: Deps | None) -> None:
    await ledger.upsert_connection(uow.session, event.connection_id, event.company_cif, "active")


async def on_connection_authorized(event: ConnectionAuthorized, _envelope: Any, uow: SqlUnitOfWork,
                                   _deps: Deps | None) -> None:
    """Active again (a paused or revoked connection authorized anew). Which CIFs it serves is portfolio's call
    (entitlements), never inferred from the authorization itself."""
    await ledger.upsert_connection(uow.session, event.connection_id, event.company_cif, "active")


# --------------------------------------------------------------------------------------------------
# Access: everything here came from ANAF, so a CIF needs a verified grant


async def readable_cifs(deps: Deps, user_id: str, cif: str | None, *,
                        roles: tuple[str, ...] | None = None) -> list[str]:
    """The CIFs the caller may read: the one named (a verified grant on it, else 403 `no_access_to_company` /
    `company_not_verified` / `insufficient_role`), or every CIF the caller is verified for."""
    async with deps.runtime.sessions() as s:
        if cif:
            await require_grant(s, access_grants, user_id, cif, roles=roles)
            return [cif]
        return await accessible_cifs(s, access_grants, user_id)


async def readable_invoice(deps: Deps, user_id: str, invoice_id: int) -> queries.Invoice:
    """The invoice row, when the caller may read its company; 404 otherwise (as if it did not exist)."""
    async with deps.runtime.sessions() as s:
        row = await queries.get_invoice(s, invoice_id)
        if row is None:
            raise NotFound(f"No invoice {invoice_id}.", code="invoice_not_found")
        try:
            await require_access(s, access_grants, user_id, row.cif)
        except Forbidden as e:  # do not reveal that the id exists
            raise NotFound(f"No invoice {invoice_id}.", code="invoice_not_found") from e
    return row


# --------------------------------------------------------------------------------------------------
# Reads


async def list_invoices(deps: Deps, flt: queries.InvoiceFilter, limit: int, cursor: str | None
                        ) -> tuple[list[queries.InvoiceSummary], str | None]:
    try:
        async with deps.runtime.sessions() as s:
            return await queries.list_invoices(s, flt, limit, cursor)
    except (ValueError, UnicodeDecodeError) as e:
        raise AppError("The cursor is not valid.", code="invalid_cursor", status=422) from e


def export_rows(deps: Deps, flt: queries.InvoiceFilter) -> AsyncIterator[queries.InvoiceSummary]:
    """Every matching invoice row, a short transaction per page (a long export holds no connection)."""
    return queries.iter_invoices(deps.runtime.sessions, flt, deps.settings.export_max_items)


async def ledger_message(deps: Deps, cif: str, message_id: str) -> queries.MessageArchive | None:
    async with deps.runtime.sessions() as s:
        return await queries.get_message(s, cif, message_id)


async def company_messages(deps: Deps, cif: str, state: str | None, limit: int) -> list[queries.LedgerEntry]:
    async with deps.runtime.sessions() as s:
        return await queries.list_messages(s, cif, state, limit)


async def sync_health(deps: Deps, cifs: list[str]) -> list[queries.SyncHealth]:
    async with deps.runtime.sessions() as s:
        return await queries.sync_health(s, cifs, deps.clock.now(), deps.settings.sync_interval_seconds,
                                         PersonIds.from_settings(deps.settings))


# --------------------------------------------------------------------------------------------------
# The archived documents


def zip_stream(deps: Deps, row: queries.InvoiceSummary) -> AsyncIterator[bytes]:
    """The signed original, streamed from the archive."""
    return deps.blobs.stream(row.zip_key)


async def xml_of(deps: Deps, row: queries.InvoiceSummary) -> bytes:
    """The invoice XML, extracted from the archived ZIP (or a separately stored XML, for older rows)."""
    if row.xml_key:
        try:
            return await deps.blobs.get(row.xml_key)
        except BlobNotFound:
            pass
    data = await deps.blobs.get(row.zip_key)
    p = await deps.sync.run_cpu(process_zip, data, deps.sync.limits, None, False)
    if p.content is None:
        raise AppError("The archived ZIP has no readable XML.", code="unreadable_archive", status=409)
    return p.content


async def pdf_of(deps: Deps, row: queries.InvoiceSummary) -> bytes:
    """Rendered locally from the archived XML; cached beside it (re-derivable, so no retention)."""
    # the name carries the layout's version: a PDF cached by an older renderer is not served again
    key = f"efactura/{row.cif}/{row.message_id}/rendered-v2.pdf"
    try:
        return await deps.blobs.get(key)
    except BlobNotFound:
        pass
    except Exception:  # noqa: BLE001 - the cache is optional
        pass
    xml = await xml_of(deps, row)
    try:
        # in a worker process with a deadline: a heavy document holds neither this loop nor its GIL
        data = await pdfworker.render(xml, message_id=row.message_id, listed_at=row.listed_at)
    except AppError:
        raise
    except Exception as e:  # noqa: BLE001
        raise AppError(f"The invoice XML cannot be rendered: {str(e)[:200]}", code="unrenderable",
                       status=409) from e
    try:
        await deps.blobs.put(key, data, "application/pdf")
    except Exception:  # noqa: BLE001
        pass
    return data


async def anaf_pdf_of(deps: Deps, row: queries.InvoiceSummary) -> bytes:
    """ANAF's own PDF (transformare), only when enabled; its WAF sometimes refuses, the local one never."""
    anaf: Any = deps.sync.anaf
    if not deps.settings.anaf_transform_pdf or not hasattr(anaf, "xml_to_pdf"):
        raise AppError("ANAF's PDF service is disabled here; use the local PDF.", code="anaf_pdf_disabled",
                       status=409)
    xml = await xml_of(deps, row)
    try:
        return bytes(await anaf.xml_to_pdf(xml, row.document_type == "credit_note"))
    except AnafError as e:
        raise AppError(f"ANAF's PDF service refused: {e.text[:200]}. The local PDF is always available.",
                       code="anaf_pdf_unavailable", status=502) from e


# --------------------------------------------------------------------------------------------------
# Commands


async def request_sync(deps: Deps, cif: str) -> None:
    """Sync now (at the next tick); 409 `no_entitled_connection` / `connection_paused` when nothing may sync it."""
    try:
        await deps.sync.connection_for(cif)
    except SyncPaused as e:
        raise _not_syncable(cif, e.code) from e
    if not await deps.sync.request_sync(cif):
        raise _not_syncable(cif, "no_entitled_connection")


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


async def set_interval(deps: Deps, cif: str, seconds: int | None) -> None:
    """The company's own sync interval (None: the service default); 404 when the company is not synced."""
    async with deps.runtime.uow() as uow:
        found = await ledger.set_interval(uow.session, cif, seconds)
        await uow.commit()
    if not found:
        raise NotFound(f"CIF {cif} is not synced.", code="company_not_synced")


async def reprocess(deps: Deps, cif: str) -> int:
    """Re-parse the company's flagged documents from their archived ZIP; how many were done."""
    return await deps.sync.reprocess(cif)


# --------------------------------------------------------------------------------------------------
# Routing table: event -> handler (consumer group efactura.read-models)

EVENT_HANDLERS: dict[type[Event], EventHandler] = {
    EntitlementsChanged: on_entitlements_changed,
    ReauthorizationRequired: on_reauthorization_required,
    ConnectionRevoked: on_connection_revoked,
    TokenRefreshed: on_token_refreshed,
    ConnectionAuthorized: on_connection_authorized,
}

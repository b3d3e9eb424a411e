"""Archiving: the signed ZIP into the blob store (Object Lock), then, in one transaction shared by concurrent
downloads (group commit), the ledger transition, the invoice row and the outbox event - so events are published
exactly once per message even with replicas and crashes."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from spvhub_common.blobs import BlobStore, RetentionConflict
from spvhub_common.clock import Clock
from spvhub_common.coalesce import Coalescer
from spvhub_common.events.efactura import DocumentFlagged
from spvhub_common.logging import get_logger
from spvhub_common.pii import PersonIds
from spvhub_common.telemetry import current_traceparent
from spvhub_common.uow import SqlUnitOfWork

from spvhub_efactura import domain
from spvhub_efactura.adapters import ledger, queries
from spvhub_efactura.adapters.ledger import LedgerMessage
from spvhub_efactura.processing import Processed
from spvhub_efactura.settings import Settings
from spvhub_efactura.sync.connections import UowFactory
from spvhub_efactura.sync.cpu_pool import ParsePool
from spvhub_efactura.sync.persons import keyed_document
from spvhub_efactura.ubl import ErrorReport

log = get_logger(__name__)


def blob_prefix(cif: str, message_id: str) -> str:
    return f"efactura/{cif}/{message_id}"


def zip_key_of(cif: str, message_id: str) -> str:
    """Where a message's signed ZIP is archived."""
    return f"{blob_prefix(cif, message_id)}/{message_id}.zip"


@dataclass
class ArchiveItem:
    """One archived message waiting for its row (group commit)."""
    cif: str
    message_id: str
    sha256: str
    size: int
    processed: Processed
    keys: dict[str, str]
    traceparent: str | None  # the message's trace: its events carry it, whatever batch commits them
    bare: str | None = None  # the database refused its parsed row (why): only the essentials are stored

    def facts(self) -> ledger.ArchiveFacts:
        p, sig = self.processed, self.processed.signature
        return ledger.ArchiveFacts(
            cif=self.cif, message_id=self.message_id, zip_key=self.keys["zip"], sha256=self.sha256, size=self.size,
            parse_status=p.status, parse_error=p.error, signature_status=sig.status if sig else None,
            signature_detail=sig.detail[:1000] if sig and sig.detail else None,
            signer_subject=sig.signer_subject if sig else None, signer_sha256=sig.signer_sha256 if sig else None,
            signature_shape=sig.shape if sig else None,
            signer_serial=(sig.signer_serial or "")[:64] or None if sig else None,
            signer_trusted=sig.trusted if sig else None,
            problem=domain.archive_problem(p.status, p.error, sig.status if sig else None,
                                           sig.detail if sig else None))


class Archiver:
    """Archives downloaded messages and re-parses flagged ones."""

    def __init__(self, settings: Settings, uow: UowFactory, blobs: BlobStore, clock: Clock, pool: ParsePool) -> None:
        self.settings = settings
        self.uow = uow
        self.blobs = blobs
        self.clock = clock
        self.pool = pool
        self.ids = PersonIds.from_settings(settings)
        self._committer: Coalescer[ArchiveItem, bool] = Coalescer(self._commit, max_batch=100,
                                                                   name="efactura-archive-commit")

    async def stop(self) -> None:
        await self._committer.aclose()

    async def archive(self, msg: LedgerMessage, data: bytes, *, reprocess: bool = False,
                      stored: bool = False) -> bool:
        """Blob first (Object Lock), then the ledger transition + invoice row + events in one transaction.
        Returns True when this call made the transition (so events are published exactly once)."""
        cif, mid = msg.cif, msg.message_id
        # Retention is legal time in the real world (the object store's clock), never the simulated ANAF clock.
        retain = datetime.now(UTC) + timedelta(days=self.settings.retention_days)
        zip_key = zip_key_of(cif, mid)
        if not (reprocess or stored):
            try:
                await self.blobs.put(zip_key, data, "application/zip", retain_until=retain)
            except RetentionConflict:
                data = await self.blobs.get(zip_key)  # the archive never changes: keep the first original
        processed = await self.pool.parse(data, msg.listed_at)
        # The signed ZIP is the archive: it holds the invoice XML and ANAF's signature XML, and the API serves the
        # XML from it. One object per message keeps the archive at one (conditional) PUT per invoice.
        item = ArchiveItem(cif, mid, hashlib.sha256(data).hexdigest(), len(data), processed, {"zip": zip_key},
                           current_traceparent())
        if reprocess:
            return (await self._commit([item], reprocess=True))[0]
        # Concurrent downloads share transactions (group commit): one ledger UPDATE, one invoice INSERT and one
        # outbox INSERT for the whole batch.
        return await self._committer.submit(item)

    async def reprocess(self, cif: str) -> int:
        """Re-parse archived documents flagged for reprocessing from the stored ZIP (e.g. after a parser fix)."""
        async with self.uow() as uow:
            flagged = await queries.flagged_for_reprocess(uow.session, cif)
        done = 0
        for msg in flagged:
            data = await self.blobs.get(msg.zip_key or zip_key_of(cif, msg.message_id))
            if await self.archive(msg, data, reprocess=True):
                done += 1
        return done

    async def _commit(self, items: list[ArchiveItem], reprocess: bool = False) -> list[bool]:
        """The ledger transitions + invoice rows + events of archived messages, in one transaction. Returns, per
        item, whether this call made the transition (so events are published exactly once).

        A value the database refuses (one domain.unfit_fields did not foresee) must not hold back the batch, nor
        leave its own message to be downloaded again and again: the batch is retried one by one, and the refused
        document is stored with its parsed fields left empty and the database's reason as its problem."""
        try:
            return await self._commit_once(items, reprocess)
        except Exception as e:
            reason = ledger.refused_value(e)
            if reason is None:
                raise
            if len(items) > 1:
                return [done for it in items for done in await self._commit([it], reprocess)]
            it = items[0]
            if it.bare is not None or it.processed.parsed is None:
                raise
            log.warning("parsed row refused by the database; storing it bare", cif=it.cif,
                        message_id=it.message_id, reason=reason)
            it.bare = reason
            return await self._commit_once(items, reprocess)

    async def _commit_once(self, items: list[ArchiveItem], reprocess: bool = False) -> list[bool]:
        now = self.clock.now()
        async with self.uow() as uow:
            made = await ledger.mark_archived(uow.session, [it.facts() for it in items], now, reprocess=reprocess)
            done: list[bool] = []
            rows: list[domain.InvoiceRow] = []
            pending: list[tuple[ArchiveItem, domain.Parsed, domain.InvoiceRow]] = []
            unstored: dict[tuple[str, str], str] = {}
            for it in items:
                row = made.pop((it.cif, it.message_id), None)  # a duplicate item in the batch: the first wins
                done.append(row is not None)
                if row is None:
                    continue  # someone else (another replica, an earlier run) archived it already
                p = it.processed
                sig = p.signature
                if p.status != "ok":
                    _flag(uow, it, p.status, p.error or "")
                elif sig is not None and sig.status != "valid":
                    _flag(uow, it, "signature_" + sig.status, sig.detail)
                if p.parsed is not None:
                    # a natural person among the parties is named by key in the row and the event, never by CNP
                    parsed = keyed_document(self.ids, p.parsed)
                    values = domain.invoice_row(
                        row, parsed, zip_key=it.keys["zip"], xml_key=it.keys.get("xml"),
                        signature_status=sig.status if sig else None, signature=sig.__dict__ if sig else None,
                        problems=p.problems, capacity=ledger.INVOICE_CAPACITY, refused=it.bare)
                    if values.problem:
                        # kept, with the fields it names left empty: a document is never refused for its values
                        _flag(uow, it, "fields_not_stored", values.problem)
                        unstored[(it.cif, it.message_id)] = values.problem
                    rows.append(values)
                    pending.append((it, parsed, values))
            if rows:
                await self._insert_documents(uow, rows, pending)
            if unstored:
                await ledger.note_fields_not_stored(uow.session, unstored)
            await uow.commit()
        return done

    @staticmethod
    async def _insert_documents(uow: SqlUnitOfWork, rows: list[domain.InvoiceRow],
                                pending: list[tuple[ArchiveItem, domain.Parsed, domain.InvoiceRow]]) -> None:
        """One INSERT for the batch's documents, then an event for each document inserted now."""
        ids = await ledger.insert_invoices(uow.session, rows)
        submitted = await queries.submissions_of(uow.session, [
            (it.cif, row.upload_index) for it, doc, row in pending
            if (isinstance(doc, ErrorReport) or row.filed_late) and row.upload_index])
        for it, doc, row in pending:
            new_id = ids.get((it.cif, it.message_id))
            if new_id is None:
                continue
            event = domain.document_event(row, doc, invoice_id=new_id, blob_keys=it.keys,
                                          submission_id=submitted.get((it.cif, row.upload_index or "")))
            if event is not None:
                uow.publish(event, traceparent=it.traceparent)
            # filed late outside spvhub: told once, with the row inserted now (a submission tells its own)
            late = None if submitted.get((it.cif, row.upload_index or "")) else \
                domain.filed_late_event(row, invoice_id=new_id)
            if late is not None:
                uow.publish(late, traceparent=it.traceparent)


def _flag(uow: SqlUnitOfWork, it: ArchiveItem, problem: str, detail: str) -> None:
    """An archived document someone should look at: told once, with the message's trace."""
    uow.publish(DocumentFlagged(cif=it.cif, message_id=it.message_id, problem=problem, detail=detail[:500],
                                blob_keys=it.keys), traceparent=it.traceparent)
    log.warning("archived document flagged", cif=it.cif, message_id=it.message_id, problem=problem,
                detail=detail[:200])

"""One company's sync: list the window page by page into the ledger, then download what is not archived yet (each
message archived through `archiving`), then the completion (counts, reconciliation, expiry warnings)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from spvhub_common.anaf.errors import AnafError, LimitReached, MessageExpired, NoRights, NotFound
from spvhub_common.blobs import BlobStore
from spvhub_common.clock import Clock
from spvhub_common.events.efactura import MessageExpiring, MessageLost, QuotaExhausted, SyncCompleted
from spvhub_common.logging import get_logger
from spvhub_common.pii import PersonIds
from spvhub_common.telemetry import tracer
from spvhub_common.uow import SqlUnitOfWork

from spvhub_efactura import domain
from spvhub_efactura.adapters import ledger, queries
from spvhub_efactura.adapters.anaf import EfacturaAnaf, ListPage, resets_at_of
from spvhub_efactura.adapters.ledger import LedgerMessage
from spvhub_efactura.settings import Settings
from spvhub_efactura.sync.archiving import Archiver, zip_key_of
from spvhub_efactura.sync.connections import AuthUnavailable, Connections, SyncPaused, UowFactory
from spvhub_efactura.sync.metrics import MESSAGES_OF
from spvhub_efactura.sync.persons import keyed_error, keyed_item

log = get_logger(__name__)
T = TypeVar("T")


@dataclass
class SyncReport:
    cif: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    first_sync: bool = False
    full: bool = False
    listed: int = 0
    new_messages: int = 0
    archived: int = 0
    lost: int = 0
    failed: int = 0
    pending: int = 0
    complete: bool | None = None
    error: str | None = None
    listed_ids: set[str] = field(default_factory=set)


class CompanySync:
    """Syncs one company at a time per call; `download_slots` bounds how many companies download at once
    (listing takes no slot)."""

    def __init__(self, settings: Settings, uow: UowFactory, anaf: EfacturaAnaf, connections: Connections,
                 blobs: BlobStore, clock: Clock, archiver: Archiver) -> None:
        self.settings = settings
        self.uow = uow
        self.anaf = anaf
        self.connections = connections
        self.blobs = blobs
        self.clock = clock
        self.archiver = archiver
        self.ids = PersonIds.from_settings(settings)
        # Download slots. A claimed company lists without one (listing is one cheap ANAF call a page), so up to
        # list_ahead_companies more are claimed than there are slots: when a company finishes, the next one is
        # already listed and its downloads start at once, instead of every slot idling through a listing.
        self.download_slots = asyncio.Semaphore(settings.max_concurrent_companies)

    async def sync(self, cif: str) -> SyncReport:
        """List the window page by page into the ledger, then download what is not archived yet."""
        report = SyncReport(cif)
        now = self.clock.now()
        async with self.uow() as uow:
            start = await ledger.start_company_sync(uow.session, cif, now)
            if start is None:
                raise SyncPaused(f"unknown company {cif}")
            await uow.commit()
        connection_id = await self.connections.connection_for(cif)
        anaf_id = await self.anaf_id(cif)  # a person key's CNP, for the list calls only
        full = start.last_reconciled_at is None or \
            (now - start.last_reconciled_at).total_seconds() >= self.settings.reconcile_interval_seconds
        window = domain.list_window(
            now, start.watermark, start_margin=timedelta(seconds=self.settings.window_start_margin_seconds),
            end_margin=timedelta(seconds=self.settings.window_end_margin_seconds),
            overlap=timedelta(seconds=self.settings.overlap_seconds), full=full)
        report.window_start, report.window_end = window.start, window.end
        report.first_sync, report.full = window.first_sync, window.full
        try:
            await self._list_window(cif, anaf_id, connection_id, window, report)
        except LimitReached as e:
            await self._quota(e, cif=cif, message_id=None)
            async with self.uow() as uow:
                await ledger.block_company(uow.session, cif, resets_at_of(e, now), f"quota: {e.text}", now)
                await uow.commit()
            raise
        # The whole window is listed: advance the watermark now (downloads are tracked per message).
        async with self.uow() as uow:
            await ledger.advance_watermark(uow.session, cif, window.end, now)
            await uow.commit()
        async with self.download_slots:
            await self._download_pending(cif, connection_id, report)
        await self._finish(cif, report)
        return report

    # -- ANAF's id of the company ----------------------------------------------------------------------
    async def anaf_id(self, cif: str) -> str:
        """What names the company to ANAF: the CIF, or a person key's CNP unsealed from its sync state. A CNP that
        cannot be had pauses the company's sync (`SyncPaused`, code cnp_missing / cnp_invalid), naming the key."""
        async with self.uow() as uow:
            try:
                return await queries.anaf_id_of(uow.session, cif, self.ids)
            except queries.CnpUnavailable as e:
                raise SyncPaused(str(e), code=e.code) from None

    async def _anaf_call(self, connection_id: str, call: Callable[[str], Awaitable[T]]) -> T:
        """An ANAF call with the connection's token; an error quoting a CNP (`... CIF=<CNP>`) names its key instead
        before anyone records, publishes or logs it."""
        try:
            return await self.connections.with_token(connection_id, call)
        except AnafError as e:
            keyed_error(self.ids, e)
            raise

    # -- list --------------------------------------------------------------------------------------
    async def _list_window(self, cif: str, anaf_id: str, connection_id: str, window: domain.Window,
                           report: SyncReport) -> None:
        page, pages = 1, 1
        while page <= pages:
            def list_page(tok: str, p: int = page) -> Awaitable[ListPage]:
                return self.anaf.list_page(tok, anaf_id, window.start, window.end, p)
            lp = await self._anaf_call(connection_id, list_page)
            pages = lp.total_pages
            await self._record_listed(cif, lp.messages, report)
            page += 1

    async def _record_listed(self, cif: str, items: list[dict[str, Any]], report: SyncReport) -> None:
        if not items:
            return
        now = self.clock.now()
        listed: dict[str, domain.ListedMessage] = {}
        # ANAF names a natural person by CNP (the item's `cif`, `detalii`): the ledger, and any log, by key
        items = [keyed_item(self.ids, item) for item in items]
        for item in items:
            try:
                m = domain.listed_message(cif, item, now)
            except ValueError:
                log.warning("list item without a usable id", cif=cif, item=str(item)[:200])
                continue
            if m is not None:
                listed[m.message_id] = m
        if not listed:
            return
        report.listed += len(listed)
        report.listed_ids.update(listed)
        async with self.uow() as uow:
            report.new_messages += await ledger.record_listed(uow.session, list(listed.values()), now)
            await uow.commit()

    # -- download ----------------------------------------------------------------------------------
    async def _pending_batch(self, cif: str, exclude: set[str], limit: int = 200) -> list[LedgerMessage]:
        now = self.clock.now()
        async with self.uow() as uow:
            rows = await ledger.pending_batch(uow.session, cif, now, now + timedelta(days=self.settings.urgent_days),
                                              exclude, limit)
            await uow.commit()
        return rows

    async def _download_pending(self, cif: str, connection_id: str, report: SyncReport) -> None:
        sem = asyncio.Semaphore(self.settings.downloads_per_company)
        tried: set[str] = set()
        stop = asyncio.Event()

        async def one(msg: LedgerMessage, cid: str) -> None:
            async with sem:
                if stop.is_set():
                    return
                outcome = await self.download_one(cif, cid, msg)
                MESSAGES_OF(outcome).inc()
                if outcome == "archived":
                    report.archived += 1
                elif outcome == "lost":
                    report.lost += 1
                elif outcome == "paused":
                    stop.set()
                else:
                    report.failed += 1

        first = True
        while not stop.is_set():
            batch = await self._pending_batch(cif, tried)
            if not batch:
                break
            if not first:
                # A long sync follows the entitlements as they change: the next batch goes through the connection
                # entitled now, and stops (SyncPaused) when none is left.
                connection_id = await self.connections.connection_for(cif)
            first = False
            tried.update(m.message_id for m in batch)
            results = await asyncio.gather(*(one(m, connection_id) for m in batch), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r

    async def download_one(self, cif: str, connection_id: str, msg: LedgerMessage | Mapping[str, Any]) -> str:
        """Download, archive and parse one message; returns archived | lost | failed | quota | paused.
        One span per message: the ANAF call, the outbox row and every consumer of its event share its trace."""
        if not isinstance(msg, LedgerMessage):
            msg = LedgerMessage.of(msg)
        with tracer("spvhub.efactura").start_as_current_span(
                "efactura archive-message", attributes={"efactura.cif": cif,
                                                        "efactura.message_id": str(msg.message_id)}) as span:
            outcome = await self._download_one(cif, connection_id, msg)
            span.set_attribute("efactura.outcome", outcome)
            return outcome

    async def _download_one(self, cif: str, connection_id: str, msg: LedgerMessage) -> str:
        mid = msg.message_id
        now = self.clock.now()
        # A previous run may have archived the ZIP and died before its row committed: reuse it rather than
        # spend one of the message's 10 daily downloads again (only a message whose download started before can).
        if msg.download_started_at is not None:
            try:
                zip_key = zip_key_of(cif, mid)
                if await self.blobs.stat(zip_key) is not None:
                    await self.archiver.archive(msg, await self.blobs.get(zip_key), stored=True)
                    return "archived"
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - fall back to downloading
                log.warning("reusing an archived ZIP failed", cif=cif, message_id=mid)
        try:
            data = await self._anaf_call(connection_id, lambda tok: self.anaf.download(tok, mid))
        except SyncPaused:
            raise
        except MessageExpired as e:
            await self._mark_lost(msg, e.text)
            return "lost"
        except LimitReached as e:
            # ANAF (or our budget) says this message is spent for today: wait for the reset, never loop.
            at = resets_at_of(e, now)
            await self._quota(e, cif=cif, message_id=mid)
            await self._mark_failed(msg, f"quota: {e.text}", at)
            return "quota"
        except (NotFound, NoRights, AnafError, AuthUnavailable) as e:
            text_ = getattr(e, "text", None) or str(e)
            retry_at = domain.download_retry_at(now, msg.purge_at, msg.attempts, base=self.settings.retry_base_seconds,
                                                cap=self.settings.retry_max_seconds)
            if retry_at is None:
                await self._mark_lost(msg, f"purged before download; last error: {text_}")
                return "lost"
            await self._mark_failed(msg, f"{type(e).__name__}: {text_}", retry_at)
            return "failed"
        try:
            await self.archiver.archive(msg, data)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - blob store or database trouble: retry this message later
            log.exception("archiving failed", cif=cif, message_id=mid)
            retry_at = domain.archive_retry_at(self.clock.now(), msg.attempts, base=self.settings.retry_base_seconds,
                                               cap=self.settings.retry_max_seconds)
            await self._mark_failed(msg, f"archive: {type(e).__name__}: {str(e)[:300]}", retry_at)
            return "failed"
        return "archived"

    async def _mark_failed(self, msg: LedgerMessage, error: str, next_at: datetime) -> None:
        async with self.uow() as uow:
            await ledger.mark_failed(uow.session, msg.cif, msg.message_id, error, next_at, self.clock.now())
            await uow.commit()

    async def _mark_lost(self, msg: LedgerMessage, reason: str) -> None:
        async with self.uow() as uow:
            if await ledger.mark_lost(uow.session, msg.cif, msg.message_id, reason, self.clock.now()):
                uow.publish(MessageLost(cif=msg.cif, message_id=msg.message_id, reason=reason[:1000],
                                        listed_at=msg.listed_at))
            await uow.commit()

    async def _quota(self, err: AnafError, *, cif: str | None, message_id: str | None) -> None:
        """Announce a limit once per (kind, scope, reset)."""
        now = self.clock.now()
        at = resets_at_of(err, now).replace(microsecond=0)
        kind = getattr(err, "kind", None) or (getattr(err, "scope", "") or "").split(":")[0] or (
            err.endpoint or "anaf")
        scope_key = getattr(err, "key", None) or (getattr(err, "scope", "") or "").split(":", 1)[-1] or (
            message_id or cif or "")
        async with self.uow() as uow:
            if await ledger.record_quota(uow.session, str(kind), str(scope_key), at, err.text):
                uow.publish(QuotaExhausted(kind=str(kind), scope_key=str(scope_key), resets_at=at, cif=cif,
                                           message_id=message_id, anaf_text=err.text[:500]))
            await uow.commit()

    # -- completion --------------------------------------------------------------------------------
    async def _finish(self, cif: str, report: SyncReport) -> None:
        now = self.clock.now()
        async with self.uow() as uow:
            counts = await queries.message_states(uow.session, cif)
            report.pending = counts.get(domain.MessageState.LISTED, 0) + counts.get(domain.MessageState.FAILED, 0)
            if report.full:
                # Reconciliation: every id ANAF lists in its whole window is archived or recorded lost.
                report.complete = await queries.count_still_pending(uow.session, cif, list(report.listed_ids)) == 0
            await ledger.complete_sync(uow.session, cif, now, report.complete if report.full else None)
            await self._expiring(uow, cif, now)
            uow.publish(SyncCompleted(
                cif=cif, new_messages=report.new_messages, window_start=report.window_start or now,
                window_end=report.window_end or now, first_sync=report.first_sync, archived=report.archived,
                pending=report.pending, lost=report.lost, reconciliation=report.full, complete=report.complete))
            await uow.commit()

    async def _expiring(self, uow: SqlUnitOfWork, cif: str, now: datetime) -> None:
        horizon = now + timedelta(days=self.settings.expiring_days)
        for m in await ledger.take_expiring(uow.session, cif, now, horizon):
            uow.publish(MessageExpiring(cif=cif, message_id=m.message_id, purge_at=m.purge_at,
                                        days_left=domain.days_left(now, m.purge_at), last_error=m.last_error))

    async def expiry_scan(self) -> int:
        """Every company, also ones that cannot sync now (paused): raise message-expiring in time."""
        now = self.clock.now()
        async with self.uow() as uow:
            cifs = await queries.companies_with_expiring(uow.session, now + timedelta(days=self.settings.expiring_days))
            for cif in cifs:
                await self._expiring(uow, cif, now)
            await uow.commit()
        return len(cifs)

"""Use cases of the efactura service: read models from auth/portfolio events, the per-company sync (list, ledger,
download, archive, parse), reconciliation and expiry checks. The routing table is at the bottom."""
from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from spvhub_common.anaf.errors import AnafError, LimitReached, MessageExpired, NoRights, NotFound, Unauthorized
from spvhub_common.blobs import BlobStore, RetentionConflict
from spvhub_common.coalesce import Coalescer
from spvhub_common.events import Event
from spvhub_common.events.auth import ConnectionAuthorized, ConnectionRevoked, ReauthorizationRequired, TokenRefreshed
from spvhub_common.events.efactura import (
    DocumentFlagged,
    InvoiceDownloaded,
    InvoiceErrorReceived,
    MessageExpiring,
    MessageLost,
    QuotaExhausted,
    SyncCompleted,
)
from spvhub_common.events.portfolio import EntitlementsChanged
from spvhub_common.logging import get_logger
from spvhub_common.telemetry import children, current_traceparent, tracer
from spvhub_common.uow import SqlUnitOfWork
from sqlalchemy import Numeric, String, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError

from spvhub_efactura import domain
from spvhub_efactura.adapters.anaf import EfacturaAnaf, resets_at_of
from spvhub_efactura.adapters.auth import AuthUnavailable, NoConnection, TokenProvider
from spvhub_efactura.adapters.auth import ReauthorizationRequired as AuthReauth
from spvhub_efactura.adapters.orm import companies, connections, entitlements, invoices, messages, quota_ledger
from spvhub_efactura.archive import Limits
from spvhub_efactura.processing import Processed, process_many
from spvhub_efactura.settings import Settings
from spvhub_efactura.ubl import BuyerMessage, Document, ErrorReport

log = get_logger(__name__)
T = TypeVar("T")

SYNC_LAST_SUCCESS = Gauge("efactura_sync_last_success_timestamp",
                          "Unix time (wall clock) of the company's last successful e-Factura sync", ["cif"])
SYNC_PENDING = Gauge("efactura_messages_pending", "Listed messages not yet archived, per company", ["cif"])
SYNCS = Counter("efactura_syncs_total", "Company syncs by outcome", ["outcome"])
SYNC_SECONDS = Histogram("efactura_sync_duration_seconds", "Duration of one company sync",
                         buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
MESSAGES = Counter("efactura_messages_total", "Message outcomes (archived, lost, failed, quota, flagged)",
                   ["outcome"])
MESSAGES_OF = children(MESSAGES)  # (outcome,)


class Clock(Protocol):
    def now(self) -> datetime: ...


class UowFactory(Protocol):
    def __call__(self) -> SqlUnitOfWork: ...


# --------------------------------------------------------------------------------------------------
# Read models fed by events (run inside the consumer's transaction; never commit here)

EFACTURA = "efactura"


def service_name(raw: str) -> str:
    """`E-Factura`, `efactura`, `e_factura` -> `efactura` (how the entitlements store service names)."""
    return re.sub(r"[^a-z]", "", raw.lower())


async def _upsert_connection(uow: SqlUnitOfWork, connection_id: str, holder_cif: str | None, status: str | None,
                             reason: str | None = None) -> None:
    values: dict[str, Any] = {"connection_id": connection_id, "holder_cif": holder_cif,
                              "status": status or "active", "status_reason": reason}
    stmt = insert(connections).values(**values)
    set_: dict[str, Any] = {"updated_at": func.now()}
    if holder_cif:
        set_["holder_cif"] = holder_cif
    if status:
        set_["status"] = status
        set_["status_reason"] = reason
    await uow.session.execute(stmt.on_conflict_do_update(index_elements=["connection_id"], set_=set_))


async def on_entitlements_changed(ev: EntitlementsChanged, _env: Any, uow: SqlUnitOfWork) -> None:
    """The CIF's entitled connections, best first, replace what we knew. A CIF with an e-Factura one is synced
    (due now when it had none); with none, its sync stops (the company row and its archive stay)."""
    cif = domain.normalize_cif(ev.cif)
    if not cif:
        return
    s = uow.session
    had = (await s.execute(select(func.count()).select_from(entitlements).where(
        entitlements.c.cif == cif, entitlements.c.services.any(EFACTURA)))).scalar()
    await s.execute(delete(entitlements).where(entitlements.c.cif == cif))
    rows = [{"cif": cif, "rank": i, "connection_id": c.connection_id,
             "holder_cif": domain.normalize_cif(c.holder_cif),
             "services": sorted({service_name(x) for x in c.services} - {""}), "may_file": c.may_file}
            for i, c in enumerate(ev.connections)]
    if rows:
        await s.execute(insert(entitlements).values(rows))
    if any(EFACTURA in r["services"] for r in rows):
        await s.execute(insert(companies).values(cif=cif).on_conflict_do_nothing())
        if not had:
            await s.execute(update(companies).where(companies.c.cif == cif).values(next_sync_at=None))


async def on_reauthorization_required(ev: ReauthorizationRequired, _env: Any, uow: SqlUnitOfWork) -> None:
    """Pause: the watermark and the ledger stay, so the sync resumes where it stopped."""
    await _upsert_connection(uow, ev.connection_id, ev.company_cif, "paused", f"{ev.reason}: {ev.message}"[:500])


async def on_connection_revoked(ev: ConnectionRevoked, _env: Any, uow: SqlUnitOfWork) -> None:
    await _upsert_connection(uow, ev.connection_id, ev.company_cif, "revoked", ev.reason[:500])


async def on_token_refreshed(ev: TokenRefreshed, _env: Any, uow: SqlUnitOfWork) -> None:
    await _upsert_connection(uow, ev.connection_id, ev.company_cif, "active")


async def on_connection_authorized(ev: ConnectionAuthorized, _env: Any, uow: SqlUnitOfWork) -> None:
    """Active again (a paused or revoked connection authorized anew). Which CIFs it serves is portfolio's call
    (entitlements), never inferred from the authorization itself."""
    await _upsert_connection(uow, ev.connection_id, ev.company_cif, "active")


# --------------------------------------------------------------------------------------------------
# The sync


class SyncPaused(Exception):
    """No entitled connection active here for the CIF, or a person must authorize again. `code` is stable:
    no_entitled_connection | no_filing_connection | reauthorization_required | connection_revoked."""

    def __init__(self, message: str, code: str = "reauthorization_required") -> None:
        super().__init__(message)
        self.code = code


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


@dataclass
class _ArchiveItem:
    """One archived message waiting for its row (group commit)."""
    cif: str
    message_id: str
    sha256: str
    size: int
    processed: Processed
    keys: dict[str, str]
    traceparent: str | None  # the message's trace: its events carry it, whatever batch commits them
    bare: str | None = None  # the database refused its parsed row (why): only the essentials are stored


def blob_prefix(cif: str, message_id: str) -> str:
    return f"efactura/{cif}/{message_id}"


_CENTS = Decimal("0.01")
_WIDE = Context(prec=60)


def _money(v: Decimal | None) -> Decimal | None:
    """To cents; a value no column holds (infinite, NaN, too many digits) is returned as is, for _fit to report."""
    if v is None or not v.is_finite():
        return v
    try:
        return v.quantize(_CENTS, context=_WIDE)
    except InvalidOperation:
        return v


def _archive_problem(p: Processed) -> str | None:
    """What the ledger says is wrong with an archived document (None: nothing); the flagged count of the sync
    health counts these."""
    if p.status != "ok":
        return f"{p.status}: {p.error or ''}"[:2000]
    sig = p.signature
    if sig is not None and sig.status != "valid":
        return f"signature_{sig.status}: {sig.detail}"[:2000]
    return None


def _data_error(e: DBAPIError) -> str | None:
    """The database's reason when it refused a value (SQLSTATE class 22, data exception; 54000, e.g. an index
    entry too large), else None (connection trouble and the like: retried later as usual)."""
    orig = getattr(e, "orig", None)
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    if state.startswith("22") or state == "54000":
        return f"{state}: {str(orig)[:300]}"
    return None


# Text columns under a btree index: PostgreSQL refuses an index entry over ~2700 bytes.
_INDEXED_TEXT = {"number": 500}


def _fit(values: dict[str, Any]) -> list[str]:
    """Empty, in place, each value its invoices column cannot hold as parsed; `column: why` for each."""
    problems: list[str] = []
    for name, value in values.items():
        if value is None or name not in invoices.c:
            continue
        col_type = invoices.c[name].type
        why = None
        if isinstance(value, Decimal) and isinstance(col_type, Numeric):
            digits = (col_type.precision or 38) - (col_type.scale or 0)
            if not value.is_finite() or value.adjusted() >= digits:
                shown = str(value)
                if value.is_finite():  # as written, about: 1E+30, 123456789012345678901234567890
                    n = value.normalize(context=_WIDE)
                    shown = min(str(n), format(n, "f"), key=len)
                why = f"{shown} does not fit numeric({col_type.precision},{col_type.scale})"
        elif isinstance(value, str) and isinstance(col_type, String) and col_type.length \
                and len(value) > col_type.length:
            why = f"{len(value)} characters, the column holds {col_type.length}"
        elif isinstance(value, str) and name in _INDEXED_TEXT and len(value) > _INDEXED_TEXT[name]:
            why = f"{len(value)} characters, at most {_INDEXED_TEXT[name]} are kept"
        if why:
            values[name] = None
            problems.append(f"{name}: {why}")
    return problems


_JSON_SCALARS = (str, int, float, bool, type(None))


def _jsonable(obj: Any) -> Any:
    """A JSON-ready copy: containers copied, scalars kept, anything else (Decimal, date) as its str() (what
    `json.dumps(default=str)` wrote, at a third of the cost of that round trip)."""
    if isinstance(obj, _JSON_SCALARS):
        return obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return str(obj)


def _unnest(dialect: Any, cols: list[Any]) -> str:
    """`unnest(CAST(:col AS type[]), ...)` over these columns: one typed array parameter per column, so a statement
    has one text whatever the number of rows (prepared once per connection) and asyncpg encodes the arrays in C,
    rather than SQLAlchemy binding rows x columns parameters one by one."""
    return "unnest({})".format(", ".join(f"CAST(:{c.name} AS {c.type.compile(dialect=dialect)}[])" for c in cols))


@lru_cache(maxsize=4)
def _invoice_insert(dialect: Any) -> tuple[Any, list[tuple[str, Any, Callable[[Any], Any] | None]]]:
    """INSERT INTO invoices ... SELECT FROM unnest ON CONFLICT DO NOTHING RETURNING; with each column's default and
    SQLAlchemy bind processor (JSONB serialization), so values land as the ORM would write them."""
    cols = [c for c in invoices.columns if c.name not in ("id", "created_at")]
    columns = [(c.name, False if c.name == "self_billing" else None, c.type.bind_processor(dialect)) for c in cols]
    stmt = text(f"INSERT INTO invoices ({', '.join(c.name for c in cols)}) SELECT * FROM {_unnest(dialect, cols)} "
                "ON CONFLICT ON CONSTRAINT uq_invoices_cif_message DO NOTHING RETURNING id, cif, message_id")
    return stmt, columns


_LISTED = ("cif", "message_id", "tip", "kind", "upload_index", "detalii", "listed_at", "purge_at", "first_seen_at",
           "last_seen_at", "state")


@lru_cache(maxsize=4)
def _listed_upsert(dialect: Any) -> Any:
    """Listed messages into the ledger: new ones inserted, known ones only get last_seen_at; RETURNING whether each
    row was inserted now (xmax = 0)."""
    cols = [messages.c[n] for n in _LISTED]
    return text(f"INSERT INTO messages ({', '.join(_LISTED)}) SELECT * FROM {_unnest(dialect, cols)} "
                "ON CONFLICT (cif, message_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at "
                "RETURNING (xmax = 0) AS inserted")


class SyncEngine:
    """Runs company syncs. Safe with many replicas: a company is leased (database time) while it syncs, and every
    state change is a conditional update, so a crash at any point is repaired by the next run."""

    def __init__(self, settings: Settings, uow: UowFactory, anaf: EfacturaAnaf, tokens: TokenProvider,
                 blobs: BlobStore, clock: Clock, *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.uow = uow
        self.anaf = anaf
        self.tokens = tokens
        self.blobs = blobs
        self.clock = clock
        self.instance_id = instance_id or uuid.uuid4().hex[:16]
        self.limits = Limits(settings.max_zip_bytes, settings.max_member_bytes, settings.max_zip_ratio,
                             settings.max_zip_members)
        self._running: dict[str, asyncio.Task[SyncReport]] = {}
        self.cpu_pool: Executor | None = None
        self.cpu_pool_factory: Callable[[], Executor] | None = None
        # Download slots. A claimed company lists without one (listing is one cheap ANAF call a page), so up to
        # list_ahead_companies more are claimed than there are slots: when a company finishes, the next one is
        # already listed and its downloads start at once, instead of every slot idling through a listing.
        self._company_slots = asyncio.Semaphore(settings.max_concurrent_companies)
        # Downloaded ZIPs reach the parse workers in batches: one pool round trip (pickling, queue, wake-up) for many
        # ZIPs when the sync is busy, none of the waiting when it is not.
        self._parser: Coalescer[tuple[bytes, datetime | None], Processed] = Coalescer(
            self._process_batch, max_batch=16, concurrency=max(1, settings.parse_processes), name="efactura-parse")
        self._committer: Coalescer[_ArchiveItem, bool] = Coalescer(self._commit_archives, max_batch=100,
                                                                    name="efactura-archive-commit")

    async def start_workers(self) -> None:
        """Start the parse workers now: each imports lxml, cryptography and the parsers (a second or so of CPU),
        at startup rather than on the first sync's clock."""
        if self.cpu_pool is not None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self.cpu_pool, process_many, [], self.limits)
                                   for _ in range(self.settings.parse_processes)))

    async def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """CPU-bound work (unzip, parse, XML-DSig) off the event loop: in a process pool when configured, so
        it does not hold the GIL against the loop's I/O; in a thread otherwise."""
        pool = self.cpu_pool
        if pool is not None:
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                # a worker died (OOM, signal): replace the pool, and do this item in a thread
                log.error("parse worker pool broken; replacing it")
                if self.cpu_pool is pool and self.cpu_pool_factory is not None:
                    self.cpu_pool = self.cpu_pool_factory()
                    pool.shutdown(wait=False, cancel_futures=True)
        return await asyncio.to_thread(fn, *args)

    # -- scheduling --------------------------------------------------------------------------------
    async def tick(self) -> list[str]:
        """Claim due companies up to the free slots (download slots plus list-ahead) and start their syncs (returns
        the claimed CIFs)."""
        free = self.settings.max_concurrent_companies + self.settings.list_ahead_companies - len(self._running)
        if free <= 0:
            return []
        now = self.clock.now()
        async with self.uow() as uow:
            rows = (await uow.session.execute(text("""
                UPDATE sync_companies SET lease_owner = :me, lease_until = now() + make_interval(secs => :lease)
                WHERE cif IN (
                    SELECT c.cif FROM sync_companies c
                    WHERE (c.lease_until IS NULL OR c.lease_until < now())
                      AND (c.sync_requested OR c.next_sync_at IS NULL OR c.next_sync_at <= :now)
                      AND (c.blocked_until IS NULL OR c.blocked_until <= :now OR c.sync_requested)
                      AND EXISTS (SELECT 1 FROM entitlements e LEFT JOIN connections k
                                  ON k.connection_id = e.connection_id
                                  WHERE e.cif = c.cif AND 'efactura' = ANY(e.services)
                                    AND COALESCE(k.status, 'active') = 'active')
                    ORDER BY c.sync_requested DESC, c.next_sync_at ASC NULLS FIRST
                    LIMIT :n FOR UPDATE SKIP LOCKED)
                RETURNING cif"""), {"me": self.instance_id, "lease": self.settings.lease_seconds, "now": now,
                                    "n": free})).scalars().all()
            await uow.commit()
        for cif in rows:
            self._running[cif] = asyncio.create_task(self._leased_sync(cif), name=f"sync-{cif}")
            self._running[cif].add_done_callback(lambda _t, c=cif: self._running.pop(c, None))
        return list(rows)

    async def shutdown(self) -> None:
        for t in list(self._running.values()):
            t.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)
        await self._parser.aclose()
        await self._committer.aclose()

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def request_sync(self, cif: str) -> bool:
        """On-demand sync: due at the next tick (even when its interval has not elapsed)."""
        async with self.uow() as uow:
            res = await uow.session.execute(update(companies).where(companies.c.cif == cif)
                                            .values(sync_requested=True))
            await uow.commit()
        return bool(res.rowcount)

    async def _heartbeat(self, cif: str) -> None:
        every = max(self.settings.lease_seconds / 3, 0.5)
        while True:
            await asyncio.sleep(every)
            async with self.uow() as uow:
                await uow.session.execute(text(
                    "UPDATE sync_companies SET lease_until = now() + make_interval(secs => :lease) "
                    "WHERE cif = :cif AND lease_owner = :me"),
                    {"lease": self.settings.lease_seconds, "cif": cif, "me": self.instance_id})
                await uow.commit()

    async def _leased_sync(self, cif: str) -> SyncReport:
        hb = asyncio.create_task(self._heartbeat(cif))
        report = SyncReport(cif)
        started = time.perf_counter()
        try:
            report = await self.sync_company(cif)
            SYNCS.labels("ok").inc()
            SYNC_LAST_SUCCESS.labels(cif).set(time.time())
            SYNC_PENDING.labels(cif).set(report.pending)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded in the company's health, retried on schedule
            SYNCS.labels("paused" if isinstance(e, SyncPaused) else "failed").inc()
            log.exception("sync failed", cif=cif, error=str(e)[:300])
            report.error = f"{type(e).__name__}: {str(e)[:400]}"
            await self._record_failure(cif, report.error)
        finally:
            SYNC_SECONDS.observe(time.perf_counter() - started)
            hb.cancel()
            try:
                await self._release(cif)
            except Exception:  # noqa: BLE001 - the lease expires by itself
                log.warning("lease release failed", cif=cif)
        return report

    async def _release(self, cif: str) -> None:
        now = self.clock.now()
        async with self.uow() as uow:
            row = (await uow.session.execute(select(companies.c.interval_seconds).where(companies.c.cif == cif))
                   ).first()
            interval = (row[0] if row and row[0] else self.settings.sync_interval_seconds)
            nxt = now + timedelta(seconds=interval)
            due = (await uow.session.execute(select(func.min(messages.c.next_attempt_at)).where(
                messages.c.cif == cif, messages.c.state.in_(["listed", "failed"])))).scalar()
            if due is not None:
                nxt = min(nxt, max(due, now + timedelta(seconds=5)))
            await uow.session.execute(update(companies).where(
                companies.c.cif == cif, companies.c.lease_owner == self.instance_id).values(
                lease_owner=None, lease_until=None, next_sync_at=nxt))
            await uow.commit()

    async def _record_failure(self, cif: str, error: str) -> None:
        async with self.uow() as uow:
            await uow.session.execute(update(companies).where(companies.c.cif == cif).values(
                last_error=error[:1000], last_error_at=self.clock.now(), sync_requested=False,
                consecutive_failures=companies.c.consecutive_failures + 1))
            await uow.commit()

    # -- tokens ------------------------------------------------------------------------------------
    async def _connection_for(self, cif: str, *, filing: bool = False) -> str:
        """The first connection portfolio entitles for `cif` on e-Factura (its rank order) that is active here;
        to file, the first that may also file. Never any other connection: a certificate's rights alone do not
        make a connection serve a company."""
        async with self.uow() as uow:
            q = (select(entitlements.c.connection_id, entitlements.c.may_file,
                        func.coalesce(connections.c.status, "active").label("status"))
                 .select_from(entitlements.outerjoin(
                     connections, connections.c.connection_id == entitlements.c.connection_id))
                 .where(entitlements.c.cif == cif, entitlements.c.services.any(EFACTURA))
                 .order_by(entitlements.c.rank))
            rows = (await uow.session.execute(q)).all()
        usable = [r for r in rows if r.may_file] if filing else rows
        for r in usable:
            if r.status == "active":
                return str(r.connection_id)
        if not rows:
            raise SyncPaused(f"no connection is entitled to act for CIF {cif} on e-Factura",
                             code="no_entitled_connection")
        if not usable:
            raise SyncPaused(f"no entitled connection may file for CIF {cif}", code="no_filing_connection")
        code = "connection_revoked" if usable[0].status == "revoked" else "reauthorization_required"
        raise SyncPaused(f"the connection entitled for CIF {cif} needs a new authorization", code=code)

    async def _pause_connection(self, connection_id: str, reason: str) -> None:
        async with self.uow() as uow:
            await uow.session.execute(update(connections).where(connections.c.connection_id == connection_id)
                                      .values(status="paused", status_reason=reason[:500], updated_at=func.now()))
            await uow.commit()

    async def _with_token(self, connection_id: str, call: Callable[[str], Awaitable[T]]) -> T:
        """Run an ANAF call with the connection's token; after an ANAF 401/403 ask auth to refresh once."""
        try:
            tok = await self.tokens.token(connection_id)
        except (AuthReauth, NoConnection) as e:
            await self._pause_connection(connection_id, f"auth: {type(e).__name__}")
            raise SyncPaused("the connection needs a new ANAF authorization") from e
        try:
            return await call(tok.token)
        except Unauthorized:
            try:
                tok = await self.tokens.refresh(connection_id)
            except (AuthReauth, NoConnection) as e:
                await self._pause_connection(connection_id, f"auth: {type(e).__name__}")
                raise SyncPaused("the connection needs a new ANAF authorization") from e
            return await call(tok.token)

    # -- one company -------------------------------------------------------------------------------
    async def sync_company(self, cif: str) -> SyncReport:
        """List the window page by page into the ledger, then download what is not archived yet."""
        report = SyncReport(cif)
        now = self.clock.now()
        async with self.uow() as uow:
            row = (await uow.session.execute(select(companies).where(companies.c.cif == cif))).mappings().first()
            if row is None:
                raise SyncPaused(f"unknown company {cif}")
            await uow.session.execute(update(companies).where(companies.c.cif == cif).values(
                last_started_at=now, sync_requested=False,
                first_sync_started_at=func.coalesce(companies.c.first_sync_started_at, now)))
            await uow.commit()
        connection_id = await self._connection_for(cif)
        full = row["last_reconciled_at"] is None or \
            (now - row["last_reconciled_at"]).total_seconds() >= self.settings.reconcile_interval_seconds
        window = domain.list_window(
            now, row["watermark"], start_margin=timedelta(seconds=self.settings.window_start_margin_seconds),
            end_margin=timedelta(seconds=self.settings.window_end_margin_seconds),
            overlap=timedelta(seconds=self.settings.overlap_seconds), full=full)
        report.window_start, report.window_end = window.start, window.end
        report.first_sync, report.full = window.first_sync, window.full
        try:
            await self._list_window(cif, connection_id, window, report)
        except LimitReached as e:
            await self._quota(e, cif=cif, message_id=None)
            async with self.uow() as uow:
                await uow.session.execute(update(companies).where(companies.c.cif == cif).values(
                    blocked_until=resets_at_of(e, now), last_error=f"quota: {e.text}"[:1000],
                    last_error_at=now))
                await uow.commit()
            raise
        # The whole window is listed: advance the watermark now (downloads are tracked per message).
        async with self.uow() as uow:
            await uow.session.execute(update(companies).where(companies.c.cif == cif).values(
                watermark=window.end, blocked_until=None,
                first_sync_completed_at=func.coalesce(companies.c.first_sync_completed_at, now)))
            await uow.commit()
        async with self._company_slots:
            await self._download_pending(cif, connection_id, report)
        await self._finish(cif, report)
        return report

    async def _list_window(self, cif: str, connection_id: str, window: domain.Window, report: SyncReport) -> None:
        page, pages = 1, 1
        while page <= pages:
            lp = await self._with_token(connection_id, lambda tok, p=page: self.anaf.list_page(
                tok, cif, window.start, window.end, p))
            pages = lp.total_pages
            await self._record_listed(cif, lp.messages, report)
            page += 1

    async def _record_listed(self, cif: str, items: list[dict[str, Any]], report: SyncReport) -> None:
        if not items:
            return
        now = self.clock.now()
        rows: dict[str, dict[str, Any]] = {}
        for m in items:
            mid = str(m.get("id") or "").strip()
            if not mid.isdigit():
                log.warning("list item without a usable id", cif=cif, item=str(m)[:200])
                continue
            owner = domain.normalize_cif(str(m.get("cif") or cif))
            if owner and owner != cif:
                continue  # downloadable by another CIF (ANAF lists per CIF; Odoo filters the same way)
            try:
                listed = domain.parse_data_creare(str(m.get("data_creare")))
            except ValueError:
                listed = now
            tip = str(m.get("tip") or "")
            rows[mid] = {"cif": cif, "message_id": mid, "tip": tip[:80], "kind": domain.kind_of(tip).value,
                         "upload_index": str(m.get("id_solicitare") or "") or None,
                         "detalii": str(m.get("detalii") or "")[:2000], "listed_at": listed,
                         "purge_at": domain.purge_at(listed), "first_seen_at": now, "last_seen_at": now,
                         "state": domain.MessageState.LISTED.value}
        if not rows:
            return
        report.listed += len(rows)
        report.listed_ids.update(rows)
        params = {name: [r[name] for r in rows.values()] for name in _LISTED}  # ids are unique: rows is keyed by id
        async with self.uow() as uow:
            res = await uow.session.execute(_listed_upsert(uow.session.get_bind().dialect), params)
            report.new_messages += sum(1 for r in res if r[0])
            await uow.commit()

    async def _pending_batch(self, cif: str, exclude: set[str], limit: int = 200) -> list[dict[str, Any]]:
        now = self.clock.now()
        urgent_before = now + timedelta(days=self.settings.urgent_days)
        async with self.uow() as uow:
            q = (select(messages).where(
                messages.c.cif == cif, messages.c.state.in_(["listed", "failed"]),
                or_(messages.c.next_attempt_at.is_(None), messages.c.next_attempt_at <= now))
                # close to purge first (soonest first), then the freshest
                .order_by(text("(purge_at <= :ub) DESC, CASE WHEN purge_at <= :ub THEN purge_at END ASC, "
                               "listed_at DESC"))
                .limit(limit))
            rows = [dict(r) for r in (await uow.session.execute(q, {"ub": urgent_before})).mappings().all()
                    if r["message_id"] not in exclude][:limit]
            # Mark the downloads as started before any of them goes out: a later run knows which messages may
            # already have their ZIP archived (this run dying between the blob and the row) and only those pay
            # for a blob lookup first. Rows keep the previous value, which is what _download_one looks at.
            fresh = [r["message_id"] for r in rows if r["download_started_at"] is None]
            if fresh:
                await uow.session.execute(update(messages).where(
                    messages.c.cif == cif, messages.c.message_id.in_(fresh)).values(download_started_at=now))
                await uow.commit()
        return rows

    async def _download_pending(self, cif: str, connection_id: str, report: SyncReport) -> None:
        sem = asyncio.Semaphore(self.settings.downloads_per_company)
        tried: set[str] = set()
        stop = asyncio.Event()

        async def one(msg: dict[str, Any], cid: str) -> None:
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
                connection_id = await self._connection_for(cif)
            first = False
            tried.update(m["message_id"] for m in batch)
            results = await asyncio.gather(*(one(m, connection_id) for m in batch), return_exceptions=True)
            for r in results:
                if isinstance(r, SyncPaused):
                    raise r
                if isinstance(r, BaseException):
                    raise r

    async def download_one(self, cif: str, connection_id: str, msg: dict[str, Any]) -> str:
        """Download, archive and parse one message; returns archived | lost | failed | quota | paused.
        One span per message: the ANAF call, the outbox row and every consumer of its event share its trace."""
        with tracer("spvhub.efactura").start_as_current_span(
                "efactura archive-message", attributes={"efactura.cif": cif,
                                                        "efactura.message_id": str(msg["message_id"])}) as span:
            outcome = await self._download_one(cif, connection_id, msg)
            span.set_attribute("efactura.outcome", outcome)
            return outcome

    async def _download_one(self, cif: str, connection_id: str, msg: dict[str, Any]) -> str:
        mid = msg["message_id"]
        now = self.clock.now()
        # A previous run may have archived the ZIP and died before its row committed: reuse it rather than
        # spend one of the message's 10 daily downloads again (only a message whose download started before can).
        if msg.get("download_started_at") is not None:
            try:
                zip_key = f"{blob_prefix(cif, mid)}/{mid}.zip"
                if await self.blobs.stat(zip_key) is not None:
                    await self.archive(cif, msg, await self.blobs.get(zip_key), stored=True)
                    return "archived"
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - fall back to downloading
                log.warning("reusing an archived ZIP failed", cif=cif, message_id=mid)
        try:
            data = await self._with_token(connection_id, lambda tok: self.anaf.download(tok, mid))
        except SyncPaused:
            raise
        except MessageExpired as e:
            await self._mark_lost(cif, msg, e.text)
            return "lost"
        except LimitReached as e:
            # ANAF (or our budget) says this message is spent for today: wait for the reset, never loop.
            at = resets_at_of(e, now)
            await self._quota(e, cif=cif, message_id=mid)
            await self._mark_failed(cif, msg, f"quota: {e.text}", at, count=True)
            return "quota"
        except (NotFound, NoRights, AnafError, AuthUnavailable) as e:
            text_ = getattr(e, "text", None) or str(e)
            if now >= msg["purge_at"]:
                await self._mark_lost(cif, msg, f"purged before download; last error: {text_}")
                return "lost"
            delay = domain.retry_delay(msg["attempts"] + 1, self.settings.retry_base_seconds,
                                       self.settings.retry_max_seconds)
            await self._mark_failed(cif, msg, f"{type(e).__name__}: {text_}", now + timedelta(seconds=delay))
            return "failed"
        try:
            await self.archive(cif, msg, data)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - blob store or database trouble: retry this message later
            log.exception("archiving failed", cif=cif, message_id=mid)
            delay = domain.retry_delay(msg["attempts"] + 1, self.settings.retry_base_seconds,
                                       self.settings.retry_max_seconds)
            await self._mark_failed(cif, msg, f"archive: {type(e).__name__}: {str(e)[:300]}",
                                    self.clock.now() + timedelta(seconds=delay))
            return "failed"
        return "archived"

    async def _mark_failed(self, cif: str, msg: dict[str, Any], error: str, next_at: datetime,
                           count: bool = True) -> None:
        async with self.uow() as uow:
            await uow.session.execute(update(messages).where(
                messages.c.cif == cif, messages.c.message_id == msg["message_id"],
                messages.c.state.in_(["listed", "failed"])).values(
                state="failed", attempts=messages.c.attempts + (1 if count else 0), last_attempt_at=self.clock.now(),
                next_attempt_at=next_at, last_error=error[:1000]))
            await uow.commit()

    async def _mark_lost(self, cif: str, msg: dict[str, Any], reason: str) -> None:
        async with self.uow() as uow:
            res = await uow.session.execute(update(messages).where(
                messages.c.cif == cif, messages.c.message_id == msg["message_id"],
                messages.c.state.in_(["listed", "failed"])).values(
                state="lost", lost_reason=reason[:1000], attempts=messages.c.attempts + 1,
                last_attempt_at=self.clock.now(), next_attempt_at=None))
            if res.rowcount:
                uow.publish(MessageLost(cif=cif, message_id=msg["message_id"], reason=reason[:1000],
                                        listed_at=msg["listed_at"]))
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
            res = await uow.session.execute(insert(quota_ledger).values(
                kind=str(kind)[:64], scope_key=str(scope_key)[:64], resets_at=at, text=err.text[:1000])
                .on_conflict_do_nothing().returning(quota_ledger.c.kind))
            if res.first() is not None:
                uow.publish(QuotaExhausted(kind=str(kind), scope_key=str(scope_key), resets_at=at, cif=cif,
                                           message_id=message_id, anaf_text=err.text[:500]))
            await uow.commit()

    # -- archive -----------------------------------------------------------------------------------
    async def archive(self, cif: str, msg: dict[str, Any], data: bytes, *, reprocess: bool = False,
                      stored: bool = False) -> bool:
        """Blob first (Object Lock), then the ledger transition + invoice row + events in one transaction.
        Returns True when this call made the transition (so events are published exactly once)."""
        mid = msg["message_id"]
        prefix = blob_prefix(cif, mid)
        # Retention is legal time in the real world (the object store's clock), never the simulated ANAF clock.
        retain = datetime.now(UTC) + timedelta(days=self.settings.retention_days)
        zip_key = f"{prefix}/{mid}.zip"
        if not (reprocess or stored):
            try:
                await self.blobs.put(zip_key, data, "application/zip", retain_until=retain)
            except RetentionConflict:
                data = await self.blobs.get(zip_key)  # the archive never changes: keep the first original
        processed = await self._parser.submit((data, msg.get("listed_at")))
        # The signed ZIP is the archive: it holds the invoice XML and ANAF's signature XML, and the API serves the
        # XML from it. One object per message keeps the archive at one (conditional) PUT per invoice.
        keys = {"zip": zip_key}
        return await self._commit_archive(cif, msg, data, processed, keys, reprocess)

    async def _process_batch(self, items: list[tuple[bytes, datetime | None]]) -> list[Processed]:
        return await self.run_cpu(process_many, [d for d, _ in items], self.limits,
                                  self.settings.trusted_signers, True, False, [at for _, at in items])

    async def _commit_archive(self, cif: str, msg: dict[str, Any], data: bytes, p: Processed,
                              keys: dict[str, str], reprocess: bool) -> bool:
        item = _ArchiveItem(cif, msg["message_id"], hashlib.sha256(data).hexdigest(), len(data), p, keys,
                            current_traceparent())
        if reprocess:
            return (await self._commit_archives([item], reprocess=True))[0]
        # Concurrent downloads share transactions (group commit): one ledger UPDATE, one invoice INSERT and one
        # outbox INSERT for the whole batch.
        return await self._committer.submit(item)

    async def _commit_archives(self, items: list[_ArchiveItem], reprocess: bool = False) -> list[bool]:
        """The ledger transitions + invoice rows + events of archived messages, in one transaction. Returns, per
        item, whether this call made the transition (so events are published exactly once).

        A value the database refuses (one _fit did not foresee) must not hold back the batch, nor leave its own
        message to be downloaded again and again: the batch is retried one by one, and the refused document is
        stored with its parsed fields left empty and the database's reason as its problem."""
        try:
            return await self._commit_archives_once(items, reprocess)
        except DBAPIError as e:
            reason = _data_error(e)
            if reason is None:
                raise
            if len(items) > 1:
                return [done for it in items for done in await self._commit_archives([it], reprocess)]
            it = items[0]
            if it.bare is not None or it.processed.parsed is None:
                raise
            log.warning("parsed row refused by the database; storing it bare", cif=it.cif,
                        message_id=it.message_id, reason=reason)
            it.bare = reason
            return await self._commit_archives_once(items, reprocess)

    async def _commit_archives_once(self, items: list[_ArchiveItem], reprocess: bool = False) -> list[bool]:
        now = self.clock.now()
        cols: dict[str, list[Any]] = {k: [] for k in (
            "cif", "mid", "zip_key", "sha", "size", "parse_status", "parse_error", "flagged", "sig_status",
            "sig_detail", "signer_subject", "signer_sha", "sig_shape", "signer_serial", "signer_trusted", "problem")}
        for it in items:
            sig = it.processed.signature
            for k, v in (("cif", it.cif), ("mid", it.message_id), ("zip_key", it.keys["zip"]), ("sha", it.sha256),
                         ("size", it.size), ("parse_status", it.processed.status),
                         ("parse_error", it.processed.error), ("flagged", it.processed.status != "ok"),
                         ("sig_status", sig.status if sig else None),
                         ("sig_detail", sig.detail[:1000] if sig and sig.detail else None),
                         ("signer_subject", sig.signer_subject if sig else None),
                         ("signer_sha", sig.signer_sha256 if sig else None),
                         ("sig_shape", sig.shape if sig else None),
                         ("signer_serial", (sig.signer_serial or "")[:64] or None if sig else None),
                         ("signer_trusted", sig.trusted if sig else None),
                         ("problem", _archive_problem(it.processed))):
                cols[k].append(v)
        async with self.uow() as uow:
            res = await uow.session.execute(text(f"""
                UPDATE messages m SET state = 'archived', archived_at = COALESCE(m.archived_at, :now),
                    attempts = m.attempts + :inc, last_attempt_at = :now, next_attempt_at = NULL,
                    last_error = NULL, zip_key = v.zip_key, zip_sha256 = v.sha, zip_size = v.size,
                    parse_status = v.parse_status, parse_error = v.parse_error, needs_reprocess = v.flagged,
                    signature_status = v.sig_status, signature_detail = v.sig_detail,
                    signer_subject = v.signer_subject, signer_sha256 = v.signer_sha, signature_shape = v.sig_shape,
                    signer_serial = v.signer_serial, signer_trusted = v.signer_trusted, problem = v.problem
                FROM unnest(CAST(:cif AS text[]), CAST(:mid AS text[]), CAST(:zip_key AS text[]),
                            CAST(:sha AS text[]), CAST(:size AS integer[]), CAST(:parse_status AS text[]),
                            CAST(:parse_error AS text[]), CAST(:flagged AS boolean[]), CAST(:sig_status AS text[]),
                            CAST(:sig_detail AS text[]), CAST(:signer_subject AS text[]),
                            CAST(:signer_sha AS text[]), CAST(:sig_shape AS text[]), CAST(:signer_serial AS text[]),
                            CAST(:signer_trusted AS boolean[]), CAST(:problem AS text[]))
                     AS v(cif, mid, zip_key, sha, size, parse_status, parse_error, flagged, sig_status,
                          sig_detail, signer_subject, signer_sha, sig_shape, signer_serial, signer_trusted, problem)
                WHERE m.cif = v.cif AND m.message_id = v.mid
                  AND {"m.needs_reprocess" if reprocess else "m.state <> 'archived'"}
                RETURNING m.cif, m.message_id, m.tip, m.listed_at, m.upload_index, m.detalii"""),
                {"now": now, "inc": 0 if reprocess else 1, **cols})
            made = {(r.cif, r.message_id): r for r in res}
            done: list[bool] = []
            rows: list[dict[str, Any]] = []
            pending: list[tuple[_ArchiveItem, Document | ErrorReport | BuyerMessage, dict[str, Any]]] = []
            unstored: dict[tuple[str, str], str] = {}
            for it in items:
                row = made.pop((it.cif, it.message_id), None)  # a duplicate item in the batch: the first wins
                done.append(row is not None)
                if row is None:
                    continue  # someone else (another replica, an earlier run) archived it already
                p = it.processed
                sig = p.signature
                if p.status != "ok":
                    self._flag(uow, it, p.status, p.error or "")
                elif sig is not None and sig.status != "valid":
                    self._flag(uow, it, "signature_" + sig.status, sig.detail)
                if p.parsed is not None:
                    values = self._invoice_values(it, row)
                    if values.get("problem"):
                        # kept, with the fields it names left empty: a document is never refused for its values
                        self._flag(uow, it, "fields_not_stored", values["problem"])
                        unstored[(it.cif, it.message_id)] = values["problem"]
                    rows.append(values)
                    pending.append((it, p.parsed, values))
            if rows:
                await self._insert_documents(uow, rows, pending)
            if unstored:
                await uow.session.execute(text(
                    "UPDATE messages m SET problem = concat_ws('; ', m.problem, 'fields_not_stored: ' || v.problem) "
                    "FROM unnest(CAST(:cif AS text[]), CAST(:mid AS text[]), CAST(:problem AS text[])) "
                    "AS v(cif, mid, problem) WHERE m.cif = v.cif AND m.message_id = v.mid"),
                    {"cif": [k[0] for k in unstored], "mid": [k[1] for k in unstored],
                     "problem": list(unstored.values())})
            await uow.commit()
        return done

    @staticmethod
    def _flag(uow: SqlUnitOfWork, it: _ArchiveItem, problem: str, detail: str) -> None:
        """An archived document someone should look at: told once, with the message's trace."""
        uow.publish(DocumentFlagged(cif=it.cif, message_id=it.message_id, problem=problem, detail=detail[:500],
                                    blob_keys=it.keys), traceparent=it.traceparent)
        log.warning("archived document flagged", cif=it.cif, message_id=it.message_id, problem=problem,
                    detail=detail[:200])

    def _invoice_values(self, it: _ArchiveItem, row: Any) -> dict[str, Any]:
        """The invoices row of one archived, parsed message."""
        cif, mid, p, keys = it.cif, it.message_id, it.processed, it.keys
        tip, listed_at, upload_index, detalii = row.tip, row.listed_at, row.upload_index, row.detalii
        kind = domain.kind_of(tip)
        doc = p.parsed
        base: dict[str, Any] = {"cif": cif, "message_id": mid, "message_type": tip, "listed_at": listed_at,
                                "upload_index": upload_index, "zip_key": keys["zip"], "xml_key": keys.get("xml"),
                                "signature_status": p.signature.status if p.signature else None}
        if isinstance(doc, Document):
            parties = domain.parse_detalii(detalii or "")
            direction = domain.direction_for(cif, kind, parties.seller or doc.seller.cif,
                                             parties.buyer or doc.buyer.cif)
            partner = doc.seller if direction == "received" else doc.buyer
            base.update(
                direction=direction, document_type=doc.document_type, type_code=doc.type_code, number=doc.number,
                issue_date=doc.issue_date, due_date=doc.due_date, currency=doc.currency,
                tax_currency=doc.tax_currency,
                seller_cif=(doc.seller.cif or parties.seller), seller_name=doc.seller.name,
                buyer_cif=(doc.buyer.cif or parties.buyer), buyer_name=doc.buyer.name,
                partner_cif=partner.cif or (parties.seller if direction == "received" else parties.buyer),
                partner_name=partner.name, self_billing=doc.self_billing or parties.self_billing,
                net_amount=_money(doc.tax_exclusive if doc.tax_exclusive is not None else doc.line_extension),
                vat_amount=_money(doc.vat_amount), total_amount=_money(doc.tax_inclusive),
                payable_amount=_money(doc.payable),
                vat_breakdown=_jsonable([v.__dict__ for v in doc.vat_breakdown]),
                details=_jsonable({"seller": doc.seller.__dict__, "buyer": doc.buyer.__dict__, "notes": doc.notes,
                                   "customization": doc.customization, "lines": doc.line_count,
                                   "vat_amount_accounting": doc.vat_amount_accounting,
                                   "signature": p.signature.__dict__ if p.signature else None}),
                preceding_number=doc.preceding_number)
        elif isinstance(doc, ErrorReport):
            base.update(direction="sent", document_type="error_report", upload_index=doc.upload_index or upload_index,
                        seller_cif=doc.issuer_cif, details=_jsonable({"errors": doc.errors}))
        elif isinstance(doc, BuyerMessage):
            parties = domain.parse_detalii(detalii or "")
            direction = "received" if "PRIMIT" in (tip or "").upper() else "sent"
            base.update(direction=direction, document_type="buyer_message",
                        details=_jsonable({"message": doc.message, "invoice_upload_index": doc.upload_index}),
                        partner_cif=parties.seller if direction == "received" else parties.buyer)
        problems = list(p.problems) + _fit(base)
        if it.bare is not None:
            kept = {"cif", "message_id", "message_type", "listed_at", "upload_index", "zip_key", "xml_key",
                    "signature_status", "direction", "document_type"}
            for k in base:
                if k not in kept:
                    base[k] = False if k == "self_billing" else None
            problems = [f"parsed fields not stored, the database refused them: {it.bare}"]
        base["problem"] = "; ".join(problems)[:2000] if problems else None
        return base

    async def _insert_documents(self, uow: SqlUnitOfWork, rows: list[dict[str, Any]],
                                pending: list[tuple[_ArchiveItem, Any, dict[str, Any]]]) -> None:
        """One INSERT for the batch's documents, then an event for each document inserted now."""
        stmt, columns = _invoice_insert(uow.session.get_bind().dialect)
        params: dict[str, list[Any]] = {}
        for name, default, process in columns:
            values = [r.get(name, default) for r in rows]
            params[name] = [process(v) for v in values] if process is not None else values
        res = await uow.session.execute(stmt, params)
        ids = {(r.cif, r.message_id): r.id for r in res}
        submitted = await self._submissions_of(uow, [(it.cif, base["upload_index"]) for it, doc, base in pending
                                                     if isinstance(doc, ErrorReport) and base["upload_index"]])
        for it, doc, base in pending:
            new_id = ids.get((it.cif, it.message_id))
            if new_id is None:
                continue
            event: Event | None = None
            sig_status = base["signature_status"]
            if isinstance(doc, Document):
                event = InvoiceDownloaded(
                    cif=it.cif, message_id=it.message_id, direction=base["direction"],
                    document_type=doc.document_type, number=doc.number, issue_date=doc.issue_date,
                    partner_cif=base["partner_cif"], partner_name=base["partner_name"], currency=base["currency"],
                    total_amount=base["total_amount"], blob_keys=it.keys, invoice_id=new_id,
                    type_code=doc.type_code, due_date=doc.due_date, seller_cif=base["seller_cif"],
                    buyer_cif=base["buyer_cif"], self_billing=base["self_billing"], net_amount=base["net_amount"],
                    vat_amount=base["vat_amount"], upload_index=base["upload_index"],
                    listed_at=base["listed_at"], message_type=base["message_type"],
                    signature_valid=(sig_status == "valid") if sig_status else None)
            elif isinstance(doc, ErrorReport):
                event = InvoiceErrorReceived(cif=it.cif, message_id=it.message_id, upload_index=base["upload_index"],
                                             errors=doc.errors[:50], listed_at=base["listed_at"], blob_keys=it.keys,
                                             submission_id=submitted.get((it.cif, base["upload_index"])))
            if event is not None:
                uow.publish(event, traceparent=it.traceparent)

    @staticmethod
    async def _submissions_of(uow: SqlUnitOfWork, uploads: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The spvhub submissions behind these (cif, upload index) pairs: error reports that answer them are
        explained by the submission's own rejection event."""
        if not uploads:
            return {}
        rows = await uow.session.execute(text(
            "SELECT s.cif, s.anaf_index, s.id FROM submissions s JOIN unnest(CAST(:cifs AS text[]), "
            "CAST(:idx AS text[])) AS u(cif, idx) ON s.cif = u.cif AND s.anaf_index = u.idx"),
            {"cifs": [c for c, _ in uploads], "idx": [i for _, i in uploads]})
        return {(r.cif, r.anaf_index): r.id for r in rows}

    # -- completion --------------------------------------------------------------------------------
    async def _finish(self, cif: str, report: SyncReport) -> None:
        now = self.clock.now()
        async with self.uow() as uow:
            counts = dict((await uow.session.execute(
                select(messages.c.state, func.count()).where(messages.c.cif == cif).group_by(messages.c.state)
            )).all())
            report.pending = int(counts.get("listed", 0)) + int(counts.get("failed", 0))
            values: dict[str, Any] = {"last_success_at": now, "last_error": None, "consecutive_failures": 0}
            if report.full:
                # Reconciliation: every id ANAF lists in its whole window is archived or recorded lost.
                missing = 0
                ids = list(report.listed_ids)
                for i in range(0, len(ids), 5000):
                    chunk = ids[i:i + 5000]
                    missing += int((await uow.session.execute(select(func.count()).where(
                        messages.c.cif == cif, messages.c.message_id.in_(chunk),
                        messages.c.state.in_(["listed", "failed"])))).scalar() or 0)
                report.complete = missing == 0
                values.update(last_reconciled_at=now, last_reconcile_complete=report.complete)
            await uow.session.execute(update(companies).where(companies.c.cif == cif).values(**values))
            await self._expiring(uow, cif, now)
            uow.publish(SyncCompleted(
                cif=cif, new_messages=report.new_messages, window_start=report.window_start or now,
                window_end=report.window_end or now, first_sync=report.first_sync, archived=report.archived,
                pending=report.pending, lost=report.lost, reconciliation=report.full, complete=report.complete))
            await uow.commit()

    async def _expiring(self, uow: SqlUnitOfWork, cif: str, now: datetime) -> None:
        horizon = now + timedelta(days=self.settings.expiring_days)
        rows = (await uow.session.execute(
            update(messages).where(messages.c.cif == cif, messages.c.state.in_(["listed", "failed"]),
                                   messages.c.purge_at <= horizon, messages.c.expiring_notified_at.is_(None))
            .values(expiring_notified_at=now)
            .returning(messages.c.message_id, messages.c.purge_at, messages.c.last_error))).all()
        for mid, purge, err in rows:
            uow.publish(MessageExpiring(cif=cif, message_id=mid, purge_at=purge,
                                        days_left=domain.days_left(now, purge), last_error=err))

    async def expiry_scan(self) -> int:
        """Every company, also ones that cannot sync now (paused): raise message-expiring in time."""
        now = self.clock.now()
        async with self.uow() as uow:
            cifs = (await uow.session.execute(select(messages.c.cif).distinct().where(
                messages.c.state.in_(["listed", "failed"]),
                messages.c.purge_at <= now + timedelta(days=self.settings.expiring_days),
                messages.c.expiring_notified_at.is_(None)))).scalars().all()
            for cif in cifs:
                await self._expiring(uow, cif, now)
            await uow.commit()
        return len(cifs)

    async def reprocess(self, cif: str) -> int:
        """Re-parse archived documents flagged for reprocessing from the stored ZIP (e.g. after a parser fix)."""
        async with self.uow() as uow:
            rows = (await uow.session.execute(select(messages).where(
                messages.c.cif == cif, messages.c.needs_reprocess, messages.c.state == "archived"))).mappings().all()
        done = 0
        for r in rows:
            data = await self.blobs.get(r["zip_key"])
            if await self.archive(cif, dict(r), data, reprocess=True):
                done += 1
        return done


# --------------------------------------------------------------------------------------------------
# Routing table: event -> handler (consumer group efactura.read-models)

EVENT_ROUTES: dict[type[Event], Callable[[Any, Any, SqlUnitOfWork], Awaitable[None]]] = {
    EntitlementsChanged: on_entitlements_changed,
    ReauthorizationRequired: on_reauthorization_required,
    ConnectionRevoked: on_connection_revoked,
    TokenRefreshed: on_token_refreshed,
    ConnectionAuthorized: on_connection_authorized,
}


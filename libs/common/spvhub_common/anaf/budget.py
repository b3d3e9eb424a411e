"""The one ANAF call budget shared by every service, replica and tenant (architecture invariant 4).

`AnafBudget` is the port; `InMemoryBudget` (tests, one process) and `PostgresBudget` (fixed windows and
daily counters in schema `anaf_budget`, correct across processes) implement it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import Counter, Gauge

from .clock import Clock, SystemClock, local_date, local_midnight, next_local_midnight
from .errors import BudgetExhausted

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

_log = logging.getLogger(__name__)

BUDGET_REMAINING = Gauge(
    "anaf_budget_remaining",
    "Calls left in the current ANAF budget window (window kinds) or day (last daily key touched)",
    ["kind"],
)
BUDGET_EXHAUSTED = Counter(
    "anaf_budget_exhausted_total", "Calls refused by the shared budget before reaching ANAF", ["kind"]
)


class BudgetKind(StrEnum):
    """What a call spends. Window kinds are shared rate windows; the others add a daily cap per key."""

    API = "api"  # every call to api.anaf.ro: 1000/minute
    PUBLIC = "public"  # webservicesp.anaf.ro public services: 1 request/second
    OAUTH = "oauth"  # logincert token endpoint: no published limit
    EF_LIST = "efactura.lista_mesaje"  # key = CIF, 1500/day
    EF_LIST_PAGED = "efactura.lista_paginatie"  # key = CIF, 100 000/day
    EF_DOWNLOAD = "efactura.descarcare"  # key = message id, 10/day
    EF_STATE = "efactura.stare_mesaj"  # key = upload index, 100/day
    EF_UPLOAD = "efactura.upload"  # invoices: no daily cap
    EF_UPLOAD_RASP = "efactura.upload_rasp"  # key = CIF, 1000/day
    EF_VALIDATE = "efactura.validare"  # validare/transformare via api.anaf.ro
    ET_LIST = "etransport.lista"  # key = CIF, 1000/day
    ET_STATE = "etransport.stare"  # key = upload index, 100/day
    ET_INFO = "etransport.info"  # no documented daily cap
    ET_UPLOAD = "etransport.upload"


WINDOW_KINDS = frozenset({BudgetKind.API.value, BudgetKind.PUBLIC.value, BudgetKind.OAUTH.value})

DEFAULT_DAILY: dict[str, int] = {
    BudgetKind.EF_LIST: 1500,
    BudgetKind.EF_LIST_PAGED: 100_000,
    BudgetKind.EF_DOWNLOAD: 10,
    BudgetKind.EF_STATE: 100,
    BudgetKind.EF_UPLOAD_RASP: 1000,
    BudgetKind.ET_LIST: 1000,
    BudgetKind.ET_STATE: 100,
}


@dataclass(frozen=True)
class Window:
    """A fixed rate window: at most `limit` calls per `seconds`."""

    limit: int
    seconds: float


@dataclass(frozen=True)
class BudgetLimits:
    """Configured limits. `per_minute` keeps a safety margin under ANAF's 1000/min; `daily` overrides DEFAULT_DAILY."""

    per_minute: int = 950
    minute_seconds: float = 60.0
    public_per_second: int = 1
    public_seconds: float = 1.0
    oauth_per_minute: int | None = None
    # Overrides of DEFAULT_DAILY per kind; None removes a cap.
    daily: dict[str, int | None] = field(default_factory=dict)

    def window_kind(self, kind: str) -> str | None:
        """The rate window a kind spends from (None: unlimited)."""
        if kind == BudgetKind.PUBLIC:
            return BudgetKind.PUBLIC.value
        if kind == BudgetKind.OAUTH:
            return BudgetKind.OAUTH.value if self.oauth_per_minute else None
        return BudgetKind.API.value

    def window(self, window_kind: str) -> Window | None:
        if window_kind == BudgetKind.API:
            return Window(self.per_minute, self.minute_seconds)
        if window_kind == BudgetKind.PUBLIC:
            return Window(self.public_per_second, self.public_seconds)
        if window_kind == BudgetKind.OAUTH and self.oauth_per_minute:
            return Window(self.oauth_per_minute, 60.0)
        return None

    def daily_cap(self, kind: str) -> int | None:
        if kind in self.daily:
            return self.daily[kind]
        return DEFAULT_DAILY.get(kind)


@runtime_checkable
class AnafBudget(Protocol):
    """The port every ANAF call goes through.

    `acquire` spends one call of `kind` (and its daily cap for `key`): it waits for a free slot in the
    per-minute/per-second window, and raises `BudgetExhausted` at once when a daily cap is spent.
    `mark_exhausted` records a limit ANAF itself reported so every replica stops until `resets_at`
    (default: next midnight Europe/Bucharest for daily kinds, the end of the window otherwise).
    """

    async def acquire(self, kind: str, key: str | None = None) -> None: ...

    async def mark_exhausted(self, kind: str, key: str | None = None, resets_at: datetime | None = None) -> None: ...

    async def remaining(self, kind: str, key: str | None = None) -> int | None: ...


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _window_start_ms(now: datetime, w: Window) -> int:
    width = int(w.seconds * 1000)
    return (_ms(now) // width) * width


class _BudgetBase:
    """Shared policy: which counters a kind spends, reset times, metrics; storage is in subclasses."""

    def __init__(self, limits: BudgetLimits | None = None, clock: Clock | None = None) -> None:
        self.limits = limits or BudgetLimits()
        self.clock: Clock = clock or SystemClock()

    # storage primitives ------------------------------------------------------------------------
    async def _incr_window(self, kind: str, key: str, start_ms: int, limit: int) -> int | None:
        raise NotImplementedError

    async def _incr_daily(self, kind: str, key: str, day: date, limit: int) -> int | None:
        raise NotImplementedError

    async def _fill_windows(self, kind: str, key: str, starts: list[int], limit: int) -> None:
        raise NotImplementedError

    async def _fill_daily(self, kind: str, key: str, days: list[date], limit: int) -> None:
        raise NotImplementedError

    async def _get_window(self, kind: str, key: str, start_ms: int) -> int:
        raise NotImplementedError

    async def _get_daily(self, kind: str, key: str, day: date) -> int:
        raise NotImplementedError

    async def _maybe_prune(self) -> None:
        return None

    # port --------------------------------------------------------------------------------------
    async def acquire(self, kind: str, key: str | None = None) -> None:
        kind = str(kind)
        k = key or ""
        cap = self.limits.daily_cap(kind)
        if cap is not None:
            now = self.clock.now()
            n = await self._incr_daily(kind, k, local_date(now), cap)
            if n is None:
                BUDGET_EXHAUSTED.labels(kind=kind).inc()
                raise BudgetExhausted(kind, key, next_local_midnight(now))
            BUDGET_REMAINING.labels(kind=kind).set(cap - n)
        wkind = self.limits.window_kind(kind)
        w = self.limits.window(wkind) if wkind else None
        if wkind is None or w is None:
            return
        while True:
            now = self.clock.now()
            start = _window_start_ms(now, w)
            n = await self._incr_window(wkind, "", start, w.limit)
            if n is not None:
                BUDGET_REMAINING.labels(kind=wkind).set(w.limit - n)
                await self._maybe_prune()
                return
            BUDGET_REMAINING.labels(kind=wkind).set(0)
            # Window full: wait for the next one (this waits for our own budget, it never calls ANAF).
            end = datetime.fromtimestamp((start + int(w.seconds * 1000)) / 1000, tz=UTC)
            await self.clock.sleep(max((end - now).total_seconds(), 0.001))

    async def mark_exhausted(self, kind: str, key: str | None = None, resets_at: datetime | None = None) -> None:
        kind = str(kind)
        now = self.clock.now()
        cap = self.limits.daily_cap(kind)
        if cap is not None:
            until = resets_at or next_local_midnight(now)
            days = [local_date(now)]
            # A reset announced beyond tonight blocks the following local days too.
            while local_midnight(days[-1] + timedelta(days=1)) < until and len(days) < 366:
                days.append(days[-1] + timedelta(days=1))
            await self._fill_daily(kind, key or "", days, cap)
            BUDGET_REMAINING.labels(kind=kind).set(0)
            return
        wkind = kind if kind in WINDOW_KINDS else self.limits.window_kind(kind)
        w = self.limits.window(wkind) if wkind else None
        if wkind is None or w is None:
            return
        width = int(w.seconds * 1000)
        first = _window_start_ms(now, w)
        last = first if resets_at is None else max(first, ((_ms(resets_at) - 1) // width) * width)
        starts = list(range(first, last + 1, width))[:100_000]
        await self._fill_windows(wkind, "", starts, w.limit)
        BUDGET_REMAINING.labels(kind=wkind).set(0)

    async def remaining(self, kind: str, key: str | None = None) -> int | None:
        """Calls left now: in the day for daily kinds (per `key`), in the window otherwise; None = unlimited."""
        kind = str(kind)
        now = self.clock.now()
        cap = self.limits.daily_cap(kind)
        if cap is not None:
            left = max(cap - await self._get_daily(kind, key or "", local_date(now)), 0)
            BUDGET_REMAINING.labels(kind=kind).set(left)
            return left
        wkind = kind if kind in WINDOW_KINDS else self.limits.window_kind(kind)
        w = self.limits.window(wkind) if wkind else None
        if wkind is None or w is None:
            return None
        left = max(w.limit - await self._get_window(wkind, "", _window_start_ms(now, w)), 0)
        BUDGET_REMAINING.labels(kind=wkind).set(left)
        return left


class InMemoryBudget(_BudgetBase):
    """Single-process budget for unit tests; same semantics as PostgresBudget."""

    def __init__(self, limits: BudgetLimits | None = None, clock: Clock | None = None) -> None:
        super().__init__(limits, clock)
        self._windows: dict[tuple[str, str, int], int] = {}
        self._daily: dict[tuple[str, str, date], int] = {}

    async def _incr_window(self, kind: str, key: str, start_ms: int, limit: int) -> int | None:
        k = (kind, key, start_ms)
        n = self._windows.get(k, 0)
        if n >= limit:
            return None
        self._windows[k] = n + 1
        return n + 1

    async def _incr_daily(self, kind: str, key: str, day: date, limit: int) -> int | None:
        k = (kind, key, day)
        n = self._daily.get(k, 0)
        if n >= limit:
            return None
        self._daily[k] = n + 1
        return n + 1

    async def _fill_windows(self, kind: str, key: str, starts: list[int], limit: int) -> None:
        for s in starts:
            self._windows[(kind, key, s)] = max(self._windows.get((kind, key, s), 0), limit)

    async def _fill_daily(self, kind: str, key: str, days: list[date], limit: int) -> None:
        for d in days:
            self._daily[(kind, key, d)] = max(self._daily.get((kind, key, d), 0), limit)

    async def _get_window(self, kind: str, key: str, start_ms: int) -> int:
        return self._windows.get((kind, key, start_ms), 0)

    async def _get_daily(self, kind: str, key: str, day: date) -> int:
        return self._daily.get((kind, key, day), 0)


SCHEMA = "anaf_budget"

_DDL = [
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.window_counter (
        kind text NOT NULL, key text NOT NULL, window_start_ms bigint NOT NULL, n integer NOT NULL,
        PRIMARY KEY (kind, key, window_start_ms))""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.daily_counter (
        kind text NOT NULL, key text NOT NULL, day date NOT NULL, n integer NOT NULL,
        PRIMARY KEY (kind, key, day))""",
]


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create schema `anaf_budget` and its tables if missing (safe to run from many processes at once)."""
    from sqlalchemy import text

    async with engine.begin() as conn:
        # Concurrent CREATE ... IF NOT EXISTS can still collide on the catalog: serialise it.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('spvhub.anaf_budget.ddl'))"))
        for stmt in _DDL:
            await conn.execute(text(stmt))


class PostgresBudget(_BudgetBase):
    """Budget in PostgreSQL: one atomic upsert per counter, so every process shares the same limits."""

    def __init__(
        self,
        engine: AsyncEngine,
        limits: BudgetLimits | None = None,
        clock: Clock | None = None,
        *,
        prune_every: timedelta = timedelta(minutes=5),
        keep_windows: timedelta = timedelta(hours=1),
        keep_days: int = 3,
    ) -> None:
        super().__init__(limits, clock)
        from sqlalchemy import text

        self._engine = engine
        self._text = text
        self._prune_every = prune_every
        self._keep_windows = keep_windows
        self._keep_days = keep_days
        self._last_prune: datetime | None = None

    async def _incr(self, table: str, bucket_column: str, kind: str, key: str, bucket: object,
                    limit: int) -> int | None:
        """Take one slot of a counter row in a single statement; None when the row is already at `limit`.
        `table` and `bucket_column` are this module's constants, never input."""
        stmt = self._text(
            f"""INSERT INTO {SCHEMA}.{table} AS c (kind, key, {bucket_column}, n)
                VALUES (:kind, :key, :bucket, 1)
                ON CONFLICT (kind, key, {bucket_column}) DO UPDATE SET n = c.n + 1 WHERE c.n < :limit
                RETURNING c.n"""
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt, {"kind": kind, "key": key, "bucket": bucket, "limit": limit})).first()
        # A limit of 0 must refuse even the first insert.
        if row is None or int(row[0]) > limit:
            return None
        return int(row[0])

    async def _incr_window(self, kind: str, key: str, start_ms: int, limit: int) -> int | None:
        return await self._incr("window_counter", "window_start_ms", kind, key, start_ms, limit)

    async def _incr_daily(self, kind: str, key: str, day: date, limit: int) -> int | None:
        return await self._incr("daily_counter", "day", kind, key, day, limit)

    async def _fill_windows(self, kind: str, key: str, starts: list[int], limit: int) -> None:
        if not starts:
            return
        stmt = self._text(
            f"""INSERT INTO {SCHEMA}.window_counter AS c (kind, key, window_start_ms, n)
                SELECT :kind, :key, s, :limit FROM unnest(CAST(:starts AS bigint[])) AS s
                ON CONFLICT (kind, key, window_start_ms) DO UPDATE SET n = GREATEST(c.n, EXCLUDED.n)"""
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt, {"kind": kind, "key": key, "starts": starts, "limit": limit})

    async def _fill_daily(self, kind: str, key: str, days: list[date], limit: int) -> None:
        stmt = self._text(
            f"""INSERT INTO {SCHEMA}.daily_counter AS c (kind, key, day, n)
                SELECT :kind, :key, d, :limit FROM unnest(CAST(:days AS date[])) AS d
                ON CONFLICT (kind, key, day) DO UPDATE SET n = GREATEST(c.n, EXCLUDED.n)"""
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt, {"kind": kind, "key": key, "days": days, "limit": limit})

    async def _get_window(self, kind: str, key: str, start_ms: int) -> int:
        stmt = self._text(
            f"SELECT n FROM {SCHEMA}.window_counter WHERE kind = :kind AND key = :key AND window_start_ms = :start"
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt, {"kind": kind, "key": key, "start": start_ms})).first()
        return int(row[0]) if row else 0

    async def _get_daily(self, kind: str, key: str, day: date) -> int:
        stmt = self._text(f"SELECT n FROM {SCHEMA}.daily_counter WHERE kind = :kind AND key = :key AND day = :day")
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt, {"kind": kind, "key": key, "day": day})).first()
        return int(row[0]) if row else 0

    async def _maybe_prune(self) -> None:
        now = self.clock.now()
        if self._last_prune is not None and now - self._last_prune < self._prune_every:
            return
        self._last_prune = now
        try:
            await self.prune()
        except Exception:  # pruning is housekeeping; never fail a call because of it
            _log.warning("anaf budget prune failed", exc_info=True)

    async def prune(self) -> None:
        """Delete windows older than `keep_windows` and daily counters older than `keep_days`."""
        now = self.clock.now()
        async with self._engine.begin() as conn:
            await conn.execute(
                self._text(f"DELETE FROM {SCHEMA}.window_counter WHERE window_start_ms < :cut"),
                {"cut": _ms(now - self._keep_windows)},
            )
            await conn.execute(
                self._text(f"DELETE FROM {SCHEMA}.daily_counter WHERE day < :cut"),
                {"cut": local_date(now) - timedelta(days=self._keep_days)},
            )

"""The one ANAF call budget shared by every service, replica and tenant (architecture invariant 4).

`AnafBudget` is the port; `InMemoryBudget` (tests, one process) and `PostgresBudget` (fixed windows and
daily counters in schema `anaf_budget`, correct across processes) implement it. Calls have a `Priority`:
bulk calls leave `BudgetLimits.interactive_reserve` calls of every api.anaf.ro window to interactive ones.
PostgresBudget serves the concurrent calls of a process together, one statement per flush (group commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as CounterDict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from prometheus_client import Counter, Gauge

from spvhub_common.clock import Clock, SystemClock, local_date, local_midnight, next_local_midnight

from ..telemetry import children
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
_REMAINING_OF = children(BUDGET_REMAINING)  # (kind,)


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


class Priority(StrEnum):
    """Who waits for a call. Interactive calls (a person is waiting) may use the interactive reserve of the
    api.anaf.ro window; bulk calls (syncs, background jobs) stop short of it."""

    BULK = "bulk"
    INTERACTIVE = "interactive"


@dataclass(frozen=True)
class Window:
    """A fixed rate window: at most `limit` calls per `seconds`; bulk calls stop at `limit - reserve`."""

    limit: int
    seconds: float
    reserve: int = 0

    def limit_for(self, priority: Priority) -> int:
        """How full a call of `priority` may find the window and still take a slot."""
        return self.limit if priority == Priority.INTERACTIVE else max(self.limit - self.reserve, 0)


@dataclass(frozen=True)
class BudgetLimits:
    """Configured limits. `per_minute` keeps a safety margin under ANAF's 1000/min; `daily` overrides DEFAULT_DAILY.

    `interactive_reserve` calls of every api.anaf.ro window are kept for interactive calls: bulk calls may fill
    the window only up to `per_minute - interactive_reserve`, interactive calls up to `per_minute`.
    """

    per_minute: int = 950
    minute_seconds: float = 60.0
    public_per_second: int = 1
    public_seconds: float = 1.0
    oauth_per_minute: int | None = None
    # Overrides of DEFAULT_DAILY per kind; None removes a cap.
    daily: dict[str, int | None] = field(default_factory=dict)
    interactive_reserve: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.interactive_reserve < self.per_minute:
            raise ValueError(
                f"interactive_reserve must be >= 0 and below per_minute ({self.per_minute}), "
                f"got {self.interactive_reserve}: bulk calls would never get a slot"
            )

    def window_kind(self, kind: str) -> str | None:
        """The rate window a kind spends from (None: unlimited)."""
        if kind == BudgetKind.PUBLIC:
            return BudgetKind.PUBLIC.value
        if kind == BudgetKind.OAUTH:
            return BudgetKind.OAUTH.value if self.oauth_per_minute else None
        return BudgetKind.API.value

    def window(self, window_kind: str) -> Window | None:
        if window_kind == BudgetKind.API:
            return Window(self.per_minute, self.minute_seconds, self.interactive_reserve)
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
    per-minute/per-second window, and raises `BudgetExhausted` at once when a daily cap is spent. The daily
    slot is taken once: a call waiting for the next window does not spend its daily cap again, and gives the
    slot back if it is cancelled (or fails) before it got its window slot.
    `priority`: `Priority.BULK` (default) calls may fill the api.anaf.ro window only up to
    `per_minute - interactive_reserve`; `Priority.INTERACTIVE` calls (a person is waiting: the OAuth callback,
    a token a user's request needs) may use the whole window, so a sync that filled its share does not make
    them wait for the next minute. The limits hold across every process sharing the budget.
    `mark_exhausted` records a limit ANAF itself reported so every replica stops until `resets_at`
    (default: next midnight Europe/Bucharest for daily kinds, the end of the window otherwise).
    `remaining` is the calls left now in the day (daily kinds, per `key`) or in the whole window.
    """

    async def acquire(self, kind: str, key: str | None = None, *, priority: Priority = Priority.BULK) -> None: ...

    async def mark_exhausted(self, kind: str, key: str | None = None, resets_at: datetime | None = None) -> None: ...

    async def remaining(self, kind: str, key: str | None = None) -> int | None: ...


class UnlimitedBudget:
    """A budget that never refuses nor waits: for a component whose caller does the budgeting (or a test that
    must not count). Production services use `PostgresBudget`."""

    async def acquire(self, kind: str, key: str | None = None, *, priority: Priority = Priority.BULK) -> None:
        return None

    async def mark_exhausted(self, kind: str, key: str | None = None, resets_at: datetime | None = None) -> None:
        return None

    async def remaining(self, kind: str, key: str | None = None) -> int | None:
        return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _window_start_ms(now: datetime, w: Window) -> int:
    width = int(w.seconds * 1000)
    return (_ms(now) // width) * width


@dataclass(frozen=True)
class _Ask:
    """One round of one acquire: the daily slot still to take (`cap` None: none) and the window slot to take."""

    kind: str
    key: str
    cap: int | None
    wkind: str | None
    window: Window | None
    priority: Priority


@dataclass(frozen=True)
class _Got:
    """What one round obtained, judged at `now`."""

    now: datetime
    daily_refused: bool = False
    day: date | None = None  # the day of the daily slot taken in this round
    daily_n: int | None = None  # the daily counter after our slot (None: no daily slot taken in this round)
    window_start: int | None = None
    window_n: int | None = None  # the window counter after our slot (None: no window slot, wait for the next)


class _BudgetBase:
    """Shared policy: which counters a kind spends, reset times, metrics; storage is in subclasses."""

    def __init__(self, limits: BudgetLimits | None = None, clock: Clock | None = None) -> None:
        self.limits = limits or BudgetLimits()
        self.clock: Clock = clock or SystemClock()

    # storage primitives ------------------------------------------------------------------------
    async def _take(self, ask: _Ask) -> _Got:
        """Atomically: take the daily slot of `ask` if it needs one (refused: take nothing else), then a window
        slot if the window is below `ask.window.limit_for(ask.priority)`."""
        raise NotImplementedError

    def _give_back(self, daily: list[tuple[str, str, date]], windows: list[tuple[str, int]]) -> None:
        """Return slots taken for calls that will never be made (may complete in the background)."""
        raise NotImplementedError

    async def _fill_windows(self, kind: str, key: str, starts: list[int], limit: int) -> None:
        raise NotImplementedError

    async def _fill_daily(self, kind: str, key: str, days: list[date], limit: int) -> None:
        raise NotImplementedError

    async def _get_window(self, kind: str, key: str, start_ms: int) -> int:
        raise NotImplementedError

    async def _get_daily(self, kind: str, key: str, day: date) -> int:
        raise NotImplementedError

    # port --------------------------------------------------------------------------------------
    async def acquire(self, kind: str, key: str | None = None, *, priority: Priority = Priority.BULK) -> None:
        kind = str(kind)
        k = key or ""
        cap = self.limits.daily_cap(kind)
        wkind = self.limits.window_kind(kind)
        w = self.limits.window(wkind) if wkind else None
        if cap is None and w is None:
            return
        ask = _Ask(kind, k, cap, wkind if w is not None else None, w, Priority(priority))
        held: date | None = None  # a daily slot taken by an earlier round, still waiting for its window slot
        done = False
        try:
            while True:
                got = await self._take(ask)
                if got.daily_refused:
                    BUDGET_EXHAUSTED.labels(kind=kind).inc()
                    raise BudgetExhausted(kind, key, next_local_midnight(got.now))
                if got.daily_n is not None and cap is not None:
                    held = got.day
                    ask = replace(ask, cap=None)  # retries wait for the window only: never a second daily slot
                    _REMAINING_OF(kind).set(max(cap - got.daily_n, 0))
                if w is None or wkind is None:
                    done = True
                    return
                if got.window_n is not None:
                    done = True
                    _REMAINING_OF(wkind).set(max(w.limit - got.window_n, 0))
                    return
                _REMAINING_OF(wkind).set(0)
                # Window full (for this priority): wait for the next one (our own budget; ANAF is not called).
                start = got.window_start if got.window_start is not None else _window_start_ms(got.now, w)
                end_ms = start + int(w.seconds * 1000)
                await self.clock.sleep(max((end_ms - _ms(got.now)) / 1000, 0.001))
        finally:
            if not done and held is not None:
                # Cancelled (or failed) while waiting for the window: the call will not be made.
                self._give_back([(kind, k, held)], [])

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
            _REMAINING_OF(kind).set(0)
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
        _REMAINING_OF(wkind).set(0)

    async def remaining(self, kind: str, key: str | None = None) -> int | None:
        """Calls left now: in the day for daily kinds (per `key`), in the window otherwise; None = unlimited."""
        kind = str(kind)
        now = self.clock.now()
        cap = self.limits.daily_cap(kind)
        if cap is not None:
            left = max(cap - await self._get_daily(kind, key or "", local_date(now)), 0)
            _REMAINING_OF(kind).set(left)
            return left
        wkind = kind if kind in WINDOW_KINDS else self.limits.window_kind(kind)
        w = self.limits.window(wkind) if wkind else None
        if wkind is None or w is None:
            return None
        left = max(w.limit - await self._get_window(wkind, "", _window_start_ms(now, w)), 0)
        _REMAINING_OF(wkind).set(left)
        return left


class InMemoryBudget(_BudgetBase):
    """Single-process budget for unit tests; same semantics as PostgresBudget."""

    def __init__(self, limits: BudgetLimits | None = None, clock: Clock | None = None) -> None:
        super().__init__(limits, clock)
        self._windows: dict[tuple[str, str, int], int] = {}
        self._daily: dict[tuple[str, str, date], int] = {}

    async def _take(self, ask: _Ask) -> _Got:
        # No await inside: atomic on the event loop.
        now = self.clock.now()
        day: date | None = None
        daily_n: int | None = None
        if ask.cap is not None:
            day = local_date(now)
            n = self._daily.get((ask.kind, ask.key, day), 0)
            if n >= ask.cap:
                return _Got(now, daily_refused=True)
            daily_n = self._daily[(ask.kind, ask.key, day)] = n + 1
        if ask.window is None or ask.wkind is None:
            return _Got(now, day=day, daily_n=daily_n)
        start = _window_start_ms(now, ask.window)
        n = self._windows.get((ask.wkind, "", start), 0)
        if n >= ask.window.limit_for(ask.priority):
            return _Got(now, day=day, daily_n=daily_n, window_start=start)
        self._windows[(ask.wkind, "", start)] = n + 1
        return _Got(now, day=day, daily_n=daily_n, window_start=start, window_n=n + 1)

    def _give_back(self, daily: list[tuple[str, str, date]], windows: list[tuple[str, int]]) -> None:
        for kind, key, day in daily:
            if self._daily.get((kind, key, day), 0) > 0:
                self._daily[(kind, key, day)] -= 1
        for wkind, start in windows:
            if self._windows.get((wkind, "", start), 0) > 0:
                self._windows[(wkind, "", start)] -= 1

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
# Columns added after the first release: (table, column, definition). `last_grant` is how many slots the last
# statement that touched the row granted (PostgreSQL 15 has no RETURNING of the old row).
_COLUMNS = [
    ("window_counter", "last_grant", "integer NOT NULL DEFAULT 0"),
    ("daily_counter", "last_grant", "integer NOT NULL DEFAULT 0"),
]


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create schema `anaf_budget` and its tables if missing, add missing columns (safe from many processes)."""
    from sqlalchemy import text

    async with engine.begin() as conn:
        # Concurrent CREATE ... IF NOT EXISTS can still collide on the catalog: serialise it.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('spvhub.anaf_budget.ddl'))"))
        for stmt in _DDL:
            await conn.execute(text(stmt))
        have = {
            (r[0], r[1])
            for r in await conn.execute(
                text("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = :s"),
                {"s": SCHEMA},
            )
        }
        for table, column, definition in _COLUMNS:
            # ALTER TABLE locks the hot counter tables exclusively even when the column exists: only when missing.
            if (table, column) not in have:
                await conn.execute(text(f"ALTER TABLE {SCHEMA}.{table} ADD COLUMN IF NOT EXISTS {column} {definition}"))


# One flush = one statement (its own transaction): take the daily slots of the whole batch, then as many window
# slots as the asks that got their daily slot (or need none) may have. Per row: `m` asks want a slot, the row
# grants LEAST(m, room) at once (so duplicate keys in a batch are one row update), and `last_grant` returns how
# many it granted. Interactive asks are served before bulk asks; bulk asks stop at the bulk limit. Rows are
# locked in one global order (daily rows sorted, then window rows sorted) so concurrent flushes of several
# processes cannot deadlock.
_TAKE_SQL = f"""
WITH a AS (
    SELECT u.*, row_number() OVER (PARTITION BY u.kind, u.key, u.day ORDER BY u.i) AS rank
    FROM unnest(CAST(:i AS int[]), CAST(:kind AS text[]), CAST(:key AS text[]), CAST(:day AS date[]),
                CAST(:cap AS int[]), CAST(:wkind AS text[]), CAST(:wstart AS bigint[]), CAST(:wlimit AS int[]),
                CAST(:wbulk AS int[]), CAST(:inter AS boolean[]))
         AS u(i, kind, key, day, cap, wkind, wstart, wlimit, wbulk, inter)
),
dq AS (
    SELECT kind, key, day, count(*)::int AS m, min(cap) AS cap FROM a WHERE day IS NOT NULL GROUP BY kind, key, day
),
d AS (
    INSERT INTO {SCHEMA}.daily_counter AS c (kind, key, day, n, last_grant)
    SELECT kind, key, day, GREATEST(LEAST(m, cap), 0), GREATEST(LEAST(m, cap), 0) FROM dq ORDER BY kind, key, day
    ON CONFLICT (kind, key, day) DO UPDATE
        SET (n, last_grant) = (SELECT c.n + LEAST(q.m, q.cap - c.n), LEAST(q.m, q.cap - c.n) FROM dq q
                               WHERE q.kind = c.kind AND q.key = c.key AND q.day = c.day)
        WHERE c.n < (SELECT q.cap FROM dq q WHERE q.kind = c.kind AND q.key = c.key AND q.day = c.day)
    RETURNING c.kind, c.key, c.n, c.last_grant
),
ok AS (
    SELECT a.* FROM a LEFT JOIN d ON d.kind = a.kind AND d.key = a.key AND a.day IS NOT NULL
    WHERE a.day IS NULL OR a.rank <= COALESCE(d.last_grant, 0)
),
wq AS (
    SELECT wkind, wstart, min(wlimit) AS lim, min(wbulk) AS blim,
           (count(*) FILTER (WHERE inter))::int AS mi, (count(*) FILTER (WHERE NOT inter))::int AS mb
    FROM ok WHERE wkind IS NOT NULL GROUP BY wkind, wstart
),
w AS (
    INSERT INTO {SCHEMA}.window_counter AS c (kind, key, window_start_ms, n, last_grant)
    SELECT q.wkind, '', q.wstart, g.g, g.g FROM wq q,
           LATERAL (SELECT GREATEST(0, LEAST(q.mi, q.lim)) AS gi) x,
           LATERAL (SELECT x.gi + GREATEST(0, LEAST(q.mb, q.blim - x.gi)) AS g) g
    ORDER BY q.wkind, q.wstart
    ON CONFLICT (kind, key, window_start_ms) DO UPDATE
        SET (n, last_grant) = (SELECT c.n + g.g, g.g FROM wq q,
                                   LATERAL (SELECT GREATEST(0, LEAST(q.mi, q.lim - c.n)) AS gi) x,
                                   LATERAL (SELECT x.gi + GREATEST(0, LEAST(q.mb, q.blim - c.n - x.gi)) AS g) g
                               WHERE q.wkind = c.kind AND q.wstart = c.window_start_ms)
        WHERE c.n < (SELECT CASE WHEN q.mi > 0 THEN q.lim ELSE q.blim END FROM wq q
                     WHERE q.wkind = c.kind AND q.wstart = c.window_start_ms)
    RETURNING c.kind, c.n, c.last_grant
)
SELECT 'd' AS t, kind, key, n, last_grant FROM d
UNION ALL
SELECT 'w', kind, '', n, last_grant FROM w
"""

# Give back slots of calls that were never made (one statement, rows in the same order as a flush locks them).
_GIVE_BACK_SQL = f"""
WITH d AS (
    INSERT INTO {SCHEMA}.daily_counter AS c (kind, key, day, n, last_grant)
    SELECT r.kind, r.key, r.day, 0, r.k
    FROM unnest(CAST(:dkind AS text[]), CAST(:dkey AS text[]), CAST(:dday AS date[]), CAST(:dk AS int[]))
         AS r(kind, key, day, k)
    ORDER BY r.kind, r.key, r.day
    ON CONFLICT (kind, key, day) DO UPDATE SET n = GREATEST(c.n - EXCLUDED.last_grant, 0)
    RETURNING 1
),
w AS (
    INSERT INTO {SCHEMA}.window_counter AS c (kind, key, window_start_ms, n, last_grant)
    SELECT r.kind, '', r.start, 0, r.k
    FROM unnest(CAST(:wkind AS text[]), CAST(:wstart AS bigint[]), CAST(:wk AS int[])) AS r(kind, start, k)
    ORDER BY r.kind, r.start
    ON CONFLICT (kind, key, window_start_ms) DO UPDATE SET n = GREATEST(c.n - EXCLUDED.last_grant, 0)
    RETURNING 1
)
SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM w)
"""

# Asks served by one flush at most (the rest wait for the next flush).
MAX_BATCH = 1000


class PostgresBudget(_BudgetBase):
    """Budget in PostgreSQL, shared by every process: each counter row is taken in single statements.

    Concurrent `acquire` calls of one process are served together ("group commit"): when no flush is running a
    call is flushed at once; calls arriving while a flush runs queue up and the next flush serves them all in
    one statement (one round trip). `flushes` and `flushed_asks` count them (instrumentation).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        limits: BudgetLimits | None = None,
        clock: Clock | None = None,
        *,
        prune_every: timedelta = timedelta(minutes=5),
        keep_windows: timedelta = timedelta(hours=1),
        keep_days: int = 3,
        max_batch: int = MAX_BATCH,
    ) -> None:
        super().__init__(limits, clock)
        from sqlalchemy import text

        self._engine = engine
        self._text = text
        self._take_stmt = text(_TAKE_SQL)
        self._give_back_stmt = text(_GIVE_BACK_SQL)
        self._prune_every = prune_every
        self._keep_windows = keep_windows
        self._keep_days = keep_days
        self._last_prune: datetime | None = None
        self._max_batch = max(1, max_batch)
        self._queue: list[tuple[_Ask, asyncio.Future[_Got]]] = []
        self._back_daily: CounterDict[tuple[str, str, date]] = CounterDict()
        self._back_windows: CounterDict[tuple[str, int]] = CounterDict()
        self._flusher: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self.flushes = 0
        self.flushed_asks = 0
        self.given_back = 0

    # group commit --------------------------------------------------------------------------------
    async def _take(self, ask: _Ask) -> _Got:
        fut: asyncio.Future[_Got] = asyncio.get_running_loop().create_future()
        self._queue.append((ask, fut))
        self._wake()
        try:
            return await fut
        except asyncio.CancelledError:
            # Cancelling the caller cancels `fut`: a queued ask is then skipped, an ask already in a running
            # flush gets its slots given back when the flush returns (see _drain). If the flush had already
            # answered when the cancellation arrived, the slots are ours to give back here.
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                got = fut.result()
                self._give_back(*_slots_of(ask, got))
            raise

    def _give_back(self, daily: list[tuple[str, str, date]], windows: list[tuple[str, int]]) -> None:
        self._back_daily.update(daily)
        self._back_windows.update(windows)
        self._wake()

    def _wake(self) -> None:
        loop = asyncio.get_running_loop()
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._drain(), name="anaf-budget-flush")

    async def _drain(self) -> None:
        """Flush until nothing is queued: each flush serves what queued while the previous one ran."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue or self._back_daily or self._back_windows:
                if self._back_daily or self._back_windows:
                    await self._flush_give_back()
                head, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                batch = [(a, f) for a, f in head if not f.done() and f.get_loop() is loop]
                if not batch:
                    continue
                try:
                    outcomes = await self._flush([a for a, _ in batch])
                except Exception as exc:  # one atomic statement: it took nothing (or, committed, stays spent: safe)
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                except BaseException:
                    self._queue[:0] = batch
                    raise
                for (ask, f), got in zip(batch, outcomes, strict=True):
                    if not f.done():
                        f.set_result(got)
                        continue
                    # The caller left while its flush ran: the call will not be made, give its slots back.
                    daily, windows = _slots_of(ask, got)
                    self._back_daily.update(daily)
                    self._back_windows.update(windows)
                self._maybe_prune()
        except BaseException:  # the flusher itself is cancelled (shutdown): so is every call still queued
            for _, f in self._queue:
                f.cancel()
            self._queue = []
            raise

    async def _flush(self, asks: list[_Ask]) -> list[_Got]:
        now = self.clock.now()
        day = local_date(now)
        cols: dict[str, list[Any]] = {
            c: [] for c in ("i", "kind", "key", "day", "cap", "wkind", "wstart", "wlimit", "wbulk", "inter")
        }
        for i, a in enumerate(asks):
            w = a.window if a.wkind is not None else None
            cols["i"].append(i)
            cols["kind"].append(a.kind)
            cols["key"].append(a.key)
            cols["day"].append(day if a.cap is not None else None)
            cols["cap"].append(a.cap)
            cols["wkind"].append(a.wkind if w is not None else None)
            cols["wstart"].append(_window_start_ms(now, w) if w is not None else None)
            cols["wlimit"].append(w.limit if w is not None else None)
            cols["wbulk"].append(w.limit_for(Priority.BULK) if w is not None else None)
            cols["inter"].append(a.priority == Priority.INTERACTIVE)
        async with self._engine.connect() as conn:
            # One statement is one transaction: no BEGIN/COMMIT round trips.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = (await conn.execute(self._take_stmt, cols)).all()
        self.flushes += 1
        self.flushed_asks += len(asks)
        daily: dict[tuple[str, str], tuple[int, int]] = {}
        windows: dict[str, tuple[int, int]] = {}
        for t, kind, key, n, grant in rows:
            if t == "d":
                daily[(kind, key)] = (int(n), int(grant))
            else:
                windows[kind] = (int(n), int(grant))
        return _outcomes(asks, now, day, daily, windows)

    async def _flush_give_back(self) -> None:
        back_daily, self._back_daily = self._back_daily, CounterDict()
        back_windows, self._back_windows = self._back_windows, CounterDict()
        params = {
            "dkind": [k[0] for k in back_daily],
            "dkey": [k[1] for k in back_daily],
            "dday": [k[2] for k in back_daily],
            "dk": list(back_daily.values()),
            "wkind": [k[0] for k in back_windows],
            "wstart": [k[1] for k in back_windows],
            "wk": list(back_windows.values()),
        }
        try:
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(self._give_back_stmt, params)
            self.given_back += sum(back_daily.values()) + sum(back_windows.values())
        except Exception:  # the slots stay spent: safe (never more calls than the limits), only wasteful
            _log.warning("anaf budget: giving back unused slots failed", exc_info=True)

    # direct statements ---------------------------------------------------------------------------
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

    def _maybe_prune(self) -> None:
        """Prune now and then, in the background: never on a caller's path (a cancelled caller must not lose a
        slot it already took) and never holding up the next flush."""
        now = self.clock.now()
        if self._last_prune is not None and now - self._last_prune < self._prune_every:
            return
        if self._pruner is not None and not self._pruner.done():
            return
        self._last_prune = now
        self._pruner = asyncio.get_running_loop().create_task(self._prune_quietly(), name="anaf-budget-prune")

    async def _prune_quietly(self) -> None:
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


def _slots_of(ask: _Ask, got: _Got) -> tuple[list[tuple[str, str, date]], list[tuple[str, int]]]:
    """The daily and window slots one round took (to give them back)."""
    daily = [(ask.kind, ask.key, got.day)] if got.daily_n is not None and got.day is not None else []
    windows = (
        [(ask.wkind, got.window_start)]
        if got.window_n is not None and ask.wkind is not None and got.window_start is not None
        else []
    )
    return daily, windows


def _outcomes(
    asks: list[_Ask],
    now: datetime,
    day: date,
    daily: dict[tuple[str, str], tuple[int, int]],
    windows: dict[str, tuple[int, int]],
) -> list[_Got]:
    """Share out what one flush granted, exactly as the statement counted it: per daily row the first
    `last_grant` asks in batch order; per window the interactive asks first, then the bulk asks."""
    got: list[_Got | None] = [None] * len(asks)
    daily_n: list[int | None] = [None] * len(asks)
    rank: CounterDict[tuple[str, str]] = CounterDict()
    waiting: dict[str, tuple[list[int], list[int]]] = {}  # window kind -> (interactive asks, bulk asks)
    for i, a in enumerate(asks):
        if a.cap is not None:
            rank[(a.kind, a.key)] += 1
            n, grant = daily.get((a.kind, a.key), (0, 0))
            if rank[(a.kind, a.key)] > grant:
                got[i] = _Got(now, daily_refused=True)
                continue
            daily_n[i] = n - grant + rank[(a.kind, a.key)]
        if a.wkind is None or a.window is None:
            got[i] = _Got(now, day=day if daily_n[i] is not None else None, daily_n=daily_n[i])
            continue
        waiting.setdefault(a.wkind, ([], []))[0 if a.priority == Priority.INTERACTIVE else 1].append(i)
    for wkind, (inter, bulk) in waiting.items():
        w = asks[(inter or bulk)[0]].window
        assert w is not None
        start = _window_start_ms(now, w)
        n, grant = windows.get(wkind, (0, 0))  # no row: the window was full for every ask of the batch
        before = n - grant
        gi = max(0, min(len(inter), w.limit - before, grant))
        gb = max(0, min(len(bulk), grant - gi))
        for j, i in enumerate(inter):
            got[i] = _Got(now, day=day if daily_n[i] is not None else None, daily_n=daily_n[i],
                          window_start=start, window_n=before + j + 1 if j < gi else None)
        for j, i in enumerate(bulk):
            got[i] = _Got(now, day=day if daily_n[i] is not None else None, daily_n=daily_n[i],
                          window_start=start, window_n=before + gi + j + 1 if j < gb else None)
    out = [g for g in got if g is not None]
    assert len(out) == len(asks)
    return out

"""The platform's one clock: an aware UTC `now()` and an `async sleep(seconds)` on the same timeline.

Which clock runs where:
- production: `SystemClock`, the machine's wall clock;
- dev and test: `FollowingClock`, which follows the ANAF emulator's clock
  (`SPVHUB_CLOCK_URL=http://127.0.0.1:18080/__admin/clock`), so simulated days move every service at once;
- unit tests: `ManualClock`, moved by hand (`advance`, `set`).
`make_clock(settings.clock_url)` picks the first two; that is "the platform clock".

The ANAF budget counts by the platform clock (`ServiceRuntime.anaf_budget` defaults to
`make_clock(settings.clock_url)`): in production that is the wall clock, which is what ANAF counts by; in dev/test it
is the emulator's clock, so the shared daily limits reset at the same simulated midnight as the emulator's own
counters, in every service alike. A test may pass its own clock for a budget it owns.

The capped sleep: `sleep(seconds)` on the platform clocks never waits more than `MAX_SLEEP` (5 s) of real time and
may therefore return before `seconds` have passed on the clock. A wait is a deadline on the clock's timeline and a real
sleep only approximates it: the followed clock jumps or freezes when the emulator is moved, and a sleeper must see
that within seconds, not after a long real sleep. Every caller therefore loops: sleep, re-read `now()`, check its
deadline again (the budget's `acquire` does). On the wall clock the cost is one cheap re-check every 5 s.
`ManualClock.sleep` is not capped: it returns exactly when `advance`/`set` passes its deadline.

Romania's calendar helpers (`BUCHAREST`, `local_date`, `local_midnight`, `next_local_midnight`) live here too: ANAF's
daily limits reset at midnight Europe/Bucharest.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time as _time
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx

BUCHAREST = ZoneInfo("Europe/Bucharest")
MAX_SLEEP = 5.0  # seconds of real time a platform clock's sleep waits at most (see the module docstring)


class Clock(Protocol):
    """Source of time: an aware UTC `now()` and an `async sleep(seconds)` on the same timeline (a sleep may return
    early; callers re-read `now()`)."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


async def _capped_sleep(seconds: float) -> None:
    await asyncio.sleep(max(0.0, min(seconds, MAX_SLEEP)))


class SystemClock:
    """The real wall clock (production)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await _capped_sleep(seconds)


class ManualClock:
    """A clock that only moves when told to (tests); `sleep` returns once `advance`/`set` passes its deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

    @property
    def at(self) -> datetime:
        """The current time (the name the former `FixedClock` used)."""
        return self._now

    @at.setter
    def at(self, when: datetime) -> None:
        self.set(when)

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (lets a test know every task has reached its wait)."""
        return sum(1 for _, _, f in self._waiters if not f.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self._now + timedelta(seconds=seconds), next(self._seq), fut))
        await fut

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move forward by `seconds` and/or timedelta keywords (`advance(90)`, `advance(hours=1, seconds=1)`)."""
        self.set(self._now + timedelta(seconds=seconds, **delta))

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = when
        while self._waiters and self._waiters[0][0] <= when:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)


FixedClock = ManualClock  # the former name of the hand-moved test clock; new code says ManualClock


class FollowingClock:
    """Follows a remote clock endpoint answering `{"epoch_ms": ..., "frozen": bool}`; re-reads it at most
    every `refresh` seconds (dev and test only: a blocking loopback call)."""

    def __init__(self, url: str, refresh: float = 1.0) -> None:
        self.url = url
        self.refresh = refresh
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._read_at = -1e9
        self._http = httpx.Client(timeout=2)  # one kept-alive loopback connection, not one per read

    def _sync(self) -> None:
        try:
            body = self._http.get(self.url).json()
        except (httpx.HTTPError, ValueError):
            return  # keep the last known offset
        remote = body["epoch_ms"] / 1000.0
        self._frozen_at = remote if body.get("frozen") else None
        self._offset = remote - _time.time()
        self._read_at = _time.monotonic()

    def now(self) -> datetime:
        if _time.monotonic() - self._read_at > self.refresh:
            self._sync()
        ts = self._frozen_at if self._frozen_at is not None else _time.time() + self._offset
        return datetime.fromtimestamp(ts, UTC)

    async def sleep(self, seconds: float) -> None:
        await _capped_sleep(seconds)


def make_clock(clock_url: str) -> Clock:
    """The platform clock: `FollowingClock(clock_url)` when a URL is set (dev/test), else `SystemClock()`."""
    return FollowingClock(clock_url) if clock_url else SystemClock()


def local_date(moment: datetime) -> date:
    """The calendar date in Romania at `moment` (the day ANAF's daily counters belong to)."""
    return moment.astimezone(BUCHAREST).date()


def local_midnight(day: date) -> datetime:
    """The start of `day` in Europe/Bucharest, as an aware UTC datetime."""
    return datetime.combine(day, time(0, 0), tzinfo=BUCHAREST).astimezone(UTC)


def next_local_midnight(moment: datetime) -> datetime:
    """The next midnight Europe/Bucharest after `moment`, as an aware UTC datetime."""
    return local_midnight(local_date(moment) + timedelta(days=1))

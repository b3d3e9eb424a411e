"""Injectable clocks for the ANAF client and budget: the system clock and a manual clock for tests.

ANAF's daily limits reset at midnight Europe/Bucharest; helpers here compute that boundary.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

BUCHAREST = ZoneInfo("Europe/Bucharest")


class Clock(Protocol):
    """Source of time: an aware UTC `now()` and an `async sleep(seconds)` on the same timeline."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that only moves when told to; `sleep` returns once `advance`/`set` passes its deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._waiters: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._now

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

    def advance(self, seconds: float) -> None:
        self.set(self._now + timedelta(seconds=seconds))

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = when
        while self._waiters and self._waiters[0][0] <= when:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)


def local_date(moment: datetime) -> date:
    """The calendar date in Romania at `moment` (the day ANAF's daily counters belong to)."""
    return moment.astimezone(BUCHAREST).date()


def local_midnight(day: date) -> datetime:
    """The start of `day` in Europe/Bucharest, as an aware UTC datetime."""
    return datetime.combine(day, time(0, 0), tzinfo=BUCHAREST).astimezone(UTC)


def next_local_midnight(moment: datetime) -> datetime:
    """The next midnight Europe/Bucharest after `moment`, as an aware UTC datetime."""
    return local_midnight(local_date(moment) + timedelta(days=1))

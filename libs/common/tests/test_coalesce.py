"""Group commit: concurrent callers share flushes, results reach the right caller, a bad item fails alone."""
from __future__ import annotations

import asyncio

import pytest
from spvhub_common.coalesce import Coalescer


class Recorder:
    def __init__(self, bad: set[int] | None = None, delay: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad or set()
        self.delay = delay

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        return [i * 10 for i in items]


async def test_a_lone_caller_is_flushed_at_once() -> None:
    rec = Recorder()
    c = Coalescer(rec.flush)
    assert await c.submit(4) == 40
    assert rec.batches == [[4]]


async def test_concurrent_callers_share_flushes_and_get_their_own_results() -> None:
    rec = Recorder()
    c = Coalescer(rec.flush, max_batch=50)
    results = await asyncio.gather(*(c.submit(i) for i in range(120)))
    assert results == [i * 10 for i in range(120)]
    assert sorted(i for b in rec.batches for i in b) == list(range(120))  # each item flushed exactly once
    assert len(rec.batches) <= 4 and max(len(b) for b in rec.batches) <= 50


async def test_a_bad_item_fails_alone() -> None:
    rec = Recorder(bad={7})
    c = Coalescer(rec.flush)
    results = await asyncio.gather(*(c.submit(i) for i in range(10)), return_exceptions=True)
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i != 7] == [i * 10 for i in range(10) if i != 7]


async def test_a_cancelled_caller_does_not_cancel_the_flush_of_others() -> None:
    rec = Recorder(delay=0.05)
    c = Coalescer(rec.flush)
    first = asyncio.create_task(c.submit(1))
    await asyncio.sleep(0)  # the first flush starts
    waiting = [asyncio.create_task(c.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    waiting[0].cancel()
    assert await first == 10 and await waiting[1] == 30
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    await c.aclose()
    assert sorted(i for b in rec.batches for i in b) == [1, 2, 3]  # the cancelled caller's item was still flushed


async def test_concurrent_flushes_run_side_by_side() -> None:
    running = 0
    peak = 0

    async def flush(items: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return items

    c = Coalescer(flush, max_batch=10, concurrency=2)
    assert await asyncio.gather(*(c.submit(i) for i in range(50))) == list(range(50))
    assert peak == 2 and c.flushes < 50

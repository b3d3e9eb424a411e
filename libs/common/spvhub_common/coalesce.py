"""Group commit: many concurrent callers, one flush. `Coalescer.submit(item)` waits for the result of `item`;
items submitted while a flush is running are served together by the next flush, so a lone caller is never
delayed and a busy process pays one round trip per batch instead of one per item.

If a batch flush fails, its items are retried one by one, so one bad item cannot fail the others.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from spvhub_common.logging import get_logger

I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")  # result

log = get_logger(__name__)


class Coalescer(Generic[I, R]):
    def __init__(self, flush: Callable[[list[I]], Awaitable[Sequence[R]]], *, max_batch: int = 200,
                 concurrency: int = 1, name: str = "coalescer") -> None:
        """`concurrency`: flushes that may run at once (e.g. the workers of a process pool)."""
        self._flush = flush
        self.max_batch = max(1, max_batch)
        self.concurrency = max(1, concurrency)
        self.name = name
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.flushes = 0  # batches flushed (observability and tests)

    async def submit(self, item: I) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)  # a caller cancelled meanwhile must not leave an unretrieved error
        self._queue.append((item, fut))
        self._tasks.difference_update([t for t in self._tasks if t.done()])  # drains that found the queue empty
        if len(self._tasks) < self.concurrency:
            self._tasks.add(asyncio.create_task(self._drain(), name=f"{self.name}-drain"))
        # shield: a cancelled caller stops waiting, the flush its item is part of still completes for the others
        return await asyncio.shield(fut)

    async def aclose(self) -> None:
        """Wait for queued items to be flushed."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[:self.max_batch]
            del self._queue[:self.max_batch]
            try:
                await self._run(batch)
            except BaseException as e:  # cancelled mid-flush: nobody may wait forever
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e if isinstance(e, Exception) else asyncio.CancelledError())
                if not any(t is not asyncio.current_task() and not t.done() for t in self._tasks):
                    # no other drain will serve the queue
                    for _, fut in self._queue:
                        if not fut.done():
                            fut.set_exception(asyncio.CancelledError())
                    self._queue.clear()
                raise

    async def _run(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        self.flushes += 1
        try:
            results = await self._flush([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: flush returned {len(results)} results for {len(batch)} items")
        except Exception as e:  # noqa: BLE001 - retried item by item below
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(e)
                return
            log.warning("batch flush failed; retrying its items one by one", coalescer=self.name,
                        items=len(batch), error=f"{type(e).__name__}: {str(e)[:200]}")
            for one in batch:
                await self._run([one])
            return
        for (_, fut), res in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(res)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()

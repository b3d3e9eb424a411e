"""The CPU pool: unzip, parse and XML-DSig in worker processes, so the event loop keeps its GIL for I/O."""
from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, TypeVar

from spvhub_common.coalesce import Coalescer
from spvhub_common.logging import get_logger

from spvhub_efactura.archive import Limits
from spvhub_efactura.processing import Processed, process_many
from spvhub_efactura.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")


class ParsePool:
    """`parse_processes` worker processes (none: threads). Downloaded ZIPs reach them in batches: one pool round
    trip (pickling, queue, wake-up) for many ZIPs when the sync is busy, none of the waiting when it is not."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = Limits(settings.max_zip_bytes, settings.max_member_bytes, settings.max_zip_ratio,
                             settings.max_zip_members)
        self.executor: Executor | None = None
        self._parser: Coalescer[tuple[bytes, datetime | None], Processed] = Coalescer(
            self._parse_batch, max_batch=16, concurrency=max(1, settings.parse_processes), name="efactura-parse")

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.settings.parse_processes,
                                   mp_context=multiprocessing.get_context("spawn"))

    async def start(self) -> None:
        """Start the workers now: each imports lxml, cryptography and the parsers (a second or so of CPU), at
        startup rather than on the first sync's clock."""
        if self.settings.parse_processes <= 0:
            return
        self.executor = self._new_executor()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.executor, process_many, [], self.limits)
                               for _ in range(self.settings.parse_processes)))

    async def stop(self) -> None:
        await self._parser.aclose()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """CPU-bound work off the event loop: in the process pool when there is one, in a thread otherwise."""
        pool = self.executor
        if pool is not None:
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                # a worker died (OOM, signal): replace the pool, and do this item in a thread
                log.error("parse worker pool broken; replacing it")
                if self.executor is pool:
                    self.executor = self._new_executor()
                    pool.shutdown(wait=False, cancel_futures=True)
        return await asyncio.to_thread(fn, *args)

    async def parse(self, data: bytes, listed_at: datetime | None) -> Processed:
        """Unzip, parse and check the signature of one downloaded ZIP (batched with concurrent ones)."""
        return await self._parser.submit((data, listed_at))

    async def _parse_batch(self, items: list[tuple[bytes, datetime | None]]) -> list[Processed]:
        return await self.run(process_many, [d for d, _ in items], self.limits, self.settings.trusted_signers, True,
                              False, [at for _, at in items])

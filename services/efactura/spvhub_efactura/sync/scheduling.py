"""Scheduling and leases: replicas claim due companies (`FOR UPDATE SKIP LOCKED`) and hold a lease in database
time, renewed by a heartbeat while the company syncs; a killed replica's lease expires and another run repairs
everything (every ledger transition is a conditional update)."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from spvhub_common.clock import Clock
from spvhub_common.logging import get_logger

from spvhub_efactura import domain
from spvhub_efactura.adapters import ledger
from spvhub_efactura.settings import Settings
from spvhub_efactura.sync.company import SyncReport
from spvhub_efactura.sync.connections import SyncPaused, UowFactory
from spvhub_efactura.sync.metrics import SYNC_LAST_SUCCESS, SYNC_PENDING, SYNC_SECONDS, SYNCS

log = get_logger(__name__)


class Scheduler:
    """Claims due companies up to the free slots and runs `sync(cif)` for each under a lease."""

    def __init__(self, settings: Settings, uow: UowFactory, clock: Clock,
                 sync: Callable[[str], Awaitable[SyncReport]], *, instance_id: str | None = None) -> None:
        self.settings = settings
        self.uow = uow
        self.clock = clock
        self.sync = sync
        self.instance_id = instance_id or uuid.uuid4().hex[:16]
        self._running: dict[str, asyncio.Task[SyncReport]] = {}

    async def tick(self) -> list[str]:
        """Claim due companies up to the free slots (download slots plus list-ahead) and start their syncs (returns
        the claimed CIFs)."""
        free = self.settings.max_concurrent_companies + self.settings.list_ahead_companies - len(self._running)
        if free <= 0:
            return []
        async with self.uow() as uow:
            claimed = await ledger.claim_due_companies(uow.session, self.instance_id, self.settings.lease_seconds,
                                                       self.clock.now(), free)
            await uow.commit()
        for cif in claimed:
            self._running[cif] = asyncio.create_task(self._leased_sync(cif), name=f"sync-{cif}")
            self._running[cif].add_done_callback(lambda _t, c=cif: self._running.pop(c, None))
        return claimed

    async def stop(self) -> None:
        for t in list(self._running.values()):
            t.cancel()
        await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def wait_idle(self) -> None:
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def request_sync(self, cif: str) -> bool:
        """On-demand sync: due at the next tick (even when its interval has not elapsed)."""
        async with self.uow() as uow:
            requested = await ledger.request_sync(uow.session, cif)
            await uow.commit()
        return requested

    async def _heartbeat(self, cif: str) -> None:
        every = max(self.settings.lease_seconds / 3, 0.5)
        while True:
            await asyncio.sleep(every)
            async with self.uow() as uow:
                await ledger.renew_lease(uow.session, cif, self.instance_id, self.settings.lease_seconds)
                await uow.commit()

    async def _leased_sync(self, cif: str) -> SyncReport:
        hb = asyncio.create_task(self._heartbeat(cif))
        report = SyncReport(cif)
        started = time.perf_counter()
        try:
            report = await self.sync(cif)
            SYNCS.labels("ok").inc()
            SYNC_LAST_SUCCESS.labels(cif).set(time.time())
            SYNC_PENDING.labels(cif).set(report.pending)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded in the company's health, retried on schedule
            SYNCS.labels("paused" if isinstance(e, SyncPaused) else "failed").inc()
            log.exception("sync failed", cif=cif, error=str(e)[:300])
            report.error = f"{type(e).__name__}: {str(e)[:400]}"
            async with self.uow() as uow:
                await ledger.record_failure(uow.session, cif, report.error, self.clock.now())
                await uow.commit()
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
            interval = await ledger.sync_interval(uow.session, cif) or self.settings.sync_interval_seconds
            nxt = domain.next_sync_at(now, interval, await ledger.earliest_retry(uow.session, cif))
            await ledger.release_lease(uow.session, cif, self.instance_id, nxt)
            await uow.commit()

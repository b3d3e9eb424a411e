"""Periodic work: the re-check of every connection's SPV rights (default daily) and the daily refresh of
registry data. Both run on one replica at a time and look for due work on each tick."""
from __future__ import annotations

from spvhub_common.logging import get_logger
from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_portfolio import handlers
from spvhub_portfolio.adapters import repository as repo

log = get_logger(__name__)


async def recheck_rights(runtime: ServiceRuntime, deps: handlers.Deps) -> list[handlers.DiscoveryResult]:
    """Re-discover every active e-Factura connection whose last check is older than the interval (one
    transaction per connection, so one failure never holds the others back)."""
    async with runtime.uow() as uow:
        now = deps.clock.now()
        due = [c.connection_id for c in await repo.active_connections(uow.session)
               if handlers.discovery_due(c, now, deps)]
    results = []
    for connection_id in due:
        async with runtime.uow() as uow:
            res = await handlers.discover_recording_errors(uow, deps, connection_id, trigger="recheck")
            await uow.commit()
            if res is not None:
                results.append(res)
    return results


async def refresh_registry(runtime: ServiceRuntime, deps: handlers.Deps) -> int:
    total = 0
    while True:
        async with runtime.uow() as uow:
            n = await handlers.refresh_registry(uow, deps)
            await uow.commit()
        total += n
        if n == 0:
            return total


async def reconcile(runtime: ServiceRuntime) -> int:
    """Publish again access and entitlements published before proof of control existed (after an upgrade)."""
    total = 0
    while True:
        async with runtime.uow() as uow:
            n = await handlers.reconcile(uow)
            await uow.commit()
        total += n
        if n == 0:
            return total


def register(runtime: ServiceRuntime, deps: handlers.Deps) -> None:
    tick = deps.jobs_tick_seconds
    runtime.add_job(PeriodicJob("access-reconcile", tick, lambda: reconcile(runtime)))
    runtime.add_job(PeriodicJob("rights-recheck", tick, lambda: recheck_rights(runtime, deps)))
    runtime.add_job(PeriodicJob("registry-refresh", tick, lambda: refresh_registry(runtime, deps)))

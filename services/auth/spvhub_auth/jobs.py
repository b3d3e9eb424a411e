"""Periodic work of the auth service: horizon warnings and token renewal (one pass, singleton per cluster;
each connection is additionally claimed row by row, so even overlapping runners refresh it exactly once), then
the purge of old throttle counters and API-key uses."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_auth import handlers


def register(runtime: ServiceRuntime, deps: handlers.Deps) -> None:
    async def run() -> None:
        await handlers.run_lifecycle(deps)
        await handlers.purge_old_records(deps)
    runtime.add_job(PeriodicJob("anaf-connection-lifecycle", deps.settings.renewal_interval_seconds, run,
                                singleton=True))

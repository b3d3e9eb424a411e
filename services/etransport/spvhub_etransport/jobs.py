"""Periodic work of the etransport service: poll due companies (info every 10 min, lista daily) and advance
time-based state (expiry, uit-expiring alerts). One replica at a time (advisory-locked singleton job)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_etransport import handlers
from spvhub_etransport.handlers import Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def poll() -> None:
        await handlers.poll_due(deps)
    runtime.add_job(PeriodicJob("etransport-poll", deps.settings.poll_tick, poll, singleton=True))

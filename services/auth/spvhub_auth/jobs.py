"""Periodic work of the auth service: horizon warnings and token renewal (one pass, singleton per cluster;
each connection is additionally claimed row by row, so even overlapping runners refresh it exactly once)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob

from spvhub_auth import handlers as H


def lifecycle_job(deps: H.Deps) -> PeriodicJob:
    async def run() -> None:
        await H.run_lifecycle(deps)
    return PeriodicJob("anaf-connection-lifecycle", deps.settings.renewal_interval_seconds, run, singleton=True)

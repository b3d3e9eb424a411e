"""Periodic work of the auth service: horizon warnings and token renewal (one pass, singleton per cluster;
each connection is additionally claimed row by row, so even overlapping runners refresh it exactly once)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob

from spvhub_auth import apikeys, throttle
from spvhub_auth import handlers as H

THROTTLE_KEEP_SECONDS = 86400  # far beyond any throttle window


def lifecycle_job(deps: H.Deps) -> PeriodicJob:
    async def run() -> None:
        await H.run_lifecycle(deps)
        async with deps.uow() as uow:
            await throttle.purge(uow, deps.wall.now(), THROTTLE_KEEP_SECONDS)
            await apikeys.purge_usage(uow, deps.wall.now(), deps.settings.api_key_usage_keep_days)
            await uow.commit()
    return PeriodicJob("anaf-connection-lifecycle", deps.settings.renewal_interval_seconds, run, singleton=True)

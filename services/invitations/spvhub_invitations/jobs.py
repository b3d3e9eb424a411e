"""Periodic work of the invitations service: the expiry scan (one replica at a time)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_invitations import handlers
from spvhub_invitations.handlers import Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def expire() -> None:
        await handlers.expire_due(deps)
    runtime.add_job(PeriodicJob("expire-invitations", deps.expiry_interval, expire, singleton=True))

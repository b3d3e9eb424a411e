"""Periodic work of the webhooks service: the sender (on every replica: rows are leased with SKIP LOCKED)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_webhooks import handlers
from spvhub_webhooks.handlers import Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def send() -> None:
        # keep going while there is a full batch: a backlog drains without waiting an interval per batch
        while await handlers.send_due(deps) >= deps.settings.send_batch:
            pass
    runtime.add_job(PeriodicJob("send-deliveries", deps.settings.send_interval, send, singleton=False,
                                initial_delay=0.2))

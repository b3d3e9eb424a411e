"""Periodic work of the notifier: the e-mail sender (retries with backoff) and the invoice digests."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_notifier import handlers
from spvhub_notifier.handlers import Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    async def send() -> None:
        while await handlers.send_due_emails(deps) >= deps.batch:
            pass  # a full batch: more may be due

    async def digest() -> None:
        await handlers.run_digests(deps)

    runtime.add_job(PeriodicJob("email-sender", deps.send_interval, send, singleton=True))
    runtime.add_job(PeriodicJob("invoice-digest", deps.digest_interval, digest, singleton=True,
                                initial_delay=deps.digest_interval))

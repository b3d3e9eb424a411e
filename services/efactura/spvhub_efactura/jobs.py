"""Periodic jobs of the efactura service: the sync scheduler (every replica claims its share), the submissions'
worker (every replica; rows are claimed) and the hourly expiry scan (one replica)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob, ServiceRuntime

from spvhub_efactura.handlers import Deps


def register(runtime: ServiceRuntime, deps: Deps) -> None:
    runtime.add_job(PeriodicJob("sync-scheduler", deps.settings.scheduler_tick_seconds, deps.sync.tick,
                                singleton=False, initial_delay=0.5))
    runtime.add_job(PeriodicJob("expiry-scan", 3600, deps.sync.expiry_scan, singleton=True, initial_delay=30))
    runtime.add_job(PeriodicJob("submissions", deps.settings.submission_worker_interval_seconds,
                                deps.submissions.tick, singleton=False, initial_delay=0.5))

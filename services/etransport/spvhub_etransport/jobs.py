"""Periodic work of the etransport service: poll due companies (info every 10 min, lista daily) and advance
time-based state (expiry, uit-expiring alerts). One replica at a time (advisory-locked singleton job)."""
from __future__ import annotations

from spvhub_common.runtime import PeriodicJob

from spvhub_etransport.handlers import EtransportService


def poll_job(svc: EtransportService) -> PeriodicJob:
    async def run() -> None:
        await svc.poll_due()
    return PeriodicJob("etransport-poll", svc.settings.poll_tick, run, singleton=True)

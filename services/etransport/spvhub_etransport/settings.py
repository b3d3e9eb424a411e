"""Settings of the etransport service (env prefix SPVHUB_, see spvhub_common.settings)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from spvhub_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "etransport"
    auth_url: str = Field("http://127.0.0.1:18101", description="auth service base URL (internal token endpoint)")
    info_poll_interval: float = Field(600.0, description="seconds between `info?cui_op=` polls per company")
    lista_poll_interval: float = Field(86400.0, description="seconds between `lista/{zile}/{cif}` polls per company")
    lista_days: int = Field(60, ge=1, le=60, description="`zile` of the daily lista poll")
    expiring_lead_hours: float = Field(24.0, description="hours before UIT expiry that uit-expiring is emitted")
    poll_tick: float = Field(30.0, description="seconds between runs of the poll/expiry job")
    poll_concurrency: int = Field(4, ge=1, description="companies polled in parallel by one job run")
    max_probes_per_poll: int = Field(100, ge=0, description="targeted `info?uit=` probes per company poll")
    manual_poll_min_seconds: float = Field(30.0, description="minimum gap between manual polls of one company")
    anaf_timeout: float = 30.0
    anaf_budget_database: str = Field("spvhub_anaf_budget",
                                      description="database of the ANAF call budget shared by every service")


@lru_cache
def get_settings() -> Settings:
    return Settings()

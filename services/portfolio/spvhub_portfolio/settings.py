"""Settings of the portfolio service (env prefix SPVHUB_, see spvhub_common.settings)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from spvhub_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "portfolio"
    http_port: int = 18102
    auth_url: str = Field("http://127.0.0.1:18101", description="auth's base URL (internal connection tokens)")
    rights_recheck_interval_seconds: float = Field(86400, description="how often each connection's rights are "
                                                                     "re-checked (default daily)")
    rights_retry_incomplete_seconds: float = Field(1800, description="retry of a failed or incomplete discovery")
    registry_max_age_seconds: float = Field(86400, description="registry data older than this is refreshed")
    jobs_tick_seconds: float = Field(300, description="how often the jobs look for due work")
    probe_concurrency: int = Field(8, description="parallel rights probes per discovery")
    anaf_budget_database: str = Field("spvhub_anaf_budget",
                                      description="database holding the ANAF budget shared by every service "
                                                  "(schema anaf_budget); empty = this service's database")


@lru_cache
def get_settings() -> Settings:
    return Settings()

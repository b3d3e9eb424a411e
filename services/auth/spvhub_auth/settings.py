"""Settings of the auth service (env prefix SPVHUB_, see spvhub_common.settings)."""
from __future__ import annotations

from functools import lru_cache

from spvhub_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auth"


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Typed settings blocks every service composes (pydantic-settings, env prefix `SPVHUB_`).

A service subclasses `ServiceSettings`; outside `env=dev|test` placeholder secrets are refused.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDERS = {"", "changeme", "change-me", "secret", "dev", "spvhub-dev-secret", "dev-only-key"}


class ServiceSettings(BaseSettings):
    """Settings shared by all services; each service adds its own fields."""

    model_config = SettingsConfigDict(env_prefix="SPVHUB_", extra="ignore")

    service_name: str = "spvhub"
    env: Literal["dev", "test", "prod", "staging"] = "dev"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"

    # PostgreSQL: one database per service, named spvhub_<service> unless pg_database is set.
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_user: str = "postgres"
    pg_password: SecretStr = SecretStr("")
    pg_database: str = ""
    pg_pool_size: int = 10

    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_topic_prefix: str = ""

    s3_endpoint: str = "127.0.0.1:19000"
    s3_access_key: str = "spvhub-dev"
    s3_secret_key: SecretStr = SecretStr("spvhub-dev-secret")
    s3_secure: bool = False
    s3_bucket: str = "spvhub-archive"
    s3_retention_days: int = 3650

    otel_exporter_otlp_endpoint: str = ""
    jwks_url: str = "http://127.0.0.1:18101/.well-known/jwks.json"
    jwt_issuer: str = "spvhub-auth"
    jwt_audience: str = "spvhub"
    service_token: SecretStr = SecretStr("dev-service-token")

    anaf_base: str = "http://127.0.0.1:18080"
    anaf_env: str = "test"
    clock_url: str = Field("", description="dev/test only: follow this clock (the ANAF emulator's /__admin/clock)")
    public_base_url: str = "http://127.0.0.1:18000"

    outbox_poll_interval: float = Field(0.2, description="seconds between outbox relay polls when idle")

    @property
    def database_name(self) -> str:
        return self.pg_database or f"spvhub_{self.service_name}"

    def dsn(self, database: str | None = None) -> str:
        pw = self.pg_password.get_secret_value()
        auth = f"{self.pg_user}:{pw}" if pw else self.pg_user
        return f"postgresql+asyncpg://{auth}@{self.pg_host}:{self.pg_port}/{database or self.database_name}"

    def secret_fields(self) -> dict[str, SecretStr]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, SecretStr)}

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> ServiceSettings:
        if self.env in ("dev", "test"):
            return self
        bad = [k for k, v in self.secret_fields().items() if v.get_secret_value().strip().lower() in PLACEHOLDERS
               and k != "pg_password"]
        if bad:
            raise ValueError(f"placeholder secrets are refused outside dev/test: {', '.join(sorted(bad))}")
        return self

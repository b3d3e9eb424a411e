"""Typed settings blocks every service composes (pydantic-settings, env prefix `SPVHUB_`).

A service subclasses `ServiceSettings`. The default `env` is the strict one (`prod`): ./dev, the tests and the
demo say `dev`/`test` explicitly, so a deployment that forgets SPVHUB_ENV cannot start on the public dev secrets.
Outside `env=dev|test` every placeholder secret (the repository's public dev values, MinIO's factory password,
anything starting with `dev-` or naming itself a placeholder) is refused at start.
"""
from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from spvhub_common.anaf.config import (
    FAMILIES,
    PROD_API_BASE,
    PROD_OAUTH_BASE,
    PROD_PUBLIC_BASE,
    PROD_SPV_BASE,
    AnafConfig,
)

# Values published in this repository (stack.env, docker-compose, code defaults) or shipped as factory defaults.
PLACEHOLDERS = {"", "changeme", "change-me", "changeit", "secret", "password", "dev", "test", "spvhub-dev",
                "spvhub-dev-secret", "dev-only-key", "dev-service-token", "minioadmin", "postgres", "admin"}
PLACEHOLDER_MARKERS = ("dev-only", "placeholder", "changeme", "change-me", "replace-me", "example")
MIN_SERVICE_TOKEN_LENGTH = 16
# Credentials a deployment may leave empty (PostgreSQL by certificate or peer, an SMTP relay without login);
# when set, they must not be placeholders either.
OPTIONAL_SECRETS = frozenset({"pg_password", "smtp_password"})


def is_placeholder(value: str) -> bool:
    """A secret that anyone can read in this repository or in a vendor's manual."""
    v = value.strip().lower()
    return v in PLACEHOLDERS or v.startswith("dev-") or any(m in v for m in PLACEHOLDER_MARKERS)



def split_list(v: object) -> object:
    """A list setting from the environment: a JSON list or a plain comma-separated list."""
    if isinstance(v, str):
        text = v.strip()
        return json.loads(text) if text.startswith("[") else [x.strip() for x in text.split(",") if x.strip()]
    return v


def valid_cidrs(v: list[str]) -> list[str]:
    for cidr in v:
        ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad entry
    return v

class ServiceSettings(BaseSettings):
    """Settings shared by all services; each service adds its own fields."""

    # A refused configuration must not print the values it was given (pydantic echoes the input otherwise).
    model_config = SettingsConfigDict(env_prefix="SPVHUB_", extra="ignore", hide_input_in_errors=True)

    service_name: str = "spvhub"
    env: Literal["dev", "test", "prod", "staging"] = "prod"
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
    # One per installation, never changed once companies exist: CNP issuers' person keys derive from it
    # (spvhub_common.pii); the default is public and refused outside dev/test.
    pii_secret: SecretStr = SecretStr("dev-only-spvhub-pii-secret")

    # ANAF: one base URL per host family (anaf-api.md §0; spvhub_common.anaf.config), each defaulting to the real
    # host. `anaf_emulator_url`, when set, points all four at the emulator instead (dev/test; refused in prod).
    anaf_emulator_url: str = Field("", description="dev/test: every ANAF host family on this emulator base URL")
    anaf_oauth_base: str = Field(PROD_OAUTH_BASE, description="OAuth: authorize, token")
    anaf_api_base: str = Field(PROD_API_BASE, description="e-Factura / e-Transport with an access token")
    anaf_public_base: str = Field(PROD_PUBLIC_BASE, description="public registries, validare/transformare")
    anaf_spv_base: str = Field(PROD_SPV_BASE, description="SPV mailbox web service")
    anaf_env: Literal["prod", "test"] = Field("test", description="ANAF environment segment of api.anaf.ro paths")
    clock_url: str = Field("", description="dev/test only: follow this clock (the ANAF emulator's /__admin/clock)")
    public_base_url: str = "http://127.0.0.1:18000"

    outbox_poll_interval: float = Field(0.2, description="seconds between outbox relay polls when idle")

    # NoDecode: the environment gives a plain comma-separated list (or JSON), split by the validator below
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs of the reverse proxies (the gateway, the ingress) whose X-Forwarded-For is believed; "
                    "from any other peer the direct address is the client's")
    max_body_bytes: int = Field(1024 * 1024, ge=1024,
                                description="request bodies larger than this are refused (413 body_too_large); "
                                            "endpoints that take files declare their own larger limit")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: object) -> object:
        return split_list(v)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, v: list[str]) -> list[str]:
        return valid_cidrs(v)

    @property
    def anaf_bases(self) -> dict[str, str]:
        """The base URL of each ANAF host family: the emulator's when `anaf_emulator_url` is set, else its own."""
        emulator = self.anaf_emulator_url.rstrip("/")
        return {family: emulator or str(getattr(self, f"anaf_{family}_base")).rstrip("/") for family in FAMILIES}

    def anaf_config(self, **overrides: object) -> AnafConfig:
        """The shared ANAF client's configuration for these settings (credentials, timeouts: `overrides`)."""
        values: dict[str, object] = {f"{family}_base": base for family, base in self.anaf_bases.items()}
        values["env"] = self.anaf_env
        values["pii_secret"] = self.pii_secret
        values.update(overrides)
        return AnafConfig.model_validate(values)

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
    def _refuse_single_anaf_base(self) -> ServiceSettings:
        # The one base URL for every ANAF host is gone (OAuth, API, registries and the mailbox are four hosts);
        # ignoring a leftover silently would send a dev setup to the real ANAF.
        if os.environ.get("SPVHUB_ANAF_BASE"):
            raise ValueError("SPVHUB_ANAF_BASE is no longer read: set SPVHUB_ANAF_EMULATOR_URL (dev/test) or the "
                             "four SPVHUB_ANAF_{OAUTH,API,PUBLIC,SPV}_BASE")
        if self.env == "prod" and self.anaf_emulator_url:
            raise ValueError("SPVHUB_ANAF_EMULATOR_URL is for dev/test: production talks to the real ANAF hosts")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> ServiceSettings:
        if self.env in ("dev", "test"):
            return self
        bad = [k for k, v in self.secret_fields().items()
               if is_placeholder(v.get_secret_value()) and not (k in OPTIONAL_SECRETS and not v.get_secret_value())]
        if "service_token" not in bad and len(self.service_token.get_secret_value()) < MIN_SERVICE_TOKEN_LENGTH:
            bad.append("service_token")
        if bad:
            raise ValueError(f"placeholder secrets are refused outside dev/test: {', '.join(sorted(bad))}")
        return self

"""Settings of the web service (env prefix SPVHUB_WEB_ for its own, SPVHUB_ENV/HTTP_* shared with ./dev).

The web has no database and no internal endpoints: its only outbound base is the public gateway.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from spvhub_common.settings import split_list, valid_cidrs

DEV_SESSION_KEY = "dev-only-web-session-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPVHUB_WEB_", extra="ignore", populate_by_name=True)

    env: Literal["dev", "test", "prod", "staging"] = Field(
        "prod", validation_alias=AliasChoices("SPVHUB_WEB_ENV", "SPVHUB_ENV"))
    http_host: str = Field("127.0.0.1", validation_alias=AliasChoices("SPVHUB_WEB_HTTP_HOST", "SPVHUB_HTTP_HOST"))
    http_port: int = Field(18110, validation_alias=AliasChoices("SPVHUB_WEB_HTTP_PORT", "SPVHUB_HTTP_PORT"))
    log_level: str = Field("INFO", validation_alias=AliasChoices("SPVHUB_WEB_LOG_LEVEL", "SPVHUB_LOG_LEVEL"))

    gateway_url: str = Field("http://127.0.0.1:18000",
                             description="the public gateway every page talks to (the only outbound base)")
    gateway_timeout: float = Field(95.0, description="seconds; the ANAF callback may wait for the shared budget")
    public_url: str = Field("", description="where people reach the web (default: the gateway URL); https "
                                            "there makes the session cookie Secure")
    session_key: SecretStr = Field(SecretStr(DEV_SESSION_KEY),
                                   description="encrypts and signs the session cookie (a Secret, >= 32 chars)")
    session_max_age_seconds: int = Field(30 * 24 * 3600, description="a session older than this is refused")
    # Only named in the CSP's form-action (the start and delegation forms redirect the browser to ANAF's authorize
    # page, and Chrome checks form-action on redirects); the web never calls them. The platform's own settings.
    anaf_oauth_base: str = Field("https://logincert.anaf.ro", validation_alias=AliasChoices(
        "SPVHUB_WEB_ANAF_OAUTH_BASE", "SPVHUB_ANAF_OAUTH_BASE"), description="ANAF OAuth (authorize) base")
    anaf_emulator_url: str = Field("", validation_alias=AliasChoices(
        "SPVHUB_WEB_ANAF_EMULATOR_URL", "SPVHUB_ANAF_EMULATOR_URL"), description="dev/test: the ANAF emulator")
    # The web sits behind the gateway: the person's address is what a trusted proxy names in X-Forwarded-For, and
    # the web passes it on, so the gateway's and auth's per-address limits and the sessions list see the person.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias=AliasChoices(
        "SPVHUB_WEB_TRUSTED_PROXIES", "SPVHUB_TRUSTED_PROXIES"),
        description="CIDRs of the proxies in front of the web (the gateway) whose X-Forwarded-For is believed")
    default_locale: Literal["ro", "en"] = "ro"
    page_sizes: list[int] = Field(default_factory=lambda: [20, 50, 100])

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: object) -> object:
        return split_list(v)

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, v: list[str]) -> list[str]:
        return valid_cidrs(v)

    @property
    def base_url(self) -> str:
        return (self.public_url or self.gateway_url).rstrip("/")

    @property
    def anaf_authorize_origin(self) -> str:
        """scheme://host[:port] of the page ANAF's authorization starts on (the emulator's in dev/test)."""
        parts = urlsplit(self.anaf_emulator_url or self.anaf_oauth_base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")

    @model_validator(mode="after")
    def _refuse_dev_key(self) -> Settings:
        key = self.session_key.get_secret_value()
        if self.env not in ("dev", "test") and (key == DEV_SESSION_KEY or len(key) < 32):
            raise ValueError("web session_key: set a random secret of at least 32 characters outside dev/test")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Settings of the notifier service (env prefix SPVHUB_, see spvhub_common.settings)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from spvhub_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "notifier"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 11025
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "spvhub <notificari@spvhub.local>"

    invitations_url: str = Field("http://127.0.0.1:18103", description="internal base URL of invitations")
    auth_url: str = Field("", description="internal base URL of auth (default: the one serving jwks_url)")
    # Person-facing links (e-mails, the inbox): the UI base plus a path per notification kind. The defaults are
    # spvhub web's screens behind the gateway; an integrator with its own front end sets both.
    ui_base_url: str = Field("", description="where people open links (default: app_base_url, public_base_url)")
    app_base_url: str = Field("", description="older name of ui_base_url")
    ui_paths: dict[str, str] = Field(default_factory=dict, description="per kind, a path replacing the default "
                                     "(domain.KINDS), with {cif}-style placeholders; JSON in SPVHUB_UI_PATHS")

    email_send_interval: float = Field(1.0, description="seconds between runs of the e-mail sender")
    email_batch: int = 50
    email_retry_base: float = Field(2.0, description="first retry delay (seconds); doubles per attempt")
    email_retry_max: float = Field(60.0, description="longest delay between two attempts (seconds)")
    email_max_attempts: int = Field(500, description="attempts before an e-mail is given up (failed)")
    email_lease: float = Field(120.0, description="seconds an e-mail being sent is reserved for one sender")
    digest_interval: float = Field(3600.0, description="seconds between invoice digests")

    @property
    def auth_base(self) -> str:
        return (self.auth_url or self.jwks_url.split("/.well-known/")[0]).rstrip("/")

    @property
    def links_base(self) -> str:
        return (self.ui_base_url or self.app_base_url or self.public_base_url).rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()

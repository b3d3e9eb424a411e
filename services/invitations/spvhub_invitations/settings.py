"""Settings of the invitations service (env prefix SPVHUB_, see spvhub_common.settings)."""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from spvhub_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "invitations"
    invitation_token_key: SecretStr = Field(
        SecretStr("dev-only-invitation-token-key"),
        description="HMAC key from which invitation link tokens are derived (a Secret; rotate = old links die)")
    expiry_job_interval: float = Field(60.0, description="seconds between scans for expired invitations")
    max_bulk: int = Field(500, description="most invitations in one POST /api/invitations")
    # Person-facing link in the invitation e-mail: the UI base (default: the public base URL, where the gateway
    # routes spvhub web) plus this path; an integrator with its own front end points both at it.
    ui_base_url: str = Field("", description="where people open links (default: public_base_url, spvhub web)")
    ui_join_path: str = Field("/join?invitation={token}", description="the invitation link's path ({token})")
    access_wait_seconds: float = Field(3.0, description="how long accept/decline waits for the access read model "
                                                        "(the claimer's verification arrives through Kafka)")

    @model_validator(mode="after")
    def _refuse_dev_token_key(self) -> Settings:
        key = self.invitation_token_key.get_secret_value()
        if self.env not in ("dev", "test") and (key.startswith("dev-") or len(key) < 32):
            raise ValueError("invitation_token_key: set a random secret of at least 32 characters outside dev/test")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

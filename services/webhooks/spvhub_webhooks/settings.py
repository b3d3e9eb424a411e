"""Settings of the webhooks service (env prefix SPVHUB_, see spvhub_common.settings).

The key that encrypts endpoint secrets at rest has a dev-only default that is refused outside dev/test. Outside
dev/test targets must be HTTPS and resolve to public addresses only.
"""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from spvhub_common.settings import ServiceSettings

# Fixed, public, dev-only material: never valid outside env=dev|test.
DEV_TOKEN_KEY_SPEC = "dev1:ZGV2LW9ubHktc3B2aHViLXdlYmhvb2tzLWtleS0zMmI="  # b"dev-only-spvhub-webhooks-key-32b"


class Settings(ServiceSettings):
    service_name: str = "webhooks"
    http_port: int = 18107

    # Endpoint secrets at rest: SecretBox spec `kid:base64key[,kid2:...]` (the same form as auth's).
    token_key_spec: SecretStr = SecretStr(DEV_TOKEN_KEY_SPEC)
    token_key_active: str = "dev1"

    max_endpoints_per_tenant: int = Field(20, description="endpoints one company may register")
    max_endpoint_cifs: int = Field(1000, description="companies one endpoint may cover")
    # Sending: every due delivery is leased (so a crashed sender's rows come back after the lease) and posted.
    send_interval: float = Field(1.0, description="seconds between scans for due deliveries when idle")
    send_batch: int = Field(50, description="deliveries leased per scan")
    send_concurrency: int = Field(10, description="requests in flight per replica")
    lease_seconds: float = Field(60.0, description="a leased delivery not finished by then is sent again")
    request_timeout: float = Field(10.0, description="the whole request to a receiver, in seconds")
    connect_timeout: float = Field(5.0, description="connecting to a receiver, in seconds")
    max_response_bytes: int = Field(64 * 1024, description="most of a receiver's answer that is read")
    # Retries: exponential backoff from `retry_base_seconds`, each wait at most `retry_max_seconds`, for
    # `retry_window_seconds` after the event (at least 24 hours); an endpoint that failed every attempt for
    # `disable_after_seconds` is disabled and its tenant's owners and administrators are told.
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    retry_window_seconds: float = 26 * 3600.0
    disable_after_seconds: float = 24 * 3600.0
    replay_max: int = Field(10_000, description="most deliveries one range replay re-queues")

    @property
    def strict_targets(self) -> bool:
        """HTTPS only and no private, loopback or link-local targets (everywhere but dev and test)."""
        return self.env not in ("dev", "test")

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.env not in ("dev", "test") and self.token_key_spec.get_secret_value().strip() == DEV_TOKEN_KEY_SPEC:
            raise ValueError("dev-only secrets are refused outside dev/test: token_key_spec")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Settings of the auth service (env prefix SPVHUB_, see spvhub_common.settings).

The ANAF token encryption key and the OAuth client secret have dev-only defaults that are refused outside
dev/test; production reads them from a Secret.
"""
from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from spvhub_common.settings import ServiceSettings

# Fixed, public, dev-only material: never valid outside env=dev|test (see _refuse_dev_secrets).
DEV_TOKEN_KEY_SPEC = "dev1:ZGV2LW9ubHktc3B2aHViLXRva2VuLWtleS0zMmJ5dGU="  # b"dev-only-spvhub-token-key-32byte"
DEV_ANAF_CLIENT_ID = "cbe25460f48828bc981fb8e80bd40cab74fafbb013023e5f"  # emulator demo.json "spvhub dev"
DEV_ANAF_CLIENT_SECRET = "d0797ecc5e66c8dafbf28f1fb20f9c24cf531cdb55d2efe2369fc6c92b60107a"


class Settings(ServiceSettings):
    service_name: str = "auth"
    http_port: int = 18101

    # Secrets at rest (ANAF tokens, JWT signing keys): SecretBox spec `kid:base64key[,kid2:...]`.
    token_key_spec: SecretStr = SecretStr(DEV_TOKEN_KEY_SPEC)
    token_key_active: str = "dev1"

    # ANAF OAuth application (registered at anaf.ro; emulator: the scenario's application).
    anaf_client_id: str = DEV_ANAF_CLIENT_ID
    anaf_client_secret: SecretStr = SecretStr(DEV_ANAF_CLIENT_SECRET)
    # default: {public_base_url}/anaf/callback, spvhub web's page (it completes the authorization through
    # /api/auth/anaf/callback; an API client following it without text/html in Accept gets that JSON). Without
    # spvhub web behind the gateway, set it to {public_base_url}/api/auth/anaf/callback.
    anaf_redirect_uri: str = ""
    anaf_services: list[str] = Field(default_factory=lambda: ["efactura", "etransport"])
    anaf_http_timeout: float = 30.0
    anaf_budget_database: str = Field("spvhub_anaf_budget",
                                      description="database of the ANAF call budget shared by every service")

    # Platform tokens and logins.
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    # Failed logins slow an account down, never lock it: after `login_free_failures` consecutive failures each
    # next attempt waits base, 2*base, 4*base ... seconds (429 login_throttled, Retry-After), at most the cap.
    login_free_failures: int = 3
    login_delay_base_seconds: float = 1.0
    login_delay_max_seconds: float = 30.0
    login_failure_memory_seconds: int = 900  # consecutive failures older than this are forgotten
    login_ip_max_failures: int = 20      # failed logins per client address and window (429)
    login_ip_window_seconds: int = 900
    # Token refresh: attempts per client address, and rotations per user, per window (429 rate_limited).
    refresh_ip_max: int = 60
    refresh_user_max: int = 20
    refresh_window_seconds: int = 60
    # Delegation links (public): openings per client address and per link, per window (429 rate_limited).
    delegation_open_ip_max: int = 20
    delegation_open_link_max: int = 10
    delegation_open_window_seconds: int = 600
    password_min_length: int = 10
    # API keys: requests per key and window (429 api_key_rate_limited, Retry-After); the longest validity.
    api_key_rate_limit: int = 600
    api_key_rate_window_seconds: int = 60
    api_key_max_days: int = 730
    api_key_usage_keep_days: int = 400  # the usage log of every key is kept this long (an audit year and more)

    # Account e-mails (verification, change of address, password reset): single-use links to spvhub web's
    # screens (an integrator with its own front end sets the base and the paths; {token} is the link's token).
    ui_base_url: str = Field("", description="where people open links (default: public_base_url, spvhub web)")
    verify_email_path: str = "/verify-email?token={token}"
    reset_password_path: str = "/reset-password?token={token}"
    email_verification_ttl_hours: int = 48
    email_change_ttl_hours: int = 24
    password_reset_ttl_minutes: int = 60
    # Requests that e-mail a link (public: resend, forgot password): per client address (429) and per address
    # asked for (over the limit the answer stays the same 202, only no further e-mail goes out).
    account_email_ip_max: int = 20
    account_email_address_max: int = 5
    account_email_window_seconds: int = 3600

    # ANAF connection lifecycle.
    oauth_state_ttl_seconds: int = 600
    access_wait_seconds: float = 3.0     # how long a start waits for the access read model to catch up
    renew_at_fraction: float = 0.75      # renew when this share of the access token's life has passed
    family_horizon_days: int = 730       # refresh-token family horizon from the certificate login
    warning_offsets_days: list[int] = Field(default_factory=lambda: [30, 14, 7, 1])
    renewal_interval_seconds: float = 60.0
    renewal_lease_seconds: int = 300
    renewal_backoff_base_seconds: int = 60
    renewal_backoff_max_seconds: int = 3600
    delegation_ttl_hours: int = 24
    callback_result_url: str = ""        # optional: the browser is sent here (303) after the callback

    @property
    def links_base(self) -> str:
        return (self.ui_base_url or self.public_base_url).rstrip("/")

    @property
    def redirect_uri(self) -> str:
        return self.anaf_redirect_uri or f"{self.public_base_url.rstrip('/')}/anaf/callback"

    @model_validator(mode="after")
    def _refuse_dev_secrets(self) -> Settings:
        if self.env in ("dev", "test"):
            return self
        bad = []
        if self.token_key_spec.get_secret_value().strip() == DEV_TOKEN_KEY_SPEC:
            bad.append("token_key_spec")
        if self.anaf_client_secret.get_secret_value() == DEV_ANAF_CLIENT_SECRET:
            bad.append("anaf_client_secret")
        if bad:
            raise ValueError(f"dev-only secrets are refused outside dev/test: {', '.join(bad)}")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

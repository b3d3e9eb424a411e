"""Configuration of the ANAF client: one base URL per host family, credentials, timeouts.

Against the real ANAF only the bases and credentials change; in dev every base points at the emulator.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

PROD_OAUTH_BASE = "https://logincert.anaf.ro/anaf-oauth2/v1"
PROD_API_BASE = "https://api.anaf.ro"
PROD_PUBLIC_BASE = "https://webservicesp.anaf.ro"
EMULATOR_BASE = "http://127.0.0.1:18080"


class AnafConfig(BaseModel):
    """Where ANAF lives and who we are. `client_secret` is a SecretStr: never in repr, logs or errors."""

    model_config = ConfigDict(frozen=True)

    oauth_base: str = PROD_OAUTH_BASE
    api_base: str = PROD_API_BASE
    public_base: str = PROD_PUBLIC_BASE
    env: Literal["prod", "test"] = "prod"
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    redirect_uri: str = ""
    # "basic" = HTTP Basic (documented); "body" = client_id/secret in the form (used by Odoo OCA, Storno).
    client_auth: Literal["basic", "body"] = "basic"
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    pool_timeout: float = 30.0
    user_agent: str = "spvhub-anaf-client/0.1"

    @classmethod
    def for_emulator(cls, base_url: str = EMULATOR_BASE, **overrides: object) -> AnafConfig:
        """Every host family on one emulator base URL (env `test` unless overridden)."""
        base = base_url.rstrip("/")
        values: dict[str, object] = {
            "oauth_base": f"{base}/anaf-oauth2/v1",
            "api_base": base,
            "public_base": base,
            "env": "test",
        }
        values.update(overrides)
        return cls.model_validate(values)

"""Configuration of the ANAF client: one base URL per host family, credentials, timeouts.

ANAF serves its interfaces from four host families (anaf-api.md §0), and a path of one family does not exist
on another (there is no `https://api.anaf.ro/anaf-oauth2/v1/token`):

- `oauth`: https://logincert.anaf.ro - /anaf-oauth2/v1/{authorize,token}
- `api`: https://api.anaf.ro - /{prod,test}/FCTEL/rest/..., /{prod,test}/ETRANSPORT/ws/v1/...
- `public`: https://webservicesp.anaf.ro - /api/PlatitorTvaRest/v9/tva, /prod/FCTEL/rest/{validare,transformare}/...
- `spv`: https://webserviced.anaf.ro - /SPVWS2/rest/...

Against the real ANAF only the bases and credentials change; in dev/test every base points at the emulator
(`for_emulator`), which serves every family on one base URL.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

PROD_OAUTH_BASE = "https://logincert.anaf.ro"
PROD_API_BASE = "https://api.anaf.ro"
PROD_PUBLIC_BASE = "https://webservicesp.anaf.ro"
PROD_SPV_BASE = "https://webserviced.anaf.ro"
EMULATOR_BASE = "http://127.0.0.1:18080"

FAMILIES = ("oauth", "api", "public", "spv")


class AnafConfig(BaseModel):
    """Where ANAF lives and who we are. `client_secret` is a SecretStr: never in repr, logs or errors."""

    model_config = ConfigDict(frozen=True)

    oauth_base: str = PROD_OAUTH_BASE
    api_base: str = PROD_API_BASE
    public_base: str = PROD_PUBLIC_BASE
    spv_base: str = PROD_SPV_BASE
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
    # Transient faults (5xx, timeouts, connection errors, WAF pages, "eroare tehnica") of calls that are safe to
    # repeat: attempts in all, first backoff in seconds (doubled each time, jittered), and an overall deadline per
    # attempt (it also covers the wait for the shared budget). Never applied to limits, nor to an upload.
    retries: int = 4
    backoff: float = 0.3
    attempt_deadline: float | None = None
    # The installation's PII secret (spvhub_common.pii): a natural person's CNP sent as `cif=` is counted in the
    # shared budget's tables under its person key, never in clear.
    pii_secret: SecretStr = SecretStr("")

    def base(self, family: str) -> str:
        """The base URL of one host family, without a trailing slash."""
        if family not in FAMILIES:
            raise ValueError(f"unknown ANAF host family {family!r}")
        return str(getattr(self, f"{family}_base")).rstrip("/")

    @classmethod
    def for_emulator(cls, base_url: str = EMULATOR_BASE, **overrides: object) -> AnafConfig:
        """Every host family on one emulator base URL (env `test` unless overridden)."""
        base = base_url.rstrip("/")
        values: dict[str, object] = {f"{family}_base": base for family in FAMILIES}
        values["env"] = "test"
        values.update(overrides)
        return cls.model_validate(values)

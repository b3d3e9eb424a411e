"""Settings of the efactura service (env prefix SPVHUB_, see spvhub_common.settings)."""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode
from spvhub_common.settings import ServiceSettings

# The ANAF emulator's stand-in signing certificate (emulator/anaf_emulator/keys/xmldsig_cert.pem, CN=ANAF TEST): its
# key is published in the repository, so it is trusted only against the emulator (dev, test).
EMULATOR_SIGNER_SHA256 = "564da1a341dec7a9c9a757be8ce6fbae80c2e9312e786d15c8f07822714506a3"


class Settings(ServiceSettings):
    service_name: str = "efactura"
    http_port: int = 18104

    # auth's internal token endpoint
    auth_url: str = "http://127.0.0.1:18101"

    # ANAF client (the four host bases and the environment: spvhub_common.settings)
    anaf_timeout: float = Field(30.0, description="seconds per ANAF HTTP call")
    anaf_retries: int = Field(4, description="attempts per call on 5xx/timeouts (exponential backoff)")
    anaf_backoff: float = 0.3
    anaf_calls_per_minute: int = Field(950, description="shared budget window (ANAF allows 1000/min)")
    anaf_download_cap: int = Field(10, description="descarcare per message per day (ANAF: 10)")
    anaf_budget_database: str = Field("spvhub_anaf_budget",
                                      description="database of the budget shared by every service and replica")
    anaf_transform_pdf: bool = Field(False, description="also fetch ANAF's transformare PDF (optional)")

    # sync
    sync_interval_seconds: int = Field(900, description="default per-company sync interval (15 min)")
    scheduler_tick_seconds: float = 2.0
    max_concurrent_companies: int = Field(8, description="companies downloading at once (their download slots)")
    downloads_per_company: int = 8
    list_ahead_companies: int = Field(
        8, ge=0, description="companies that may list while every download slot is taken: a freed slot goes to a "
                       "company already listed, rather than waiting for its listing")
    window_start_margin_seconds: int = Field(600, description="start = now - 60d + margin (clock skew)")
    window_end_margin_seconds: int = Field(60, description="end = now - margin")
    overlap_seconds: int = Field(3600, description="re-list this much before the watermark (late indexing)")
    lease_seconds: float = Field(120.0, description="per-company sync lease; renewed while syncing")
    reconcile_interval_seconds: int = Field(86400, description="full 60-day re-list per company")
    expiring_days: int = Field(5, description="message-expiring when not archived N days before purge")
    urgent_days: int = Field(7, description="messages this close to purge are downloaded first")
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 6 * 3600.0

    # archive
    retention_days: int = Field(3650, description="Object Lock COMPLIANCE retention of signed originals")
    max_zip_bytes: int = 30 * 1024 * 1024
    max_member_bytes: int = 60 * 1024 * 1024
    max_zip_ratio: int = 200
    max_zip_members: int = 8
    trusted_signer_sha256: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SHA-256 fingerprints (hex, colons allowed) of the ANAF certificates whose signatures are `valid`; "
                    "a signature that verifies with any other certificate is `valid_untrusted_signer`. Production: "
                    "ANAF's current production signer(s), and the earlier ones to keep older messages `valid`")
    trust_emulator_signer: bool | None = Field(
        None, description="also trust the ANAF emulator's public test certificate (default: in env dev/test only; "
                          "refused in prod, where anyone could sign with its published key)")

    parse_processes: int = Field(2, description="worker processes for unzip/parse/signature checks (0: threads)")
    io_threads: int = Field(48, description="worker threads for the (synchronous) blob store client and parsing")

    # API
    export_max_items: int = 100_000

    # outgoing submissions (env SPVHUB_SUBMISSION_*)
    submission_lease_seconds: float = 60.0
    submission_worker_interval_seconds: float = 2.0
    submission_batch: int = 20
    submission_first_check_seconds: float = 2.0
    submission_check_base_seconds: float = 5.0
    submission_check_max_seconds: float = 3600.0
    submission_retry_seconds: float = 60.0
    submission_unknown_check_seconds: float = 10.0
    submission_unknown_grace_seconds: float = Field(
        6 * 3600.0, description="how long after an interrupted upload ANAF's lists must show no trace of it before it "
        "is uploaded again (ANAF's processing plus its indexing lag, seconds to ~15 min live; generous on purpose)")
    submission_max_xml_bytes: int = Field(10 * 1024 * 1024, description="ANAF's upload limit")
    submission_offline_validation: bool = Field(
        True, description="validate offline (UBL 2.1 schema + EN 16931/CIUS-RO Schematron) before anything is stored "
        "or sent; a request may turn it off (`offline_validation=false`) to let ANAF judge the document")
    submission_deadline_warning_working_hours: float = Field(
        24.0, description="the filing clock: `due_soon` and `efactura.filing-deadline-approaching` this many working "
        "hours before the legal deadline (5 working days after the issue date)")
    submission_deadline_scan_seconds: float = Field(300.0, description="how often the filing deadlines are scanned")
    submission_deadline_scan_days: int = Field(21, description="invoices issued this many days back at most are "
                                               "scanned")

    @field_validator("trusted_signer_sha256", mode="before")
    @classmethod
    def _split_fingerprints(cls, v: object) -> object:
        # env: a JSON list or a plain comma-separated list
        if isinstance(v, str):
            return json.loads(v) if v.strip().startswith("[") else [x for x in v.split(",") if x.strip()]
        return v

    @field_validator("trusted_signer_sha256")
    @classmethod
    def _valid_fingerprints(cls, v: list[str]) -> list[str]:
        out = [x.strip().lower().replace(":", "") for x in v]
        for fp in out:
            if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
                raise ValueError(f"{fp!r} is not a SHA-256 fingerprint (64 hex digits)")
        return out

    @model_validator(mode="after")
    def _emulator_signer_outside_prod(self) -> Settings:
        if self.trust_emulator_signer and self.env == "prod":
            raise ValueError("trust_emulator_signer: the emulator's signing key is public; never trusted in prod")
        return self

    @property
    def trusted_signers(self) -> list[str]:
        """The fingerprints a signature must come from to be `valid`."""
        emulator = self.env in ("dev", "test") if self.trust_emulator_signer is None else self.trust_emulator_signer
        return [*self.trusted_signer_sha256, *([EMULATOR_SIGNER_SHA256] if emulator else [])]


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Run-time switches: the project's decisions on ANAF's open questions and the published limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass
class Switches:
    list_cui_field: str = "inventory"  # inventory | echo
    refresh_keeps_old: bool = False
    family_horizon_days: int | None = 730
    invalid_token_status: int = 401  # 401 | 403
    old_serial_tokens: str = "refuse"  # refuse | no_rights | accept
    download_cap_per_message: int = 10
    list_cap_per_cui: int = 1500
    paged_list_cap_per_cui: int = 100_000
    stare_cap_per_index: int = 100
    rasp_cap_per_cui: int = 1000
    et_list_cap: int = 1000
    rate_limit_per_minute: int = 1000
    auto_select_certificate: str | None = None
    processing_delay_seconds: float = 1.0
    indexing_lag_seconds: float = 0.0
    download_band_hours: float = 24.0
    forced_outcome: str | None = None  # ok | nok | rejected
    revoke_mode: str = "my_policy"  # my_policy | ok
    public_rate_limit: str = "enforce"  # enforce | ignore
    public_cod_wrapper: bool = False
    end_time_quotes_clock: bool = True
    et_lista_includes_carrier: bool = False
    # anaf-api.md §11.14: e-Transport `lista` with `cod_decl`, `id_incarcare`, `nr_linii`, `tip_op` as JSON numbers
    # (as e-factura-go decodes them) instead of the swagger's strings
    et_lista_numbers: bool = False
    # §11.13: which `tip` the uploading buyer's copy of a self-billed invoice gets: "sent" (FACTURA TRIMISA, the
    # default) or "received" (FACTURA PRIMITA, e-factura-go's fixture); the seller's copy gets the other one
    self_billing_uploader_tip: str = "sent"
    # §11.17: the next N uploads are answered "A aparut o eroare tehnica. Cod: 1814" (ExecutionStatus 1) and, when
    # `upload_error_1814_files`, filed all the same (the answer lies about the outcome)
    upload_error_1814: int = 0
    upload_error_1814_files: bool = True
    no_certificate_page: bool = True
    # semnatura_<index>.xml: ANAF production's detached signature, or its test environment's enveloped copy
    # pretty-printed after signing (../shared/anaf-api.md 2.6)
    signature_shape: str = "production"  # production | test

    _CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "list_cui_field": ("inventory", "echo"),
        "invalid_token_status": (401, 403),
        "old_serial_tokens": ("refuse", "no_rights", "accept"),
        "forced_outcome": (None, "ok", "nok", "rejected"),
        "revoke_mode": ("my_policy", "ok"),
        "public_rate_limit": ("enforce", "ignore"),
        "self_billing_uploader_tip": ("sent", "received"),
        "signature_shape": ("production", "test"),
    }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, values: dict[str, Any]) -> None:
        """Apply a partial update; raises ValueError on an unknown name or a bad value."""
        known = {f.name: f for f in fields(self)}
        staged: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise ValueError(f"unknown switch {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool) and not isinstance(value, bool):
                if str(value).lower() in ("true", "1", "yes", "on"):
                    value = True
                elif str(value).lower() in ("false", "0", "no", "off"):
                    value = False
                else:
                    raise ValueError(f"switch {name!r} expects a boolean")
            elif name in ("family_horizon_days",) and value in (0, "0", "off", None, "null"):
                value = None
            elif isinstance(current, int) and not isinstance(current, bool) and value is not None:
                value = int(value)
            elif isinstance(current, float) and value is not None:
                value = float(value)
            elif name == "family_horizon_days":
                value = int(value)
            choices = self._CHOICES.get(name)
            if choices is not None and value not in choices:
                raise ValueError(f"switch {name!r} accepts {list(choices)}")
            staged[name] = value
        for name, value in staged.items():
            setattr(self, name, value)

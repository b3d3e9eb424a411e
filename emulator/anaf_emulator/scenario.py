"""Scenario files (JSON or TOML): OAuth applications, certificate holders, companies, mailbox, generators."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .cif import is_valid_taxpayer


@dataclass
class Application:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    services: set[str]  # "E-Factura", "E-Transport"
    name: str = ""


@dataclass
class Certificate:
    id: str
    name: str
    cnp: str
    serial: str
    rights: list[str]
    pin: str = "1234"
    issuer: str = "Anaf Issue CA2"
    old_serials: list[str] = field(default_factory=list)
    revoked: bool = False


@dataclass
class Company:
    cui: str
    name: str
    street: str = "Str. Exemplu nr. 1"
    number: str = "1"
    city: str = "Cluj-Napoca"
    county: str = "CJ"  # auto code, B = Bucuresti
    postal_code: str = "400001"
    nr_reg_com: str = ""
    vat: bool = True
    efactura_registered: bool = False
    executare_silita: bool = False
    caen: str = "6920"
    phone: str = ""
    registered_since: str = "2010-01-01"
    inactive: bool = False
    split_vat: bool = False
    vat_on_receipt: bool = False

    @property
    def address(self) -> str:
        where = "MUN. BUCUREŞTI, SECTOR 1" if self.county == "B" else f"JUD. {self.county}, {self.city.upper()}"
        return f"{where}, {self.street.upper()}, NR.{self.number}"


@dataclass
class Scenario:
    raw: dict[str, Any]
    seed: int
    applications: list[Application]
    certificates: list[Certificate]
    companies: list[Company]
    mailbox: list[dict[str, Any]]
    generators: dict[str, Any]
    clock: dict[str, Any]
    switches: dict[str, Any]
    invoices: list[dict[str, Any]]
    transports: list[dict[str, Any]]


def _load_raw(source: Any) -> dict[str, Any]:
    if isinstance(source, dict):
        return source
    path = Path(str(source))
    if not path.exists():
        shipped = resources.files("anaf_emulator").joinpath("scenarios", str(source))
        if not shipped.is_file():
            raise FileNotFoundError(f"scenario not found: {source}")
        text = shipped.read_text(encoding="utf-8")
        suffix = Path(str(source)).suffix
    else:
        text = path.read_text(encoding="utf-8")
        suffix = path.suffix
    if suffix == ".toml":
        return tomllib.loads(text)
    return json.loads(text)


def load_scenario(source: Any) -> Scenario:
    """Parse and check a scenario; raises ValueError on inconsistent content."""
    raw = _load_raw(source)
    apps = [
        Application(
            client_id=a["client_id"],
            client_secret=a["client_secret"],
            redirect_uris=list(a["redirect_uris"]),
            services=set(a.get("services", ["E-Factura", "E-Transport"])),
            name=a.get("name", ""),
        )
        for a in raw.get("applications", [])
    ]
    for app in apps:
        if len(app.client_id) != 48 or len(app.client_secret) != 64:
            raise ValueError(f"application {app.name!r}: client_id must be 48 hex, secret 64 hex")
    certs = [
        Certificate(
            id=c["id"],
            name=c["name"],
            cnp=c.get("cnp", ""),
            serial=c["serial"],
            rights=[str(r) for r in c.get("rights", [])],
            pin=str(c.get("pin", "1234")),
            issuer=c.get("issuer", "Anaf Issue CA2"),
            revoked=bool(c.get("revoked", False)),
        )
        for c in raw.get("certificates", [])
    ]
    companies = []
    for c in raw.get("companies", []):
        known = {k: v for k, v in c.items() if k in Company.__dataclass_fields__}
        company = Company(**{**known, "cui": str(c["cui"])})
        # A natural person carrying on an economic activity is a taxpayer under their CNP (no VAT registration)
        if not is_valid_taxpayer(company.cui):
            raise ValueError(f"company {company.name!r}: CUI {company.cui} has a wrong control digit")
        companies.append(company)
    return Scenario(
        raw=raw,
        seed=int(raw.get("seed", 1)),
        applications=apps,
        certificates=certs,
        companies=companies,
        mailbox=list(raw.get("mailbox", [])),
        generators=dict(raw.get("generators", {})),
        clock=dict(raw.get("clock", {})),
        switches=dict(raw.get("switches", {})),
        invoices=list(raw.get("invoices", [])),
        transports=list(raw.get("transports", [])),
    )

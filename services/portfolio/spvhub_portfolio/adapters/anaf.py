"""Ports and adapters for what portfolio asks ANAF: the public VAT registry (v9) and the e-Factura list call
used to read the rights inventory and to probe rights, implemented over the shared ANAF client
(`spvhub_common.anaf.AnafClient`: each host family's base, the shared budget, ANAF's answers classified), and
auth's internal token endpoints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from spvhub_common.anaf import AnafBudget, AnafClient
from spvhub_common.anaf.errors import AnafError, NoRights, Unauthorized
from spvhub_common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class RegistryRecord:
    cif: str
    found: bool
    name: str = ""
    address: str = ""
    trade_register_no: str = ""
    vat_payer: bool = False
    efactura_registered: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ListProbe:
    """Outcome of `listaMesajeFactura` for one CIF: rights or not, and the `cui` field when ANAF sent one."""

    has_rights: bool
    cui_field: str | None = None
    anaf_text: str = ""


class RegistryPort(Protocol):
    async def lookup(self, cifs: list[str]) -> dict[str, RegistryRecord]:
        """Registry data of every CIF asked (found=False for ANAF's `notFound`); batches of <= 100."""


class EfacturaListPort(Protocol):
    async def list_messages(self, access_token: str, cif: str, days: int) -> ListProbe:
        """`listaMesajeFactura?zile=<days>&cif=<cif>`; raises AnafError subclasses for anything but
        messages / no messages / a rights error."""


def parse_registry_item(item: dict[str, Any]) -> RegistryRecord:
    g = item.get("date_generale") or {}
    tva = item.get("inregistrare_scop_Tva") or {}
    return RegistryRecord(
        cif=str(g.get("cui", "")).strip(), found=True, name=str(g.get("denumire") or "").strip(),
        address=str(g.get("adresa") or "").strip(), trade_register_no=str(g.get("nrRegCom") or "").strip(),
        vat_payer=bool(tva.get("scpTVA")), efactura_registered=bool(g.get("statusRO_e_Factura")), raw=item)


class ClientAnaf:
    """`RegistryPort` and `EfacturaListPort` over the shared `spvhub_common.anaf.AnafClient`: the registry on the
    public host, the list call on the API host, the shared budget spent and ANAF's answers classified there."""

    def __init__(self, client: AnafClient) -> None:
        self.client = client

    @property
    def budget(self) -> AnafBudget:
        return self.client.budget

    @budget.setter
    def budget(self, budget: AnafBudget) -> None:
        self.client.budget = budget

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- public registry --------------------------------------------------------------------------
    async def lookup(self, cifs: list[str]) -> dict[str, RegistryRecord]:
        unique = list(dict.fromkeys(cifs))
        out: dict[str, RegistryRecord] = {}
        if not unique:
            return out
        result = await self.client.registry_lookup(unique)  # batches of <= 100, today in Romania
        for company in result.found:
            rec = parse_registry_item(company.raw)
            if rec.cif:
                out[rec.cif] = rec
        for c in unique:
            out.setdefault(c, RegistryRecord(cif=c, found=False))
        return out

    # -- e-Factura list ----------------------------------------------------------------------------
    async def list_messages(self, access_token: str, cif: str, days: int) -> ListProbe:
        try:
            listed = await self.client.list_messages(cif, days, token=access_token)
        except NoRights as err:
            return ListProbe(False, None, err.text)
        # "Nu exista mesaje ..." comes back as an empty list: the certificate has rights on `cif`
        return ListProbe(True, listed.cui_field, "")


class ConnectionUnavailable(Exception):
    """Auth cannot give a token for this connection: `code` is `no_connection` or `reauthorization_required`."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


@dataclass(frozen=True)
class ConnectionToken:
    connection_id: str
    access_token: str
    company_cif: str
    status: str


class TokenPort(Protocol):
    async def access_token(self, connection_id: str) -> ConnectionToken: ...

    async def refresh(self, connection_id: str) -> ConnectionToken: ...


class AuthTokens:
    """Auth's internal endpoints (engineering.md): tokens stay in auth, portfolio asks per use."""

    def __init__(self, client: httpx.AsyncClient, service_token: str, service_name: str = "portfolio") -> None:
        self.client = client
        self.headers = {"X-Service-Token": service_token, "X-Service-Name": service_name}

    async def _call(self, method: str, path: str, connection_id: str) -> ConnectionToken:
        try:
            resp = await self.client.request(method, path, headers=self.headers, timeout=15)
        except httpx.HTTPError as e:
            raise ConnectionError(f"auth unreachable: {type(e).__name__}") from e
        if resp.status_code == 200:
            b = resp.json()
            return ConnectionToken(str(b.get("connection_id", connection_id)), b["access_token"],
                                   str(b.get("company_cif", "")), str(b.get("status", "active")))
        code = ""
        try:
            code = resp.json().get("error", {}).get("code", "")
        except (ValueError, AttributeError):
            pass
        if resp.status_code == 404:
            raise ConnectionUnavailable(code or "no_connection", "auth knows no such connection")
        if resp.status_code == 409:
            raise ConnectionUnavailable(code or "reauthorization_required",
                                        "the connection needs a new authorization by the certificate holder")
        if resp.status_code >= 500:
            raise ConnectionError(f"auth answered HTTP {resp.status_code}")
        raise ConnectionUnavailable(code or f"http_{resp.status_code}", f"auth answered HTTP {resp.status_code}")

    async def access_token(self, connection_id: str) -> ConnectionToken:
        return await self._call("GET", f"/internal/connections/{connection_id}/access-token", connection_id)

    async def refresh(self, connection_id: str) -> ConnectionToken:
        return await self._call("POST", f"/internal/connections/{connection_id}/refresh", connection_id)


async def list_with_refresh(anaf: EfacturaListPort, tokens: TokenPort, token: ConnectionToken, cif: str,
                            days: int) -> tuple[ListProbe, ConnectionToken]:
    """One list call; after a 401/403 ask auth to refresh once and retry (engineering.md contract)."""
    try:
        return await anaf.list_messages(token.access_token, cif, days), token
    except Unauthorized:
        fresh = await tokens.refresh(token.connection_id)
        return await anaf.list_messages(fresh.access_token, cif, days), fresh


__all__ = ["AnafError", "AuthTokens", "ClientAnaf", "ConnectionToken", "ConnectionUnavailable", "EfacturaListPort",
           "ListProbe", "RegistryPort", "RegistryRecord", "TokenPort", "list_with_refresh"]

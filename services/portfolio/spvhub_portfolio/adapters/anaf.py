"""Ports and adapters for what portfolio asks ANAF: the public VAT registry (v9) and the e-Factura list call
used to read the rights inventory and to probe rights, implemented over the shared ANAF client
(`spvhub_common.anaf.AnafClient`: each host family's base, the shared budget, ANAF's answers classified), and
auth's internal token endpoints.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from spvhub_common.anaf import AnafBudget, AnafClient
from spvhub_common.anaf.errors import AnafError, NoRights, Unauthorized
from spvhub_common.logging import get_logger
from spvhub_common.tokens import InternalToken, InternalTokenClient, TokenUnavailable

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
    """Auth's internal token endpoints through the platform's one client of them: tokens stay in auth, portfolio
    asks per use (no cache). auth's refusals become what discovery acts on: `ConnectionUnavailable` when a person
    must act (or the request was refused), `ConnectionError` when auth could not answer (retried later)."""

    def __init__(self, client: InternalTokenClient) -> None:
        self.client = client

    async def access_token(self, connection_id: str) -> ConnectionToken:
        return await self._call(self.client.access_token, connection_id)

    async def refresh(self, connection_id: str) -> ConnectionToken:
        return await self._call(self.client.refresh, connection_id)

    @staticmethod
    async def _call(ask: Callable[[str], Awaitable[InternalToken]], connection_id: str) -> ConnectionToken:
        try:
            t = await ask(connection_id)
        except TokenUnavailable as e:
            if e.status_code == 404:
                raise ConnectionUnavailable(e.code, "auth knows no such connection") from e
            if e.status_code == 409:
                raise ConnectionUnavailable(e.code, "the connection needs a new authorization by the certificate "
                                                    "holder") from e
            if e.status_code is None or e.status_code >= 500 or e.status_code < 400:
                raise ConnectionError(f"auth unreachable or failing: {e.message}") from e
            code = e.code if e.code != e.reason else f"http_{e.status_code}"
            raise ConnectionUnavailable(code, f"auth answered HTTP {e.status_code}") from e
        return ConnectionToken(t.connection_id, t.access_token, t.company_cif or "", t.status)


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

"""Ports and HTTP adapters for what portfolio asks ANAF: the public registry (PlatitorTvaRest v9) and the
e-Factura list call used to read the rights inventory and to probe rights. Every call spends the shared
budget (`spvhub_common.anaf.budget`) before it leaves the process.

Until the shared ANAF client lands in `spvhub_common.anaf`, this module speaks HTTP itself with the shared
budget, clocks and error classifier; swapping it for the shared client changes only `HttpAnaf`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from spvhub_common.anaf.budget import AnafBudget, BudgetKind
from spvhub_common.anaf.clock import Clock, local_date, next_local_midnight
from spvhub_common.anaf.errors import (
    AnafError,
    AnafUnavailable,
    DailyLimitReached,
    NoMessages,
    NoRights,
    RateLimited,
    Unauthorized,
    UnexpectedResponse,
    classify_text,
    is_waf_page,
    waf_error,
)
from spvhub_common.logging import get_logger

log = get_logger(__name__)

REGISTRY_BATCH = 100  # PlatitorTvaRest v9 refuses more than 100 CUIs per request


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


class HttpAnaf:
    """The registry and the e-Factura list call over HTTP (base URL: production ANAF or the emulator)."""

    def __init__(self, client: httpx.AsyncClient, budget: AnafBudget, clock: Clock, *, env: str = "test",
                 registry_path: str = "/api/PlatitorTvaRest/v9/tva", max_429_retries: int = 3) -> None:
        self.client = client
        self.budget = budget
        self.clock = clock
        self.env = env
        self.registry_path = registry_path
        self.max_429_retries = max_429_retries

    # -- public registry --------------------------------------------------------------------------
    async def lookup(self, cifs: list[str]) -> dict[str, RegistryRecord]:
        out: dict[str, RegistryRecord] = {}
        unique = list(dict.fromkeys(cifs))
        for i in range(0, len(unique), REGISTRY_BATCH):
            out.update(await self._lookup_batch(unique[i:i + REGISTRY_BATCH]))
        return out

    async def _lookup_batch(self, cifs: list[str]) -> dict[str, RegistryRecord]:
        day = local_date(self.clock.now()).isoformat()
        body = [{"cui": int(c), "data": day} for c in cifs]
        for attempt in range(self.max_429_retries + 1):
            await self.budget.acquire(BudgetKind.PUBLIC)
            try:
                resp = await self.client.post(self.registry_path, json=body, timeout=30)
            except httpx.HTTPError as e:
                raise AnafUnavailable(f"registry unreachable: {type(e).__name__}", endpoint="registry.v9") from e
            if resp.status_code == 429 and attempt < self.max_429_retries:
                # Another client behind the same address spent the second: wait for the next window.
                await self.clock.sleep(float(resp.headers.get("retry-after") or 1.0))
                continue
            break
        if resp.status_code == 429:
            raise RateLimited("registry: too many requests", retry_after=1.0, endpoint="registry.v9")
        if resp.status_code >= 500:
            raise AnafUnavailable(f"registry answered HTTP {resp.status_code}", endpoint="registry.v9",
                                  status=resp.status_code)
        text = resp.text
        if is_waf_page(text):
            raise waf_error(text, endpoint="registry.v9", status=resp.status_code)
        try:
            data = resp.json()
        except ValueError as e:
            raise UnexpectedResponse(f"registry answered non-JSON (HTTP {resp.status_code})",
                                     endpoint="registry.v9", status=resp.status_code) from e
        if not isinstance(data, dict) or ("cod" in data and data.get("cod") not in (200, "200")
                                          and "found" not in data):
            raise UnexpectedResponse(f"registry error: {str(data)[:200]}", endpoint="registry.v9",
                                     status=resp.status_code)
        out: dict[str, RegistryRecord] = {}
        for item in data.get("found") or []:
            rec = parse_registry_item(item)
            if rec.cif:
                out[rec.cif] = rec
        for c in cifs:
            out.setdefault(c, RegistryRecord(cif=c, found=False))
        return out

    # -- e-Factura list ----------------------------------------------------------------------------
    async def list_messages(self, access_token: str, cif: str, days: int) -> ListProbe:
        endpoint = "efactura.listaMesajeFactura"
        await self.budget.acquire(BudgetKind.EF_LIST, cif)
        try:
            resp = await self.client.get(f"/{self.env}/FCTEL/rest/listaMesajeFactura",
                                         params={"zile": days, "cif": cif},
                                         headers={"Authorization": f"Bearer {access_token}"}, timeout=30)
        except httpx.HTTPError as e:
            raise AnafUnavailable(f"e-Factura unreachable: {type(e).__name__}", endpoint=endpoint) from e
        if resp.status_code in (401, 403):
            raise Unauthorized(f"HTTP {resp.status_code}", endpoint=endpoint, status=resp.status_code)
        if resp.status_code == 302 or "/my.policy" in resp.headers.get("location", ""):
            raise Unauthorized("redirected to the F5 login wall", endpoint=endpoint, status=resp.status_code)
        if resp.status_code == 429:
            ra = resp.headers.get("retry-after")
            raise RateLimited("HTTP 429", retry_after=float(ra) if ra else None, endpoint=endpoint)
        if resp.status_code >= 500:
            raise AnafUnavailable(f"HTTP {resp.status_code}", endpoint=endpoint, status=resp.status_code)
        text = resp.text
        if is_waf_page(text):
            raise waf_error(text, endpoint=endpoint, status=resp.status_code)
        try:
            data = resp.json()
        except ValueError as e:
            raise UnexpectedResponse(f"non-JSON list answer (HTTP {resp.status_code})", endpoint=endpoint,
                                     status=resp.status_code) from e
        if resp.status_code == 400:
            raise classify_text(str(data.get("message", data)), endpoint=endpoint, status=400, cif=cif)
        if "eroare" in data:
            err = classify_text(str(data["eroare"]), endpoint=endpoint, status=resp.status_code, cif=cif,
                                limit_scope=f"{BudgetKind.EF_LIST.value}:{cif}",
                                resets_at=next_local_midnight(self.clock.now()))
            if isinstance(err, NoMessages):
                return ListProbe(True, data.get("cui"), err.text)
            if isinstance(err, NoRights):
                return ListProbe(False, data.get("cui"), err.text)
            if isinstance(err, DailyLimitReached):
                await self.budget.mark_exhausted(BudgetKind.EF_LIST, cif, err.resets_at)
            raise err
        return ListProbe(True, data.get("cui"), "")


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


__all__ = ["AnafError", "AuthTokens", "ConnectionToken", "ConnectionUnavailable", "EfacturaListPort", "HttpAnaf",
           "ListProbe", "RegistryPort", "RegistryRecord", "TokenPort", "list_with_refresh"]

"""The auth service's port to ANAF: the authorize URL, code exchange, refresh, and the one cheap rights check
after an authorization. Spends the shared ANAF budget and raises the typed errors of spvhub_common.anaf.errors.

Until the shared ANAF client (spvhub_common.anaf) exposes OAuth calls, this adapter speaks the wire protocol
itself (anaf-api.md §1.2-1.3, §2.3); the HTTP transport is injectable so tests mount the emulator in-process.

Its calls spend the budget at `Priority.INTERACTIVE`: a person waits on the OAuth callback (code exchange,
rights check), and a service waits on the internal token endpoints (refresh), so they may use the budget's
interactive reserve instead of waiting for the next minute behind a sync that filled its share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
from spvhub_common.anaf import errors as E
from spvhub_common.anaf.budget import AnafBudget, BudgetKind, Priority


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int | None

    def __repr__(self) -> str:  # never print a token
        return f"TokenSet(expires_in={self.expires_in})"


class AnafGateway(Protocol):
    def authorize_url(self, state: str) -> str: ...

    async def exchange_code(self, code: str) -> TokenSet: ...

    async def refresh(self, refresh_token: str) -> TokenSet: ...

    async def check_rights(self, access_token: str, cif: str) -> None:
        """Returns when the token's certificate has SPV rights on `cif`; raises E.NoRights otherwise."""


class HttpAnafGateway:
    def __init__(self, *, base_url: str, client_id: str, client_secret: str, redirect_uri: str, env: str = "test",
                 budget: AnafBudget | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0, priority: Priority = Priority.INTERACTIVE) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.redirect_uri = redirect_uri
        self.env = env
        self.budget = budget
        self.priority = Priority(priority)
        self._client = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout,
                                         follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    def authorize_url(self, state: str) -> str:
        q = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                       "token_content_type": "jwt", "state": state})
        return f"{self.base_url}/anaf-oauth2/v1/authorize?{q}"

    async def _spend(self, kind: str, key: str | None = None) -> None:
        if self.budget is not None:
            await self.budget.acquire(kind, key, priority=self.priority)

    async def _token(self, form: dict[str, str]) -> TokenSet:
        await self._spend(BudgetKind.OAUTH)
        try:
            resp = await self._client.post("/anaf-oauth2/v1/token", data=form,
                                           auth=httpx.BasicAuth(self.client_id, self._secret))
        except httpx.TimeoutException:
            raise E.AnafUnavailable("timeout at the ANAF token endpoint", endpoint="oauth.token") from None
        except httpx.HTTPError as exc:
            raise E.AnafUnavailable(f"cannot reach the ANAF token endpoint: {type(exc).__name__}",
                                    endpoint="oauth.token") from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise E.AnafUnavailable(f"ANAF token endpoint answered HTTP {resp.status_code}", endpoint="oauth.token",
                                    status=resp.status_code)
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            if E.is_waf_page(resp.text):
                raise E.waf_error(resp.text, endpoint="oauth.token", status=resp.status_code) from None
            raise E.UnexpectedResponse(f"token endpoint answered HTTP {resp.status_code} without JSON",
                                       endpoint="oauth.token", status=resp.status_code) from None
        if resp.status_code != 200 or "error" in body:
            raise E.oauth_error(str(body.get("error", "unknown")), str(body.get("error_description", "")),
                                status=resp.status_code)
        if not body.get("access_token") or not body.get("refresh_token"):
            raise E.UnexpectedResponse("token endpoint answered without both tokens", endpoint="oauth.token",
                                       status=resp.status_code)
        exp = body.get("expires_in")
        return TokenSet(str(body["access_token"]), str(body["refresh_token"]), int(exp) if exp else None)

    async def exchange_code(self, code: str) -> TokenSet:
        return await self._token({"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": self.redirect_uri, "token_content_type": "jwt"})

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                                  "token_content_type": "jwt"})

    async def check_rights(self, access_token: str, cif: str) -> None:
        endpoint = "efactura.listaMesajeFactura"
        await self._spend(BudgetKind.EF_LIST, cif)  # its daily cap per CIF and one slot of the api.anaf.ro window
        try:
            resp = await self._client.get(f"/{self.env}/FCTEL/rest/listaMesajeFactura", params={"zile": 1, "cif": cif},
                                          headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise E.AnafUnavailable(f"cannot reach ANAF e-Factura: {type(exc).__name__}", endpoint=endpoint) from None
        if resp.status_code in (401, 403) or resp.status_code in (301, 302):
            raise E.Unauthorized(f"ANAF refused the token (HTTP {resp.status_code})", endpoint=endpoint,
                                 status=resp.status_code)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise E.AnafUnavailable(f"ANAF e-Factura answered HTTP {resp.status_code}", endpoint=endpoint,
                                    status=resp.status_code)
        try:
            body = resp.json()
        except ValueError:
            if E.is_waf_page(resp.text):
                raise E.waf_error(resp.text, endpoint=endpoint, status=resp.status_code) from None
            raise E.UnexpectedResponse("listaMesajeFactura answered without JSON", endpoint=endpoint,
                                       status=resp.status_code) from None
        text = body.get("eroare") if isinstance(body, dict) else None
        if text:
            err = E.classify_text(str(text), endpoint=endpoint, status=resp.status_code, cif=cif)
            if isinstance(err, E.NoMessages):
                return  # "Nu exista mesaje in ultimele 1 zile": the certificate has rights
            raise err
        return


def token_error_is_refusal(exc: Exception) -> bool:
    """ANAF refuses the grant for good (a person must act) rather than failing transiently."""
    return isinstance(exc, E.InvalidGrant)

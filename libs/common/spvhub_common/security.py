"""Verification of platform JWTs against the auth service's JWKS, and FastAPI dependencies for callers."""
from __future__ import annotations

import asyncio
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import jwt
import structlog
from fastapi import Depends, Header, Request

from spvhub_common.access import KeyScope, key_scope
from spvhub_common.clientaddr import client_address
from spvhub_common.errors import AppError, Forbidden, TooManyRequests, Unauthorized

API_KEY_PREFIX = "spvk_"
KEY_PERMISSIONS = ("read", "sync", "file", "invitations")


@dataclass(frozen=True)
class Principal:
    """Who calls: a person (platform JWT) or an API key acting for the person who created it. For a key,
    `user_id` is the creator (whose grants it uses), restricted to `key_companies` and `key_permissions`."""

    user_id: str
    email: str = ""
    name: str = ""
    locale: str = "ro"
    claims: dict[str, Any] = field(default_factory=dict)
    key_id: str | None = None
    key_companies: tuple[str, ...] = ()
    key_permissions: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        return f"key:{self.key_id}" if self.key_id else self.user_id

    @property
    def is_api_key(self) -> bool:
        return self.key_id is not None


class JwksVerifier:
    """Caches the JWKS; refetches on an unknown `kid` (key rotation) at most every 30 s."""

    def __init__(self, jwks_url: str, issuer: str, audience: str, *, static_jwks: dict[str, Any] | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._static = static_jwks
        self._client = client
        if static_jwks:
            self._load(static_jwks)

    def _load(self, jwks: dict[str, Any]) -> None:
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks.get("keys", [])}

    async def _refresh(self) -> None:
        if self._static is not None or time.monotonic() - self._fetched_at < 30:
            return
        client = self._client or httpx.AsyncClient(timeout=5)
        try:
            resp = await client.get(self.jwks_url)
            resp.raise_for_status()
            self._load(resp.json())
            self._fetched_at = time.monotonic()
        finally:
            if self._client is None:
                await client.aclose()

    async def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
        except jwt.PyJWTError as e:
            raise Unauthorized("The access token is malformed.", code="invalid_token") from e
        if kid not in self._keys:
            try:
                await self._refresh()
            except httpx.HTTPError as e:
                raise Unauthorized("Cannot verify the access token right now.", code="jwks_unavailable") from e
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("The access token was signed by an unknown key.", code="invalid_token")
        try:
            claims = jwt.decode(token, key, algorithms=["RS256", "ES256", "EdDSA"], audience=self.audience,
                                issuer=self.issuer, options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError as e:
            raise Unauthorized("The access token has expired; refresh it.", code="token_expired") from e
        except jwt.PyJWTError as e:
            raise Unauthorized("The access token is not valid.", code="invalid_token") from e
        if claims.get("typ") not in (None, "access"):
            raise Unauthorized("This token is not an access token.", code="invalid_token")
        return Principal(user_id=claims["sub"], email=claims.get("email", ""), name=claims.get("name", ""),
                         locale=claims.get("locale", "ro"), claims=claims)


# --- API keys ------------------------------------------------------------------------------------------
# What a key may call, decided before any handler runs: every route a key reaches is named here with the
# permission it needs; anything else (profile, companies, members, keys themselves, settings) is refused to keys.
# Tenant rules then apply inside the handler exactly as for a person (spvhub_common.access reads `key_scope`).
_KEY_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple((m, re.compile(rx), perm) for m, rx, perm in (
    ("GET", r"^/api/(efactura|etransport)/", "read"),
    ("POST", r"^/api/efactura/validation$", "read"),
    ("POST", r"^/api/efactura/companies/[^/]+/sync$", "sync"),
    ("POST", r"^/api/etransport/companies/[^/]+/poll$", "sync"),
    ("POST", r"^/api/efactura/companies/[^/]+/submissions$", "file"),
    ("POST", r"^/api/efactura/invoices/[^/]+/buyer-messages$", "file"),
    ("GET", r"^/api/invitations(/|$)", "invitations"),
    ("POST", r"^/api/invitations$", "invitations"),
    ("POST", r"^/api/invitations/[^/]+/(resend|revoke)$", "invitations"),
))


def key_permission_for(method: str, path: str) -> str | None:
    """The permission an API key needs for this request, or None when keys may not call it at all."""
    m = "GET" if method.upper() == "HEAD" else method.upper()
    for route_method, rx, perm in _KEY_ROUTES:
        if route_method == m and rx.search(path):
            return perm
    return None


def key_not_allowed() -> Forbidden:
    return Forbidden("API keys cannot call this endpoint; sign in as a person.", code="api_key_not_allowed",
                     messages={"ro": "Cheile API nu pot apela această operație; autentificați-vă ca persoană."})


def key_permission_missing(permission: str) -> Forbidden:
    return Forbidden(f"This API key lacks the '{permission}' permission.", code="api_key_permission_missing",
                     details={"permission": permission},
                     messages={"ro": f"Această cheie API nu are permisiunea „{permission}”."})


_KEY_ERRORS = {
    "invalid_api_key": ("The API key is not valid.", "Cheia API nu este validă."),
    "api_key_revoked": ("The API key was revoked.", "Cheia API a fost revocată."),
    "api_key_expired": ("The API key has expired.", "Cheia API a expirat."),
}


def key_unauthorized(code: str) -> Unauthorized:
    en, ro = _KEY_ERRORS.get(code, _KEY_ERRORS["invalid_api_key"])
    return Unauthorized(en, code=code if code in _KEY_ERRORS else "invalid_api_key", messages={"ro": ro})


def key_rate_limited(retry_after: float) -> TooManyRequests:
    return TooManyRequests("Too many requests with this API key; retry later.", code="api_key_rate_limited",
                           details={"retry_after_seconds": max(int(retry_after + 0.999), 1)},
                           messages={"ro": "Prea multe cereri cu această cheie API; reîncercați mai târziu."})


class ApiKeyIntrospector:
    """Asks auth, on every request, what an API key is: no cache, so a revocation takes effect on the next
    request. Auth counts the use (rate limit, last use, the usage log) in the same call."""

    def __init__(self, url: str, service_token: str, service_name: str, *,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._token = service_token
        self.service_name = service_name
        self._client = client
        self._own: tuple[Any, httpx.AsyncClient] | None = None  # (event loop, client) made here

    def _http(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        if self._own is None or self._own[0] is not loop:  # one pooled client per event loop
            self._own = (loop, httpx.AsyncClient(timeout=5))
        return self._own[1]

    @classmethod
    def from_settings(cls, settings: Any) -> ApiKeyIntrospector:
        base = settings.jwks_url.split("/.well-known/", 1)[0]
        return cls(f"{base}/internal/api-keys/introspect", settings.service_token.get_secret_value(),
                   settings.service_name)

    async def introspect(self, key: str, *, method: str, path: str, request_id: str | None,
                         client_addr: str | None) -> Principal:
        try:
            resp = await self._http().post(self.url, json={
                "key": key, "method": method, "path": path, "request_id": request_id, "client": client_addr},
                headers={"X-Service-Token": self._token, "X-Service-Name": self.service_name})
        except httpx.HTTPError as e:
            raise AppError("Cannot check the API key right now.", code="auth_unavailable", status=503,
                           details={"retry_after_seconds": 5},
                           messages={"ro": "Cheia API nu poate fi verificată acum."}) from e
        if resp.status_code == 200:
            b = resp.json()
            return Principal(user_id=b["user_id"], email=b.get("email", ""), name=b.get("name", ""),
                             locale=b.get("locale", "ro"), claims={"sub": f"key:{b['key_id']}"},
                             key_id=b["key_id"], key_companies=tuple(b["companies"]),
                             key_permissions=tuple(b["permissions"]))
        code = ""
        details: dict[str, Any] = {}
        try:
            err = resp.json().get("error", {})
            code, details = err.get("code", ""), err.get("details", {}) or {}
        except ValueError:
            pass
        if resp.status_code == 401:
            raise key_unauthorized(code)
        if resp.status_code == 429:
            raise key_rate_limited(float(details.get("retry_after_seconds", 1)))
        raise AppError("Cannot check the API key right now.", code="auth_unavailable", status=503,
                       details={"retry_after_seconds": 5}, messages={"ro": "Cheia API nu poate fi verificată acum."})


async def _api_key_principal(request: Request, key: str) -> Principal:
    needed = key_permission_for(request.method, request.url.path)
    if needed is None:
        raise key_not_allowed()
    introspector: ApiKeyIntrospector | None = getattr(request.app.state, "api_keys", None)
    if introspector is None:
        introspector = request.app.state.api_keys = ApiKeyIntrospector.from_settings(request.app.state.settings)
    trusted = getattr(request.app.state.settings, "trusted_proxies", [])
    rid = request.headers.get("x-request-id") or structlog.contextvars.get_contextvars().get("request_id")
    p = await introspector.introspect(key, method=request.method, path=request.url.path, request_id=rid,
                                      client_addr=client_address(request, trusted))
    request.state.principal = p  # known now: a refusal of this key speaks its creator's language
    if needed not in p.key_permissions:
        raise key_permission_missing(needed)
    key_scope.set(KeyScope(key_id=p.key_id or "", user_id=p.user_id, companies=frozenset(p.key_companies),
                           permissions=frozenset(p.key_permissions)))
    return p


async def current_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    # Always set: a context that served a key's request must not keep its restrictions for a person's.
    key_scope.set(None)
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Sign in: send `Authorization: Bearer <access token>`.", code="missing_token")
    token = authorization.split(" ", 1)[1].strip()
    if token.startswith(API_KEY_PREFIX):
        return await _api_key_principal(request, token)
    verifier: JwksVerifier = request.app.state.jwks
    principal = await verifier.verify(token)
    # Kept on the request so the error handlers answer in the caller's locale without verifying the token again.
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


async def require_service(request: Request, x_service_token: Annotated[str | None, Header()] = None) -> str:
    """Internal endpoints: the caller presents the shared service credential (from a Secret)."""
    expected: str = request.app.state.settings.service_token.get_secret_value()
    if not x_service_token or not hmac.compare_digest(x_service_token, expected):
        raise Unauthorized("Internal endpoint: a valid X-Service-Token is required.", code="service_auth_required")
    return request.headers.get("x-service-name", "unknown")


ServiceCaller = Annotated[str, Depends(require_service)]

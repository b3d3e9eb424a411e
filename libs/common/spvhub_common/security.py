"""Verification of platform JWTs against the auth service's JWKS, and FastAPI dependencies for callers."""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Header, Request

from spvhub_common.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str = ""
    name: str = ""
    locale: str = "ro"
    claims: dict[str, Any] = field(default_factory=dict)


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


async def current_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Sign in: send `Authorization: Bearer <access token>`.", code="missing_token")
    verifier: JwksVerifier = request.app.state.jwks
    return await verifier.verify(authorization.split(" ", 1)[1].strip())


CurrentUser = Annotated[Principal, Depends(current_principal)]


async def require_service(request: Request, x_service_token: Annotated[str | None, Header()] = None) -> str:
    """Internal endpoints: the caller presents the shared service credential (from a Secret)."""
    expected: str = request.app.state.settings.service_token.get_secret_value()
    if not x_service_token or not hmac.compare_digest(x_service_token, expected):
        raise Unauthorized("Internal endpoint: a valid X-Service-Token is required.", code="service_auth_required")
    return request.headers.get("x-service-name", "unknown")


ServiceCaller = Annotated[str, Depends(require_service)]

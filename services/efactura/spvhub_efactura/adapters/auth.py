"""Client of auth's internal token endpoint: current ANAF access tokens per connection (never stored here)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx


class ReauthorizationRequired(Exception):
    """auth answered 409: a person must authorize the connection again; sync pauses."""


class NoConnection(Exception):
    """auth knows no such connection (404)."""


class AuthUnavailable(Exception):
    """auth could not be reached or failed (transient)."""


@dataclass(frozen=True)
class AccessToken:
    connection_id: str
    token: str
    expires_at: datetime | None

    def __repr__(self) -> str:  # never print the token
        return f"AccessToken({self.connection_id!r}, expires_at={self.expires_at!r})"


class TokenProvider(Protocol):
    async def token(self, connection_id: str) -> AccessToken: ...

    async def refresh(self, connection_id: str) -> AccessToken: ...


class AuthTokenClient:
    """`GET /internal/connections/{id}/access-token` and `POST .../refresh` with X-Service-Token.

    Tokens are cached in memory for a short time only (auth stays the owner); `refresh` drops the cache.
    """

    def __init__(self, base_url: str, service_token: str, *, client: httpx.AsyncClient | None = None,
                 cache_seconds: float = 60.0) -> None:
        self._client = client or httpx.AsyncClient(base_url=base_url, timeout=10)
        self._base = base_url.rstrip("/")
        self._headers = {"X-Service-Token": service_token, "X-Service-Name": "efactura"}
        self._cache: dict[str, tuple[float, AccessToken]] = {}
        self._cache_seconds = cache_seconds
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    def _parse(self, resp: httpx.Response, connection_id: str) -> AccessToken:
        if resp.status_code == 409:
            raise ReauthorizationRequired(connection_id)
        if resp.status_code == 404:
            raise NoConnection(connection_id)
        if resp.status_code >= 400:
            raise AuthUnavailable(f"auth answered {resp.status_code}")
        body = resp.json()
        exp = body.get("expires_at")
        return AccessToken(connection_id, body["access_token"],
                           datetime.fromisoformat(exp.replace("Z", "+00:00")) if exp else None)

    async def token(self, connection_id: str) -> AccessToken:
        hit = self._cache.get(connection_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        lock = self._locks.setdefault(connection_id, asyncio.Lock())
        async with lock:
            hit = self._cache.get(connection_id)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            try:
                resp = await self._client.get(f"{self._base}/internal/connections/{connection_id}/access-token",
                                              headers=self._headers)
            except httpx.HTTPError as e:
                raise AuthUnavailable(str(e)) from e
            tok = self._parse(resp, connection_id)
            self._cache[connection_id] = (time.monotonic() + self._cache_seconds, tok)
            return tok

    async def refresh(self, connection_id: str) -> AccessToken:
        lock = self._locks.setdefault(connection_id, asyncio.Lock())
        async with lock:
            self._cache.pop(connection_id, None)
            try:
                resp = await self._client.post(f"{self._base}/internal/connections/{connection_id}/refresh",
                                               headers=self._headers)
            except httpx.HTTPError as e:
                raise AuthUnavailable(str(e)) from e
            if resp.status_code >= 400 or "access_token" not in (resp.json() if resp.content else {}):
                if resp.status_code in (409, 404):
                    self._parse(resp, connection_id)
                # refresh answered without a token body: fetch the current one
                resp = await self._client.get(f"{self._base}/internal/connections/{connection_id}/access-token",
                                              headers=self._headers)
            tok = self._parse(resp, connection_id)
            self._cache[connection_id] = (time.monotonic() + self._cache_seconds, tok)
            return tok

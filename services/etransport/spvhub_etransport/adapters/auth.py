"""Access tokens of ANAF connections, asked from auth's internal endpoint; kept in memory only, never logged."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx


class ConnectionUnavailable(Exception):
    """The connection cannot be used now: `reason` is no_connection | reauthorization_required | auth_error."""

    def __init__(self, connection_id: str, reason: str, message: str = "") -> None:
        super().__init__(f"connection {connection_id}: {reason} {message}".strip())
        self.connection_id = connection_id
        self.reason = reason
        self.message = message

    @property
    def permanent(self) -> bool:
        return self.reason in ("no_connection", "reauthorization_required")


@dataclass(frozen=True)
class AccessToken:
    connection_id: str
    token: str
    expires_at: datetime | None

    def __repr__(self) -> str:  # never print the token
        return f"AccessToken(connection_id={self.connection_id!r}, expires_at={self.expires_at!r})"


class TokenProvider(Protocol):
    async def get(self, connection_id: str) -> AccessToken: ...

    async def refresh(self, connection_id: str) -> AccessToken: ...


class AuthTokenProvider:
    """`GET /internal/connections/{id}/access-token` and `POST .../refresh` on auth, with `X-Service-Token`.
    Tokens are cached until shortly before they expire."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, service_token: str, *,
                 now: Callable[[], datetime] | None = None, margin: timedelta = timedelta(minutes=5)) -> None:
        self.client = client
        self.base = base_url.rstrip("/")
        self._headers = {"X-Service-Token": service_token, "X-Service-Name": "etransport"}
        self._now = now or (lambda: datetime.now(UTC))
        self._margin = margin
        self._cache: dict[str, AccessToken] = {}

    def forget(self, connection_id: str) -> None:
        self._cache.pop(connection_id, None)

    async def get(self, connection_id: str) -> AccessToken:
        cached = self._cache.get(connection_id)
        if cached and (cached.expires_at is None or cached.expires_at - self._margin > self._now()):
            return cached
        return await self._call("GET", f"/internal/connections/{connection_id}/access-token", connection_id)

    async def refresh(self, connection_id: str) -> AccessToken:
        self.forget(connection_id)
        await self._call("POST", f"/internal/connections/{connection_id}/refresh", connection_id, store=False)
        return await self._call("GET", f"/internal/connections/{connection_id}/access-token", connection_id)

    async def _call(self, method: str, path: str, connection_id: str, store: bool = True) -> AccessToken:
        try:
            resp = await self.client.request(method, self.base + path, headers=self._headers)
        except httpx.HTTPError as exc:
            raise ConnectionUnavailable(connection_id, "auth_error", type(exc).__name__) from exc
        if resp.status_code == 404:
            raise ConnectionUnavailable(connection_id, "no_connection", _message(resp))
        if resp.status_code == 409:
            raise ConnectionUnavailable(connection_id, "reauthorization_required", _message(resp))
        if resp.status_code >= 300:
            raise ConnectionUnavailable(connection_id, "auth_error", f"HTTP {resp.status_code}")
        if not store:
            return AccessToken(connection_id, "", None)
        body = resp.json()
        status = str(body.get("status") or "active")
        if status not in ("active", "ok", "valid", "expiring"):
            raise ConnectionUnavailable(connection_id, "reauthorization_required", f"status {status}")
        exp = body.get("expires_at")
        tok = AccessToken(connection_id, str(body["access_token"]),
                          datetime.fromisoformat(str(exp).replace("Z", "+00:00")) if exp else None)
        self._cache[connection_id] = tok
        return tok


def _message(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", {})
        return str(err.get("code") or err.get("message") or "") if isinstance(err, dict) else str(err)
    except ValueError:
        return ""

"""The one client of auth's internal token endpoints, used by every service that calls ANAF in a connection's name:
`GET /internal/connections/{id}/access-token` and `POST /internal/connections/{id}/refresh`, with `X-Service-Token`
and `X-Service-Name`. Tokens stay owned by auth: this client keeps them in memory only, for a short time when asked
to, and never prints them."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

ACCESS_TOKEN_PATH = "/internal/connections/{connection_id}/access-token"
REFRESH_PATH = "/internal/connections/{connection_id}/refresh"


@dataclass(frozen=True)
class InternalToken:
    """A current ANAF access token of one connection, as auth gave it."""

    connection_id: str
    access_token: str = field(repr=False)
    expires_at: datetime | None
    company_cif: str | None = None
    status: str = "active"

    def __repr__(self) -> str:  # never print the token
        return (f"InternalToken(connection_id={self.connection_id!r}, expires_at={self.expires_at!r}, "
                f"status={self.status!r})")


class TokenUnavailable(Exception):
    """auth gave no token. `reason`: `no_connection` (404), `reauthorization_required` (409: a person must authorize
    the connection again) or `auth_error` (auth unreachable or failing: transient). `code` is auth's error code when
    it sent one; `status_code` the HTTP status of a refusal (None when auth was not reached, or when it answered 2xx
    without a usable token: `message` says which)."""

    def __init__(self, connection_id: str, reason: str, *, code: str = "", status_code: int | None = None,
                 message: str = "") -> None:
        super().__init__(f"connection {connection_id}: {reason} {message}".strip())
        self.connection_id = connection_id
        self.reason = reason
        self.code = code or reason
        self.status_code = status_code
        self.message = message

    @property
    def permanent(self) -> bool:
        """True when retrying will not help until a person acts."""
        return self.reason in ("no_connection", "reauthorization_required")


class TokenSource(Protocol):
    """What a service needs of auth's tokens: the port its use cases take, so tests can stand in for auth."""

    async def access_token(self, connection_id: str) -> InternalToken: ...

    async def refresh(self, connection_id: str) -> InternalToken: ...


class InternalTokenClient:
    """Client of auth's internal token endpoints.

    Caching (off by default): a token is reused while it is younger than `max_age` seconds and, when
    `expiry_margin` is given, while it expires more than that margin after `now()`. `refresh` and `forget` drop it.
    Concurrent asks for one connection share one request.

    `usable_statuses` (off by default): a token whose connection status auth reports outside these is refused as
    `reauthorization_required` (message `status <status>`) and never cached: for a caller that acts only through
    connections auth reports live.
    """

    def __init__(self, base_url: str, service_token: str, service_name: str, *,
                 client: httpx.AsyncClient | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 10.0, max_age: float = 0.0, expiry_margin: timedelta | None = None,
                 now: Callable[[], datetime] | None = None, usable_statuses: Collection[str] | None = None) -> None:
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self._base = base_url.rstrip("/")
        self._headers = {"X-Service-Token": service_token, "X-Service-Name": service_name}
        self._max_age = max_age
        self._margin = expiry_margin
        self._now = now or (lambda: datetime.now(UTC))
        self._usable = frozenset(usable_statuses) if usable_statuses is not None else None
        self._cache: dict[str, tuple[float, InternalToken]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def forget(self, connection_id: str) -> None:
        self._cache.pop(connection_id, None)

    def _cached(self, connection_id: str) -> InternalToken | None:
        hit = self._cache.get(connection_id)
        if hit is None or time.monotonic() - hit[0] >= self._max_age:
            return None
        token = hit[1]
        if self._margin is not None and token.expires_at is not None and token.expires_at - self._margin <= self._now():
            return None
        return token

    async def access_token(self, connection_id: str) -> InternalToken:
        """The connection's current access token (auth renews an expired one first)."""
        hit = self._cached(connection_id)
        if hit is not None:
            return hit
        async with self._locks.setdefault(connection_id, asyncio.Lock()):
            hit = self._cached(connection_id)
            if hit is not None:
                return hit
            return self._keep(await self._get(connection_id))

    async def refresh(self, connection_id: str) -> InternalToken:
        """Ask auth to renew the connection's tokens now (after ANAF refused the current one), and return the new
        access token."""
        async with self._locks.setdefault(connection_id, asyncio.Lock()):
            self.forget(connection_id)
            resp = await self._send("POST", REFRESH_PATH, connection_id)
            body = _json(resp)
            token = self._token(connection_id, body) if "access_token" in body else await self._get(connection_id)
            return self._keep(token)

    def _keep(self, token: InternalToken) -> InternalToken:
        if self._max_age > 0:
            self._cache[token.connection_id] = (time.monotonic(), token)
        return token

    async def _get(self, connection_id: str) -> InternalToken:
        resp = await self._send("GET", ACCESS_TOKEN_PATH, connection_id)
        return self._token(connection_id, _json(resp))

    async def _send(self, method: str, path: str, connection_id: str) -> httpx.Response:
        url = self._base + path.format(connection_id=connection_id)
        try:
            resp = await self._client.request(method, url, headers=self._headers)
        except httpx.HTTPError as exc:
            raise TokenUnavailable(connection_id, "auth_error", message=type(exc).__name__) from exc
        if resp.status_code < 300:
            return resp
        code, message = _error(resp)
        reason = {404: "no_connection", 409: "reauthorization_required"}.get(resp.status_code, "auth_error")
        raise TokenUnavailable(connection_id, reason, code=code, status_code=resp.status_code,
                               message=message or f"auth answered HTTP {resp.status_code}")

    def _token(self, connection_id: str, body: dict[str, Any]) -> InternalToken:
        status = str(body.get("status") or "active")
        if self._usable is not None and status not in self._usable:
            raise TokenUnavailable(connection_id, "reauthorization_required", message=f"status {status}")
        if not body.get("access_token"):
            raise TokenUnavailable(connection_id, "auth_error", message="auth answered without an access token")
        exp = body.get("expires_at")
        return InternalToken(
            connection_id=str(body.get("connection_id") or connection_id),
            access_token=str(body["access_token"]),
            expires_at=datetime.fromisoformat(str(exp).replace("Z", "+00:00")) if exp else None,
            company_cif=str(body["company_cif"]) if body.get("company_cif") else None,
            status=status)


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json() if resp.content else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(resp: httpx.Response) -> tuple[str, str]:
    err = _json(resp).get("error")
    if isinstance(err, dict):
        return str(err.get("code") or ""), str(err.get("message") or "")
    return "", ""

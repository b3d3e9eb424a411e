"""The HTTP transport the ANAF client uses by default: one aiohttp connection pool, reached two ways.

- Through httpx (`AiohttpPool.transport()`, via `httpx-aiohttp`, by an httpx maintainer): every httpx type the client
  and its tests rely on (`httpx.Response`, `httpx.TimeoutException`, `httpx.TransportError`, ...) stays, only the
  wire changes. httpx's own pool (httpcore) costs 2-3 ms of CPU per request on the event loop, aiohttp about 0.3.
- Directly (`AiohttpPool.get()`), for the plain GETs a sync makes by the thousand (list, download): httpx's request
  and response layers still cost more CPU than aiohttp's whole request, so these skip them and come back as an
  `httpx.Response` built from the bytes read, with the same exceptions.

Cookies are never kept by the pool: one client serves every tenant, and nothing a server sets for one token
may ride along with another's request.
"""
from __future__ import annotations

import ssl
from collections.abc import Mapping
from urllib.parse import urlencode

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from yarl import URL

from spvhub_common.aiosession import LoopSession

__all__ = ["AiohttpPool", "default_transport"]


class AiohttpPool:
    """One aiohttp session (created lazily, on the running loop) shared by the httpx transport and `get()`."""

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 5.0,
                 verify: ssl.SSLContext | bool = True, timeout: httpx.Timeout | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        t = timeout or httpx.Timeout(30.0)
        # the mapping httpx-aiohttp uses for httpx's timeouts
        self.timeout = aiohttp.ClientTimeout(sock_connect=t.connect, sock_read=t.read, connect=t.pool)
        self.headers = dict(headers or {})
        self.sessions = LoopSession(self._new_session)

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=self.keepalive_expiry,
                                         ssl=self.ssl_context)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)

    def session(self) -> aiohttp.ClientSession:
        return self.sessions.get()

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport over this pool."""
        limits = httpx.Limits(max_connections=self.max_connections, keepalive_expiry=self.keepalive_expiry)
        return AiohttpTransport(verify=self.ssl_context, limits=limits, client=self.session)

    async def get(self, url: str, params: Mapping[str, str | int] | None = None,
                  headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET without httpx's client layers: the body read whole, redirects not followed, content-encoding decoded
        as httpx would; faults raise `httpx.TimeoutException` / `httpx.TransportError` subclasses."""
        target = URL(f"{url}?{urlencode(params)}" if params else url, encoded=True)
        hdrs = {**self.headers, **headers} if headers else self.headers
        try:
            async with self.session().get(target, headers=hdrs, allow_redirects=False, timeout=self.timeout) as resp:
                body = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc) from exc
        return httpx.Response(resp.status, headers=resp.raw_headers, content=body)

    async def aclose(self) -> None:
        await self.sessions.aclose()


def _httpx_error(exc: BaseException) -> httpx.TransportError:
    """The httpx exception for an aiohttp/asyncio fault (a refused connection is a ConnectError, not a timeout)."""
    msg = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(msg)
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts subclass it too
        return httpx.ReadTimeout(msg)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(msg)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(msg)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(msg)
    return httpx.NetworkError(msg)


def default_transport(*, max_connections: int = 100, keepalive_expiry: float = 5.0,
                      verify: ssl.SSLContext | bool = True) -> httpx.AsyncBaseTransport:
    """A transport for `httpx.AsyncClient`; its aiohttp session is created lazily on the running loop."""
    return AiohttpPool(max_connections=max_connections, keepalive_expiry=keepalive_expiry, verify=verify).transport()

"""The HTTP transport the ANAF client uses by default: httpx's API over aiohttp's connection pool.

Why: a sync downloads thousands of messages a minute, and httpx's own pool (httpcore) costs 2-3 ms of CPU per
request on the event loop, against about 0.3 ms for aiohttp; at 200 invoices/s that is most of a core.
`httpx-aiohttp` (by an httpx maintainer) keeps every httpx type the client and its tests rely on
(`httpx.Response`, `httpx.TimeoutException`, `httpx.TransportError`, ...), so only the wire changes.

Cookies are never kept by the pool: one client serves every tenant, and nothing a server sets for one token
may ride along with another's request.
"""
from __future__ import annotations

import ssl

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["default_transport"]


def default_transport(*, max_connections: int = 100, keepalive_expiry: float = 5.0,
                      verify: ssl.SSLContext | bool = True) -> httpx.AsyncBaseTransport:
    """A transport for `httpx.AsyncClient`; its aiohttp session is created lazily on the running loop."""
    ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=keepalive_expiry,
                                         ssl=ssl_context)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=False)

    limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=keepalive_expiry)
    return AiohttpTransport(verify=ssl_context, limits=limits, client=session)  # session() is called once

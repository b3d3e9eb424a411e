"""The HTTP transport the ANAF client uses by default: one pyreqwest connection pool (`spvhub_common.httpclient`),
reached two ways.

- Through httpx (`HttpPool.transport()`): every httpx type the client and its tests rely on (`httpx.Response`,
  `httpx.TimeoutException`, `httpx.TransportError`, ...) stays, only the wire changes. httpx's own pool (httpcore)
  costs 2-3 ms of CPU per request on the event loop.
- Directly (`HttpPool.get()`), for the plain GETs a sync makes by the thousand (list, download): httpx's request
  and response layers still cost more CPU than the whole request, so these skip them and come back as an
  `httpx.Response` built from the bytes read, with the same exceptions.

The pool's timeouts (connect, read between bytes, waiting for a free connection) apply to every request; a
per-request httpx timeout is not looked at (the ANAF client sets its timeouts once, on the pool). Redirects are
never followed, bodies come back as sent (httpx decodes a content encoding), and cookies are never kept: one client
serves every tenant, and nothing a server sets for one token may ride along with another's request.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlencode

import httpx
from pyreqwest.client import Client
from pyreqwest.request import RequestBuilder

from spvhub_common.httpclient import LazyClient, RequestFault, client_builder, httpx_error

__all__ = ["HttpPool", "default_transport"]


class HttpPool:
    """One pyreqwest client (made lazily, again after `aclose()`) shared by the httpx transport and `get()`."""

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 4.0, verify: bool = True,
                 timeout: httpx.Timeout | None = None, headers: Mapping[str, str] | None = None) -> None:
        # keepalive_expiry under the usual 5 s of servers (uvicorn's, the emulator's): an idle connection is dropped
        # here before the server closes it just as a request goes out on it
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self.verify = verify
        self.timeout = timeout or httpx.Timeout(30.0)
        self.headers = dict(headers or {})
        self._client = LazyClient(self._build)

    def _build(self) -> Client:
        t = self.timeout
        b = (client_builder().max_connections(self.max_connections)
             .pool_idle_timeout(timedelta(seconds=self.keepalive_expiry))
             .gzip(False).deflate(False).brotli(False).zstd(False))  # bodies as sent: httpx decodes them
        for value, setter in ((t.connect, b.connect_timeout), (t.read, b.read_timeout), (t.pool, b.pool_timeout)):
            if value is not None:
                b = setter(timedelta(seconds=value))
        if not self.verify:
            b = b.danger_accept_invalid_certs(True)
        return b.build()

    def client(self) -> Client:
        return self._client.get()

    @property
    def closed(self) -> bool:
        return self._client.closed

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport over this pool."""
        return _PoolTransport(self)

    async def get(self, url: str, params: Mapping[str, str | int] | None = None,
                  headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET without httpx's client layers: the body read whole, redirects not followed, content-encoding decoded
        as httpx would; faults raise `httpx.TimeoutException` / `httpx.TransportError` subclasses."""
        target = f"{url}?{urlencode(params)}" if params else url
        hdrs = {**self.headers, "Accept-Encoding": "gzip, deflate", **(headers or {})}
        return await _send(self.client().get(target).headers(hdrs))

    async def aclose(self) -> None:
        await self._client.aclose()


async def _send(request: RequestBuilder) -> httpx.Response:
    """Send, read the answer whole, and give it as an `httpx.Response` (faults as httpx exceptions)."""
    try:
        resp = await request.build().send()
        body = await resp.bytes()
    except RequestFault as exc:
        raise httpx_error(exc) from exc
    return httpx.Response(resp.status, headers=list(resp.headers.items()), content=bytes(body))


class _PoolTransport(httpx.AsyncBaseTransport):
    """httpx over the pool: the request body sent whole (ANAF's are one document), the answer read whole."""

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        builder = self._pool.client().request(request.method, str(request.url)).headers(request.headers.multi_items())
        if body:
            builder = builder.body_bytes(body)
        return await _send(builder)

    async def aclose(self) -> None:
        await self._pool.aclose()


def default_transport(*, max_connections: int = 100, keepalive_expiry: float = 4.0, verify: bool = True,
                      timeout: httpx.Timeout | None = None) -> httpx.AsyncBaseTransport:
    """A transport for `httpx.AsyncClient` over its own pool, with the pool's `timeout`."""
    return HttpPool(max_connections=max_connections, keepalive_expiry=keepalive_expiry, verify=verify,
                    timeout=timeout).transport()

"""The HTTP client of the hot paths (ANAF's GETs, the archive's PUTs): pyreqwest, Python bindings to Rust's reqwest
(hyper, rustls). Its connection pool and HTTP work run in the library's own runtime thread, off the event loop and
outside the GIL: a request costs the loop about 0.1 ms of CPU where aiohttp's cost about 0.3 (measured with the
sync benchmark of services/efactura, where the event loop is the busiest part).

`LazyClient` builds a client on first use and again after `aclose()`; unlike an aiohttp session, a client is not
bound to the event loop it was made on, so a store or an ANAF client may outlive a loop (tests run one per test).
`httpx_error` maps pyreqwest's faults to the httpx exceptions the callers classify, by the phase they happened in.
"""
from __future__ import annotations

from collections.abc import Callable

import httpx
from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder

__all__ = ["LazyClient", "RequestFault", "client_builder", "httpx_error"]

# What a request can raise for a fault of the network or the peer (never for an HTTP status: statuses are answers).
RequestFault = rq.PyreqwestError


def client_builder() -> ClientBuilder:
    """A client builder with what every spvhub client wants: redirects never followed (an answer is taken as given,
    and a login page is no download) and no cookie kept (one client serves every tenant)."""
    return ClientBuilder().follow_redirects(False).default_cookie_store(False)


def _causes(exc: rq.PyreqwestError) -> list[str]:
    details = getattr(exc, "details", None) or {}
    return [str(c.get("message") or "") for c in (details.get("causes") or [])]


def httpx_error(exc: rq.PyreqwestError) -> httpx.TransportError:
    """The httpx exception for a pyreqwest fault, by the phase it happened in, which callers rely on: a
    ConnectError or ConnectTimeout only when no byte of the request can have left (hyper's "client error (Connect)"
    in the causes), since e-Factura's upload retries exactly those. pyreqwest's own class is not enough: it calls a
    connection closed after the request was sent a ConnectError, and a slow answer a ConnectTimeoutError. The message
    is the fault and its innermost cause, never the URL (it carries query parameters)."""
    causes = _causes(exc)
    connecting = any("client error (Connect)" in c for c in causes)
    msg = exc.message or type(exc).__name__
    if causes and not causes[-1].startswith("error sending request"):
        msg = f"{msg}: {causes[-1]}"
    if isinstance(exc, rq.PoolTimeoutError):
        return httpx.PoolTimeout(msg)
    if isinstance(exc, TimeoutError):
        return httpx.ConnectTimeout(msg) if connecting else httpx.ReadTimeout(msg)
    if connecting:
        return httpx.ConnectError(msg)
    if isinstance(exc, rq.WriteError):
        return httpx.WriteError(msg)
    if isinstance(exc, rq.ReadError | rq.DecodeError):  # the answer broke off (a decode error of the body read)
        return httpx.ReadError(msg)
    return httpx.RemoteProtocolError(msg)  # e.g. the connection closed before the answer: it may have been processed


class LazyClient:
    """A pyreqwest client made by `build` on first use, and made again after `aclose()`."""

    def __init__(self, build: Callable[[], Client]) -> None:
        self._build = build
        self._client: Client | None = None

    def get(self) -> Client:
        if self._client is None:
            self._client = self._build()
        return self._client

    @property
    def closed(self) -> bool:
        return self._client is None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

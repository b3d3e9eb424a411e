"""HTTP client that posts signed deliveries: no redirects, no proxies from the environment, bounded timeouts and
response body, and (outside dev/test) a resolver that refuses a host when any of its addresses is private, loopback
or link-local, checked on the very addresses the connection then uses (no DNS-rebinding gap)."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from spvhub_webhooks.domain import TargetRefused, address_allowed, check_url_shape


class PublicOnlyResolver(ThreadedResolver):
    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        bad = [r["host"] for r in results if not address_allowed(r["host"])]
        if bad or not results:
            raise TargetRefused(f"{host} resolves to a private, loopback or link-local address")
        return results


@dataclass
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str | None
    body_excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    """One pooled session per process; `strict` outside dev/test."""

    def __init__(self, *, strict: bool, timeout: float, connect_timeout: float, max_response_bytes: int,
                 user_agent: str = "spvhub-webhooks/1.0") -> None:
        self.strict = strict
        self.timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout, sock_connect=connect_timeout)
        self.max_response_bytes = max_response_bytes
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=PublicOnlyResolver() if self.strict else ThreadedResolver(), use_dns_cache=False,
                limit=100, limit_per_host=10)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, trust_env=False,
                                                  auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        started = time.monotonic()

        def done(code: int | None, error: str | None, excerpt: str = "") -> SendResult:
            return SendResult(code, int((time.monotonic() - started) * 1000), error, excerpt)

        try:
            check_url_shape(url, strict=self.strict)
        except Exception as exc:
            return done(None, f"target_refused: {getattr(exc, 'message', exc)}")
        all_headers: dict[str, Any] = {"content-type": "application/cloudevents+json; charset=utf-8",
                                       "user-agent": self.user_agent, **headers}
        try:
            async with self._http().post(url, data=body, headers=all_headers, allow_redirects=False) as resp:
                # read at most the bound, so a receiver answering with an endless body cannot hold the sender
                chunk = await resp.content.read(self.max_response_bytes)
                excerpt = chunk[:500].decode("utf-8", "replace")
                if 300 <= resp.status < 400:
                    return done(resp.status, "redirect not followed", excerpt)
                return done(resp.status, None if 200 <= resp.status < 300 else f"HTTP {resp.status}", excerpt)
        except aiohttp.ClientConnectorDNSError as exc:
            cause = exc.os_error if hasattr(exc, "os_error") else exc
            if isinstance(cause, TargetRefused) or isinstance(exc.__cause__, TargetRefused):
                return done(None, f"target_refused: {exc.__cause__ or cause}")
            return done(None, f"dns: {str(exc)[:300]}")
        except TargetRefused as exc:
            return done(None, f"target_refused: {exc}")
        except TimeoutError:
            return done(None, "timeout")
        except aiohttp.ClientError as exc:
            return done(None, f"{type(exc).__name__}: {str(exc)[:300]}")
        except (OSError, ValueError) as exc:  # ValueError: a URL the HTTP client cannot use
            return done(None, f"{type(exc).__name__}: {str(exc)[:300]}")

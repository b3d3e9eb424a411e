"""The e-Factura calls this service makes (paged list, download), behind a port, spending the shared ANAF
budget of `spvhub_common.anaf` on every attempt and classifying ANAF's answers with its error classifier.

Transient failures (5xx, timeouts, connection errors, WAF pages, "eroare tehnica") are retried with exponential
backoff here; limit errors are never retried: they are raised with their reset time.
"""
from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import httpx

from spvhub_common.anaf.budget import AnafBudget, BudgetKind
from spvhub_common.anaf.clock import next_local_midnight
from spvhub_common.anaf.errors import (AnafError, AnafUnavailable, DailyLimitReached, NoMessages, RateLimited,
                                       UnexpectedResponse, Unauthorized, classify_text, is_waf_page, waf_error)
from spvhub_common.logging import get_logger

log = get_logger(__name__)


@dataclass
class ListPage:
    messages: list[dict[str, Any]] = field(default_factory=list)
    total_pages: int = 0
    total: int = 0
    page: int = 1


class EfacturaAnaf(Protocol):
    """Port: the two e-Factura calls of the inbox sync."""

    async def list_page(self, token: str, cif: str, start: datetime, end: datetime, page: int) -> ListPage: ...

    async def download(self, token: str, message_id: str) -> bytes: ...


class _Clock(Protocol):
    def now(self) -> datetime: ...


class BudgetClock:
    """The platform clock (which follows the emulator in dev/test) with an asyncio sleep, as the budget needs."""

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock

    def now(self) -> datetime:
        return self._clock.now()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, 5.0)))


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class HttpEfacturaAnaf:
    """Adapter over HTTP (api.anaf.ro or the emulator); `client` is injectable (ASGITransport in tests)."""

    def __init__(self, base_url: str, env: str, budget: AnafBudget, clock: _Clock, *,
                 client: httpx.AsyncClient | None = None, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.3) -> None:
        self.base = base_url.rstrip("/")
        self.env = env
        self.budget = budget
        self.clock = clock
        self.client = client or httpx.AsyncClient(timeout=timeout,
                                                  limits=httpx.Limits(max_connections=200,
                                                                      max_keepalive_connections=100))
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.calls = 0
        self.transient_failures = 0

    async def aclose(self) -> None:
        await self.client.aclose()

    def _url(self, name: str) -> str:
        return f"{self.base}/{self.env}/FCTEL/rest/{name}"

    async def _call(self, endpoint: str, kind: str, key: str, params: dict[str, Any], token: str,
                    cif: str | None) -> httpx.Response | AnafError:
        """One logical call with retries on transient faults; returns the response or a terminal error."""
        last: AnafError | None = None
        for attempt in range(self.retries):
            await self.budget.acquire(kind, key)  # raises BudgetExhausted (a LimitReached) at once
            self.calls += 1
            try:
                # wait_for as well: an in-process transport (tests) does not enforce httpx timeouts
                resp = await asyncio.wait_for(self.client.get(
                    self._url(endpoint), params=params, headers={"Authorization": f"Bearer {token}"},
                    timeout=self.timeout), self.timeout + 1)
            except (httpx.TimeoutException, httpx.TransportError, asyncio.TimeoutError) as e:
                last = AnafUnavailable(f"{type(e).__name__}: {e}", endpoint=endpoint)
            else:
                if resp.status_code in (401, 403):
                    return Unauthorized(resp.text[:200] or str(resp.status_code), endpoint=endpoint,
                                        status=resp.status_code)
                if resp.status_code == 429:
                    ra = resp.headers.get("retry-after")
                    wait = float(ra) if ra and ra.replace(".", "", 1).isdigit() else 60.0
                    # ANAF's minute window is spent: stop every replica until it resets, then try again.
                    await self.budget.mark_exhausted(BudgetKind.API, None,
                                                     self.clock.now() + timedelta(seconds=wait))
                    last = RateLimited("HTTP 429", retry_after=wait, endpoint=endpoint)
                    continue
                if resp.status_code >= 500 or resp.status_code in (302, 307):
                    last = AnafUnavailable(f"HTTP {resp.status_code}", endpoint=endpoint, status=resp.status_code)
                elif resp.status_code == 200 and "text/html" in resp.headers.get("content-type", "") \
                        and is_waf_page(resp.text):
                    last = waf_error(resp.text, endpoint=endpoint, status=200)
                else:
                    err = self._business_error(resp, endpoint, kind, key, cif)
                    if err is None:
                        return resp
                    if not err.transient:
                        return err
                    last = err
            self.transient_failures += 1
            if attempt + 1 < self.retries:
                await asyncio.sleep(self.backoff * (2 ** attempt) * random.uniform(0.7, 1.3))
        assert last is not None
        return last

    def _business_error(self, resp: httpx.Response, endpoint: str, kind: str, key: str,
                        cif: str | None) -> AnafError | None:
        ctype = resp.headers.get("content-type", "")
        if endpoint == "descarcare" and (resp.content[:2] == b"PK" or "zip" in ctype):
            return None
        if resp.status_code >= 400:
            return UnexpectedResponse(resp.text[:300], endpoint=endpoint, status=resp.status_code)
        try:
            body = json.loads(resp.content)
        except ValueError:
            return UnexpectedResponse(resp.text[:300], endpoint=endpoint, status=resp.status_code)
        if isinstance(body, dict) and body.get("eroare"):
            return classify_text(str(body["eroare"]), endpoint=endpoint, status=resp.status_code, cif=cif,
                                 limit_scope=f"{kind}:{key}", resets_at=next_local_midnight(self.clock.now()))
        if endpoint == "descarcare":
            return UnexpectedResponse(resp.text[:300], endpoint=endpoint, status=resp.status_code)
        return None

    async def list_page(self, token: str, cif: str, start: datetime, end: datetime, page: int) -> ListPage:
        params = {"startTime": _ms(start), "endTime": _ms(end), "cif": cif, "pagina": page}
        res = await self._call("listaMesajePaginatieFactura", BudgetKind.EF_LIST_PAGED, cif, params, token, cif)
        if isinstance(res, NoMessages):
            return ListPage([], 0, 0, page)
        if isinstance(res, AnafError):
            raise res
        body = res.json()
        return ListPage(list(body.get("mesaje") or []), int(body.get("numar_total_pagini") or 1),
                        int(body.get("numar_total_inregistrari") or 0), int(body.get("index_pagina_curenta") or page))

    async def download(self, token: str, message_id: str) -> bytes:
        res = await self._call("descarcare", BudgetKind.EF_DOWNLOAD, message_id, {"id": message_id}, token, None)
        if isinstance(res, AnafError):
            raise res
        return res.content


def resets_at_of(err: AnafError, now: datetime) -> datetime:
    at = getattr(err, "resets_at", None)
    if isinstance(at, datetime):
        return at
    if isinstance(err, DailyLimitReached):
        return next_local_midnight(now)
    return now + timedelta(minutes=1)


__all__ = ["BudgetClock", "EfacturaAnaf", "HttpEfacturaAnaf", "ListPage", "resets_at_of", "timezone"]

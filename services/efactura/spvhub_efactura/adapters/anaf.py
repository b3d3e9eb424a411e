"""The e-Factura calls this service makes (paged list, download), behind a port, through the shared ANAF client
of `spvhub_common.anaf` (shared budget on every attempt, ANAF's answers classified by wording).

Transient failures (5xx, timeouts, connection errors, WAF pages, "eroare tehnica") are retried with exponential
backoff here; limit errors are never retried: they are raised with their reset time.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from spvhub_common.anaf.client import AnafClient
from spvhub_common.anaf.clock import next_local_midnight
from spvhub_common.anaf.errors import AnafError, AnafUnavailable, DailyLimitReached, RateLimited, WafRejected
from spvhub_common.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


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


class CommonEfacturaAnaf:
    """Adapter over `spvhub_common.anaf.AnafClient` (which spends the shared budget on every attempt and
    classifies ANAF's answers); adds bounded retries with jittered exponential backoff for transient faults."""

    def __init__(self, client: AnafClient, *, timeout: float = 30.0, retries: int = 4, backoff: float = 0.3) -> None:
        self.client = client
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.calls = 0
        self.transient_failures = 0

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.retries):
            self.calls += 1
            try:
                # a deadline as well: an in-process transport (tests) does not enforce httpx timeouts
                # (asyncio.timeout rather than wait_for: no extra task per call)
                async with asyncio.timeout(self.timeout):
                    return await fn()
            except TimeoutError:
                err: AnafError = AnafUnavailable("timeout")
            except (AnafUnavailable, RateLimited, WafRejected) as e:
                err = e  # RateLimited: the client already told the budget to stop until the window resets
            self.transient_failures += 1
            if attempt + 1 >= self.retries:
                raise err
            await asyncio.sleep(self.backoff * (2 ** attempt) * random.uniform(0.7, 1.3))
        raise AssertionError("unreachable")

    async def list_page(self, token: str, cif: str, start: datetime, end: datetime, page: int) -> ListPage:
        res = await self._retrying(lambda: self.client.list_messages_paginated(
            cif, _ms(start), _ms(end), page, token=token))
        return ListPage([m.raw or {"id": m.id, "cif": m.cif, "tip": m.tip, "detalii": m.detalii,
                                   "id_solicitare": m.id_solicitare} for m in res.messages],
                        res.numar_total_pagini, res.numar_total_inregistrari, res.index_pagina_curenta)

    async def download(self, token: str, message_id: str) -> bytes:
        return await self._retrying(lambda: self.client.download(message_id, token=token))

    async def xml_to_pdf(self, xml: bytes, credit_note: bool) -> bytes:
        """ANAF's transformare (public host, no token); optional, the local renderer is the default."""
        return await self._retrying(lambda: self.client.xml_to_pdf(xml, "FCN" if credit_note else "FACT1"))


def resets_at_of(err: AnafError, now: datetime) -> datetime:
    at = getattr(err, "resets_at", None)
    if isinstance(at, datetime):
        return at
    if isinstance(err, DailyLimitReached):
        return next_local_midnight(now)
    return now + timedelta(minutes=1)


__all__ = ["BudgetClock", "CommonEfacturaAnaf", "EfacturaAnaf", "ListPage", "resets_at_of", "timezone"]

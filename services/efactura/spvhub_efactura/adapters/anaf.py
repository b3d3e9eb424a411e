"""The e-Factura calls this service makes (paged list, download), behind a port, through the shared ANAF client
of `spvhub_common.anaf` (shared budget on every attempt, ANAF's answers classified by wording, transient faults
retried there; limit errors are never retried: they are raised with their reset time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from spvhub_common.anaf.client import AnafClient
from spvhub_common.anaf.clock import next_local_midnight
from spvhub_common.anaf.errors import AnafError, DailyLimitReached
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


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class CommonEfacturaAnaf:
    """Adapter over `spvhub_common.anaf.AnafClient`, which spends the shared budget on every attempt, classifies
    ANAF's answers and retries transient faults (its `AnafConfig.retries` / `backoff` / `attempt_deadline`)."""

    def __init__(self, client: AnafClient) -> None:
        self.client = client

    @property
    def calls(self) -> int:
        """Attempts sent to ANAF (retries included)."""
        return self.client.stats.attempts

    @property
    def transient_failures(self) -> int:
        return self.client.stats.transient_failures

    async def aclose(self) -> None:
        await self.client.aclose()

    async def list_page(self, token: str, cif: str, start: datetime, end: datetime, page: int) -> ListPage:
        res = await self.client.list_messages_paginated(cif, _ms(start), _ms(end), page, token=token)
        return ListPage([m.raw or {"id": m.id, "cif": m.cif, "tip": m.tip, "detalii": m.detalii,
                                   "id_solicitare": m.id_solicitare} for m in res.messages],
                        res.numar_total_pagini, res.numar_total_inregistrari, res.index_pagina_curenta)

    async def download(self, token: str, message_id: str) -> bytes:
        return await self.client.download(message_id, token=token)

    async def xml_to_pdf(self, xml: bytes, credit_note: bool) -> bytes:
        """ANAF's transformare (public host, no token); optional, the local renderer is the default."""
        return await self.client.xml_to_pdf(xml, "FCN" if credit_note else "FACT1")


def resets_at_of(err: AnafError, now: datetime) -> datetime:
    at = getattr(err, "resets_at", None)
    if isinstance(at, datetime):
        return at
    if isinstance(err, DailyLimitReached):
        return next_local_midnight(now)
    return now + timedelta(minutes=1)


__all__ = ["CommonEfacturaAnaf", "EfacturaAnaf", "ListPage", "resets_at_of", "timezone"]

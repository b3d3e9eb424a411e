"""e-Factura domain rules: list windows, message kinds and direction, ledger states, download priority, backoff.

Pure functions and values; no I/O.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

BUCHAREST = ZoneInfo("Europe/Bucharest")
RETENTION = timedelta(days=60)  # ANAF keeps a message listable for 60 days after data_creare


class MessageState(StrEnum):
    LISTED = "listed"      # seen in a list, not yet archived
    ARCHIVED = "archived"  # signed ZIP in the blob store (terminal)
    LOST = "lost"          # ANAF refuses the download for good (terminal, with ANAF's reason)
    FAILED = "failed"      # last attempt failed; retried at next_attempt_at


class MessageKind(StrEnum):
    SENT = "sent"                  # FACTURA TRIMISA
    RECEIVED = "received"          # FACTURA PRIMITA
    ERRORS = "errors"              # ERORI FACTURA
    BUYER_MESSAGE = "buyer_message"  # MESAJ CUMPARATOR ...
    OTHER = "other"


def kind_of(tip: str) -> MessageKind:
    t = (tip or "").strip().upper()
    if t.startswith("FACTURA TRIMISA"):
        return MessageKind.SENT
    if t.startswith("FACTURA PRIMITA"):
        return MessageKind.RECEIVED
    if t.startswith("ERORI FACTURA"):
        return MessageKind.ERRORS
    if t.startswith("MESAJ CUMPARATOR"):
        return MessageKind.BUYER_MESSAGE
    return MessageKind.OTHER


def normalize_cif(value: str | None) -> str:
    """Strip whitespace and a leading RO (any case); keep what remains (digits for RO CUIs)."""
    text = re.sub(r"\s+", "", value or "").upper()
    if text.startswith("RO"):
        text = text[2:]
    return text


_SELF_BILLED = re.compile(r"autofactu", re.I)
_DETAIL_CIFS = re.compile(r"cif_emitent=(\d+).*?cif_beneficiar=(\d+)", re.S)
_DETAIL_SELF = re.compile(r"transmisa de cif=(\d+).*?in numele cif=(\d+)", re.S)


@dataclass(frozen=True)
class DetailParties:
    seller: str | None
    buyer: str | None
    self_billing: bool


def parse_detalii(detalii: str) -> DetailParties:
    """The CIFs ANAF puts in `detalii` (normal and self-billed wordings; both spellings of autofactura)."""
    m = _DETAIL_SELF.search(detalii or "")
    if m:
        return DetailParties(seller=m.group(2), buyer=m.group(1), self_billing=True)
    m = _DETAIL_CIFS.search(detalii or "")
    if m:
        return DetailParties(seller=m.group(1), buyer=m.group(2), self_billing=bool(_SELF_BILLED.search(detalii)))
    return DetailParties(None, None, bool(_SELF_BILLED.search(detalii or "")))


def direction_for(own_cif: str, kind: MessageKind, seller: str | None, buyer: str | None) -> str:
    """received or sent, from the company's point of view: "sent" when it is the seller, "received" when it is
    the buyer.

    The parties decide (callers pass those of `detalii`, else of the document); the list `tip` only when the
    company is neither. Self-billing is why: the buyer files in the seller's name, and which of the two ANAF lists
    as FACTURA TRIMISA is not settled (the emulator's default gives the uploading buyer TRIMISA, e-factura-go's
    fixture PRIMITA; anaf-api.md §11.13), so `tip` alone would file a purchase as a sale.
    """
    own = normalize_cif(own_cif)
    if seller and normalize_cif(seller) == own:
        return "sent"
    if buyer and normalize_cif(buyer) == own:
        return "received"
    if kind == MessageKind.SENT:
        return "sent"
    return "received"


def parse_data_creare(value: str) -> datetime:
    """`yyyyMMddHHmm` in Romania wall time -> aware UTC."""
    local = datetime.strptime(value.strip()[:12], "%Y%m%d%H%M").replace(tzinfo=BUCHAREST)
    return local.astimezone(UTC)


def purge_at(data_creare: datetime) -> datetime:
    return data_creare + RETENTION


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    first_sync: bool
    full: bool


def list_window(now: datetime, watermark: datetime | None, *, start_margin: timedelta, end_margin: timedelta,
                overlap: timedelta, full: bool = False) -> Window:
    """The window to list: [now - 60d + margin, now - end_margin], narrowed to start `overlap` before the
    watermark once a first sync succeeded (late-indexed messages fall inside the overlap)."""
    floor = now - RETENTION + start_margin
    end = now - end_margin
    first = watermark is None
    if first or full:
        start = floor
    else:
        start = max(floor, watermark - overlap)  # type: ignore[operator]
    if start >= end:
        start = end - timedelta(seconds=1)
    return Window(start=start, end=end, first_sync=first, full=full or first)


def priority_key(now: datetime, purge: datetime, listed_at: datetime, urgent: timedelta) -> tuple[int, float]:
    """Smaller = sooner. Messages close to purge first (soonest purge first), then the freshest."""
    if purge - now <= urgent:
        return (0, purge.timestamp())
    return (1, -listed_at.timestamp())


def retry_delay(attempts: int, base: float, cap: float) -> float:
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


def days_left(now: datetime, purge: datetime) -> int:
    return max(0, int((purge - now).total_seconds() // 86400))

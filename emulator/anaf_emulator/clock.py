"""The emulator's controllable clock (Europe/Bucharest wall time) and ANAF's timestamp formats."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

RO_TZ = ZoneInfo("Europe/Bucharest")



def parse_instant(value: str) -> datetime:
    """Parse an ISO-8601 instant; a naive value is Romania wall time."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=RO_TZ)
    return moment


class Clock:
    """A wall clock shifted by an offset, optionally frozen; all emulator time comes from here."""

    def __init__(self, start: datetime | None = None, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None
        if start is not None:
            self._offset = start.timestamp() - time.time()
        if frozen:
            self._frozen_at = time.time() + self._offset

    def timestamp(self) -> float:
        """Seconds since the epoch on the emulator clock."""
        frozen = self._frozen_at
        if frozen is not None:
            return frozen
        return time.time() + self._offset

    def now(self) -> datetime:
        """Current instant, Romania time zone."""
        return datetime.fromtimestamp(self.timestamp(), RO_TZ)

    def today(self) -> date:
        return self.now().date()

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def set(self, moment: datetime) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = moment.timestamp()
            else:
                self._offset = moment.timestamp() - time.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds

    def freeze(self, frozen: bool) -> None:
        with self._lock:
            if frozen and self._frozen_at is None:
                self._frozen_at = time.time() + self._offset
            elif not frozen and self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None


def ro(moment: datetime) -> datetime:
    return moment.astimezone(RO_TZ)


def fmt_minute(moment: datetime) -> str:
    """yyyyMMddHHmm, Romania time (e-Factura data_creare, dateResponse)."""
    return ro(moment).strftime("%Y%m%d%H%M")


def fmt_second(moment: datetime) -> str:
    """yyyyMMddHHmmss (e-Transport lista data_creare)."""
    return ro(moment).strftime("%Y%m%d%H%M%S")


def fmt_dmy(moment: datetime) -> str:
    """dd-MM-yyyy HH:mm:ss (list errors, CustomErrorMessage timestamps)."""
    return ro(moment).strftime("%d-%m-%Y %H:%M:%S")


def fmt_spv(moment: datetime) -> str:
    """dd.MM.yyyy HH:mm:ss (SPV listaMesaje)."""
    return ro(moment).strftime("%d.%m.%Y %H:%M:%S")


def fmt_iso_spring(moment: datetime) -> str:
    """Spring's ISO timestamp with milliseconds and +00:00, e.g. 2022-09-07T12:33:24.284+00:00."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+00:00"


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=RO_TZ)


def days(n: float) -> timedelta:
    return timedelta(days=n)

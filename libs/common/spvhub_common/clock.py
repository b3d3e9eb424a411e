"""Clocks: the system clock in production; in dev/test a clock that follows the ANAF emulator's clock
(`SPVHUB_CLOCK_URL=http://127.0.0.1:18080/__admin/clock`) so simulated days move every service at once."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx

BUCHAREST = ZoneInfo("Europe/Bucharest")


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """Test clock moved by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **kw: float) -> None:
        self.at += timedelta(**kw)


class FollowingClock:
    """Follows a remote clock endpoint answering `{"epoch_ms": ..., "frozen": bool}`; re-reads it at most
    every `refresh` seconds (dev and test only: a blocking loopback call)."""

    def __init__(self, url: str, refresh: float = 1.0) -> None:
        self.url = url
        self.refresh = refresh
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._read_at = -1e9
        self._http = httpx.Client(timeout=2)  # one kept-alive loopback connection, not one per read

    def _sync(self) -> None:
        try:
            body = self._http.get(self.url).json()
        except (httpx.HTTPError, ValueError):
            return  # keep the last known offset
        remote = body["epoch_ms"] / 1000.0
        self._frozen_at = remote if body.get("frozen") else None
        self._offset = remote - time.time()
        self._read_at = time.monotonic()

    def now(self) -> datetime:
        if time.monotonic() - self._read_at > self.refresh:
            self._sync()
        ts = self._frozen_at if self._frozen_at is not None else time.time() + self._offset
        return datetime.fromtimestamp(ts, UTC)


def make_clock(clock_url: str) -> Clock:
    return FollowingClock(clock_url) if clock_url else SystemClock()

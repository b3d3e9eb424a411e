"""Published ANAF limits: per-token calls per minute, daily caps reset at midnight Europe/Bucharest."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from datetime import date
from typing import Any

from .clock import Clock


class DailyCaps:
    """Counts per (kind, key) for the current local day of the emulator clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._day: date | None = None
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def _roll(self) -> None:
        today = self._clock.today()
        if today != self._day:
            self._day = today
            self._counts.clear()

    def take(self, kind: str, key: str, cap: int) -> bool:
        """Count one call; False (and not counted) when `cap` calls were already made today."""
        with self._lock:
            self._roll()
            k = (kind, key)
            if cap > 0 and self._counts[k] >= cap:
                return False
            self._counts[k] += 1
            return True

    def used(self, kind: str, key: str) -> int:
        with self._lock:
            self._roll()
            return self._counts[(kind, key)]


class MinuteRate:
    """Fixed one-minute windows on the emulator clock, per key (an access token or a client IP)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, limit: int, window_seconds: int = 60) -> tuple[bool, int]:
        """(allowed, seconds until the window resets)."""
        now = self._clock.timestamp()
        bucket = int(now // window_seconds)
        retry = max(1, int((bucket + 1) * window_seconds - now + 0.999))
        with self._lock:
            current, count = self._windows.get(key, (bucket, 0))
            if current != bucket:
                count = 0
            if limit > 0 and count >= limit:
                self._windows[key] = (bucket, count)
                return False, retry
            self._windows[key] = (bucket, count + 1)
            if len(self._windows) > 100_000:
                self._windows = {k: v for k, v in self._windows.items() if v[0] == bucket}
            return True, retry


class Counters:
    """Call counters for the admin API: per endpoint, per CUI, per message, per upload, OAuth."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.endpoints: Counter[str] = Counter()
        self.cui: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.messages: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.uploads: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.oauth: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoints": dict(self.endpoints),
            "cui": {k: dict(v) for k, v in self.cui.items()},
            "messages": {k: dict(v) for k, v in self.messages.items()},
            "uploads": {k: dict(v) for k, v in self.uploads.items()},
            "oauth": dict(self.oauth),
            "rejected": dict(self.rejected),
        }

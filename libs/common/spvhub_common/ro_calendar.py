"""Romania's working-day calendar: weekends, the legal public holidays of the Labour Code (art. 139), with the
Orthodox Easter and Pentecost computed per year, and days off a deployment adds as data (government decisions).
Pure; the only I/O is reading the optional extra-days file once."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

RO_TZ = ZoneInfo("Europe/Bucharest")
EXTRA_DAYS_ENV = "SPVHUB_RO_EXTRA_DAYS_OFF_FILE"
BUNDLED_EXTRA_DAYS = Path(__file__).with_name("ro_days_off.json")


def orthodox_easter(year: int) -> date:
    """Orthodox Easter Sunday (Gregorian date): Meeus' Julian algorithm, then the Julian-Gregorian offset
    (13 days for 1900-2099)."""
    a, b, c = year % 4, year % 7, year % 19
    d = (19 * c + 15) % 30
    e = (2 * a + 4 * b - d + 34) % 7
    month, day = divmod(d + e + 114, 31)
    julian = date(year, month, day + 1)
    offset = year // 100 - year // 400 - 2  # 13 from 1900 to 2099
    return julian + timedelta(days=offset)


def legal_holidays(year: int) -> dict[date, str]:
    """The public holidays of `year` (Codul muncii art. 139), date -> Romanian name."""
    easter = orthodox_easter(year)
    days: dict[date, str] = {
        date(year, 1, 1): "Anul Nou",
        date(year, 1, 2): "Anul Nou (a doua zi)",
        date(year, 1, 24): "Ziua Unirii Principatelor Române",
        easter - timedelta(days=2): "Vinerea Mare",
        easter: "Paștele ortodox",
        easter + timedelta(days=1): "Paștele ortodox (a doua zi)",
        date(year, 5, 1): "Ziua Muncii",
        date(year, 6, 1): "Ziua Copilului",
        easter + timedelta(days=49): "Rusaliile",
        easter + timedelta(days=50): "Rusaliile (a doua zi)",
        date(year, 8, 15): "Adormirea Maicii Domnului",
        date(year, 11, 30): "Sfântul Andrei",
        date(year, 12, 1): "Ziua Națională",
        date(year, 12, 25): "Crăciunul",
        date(year, 12, 26): "Crăciunul (a doua zi)",
    }
    if year >= 2024:  # Law 17/2023 added Boboteaza and Sfântul Ioan
        days[date(year, 1, 6)] = "Boboteaza"
        days[date(year, 1, 7)] = "Sfântul Ioan Botezătorul"
    return days


def read_extra_days(path: str | Path | None) -> dict[date, str]:
    """A JSON file of extra days off: {"2026-12-24": "reason", ...} or ["2026-12-24", ...]."""
    if not path:
        return {}
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    items: Iterable[tuple[str, str]] = (raw.items() if isinstance(raw, dict)
                                        else ((d, "zi liberă") for d in raw))
    return {date.fromisoformat(k): str(v) for k, v in items if not str(k).startswith("_")}


class WorkingCalendar:
    """Working days in Romania: Monday-Friday that are neither a legal holiday nor an extra day off."""

    def __init__(self, extra_days_off: dict[date, str] | None = None) -> None:
        self.extra = dict(extra_days_off or {})
        self._years: dict[int, dict[date, str]] = {}

    def holidays(self, year: int) -> dict[date, str]:
        got = self._years.get(year)
        if got is None:
            got = {**legal_holidays(year), **{d: r for d, r in self.extra.items() if d.year == year}}
            self._years[year] = got
        return got

    def day_off_reason(self, day: date) -> str | None:
        if day.weekday() >= 5:
            return "sâmbătă" if day.weekday() == 5 else "duminică"
        return self.holidays(day.year).get(day)

    def is_working_day(self, day: date) -> bool:
        return self.day_off_reason(day) is None

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (the day of the event itself is not counted)."""
        day, left = start, n
        while left > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds of [start, end) that fall on working days (whole local days count, 24 h each)."""
        if end <= start:
            return 0.0
        s, e = start.astimezone(RO_TZ), end.astimezone(RO_TZ)
        total, day = 0.0, s.date()
        while day <= e.date():
            if self.is_working_day(day):
                lo = max(s, datetime.combine(day, time(0), RO_TZ))
                hi = min(e, datetime.combine(day + timedelta(days=1), time(0), RO_TZ))
                total += max(0.0, (hi - lo).total_seconds())
            day += timedelta(days=1)
        return total


@lru_cache(maxsize=4)
def _calendar_for(path: str | None) -> WorkingCalendar:
    extra = read_extra_days(BUNDLED_EXTRA_DAYS) if BUNDLED_EXTRA_DAYS.exists() else {}
    extra.update(read_extra_days(path))
    return WorkingCalendar(extra)


def default_calendar() -> WorkingCalendar:
    """The bundled extra days plus those of the file named by SPVHUB_RO_EXTRA_DAYS_OFF_FILE (if any)."""
    return _calendar_for(os.environ.get(EXTRA_DAYS_ENV) or None)

"""The legal filing clock (OUG 89/2025, from 1 Jan 2026): an invoice is filed in RO e-Factura within 5 working days
of its issue date, terms counted per Regulation 1182/71 - the issue day itself is not counted, the term runs from
the first hour of the next day and ends at the last hour (23:59:59, Bucharest time) of the 5th working day; weekends,
legal holidays and declared days off are not working days. The filing moment is the upload's acceptance (ANAF gave
an index). Pure: no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

from spvhub_common.ro_calendar import RO_TZ, WorkingCalendar, default_calendar

WORKING_DAYS = 5
ON_TIME, DUE_SOON, LATE = "on_time", "due_soon", "late"


@dataclass(frozen=True)
class Deadline:
    issued: date
    last_day: date  # the 5th working day after the issue date
    ends_at: datetime  # the first instant after the term (00:00 Bucharest of the day after `last_day`)

    @property
    def last_moment(self) -> datetime:
        return self.ends_at - timedelta(microseconds=1)


def deadline(issue_date: date, calendar: WorkingCalendar | None = None) -> Deadline:
    cal = calendar or default_calendar()
    last = cal.add_working_days(issue_date, WORKING_DAYS)
    return Deadline(issue_date, last, datetime.combine(last + timedelta(days=1), time(0), RO_TZ))


def state_at(dl: Deadline, now: datetime, filed_at: datetime | None, due_soon_hours: float,
             calendar: WorkingCalendar | None = None) -> str:
    """on_time / due_soon / late: by the filing moment when filed, else by `now` (due soon when at most
    `due_soon_hours` working hours are left)."""
    if filed_at is not None:
        return LATE if filed_at >= dl.ends_at else ON_TIME
    if now >= dl.ends_at:
        return LATE
    cal = calendar or default_calendar()
    left = cal.working_seconds_between(now, dl.ends_at)
    return DUE_SOON if left <= due_soon_hours * 3600 else ON_TIME


def working_days_late(dl: Deadline, filed_at: datetime, calendar: WorkingCalendar | None = None) -> int:
    """Working days between the deadline's last day and the (Bucharest) day of filing: 0 when filed on time."""
    if filed_at < dl.ends_at:
        return 0
    cal = calendar or default_calendar()
    late, day = 0, dl.last_day
    while day < filed_at.astimezone(RO_TZ).date():
        day += timedelta(days=1)
        late += cal.is_working_day(day)
    return late


def warning_due(dl: Deadline, now: datetime, warn_hours: float, calendar: WorkingCalendar | None = None
                ) -> float | None:
    """The working seconds left when the deadline warning is due at `now` (at most `warn_hours` working hours
    left); None when it is not yet due, or too late (the term is over)."""
    if now >= dl.ends_at:
        return None
    cal = calendar or default_calendar()
    left = cal.working_seconds_between(now, dl.ends_at)
    return None if left > warn_hours * 3600 else left


class OnTheClock(Protocol):
    """What the filing clock reads of a submission (the repository's `Submission` record has these columns; this
    module stays pure and does not import it)."""

    @property
    def kind(self) -> str: ...

    @property
    def issue_date(self) -> date | None: ...

    @property
    def state(self) -> str: ...

    @property
    def uploaded_at(self) -> datetime | None: ...


def clock_of(row: OnTheClock, now: datetime, due_soon_hours: float,
             calendar: WorkingCalendar | None = None) -> dict[str, Any]:
    """The filing-clock fields of a submission (empty for buyer messages or a document without issue date).
    A submission counts as filed once ANAF accepted its upload, unless ANAF then rejected it (then it must be filed
    again and the clock keeps running)."""
    issue = row.issue_date
    if row.kind != "invoice" or issue is None:
        return {"filing_deadline": None, "filing_deadline_at": None, "deadline_state": None, "filed_late": None}
    dl = deadline(issue, calendar)
    filed_at = row.uploaded_at if row.state != "rejected" else None
    st = state_at(dl, now, filed_at, due_soon_hours, calendar)
    return {"filing_deadline": dl.last_day, "filing_deadline_at": dl.last_moment, "deadline_state": st,
            "filed_late": (filed_at >= dl.ends_at) if filed_at is not None else None}

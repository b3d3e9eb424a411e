"""The working-day calendar of Romania and the 5-working-day filing deadline (pure units)."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

import pytest
from spvhub_common.ro_calendar import RO_TZ, WorkingCalendar, legal_holidays, orthodox_easter, read_extra_days
from spvhub_efactura.submissions.filing import DUE_SOON, LATE, ON_TIME, clock_of, deadline, state_at

CAL = WorkingCalendar()


@dataclass(frozen=True)
class _OnTheClock:
    """The columns the filing clock reads of a submission."""
    kind: str
    issue_date: date | None
    state: str = "accepted"
    uploaded_at: datetime | None = None


@pytest.mark.parametrize("year,easter", [(2024, date(2024, 5, 5)), (2025, date(2025, 4, 20)),
                                         (2026, date(2026, 4, 12)), (2027, date(2027, 5, 2)),
                                         (2028, date(2028, 4, 16)), (2030, date(2030, 4, 28))])
def test_orthodox_easter(year, easter):
    assert orthodox_easter(year) == easter and easter.weekday() == 6


def test_holidays_2026():
    assert sorted(legal_holidays(2026)) == [
        date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 6), date(2026, 1, 7), date(2026, 1, 24),
        date(2026, 4, 10), date(2026, 4, 12), date(2026, 4, 13),  # Good Friday, Easter Sunday and Monday
        date(2026, 5, 1), date(2026, 5, 31), date(2026, 6, 1),  # Pentecost Monday falls on 1 June
        date(2026, 8, 15), date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 25), date(2026, 12, 26)]


def test_holidays_2027():
    h = legal_holidays(2027)
    assert sorted(h) == [
        date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 6), date(2027, 1, 7), date(2027, 1, 24),
        date(2027, 4, 30), date(2027, 5, 1), date(2027, 5, 2), date(2027, 5, 3),  # Good Friday on 30 April
        date(2027, 6, 1), date(2027, 6, 20), date(2027, 6, 21),  # Pentecost
        date(2027, 8, 15), date(2027, 11, 30), date(2027, 12, 1), date(2027, 12, 25), date(2027, 12, 26)]
    assert h[date(2027, 6, 21)] == "Rusaliile (a doua zi)" and h[date(2027, 4, 30)] == "Vinerea Mare"
    assert date(2023, 1, 6) not in legal_holidays(2023)  # Boboteaza and Sf. Ioan only since 2024


def test_working_days():
    assert not CAL.is_working_day(date(2026, 3, 7))  # Saturday
    assert not CAL.is_working_day(date(2026, 4, 13)) and CAL.day_off_reason(date(2026, 4, 13)).startswith("Paștele")
    assert CAL.is_working_day(date(2026, 4, 14))


def test_deadline_friday_before_a_public_holiday():
    # Friday 29 May 2026; Monday 1 June is a holiday (Children's Day and Pentecost Monday): Tue..Fri, then Mon 8
    dl = deadline(date(2026, 5, 29), CAL)
    assert dl.last_day == date(2026, 6, 8)
    assert dl.last_moment == datetime(2026, 6, 8, 23, 59, 59, 999999, RO_TZ)
    # Friday 27 Nov 2026 before Saint Andrew (Mon 30 Nov) and the National Day (Tue 1 Dec): Wed 2 .. Tue 8
    assert deadline(date(2026, 11, 27), CAL).last_day == date(2026, 12, 8)
    # Thursday before Good Friday 2027 (30 Apr) and Easter Monday (3 May): Tue 4 .. Mon 10
    assert deadline(date(2027, 4, 29), CAL).last_day == date(2027, 5, 10)
    # an ordinary week: the issue day is not counted
    assert deadline(date(2026, 3, 9), CAL).last_day == date(2026, 3, 16)
    # issued on a Saturday: Mon..Fri of the next week
    assert deadline(date(2026, 3, 7), CAL).last_day == date(2026, 3, 13)
    # across the New Year and Epiphany days 2027: 31 Dec 2026 (Thu) -> 4,5,8,11,12 Jan
    assert deadline(date(2026, 12, 31), CAL).last_day == date(2027, 1, 12)


def test_extra_days_off_as_data(tmp_path):
    f = tmp_path / "days.json"
    f.write_text(json.dumps({"2026-06-02": "zi liberă HG", "_comment": "x"}))
    cal = WorkingCalendar(read_extra_days(f))
    assert deadline(date(2026, 5, 29), cal).last_day == date(2026, 6, 9)
    f.write_text(json.dumps(["2026-06-02", "2026-06-03"]))
    assert deadline(date(2026, 5, 29), WorkingCalendar(read_extra_days(f))).last_day == date(2026, 6, 10)


def test_states_and_filed_late():
    dl = deadline(date(2026, 5, 29), CAL)  # ends 8 June 24:00
    at = lambda *a: datetime(*a, tzinfo=RO_TZ)  # noqa: E731
    assert state_at(dl, at(2026, 6, 2, 9), None, 24, CAL) == ON_TIME
    assert state_at(dl, at(2026, 6, 5, 12), None, 24, CAL) == ON_TIME  # 12 h of Friday + all of Monday left
    assert state_at(dl, at(2026, 6, 6, 12), None, 24, CAL) == DUE_SOON  # the weekend does not count
    assert state_at(dl, at(2026, 6, 9, 0), None, 24, CAL) == LATE
    assert state_at(dl, at(2026, 6, 20), at(2026, 6, 8, 23, 59), 24, CAL) == ON_TIME  # filed in time
    assert state_at(dl, at(2026, 6, 9), at(2026, 6, 9, 0, 0, 1), 24, CAL) == LATE
    row = _OnTheClock("invoice", date(2026, 5, 29), "accepted", at(2026, 6, 9, 8))
    c = clock_of(row, at(2026, 6, 10), 24, CAL)
    assert c["filing_deadline"] == date(2026, 6, 8) and c["deadline_state"] == LATE and c["filed_late"] is True
    c = clock_of(replace(row, state="rejected"), at(2026, 6, 3), 24, CAL)  # not validly filed: the clock runs
    assert c["filed_late"] is None and c["deadline_state"] == ON_TIME
    assert clock_of(_OnTheClock("buyer_message", None), at(2026, 6, 3), 24, CAL)["filing_deadline"] is None
    assert CAL.working_seconds_between(at(2026, 6, 5, 12), at(2026, 6, 9)) == timedelta(hours=36).total_seconds()

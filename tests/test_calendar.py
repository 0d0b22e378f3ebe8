"""Day types: statutory holidays, make-up workdays (调休), overrides, uncovered years."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from core.calendar import COVERED_YEARS, DayType, WorkCalendar


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 10, 1), DayType.HOLIDAY),  # National Day
        (date(2026, 10, 4), DayType.HOLIDAY),  # a Sunday inside the National Day period
        (date(2026, 2, 17), DayType.HOLIDAY),  # Spring Festival 2026
        (date(2026, 2, 14), DayType.MAKEUP_WORKDAY),  # a Saturday worked for the Spring Festival
        (date(2026, 9, 20), DayType.MAKEUP_WORKDAY),  # a Sunday worked for National Day
        (date(2026, 11, 30), DayType.WORKDAY),  # an ordinary Monday
        (date(2026, 11, 29), DayType.WEEKEND),  # an ordinary Sunday
        (date(2024, 5, 1), DayType.HOLIDAY),  # Labour Day
    ],
)
def test_national_calendar(day, expected):
    assert WorkCalendar().day_type(day) is expected


def test_working_days():
    cal = WorkCalendar()
    assert cal.is_working_day(date(2026, 2, 14))  # 调休 Saturday
    assert not cal.is_working_day(date(2026, 10, 1))
    assert not DayType.HOLIDAY.is_working
    assert DayType.MAKEUP_WORKDAY.is_working


def test_site_overrides_win():
    cal = WorkCalendar({date(2026, 11, 30): DayType.HOLIDAY, date(2026, 10, 1): DayType.WORKDAY})
    assert cal.day_type(date(2026, 11, 30)) is DayType.HOLIDAY
    assert cal.day_type(date(2026, 10, 1)) is DayType.WORKDAY


def test_uncovered_year_falls_back_and_warns_once(caplog):
    year = max(COVERED_YEARS) + 1
    cal = WorkCalendar()
    assert not cal.covers(year)
    assert cal.uncovered_years([year - 1, year]) == [year]
    with caplog.at_level(logging.WARNING, logger="core.calendar"):
        jan1 = date(year, 1, 1)
        expected = DayType.WEEKEND if jan1.weekday() >= 5 else DayType.WORKDAY
        assert cal.day_type(jan1) is expected  # not guessed as a holiday
        cal.day_type(date(year, 1, 2))
    warnings = [r for r in caplog.records if str(year) in r.getMessage()]
    assert len(warnings) == 1
    assert "no statutory holiday data" in warnings[0].getMessage()


def test_override_covers_an_uncovered_year():
    year = max(COVERED_YEARS) + 1
    cal = WorkCalendar({date(year, 1, 1): DayType.HOLIDAY})
    assert cal.day_type(date(year, 1, 1)) is DayType.HOLIDAY

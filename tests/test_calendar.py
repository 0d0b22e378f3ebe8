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


# -- the calendar source is explicit --------------------------------------------------------


def test_source_none_is_weekdays_and_weekends_only():
    cal = WorkCalendar(source="none")
    assert cal.day_type(date(2026, 10, 1)) is DayType.WORKDAY  # China's National Day: not here
    assert cal.day_type(date(2026, 2, 14)) is DayType.WEEKEND  # no 调休 either
    assert cal.uncovered_years(range(2000, 2100)) == []  # nothing to cover
    assert "no holidays" in cal.describe()


def test_source_holidays_for_another_country():
    cal = WorkCalendar(source="holidays", country="DE", subdivision="BY")
    assert cal.day_type(date(2026, 10, 3)) is DayType.HOLIDAY  # German Unity Day (a Saturday)
    assert cal.day_type(date(2026, 1, 6)) is DayType.HOLIDAY  # Epiphany: Bavaria's
    assert cal.day_type(date(2026, 10, 1)) is DayType.WORKDAY  # not China's National Day
    assert cal.day_type(date(2026, 2, 17)) is DayType.WORKDAY  # nor its Spring Festival
    assert cal.uncovered_years([2030]) == []
    assert "DE-BY" in cal.describe()
    berlin = WorkCalendar(source="holidays", country="DE", subdivision="BE")
    assert berlin.day_type(date(2026, 1, 6)) is DayType.WORKDAY


def test_overrides_win_over_every_source():
    for cal in (
        WorkCalendar({date(2026, 10, 3): DayType.WORKDAY}, source="holidays", country="DE"),
        WorkCalendar({date(2026, 10, 3): DayType.WORKDAY}, source="none"),
    ):
        assert cal.day_type(date(2026, 10, 3)) is DayType.WORKDAY


def _site(calendar: dict | None, timezone: str = "Asia/Shanghai"):
    import tomllib
    from pathlib import Path

    from core.config import parse_site

    path = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    raw["site"]["timezone"] = timezone
    if calendar is None:
        raw.pop("calendar", None)
    else:
        raw["calendar"] = {**calendar, "overrides": raw["calendar"]["overrides"]}
    return parse_site(raw, source="cal.toml")


def test_a_site_outside_china_never_gets_china_silently():
    from core.errors import ConfigError

    assert _site(None).work_calendar.source == "china"  # the default, in Shanghai
    assert _site(None, "Asia/Urumqi").work_calendar.source == "china"
    for zone in ("Europe/Berlin", "Asia/Hong_Kong", "UTC"):
        with pytest.raises(ConfigError, match="outside mainland China") as err:
            _site(None, zone)
        assert (err.value.entity, err.value.key) == ("[calendar]", "source")
        with pytest.raises(ConfigError, match="outside mainland China"):
            _site({"source": "china"}, zone)
    berlin = _site({"source": "holidays", "country": "DE"}, "Europe/Berlin")
    assert berlin.work_calendar.day_type(date(2026, 10, 1)) is DayType.WORKDAY
    assert berlin.work_calendar.day_type(date(2026, 12, 25)) is DayType.HOLIDAY
    assert _site({"source": "none"}, "UTC").work_calendar.source == "none"


@pytest.mark.parametrize(
    ("calendar", "key", "message"),
    [
        ({"source": "holidays"}, "country", "needs a country"),
        ({"source": "holidays", "country": "XX"}, "country", "unknown country 'XX'"),
        (
            {"source": "holidays", "country": "DE", "subdivision": "ZZ"},
            "subdivision",
            "unknown subdivision",
        ),
        ({"source": "none", "country": "DE"}, "country", "only used with source = 'holidays'"),
        ({"source": "moon"}, "source", "'china', 'none' or 'holidays'"),
    ],
)
def test_calendar_settings_are_checked(calendar, key, message):
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as err:
        _site(calendar, "Europe/Berlin")
    assert err.value.key == key

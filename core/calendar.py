"""The workday calendar: what kind of day a date is, in China.

A government building's load follows the calendar more than the weather: statutory holidays
(法定节假日) empty it, and make-up workdays (调休) fill it on a Saturday or Sunday. The dates
come from the maintained `chinesecalendar` package (the State Council's yearly notice);
the site file can override any date. Years the package does not cover fall back to plain
weekdays/weekends and are reported, never silently guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum

import chinese_calendar

log = logging.getLogger(__name__)


class DayType(StrEnum):
    WORKDAY = "workday"
    WEEKEND = "weekend"
    HOLIDAY = "holiday"  # statutory holiday, including weekend days inside a holiday period
    MAKEUP_WORKDAY = "makeup_workday"  # 调休: a Saturday or Sunday worked in exchange

    @property
    def is_working(self) -> bool:
        return self in (DayType.WORKDAY, DayType.MAKEUP_WORKDAY)


_HOLIDAYS: Mapping[date, object] = chinese_calendar.constants.holidays
_MAKEUP_WORKDAYS: Mapping[date, object] = chinese_calendar.constants.workdays
COVERED_YEARS: frozenset[int] = frozenset(d.year for d in _HOLIDAYS)


class WorkCalendar:
    """Day types for one site: the national calendar plus the site's own overrides."""

    def __init__(self, overrides: Mapping[date, DayType] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._warned: set[int] = set()

    def covers(self, year: int) -> bool:
        return year in COVERED_YEARS

    def uncovered_years(self, years: Iterable[int]) -> list[int]:
        """Years without national holiday data (the site file's overrides aside)."""
        return sorted({y for y in years if y not in COVERED_YEARS})

    def day_type(self, day: date) -> DayType:
        if day in self._overrides:
            return self._overrides[day]
        if day.year not in COVERED_YEARS:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "no statutory holiday data for %d (chinesecalendar %s covers %d-%d): "
                    "treating Monday-Friday as workdays; add [[calendar.overrides]] to the "
                    "site file or upgrade chinesecalendar",
                    day.year,
                    chinese_calendar.__version__,
                    min(COVERED_YEARS),
                    max(COVERED_YEARS),
                )
            return DayType.WEEKEND if day.weekday() >= 5 else DayType.WORKDAY
        if day in _HOLIDAYS:
            return DayType.HOLIDAY
        if day in _MAKEUP_WORKDAYS:
            return DayType.MAKEUP_WORKDAY
        return DayType.WEEKEND if day.weekday() >= 5 else DayType.WORKDAY

    def is_working_day(self, day: date) -> bool:
        return self.day_type(day).is_working

"""The workday calendar: what kind of day a date is.

A government building's load follows the calendar more than the weather: statutory holidays
(法定节假日) empty it, and make-up workdays (调休) fill it on a Saturday or Sunday. The source
is explicit in the site file (`[calendar] source`):

- `china` (default): the maintained `chinesecalendar` package (the State Council's yearly
  notice, with the make-up workdays); only for a site in a mainland China time zone, so a
  site elsewhere never gets China's holidays silently (`CHINA_TIMEZONES`). Years the package
  does not cover fall back to plain weekdays/weekends and are reported, never guessed;
- `none`: Monday to Friday are workdays, Saturday and Sunday weekend days, nothing else;
- `holidays`: the public holidays of a country (and subdivision) from the maintained
  `holidays` package; it has no make-up workdays.

The site file can override any date.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from enum import StrEnum
from typing import Literal

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

CalendarSource = Literal["china", "none", "holidays"]

CHINA_TIMEZONES = frozenset(
    {"Asia/Shanghai", "Asia/Urumqi", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin",
     "Asia/Kashgar", "PRC"}
)  # fmt: skip
"""IANA zones of mainland China (Hong Kong, Macao and Taipei keep holidays of their own)."""


def check_country(country: str, subdivision: str | None) -> None:
    """`ValueError` unless the `holidays` package knows the country (and subdivision)."""
    try:
        import holidays
    except ImportError:  # pragma: no cover - a dependency; the message says what to do
        raise ValueError("source = 'holidays' needs the `holidays` package installed") from None
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(f"unknown country {country!r} for the holidays package (ISO 3166-1)")
    if subdivision is not None and subdivision not in supported[country]:
        known = ", ".join(supported[country]) or "none"
        raise ValueError(f"unknown subdivision {subdivision!r} of {country} (known: {known})")


class WorkCalendar:
    """Day types for one site: its holiday source plus the site's own overrides."""

    def __init__(
        self,
        overrides: Mapping[date, DayType] | None = None,
        *,
        source: CalendarSource = "china",
        country: str | None = None,
        subdivision: str | None = None,
    ) -> None:
        self._overrides = dict(overrides or {})
        self._warned: set[int] = set()
        self.source: CalendarSource = source
        self._country = country
        self._subdivision = subdivision
        self._public: dict[int, frozenset[date]] = {}
        if source == "holidays":
            if country is None:
                raise ValueError("source 'holidays' needs a country")
            check_country(country, subdivision)

    def describe(self) -> str:
        """The source in words, for summaries and the record."""
        if self.source == "china":
            return f"China's statutory holidays and make-up workdays (chinesecalendar {chinese_calendar.__version__})"
        if self.source == "none":
            return "Monday-Friday workdays, no holidays"
        from importlib.metadata import version

        where = (
            self._country if self._subdivision is None else f"{self._country}-{self._subdivision}"
        )
        return f"public holidays of {where} (holidays {version('holidays')})"

    def covers(self, year: int) -> bool:
        return self.source != "china" or year in COVERED_YEARS

    def uncovered_years(self, years: Iterable[int]) -> list[int]:
        """Years without national holiday data (the site file's overrides aside)."""
        return sorted({y for y in years if not self.covers(y)})

    def _public_holidays(self, year: int) -> frozenset[date]:
        if year not in self._public:
            import holidays

            assert self._country is not None
            days = holidays.country_holidays(self._country, subdiv=self._subdivision, years=year)
            self._public[year] = frozenset(days)
        return self._public[year]

    def day_type(self, day: date) -> DayType:
        if day in self._overrides:
            return self._overrides[day]
        if self.source == "none":
            return DayType.WEEKEND if day.weekday() >= 5 else DayType.WORKDAY
        if self.source == "holidays":
            if day in self._public_holidays(day.year):
                return DayType.HOLIDAY
            return DayType.WEEKEND if day.weekday() >= 5 else DayType.WORKDAY
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

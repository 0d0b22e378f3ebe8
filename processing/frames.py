"""The tables the models eat: one row per local day, hour or billing period.

Columnar numpy, like `ReadingBatch`: a meter-year is 365 or 8760 rows, and the models fit
thousands of them. Day types are small integer codes (`DAY_TYPE_CODES`) so that a model can
index by them; `energy` is NaN where the consumption is unknown or not fit to use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from core.calendar import DayType

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
DayArray = npt.NDArray[np.datetime64]

DAY_TYPES: tuple[DayType, ...] = (
    DayType.WORKDAY,
    DayType.WEEKEND,
    DayType.HOLIDAY,
    DayType.MAKEUP_WORKDAY,
)
DAY_TYPE_CODES: dict[DayType, int] = {t: i for i, t in enumerate(DAY_TYPES)}
WORKDAY, WEEKEND, HOLIDAY, MAKEUP = range(4)

_EPOCH = np.datetime64("1970-01-01", "D")


def to_date(day: np.datetime64) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + int((day - _EPOCH).astype(np.int64)))


def day_range(start: date, end: date) -> DayArray:
    """Local dates start <= d < end."""
    return np.arange(np.datetime64(start, "D"), np.datetime64(end, "D"), dtype="datetime64[D]")


def weekday(days: DayArray) -> IntArray:
    """Monday 0 .. Sunday 6."""
    return np.asarray((days.astype(np.int64) + 3) % 7, dtype=np.int64)


def day_type_codes(days: DayArray, day_type: Callable[[date], DayType]) -> IntArray:
    """Codes of `DAY_TYPES` for each date, from a calendar's `day_type`."""
    return np.array([DAY_TYPE_CODES[day_type(to_date(d))] for d in days], dtype=np.int64)


def local_day_edges_ms(start: date, end: date, tz: str) -> IntArray:
    """UTC epoch ms of local midnights start, start+1, ..., end (one more edge than days)."""
    zone = ZoneInfo(tz)
    n = (end - start).days
    return np.array(
        [
            int(datetime.combine(start + timedelta(days=i), datetime.min.time(), zone).timestamp())
            * 1000
            for i in range(n + 1)
        ],
        dtype=np.int64,
    )


@dataclass(frozen=True, slots=True)
class DailyData:
    """One row per local day: energy (NaN: unknown), mean outdoor temperature °C, day type."""

    day: DayArray
    temperature: FloatArray
    day_type: IntArray
    energy: FloatArray

    def __post_init__(self) -> None:
        n = len(self.day)
        if not (len(self.temperature) == len(self.day_type) == len(self.energy) == n):
            raise ValueError("DailyData columns differ in length")

    def __len__(self) -> int:
        return len(self.day)

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """Rows a model may be fitted on: energy and temperature known."""
        return np.isfinite(self.energy) & np.isfinite(self.temperature)

    def take(self, index: npt.NDArray[np.bool_] | IntArray) -> DailyData:
        return DailyData(
            self.day[index], self.temperature[index], self.day_type[index], self.energy[index]
        )

    def between(self, start: date, end: date) -> DailyData:
        lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
        return self.take((self.day >= lo) & (self.day < hi))

    def with_energy(self, energy: FloatArray) -> DailyData:
        return replace(self, energy=np.asarray(energy, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class HourlyData:
    """One row per local hour: start (UTC ms), hour of week (local Monday 00:00 = 0), the
    day type and date of its local day, outdoor temperature °C and energy (NaN: unknown)."""

    ts_ms: IntArray
    hour_of_week: IntArray
    day: DayArray
    day_type: IntArray
    temperature: FloatArray
    energy: FloatArray

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        columns = (self.hour_of_week, self.day, self.day_type, self.temperature, self.energy)
        if any(len(c) != n for c in columns):
            raise ValueError("HourlyData columns differ in length")

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        return np.isfinite(self.energy) & np.isfinite(self.temperature)

    @property
    def hour(self) -> IntArray:
        return np.asarray(self.hour_of_week % 24, dtype=np.int64)

    def take(self, index: npt.NDArray[np.bool_] | IntArray) -> HourlyData:
        return HourlyData(
            self.ts_ms[index],
            self.hour_of_week[index],
            self.day[index],
            self.day_type[index],
            self.temperature[index],
            self.energy[index],
        )

    def between(self, start: date, end: date) -> HourlyData:
        lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
        return self.take((self.day >= lo) & (self.day < hi))

    def with_energy(self, energy: FloatArray) -> HourlyData:
        return replace(self, energy=np.asarray(energy, dtype=np.float64))


def hourly_frame(
    ts_ms: IntArray,
    tz: str,
    day_type: Callable[[date], DayType],
    temperature: FloatArray,
    energy: FloatArray,
) -> HourlyData:
    """Hour-of-week, local date and day type for hour starts `ts_ms` in zone `tz`."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    zone = ZoneInfo(tz)
    if len(ts) == 0:
        empty = np.empty(0, dtype=np.int64)
        return HourlyData(ts, empty, np.empty(0, "datetime64[D]"), empty, np.empty(0), np.empty(0))
    # Local offsets change a few times a year at most: compute them per distinct UTC day.
    utc_day = ts // 86_400_000
    first, inverse = np.unique(utc_day, return_inverse=True)
    offsets = np.array(
        [
            int(datetime.fromtimestamp(int(d) * 86_400 + 43_200, zone).utcoffset().total_seconds())  # type: ignore[union-attr]
            for d in first
        ],
        dtype=np.int64,
    )
    local_ms = ts + offsets[inverse] * 1000
    local_day = (local_ms // 86_400_000).astype("datetime64[D]")
    hour = (local_ms % 86_400_000) // 3_600_000
    how = weekday(local_day) * 24 + hour
    days, day_inverse = np.unique(local_day, return_inverse=True)
    types = day_type_codes(days, day_type)[day_inverse]
    return HourlyData(
        ts,
        np.asarray(how, dtype=np.int64),
        local_day,
        types,
        np.asarray(temperature, dtype=np.float64),
        np.asarray(energy, dtype=np.float64),
    )


def daily_from_hourly(hourly: HourlyData, min_hours: int = 12) -> DailyData:
    """Daily sums of energy and means of temperature; a day needs every hour of energy and
    `min_hours` hours of temperature (CalTRACK 2.2: a day with ≥ 50 % of its hours)."""
    days, inverse = np.unique(hourly.day, return_inverse=True)
    n_days = len(days)
    hours = np.bincount(inverse, minlength=n_days)
    e_ok = np.isfinite(hourly.energy)
    e_sum = np.bincount(inverse, weights=np.where(e_ok, hourly.energy, 0.0), minlength=n_days)
    e_n = np.bincount(inverse, weights=e_ok.astype(np.float64), minlength=n_days)
    t_ok = np.isfinite(hourly.temperature)
    t_sum = np.bincount(inverse, weights=np.where(t_ok, hourly.temperature, 0.0), minlength=n_days)
    t_n = np.bincount(inverse, weights=t_ok.astype(np.float64), minlength=n_days)
    energy = np.where((e_n == hours) & (hours >= 23), e_sum, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        temperature = np.where(t_n >= min_hours, t_sum / t_n, np.nan)
    first_row = np.zeros(n_days, dtype=np.int64)
    first_row[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return DailyData(days, temperature, hourly.day_type[first_row], energy)

"""Local time for arrays of UTC instants: offsets, local days, hours, day types.

Everything inside epcmon is UTC epoch milliseconds; a building lives in local time. This
turns arrays of UTC instants into what the models need (local day number, hour of day,
month, day of year, the calendar's day type) without a Python call per instant: the zone's
offset is looked up once per UTC day, and hour by hour only on the days it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from core.calendar import DayType, WorkCalendar

MINUTE_MS = 60_000
QUARTER_MS = 900_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

DAY_TYPES: tuple[DayType, ...] = tuple(DayType)
"""Day-type codes used in arrays: the index into this tuple."""
WORKDAY = DAY_TYPES.index(DayType.WORKDAY)
WEEKEND = DAY_TYPES.index(DayType.WEEKEND)
HOLIDAY = DAY_TYPES.index(DayType.HOLIDAY)
MAKEUP = DAY_TYPES.index(DayType.MAKEUP_WORKDAY)


@lru_cache(maxsize=64)
def _offsets_for_days(tz: ZoneInfo, first_day: int, n_days: int) -> I64:
    """UTC offset in ms for every UTC hour of days [first_day, first_day + n_days)."""
    hours = np.empty(n_days * 24, dtype=np.int64)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    prev: int | None = None
    for i in range(n_days + 1):
        moment = epoch + timedelta(days=first_day + i)
        off = moment.astimezone(tz).utcoffset()
        ms = int(off.total_seconds() * 1000) if off is not None else 0
        if i < n_days:
            hours[i * 24 : (i + 1) * 24] = ms
        if i > 0 and prev != ms:
            # the offset changed during day i-1: look it up hour by hour there
            for h in range(24):
                at = epoch + timedelta(days=first_day + i - 1, hours=h)
                o = at.astimezone(tz).utcoffset()
                hours[(i - 1) * 24 + h] = int(o.total_seconds() * 1000) if o is not None else 0
        prev = ms
    hours.flags.writeable = False
    return hours


def utc_offsets(ts_ms: I64, tz: ZoneInfo) -> I64:
    """The zone's UTC offset (ms) at each instant."""
    if len(ts_ms) == 0:
        return np.zeros(0, dtype=np.int64)
    first = int(ts_ms.min()) // DAY_MS
    last = int(ts_ms.max()) // DAY_MS
    table = _offsets_for_days(tz, first, last - first + 1)
    out: I64 = table[ts_ms // HOUR_MS - first * 24]
    return out


@dataclass(frozen=True)
class LocalTimes:
    """Local calendar facts of an array of UTC instants."""

    local_ms: I64
    """UTC ms shifted by the zone's offset (wall-clock ms as if it were UTC)."""
    day: I64
    """Local day number: days since 1970-01-01 local."""
    hour: F64
    """Local hour of day, fractional (0 <= hour < 24)."""
    month: I64
    """1..12."""
    doy: F64
    """Fractional day of year, 0 at 1 January 00:00 local."""
    day_type: npt.NDArray[np.int8]
    """Index into DAY_TYPES."""
    weekday: I64
    """0 = Monday."""

    @property
    def working(self) -> npt.NDArray[np.bool_]:
        wd: npt.NDArray[np.bool_] = (self.day_type == WORKDAY) | (self.day_type == MAKEUP)
        return wd


def day_types(calendar: WorkCalendar, first_day: int, n_days: int) -> npt.NDArray[np.int8]:
    """Day-type codes of local days [first_day, first_day + n_days)."""
    start = date(1970, 1, 1) + timedelta(days=first_day)
    return np.array(
        [DAY_TYPES.index(calendar.day_type(start + timedelta(days=i))) for i in range(n_days)],
        dtype=np.int8,
    )


def local_times(ts_ms: I64, tz: ZoneInfo, calendar: WorkCalendar) -> LocalTimes:
    local = ts_ms + utc_offsets(ts_ms, tz)
    day = local // DAY_MS
    hour = (local - day * DAY_MS) / HOUR_MS
    if len(day):
        first = int(day.min())
        types = day_types(calendar, first, int(day.max()) - first + 1)
        dtype = types[day - first]
    else:
        dtype = np.zeros(0, dtype=np.int8)
    d64 = day.astype("datetime64[D]")
    years = d64.astype("datetime64[Y]")
    month = (d64.astype("datetime64[M]") - years.astype("datetime64[M]")).astype(np.int64) + 1
    doy = (d64 - years.astype("datetime64[D]")).astype(np.int64) + hour / 24.0
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
    return LocalTimes(local, day, hour, month, doy, dtype, weekday)

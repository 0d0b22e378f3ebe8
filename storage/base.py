"""The `TimeSeriesStore` contract every backend honours.

Writes are idempotent on (meter, quantity, timestamp): writing the same reading twice, or a
corrected value for the same instant, leaves one point (the last written). Reads return
`Series`: parallel numpy arrays of bucket/point start times (UTC epoch ms) and values.
Day and month buckets start at local midnight in the time zone the caller passes (the
site's), so a Shanghai day is 16:00-16:00 UTC.

Interval consumption from counters (`consumption()`), the same rule in every backend:

- the counter's value at the end of a bucket is its last reading in the bucket;
- a bucket's consumption is that value minus the previous non-empty bucket's, so an increase
  that happened over a gap in the readings lands in the first bucket after the gap and is
  never lost; the window starts one bucket before the first bucket asked for, so the first
  bucket has a previous value when the meter was read in the bucket before it;
- a decrease is a reset or a roll-over of the register, never a negative consumption: the
  bucket counts the new value itself, as if the register had restarted from zero;
- a bucket without a previous non-empty bucket in the window has no value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from core.readings import Reading, ReadingBatch


class Agg(StrEnum):
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    FIRST = "first"
    LAST = "last"
    SUM = "sum"
    COUNT = "count"


_EVERY = re.compile(r"^(\d+)(s|m|h|d|mo)$")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class Every:
    """A bucket width: `30s`, `15m`, `1h`, `1d`, `1mo`. Days and months follow local time."""

    count: int
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in (*_UNIT_MS, "mo"):
            raise ValueError(f"bucket unit {self.unit!r}: expected s, m, h, d or mo")
        if self.count < 1:
            raise ValueError(f"bucket width {self.count}{self.unit}: must be positive")
        if self.unit == "mo" and self.count != 1:
            raise ValueError(f"bucket width {self.count}mo: only 1mo is supported")

    @classmethod
    def parse(cls, text: str) -> Every:
        match = _EVERY.match(text.strip())
        if not match or int(match.group(1)) < 1:
            raise ValueError(
                f"bucket width {text!r}: expected a positive number and s, m, h, d or mo"
            )
        count, unit = int(match.group(1)), match.group(2)
        if unit == "mo" and count != 1:
            raise ValueError(f"bucket width {text!r}: only 1mo is supported")
        return cls(count, unit)

    @property
    def is_calendar(self) -> bool:
        """Day and month buckets start at local midnight, not at UTC multiples."""
        return self.unit in ("d", "mo")

    @property
    def approx_ms(self) -> int:
        """Nominal width; exact for s/m/h, 24 h per day and 30 days per month otherwise."""
        if self.unit == "mo":
            return 30 * 86_400_000
        return self.count * _UNIT_MS[self.unit]

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def floor(self, ts_ms: int, tz: str = "UTC") -> int:
        """Start (UTC ms) of the bucket holding `ts_ms`: local midnight for days and months."""
        if not self.is_calendar:
            return ts_ms // self.approx_ms * self.approx_ms
        zone = time_zone(tz)
        local = datetime.fromtimestamp(ts_ms / 1000, tz=zone).date()
        if self.unit == "mo":
            return local_midnight_ms(date(local.year, local.month, 1), zone)
        days = (local - _EPOCH_DAY).days // self.count * self.count
        return local_midnight_ms(date.fromordinal(_EPOCH_DAY.toordinal() + days), zone)

    def previous(self, bucket_ms: int, tz: str = "UTC") -> int:
        """Start of the bucket before the one starting at `bucket_ms`."""
        if not self.is_calendar:
            return bucket_ms - self.approx_ms
        zone = time_zone(tz)
        local = datetime.fromtimestamp(bucket_ms / 1000, tz=zone).date()
        if self.unit == "mo":
            year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
            return local_midnight_ms(date(year, month, 1), zone)
        return local_midnight_ms(date.fromordinal(local.toordinal() - self.count), zone)


_EPOCH_DAY = date(1970, 1, 1)


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; an unknown name is a ValueError that names it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name like 'Asia/Shanghai')"
        ) from None


def local_midnight_ms(day: date, zone: ZoneInfo) -> int:
    """UTC epoch ms of the local midnight starting `day` in `zone`."""
    moment = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Series:
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def empty(cls) -> Series:
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))


def increase_per_bucket(lasts: Series, first_bucket_ms: int) -> Series:
    """Consumption per bucket from each bucket's last counter value (the module's rule).

    `lasts` holds the non-empty buckets of the window in time order, the bucket before
    `first_bucket_ms` included when it has readings; only buckets from `first_bucket_ms` on
    are returned.
    """
    if len(lasts) < 2:
        return Series.empty()
    step = np.diff(lasts.value)
    value = np.where(step < 0, lasts.value[1:], step)  # a decrease: counted from zero
    keep = lasts.ts_ms[1:] >= first_bucket_ms
    return Series(np.ascontiguousarray(lasts.ts_ms[1:][keep]), np.ascontiguousarray(value[keep]))


@runtime_checkable
class TimeSeriesStore(Protocol):
    def write(self, batch: ReadingBatch) -> int:
        """Store a batch; return the number of points written. Idempotent per key."""

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        """Points with start <= ts < end, in time order."""

    def aggregate(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        agg: Agg,
        tz: str = "UTC",
    ) -> Series:
        """One value per non-empty bucket in [start, end); bucket start times."""

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        """A counter's increase per bucket in [start, end), never negative (the module's
        rule); bucket start times. Buckets are whole: from the one holding `start`."""

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        """The newest point of every (meter, quantity), optionally for some meters only."""

    def series_keys(self) -> list[tuple[str, str]]:
        """Every (meter, quantity) the store holds."""

    def close(self) -> None: ...


class ReadsFromInner:
    """A store wrapper's reads: everything but `write` (and `close`) goes to `self.inner`
    as it is (the spool in front of InfluxDB; a test's switchable store)."""

    inner: TimeSeriesStore

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        return self.inner.read_raw(meter_id, quantity, start_ms, end_ms)

    def aggregate(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        agg: Agg,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.aggregate(meter_id, quantity, start_ms, end_ms, every, agg, tz)

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.consumption(meter_id, quantity, start_ms, end_ms, every, tz)

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        return self.inner.latest(meter_ids)

    def series_keys(self) -> list[tuple[str, str]]:
        return self.inner.series_keys()

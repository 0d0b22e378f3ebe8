"""The `TimeSeriesStore` contract every backend honours.

Writes are idempotent on (meter, quantity, timestamp): writing the same reading twice, or a
corrected value for the same instant, leaves one point (the last written). Reads return
`Series`: parallel numpy arrays of bucket/point start times (UTC epoch ms) and values.
Day and month buckets start at local midnight in the time zone the caller passes (the
site's), so a Shanghai day is 16:00-16:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

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


@dataclass(frozen=True, slots=True)
class Series:
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ts_ms)

    @classmethod
    def empty(cls) -> Series:
        return cls(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))


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

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        """The newest point of every (meter, quantity), optionally for some meters only."""

    def series_keys(self) -> list[tuple[str, str]]:
        """Every (meter, quantity) the store holds."""

    def close(self) -> None: ...

"""Readings: one value of one quantity of one meter at one instant.

`Reading` is the unit of meaning; `ReadingBatch` is the unit of transport (columnar numpy
arrays), so that a million points cross the store API without a million Python objects.
Timestamps are integer milliseconds since the Unix epoch, UTC, everywhere inside epcmon.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt


def to_ms(moment: datetime) -> int:
    """UTC epoch milliseconds of an aware datetime (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone")
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Reading:
    meter_id: str
    quantity: str
    ts_ms: int
    value: float

    @property
    def time(self) -> datetime:
        return from_ms(self.ts_ms)


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Columnar readings. All four arrays have the same length."""

    meter_id: npt.NDArray[np.object_]
    quantity: npt.NDArray[np.object_]
    ts_ms: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.ts_ms)
        if not (len(self.meter_id) == len(self.quantity) == len(self.value) == n):
            raise ValueError("ReadingBatch columns differ in length")

    def __len__(self) -> int:
        return len(self.ts_ms)

    def __iter__(self) -> Iterator[Reading]:
        for m, q, t, v in zip(self.meter_id, self.quantity, self.ts_ms, self.value, strict=True):
            yield Reading(str(m), str(q), int(t), float(v))

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls.from_readings(())

    @classmethod
    def from_readings(cls, readings: Iterable[Reading]) -> ReadingBatch:
        rows = list(readings)
        return cls(
            meter_id=np.array([r.meter_id for r in rows], dtype=object),
            quantity=np.array([r.quantity for r in rows], dtype=object),
            ts_ms=np.array([r.ts_ms for r in rows], dtype=np.int64),
            value=np.array([r.value for r in rows], dtype=np.float64),
        )

    @classmethod
    def for_series(
        cls,
        meter_id: str,
        quantity: str,
        ts_ms: npt.ArrayLike,
        value: npt.ArrayLike,
    ) -> ReadingBatch:
        ts = np.asarray(ts_ms, dtype=np.int64)
        return cls(
            meter_id=np.full(len(ts), meter_id, dtype=object),
            quantity=np.full(len(ts), quantity, dtype=object),
            ts_ms=ts,
            value=np.asarray(value, dtype=np.float64),
        )

    @classmethod
    def concat(cls, batches: Sequence[ReadingBatch]) -> ReadingBatch:
        if not batches:
            return cls.empty()
        return cls(
            meter_id=np.concatenate([b.meter_id for b in batches]),
            quantity=np.concatenate([b.quantity for b in batches]),
            ts_ms=np.concatenate([b.ts_ms for b in batches]),
            value=np.concatenate([b.value for b in batches]),
        )

"""Readings: one value of one quantity of one meter at one instant.

`Reading` is the unit of meaning; `ReadingBatch` is the unit of transport (columnar numpy
arrays), so that a million points cross the store API without a million Python objects.
Timestamps are integer milliseconds since the Unix epoch, UTC, everywhere inside epcmon.

What a store may hold is bounded once, here: `STORABLE_FROM_MS` <= ts < `STORABLE_UNTIL_MS`
(1970-01-01 to 2200-01-01 UTC). Every backend refuses a batch with a reading outside it
(`check_storable`, raising `BadReadings`), and the collectors' plausibility windows must lie
inside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from core.errors import BadReadings

STORABLE_FROM_MS = 0
"""1970-01-01T00:00Z, the first storable instant: no meter reading is older, and nothing
before the epoch survives every client's conversion (negative ms)."""
STORABLE_UNTIL_MS = 7_258_118_400_000
"""2200-01-01T00:00Z, the first instant not storable. Every store and client represents all
instants before it: InfluxDB's int64 nanoseconds end in 2262, DuckDB's microseconds (ms *
1000 in int64) far later, Python's `datetime` in 9999. A timestamp of 1e17 ms (year
248,073) overflowed `ts * 1000` before this bound existed."""


def to_ms(moment: datetime) -> int:
    """UTC epoch milliseconds of an aware datetime (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone")
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def storable(ts_ms: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Which of these epoch-ms timestamps a store may hold (see the module doc)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    return np.asarray((ts >= STORABLE_FROM_MS) & (ts < STORABLE_UNTIL_MS), dtype=np.bool_)


def check_storable(batch: ReadingBatch) -> None:
    """Refuse a batch with a timestamp outside the storable range (`BadReadings`, naming
    the first offending reading and how many there are)."""
    if len(batch) == 0:
        return
    ts = np.asarray(batch.ts_ms)
    if ts.dtype.kind not in "iu":  # floats or objects: compare without a lossy cast first
        ts = np.asarray(ts, dtype=np.float64)
        good = np.isfinite(ts) & (ts >= STORABLE_FROM_MS) & (ts < STORABLE_UNTIL_MS)
    elif int(ts.min()) >= STORABLE_FROM_MS and int(ts.max()) < STORABLE_UNTIL_MS:
        return  # the usual batch: two reductions, no mask
    else:
        good = storable(ts)
    if bool(good.all()):
        return
    bad = np.flatnonzero(~good)
    first = int(bad[0])
    raise BadReadings(
        f"{len(bad)} of {len(batch)} readings have a time outside the storable range "
        f"1970-01-01..2200-01-01 UTC, e.g. {batch.meter_id[first]} {batch.quantity[first]} "
        f"at {ts[first]} ms: the batch is refused (bad data, not a store fault)",
        rows=tuple(int(i) for i in bad),
    )


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
            meter_id=_repeated(meter_id, len(ts)),
            quantity=_repeated(quantity, len(ts)),
            ts_ms=ts,
            value=np.asarray(value, dtype=np.float64),
        )

    def with_meter_prefix(self, prefix: str) -> ReadingBatch:
        """The same readings with `prefix` before every meter id (a portfolio's `site/`);
        one string object per distinct meter, as the stores' column encoding prefers."""
        named: dict[str, str] = {}
        meter_id = np.empty(len(self.meter_id), dtype=object)
        for i, m in enumerate(self.meter_id):
            q = named.get(m)
            if q is None:
                q = named[m] = prefix + m
            meter_id[i] = q
        return ReadingBatch(meter_id, self.quantity, self.ts_ms, self.value)

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


def _repeated(text: str, n: int) -> npt.NDArray[np.object_]:
    """`n` references to the one string object (`np.full` makes a new string per element,
    which the stores' column encoding would then have to hash one by one)."""
    column = np.empty(n, dtype=object)
    column.fill(text)
    return column

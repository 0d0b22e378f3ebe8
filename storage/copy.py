"""Copying history from one store to another (`epcmon store copy`), resumably.

The plan is one census of the source: the points left per series, after what the state file
records as copied (a resume with nothing left costs that one query). The points are then read
in large chunks ordered by series and time, and written to the destination in batches of
`batch_points` that span series (one store write, one request or transaction per few series,
not per series and month). After every batch the state file records, per series in it, the
newest timestamp copied (written to a temporary file and renamed, so a crash leaves the old
state or the new one, never half of one). A second run with the same state file starts after
what the first one copied; writes are idempotent, so a batch copied twice (a crash between
the write and the state update) is harmless.

A source that offers `census` and `read_after` (the DuckDB store) reads in bulk; any other
`TimeSeriesStore` is read series by series and month by month through the contract
(`aggregate` to count, `read_raw` to read), its points gathered into the same batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from core.errors import ConfigError
from core.readings import ReadingBatch
from storage.base import Agg, Every, TimeSeriesStore

MIN_MS = -9_223_372_036_854
MAX_MS = 9_223_372_036_853

Key = tuple[str, str]


@runtime_checkable
class BulkSource(Protocol):
    """A source that counts and reads what is left to copy in bulk."""

    def census(self, start_ms: int, end_ms: int, after: Mapping[Key, int]) -> dict[Key, int]:
        """Points per series in [start, end) newer than the series' mark in `after`."""

    def read_after(
        self,
        left: Mapping[Key, int],
        after: Mapping[Key, int],
        start_ms: int,
        end_ms: int,
        rows: int,
    ) -> Iterator[ReadingBatch]:
        """Those points in batches of about `rows`, grouped by series in the order of
        `left`, time-ordered within each."""


@dataclass
class CopyState:
    """What has been copied: the newest timestamp per series, for one source/destination."""

    path: Path
    source: str
    destination: str
    copied_until: dict[str, int] = field(default_factory=dict)  # "meter\tquantity" -> ts

    @classmethod
    def open(cls, path: Path, source: str, destination: str) -> CopyState:
        if not path.exists():
            return cls(path, source, destination)
        data = json.loads(path.read_text(encoding="utf-8"))
        if (data.get("source"), data.get("destination")) != (source, destination):
            raise ConfigError(
                f"{path} records a copy from {data.get('source')!r} to "
                f"{data.get('destination')!r}, not this one; remove it or pass another --state",
                file=str(path),
            )
        return cls(path, source, destination, {k: int(v) for k, v in data["copied"].items()})

    def save(self) -> None:
        scratch = self.path.with_name(self.path.name + ".tmp")
        scratch.write_text(
            json.dumps(
                {
                    "source": self.source,
                    "destination": self.destination,
                    "copied": self.copied_until,
                },
                indent=1,
                sort_keys=True,
            ),
            encoding="utf-8",
        )
        os.replace(scratch, self.path)


def _marks(state: CopyState) -> dict[Key, int]:
    marks = {}
    for text, ts in state.copied_until.items():
        meter_id, _, quantity = text.partition("\t")
        marks[(meter_id, quantity)] = ts
    return marks


@dataclass(frozen=True)
class CopyPlan:
    """What is left to copy: points per series (series with nothing left are absent), in
    the order they are copied, and the window."""

    left: dict[Key, int]
    start_ms: int = MIN_MS
    end_ms: int = MAX_MS

    @property
    def points(self) -> int:
        return sum(self.left.values())


def plan_copy(
    source: TimeSeriesStore, state: CopyState, start_ms: int = MIN_MS, end_ms: int = MAX_MS
) -> CopyPlan:
    """Count the points of every series of `source` in [start, end) that `state` does not
    record as copied."""
    after = _marks(state)
    if isinstance(source, BulkSource):
        left = source.census(start_ms, end_ms, after)
    else:
        left = {}
        month = Every.parse("1mo")
        for key in source.series_keys():
            begin = max(start_ms, after[key] + 1) if key in after else start_ms
            counts = source.aggregate(key[0], key[1], begin, end_ms, month, Agg.COUNT)
            left[key] = int(counts.value.sum())
    return CopyPlan({key: n for key, n in sorted(left.items()) if n > 0}, start_ms, end_ms)


def _read_by_month(
    source: TimeSeriesStore, plan: CopyPlan, after: Mapping[Key, int]
) -> Iterator[ReadingBatch]:
    """Any store: each series of the plan month by month (the months that hold points)
    through `read_raw`."""
    month = Every.parse("1mo")
    for meter_id, quantity in plan.left:
        begin = plan.start_ms
        if (meter_id, quantity) in after:
            begin = max(begin, after[(meter_id, quantity)] + 1)
        counts = source.aggregate(meter_id, quantity, begin, plan.end_ms, month, Agg.COUNT)
        for bucket in counts.ts_ms.tolist():
            following = min(month.floor(bucket + 32 * 86_400_000), plan.end_ms)
            raw = source.read_raw(meter_id, quantity, max(bucket, begin), following)
            if len(raw):
                yield ReadingBatch.for_series(meter_id, quantity, raw.ts_ms, raw.value)


def _batches(chunks: Iterator[ReadingBatch], size: int) -> Iterator[ReadingBatch]:
    """The chunks regrouped into batches of `size` points (the last one smaller)."""
    pending: list[ReadingBatch] = []
    held = 0
    for chunk in chunks:
        while len(chunk):
            take = min(size - held, len(chunk))
            if take == len(chunk):
                pending.append(chunk)
            else:
                pending.append(_slice(chunk, 0, take))
            chunk = _slice(chunk, take, len(chunk)) if take < len(chunk) else ReadingBatch.empty()
            held += take
            if held == size:
                yield pending[0] if len(pending) == 1 else ReadingBatch.concat(pending)
                pending, held = [], 0
    if pending:
        yield pending[0] if len(pending) == 1 else ReadingBatch.concat(pending)


def _slice(batch: ReadingBatch, first: int, last: int) -> ReadingBatch:
    return ReadingBatch(
        meter_id=batch.meter_id[first:last],
        quantity=batch.quantity[first:last],
        ts_ms=batch.ts_ms[first:last],
        value=batch.value[first:last],
    )


def _newest_per_series(batch: ReadingBatch) -> Iterator[tuple[Key, int]]:
    """(series, newest timestamp) of each run of a batch grouped by series in time order."""
    meter, quantity = batch.meter_id, batch.quantity
    change = (meter[1:] != meter[:-1]) | (quantity[1:] != quantity[:-1])
    for last in np.flatnonzero(np.append(change, True)).tolist():
        yield (str(meter[last]), str(quantity[last])), int(batch.ts_ms[last])


def copy_history(
    source: TimeSeriesStore,
    destination: TimeSeriesStore,
    plan: CopyPlan,
    state: CopyState,
    *,
    batch_points: int = 100_000,
    progress: Callable[[int], None] = lambda points: None,
) -> int:
    """Copy what `plan` lists and `state` has not recorded; return the points written.

    `progress(n)` is called with the points of every batch written."""
    after = _marks(state)
    if isinstance(source, BulkSource):
        chunks = source.read_after(plan.left, after, plan.start_ms, plan.end_ms, batch_points)
    else:
        chunks = _read_by_month(source, plan, after)
    written = 0
    for batch in _batches(chunks, batch_points):
        written += destination.write(batch)
        for (meter_id, quantity), newest in _newest_per_series(batch):
            state.copied_until[f"{meter_id}\t{quantity}"] = newest
        state.save()
        progress(len(batch))
    return written

"""Copying history from one store to another (`epcmon store copy`), resumably.

Series by series, month by month: each month of a series is read with `read_raw` and written
to the destination in batches of at most `batch_points`; after every batch the state file
records the newest timestamp copied of that series (written to a temporary file and renamed,
so a crash leaves the old state or the new one, never half of one). A second run with the same
state file starts after what the first one copied; writes are idempotent, so a batch copied
twice (a crash between the write and the state update) is harmless.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError
from core.readings import ReadingBatch
from storage.base import Agg, Every, TimeSeriesStore

MIN_MS = -9_223_372_036_854
MAX_MS = 9_223_372_036_853


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


@dataclass(frozen=True)
class CopyPlan:
    """Per series: the months (start, end, points) that hold points, from the source."""

    months: dict[tuple[str, str], list[tuple[int, int, int]]]

    @property
    def points(self) -> int:
        return sum(n for months in self.months.values() for _, _, n in months)


def plan_copy(source: TimeSeriesStore, start_ms: int = MIN_MS, end_ms: int = MAX_MS) -> CopyPlan:
    """Count the points of every series of `source` per UTC month in [start, end)."""
    month = Every.parse("1mo")
    months: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for meter_id, quantity in source.series_keys():
        counts = source.aggregate(meter_id, quantity, start_ms, end_ms, month, Agg.COUNT)
        spans = []
        for begin, n in zip(counts.ts_ms.tolist(), counts.value.tolist(), strict=True):
            following = month.floor(begin + 32 * 86_400_000)
            spans.append((max(begin, start_ms), min(following, end_ms), int(n)))
        months[(meter_id, quantity)] = spans
    return CopyPlan(months)


def copy_history(
    source: TimeSeriesStore,
    destination: TimeSeriesStore,
    plan: CopyPlan,
    state: CopyState,
    *,
    batch_points: int = 50_000,
    progress: Callable[[int], None] = lambda points: None,
) -> int:
    """Copy what `plan` lists and `state` has not recorded; return the points written.

    `progress(n)` is called with the points of every batch written, and once with the points
    skipped as already copied."""
    written = 0
    for (meter_id, quantity), months in plan.months.items():
        key = f"{meter_id}\t{quantity}"
        done = state.copied_until.get(key)
        for begin, end, points in months:
            if done is not None and end <= done + 1:
                progress(points)  # copied by an earlier run
                continue
            raw = source.read_raw(
                meter_id, quantity, begin if done is None else max(begin, done + 1), end
            )
            if done is not None and begin <= done:
                progress(points - len(raw))
            for first in range(0, len(raw), batch_points):
                ts = raw.ts_ms[first : first + batch_points]
                value = raw.value[first : first + batch_points]
                written += destination.write(ReadingBatch.for_series(meter_id, quantity, ts, value))
                state.copied_until[key] = done = int(ts[-1])
                state.save()
                progress(len(ts))
    return written

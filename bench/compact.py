"""Benchmark of the DuckDB store's file size on a rewrite, compaction and retention.

    .venv/bin/python -m bench.compact          # 100 meters x 30 days of 1-minute power: 4.3 M points
    .venv/bin/python -m bench.compact --quick  # seconds: a smoke test of this script

Measures, in one temporary directory:
1. the file after writing the days in collector-sized batches (an hour of every meter), and
   after a first `compact()`;
2. the file after one of those days is written again, the same readings (issue 17: it grew);
3. the file after `compact()`, and how long that took: it must be the size compacted in 1;
4. a retention pass keeping the last third of the days raw: its time, the hourly means of a
   retired day before and after (identical), and the file after a second compaction.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.readings import ReadingBatch
from storage.base import Agg, Every
from storage.duckdb_store import DuckDBStore
from storage.duckdb_store.compact import file_bytes

START_MS = 1_767_196_800_000  # 2026-01-01T00:00+08:00
MINUTE_MS, HOUR_MS, DAY_MS = 60_000, 3_600_000, 86_400_000
TZ = "Asia/Shanghai"


@dataclass(frozen=True)
class Sizes:
    meters: int
    days: int


DEFAULT = Sizes(meters=100, days=30)
QUICK = Sizes(meters=10, days=3)


def write_day(store: DuckDBStore, meters: np.ndarray, day: int) -> None:
    rng = np.random.default_rng(day)
    for hour in range(24):
        minutes = START_MS + day * DAY_MS + hour * HOUR_MS + np.arange(60) * MINUTE_MS
        ts = np.repeat(minutes, len(meters))
        store.write(
            ReadingBatch(
                meter_id=np.tile(meters, 60),
                quantity=np.full(len(ts), "power", dtype=object),
                ts_ms=ts,
                value=np.round(rng.normal(50.0, 10.0, len(ts)), 3),
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    sizes = QUICK if parser.parse_args(argv).quick else DEFAULT
    meters = np.array([f"m{i:03d}" for i in range(sizes.meters)], dtype=object)
    points = sizes.meters * sizes.days * 1440
    print(f"{sizes.meters} meters x {sizes.days} days of 1-minute power: {points:,} points")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store.duckdb"
        with DuckDBStore(path) as store:
            for day in range(sizes.days):
                write_day(store, meters, day)
        written = file_bytes(path)
        with DuckDBStore(path) as store:
            store.compact()
        first = file_bytes(path)
        with DuckDBStore(path) as store:
            write_day(store, meters, sizes.days // 2)
        rewritten = file_bytes(path)
        with DuckDBStore(path) as store:
            done = store.compact()
        compacted = file_bytes(path)
        assert done is not None
        print(
            f"1. written:                        {written / 1e6:8.1f} MB, compacted {first / 1e6:.1f} MB"
        )
        print(f"2. one day written again:          {rewritten / 1e6:8.1f} MB")
        print(f"3. compacted ({done.seconds:.2f} s):           {compacted / 1e6:8.1f} MB")

        day = START_MS + DAY_MS
        with DuckDBStore(path) as store:
            before = store.aggregate("m000", "power", day, day + DAY_MS, Every(1, "h"), Agg.MEAN)
            keep = sizes.days - sizes.days // 3
            began = time.perf_counter()
            retired = store.retire(START_MS + keep * DAY_MS, TZ)
            took = time.perf_counter() - began
            after = store.aggregate("m000", "power", day, day + DAY_MS, Every(1, "h"), Agg.MEAN)
            same = (
                before.ts_ms.tolist() == after.ts_ms.tolist()
                and before.value.tolist() == after.value.tolist()
            )
            again = store.compact()
        assert again is not None
        print(
            f"4. retention of {retired.points:,} points ({took:.2f} s), hourly means of a retired "
            f"day identical: {same}; compacted again: {file_bytes(path) / 1e6:.1f} MB"
        )
        ok = compacted == first and same
    print(
        "anchor: compacted after the rewrite = compacted before it: " + ("met" if ok else "MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the embedded DuckDB store, each figure beside its anchor or target.

    .venv/bin/python -m bench.store          # 20 meters x a year of 1-minute data: 10.5 M points
    .venv/bin/python -m bench.store --quick  # seconds: a smoke test of this script

Measures, in one run and one temporary directory:
1. bulk appends of Arrow tables straight into a bare DuckDB table (the anchor: what DuckDB
   itself does on this machine);
2. ingest through `DuckDBStore.write`, 100k-reading batches of 20 meters interleaved, time
   moving forward (median points/s over batches);
3. rewriting batches already stored (redelivery: the same readings again);
4. the hourly mean of one meter-year inside that store, and its daily mean in Asia/Shanghai
   (median of the runs after one warm-up).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from core.readings import ReadingBatch
from storage.base import Agg, Every
from storage.duckdb_store import DuckDBStore

START_MS = 1_735_689_600_000  # 2025-01-01T00:00Z
MINUTE_MS = 60_000
QUANTITY = "active_power"


@dataclass(frozen=True)
class Sizes:
    meters: int
    minutes: int  # per meter
    batch: int  # readings per write
    raw_points: int
    rewrites: int
    runs: int


DEFAULT = Sizes(meters=20, minutes=525_600, batch=100_000, raw_points=5_000_000, rewrites=7, runs=7)
QUICK = Sizes(meters=4, minutes=20_000, batch=10_000, raw_points=100_000, rewrites=2, runs=3)


@dataclass(frozen=True)
class Row:
    measure: str
    figure: str
    anchor: str
    verdict: str  # "ok", "MISSED" (a target), "FAILED" (a check), "info", "n/a" (quick sizes)


def meter_names(meters: int) -> np.ndarray:
    return np.array([f"meter-{i:03d}" for i in range(meters)], dtype=object)


def make_batch(index: int, sizes: Sizes, names: np.ndarray) -> ReadingBatch:
    """Batch `index`: the next block of minutes for every meter, meters interleaved."""
    per_meter = sizes.batch // sizes.meters
    first = index * per_meter
    minutes = np.arange(first, min(first + per_meter, sizes.minutes), dtype=np.int64)
    ts = np.repeat(START_MS + minutes * MINUTE_MS, sizes.meters)
    rng = np.random.default_rng(index)
    hour_of_day = (ts // 3_600_000) % 24
    value = 40.0 + 25.0 * np.sin(np.pi * hour_of_day / 24) + rng.normal(0.0, 3.0, len(ts))
    return ReadingBatch(
        meter_id=np.tile(names, len(minutes)),
        quantity=np.full(len(ts), QUANTITY, dtype=object),
        ts_ms=ts,
        value=value,
    )


def batch_count(sizes: Sizes) -> int:
    per_meter = sizes.batch // sizes.meters
    return -(-sizes.minutes // per_meter)


def rate(points: float, seconds: float) -> str:
    return f"{points / seconds / 1e6:.2f} M points/s"


def median_time(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up: first use of a query plan and of the buffer cache
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def bench_raw_append(directory: Path, sizes: Sizes) -> Row:
    """Arrow tables of the same shape appended to a bare table, no store in between."""
    con = duckdb.connect(str(directory / "raw.duckdb"))
    con.execute("CREATE TABLE readings (series_id INTEGER, ts TIMESTAMP, value DOUBLE)")
    rng = np.random.default_rng(0)
    per_meter = sizes.batch // sizes.meters
    series = np.tile(np.arange(sizes.meters, dtype=np.int32), per_meter)
    rates = []
    for index in range(max(1, sizes.raw_points // sizes.batch)):
        minutes = np.arange(index * per_meter, (index + 1) * per_meter, dtype=np.int64)
        ts = np.repeat(START_MS + minutes * MINUTE_MS, sizes.meters)
        table = pa.table(
            {
                "series_id": series,
                "ts": pa.array(ts * 1000, type=pa.timestamp("us")),
                "value": rng.normal(50.0, 10.0, len(ts)),
            }
        )
        began = time.perf_counter()
        con.register("batch", table)
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO readings SELECT * FROM batch")
        con.execute("COMMIT")
        con.unregister("batch")
        rates.append(len(ts) / (time.perf_counter() - began))
    con.close()
    figure = f"{statistics.median(rates) / 1e6:.2f} M points/s"
    print(f"1. raw DuckDB append of Arrow tables: {figure}  (anchor: ~2 M points/s)")
    return Row("raw DuckDB append (Arrow)", figure, "anchor ~2 M/s", "info")


def judge(met: bool, sizes: Sizes) -> str:
    if sizes is QUICK:
        return "n/a"
    return "ok" if met else "MISSED"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.store", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT

    print(
        f"epcmon store benchmark: DuckDB {duckdb.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores{', QUICK sizes (figures not comparable)' if args.quick else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="epcmon-bench-", dir=args.dir) as tmp:
        rows = run(Path(tmp), sizes)

    print()
    width = max(len(r.measure) for r in rows)
    fig_width = max(len(r.figure) for r in rows)
    anchor_width = max(len(r.anchor) for r in rows)
    print(
        f"{'measure':<{width}}  {'figure':>{fig_width}}  {'anchor/target':<{anchor_width}}  verdict"
    )
    for r in rows:
        print(
            f"{r.measure:<{width}}  {r.figure:>{fig_width}}  "
            f"{r.anchor:<{anchor_width}}  {r.verdict}"
        )
    if any(r.verdict == "FAILED" for r in rows):
        return 1
    return 1 if args.strict and any(r.verdict == "MISSED" for r in rows) else 0


def run(directory: Path, sizes: Sizes) -> list[Row]:
    rows = [bench_raw_append(directory, sizes)]
    names = meter_names(sizes.meters)
    batches = batch_count(sizes)
    with DuckDBStore(directory / "store.duckdb") as store:
        rates = []
        written = 0
        began_all = time.perf_counter()
        for index in range(batches):
            batch = make_batch(index, sizes, names)
            began = time.perf_counter()
            written += store.write(batch)
            rates.append(len(batch) / (time.perf_counter() - began))
        elapsed_all = time.perf_counter() - began_all
        ingest = statistics.median(rates)
        verdict = judge(ingest >= 1e6, sizes)
        print(
            f"2. ingest through DuckDBStore.write, {batches} batches of {sizes.batch:,} readings "
            f"-> {written:,} points: median {ingest / 1e6:.2f} M points/s "
            f"(slowest batch {min(rates) / 1e6:.2f}; overall incl. batch generation "
            f"{rate(written, elapsed_all)})  (target >= 1 M points/s) {verdict}"
        )
        rows.append(
            Row("store ingest, median batch", f"{ingest / 1e6:.2f} M points/s", ">= 1 M/s", verdict)
        )

        rewrite_rates = []
        for index in np.linspace(0, batches - 1, sizes.rewrites).round().astype(int).tolist():
            batch = make_batch(index, sizes, names)
            began = time.perf_counter()
            store.write(batch)
            rewrite_rates.append(len(batch) / (time.perf_counter() - began))
        rewrite = statistics.median(rewrite_rates)
        print(
            f"3. rewrite of {sizes.rewrites} stored batches (same readings again): "
            f"median {rewrite / 1e6:.2f} M points/s  (information)"
        )
        rows.append(
            Row("store rewrite, median batch", f"{rewrite / 1e6:.2f} M points/s", "-", "info")
        )

        meter = str(names[min(7, sizes.meters - 1)])
        end_ms = START_MS + sizes.minutes * MINUTE_MS
        counts = store.aggregate(meter, QUANTITY, START_MS, end_ms, Every.parse("1mo"), Agg.COUNT)
        stored = int(counts.value.sum())
        if stored != sizes.minutes:
            print(f"   CHECK FAILED: {meter} holds {stored:,} points, expected {sizes.minutes:,}")
            return [
                *rows,
                Row("idempotency check", f"{stored:,} points", f"{sizes.minutes:,}", "FAILED"),
            ]
        print(f"   check: {meter} holds exactly {stored:,} points after the rewrites")

        hourly = Every.parse("1h")
        hour_s = median_time(
            lambda: store.aggregate(meter, QUANTITY, START_MS, end_ms, hourly, Agg.MEAN), sizes.runs
        )
        n_hours = len(store.aggregate(meter, QUANTITY, START_MS, end_ms, hourly, Agg.MEAN))
        verdict = judge(hour_s <= 0.050, sizes)
        print(
            f"4. hourly mean of one meter ({sizes.minutes:,} points -> {n_hours:,} buckets) in the "
            f"{written:,}-point store: median of {sizes.runs} {hour_s * 1000:.1f} ms  "
            f"(target <= 50 ms) {verdict}"
        )
        rows.append(
            Row("hourly mean, one meter-year", f"{hour_s * 1000:.1f} ms", "<= 50 ms", verdict)
        )

        daily = Every.parse("1d")
        day_s = median_time(
            lambda: store.aggregate(
                meter, QUANTITY, START_MS, end_ms, daily, Agg.MEAN, tz="Asia/Shanghai"
            ),
            sizes.runs,
        )
        print(
            f"   daily mean of the same meter in Asia/Shanghai: median of {sizes.runs} "
            f"{day_s * 1000:.1f} ms  (information)"
        )
        rows.append(Row("daily mean (Asia/Shanghai)", f"{day_s * 1000:.1f} ms", "-", "info"))

        latest_s = median_time(store.latest, sizes.runs)
        print(
            f"   latest() of all {sizes.meters} series: median {latest_s * 1000:.1f} ms"
            "  (information)"
        )
        rows.append(Row("latest(), every series", f"{latest_s * 1000:.1f} ms", "-", "info"))
    return rows


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the embedded DuckDB store, each figure beside its anchor or target.

    .venv/bin/python -m bench.store          # 20 meters x a year of 1-minute data: 10.5 M points
    .venv/bin/python -m bench.store --quick  # seconds: a smoke test of this script

Measures, in one run and one temporary directory:
1. the anchor: the same columns (series id, time, value) appended as Arrow tables built
   beforehand to a bare DuckDB table, batch by batch in turn with 2. (what DuckDB itself
   does on this machine under the same load);
2. ingest through `DuckDBStore.write`, 100k-reading batches of 20 meters interleaved, time
   moving forward (median points/s over batches); target: >= 80 % of 1.;
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
    rewrites: int
    runs: int


DEFAULT = Sizes(meters=20, minutes=525_600, batch=100_000, rewrites=7, runs=7)
QUICK = Sizes(meters=4, minutes=20_000, batch=10_000, rewrites=2, runs=3)


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
    quantity = np.empty(len(ts), dtype=object)
    quantity.fill(QUANTITY)  # one string object, as in collectors' batches (np.full copies it)
    return ReadingBatch(
        meter_id=np.tile(names, len(minutes)),
        quantity=quantity,
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


def raw_table(batch: ReadingBatch, series: np.ndarray) -> pa.Table:
    """The columns the store appends (series id, time, value) as an Arrow table, built
    outside the clock: the raw append measures DuckDB alone."""
    return pa.table(
        {
            "series_id": series,
            "ts": pa.array(batch.ts_ms * 1000, type=pa.timestamp("us")),
            "value": batch.value,
        }
    )


def raw_append(con: duckdb.DuckDBPyConnection, table: pa.Table) -> float:
    """One Arrow table appended to the bare table in one transaction; seconds taken."""
    began = time.perf_counter()
    con.register("batch", table)
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO readings SELECT * FROM batch")
    con.execute("COMMIT")
    con.unregister("batch")
    return time.perf_counter() - began


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
    names = meter_names(sizes.meters)
    batches = batch_count(sizes)
    # The anchor: the same columns appended to a bare DuckDB table, batch by batch in turn
    # with the store (alternating which goes first), so both meet the same machine load and
    # a table of the same size.
    raw = duckdb.connect(str(directory / "raw.duckdb"))
    raw.execute("CREATE TABLE readings (series_id INTEGER, ts TIMESTAMP, value DOUBLE)")
    series = np.tile(np.arange(sizes.meters, dtype=np.int32), sizes.batch // sizes.meters)
    rows: list[Row] = []
    with DuckDBStore(directory / "store.duckdb") as store:
        rates, raw_rates, pair_ratios = [], [], []
        written = 0
        began_all = time.perf_counter()
        for index in range(batches):
            batch = make_batch(index, sizes, names)
            table = raw_table(batch, series[: len(batch)])
            raw_s = raw_append(raw, table) if index % 2 else 0.0
            began = time.perf_counter()
            written += store.write(batch)
            store_s = time.perf_counter() - began
            if not index % 2:
                raw_s = raw_append(raw, table)
            rates.append(len(batch) / store_s)
            raw_rates.append(len(batch) / raw_s)
            pair_ratios.append(raw_s / store_s)
        elapsed_all = time.perf_counter() - began_all
        raw.close()
        anchor = statistics.median(raw_rates)
        ingest = statistics.median(rates)
        ratio = ingest / anchor
        print(
            f"1. raw DuckDB append of the same columns (Arrow tables built beforehand, bare "
            f"table), batch by batch in turn with 2.: median {anchor / 1e6:.2f} M points/s"
        )
        rows.append(
            Row("raw DuckDB append (same run)", f"{anchor / 1e6:.2f} M points/s", "anchor", "info")
        )
        verdict = judge(ratio >= 0.80, sizes)
        print(
            f"2. ingest through DuckDBStore.write, {batches} batches of {sizes.batch:,} readings "
            f"-> {written:,} points: median {ingest / 1e6:.2f} M points/s = {ratio:.0%} of the raw "
            f"append (median of the per-batch ratios {statistics.median(pair_ratios):.0%}; "
            f"slowest batch {min(rates) / 1e6:.2f}; overall incl. batch generation and the raw "
            f"appends {rate(written, elapsed_all)})  (target >= 80 % of raw) {verdict}"
        )
        rows.append(
            Row(
                "store ingest, median batch",
                f"{ingest / 1e6:.2f} M points/s ({ratio:.0%})",
                ">= 80 % of raw",
                verdict,
            )
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

"""Benchmark of the InfluxDB store against InfluxDB 1.6.7, each figure beside its anchor.

    .venv/bin/python -m bench.influx          # 2.4 M points each way, one meter-year read
    .venv/bin/python -m bench.influx --quick  # seconds: a smoke test of this script

Starts its own influxd (Debian package `influxdb`) on a free loopback port with its data in a
temporary directory, and measures in one run:
1. the anchor: raw line-protocol POSTs to `/write` with a plain HTTP session (httpx), bodies
   encoded beforehand, 10,000 lines each;
2. ingest through `InfluxStore.write` (v1 mode): the same readings as `ReadingBatch`es of
   100,000, encoded by our encoder and posted in bodies of 10,000 lines; batches of 1 and 2
   alternate, each into its own database, so both meet the same server state. Target: the
   store at >= 70 % of the raw rate;
3. the hourly consumption of one meter-year of 1-minute counter data (525,600 points ->
   8,760 buckets), DuckDB beside InfluxDB on the same data (median of the runs after one
   warm-up);
4. `epcmon store copy` of a DuckDB history (the site's 116 meters x 4 quantities x 5,820
   hours, 8 months: 2.7 M points in 464 series) into InfluxDB, beside its anchor in the same run: the same
   points as raw line-protocol POSTs (encoded beforehand) into another database, half just
   before the copy and half just after.
   Target: >= 50 % of raw. Then the same copy resumed with nothing left: <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.store import Row, median_time
from core.config import InfluxConfig, SiteConfig, load_site
from core.net import free_port
from core.readings import ReadingBatch
from storage.base import Every
from storage.copy import MAX_MS, MIN_MS, CopyState, copy_history, plan_copy
from storage.duckdb_store import DuckDBStore
from storage.influx import InfluxStore
from storage.influx.lineproto import encode
from storage.influx.schema import meter_tags, tags_of

START_MS = 1_735_689_600_000  # 2025-01-01T00:00Z
MINUTE_MS = 60_000
LINES_PER_POST = 10_000
COPY_BATCH = 100_000  # `epcmon store copy --batch`'s default
SITE = Path(__file__).resolve().parents[1] / "sites/luan-admin-center.toml"


@dataclass(frozen=True)
class Sizes:
    meters: int
    minutes: int  # per meter, for the write measurements
    batch: int  # readings per store write
    year_minutes: int  # the counter series read back
    runs: int
    copy_meters: int  # x 4 quantities, for the copy
    copy_hours: int  # points per series of the copy


DEFAULT = Sizes(
    meters=20,
    minutes=120_000,
    batch=100_000,
    year_minutes=525_600,
    runs=7,
    copy_meters=116,
    copy_hours=5_820,
)
QUICK = Sizes(
    meters=4,
    minutes=5_000,
    batch=10_000,
    year_minutes=20_000,
    runs=2,
    copy_meters=4,
    copy_hours=2_000,
)


def start_influxd(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    if not os.path.exists(binary):
        raise SystemExit("influxd not found: apt-get install influxdb (.ci/run installs it)")
    port, rpc = free_port(), free_port()
    conf = directory / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{directory}/meta"\n  logging-enabled = false\n'
        f'[data]\n  dir = "{directory}/data"\n  wal-dir = "{directory}/wal"\n'
        "  query-log-enabled = false\n"
        "[monitor]\n  store-enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
    )
    proc = subprocess.Popen(
        [binary, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", timeout=0.5).status_code == 204:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)  # starting
    proc.terminate()
    raise SystemExit("influxd did not answer /ping within 20 s")


def make_batch(index: int, sizes: Sizes, names: np.ndarray) -> ReadingBatch:
    """Batch `index`: the next block of minutes for every meter, meters interleaved."""
    per_meter = sizes.batch // sizes.meters
    minutes = np.arange(index * per_meter, min((index + 1) * per_meter, sizes.minutes))
    ts = np.repeat(START_MS + minutes * MINUTE_MS, sizes.meters)
    rng = np.random.default_rng(index)
    value = np.round(40.0 + rng.normal(0.0, 8.0, len(ts)), 3)  # a meter's 3 decimals
    return ReadingBatch(
        meter_id=np.tile(names, len(minutes)),
        quantity=np.full(len(ts), "active_power", dtype=object),
        ts_ms=ts,
        value=value,
    )


def counter_year(sizes: Sizes) -> ReadingBatch:
    rng = np.random.default_rng(1)
    ts = START_MS + np.arange(sizes.year_minutes) * MINUTE_MS
    value = np.round(12_000.0 + np.cumsum(rng.exponential(0.7, len(ts))), 2)
    return ReadingBatch.for_series("E-MAIN", "energy_import", ts, value)


def judge(met: bool, sizes: Sizes) -> str:
    if sizes is QUICK:
        return "n/a"
    return "ok" if met else "MISSED"


def run(directory: Path, url: str, sizes: Sizes) -> list[Row]:
    rows: list[Row] = []
    site = load_site(SITE)  # the reference site's meters, with the tags its file gives them
    names = np.array([m.id for m in site.meters[: sizes.meters]], dtype=object)
    known = meter_tags(site)
    batches = -(-sizes.minutes // (sizes.batch // sizes.meters))
    for database in ("raw", "store", "year"):
        httpx.post(f"{url}/query", params={"q": f"CREATE DATABASE {database}"}).raise_for_status()

    def tags(meter: str) -> dict[str, str]:
        return tags_of(meter, known, site.site.id)

    session = httpx.Client(base_url=url, timeout=60)
    store = InfluxStore(
        InfluxConfig(url=url, mode="v1", database="store", batch_lines=LINES_PER_POST), site=site
    )
    raw_s = store_s = 0.0
    points = 0
    for index in range(batches):
        batch = make_batch(index, sizes, names)
        bodies = list(encode(batch, tags).chunks(LINES_PER_POST))  # outside the clock
        began = time.perf_counter()
        for body in bodies:
            answer = session.post("/write", params={"db": "raw", "precision": "ms"}, content=body)
            if answer.status_code != 204:
                raise SystemExit(f"raw write failed: {answer.status_code} {answer.text}")
        raw_s += time.perf_counter() - began
        began = time.perf_counter()
        points += store.write(batch)
        store_s += time.perf_counter() - began
    session.close()
    raw_rate, store_rate = points / raw_s, points / store_s
    ratio = store_rate / raw_rate
    print(
        f"1. raw line-protocol POSTs (httpx session, {LINES_PER_POST:,} lines each, pre-encoded): "
        f"{points:,} points, {raw_rate / 1e3:.0f} k points/s  (anchor: ~257-310 k points/s)"
    )
    rows.append(Row("raw /write POSTs (anchor)", f"{raw_rate / 1e3:.0f} k points/s", "-", "info"))
    verdict = judge(ratio >= 0.70, sizes)
    print(
        f"2. InfluxStore.write, batches of {sizes.batch:,} readings (encoding included): "
        f"{store_rate / 1e3:.0f} k points/s = {ratio:.0%} of raw  (target >= 70 %) {verdict}"
    )
    rows.append(
        Row(
            "InfluxStore.write",
            f"{store_rate / 1e3:.0f} k points/s ({ratio:.0%})",
            ">= 70 % of raw",
            verdict,
        )
    )
    for meter in (names[0], names[-1]):
        stored = store.read_raw(str(meter), "active_power", 0, 2**53)
        if len(stored) != sizes.minutes:
            print(f"   CHECK FAILED: {meter} holds {len(stored):,} points, not {sizes.minutes:,}")
            rows.append(Row("write check", f"{len(stored):,}", f"{sizes.minutes:,}", "FAILED"))
    store.close()

    year = counter_year(sizes)
    end_ms = int(year.ts_ms[-1]) + MINUTE_MS
    hourly = Every.parse("1h")
    with InfluxStore(InfluxConfig(url=url, mode="v1", database="year")) as influx:
        influx.write(year)
        influx_s = median_time(
            lambda: influx.consumption("E-MAIN", "energy_import", START_MS, end_ms, hourly),
            sizes.runs,
        )
        from_influx = influx.consumption("E-MAIN", "energy_import", START_MS, end_ms, hourly)
    with DuckDBStore(directory / "year.duckdb") as duck:
        duck.write(year)
        duck_s = median_time(
            lambda: duck.consumption("E-MAIN", "energy_import", START_MS, end_ms, hourly),
            sizes.runs,
        )
        from_duck = duck.consumption("E-MAIN", "energy_import", START_MS, end_ms, hourly)
    same = len(from_duck) == len(from_influx) and bool(
        np.allclose(from_duck.value, from_influx.value, rtol=1e-9)
        and (from_duck.ts_ms == from_influx.ts_ms).all()
    )
    print(
        f"3. hourly consumption of one meter-year ({len(year):,} counter readings -> "
        f"{len(from_duck):,} hours), median of {sizes.runs}: DuckDB {duck_s * 1000:.1f} ms, "
        f"InfluxDB {influx_s * 1000:.1f} ms; same answer: {'yes' if same else 'NO'}"
    )
    rows.append(Row("hourly consumption, DuckDB", f"{duck_s * 1000:.1f} ms", "-", "info"))
    rows.append(Row("hourly consumption, InfluxDB", f"{influx_s * 1000:.1f} ms", "-", "info"))
    if not same:
        rows.append(Row("same consumption in both", "no", "yes", "FAILED"))
    return rows


HOUR_MS = 3_600_000
COPY_QUANTITIES = ("active_power", "energy_import", "reactive_power", "voltage")


def copy_source(path: Path, names: np.ndarray, hours: int) -> int:
    """A DuckDB history written as collectors write it: every series in every write (a day
    per write here, so each row group holds all series, as in a live store)."""
    rng = np.random.default_rng(7)
    ts = START_MS + np.arange(hours, dtype=np.int64) * HOUR_MS
    day = 24
    with DuckDBStore(path) as store:
        for first in range(0, hours, day):
            part = ts[first : first + day]
            store.write(
                ReadingBatch.concat(
                    [
                        ReadingBatch.for_series(
                            str(meter), quantity, part, np.round(rng.normal(40, 8, len(part)), 3)
                        )
                        for meter in names
                        for quantity in COPY_QUANTITIES
                    ]
                )
            )
    return len(names) * len(COPY_QUANTITIES) * hours


def post_raw(url: str, database: str, bodies: list[bytes]) -> float:
    """Seconds to POST the bodies to `/write` one after the other (one HTTP session)."""
    with httpx.Client(base_url=url, timeout=60) as session:
        began = time.perf_counter()
        for body in bodies:
            answer = session.post(
                "/write", params={"db": database, "precision": "ms"}, content=body
            )
            if answer.status_code != 204:
                raise SystemExit(f"raw write failed: {answer.status_code} {answer.text}")
        return time.perf_counter() - began


def bench_copy(directory: Path, url: str, sizes: Sizes, site: SiteConfig) -> list[Row]:
    names = np.array([m.id for m in site.meters[: sizes.copy_meters]], dtype=object)
    source_path = directory / "copy-source.duckdb"
    points = copy_source(source_path, names, sizes.copy_hours)
    for database in ("copyraw", "copy"):
        httpx.post(f"{url}/query", params={"q": f"CREATE DATABASE {database}"}).raise_for_status()
    known = meter_tags(site)
    config = InfluxConfig(url=url, mode="v1", database="copy", batch_lines=LINES_PER_POST)
    state_path = directory / "copy-state.json"
    with DuckDBStore(source_path) as source, InfluxStore(config, site=site) as destination:
        # the anchor: the same points, encoded beforehand, posted raw
        everything = CopyState(directory / "unused.json", "-", "-")
        left = plan_copy(source, everything).left
        bodies = [
            body
            for batch in source.read_after(left, {}, MIN_MS, MAX_MS, COPY_BATCH)
            for body in encode(batch, lambda meter: tags_of(meter, known, site.site.id)).chunks(
                LINES_PER_POST
            )
        ]
        # half of the raw POSTs just before the copy, half just after: both meet the server
        # in the states the copy goes through
        halves = (bodies[: len(bodies) // 2], bodies[len(bodies) // 2 :])
        raw_s = post_raw(url, "copyraw", halves[0])
        timings = []
        for _ in ("copy", "no-op resume"):
            began = time.perf_counter()
            state = CopyState.open(state_path, "duckdb:source", "influx:copy")
            plan = plan_copy(source, state)
            written = copy_history(source, destination, plan, state, batch_points=COPY_BATCH)
            timings.append((time.perf_counter() - began, written))
        raw_s += post_raw(url, "copyraw", halves[1])
        del bodies, halves
    (copy_s, copied), (noop_s, again) = timings
    raw_rate, copy_rate = points / raw_s, copied / copy_s
    ratio = copy_rate / raw_rate
    verdict = judge(ratio >= 0.50, sizes)
    print(
        f"4. store copy DuckDB -> InfluxDB, {points:,} points of "
        f"{len(names) * len(COPY_QUANTITIES)} series in batches of {COPY_BATCH:,}: "
        f"{copy_s:.1f} s, {copy_rate / 1e3:.0f} k points/s = {ratio:.0%} of the same points as raw "
        f"POSTs, half just before, half just after ({raw_rate / 1e3:.0f} k points/s)  (target >= 50 %) {verdict}"
    )
    noop_verdict = judge(noop_s <= 2.0, sizes)
    print(
        f"   the same copy resumed with nothing left: {noop_s * 1000:.0f} ms, {again} points "
        f"written  (target <= 2 s) {noop_verdict}"
    )
    checks: list[Row] = []
    if copied != points or again != 0:
        print(f"   CHECK FAILED: copied {copied:,} of {points:,} points, then {again:,} again")
        checks.append(Row("copy check", f"{copied:,} + {again:,}", f"{points:,} + 0", "FAILED"))
    return [
        *checks,
        Row(
            "raw /write POSTs of the copy's points", f"{raw_rate / 1e3:.0f} k points/s", "-", "info"
        ),
        Row(
            "store copy DuckDB -> InfluxDB",
            f"{copy_rate / 1e3:.0f} k points/s ({ratio:.0%})",
            ">= 50 % of raw",
            verdict,
        ),
        Row("store copy, no-op resume", f"{noop_s * 1000:.0f} ms", "<= 2 s", noop_verdict),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.influx", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    version = subprocess.run(
        ["influxd", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"epcmon InfluxDB benchmark: {version or 'influxd'}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores{', QUICK sizes (figures not comparable)' if args.quick else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="epcmon-bench-influx-", dir=args.dir) as tmp:
        proc, url = start_influxd(Path(tmp))
        try:
            rows = run(Path(tmp), url, sizes)
            rows += bench_copy(Path(tmp), url, sizes, load_site(SITE))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    print()
    width = max(len(r.measure) for r in rows)
    fig_width = max(len(r.figure) for r in rows)
    anchor_width = max(len(r.anchor) for r in rows)
    print(
        f"{'measure':<{width}}  {'figure':>{fig_width}}  {'anchor/target':<{anchor_width}}  verdict"
    )
    for r in rows:
        print(
            f"{r.measure:<{width}}  {r.figure:>{fig_width}}  {r.anchor:<{anchor_width}}  {r.verdict}"
        )
    if any(r.verdict == "FAILED" for r in rows):
        return 1
    return 1 if args.strict and any(r.verdict == "MISSED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

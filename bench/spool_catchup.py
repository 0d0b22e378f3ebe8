"""How fast the spool catches up after an outage of InfluxDB 1.6.7, beside the live ingest rate.

    .venv/bin/python -m bench.spool_catchup          # one hour of the reference site, 5 runs
    .venv/bin/python -m bench.spool_catchup --quick  # seconds: a smoke test of this script

Starts its own influxd (Debian package `influxdb`) on a free loopback port with its data in a
temporary directory. The readings are the reference site's (`sites/luan-admin-center.toml`):
every Modbus meter's planned quantities at its poll interval, one batch per gateway per poll
tick, and every MQTT meter's payload fields, one batch per message: the batches the collectors
hand to the store. Each run, on a fresh database:

1. live: the first hour written through `SpoolingStore` -> `InfluxStore` (v1) while the server
   is up, batch by batch as the collectors would: the live ingest rate in points/s;
2. outage: the server stopped (SIGTERM), a `SpoolDrain` running (it keeps trying the store
   every `replay_interval_s`), the next hour written: every batch goes to the spool; then the
   process "restarts": the store and its spool are closed;
3. catch-up: the server started again (same port, same data), a new `SpoolingStore` on the
   same spool file and a `SpoolDrain` started: the time until the spool is empty; then every
   reading of both hours is counted in the database. (In a running service the drain finds
   the store back within `replay_interval_s`, 5 s by default, of its return: add that.)

The first run also replays its outage hour one spooled batch per write, as the spool did
before `SpoolDrain` (`drain_points=1`), for comparison. Figures: medians over the runs.

Target: catch-up at >= 5 times the ingest rate of the ingest benchmark (`bench.ingest_mqtt`,
end to end through a collector; its README figure is the anchor, not re-measured here). The
live rate measured here is the store's own rate for collector-sized batches, an upper bound
of what collectors can hand it; the catch-up is printed against both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import httpx
import numpy as np

from collectors.modbus.poller import MeterPlan
from core.config import InfluxConfig, SiteConfig, load_site
from core.net import free_port
from core.readings import ReadingBatch
from storage.influx import InfluxStore
from storage.spool import Spool, SpoolDrain, SpoolingStore

SITE = Path(__file__).resolve().parents[1] / "sites/luan-admin-center.toml"
START_MS = 1_772_323_200_000  # 2026-03-01T00:00Z
HOUR_S = 3600
TARGET = 5.0
INGEST_ANCHOR = 2 * 4_144
"""Readings/s of the MQTT ingest benchmark (README: 2 collectors on `$share`, 4,144 msg/s of 2
readings each; one collector: 2,367 msg/s)."""


@dataclass(frozen=True)
class Sizes:
    seconds: int  # of each phase (live, outage)
    runs: int
    uncoalesced: bool


DEFAULT = Sizes(seconds=HOUR_S, runs=5, uncoalesced=True)
QUICK = Sizes(seconds=300, runs=1, uncoalesced=True)


class Influxd:
    """influxd 1.x on loopback, data in `directory`; stop() and start() keep port and data."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        if not os.path.exists(binary):
            raise SystemExit("influxd not found: apt-get install influxdb (.ci/run installs it)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.rpc_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        d = self.directory
        conf = d / "influxdb.conf"
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n  logging-enabled = false\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
        )
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"influxd exited with {self.proc.returncode} while starting")
            try:
                if httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204:
                    return
            except httpx.TransportError:
                time.sleep(0.02)  # starting: ask again
        raise SystemExit("influxd did not answer /ping within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.proc = None

    def query(self, statement: str, database: str = "") -> dict[str, object]:
        answer = httpx.post(
            f"{self.url}/query", params={"q": statement, "db": database}, timeout=60
        )
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result

    def count(self, database: str) -> int:
        """Points of every measurement in `database`."""
        answer = self.query('SELECT count("value") FROM /.*/', database)
        results = answer["results"]
        assert isinstance(results, list)
        return sum(int(s["values"][0][1]) for s in results[0].get("series", []))


def site_batches(site: SiteConfig, start_ms: int, seconds: int) -> list[ReadingBatch]:
    """The batches the collectors would hand to the store over [start, start + seconds), in
    time order: one per Modbus gateway per poll tick (the meters due then), one per MQTT
    message (a meter's payload fields)."""
    rng = np.random.default_rng(7)
    timed: list[tuple[int, int, ReadingBatch]] = []
    by_gateway: dict[str, list[tuple[str, int, list[str]]]] = {}
    for meter in site.meters:
        if meter.modbus is not None:
            plan = MeterPlan.for_meter(meter)
            quantities = [f.quantity for read in plan.reads for f in read.fields]
            by_gateway.setdefault(meter.modbus.gateway, []).append(
                (meter.id, plan.interval_s, quantities)
            )
        elif meter.mqtt is not None:
            fields = site.payload_formats[meter.mqtt.format].fields
            quantities = [f.quantity for f in fields]
            for t in range(0, seconds, meter.poll_interval_s):
                ts = start_ms + t * 1000
                batch = ReadingBatch(
                    meter_id=np.full(len(quantities), meter.id, dtype=object),
                    quantity=np.array(quantities, dtype=object),
                    ts_ms=np.full(len(quantities), ts, dtype=np.int64),
                    value=np.round(rng.normal(50, 10, len(quantities)), 3),
                )
                timed.append((ts, len(timed), batch))
    for meters in by_gateway.values():
        tick = 0
        for _, interval, _ in meters:
            tick = gcd(tick, interval)
        for t in range(0, seconds, tick):
            due = [(m, q) for m, interval, q in meters if t % interval == 0]
            if not due:
                continue
            ids = [m for m, quantities in due for _ in quantities]
            names = [q for _, quantities in due for q in quantities]
            ts = start_ms + t * 1000
            batch = ReadingBatch(
                meter_id=np.array(ids, dtype=object),
                quantity=np.array(names, dtype=object),
                ts_ms=np.full(len(ids), ts, dtype=np.int64),
                value=np.round(rng.normal(50, 10, len(ids)), 3),
            )
            timed.append((ts, len(timed), batch))
    timed.sort(key=lambda item: (item[0], item[1]))
    return [batch for _, _, batch in timed]


@dataclass(frozen=True)
class Run:
    live_rate: float  # points/s
    live_points: int
    outage_points: int
    outage_batches: int
    catchup_s: float  # drain started (store back) -> spool empty
    stored: int
    uncoalesced_s: float | None


async def one_run(server: Influxd, work: Path, site: SiteConfig, sizes: Sizes, index: int) -> Run:
    database = f"catchup{index}"
    server.query(f'CREATE DATABASE "{database}"')
    live = site_batches(site, START_MS, sizes.seconds)
    outage = site_batches(site, START_MS + sizes.seconds * 1000, sizes.seconds)
    live_points = sum(len(b) for b in live)
    outage_points = sum(len(b) for b in outage)
    config = InfluxConfig(url=server.url, mode="v1", database=database)
    spool_path = work / f"spool-{index}.sqlite3"

    store = SpoolingStore(InfluxStore(config, site=site), Spool(spool_path))
    try:
        began = time.perf_counter()
        for batch in live:
            store.write(batch)
        live_s = time.perf_counter() - began

        await asyncio.to_thread(server.stop)
        stop = asyncio.Event()
        drain = asyncio.create_task(SpoolDrain(store).run(stop))
        for batch in outage:
            await asyncio.to_thread(store.write, batch)
        stop.set()
        await drain
        if store.spool.depth != len(outage):
            raise SystemExit(f"spooled {store.spool.depth} of {len(outage)} outage batches")
    finally:
        store.close()

    await asyncio.to_thread(server.start)
    store = SpoolingStore(InfluxStore(config, site=site), Spool(spool_path))
    try:
        stop = asyncio.Event()
        began = time.perf_counter()
        drain = asyncio.create_task(SpoolDrain(store).run(stop))
        while store.spool.depth:
            await asyncio.sleep(0.002)  # the drain replays in its own thread
        catchup_s = time.perf_counter() - began
        stop.set()
        await drain
        stored = server.count(database)

        uncoalesced_s = None
        if sizes.uncoalesced and index == 0:
            # the same outage hour replayed one spooled batch per write, as before
            for batch in outage:
                store.spool.push(batch)
            store.drain_points = 1
            began = time.perf_counter()
            store.replay()
            uncoalesced_s = time.perf_counter() - began
    finally:
        store.close()
    return Run(
        live_rate=live_points / live_s,
        live_points=live_points,
        outage_points=outage_points,
        outage_batches=len(outage),
        catchup_s=catchup_s,
        stored=stored,
        uncoalesced_s=uncoalesced_s,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.spool_catchup", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="5 minutes, one run: a smoke test")
    parser.add_argument("--runs", type=int, help="runs (default 5; quick: 1)")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    if args.runs:
        sizes = Sizes(sizes.seconds, args.runs, sizes.uncoalesced)
    site = load_site(SITE)
    version = subprocess.run(
        ["influxd", "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    minutes = sizes.seconds // 60
    print(
        f"epcmon spool catch-up benchmark: {version or 'influxd'}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores; "
        f"{site.site.id}: {len(site.meters)} meters, {minutes} min per phase"
        f"{', QUICK sizes (figures not comparable)' if args.quick else ''}"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="epcmon-bench-spool-", dir=args.dir) as tmp:
        server = Influxd(Path(tmp) / "influxd")
        server.directory.mkdir()
        server.start()
        try:
            for index in range(sizes.runs):
                run = asyncio.run(one_run(server, Path(tmp), site, sizes, index))
                runs.append(run)
                ratio = run.outage_points / run.catchup_s / run.live_rate
                print(
                    f"run {index + 1}: live ingest {run.live_rate:,.0f} points/s; "
                    f"{run.outage_batches:,} batches ({run.outage_points:,} readings) spooled, "
                    f"drained in {run.catchup_s:.2f} s "
                    f"({run.outage_points / run.catchup_s:,.0f} points/s, {ratio:.1f}x live)"
                )
                if run.stored != run.live_points + run.outage_points:
                    print(
                        f"CHECK FAILED: the database holds {run.stored:,} points, not "
                        f"{run.live_points + run.outage_points:,}",
                        file=sys.stderr,
                    )
                    return 1
                if run.uncoalesced_s is not None:
                    print(
                        f"       one write per spooled batch (as before SpoolDrain): "
                        f"{run.uncoalesced_s:.2f} s "
                        f"({run.outage_batches / run.uncoalesced_s:,.0f} batches/s, "
                        f"{run.outage_points / run.uncoalesced_s:,.0f} points/s)"
                    )
        finally:
            server.stop()

    catchup = statistics.median(r.catchup_s for r in runs)
    live = statistics.median(r.live_rate for r in runs)
    points = runs[0].outage_points
    drain_rate = points / catchup
    ratio = drain_rate / live
    span = "1-hour" if sizes.seconds == HOUR_S else f"{minutes}-minute"
    verdict = "n/a" if args.quick else ("ok" if drain_rate >= TARGET * INGEST_ANCHOR else "MISSED")
    print()
    print(
        f"a {span} outage catches up in {catchup:.2f} s ({ratio:.1f}x the ingest rate: "
        f"{drain_rate:,.0f} against {live:,.0f} points/s of live collector-sized writes in this "
        f"run; {sizes.seconds / catchup:,.0f}x real time), median of {len(runs)}"
    )
    print(
        f"against the MQTT ingest benchmark (anchor {INGEST_ANCHOR:,} readings/s, two collectors): "
        f"{drain_rate / INGEST_ANCHOR:.0f}x; target >= {TARGET:g}x: {verdict}"
    )
    print(
        "(a running service's drain finds the store back within replay_interval_s, 5 s by "
        "default: add up to that)"
    )
    return 1 if args.strict and verdict == "MISSED" else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of the simulators, each figure beside its target.

    .venv/bin/python -m bench.simulate          # a year at 1 minute, Modbus for 5 s per client
    .venv/bin/python -m bench.simulate --quick  # seconds: a smoke test of this script

Measures:
1. history generation, one year of the whole reference site at 1-minute resolution, core
   quantities (what `epcmon simulate history --interval 1m` produces), in memory;
   then the same year written into a DuckDB store (information: the store's own speed);
2. the savings engineer's call: two years of the whole site, hourly;
3. Modbus throughput of one simulated gateway (19 CHINT DTSU666 units, each request the
   meter's 50-register measurement block) served from a child process: a pymodbus client
   on loopback, requests back to back on one and on four connections; and mbpoll against
   the same server, one process per unit, each at its fastest rate (a poll every 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

SITE_FILE = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"
YEAR_START = datetime(2024, 12, 31, 16, tzinfo=UTC)  # 2025-01-01 00:00 in Lu'an
SUMMER_MORNING_MS = 1_721_008_800_000  # 2024-07-15 10:00 in Lu'an
GATEWAY = "gw-main-lv2"
PROFILE = "chint-dtsu666"


@dataclass(frozen=True)
class Sizes:
    days_1m: int
    days_1h: int
    modbus_s: float
    store: bool


DEFAULT = Sizes(days_1m=365, days_1h=730, modbus_s=5.0, store=True)
QUICK = Sizes(days_1m=1, days_1h=14, modbus_s=1.0, store=False)


@dataclass(frozen=True)
class Row:
    measure: str
    figure: str
    target: str
    verdict: str


def judge(met: bool, sizes: Sizes) -> str:
    if sizes is QUICK:
        return "n/a"
    return "ok" if met else "MISSED"


def bench_history(sizes: Sizes, workdir: Path) -> list[Row]:
    from epcmon.sites import load
    from simulators.history import generate_history, iter_history
    from simulators.model import SiteModel

    site = load(SITE_FILE)
    rows = []
    end = YEAR_START + timedelta(days=sizes.days_1m)
    model = SiteModel(site, 0)
    began = time.perf_counter()
    readings = 0
    for part in iter_history(site, YEAR_START, end, interval="1m", model=model):
        readings += len(part.readings)
    took = time.perf_counter() - began
    what = f"{sizes.days_1m} day(s) x {len(site.meters)} meters at 1 min"
    print(
        f"1. history, {what}: {readings:,} readings in {took:.1f} s "
        f"({readings / took / 1e6:.2f} M readings/s)  (target <= 60 s for a year) "
        f"{judge(took <= 60, sizes)}"
    )
    rows.append(Row(f"history 1 min, {what}", f"{took:.1f} s", "<= 60 s", judge(took <= 60, sizes)))
    if sizes.store:
        from storage.duckdb_store import DuckDBStore

        began = time.perf_counter()
        with DuckDBStore(workdir / "history.duckdb") as store:
            for part in iter_history(site, YEAR_START, end, interval="1m", model=model):
                store.write(part.readings)
        took_store = time.perf_counter() - began
        size_mb = (workdir / "history.duckdb").stat().st_size / 1e6
        print(
            f"   the same into a DuckDB store: {took_store:.1f} s "
            f"({readings / took_store / 1e6:.2f} M readings/s, {size_mb:,.0f} MB)  (information)"
        )
        rows.append(Row("history 1 min into DuckDB, same", f"{took_store:.1f} s", "-", "info"))

    began = time.perf_counter()
    hourly = generate_history(
        site, YEAR_START, YEAR_START + timedelta(days=sizes.days_1h), interval="1h", seed=1
    )
    took = time.perf_counter() - began
    what = f"{sizes.days_1h} days x {len(site.meters)} meters hourly"
    print(
        f"2. generate_history, {what} (new model, counters from the epoch): {took:.2f} s, "
        f"{len(hourly.readings):,} readings  (target: a couple of seconds for 730 days) "
        f"{judge(took <= 3.0, sizes)}"
    )
    rows.append(
        Row(f"generate_history, {what}", f"{took:.2f} s", "<= 3 s", judge(took <= 3.0, sizes))
    )
    return rows


# ------------------------------------------------------------------ Modbus


def _serve(conn: Connection) -> None:
    """Child process: one gateway of DTSU666 units, its port sent back, until told."""
    import logging

    # a client that disconnects with an answer in flight is routine here, not an error
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from epcmon.sites import load
    from simulators.clock import AcceleratedClock
    from simulators.serve import start_gateways
    from simulators.site import SimulatedSite

    site = load(SITE_FILE)
    # real-time pace from a summer workday morning near the counter epoch (a short start-up)
    sim = SimulatedSite(site, clock=AcceleratedClock(1.0, SUMMER_MORNING_MS))
    meters = [
        m
        for m in site.meters
        if m.modbus and m.modbus.gateway == GATEWAY and m.modbus.profile == PROFILE
    ]
    sim.values(meters[0].id)

    async def main() -> None:
        gateways = await start_gateways(sim, meters=meters)
        gateway = gateways[GATEWAY]
        conn.send((gateway.port, sorted(gateway.units)))
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg == "count":
                conn.send(gateway.requests)
            else:
                break
        await gateway.stop()

    asyncio.run(main())


def bench_modbus(sizes: Sizes, workdir: Path) -> list[Row]:
    from pymodbus.client import AsyncModbusTcpClient

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    rows = []
    try:
        port, units = parent.recv()

        async def pymodbus_run(connections: int) -> float:
            clients = [
                AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
                for _ in range(connections)
            ]
            for c in clients:
                await c.connect()
            began = time.perf_counter()

            async def loop(client: AsyncModbusTcpClient, k: int) -> int:
                done = 0
                while time.perf_counter() - began < sizes.modbus_s:
                    unit = units[(done + k) % len(units)]
                    rr = await client.read_holding_registers(0x2000, count=50, device_id=unit)
                    assert not rr.isError()
                    done += 1
                return done

            try:
                done = sum(await asyncio.gather(*(loop(c, k) for k, c in enumerate(clients))))
            finally:
                for c in clients:
                    c.close()
            return done / (time.perf_counter() - began)

        for connections in (1, 4):
            rate = asyncio.run(pymodbus_run(connections))
            print(
                f"3. Modbus, pymodbus client, {connections} connection(s), 50-register reads "
                f"round-robin over {len(units)} units: {rate:,.0f} requests/s  (target >= 1,000) "
                f"{judge(rate >= 1000, sizes)}"
            )
            rows.append(
                Row(
                    f"Modbus gateway, pymodbus client x{connections}",
                    f"{rate:,.0f} req/s",
                    ">= 1,000",
                    judge(rate >= 1000, sizes),
                )
            )
        binary = shutil.which("mbpoll")
        if binary is None:
            print("   mbpoll: not installed (Debian package mbpoll)")
            rows.append(Row("Modbus gateway, mbpoll", "not installed", "-", "n/a"))
            return rows
        # mbpoll polls one unit per cycle, at most every 10 ms: one process per unit

        def command(unit: int) -> list[str]:
            return [
                binary, "-m", "tcp", "-p", str(port), "-a", str(unit), "-t", "4", "-0",
                "-r", str(0x2000), "-c", "50", "-l", "10", "-o", "2", "127.0.0.1",
            ]  # fmt: skip

        # their output goes to files: a full pipe would stall them
        logs = [workdir / f"mbpoll-{u}.log" for u in units]
        handles = [log.open("w") for log in logs]
        procs = [
            subprocess.Popen(command(u), stdout=h, stderr=subprocess.STDOUT)
            for u, h in zip(units, handles, strict=True)
        ]
        try:
            # counted after a warm-up second (17 processes starting on 2 cores)
            warmup = min(1.0, sizes.modbus_s / 3)
            time.sleep(warmup)
            parent.send("count")
            before = parent.recv()
            counted_from = time.perf_counter()
            time.sleep(sizes.modbus_s)
            parent.send("count")
            served = parent.recv() - before
            took = time.perf_counter() - counted_from
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=10)
            for h in handles:
                h.close()
        text = "".join(log.read_text(errors="replace") for log in logs)
        failed = len(re.findall(r"failed", text))
        rate = served / took
        ok = rate >= 1000 and failed == 0
        print(
            f"   mbpoll against the same server, {len(units)} processes (one per unit, 10 ms "
            f"between polls): {rate:,.0f} requests/s, {failed} failed  (target >= 1,000) "
            f"{judge(ok, sizes)}"
        )
        rows.append(
            Row(
                f"Modbus gateway, mbpoll x{len(units)}",
                f"{rate:,.0f} req/s",
                ">= 1,000",
                judge(ok, sizes),
            )
        )
    finally:
        parent.send("stop")
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="python -m bench.simulate", description=doc.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    print(
        f"epcmon simulator benchmark: Python {platform.python_version()}, {os.cpu_count()} cores"
        f"{', QUICK sizes (figures not comparable)' if args.quick else ''}"
    )
    with tempfile.TemporaryDirectory(prefix="epcmon-bench-", dir=args.dir) as tmp:
        rows = bench_history(sizes, Path(tmp))
        rows += bench_modbus(sizes, Path(tmp))
    print()
    width = max(len(r.measure) for r in rows)
    fig = max(len(r.figure) for r in rows)
    tgt = max(len(r.target) for r in rows)
    print(f"{'measure':<{width}}  {'figure':>{fig}}  {'target':<{tgt}}  verdict")
    for r in rows:
        print(f"{r.measure:<{width}}  {r.figure:>{fig}}  {r.target:<{tgt}}  {r.verdict}")
    return 1 if args.strict and any(r.verdict == "MISSED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

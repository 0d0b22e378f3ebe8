"""The city's portfolio benchmark (issue 18): a simulated city of 200 sites (~25,000 meters),
each figure beside its anchor measured in the same run.

1. ingest of one polling interval (one QoS 1 message per MQTT meter of the city, real topics
   and payloads) by `epcmon run --site DIR --role collector` processes into VictoriaMetrics,
   beside bare paho subscribers draining the same messages (bench/portfolio_ingest.py), and
   what a collector process costs (startup, memory, threads, file descriptors, idle CPU);
2. recompute of every site's monthly statements (`processing.schedule.Recompute`, as the
   worker runs it) on hourly boundary history, a 20-site city beside the 200-site one
   (bench/portfolio_recompute.py);
3. portfolio API p99 under 50 connections (wrk) beside `/healthz` (bench/portfolio_api.py);
4. the capacity statement those figures give for this machine.

    python -m bench.portfolio [--sites N] [--small N] [--skip ingest,recompute,api] [--quick]

`--quick`: 12 sites (and 8 for the small city), a few months of history: a smoke test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.portfolio_ingest import (
    ROOT,
    bare_case,
    collector_case,
    point_city,
    start_victoria,
)
from epcmon.sites import load_portfolio
from simulators.city import generate_city

INTERVAL_S = 60


def write_city(out: Path, sites: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    reference = (ROOT / "sites" / "luan-admin-center.toml").read_text()
    city = generate_city(sites=sites, seed=0, reference_text=reference)
    for name, text in city.files().items():
        (out / name).write_text(text)
    print(f"city {out.name}: {city.totals.line()}", flush=True)
    return out


def ingest(work: Path, sites: int) -> dict[str, Any]:
    city = write_city(work / "city-ingest", sites)
    vm, vm_url = start_victoria(work)
    try:
        point_city(city, 1883, vm_url)  # the port is replaced per case
        portfolio = load_portfolio(city)
        ts_ms = (int(time.time()) // INTERVAL_S) * INTERVAL_S * 1000
        out: dict[str, Any] = {}
        for n in (1, 2):
            r = bare_case(portfolio, work, n, ts_ms)
            out[f"bare-{n}"] = r
            print(
                f"  bare-{n}: {r['rate']:>9,.0f} messages/s, {r['received']:,} of {r['sent']:,} "
                f"in {r['drain_s']:.2f} s",
                flush=True,
            )
        for name, n, split in (("shard-1", 1, False), ("shard-2", 2, False), ("split-2", 2, True)):
            r = collector_case(city, portfolio, work, n, vm_url, ts_ms, split=split)
            out[name] = r
            lost = r["readings"] - r["stored"]
            print(
                f"  {name}: {r['rate']:>9,.0f} messages/s, {r['stored']:,} of {r['readings']:,} "
                f"readings stored (lost {lost:,}) in {r['drain_s']:.2f} s ({r['to_stored_s']:.1f} s "
                f"from spawn); {r['connected']} of {r['clients']} site clients connected; "
                f"startup {r['startup_s']:.1f} s, RSS {_mb(r['rss_mb'])}, peak {_mb(r['peak_mb'])}, "
                f"threads {_n(r['threads'])}, fds {_n(r['fds'])}, idle {r['idle_cores']:.3f} cores",
                flush=True,
            )
        return out
    finally:
        vm.terminate()
        vm.wait(20)


def _mb(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values) + " MB"


def _n(values: list[float] | list[int]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def report_ingest(r: dict[str, Any]) -> None:
    bare = max(r["bare-1"]["rate"], 1e-9)
    print()
    print(f"{'ingest of one interval':24s} {'messages/s':>11s} {'seconds':>8s} {'of bare-1':>9s}")
    for name in ("bare-1", "bare-2", "shard-1", "shard-2", "split-2"):
        c = r[name]
        print(f"{name:24s} {c['rate']:>11,.0f} {c['drain_s']:>8.2f} {c['rate'] / bare:>8.0%}")
    best = r["split-2"]
    if best["drain_s"] > 0:
        print(
            f"headroom: one interval of {best['messages']:,} messages is stored in "
            f"{best['drain_s']:.1f} s by 2 collector processes, "
            f"{INTERVAL_S / best['drain_s']:.0f}x inside a {INTERVAL_S} s polling interval"
        )
    shard = r["shard-1"]
    if shard["connected"] < shard["clients"]:
        print(
            f"FINDING: with `--shard i/n` every collector process opens one MQTT client per site "
            f"({shard['clients']} for 1 process); only {shard['connected']} connected "
            f"({_n(shard['fds'])} file descriptors: paho's select() cannot watch a socket "
            "numbered >= 1024): the sites past that never collect, and nothing says so"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--skip", default="", help="comma-separated: ingest, recompute, api")
    parser.add_argument("--quick", action="store_true", help="12 sites: a smoke test")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args(argv)
    sites, small = (12, 8) if args.quick else (args.sites, args.small)
    skip = set(filter(None, args.skip.split(",")))
    print(f"epcmon portfolio benchmark: {os.cpu_count()} cores, {sites}-site city", flush=True)
    work = Path(tempfile.mkdtemp(prefix="epcmon-portfolio-", dir=args.dir))
    ok = True
    try:
        if "ingest" not in skip:
            print("\n1. ingest of one polling interval", flush=True)
            r = ingest(work, sites)
            report_ingest(r)
            ok &= r["split-2"]["stored"] == r["split-2"]["readings"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

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

`--quick`: 8 sites (4 for the small city), 15 months of history: a smoke test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.portfolio_api import measure as api_measure
from bench.portfolio_ingest import (
    ROOT,
    bare_case,
    collector_case,
    point_city,
    refused,
    start_victoria,
)
from bench.portfolio_recompute import history, recompute
from epcmon.sites import load_portfolio
from simulators.city import generate_city

INTERVAL_S = 60
HISTORY = ("2023-09-01", "2026-12-01")
"""Every contract's baseline year (the earliest retrofit is 2024-09) to the end of 2026-11."""
TODAY = date(2026, 12, 6)
"""The recompute's `today`: every month to 2026-11 is due (the history ends there)."""


def write_city(out: Path, sites: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    reference = (ROOT / "sites" / "luan-admin-center.toml").read_text()
    city = generate_city(sites=sites, seed=0, reference_text=reference)
    for name, text in city.files().items():
        (out / name).write_text(text)
    print(f"city {out.name}: {city.totals.line()}", flush=True)
    return out


def ingest(work: Path, sites: int, quick: bool = False) -> dict[str, Any]:
    city = write_city(work / "city-ingest", sites)
    vm, vm_url = start_victoria(work)
    try:
        point_city(city, 1883, vm_url)  # the port is replaced per case
        portfolio = load_portfolio(city)
        ts_ms = (int(time.time()) // INTERVAL_S) * INTERVAL_S * 1000
        out: dict[str, Any] = {}
        for n in (1,) if quick else (1, 2):
            r = bare_case(portfolio, work, n, ts_ms)
            out[f"bare-{n}"] = r
            print(
                f"  bare-{n}: {r['rate']:>9,.0f} messages/s, {r['received']:,} of {r['sent']:,} "
                f"in {r['drain_s']:.2f} s",
                flush=True,
            )
        if not quick:  # one process for every site's MQTT client: refused, in one line
            out["refused-1"] = refused(city, work)
            print(f"  shard-1 over {sites} sites: {out['refused-1']}", flush=True)
        for n in (1,) if quick else (2, 3):
            name = f"shard-{n}"
            r = collector_case(city, portfolio, work, n, vm_url, ts_ms)
            out[name] = r
            lost = r["readings"] - r["stored"]
            print(
                f"  {name}: {r['rate']:>9,.0f} messages/s, {r['stored']:,} of {r['readings']:,} "
                f"readings stored (lost {lost:,}) in {r['drain_s']:.2f} s from the first client "
                f"connected ({r['rows_s']:.2f} s first to last row, {r['to_stored_s']:.1f} s from "
                f"spawn); {r['connected']} of {r['clients']} site clients connected; "
                f"startup {r['startup_s']:.1f} s, RSS {_mb(r['rss_mb'])}, peak {_mb(r['peak_mb'])}, "
                f"threads {_n(r['threads'])}, fds {_n(r['fds'])}, idle {r['idle_cores']:.3f} cores",
                flush=True,
            )
        return out
    finally:
        vm.terminate()
        vm.wait(20)


def first_boundary_meter(city: Path) -> tuple[str, str]:
    """The reference site and its contract's first boundary meter (in the history)."""
    site = load_portfolio(city).sites_by_id["luan-admin-center"]
    return site.site.id, site.contracts[0].meters[0]


def _mb(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values) + " MB"


def _n(values: list[float] | list[int]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def report_ingest(r: dict[str, Any]) -> None:
    bare = max(r["bare-1"]["rate"], 1e-9)
    print()
    print(f"{'ingest of one interval':24s} {'messages/s':>11s} {'seconds':>8s} {'of bare-1':>9s}")
    for name, c in r.items():
        if isinstance(c, dict):
            print(f"{name:24s} {c['rate']:>11,.0f} {c['drain_s']:>8.2f} {c['rate'] / bare:>8.0%}")
    best = collectors_of(r)
    if best["drain_s"] > 0:
        print(
            f"headroom: one interval of {best['messages']:,} messages is stored in "
            f"{best['drain_s']:.1f} s by {best['processes']} collector processes, "
            f"{INTERVAL_S / best['drain_s']:.0f}x inside a {INTERVAL_S} s polling interval"
        )
    for c in (v for k, v in r.items() if k.startswith("shard-")):
        if c["connected"] < c["clients"]:
            print(f"LOSS: only {c['connected']} of {c['clients']} site clients connected")


def collectors_of(r: dict[str, Any]) -> dict[str, Any]:
    """The 2-process case (the 1-process one in a quick run), with its process count."""
    name = "shard-2" if "shard-2" in r else "shard-1"
    return {**r[name], "processes": int(name[-1])}


def statements(work: Path, sites: int, span: tuple[str, str]) -> tuple[Path, Path, dict[str, Any]]:
    """Boundary history, then every site's recompute; (city, home, figures)."""
    home = work / f"home-{sites}"
    home.mkdir()
    city = write_city(work / f"city-{sites}", sites)
    seconds = history(city, home, *span)
    r = recompute(city, home, TODAY, profile=True)
    r["history_s"] = seconds
    meters = sum(len(s.meters) for s in load_portfolio(city).sites)
    r["meters"] = meters
    r["n_sites"] = sites
    written = r["actions"].get("new", 0)
    print(
        f"  {sites} sites, {meters:,} meters, {r['contracts']} contracts: history {seconds:.0f} s; "
        f"recompute {r['seconds']:.1f} s ({r['seconds'] / max(r['contracts'], 1):.2f} s per "
        f"contract), {written:,} final statements, actions {dict(r['actions'])}",
        flush=True,
    )
    return city, home, r


def report_recompute(small: dict[str, Any], big: dict[str, Any]) -> None:
    print()
    print(
        f"{'recompute of every statement':30s} {'sites':>6s} {'meters':>7s} {'contracts':>9s} "
        f"{'seconds':>8s} {'s/contract':>10s}"
    )
    for r in (small, big):
        per = r["seconds"] / max(r["contracts"], 1)
        print(
            f"{'':30s} {r['n_sites']:>6d} {r['meters']:>7,d} {r['contracts']:>9d} "
            f"{r['seconds']:>8.1f} {per:>10.2f}"
        )
    growth = big["seconds"] / max(small["seconds"], 1e-9)
    meters = big["meters"] / max(small["meters"], 1)
    contracts = big["contracts"] / max(small["contracts"], 1)
    print(
        f"growth {small['meters']:,} -> {big['meters']:,} meters ({meters:.1f}x meters, "
        f"{contracts:.1f}x contracts): {growth:.1f}x time, "
        f"{'linear or better in meters' if growth <= meters * 1.1 else 'WORSE than linear in meters'}"
        f", {growth / contracts:.2f}x per contract"
    )
    print("where the recompute's time goes (py-spy, innermost epcmon frame):")
    for where, share in big["profile"]:
        print(f"    {share:6.1%}  {where}")


def report_api(r: dict[str, Any], sites: int) -> None:
    print()
    print(
        f"portfolio API, {sites} sites, 50 connections (wrk); the first /api/v1/portfolio "
        f"(cold) took {r['cold_portfolio_s']:.2f} s, one request alone when warm "
        f"{r['warm_portfolio_s']:.2f} s; web process RSS {r['rss_mb']:.0f} MB"
    )
    print(f"{'route':56s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, w in r["routes"].items():
        bad = f"  NON-2XX {w['non2xx']:.0f}" if w["non2xx"] else ""
        if w["rps"] == 0:
            print(f"{name:56s} {'none of the requests completed within the run':>26s}")
            continue
        print(f"{name:56s} {w['rps']:>8,.0f} {w['p50']:>8.1f} {w['p99']:>8.1f}{bad}")
    if "profile" in r:
        print("where /api/v1/portfolio's time goes (py-spy, all threads, innermost epcmon frame):")
        for where, share in r["profile"]:
            print(f"    {share:6.1%}  {where}")


def capacity(
    ingest_r: dict[str, Any] | None,
    small: dict[str, Any] | None,
    big: dict[str, Any] | None,
    api_r: dict[str, Any] | None,
) -> None:
    print()
    print("capacity of this machine (2 cores; provisional when it was busy):")
    if ingest_r is not None:
        c = collectors_of(ingest_r)
        per_s = c["rate"]
        if per_s:
            meters = per_s * INTERVAL_S * 0.5  # half the interval: room for bursts and the rest
            print(
                f"  ingest: {per_s:,.0f} messages/s stored by {c['processes']} collector processes: "
                f"{c['messages']:,} meters take {c['drain_s']:.1f} s of a {INTERVAL_S} s interval; "
                f"at half the interval busy, ~{meters:,.0f} meters at {INTERVAL_S} s polling"
            )
        per_site = sum(c["fds"]) / max(1, c["clients"])
        print(
            f"  ingest per process: ~{per_site:.0f} descriptors per site (an MQTT client's 3 "
            f"sockets, a devices SQLite's 3 files): ~{1024 / per_site:.0f} sites per collector "
            "process before paho's select() limit (1024); `--shard i/n` splits the sites, and "
            "a process that would pass the limit refuses to start and says how many it needs"
        )
    if big is not None and small is not None:
        per = big["seconds"] / max(big["contracts"], 1)
        hour = 3600 * 0.5 / per
        print(
            f"  recompute: {per:.2f} s per contract on the first pass; the hourly pass at half "
            f"the hour busy carries ~{hour:,.0f} contracts on one worker (one process: "
            "a second machine's worker would need the contracts split, which epcmon does not do)"
        )
    if api_r is not None:
        p = api_r["routes"]["/api/v1/portfolio (warm)"]
        said = (
            f"{p['rps']:,.0f} req/s, p99 {p['p99']:.0f} ms"
            if p["rps"]
            else "no request completed within the run"
        )
        anchor = api_r["routes"]["anchor: /healthz"]
        print(
            f"  API: /api/v1/portfolio {api_r['warm_portfolio_s'] * 1000:.0f} ms for one request "
            f"alone (warm; {api_r['cold_portfolio_s']:.0f} s for the first, asked before the "
            f"service had warmed 200 sites' savings), at 50 connections {said} beside the "
            f"anchor's {anchor['rps']:,.0f} req/s, p99 {anchor['p99']:.0f} ms: one web "
            "process's event loop is the limit; more web processes on the port (reuse_port) "
            "are the role to add first, on a second machine once these two cores are taken"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--skip", default="", help="comma-separated: ingest, recompute, api")
    parser.add_argument("--quick", action="store_true", help="8 sites: a smoke test")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args(argv)
    sites, small = (8, 4) if args.quick else (args.sites, args.small)
    skip = set(filter(None, args.skip.split(",")))
    print(f"epcmon portfolio benchmark: {os.cpu_count()} cores, {sites}-site city", flush=True)
    work = Path(tempfile.mkdtemp(prefix="epcmon-portfolio-", dir=args.dir))
    ok = True
    r: dict[str, Any] = {}
    try:
        if "ingest" not in skip:
            print("\n1. ingest of one polling interval", flush=True)
            r = ingest(work, sites, args.quick)
            report_ingest(r)
            best = collectors_of(r)
            ok &= best["stored"] == best["readings"]
        small_r = big_r = api_r = None
        span = ("2023-09-01", "2024-12-01") if args.quick else HISTORY
        if "recompute" not in skip or "api" not in skip:
            print(
                "\n2. recompute of every site's monthly statements (hourly boundary history)",
                flush=True,
            )
            _c, _h, small_r = statements(work, small, span)
            city, home, big_r = statements(work, sites, span)
            report_recompute(small_r, big_r)
            if "api" not in skip:
                print("\n3. portfolio API under 50 connections", flush=True)
                meter = first_boundary_meter(city)
                api_r = api_measure(city, home, *meter, seconds=2 if args.quick else 10)
                report_api(api_r, sites)
        capacity(r if "ingest" not in skip else None, small_r, big_r, api_r)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""API latency and throughput under load generated from a second process (wrk), beside a
bare FastAPI `async def` route measured in the same run (the anchor).

    python -m bench.api [--duration S] [--connections N] [--runs R] [--ingest] [--profile] [--quick]

A DuckDB store is filled with the simulators' history of the whole reference site, hourly,
from 2024-07-01 to 2026-01-01 (the contract's baseline year and six reporting months); the
contract's baseline is fitted and stored; the API runs in its own process (uvicorn, one
worker, as `epcmon run` serves it); wrk (Debian package `wrk`) loads each endpoint with N
connections for S seconds, R runs, medians. The anchor is a bare FastAPI app in a process
of its own (one `async def` route answering a fixed JSON body of /latest's size): what
FastAPI on uvicorn can do at all here.

`--ingest` measures it again with the API served by `epcmon run`'s `Service` (collectors,
recompute, alarms and API on one event loop) while a publisher process feeds its MQTT
collector through Mosquitto at `--ingest-rate` messages/s (bench.api_ingest).
`--profile` adds one py-spy pass per endpoint (not counted in the figures) and prints where
the event loop's time goes.
Targets: p99 <= 50 ms at 50 connections, req/s >= 40 % of the anchor's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
YEAR_START = 1_735_660_800_000  # 2024-12-31T16:00Z = 2025-01-01 00:00 in Shanghai
P99_MS = 50.0
ANCHOR_SHARE = 0.40
ANCHOR = "bare FastAPI async def route (anchor)"
BARE_BODY = (
    b'[{"meter":"E-D01","quantity":"energy_import","unit":"kWh","time":"2025-09-01T00:00:00Z",'
    b'"value":123456.7},{"meter":"E-D01","quantity":"power","unit":"kW","time":'
    b'"2025-09-01T00:00:00Z","value":12.3}]'
)


def site_for(store: Path, keys: Path, port: int, mqtt_port: int | None = None):  # type: ignore[no-untyped-def]
    from core.config import SiteConfig
    from epcmon.sites import load

    site: SiteConfig = load(ROOT / "sites/luan-admin-center.toml")
    data = site.model_dump(mode="json")
    data["storage"]["path"] = str(store)
    data["api"].update(port=port, keys_path=str(keys), rate_limit_per_s=1e6, rate_burst=1_000_000)
    if mqtt_port is not None:
        from bench.api_ingest import ingest_site_data

        data = ingest_site_data(data, mqtt_port)
    from collectors.profiles import load_profiles
    from core.config import parse_site

    return parse_site(data, known_profiles=set(load_profiles()))


def fill(store_path: Path, statements_path: Path, months: int) -> int:
    from datetime import UTC, datetime

    from epcmon.sites import load
    from processing.contract import fit_baseline
    from processing.statements import StatementStore
    from simulators.history import generate_history
    from storage.duckdb_store import DuckDBStore

    site = load(ROOT / "sites/luan-admin-center.toml")
    start = datetime(2024, 7, 1, tzinfo=UTC) - (datetime(2024, 7, 1, 8) - datetime(2024, 7, 1))
    end = datetime(2024 + (6 + months) // 12, (6 + months) % 12 + 1, 1, tzinfo=UTC)
    end = end - (datetime(2024, 7, 1, 8) - datetime(2024, 7, 1))
    history = generate_history(site, start, end, interval="1h", seed=0)
    with DuckDBStore(store_path) as store:
        written = store.write(history.readings)
        with StatementStore(statements_path) as statements:
            statements.save_baseline(fit_baseline(site, site.contracts[0].id, store))
    return written


def serve(store: str, keys: str, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from api.keys import KeyStore
    from processing.statements import StatementStore
    from storage.duckdb_store import DuckDBStore

    site = site_for(Path(store), Path(keys), port)
    app = create_app(
        site,
        DuckDBStore(store),
        keys=KeyStore(keys),
        statements=StatementStore(store + ".statements.sqlite"),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_bare(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI, Response

    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/bare")
    async def bare() -> Response:
        return Response(BARE_BODY, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def server(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m bench.api <args>` in a process of its own, once it listens on `port`."""
    # the Service's log lines (alarms raised on the bench meters, ...) are not the figures
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.api", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if "--serve-service" in args else None,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the server ({' '.join(args)}) did not start") from None
                time.sleep(0.05)  # poll the port until uvicorn listens
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)


def run_wrk(
    url: str, key: str, seconds: int, connections: int, timeout_s: int = 2
) -> dict[str, float]:
    """wrk's figures; a request slower than `timeout_s` (wrk's default 2 s) is not counted."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            f"--timeout={timeout_s}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {key}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            raise RuntimeError(f"no {label}% latency in wrk's output:\n{out}")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "non2xx": float(bad.group(1)) if bad else 0.0,
    }


def cases(base: str) -> list[tuple[str, str]]:
    return [
        ("latest values of a meter", f"{base}/meters/E-D01/latest"),
        (
            "one-year hourly series (8,760 points)",
            f"{base}/meters/E-D01/series?quantity=power&start=2024-07-31T16:00:00Z"
            "&end=2025-07-31T16:00:00Z&every=1h",
        ),
        ("monthly savings of the contract", f"{base}/contracts/epc-2025-01/savings?period=month"),
    ]


def measure(
    urls: list[tuple[str, str]], key: str, seconds: int, connections: int, runs: int
) -> dict[str, list[dict[str, float]]]:
    """R runs of every case, interleaved (so a change in the machine's load hits all)."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name, _ in urls}
    for _name, url in urls:
        run_wrk(url, key, 1, 4)  # warm up
    for run in range(runs):
        for name, url in urls:
            r = run_wrk(url, key, seconds, connections)
            out[name].append(r)
            bad = f", NON-2XX: {int(r['non2xx'])}" if r["non2xx"] else ""
            print(
                f"  run {run + 1} {name}: {r['rps']:,.0f} req/s, p50 {r['p50']:.1f} ms, "
                f"p99 {r['p99']:.1f} ms{bad}",
                flush=True,
            )
    return out


def median(rows: list[dict[str, float]], field: str) -> float:
    return statistics.median(r[field] for r in rows)


def profile(
    pid: int, urls: list[tuple[str, str]], key: str, seconds: int, connections: int
) -> None:
    from bench.pyspy import Profile

    if not Profile.available():
        print("  (py-spy is not installed: pip install py-spy)")
        return
    for name, url in urls:
        with Profile(pid, seconds) as prof:
            r = run_wrk(url, key, seconds, connections)
        print(f"  py-spy, {name} ({r['rps']:,.0f} req/s while profiled), event-loop thread:")
        print(prof.summary())


def report(
    title: str, figures: dict[str, list[dict[str, float]]], anchor: dict[str, float]
) -> bool:
    """The table; True when every endpoint meets both targets."""
    print(f"\n{title}")
    print(f"{'endpoint':40s} {'req/s':>8s} {'of anchor':>9s} {'p50 ms':>7s} {'p99 ms':>7s}  target")
    print(
        f"{ANCHOR:40s} {anchor['rps']:>8,.0f} {'100 %':>9s} {anchor['p50']:>7.1f} "
        f"{anchor['p99']:>7.1f}  (ceiling)"
    )
    met = True
    for name, rows in figures.items():
        rps, p50, p99 = median(rows, "rps"), median(rows, "p50"), median(rows, "p99")
        share = rps / anchor["rps"] if anchor["rps"] else 0.0
        ok = p99 <= P99_MS and share >= ANCHOR_SHARE and not any(r["non2xx"] for r in rows)
        met &= ok
        print(
            f"{name:40s} {rps:>8,.0f} {share:>8.0%} {p50:>7.1f} {p99:>7.1f}  "
            f"p99 <= {P99_MS:.0f} ms, >= {ANCHOR_SHARE:.0%} of anchor: {'met' if ok else 'MISSED'}"
        )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3, help="runs per endpoint (medians)")
    parser.add_argument(
        "--ingest",
        action="store_true",
        help="also with collectors ingesting: in the API's process (epcmon run), and in a "
        "process of their own (--role collector beside --role api)",
    )
    parser.add_argument(
        "--ingest-rate",
        type=int,
        default=6000,
        help="MQTT messages/s (2 readings each) published during --ingest (default: one "
        "collector's rate in bench.ingest_mqtt)",
    )
    parser.add_argument("--profile", action="store_true", help="one py-spy pass per endpoint")
    parser.add_argument("--quick", action="store_true", help="14 months of data, 2 s, 1 run")
    parser.add_argument(
        "--serve", nargs=3, metavar=("STORE", "KEYS", "PORT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-service",
        nargs=5,
        metavar=("STORE", "KEYS", "PORT", "MQTT", "ROLE"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--publish", nargs=2, type=int, metavar=("MQTT", "RATE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if args.serve_service:
        from bench.api_ingest import serve_service

        store_path, keys_path, port, mqtt, role = args.serve_service
        serve_service(store_path, keys_path, int(port), int(mqtt), role)
        return 0
    if args.publish:
        from bench.api_ingest import publish_paced

        publish_paced(*args.publish)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2
    months, seconds, runs = (14, 2, 1) if args.quick else (18, args.duration, args.runs)
    from api.keys import KeyStore, Role

    with tempfile.TemporaryDirectory() as tmp:
        store, keys = Path(tmp) / "api.duckdb", Path(tmp) / "keys.sqlite3"
        t = time.perf_counter()
        points = fill(store, Path(str(store) + ".statements.sqlite"), months)
        print(
            f"epcmon API benchmark: {points:,} readings (simulator history, {months} months, whole "
            f"site, hourly) written and the baseline fitted in {time.perf_counter() - t:.1f} s; "
            f"{args.connections} connections, {seconds} s per endpoint, {runs} run(s), wrk"
        )
        ks = KeyStore(keys)
        key = ks.create(Role.VIEWER, name="bench")[1]
        ks.close()
        bare_port, port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}/api/v1"
        urls = [(ANCHOR, f"http://127.0.0.1:{bare_port}/bare"), *cases(base)]
        with (
            server(["--serve-bare", str(bare_port)], bare_port),
            server(["--serve", str(store), str(keys), str(port)], port) as api,
        ):
            figures = measure(urls, key, seconds, args.connections, runs)
            if args.profile:
                profile(api.pid, urls[1:], key, min(seconds, 6), args.connections)
        from bench.api_ingest import anchor_of

        met = report("the API alone (uvicorn, one process), medians", figures, anchor_of(figures))
        if args.ingest:
            from bench.api_ingest import ingest_case, split_case

            met &= ingest_case(tmp, store, keys, key, args, seconds, runs)
            met &= split_case(tmp, store, keys, key, args, seconds, runs)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

"""API latency and throughput under load generated from a second process (wrk).

    python -m bench.api [--duration S] [--connections N] [--quick]

A DuckDB store is filled with the simulators' history of the whole reference site, hourly,
from 2024-07-01 to 2026-01-01 (the contract's baseline year and six reporting months); the
contract's baseline is fitted and stored; the API runs in its own process (uvicorn, one
worker, as `epcmon run` serves it); wrk (Debian package `wrk`) loads each endpoint with N
connections for S seconds.
Figures: requests/s, p50 and p99 latency, beside the targets (p99 <= 100 ms, >= 500
requests/s for latest values).
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
YEAR_START = 1_735_660_800_000  # 2024-12-31T16:00Z = 2025-01-01 00:00 in Shanghai
STEP = 900_000


def site_for(store: Path, keys: Path, port: int):  # type: ignore[no-untyped-def]
    from core.config import SiteConfig
    from epcmon.sites import load

    site: SiteConfig = load(ROOT / "sites/luan-admin-center.toml")
    data = site.model_dump(mode="json")
    data["storage"]["path"] = str(store)
    data["api"].update(port=port, keys_path=str(keys), rate_limit_per_s=1e6, rate_burst=1_000_000)
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


def run_wrk(url: str, key: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per endpoint")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="14 months of data, 2 s per endpoint")
    parser.add_argument(
        "--serve", nargs=3, metavar=("STORE", "KEYS", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2
    months, seconds = (14, 2) if args.quick else (18, args.duration)
    from api.keys import KeyStore, Role

    with tempfile.TemporaryDirectory() as tmp:
        store, keys = Path(tmp) / "api.duckdb", Path(tmp) / "keys.sqlite3"
        t = time.perf_counter()
        points = fill(store, Path(str(store) + ".statements.sqlite"), months)
        print(
            f"epcmon API benchmark: {points:,} readings (simulator history, {months} months, whole "
            f"site, hourly) written and the baseline fitted in {time.perf_counter() - t:.1f} s; "
            f"{args.connections} connections, {seconds} s per endpoint, wrk"
        )
        ks = KeyStore(keys)
        key = ks.create(Role.VIEWER, name="bench")[1]
        ks.close()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.api", "--serve", str(store), str(keys), str(port)],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the API did not start") from None
                    time.sleep(0.05)  # poll the port until uvicorn listens
            base = f"http://127.0.0.1:{port}/api/v1"
            cases = [
                (
                    "latest values of a meter",
                    f"{base}/meters/E-D01/latest",
                    "p99 <= 100 ms, >= 500 req/s",
                ),
                (
                    "one-year hourly series (8,760 points)",
                    f"{base}/meters/E-D01/series?quantity=power&start=2024-07-31T16:00:00Z"
                    "&end=2025-07-31T16:00:00Z&every=1h",
                    "p99 <= 100 ms",
                ),
                (
                    "monthly savings of the contract",
                    f"{base}/contracts/epc-2025-01/savings?period=month",
                    "p99 <= 100 ms",
                ),
            ]
            rows = []
            for name, url, target in cases:
                run_wrk(url, key, 1, 4)  # warm up
                r = run_wrk(url, key, seconds, args.connections)
                rows.append((name, r, target))
                bad = f", NON-2XX: {int(r['non2xx'])}" if r["non2xx"] else ""
                print(
                    f"  {name}: {r['rps']:,.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms{bad}  ({target})"
                )
        finally:
            server.terminate()
            server.wait(10)
    print()
    print(f"{'endpoint':46s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}  target")
    failed = False
    for name, r, target in rows:
        print(f"{name:46s} {r['rps']:>8,.0f} {r['p50']:>8.1f} {r['p99']:>8.1f}  {target}")
        failed |= r["non2xx"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""API latency and throughput under load generated from a second process (wrk).

    python -m bench.api [--duration S] [--connections N] [--quick]

A DuckDB store is filled with a year of 15-minute data for every electricity meter of the
reference site; the API runs in its own process (uvicorn, one worker, as `epcmon run`
serves it); wrk (Debian package `wrk`) loads each endpoint with N connections for S seconds.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
YEAR_START = 1_735_660_800_000  # 2024-12-31T16:00Z = 2025-01-01 00:00 in Shanghai
STEP = 900_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def fill(store_path: Path, days: int) -> int:
    from core.readings import ReadingBatch
    from epcmon.sites import load
    from storage.duckdb_store import DuckDBStore

    site = load(ROOT / "sites/luan-admin-center.toml")
    ts = YEAR_START + np.arange(days * 96, dtype=np.int64) * STEP
    hour = (ts // 3_600_000 + 8) % 24
    occupied = ((hour >= 8) & (hour < 18)).astype(float)
    rng = np.random.default_rng(1)
    written = 0
    with DuckDBStore(store_path) as store:
        for m in site.meters:
            if m.kind.value != "electricity":
                continue
            power = (
                (2 + rng.random())
                * (0.3 + 0.7 * occupied)
                * (1 + 0.05 * rng.standard_normal(len(ts)))
            )
            batch = ReadingBatch.concat(
                [
                    ReadingBatch.for_series(m.id, "power", ts, power),
                    ReadingBatch.for_series(m.id, "energy_import", ts, 1000 + np.cumsum(power) / 4),
                ]
            )
            written += store.write(batch)
    return written


def serve(store: str, keys: str, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from api.keys import KeyStore
    from storage.duckdb_store import DuckDBStore

    site = site_for(Path(store), Path(keys), port)
    app = create_app(site, DuckDBStore(store), keys=KeyStore(keys))
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
    parser.add_argument("--quick", action="store_true", help="30 days of data, 2 s per endpoint")
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
    days, seconds = (30, 2) if args.quick else (365, args.duration)
    from api.keys import KeyStore, Role

    with tempfile.TemporaryDirectory() as tmp:
        store, keys = Path(tmp) / "api.duckdb", Path(tmp) / "keys.sqlite3"
        t = time.perf_counter()
        points = fill(store, days)
        print(
            f"epcmon API benchmark: {points:,} points ({days} days x 102 meters, 15 min) written in "
            f"{time.perf_counter() - t:.1f} s; {args.connections} connections, {seconds} s per endpoint, wrk"
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
                    time.sleep(0.05)
            base = f"http://127.0.0.1:{port}/api/v1"
            end = "2025-12-31T16:00:00Z" if days == 365 else "2025-01-30T16:00:00Z"
            cases = [
                (
                    "latest values of a meter",
                    f"{base}/meters/E-D01/latest",
                    "p99 <= 100 ms, >= 500 req/s",
                ),
                (
                    f"{'one-year' if days == 365 else str(days) + '-day'} hourly series",
                    f"{base}/meters/E-D01/series?quantity=power&start=2024-12-31T16:00:00Z&end={end}&every=1h",
                    "p99 <= 100 ms",
                ),
                (
                    "a department's daily consumption, one month",
                    f"{base}/consumption/tenants/dept-01?every=1d&start=2025-01-01T00:00:00Z&end=2025-01-31T00:00:00Z",
                    "p99 <= 100 ms",
                ),
            ]
            rows = []
            for name, url, target in cases:
                run_wrk(url, key, 1, 4)  # warm up
                r = run_wrk(url, key, seconds, args.connections)
                rows.append((name, r, target))
                print(
                    f"  {name}: {r['rps']:,.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms"
                    f"{', NON-2XX: ' + str(int(r['non2xx'])) if r['non2xx'] else ''}  ({target})"
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

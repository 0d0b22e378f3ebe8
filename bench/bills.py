"""Department bills on the reference site with a year of history.

    python -m bench.bills [--interval 15m] [--quick]

A DuckDB store is filled with the simulators' history of the whole reference site (116
meters) from 2024-12-01 to 2026-01-01 at `--interval` (15 minutes by default, as the
collectors store it). Measured, each the median of several runs:

1. `month_bills()` for July 2025 (one hourly read per electricity and water meter, the
   apportionment, the pricing), cold;
2. `intensity()` through December 2025 (one monthly read per meter over 12 months), cold;
3. `GET /api/v1/bills?month=2025-07` through the app (bills + the site's intensity, JSON):
   the first call (nothing cached) and then from the cache (`CACHE_S`);
4. the same as CSV, from the cache.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median seconds of `runs` calls."""
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interval", default="15m", choices=("1m", "5m", "15m", "30m", "1h"))
    parser.add_argument("--quick", action="store_true", help="hourly data, fewer runs")
    args = parser.parse_args(argv)
    interval, runs = ("1h", 3) if args.quick else (args.interval, 7)

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.keys import KeyStore, Role
    from epcmon.sites import load
    from processing.bills import month_bills
    from processing.intensity import intensity
    from processing.statements import StatementStore
    from simulators.history import iter_history
    from storage.duckdb_store import DuckDBStore

    site = load(ROOT / "sites/luan-admin-center.toml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "year.duckdb"
        t = time.perf_counter()
        written = 0
        with DuckDBStore(path) as store:
            for part in iter_history(
                site,
                datetime(2024, 11, 30, 16, tzinfo=UTC),
                datetime(2025, 12, 31, 16, tzinfo=UTC),
                interval=interval,
                seed=0,
            ):
                written += store.write(part.readings)
        print(
            f"store: 13 months of the reference site at {interval}, {written:,} readings "
            f"({time.perf_counter() - t:.1f} s to generate and write)"
        )
        with DuckDBStore(path) as store:
            bills = timed(lambda: month_bills(site, store, "2025-07"), runs)
            print(f"month_bills(2025-07), cold: median {bills * 1000:.0f} ms of {runs}")
            figures = timed(lambda: intensity(site, store, "2025-12"), runs)
            print(f"intensity(through 2025-12), cold: median {figures * 1000:.0f} ms of {runs}")
            keys = KeyStore(Path(tmp) / "keys.sqlite3")
            header = {"Authorization": f"Bearer {keys.create(Role.VIEWER)[1]}"}
            app = create_app(
                site, store, keys=keys, statements=StatementStore(Path(tmp) / "st.sqlite3")
            )
            with TestClient(app) as client:
                params = {"month": "2025-07"}

                def call(**extra: str) -> None:
                    r = client.get("/api/v1/bills", params={**params, **extra}, headers=header)
                    assert r.status_code == 200, r.text

                first = timed(call, 1)
                cached = timed(call, runs * 5)
                csv = timed(lambda: call(format="csv"), runs * 5)
            keys.close()
        print(
            f"GET /api/v1/bills?month=2025-07 (57 departments + intensity, JSON): first call "
            f"{first * 1000:.0f} ms, cached median {cached * 1000:.1f} ms; CSV cached median "
            f"{csv * 1000:.1f} ms (no target; the page and the report call it)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

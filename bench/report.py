"""The monthly energy report on the reference site with 13 months of history.

    python -m bench.report [--interval 1h] [--runs 3]

A DuckDB store is filled with the simulators' history of the whole reference site (116
meters) from 2024-12-01 to 2026-01-01 at `--interval`. Measured for December 2025, each the
median of `--runs`:

1. `collect()`: the month's bills and last year's, the intensity, the site's 24 months, the
   statements, every meter's hourly coverage (the store reads);
2. `write_xlsx()` and `write_pdf()` from those figures;
3. the fingerprint that tells the service whether a stored report is current (its cost on
   every pass over a month with nothing new).

Anchor: a month's report is written once, in the background, a few days after the month
ends; it has to stay well under the recompute's hour and keep the machine usable meanwhile
(the service writes one report a pass, `reports.schedule.PAUSE_S` apart).
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
MONTH = "2025-12"


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
    parser.add_argument("--interval", default="1h", choices=("15m", "30m", "1h"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    from epcmon.sites import load
    from processing.statements import StatementStore
    from reports.build import fingerprint, month_totals
    from reports.content import collect
    from reports.pdf import write_pdf
    from reports.xlsx import write_xlsx
    from simulators.history import iter_history
    from storage.duckdb_store import DuckDBStore

    site = load(ROOT / "sites/luan-admin-center.toml")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "year.duckdb"
        written = 0
        with DuckDBStore(path) as store:
            for part in iter_history(
                site,
                datetime(2024, 11, 30, 16, tzinfo=UTC),
                datetime(2025, 12, 31, 16, tzinfo=UTC),
                interval=args.interval,
                seed=0,
            ):
                written += store.write(part.readings)
        print(f"store: 13 months of the reference site at {args.interval}, {written:,} readings")
        with DuckDBStore(path) as store, StatementStore(Path(tmp) / "s.sqlite") as statements:
            data = collect(site, store, statements, MONTH)
            took = timed(lambda: collect(site, store, statements, MONTH), args.runs)
            print(f"collect({MONTH}): median {took:.2f} s of {args.runs}")
            xlsx = timed(lambda: write_xlsx(data, Path(tmp) / "r.xlsx"), args.runs)
            pdf = timed(lambda: write_pdf(data, Path(tmp) / "r.pdf"), args.runs)
            size = (Path(tmp) / "r.pdf").stat().st_size
            print(
                f"write_xlsx: median {xlsx * 1000:.0f} ms; write_pdf: median {pdf:.2f} s ({size:,} bytes)"
            )
            stamp = timed(
                lambda: fingerprint(site, statements, MONTH, month_totals(site, store, MONTH)),
                args.runs,
            )
            print(f"fingerprint (a pass with nothing new, per month): median {stamp * 1000:.0f} ms")
            print(f"a month's report: {took + xlsx + pdf:.1f} s (anchor: well under the hour)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

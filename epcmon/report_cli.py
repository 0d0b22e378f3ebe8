"""`epcmon report --month`: write a closed month's energy report (XLSX and PDF) from the store
and the stored statements (stop `epcmon run` first when the store is a DuckDB file: it owns
the file; the service writes the reports by itself anyway)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_SITE = "sites/luan-admin-center.toml"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from epcmon.savings_cli import _month

    p = sub.add_parser(
        "report", help="write a closed month's energy report for the administration: XLSX and PDF"
    )
    p.add_argument("--month", required=True, type=_month, help="the month, YYYY-MM (ended)")
    p.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where to write them (default: reports.dir, or reports/ beside the statements)",
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    import storage
    from core.errors import ConfigError, EpcmonError
    from epcmon.sites import load
    from processing.bills import MonthError
    from processing.statements import StatementStore
    from reports.build import reports_dir, write_report
    from reports.content import check_closed

    site = load(args.site)
    try:
        check_closed(site, args.month)  # before the store is opened
    except MonthError as exc:
        raise ConfigError(f"--month {args.month}: {exc}") from None
    out = Path(args.out) if args.out else reports_dir(site)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a directory")
    store = storage.open_store(site.storage, site, spool=False)
    try:
        with StatementStore(site.storage.statements_file) as statements:
            try:
                files = write_report(site, store, statements, args.month, out)
            except ImportError as exc:  # the `report` extra is not installed
                raise EpcmonError(str(exc)) from None
    finally:
        store.close()
    manifest = files.read_manifest()
    print(f"{site.site.name} ({site.site.id}): energy report for {args.month}")
    print(f"  electricity {manifest['kwh']:,.1f} kWh, water {manifest['water_m3']:,.1f} m³")
    for s in manifest["statements"]:
        version = f" v{s['version']}" if s["version"] else ""
        print(f"  statement {s['contract']} ({s['utility']}): {s['status']}{version}")
    print(f"  {files.xlsx}\n  {files.pdf}")
    return 0

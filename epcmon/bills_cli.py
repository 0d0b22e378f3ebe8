"""`epcmon bills`: a month's department bills, the reconciliation and the intensity, printed
and exported, from the store directly (stop `epcmon run` first when the store is a DuckDB
file: it owns the file)."""

from __future__ import annotations

import argparse
import csv
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from processing.bills import MonthBills

DEFAULT_SITE = "sites/luan-admin-center.toml"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from epcmon.savings_cli import _month

    p = sub.add_parser(
        "bills", help="a month's department bills: ranking, reconciliation, intensity, CSV"
    )
    p.add_argument("--month", required=True, type=_month, help="the month, YYYY-MM")
    p.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    p.add_argument("--csv", metavar="FILE", default=None, help="also write the bills as CSV")
    p.add_argument(
        "--json", action="store_true", help="print the bills and the intensity as JSON instead"
    )
    p.set_defaults(func=_bills)


def _bills(args: argparse.Namespace) -> int:
    import storage
    from core.errors import ConfigError
    from epcmon.sites import load
    from processing.bills import MonthError, month_bills, month_range, parse_month, previous_month
    from processing.intensity import intensity

    site = load(args.site)
    try:
        month_range(site, args.month)  # before the store is opened
    except MonthError as exc:
        raise ConfigError(f"--month {args.month}: {exc}") from None
    store = storage.open_store(site.storage, site, spool=False)
    try:
        bills = month_bills(site, store, args.month)
        through = args.month
        if bills.status == "provisional":
            through = previous_month(parse_month(args.month)).strftime("%Y-%m")
        figures = intensity(site, store, through)
    finally:
        store.close()
    if args.json:
        import json

        doc = {"bills": bills.to_dict(), "intensity": figures}
        print(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        print_bills(bills, sys.stdout)
        print_intensity(figures, sys.stdout)
    if args.csv:
        header, rows = bills.csv()
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        print(f"\nCSV written to {args.csv}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_bills(bills: MonthBills, out: TextIO) -> None:
    doc = bills.to_dict()
    site = bills.site.site
    state = "final" if doc["status"] == "final" else f"PROVISIONAL, data through {doc['through']}"
    money = "at the site tariff" if doc["priced"] else "no [billing.tariff]: kWh and m³ only"
    print(
        f"{site.name} ({site.id}): department bills for {doc['month']} ({state}), {money}", file=out
    )
    print(f"ranked by kWh/m²; {len(doc['rows'])} departments\n", file=out)
    head = f"{'rank':>4}  {'tenant':<10} {'kWh':>12} {'CNY':>12} {'kWh/m²':>8} {'kWh/person':>10} {'water m³':>9}  name"
    print(head, file=out)
    for r in doc["rows"]:
        print(
            f"{r['rank']:>4}  {r['tenant']:<10} {_n(r['kwh']):>12} {_n(r['cny'], 2):>12} "
            f"{_n(r['kwh_per_m2'], 2):>8} {_n(r['kwh_per_person']):>10} {_n(r['water_m3']):>9}  "
            f"{r['name']}",
            file=out,
        )
    left = doc["unallocated"]
    print(
        f"{'':>4}  {'unallocated':<10} {_n(left['kwh']):>12} {_n(left['cny'], 2):>12} "
        f"{'':>8} {'':>10} {_n(left['water_m3']):>9}",
        file=out,
    )
    print("\npools:", file=out)
    for p in doc["pools"]:
        where = f" [{p['building']}]" if p["building"] else ""
        note = f"; unallocated {_n(p['unallocated'])} ({p['reason']})" if p["reason"] else ""
        print(
            f"  {p['id']}{where} ({p['rule']}): {_n(p['quantity'])} {p['unit']} "
            f"to {p['recipients']} departments{note}",
            file=out,
        )
    print("\nreconciliation:", file=out)
    for name, check in doc["reconciliation"].items():
        print(
            f"  {name}: {' + '.join(check['meters'])} = {_n(check['measured'], 3)} {check['unit']} "
            f"= departments' own {_n(check['departments_own'], 3)} + apportioned "
            f"{_n(check['apportioned'], 3)} + unallocated {_n(check['unallocated'], 3)} "
            f"(difference {check['difference']:.3f})",
            file=out,
        )
        if check["cny"] is not None:
            c = check["cny"]
            print(
                f"  {'':{len(name)}}  CNY {_n(c['measured'], 2)} = departments {_n(c['departments'], 2)} "
                f"+ unallocated {_n(c['unallocated'], 2)} (difference {c['difference']:.2f})",
                file=out,
            )


def print_intensity(doc: dict[str, Any], out: TextIO) -> None:
    w = doc["window"]
    extent = f"{w['first']} to {w['last']}"
    if not w["complete"]:
        extent += f", {w['months_with_data']} of {w['months']} months with data: not a full year"
    print(f"\nenergy-use intensity, {extent}:", file=out)
    s = doc["site"]
    print(
        f"  site: {_n(s['kwh_per_m2'], 1)} kWh/m²·a, {_n(s['kwh_per_person'], 0)} kWh/person·a, "
        f"{_n(s['water_m3_per_person'], 1)} m³ water/person·a "
        f"(year to date {_n(s['year_to_date']['kwh_per_m2'], 1)} kWh/m²)",
        file=out,
    )
    for b in doc["buildings"]:
        print(
            f"  {b['id']}: {_n(b['kwh_per_m2'], 1)} kWh/m²·a, {_n(b['kwh_per_person'], 0)} kWh/person·a "
            f"(as billed to its departments)",
            file=out,
        )
    for t in doc["targets"]:
        limits = ", ".join(
            f"{label} {value:g}"
            for label, value in (("constraint", t["constraint"]), ("guide", t["guide"]))
            if value is not None
        )
        where = t.get("site") or {"value": None, "status": "not compared for the site"}
        flag = " PROVISIONAL" if t["provisional"] else ""
        print(
            f"  target {t['id']} ({t['metric']}: {limits}){flag}: site {_n(where['value'], 1)} "
            f"{where['status']}; source: {t['source']}",
            file=out,
        )

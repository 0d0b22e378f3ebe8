"""`epcmon baseline fit` and `epcmon savings report|export|verify`: the savings core from the
command line. `export` writes a statement's full record (what the API serves); `verify`
recomputes a record from the file alone and prints `identical` or the first difference."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from core.config import MODEL_NAMES, UTILITY_NAMES, SiteConfig
from core.errors import ConfigError

if TYPE_CHECKING:  # the command imports the savings core only when it runs
    from processing.contract import Baseline, Statement
    from processing.statements import StatementStore
    from storage.base import TimeSeriesStore

DEFAULT_SITE = "sites/luan-admin-center.toml"


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("baseline", help="fit a contract's baseline model and show its findings")
    bsub = p.add_subparsers(dest="baseline_command", required=True, metavar="SUBCOMMAND")
    f = bsub.add_parser("fit", help="fit the baseline on the baseline period and store it")
    f.add_argument("--contract", required=True, help="contract id")
    f.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    f.add_argument("--utility", choices=UTILITY_NAMES, default="electricity")
    f.add_argument(
        "--model", choices=MODEL_NAMES, default=None, help="override the contract's model"
    )
    f.add_argument(
        "--day-types",
        choices=("calendar", "weekday", "none"),
        default=None,
        help="override the day types",
    )
    f.add_argument(
        "--json", metavar="FILE", default=None, help="also write the fitted model's JSON here"
    )
    f.set_defaults(func=_baseline_fit)

    p = sub.add_parser("savings", help="monthly savings statements of a contract")
    ssub = p.add_subparsers(dest="savings_command", required=True, metavar="SUBCOMMAND")
    r = ssub.add_parser("report", help="compute, store and print a month's statement")
    r.add_argument("--contract", required=True, help="contract id")
    r.add_argument("--month", required=True, type=_month, help="the month, YYYY-MM")
    r.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    r.add_argument("--utility", choices=UTILITY_NAMES, default="electricity")
    r.add_argument("--csv", metavar="FILE", default=None, help="also write the figures as CSV")
    r.add_argument(
        "--plot", metavar="FILE.png", default=None, help="also draw baseline vs actual (PNG)"
    )
    r.add_argument(
        "--refit", action="store_true", help="refit the baseline instead of the stored one"
    )
    r.add_argument(
        "--json",
        action="store_true",
        help="print the stored statement's record as JSON (as `savings export`) instead",
    )
    r.set_defaults(func=_savings_report)
    e = ssub.add_parser(
        "export", help="write a stored statement's full record (JSON: what the API serves)"
    )
    e.add_argument("--contract", required=True, help="contract id")
    e.add_argument("--month", required=True, type=_month, help="the month, YYYY-MM")
    e.add_argument("--site", default=DEFAULT_SITE, help=f"site file (default {DEFAULT_SITE})")
    e.add_argument("--utility", choices=UTILITY_NAMES, default="electricity")
    e.add_argument("--out", metavar="FILE", default=None, help="write here (default: stdout)")
    e.set_defaults(func=_savings_export)
    v = ssub.add_parser(
        "verify",
        help="recompute a statement record from the file alone: 'identical' or the first "
        "difference (exit 1)",
    )
    v.add_argument("file", metavar="FILE", help="a record from `savings export` or the API")
    v.set_defaults(func=_savings_verify)


def _month(text: str) -> str:
    from datetime import datetime

    try:
        return datetime.strptime(text, "%Y-%m").strftime("%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM, e.g. 2026-01") from None


def _open(site: SiteConfig) -> tuple[TimeSeriesStore, StatementStore]:
    """The site's store (its view of a portfolio's) and statements."""
    import storage
    from processing.statements import StatementStore

    return storage.open_store(site.storage, site, spool=False), StatementStore(
        site.storage.statements_file
    )


def _baseline_fit(args: argparse.Namespace) -> int:
    import json

    from epcmon.sites import load
    from processing.contract import fit_baseline

    site = load(args.site)
    store, statements = _open(site)
    try:
        baseline = fit_baseline(
            site,
            args.contract,
            store,
            utility=args.utility,
            model=args.model,
            day_types=args.day_types,
        )
        row = statements.save_baseline(baseline)
    finally:
        store.close()
        statements.close()
    print_baseline(baseline, sys.stdout)
    print(f"\nstored as baseline #{row} in {site.storage.statements_file}")
    if args.json:
        Path(args.json).write_text(json.dumps(baseline.model.to_dict(), indent=1), encoding="utf-8")
        print(f"model JSON written to {args.json}")
    return 0


def print_baseline(baseline: Baseline, out: TextIO) -> None:
    stats = baseline.model.stats
    assert stats is not None  # a Baseline holds a fitted model
    print(
        f"baseline of {baseline.contract_id} ({baseline.utility}), {baseline.start} to {baseline.end} "
        f"(exclusive): {baseline.model.KIND}",
        file=out,
    )
    print(baseline.model.describe(), file=out)
    print(
        f"CV(RMSE) {stats.cvrmse:.2%}  NMBE {stats.nmbe:+.3%}  R² {stats.r2:.3f}  adj. R² {stats.adj_r2:.3f}  "
        f"n {stats.n}  p {stats.p}  rho {stats.rho:+.3f}  n' {stats.n_eff:.1f}"
        + (" (capped at n)" if stats.n_eff_capped else " (uncapped)"),
        file=out,
    )
    if baseline.findings:
        print("findings:", file=out)
        for finding in baseline.findings:
            print(f"  {finding}", file=out)


def _savings_report(args: argparse.Namespace) -> int:
    from epcmon.sites import load
    from processing.contract import check_month_closed, fit_baseline, statement

    site = load(args.site)
    check_month_closed(site, args.contract, args.month)  # before anything is fitted or stored
    store, statements = _open(site)
    try:
        baseline = None if args.refit else statements.latest_baseline(args.contract, args.utility)
        if baseline is None:
            baseline = fit_baseline(site, args.contract, store, utility=args.utility)
            statements.save_baseline(baseline)
        stmt = statement(
            site, args.contract, store, args.month, baseline=baseline, utility=args.utility
        )
        row = statements.save_statement(stmt)
        found = statements.record(args.contract, args.month, args.utility) if args.json else None
    finally:
        store.close()
        statements.close()
    # with --json, stdout is the JSON alone: the other lines go to stderr
    say = sys.stderr if args.json else sys.stdout
    if found is not None:
        import json

        record, status = found
        doc = {**record, "status": status, "statement_row": row}
        print(json.dumps(doc, ensure_ascii=False, indent=1))
    else:
        print_statement(site, stmt, sys.stdout)
    print(f"\nstored as statement #{row} in {site.storage.statements_file}", file=say)
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            write_csv(stmt, fh)
        print(f"CSV written to {args.csv}", file=say)
    if args.plot:
        from processing.plots import INSTALL_HINT

        try:
            from processing.plots import plot_statement

            plot_statement(stmt, args.plot)
        except ImportError:
            print(f"no plot: {INSTALL_HINT}", file=sys.stderr)
            return 3
        print(f"plot written to {args.plot}", file=say)
    return 0


def _savings_export(args: argparse.Namespace) -> int:
    import json

    from core.errors import NotFound
    from epcmon.sites import load
    from processing.contract import check_month_closed
    from processing.statements import StatementStore

    site = load(args.site)
    contract = site.contract(args.contract)
    with StatementStore(site.storage.statements_file) as statements:
        found = statements.record(contract.id, args.month, args.utility)
    if found is None:
        check_month_closed(site, contract.id, args.month)
        raise NotFound(
            f"no {args.utility} statement of {contract.id} for {args.month} in "
            f"{site.storage.statements_file} (`epcmon savings report` or `epcmon run` writes it)"
        )
    record, status = found
    text = json.dumps({**record, "status": status}, ensure_ascii=False, indent=1)
    if args.out is None:
        print(text)
    else:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"{contract.id} {args.month} ({status}) written to {args.out}", file=sys.stderr)
    return 0


def _savings_verify(args: argparse.Namespace) -> int:
    import json

    from processing.contract import verify

    path = Path(args.file)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not a JSON document: {exc}", file=str(path)) from None
    if not isinstance(record, dict) or not {"numbers", "inputs", "model", "contract"} <= set(
        record
    ):
        raise ConfigError(
            "not a statement record (numbers, inputs, model, contract)", file=str(path)
        )
    try:
        difference = verify(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"not a statement record: {type(exc).__name__}: {exc}", file=str(path)
        ) from None
    if difference is None:
        print("identical")
        return 0
    print(f"differs: {difference}")
    return 1


_COLUMNS = (
    "period",
    "start",
    "end",
    "days",
    "days_used",
    "days_estimated",
    "baseline",
    "adjustments",
    "adjusted_baseline",
    "actual",
    "avoided",
    "u68",
    "u90",
    "fsu68",
    "fsu90",
    "cost_savings_cny",
    "vendor_cny",
    "owner_cny",
    "carbon_t",
    "kwh_sharp",
    "kwh_peak",
    "kwh_flat",
    "kwh_valley",
    "cny_sharp",
    "cny_peak",
    "cny_flat",
    "cny_valley",
)


def rows(stmt: Statement) -> list[dict[str, object]]:
    out = []
    for key, p in stmt.periods:
        money = stmt.money.get(key)
        row: dict[str, object] = {
            "period": p.label,
            "start": p.start.isoformat(),
            "end": p.end.isoformat(),
            "days": p.days,
            "days_used": p.days_used,
            "days_estimated": p.days_estimated,
            "baseline": round(p.baseline, 3),
            "adjustments": round(p.adjustments, 3),
            "adjusted_baseline": round(p.adjusted_baseline, 3),
            "actual": round(p.actual, 3),
            "avoided": round(p.avoided, 3),
            "u68": round(p.u68.u, 3),
            "u90": round(p.u90.u, 3),
            "fsu68": round(p.u68.fsu, 5),
            "fsu90": round(p.u90.fsu, 5),
            "cost_savings_cny": "" if money is None else round(money.total_cny, 2),
            "vendor_cny": "" if money is None else round(money.vendor_cny, 2),
            "owner_cny": "" if money is None else round(money.owner_cny, 2),
            "carbon_t": round(stmt.carbon_t.get(key, 0.0), 3),
        }
        for period in ("sharp", "peak", "flat", "valley"):
            row[f"kwh_{period}"] = "" if money is None else round(money.kwh.get(period, 0.0), 3)
            row[f"cny_{period}"] = "" if money is None else round(money.cny.get(period, 0.0), 2)
        out.append(row)
    return out


def write_csv(stmt: Statement, fh: TextIO) -> None:
    writer = csv.DictWriter(fh, fieldnames=_COLUMNS)
    writer.writeheader()
    writer.writerows(rows(stmt))


def print_statement(site: SiteConfig, stmt: Statement, out: TextIO) -> None:
    contract = site.contract(stmt.contract_id)
    model = stmt.model
    stats = model["stats"]
    print(f"{contract.name}", file=out)
    print(f"contract {contract.id}, vendor {contract.vendor}", file=out)
    print(
        f"statement {stmt.month}, {stmt.utility} ({stmt.unit}); baseline {model['model']}: "
        f"CV(RMSE) {stats['cvrmse']:.1%}, NMBE {stats['nmbe']:+.2%}, R² {stats['r2']:.3f}, "
        f"n {stats['n']}, p {stats['p']}",
        file=out,
    )
    print(file=out)
    header = (
        f"{'period':<26}{'days':>8}{'baseline':>13}{'adjust.':>10}{'actual':>13}{'avoided':>12}"
        f"{'±68%':>10}{'±90%':>10}{'FSU90':>7}{'CNY':>12}{'vendor CNY':>12}{'tCO2':>9}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for key, p in stmt.periods:
        money = stmt.money.get(key)
        print(
            f"{p.label:<26}{f'{p.days_used}/{p.days}':>8}{p.baseline:>13,.0f}{p.adjustments:>10,.0f}"
            f"{p.actual:>13,.0f}{p.avoided:>12,.0f}{p.u68.u:>10,.0f}{p.u90.u:>10,.0f}"
            f"{p.u90.fsu:>7.1%}"
            + (
                f"{money.total_cny:>12,.0f}{money.vendor_cny:>12,.0f}"
                if money
                else f"{'–':>12}{'–':>12}"
            )
            + f"{stmt.carbon_t.get(key, 0.0):>9,.1f}",
            file=out,
        )
    money = stmt.money.get("month")
    if money is not None and stmt.utility == "electricity":
        from processing.pricing import PERIOD_NAMES_ZH

        print(file=out)
        print(
            "time of use, this month (priced "
            + stmt.pricing
            + "): "
            + "; ".join(
                f"{PERIOD_NAMES_ZH[p]} {p} {money.kwh[p]:,.0f} kWh = {money.cny[p]:,.0f} CNY"
                for p in ("sharp", "peak", "flat", "valley")
                if abs(money.kwh[p]) > 0
            )
            + f" (average {money.average_price:.3f} CNY/kWh)",
            file=out,
        )
    if stmt.energy_kwh:
        print(
            "kWh equivalent: " + "; ".join(f"{k} {v:,.0f} kWh" for k, v in stmt.energy_kwh.items()),
            file=out,
        )
    g = stmt.guarantee
    if g is not None:
        state = "final" if g.year_complete else "to date, pro rata"
        lower = (
            ""
            if g.achieved_lower_90_kwh is None
            else f" (lower 90 % bound {g.achieved_lower_90_kwh:,.0f})"
        )
        print(
            f"guarantee, contract year {g.contract_year} ({g.year_start} to {g.year_end}): "
            f"{g.achieved_kwh:,.0f} kWh avoided{lower} against {g.pro_rata_kwh:,.0f} ({state}; "
            f"{g.guaranteed_kwh:,.0f} per year)",
            file=out,
        )
        both = [
            ("point estimate", g.shortfall_point_kwh),
            ("lower 90 % bound", g.shortfall_lower_90_kwh),
        ]
        print(
            "  shortfall: "
            + "; ".join(f"{name} {v:,.0f} kWh" for name, v in both if v is not None)
            + f"; on the contract's basis ({g.basis}): "
            + (
                f"{g.shortfall_kwh:,.0f} kWh = {g.shortfall_cny:,.0f} CNY"
                if g.shortfall_kwh > 0
                else "none"
            )
            + (
                ""
                if g.probability_met is None
                else f"; probability the guarantee was met {g.probability_met:.1%}"
            ),
            file=out,
        )
    if stmt.normalised is not None:
        print(
            f"normalised savings over a typical year: {stmt.normalised:,.0f} {stmt.unit}", file=out
        )
    if stmt.findings:
        print("\nfindings:", file=out)
        for finding in stmt.findings:
            print(f"  {finding}", file=out)
    print(f"\nstatus: {stmt.status(final=True)}", file=out)
    print(
        f"inputs digest {stmt.inputs_digest[:16]}…, created {stmt.created_at}, {stmt.software}",
        file=out,
    )

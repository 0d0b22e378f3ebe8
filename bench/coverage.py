"""Do the stated savings intervals contain the truth as often as they say?

    .venv/bin/python -m bench.coverage                 # 10 seeds, both models, real meters, opendsm
    .venv/bin/python -m bench.coverage --seeds 3 --no-opendsm --no-real   # seconds: a smoke test

1. **Simulator truth.** For each seed the simulators write two years of the reference site
   (`sites/luan-admin-center.toml`, contract `epc-2025-01`: baseline 2024-07..2025-06, then
   twelve reporting months) hourly and know the true savings of the boundary. The contract's
   savings are computed as a statement computes them (`fit_baseline_from_usage`,
   `savings_from_usage`) with the daily and with the hourly model; for every reporting month
   and for the year: does the stated 90 % (68 %) interval contain the truth? Both the stated
   `heldout-months` interval and the ASHRAE 14 figure beside it are scored, with the bias and
   the root mean square error per calendar month.
2. **Held-out real meters.** opendsm's bundled UK smart meters (real homes, half-hourly,
   electricity; one gas), read from the opendsm venv's package data: rolling splits of a
   twelve-month baseline and the following months, where nothing changed, so the true savings
   are zero. Weekday/weekend day types (no UK calendar here).
3. **opendsm 1.2.7 on the same data in the same run** (its own venv, `bench/opendsm_side.py`
   `coverage` mode): its daily and hourly models fitted on the same baselines, each month's
   interval from its own `ReportingMetrics` (ASHRAE 14 with its n'), scored the same way.
   Its daily fit takes ~15 s of CPU a meter-year, so it runs on `--opendsm-seeds` seeds (3).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SITE_FILE = REPO / "sites" / "luan-admin-center.toml"
CONTRACT = "epc-2025-01"
HISTORY = (datetime(2024, 7, 1, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC))
REPORTING = (date(2025, 7, 1), date(2026, 7, 1))
MODELS = ("daily", "hourly")
RealCase = tuple[Any, Any, date, date, date]  # hourly, daily, baseline start, split, end


@dataclass(frozen=True)
class Row:
    """One period's estimate against its truth."""

    source: str  # "sim" or "real"
    who: str  # "epcmon" or "opendsm"
    model: str  # "daily" or "hourly"
    case: str  # seed or meter/split
    period: str  # YYYY-MM or "year"
    true: float
    avoided: float
    u90: float
    u68: float
    ashrae_u90: float
    baseline: float

    @property
    def error(self) -> float:
        return self.avoided - self.true


# -- 1. the simulator ------------------------------------------------------------------------


def simulated_case(seed: int) -> tuple[Any, Any, dict[np.datetime64, float]]:
    """(site, usage over both years, the boundary's true savings by local day)."""
    from core.config import contract_weather_station, load_site
    from processing.baseline import load as _load
    from simulators.history import generate_history
    from storage.duckdb_store import DuckDBStore

    site = load_site(SITE_FILE)
    contract = site.contract(CONTRACT)
    history = generate_history(
        site,
        *HISTORY,
        interval="1h",
        seed=seed,
        meters=[*contract.meters, contract_weather_station(site, contract)],
    )
    tz = ZoneInfo(site.site.timezone)
    days = np.array(
        [np.datetime64(datetime.fromtimestamp(int(t) / 1000, tz).date()) for t in history.ts_ms]
    )
    uniq, inverse = np.unique(days, return_inverse=True)
    true = np.sum([history.true_savings_kwh[m] for m in contract.meters], axis=0)
    true_by_day = dict(zip(uniq, np.bincount(inverse, weights=true), strict=True))
    with DuckDBStore(":memory:") as store:
        store.write(history.readings)
        usage = _load(site, contract, store, "electricity", HISTORY[0].date(), REPORTING[1])
    return site, usage, true_by_day


def simulator_rows(
    seeds: Iterable[int], models: Sequence[str]
) -> tuple[list[Row], dict[int, tuple[Any, dict[str, float]]]]:
    """Rows of every seed, model and period; per seed its usage and true savings by month."""
    from processing.contract import fit_baseline_from_usage, savings_from_usage

    rows: list[Row] = []
    sim: dict[int, tuple[Any, dict[str, float]]] = {}
    for seed in seeds:
        site, usage, true_by_day = simulated_case(seed)
        contract = site.contract(CONTRACT)
        day = np.array(list(true_by_day))
        value = np.array(list(true_by_day.values()))

        def truth(start: date, end: date, day: Any = day, value: Any = value) -> float:
            sel = (day >= np.datetime64(start)) & (day < np.datetime64(end))
            return float(value[sel].sum())

        true_by_month: dict[str, float] = {}
        for kind in models:
            baseline = fit_baseline_from_usage(contract, usage, model=kind)  # type: ignore[arg-type]
            result = savings_from_usage(
                contract, baseline, usage, start=REPORTING[0], end=REPORTING[1]
            )
            for p in (*result.months, result.total):
                period = p.label if p.label != "total" else "year"
                true_by_month[period] = truth(p.start, p.end)
                assert p.ashrae14_u90 is not None
                rows.append(
                    Row(
                        "sim",
                        "epcmon",
                        kind,
                        str(seed),
                        period,
                        true_by_month[period],
                        p.avoided,
                        p.u90.u,
                        p.u68.u,
                        p.ashrae14_u90.u,
                        p.baseline,
                    )
                )
        sim[seed] = (usage, true_by_month)
        print(f"  seed {seed} done", file=sys.stderr, flush=True)
    return rows, sim


# -- 2. real meters held out -------------------------------------------------------------------

REAL_METERS = (
    ("uk-electricity-hdd-only-hourly-sample-0", "uk-tempC-sample-0"),
    ("uk-electricity-hdd-only-hourly-sample-2", "uk-tempC-sample-1_2"),
    ("uk-gas-hdd-only-hourly-sample-0", "uk-tempC-sample-0"),
)


def opendsm_samples() -> Path | None:
    venv = REPO / "bench" / ".venv-opendsm"
    found = sorted(venv.glob("lib/python*/site-packages/opendsm/eemeter/samples"))
    return found[0] if found else None


def _read_csv(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [line.rstrip("\n").split(",") for line in fh][1:]


def real_meter(samples: Path, meter: str, temps: str) -> tuple[object, object]:
    """The meter as hourly and daily frames (UTC days, weekday/weekend day types)."""
    from processing.frames import HourlyData, daily_from_hourly, weekday

    rows = _read_csv(samples / f"{meter}.csv.gz")
    stamp = np.array([r[0][:19].replace(" ", "T") for r in rows], dtype="datetime64[m]")
    value = np.array([float(r[1]) if r[1] else np.nan for r in rows])
    hour = stamp.astype("datetime64[h]")
    hours, inverse = np.unique(hour, return_inverse=True)
    energy = np.bincount(inverse, weights=np.nan_to_num(value))
    bad = np.bincount(inverse, weights=~np.isfinite(value))
    energy = np.where(bad == 0, energy, np.nan)
    trows = _read_csv(samples / f"{temps}.csv.gz")
    t_hour = np.array([r[1][:13].replace(" ", "T") for r in trows], dtype="datetime64[h]")
    t_val = np.array([float(r[2]) if r[2] else np.nan for r in trows])
    grid = np.arange(hours.min(), hours.max() + 1)
    e = np.full(len(grid), np.nan)
    e[(hours - grid[0]).astype(np.int64)] = energy
    t = np.full(len(grid), np.nan)
    inside = (t_hour >= grid[0]) & (t_hour <= grid[-1])
    t[(t_hour[inside] - grid[0]).astype(np.int64)] = t_val[inside]
    day = grid.astype("datetime64[D]")
    how = weekday(day) * 24 + (grid - day.astype("datetime64[h]")).astype(np.int64)
    codes = np.where(weekday(day) < 5, 0, 1).astype(np.int64)
    ts = grid.astype("datetime64[ms]").astype(np.int64)
    hourly = HourlyData(ts, how, day, codes, t, e)
    return hourly, daily_from_hourly(hourly)


def _add_months(d: date, n: int) -> date:
    y, m = divmod(d.month - 1 + n, 12)
    return date(d.year + y, m + 1, 1)


def real_splits(
    daily: object, *, test_months: int = 12, step: int = 3
) -> list[tuple[date, date, date]]:
    """(baseline start, split, test end): 12-month baselines every `step` months."""
    first = daily.day[np.isfinite(daily.energy)].min().astype(object)  # type: ignore[attr-defined]
    last = daily.day[np.isfinite(daily.energy)].max().astype(object)  # type: ignore[attr-defined]
    start = _add_months(date(first.year, first.month, 1), 1)
    out = []
    while _add_months(start, 13) <= last:
        split = _add_months(start, 12)
        end = min(_add_months(split, test_months), date(last.year, last.month, 1))
        out.append((start, split, end))
        start = _add_months(start, step)
    return out


def real_rows(samples: Path, models: Sequence[str]) -> tuple[list[Row], dict[str, RealCase]]:
    from processing.models import (
        DailyChangePointModel,
        DailySettings,
        HourlySettings,
        HourlyTOWTModel,
    )
    from processing.savings import daily_savings, months_between, summarise, uncertainty_basis
    from processing.uncertainty import held_out_months

    rows: list[Row] = []
    cases: dict[str, RealCase] = {}
    for meter, temps in REAL_METERS:
        hourly, daily = real_meter(samples, meter, temps)
        for start, split, end in real_splits(daily):
            case = f"{meter.removesuffix('-hourly-sample-0').removesuffix('-hourly-sample-2')}{meter[-1]}@{start:%Y-%m}"
            cases[case] = (hourly, daily, start, split, end)
            base_d = daily.between(start, split)  # type: ignore[attr-defined]
            base_h = hourly.between(start, split)  # type: ignore[attr-defined]
            rep_d = daily.between(split, end)  # type: ignore[attr-defined]
            rep_h = hourly.between(split, end)  # type: ignore[attr-defined]
            for kind in models:
                model: DailyChangePointModel | HourlyTOWTModel
                try:
                    if kind == "daily":
                        model = DailyChangePointModel(DailySettings(day_types="weekday")).fit(
                            base_d
                        )
                        model.heldout = held_out_months(model, base_d)
                    else:
                        model = HourlyTOWTModel(HourlySettings(day_types="weekday")).fit(base_h)
                        model.heldout = held_out_months(model, base_d, base_h)
                except Exception as exc:  # a meter a model cannot fit is reported, not fatal
                    print(f"  {case} {kind}: {exc}", file=sys.stderr)
                    continue
                assert model.stats is not None
                ds = daily_savings(model, rep_d, rep_h, np.zeros(len(rep_d), dtype=bool))
                basis = uncertainty_basis(model)
                periods = [
                    summarise(
                        ds, model.stats, model.GRANULARITY, label=lab, start=a, end=b, heldout=basis
                    )
                    for lab, a, b in months_between(split, end)
                ]
                if (end - split).days >= 365:
                    periods.append(
                        summarise(
                            ds,
                            model.stats,
                            model.GRANULARITY,
                            label="year",
                            start=split,
                            end=_add_months(split, 12),
                            heldout=basis,
                        )
                    )
                for p in periods:
                    if p.days_used < 0.8 * p.days:
                        continue
                    assert p.ashrae14_u90 is not None
                    rows.append(
                        Row(
                            "real",
                            "epcmon",
                            kind,
                            case,
                            p.label,
                            0.0,
                            p.avoided,
                            p.u90.u,
                            p.u68.u,
                            p.ashrae14_u90.u,
                            p.baseline,
                        )
                    )
    return rows, cases


# -- 3. opendsm on the same data ---------------------------------------------------------------


def _write_csv(path: Path, times: np.ndarray, temp_c: np.ndarray, energy: np.ndarray) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("datetime,temperature,observed\n")
        for t, c, e in zip(times, temp_c, energy, strict=True):
            tf = "" if not np.isfinite(c) else f"{c * 9 / 5 + 32:.4f}"
            ef = "" if not np.isfinite(e) else f"{e:.6f}"
            fh.write(f"{t}Z,{tf},{ef}\n")


def export_case(
    work: Path,
    name: str,
    kind: str,
    hourly: Any,
    daily: Any,
    periods: tuple[date, date, date],
    tz: str,
    utc_offset_h: int,
) -> dict[str, Any]:
    """One baseline/reporting pair as opendsm reads it (local timestamps in UTC, °F)."""
    start, split, end = periods
    files = {}
    for part, (a, b) in (("baseline", (start, split)), ("reporting", (split, end))):
        if kind == "daily":
            d = daily.between(a, b)
            times = d.day.astype("datetime64[ms]") - np.timedelta64(utc_offset_h, "h")
            rows = (times, d.temperature, d.energy)
        else:
            h = hourly.between(a, b)
            rows = (np.asarray(h.ts_ms, dtype="datetime64[ms]"), h.temperature, h.energy)
        files[part] = f"{name}-{kind}-{part}.csv"
        _write_csv(work / files[part], *rows)
    from processing.savings import months_between

    return {
        "model": kind,
        "tz": tz,
        **files,
        "months": [label for label, _, _ in months_between(split, end)],
    }


def opendsm_rows(
    work: Path,
    sim: dict[int, tuple[Any, dict[str, float]]],
    real: dict[str, RealCase],
    models: Sequence[str],
) -> tuple[list[Row], float] | None:
    python = REPO / "bench" / ".venv-opendsm" / "bin" / "python"
    if not python.exists():
        from bench.baselines import ensure_opendsm_venv

        if ensure_opendsm_venv() is None:
            return None
    cases: dict[str, Any] = {}
    truth: dict[str, dict[str, float]] = {}
    for seed, (usage, true_by_month) in sim.items():
        for kind in models:
            name = f"sim{seed}-{kind}"
            cases[name] = export_case(
                work,
                f"sim{seed}",
                kind,
                usage.hourly,
                usage.daily,
                (HISTORY[0].date(), *REPORTING),
                "Asia/Shanghai",
                8,
            )
            truth[name] = true_by_month
    for case, (hourly, daily, start, split, end) in real.items():
        for kind in models:
            name = f"{case}-{kind}"
            cases[name] = export_case(
                work, case.replace("@", "-"), kind, hourly, daily, (start, split, end), "UTC", 0
            )
            truth[name] = {}
    (work / "cases.json").write_text(json.dumps(cases))
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(python), str(REPO / "bench" / "opendsm_side.py"), "--coverage", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        return None
    result = json.loads((work / "coverage.json").read_text())
    rows: list[Row] = []
    for name, res in result.items():
        if "error" in res:
            print(f"  opendsm {name}: {res['error']}", file=sys.stderr)
            continue
        kind = cases[name]["model"]
        source = "sim" if name.startswith("sim") else "real"
        case = name.removesuffix(f"-{kind}")
        for label, m in res["months"].items():
            if m["u90"] is None:
                continue
            rows.append(
                Row(
                    source,
                    "opendsm",
                    kind,
                    case.removeprefix("sim"),
                    label,
                    truth[name].get(label, 0.0),
                    m["predicted"] - m["observed"],
                    m["u90"],
                    m["u68"] if m["u68"] is not None else m["u90"],
                    m["u90"],
                    m["predicted"],
                )
            )
    return rows, took


# -- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    months: int
    in90: float
    in68: float
    ashrae_in90: float
    years: int
    year_in90: int
    rmse_rel: float
    width90_rel: float


def score(rows: Sequence[Row]) -> Score:
    """Coverage of months and years, relative RMS error and median relative 90 % width."""
    months = [r for r in rows if r.period != "year"]
    years = [r for r in rows if r.period == "year"]

    def inside(rs: Sequence[Row], attr: str) -> float:
        if not rs:
            return float("nan")
        return float(np.mean([abs(r.error) <= getattr(r, attr) for r in rs]))

    rel = np.array([r.error / r.baseline for r in months if r.baseline])
    widths = [r.u90 / r.baseline for r in months if r.baseline]
    return Score(
        months=len(months),
        in90=inside(months, "u90"),
        in68=inside(months, "u68"),
        ashrae_in90=inside(months, "ashrae_u90"),
        years=len(years),
        year_in90=sum(abs(r.error) <= r.u90 for r in years),
        rmse_rel=float(np.sqrt(np.mean(rel**2))) if len(rel) else float("nan"),
        width90_rel=float(np.median(widths)) if widths else float("nan"),
    )


def by_month(rows: Sequence[Row]) -> dict[str, tuple[float, float, float, float]]:
    """Reporting month -> (mean relative error, RMS relative error, share inside the stated
    90 % interval, share inside the ASHRAE 14 figure)."""
    out = {}
    for label in sorted({r.period for r in rows if r.period != "year"}):
        rs = [r for r in rows if r.period == label]
        rel = np.array([r.error / r.baseline for r in rs])
        out[label] = (
            float(rel.mean()),
            float(np.sqrt(np.mean(rel**2))),
            float(np.mean([abs(r.error) <= r.u90 for r in rs])),
            float(np.mean([abs(r.error) <= r.ashrae_u90 for r in rs])),
        )
    return out


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:.0%}"


def table(rows: Sequence[Row], models: Sequence[str]) -> list[str]:
    lines = [
        "| data | model | months | stated 90 % interval holds the truth (68 %) | ASHRAE 14 figure, 90 % | "
        "opendsm 1.2.7, 90 % (same cases) | years inside (stated) | RMS monthly error, epcmon / opendsm | median 90 % half-width |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source, label in (("sim", "simulator truth"), ("real", "real meters held out")):
        for kind in models:
            ours = [r for r in rows if r.source == source and r.who == "epcmon" and r.model == kind]
            theirs = [
                r for r in rows if r.source == source and r.who == "opendsm" and r.model == kind
            ]
            if not ours:
                continue
            s = score(ours)
            if theirs:
                same = {r.case for r in theirs}
                t = score(theirs)
                o = score([r for r in ours if r.case in same])
                them = f"{_pct(t.in90)} (epcmon on the same {len(same)} cases: {_pct(o.in90)})"
                rmse = f"{s.rmse_rel:.1%} / {t.rmse_rel:.1%}"
            else:
                them, rmse = "–", f"{s.rmse_rel:.1%} / –"
            lines.append(
                f"| {label} | {kind} | {s.months} | **{_pct(s.in90)}** ({_pct(s.in68)}) | "
                f"{_pct(s.ashrae_in90)} | {them} | {s.year_in90}/{s.years} | {rmse} | "
                f"{s.width90_rel:.1%} |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="simulator seeds (10)")
    parser.add_argument("--no-real", action="store_true", help="skip the real meters")
    parser.add_argument("--no-opendsm", action="store_true", help="skip opendsm")
    parser.add_argument(
        "--opendsm-seeds", type=int, default=3, help="seeds and real meters opendsm fits (3)"
    )
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores")
    t0 = time.perf_counter()
    rows, sim = simulator_rows(range(args.seeds), MODELS)
    t_sim = time.perf_counter() - t0
    real: dict[str, RealCase] = {}
    samples = None if args.no_real else opendsm_samples()
    if samples is not None:
        real_r, real = real_rows(samples, MODELS)
        rows += real_r
    elif not args.no_real:
        print("real meters: opendsm's package data not found (bench/.venv-opendsm)")
    opendsm_s = None
    if not args.no_opendsm and args.opendsm_seeds > 0:
        work = Path(tempfile.mkdtemp(prefix="bench-coverage-"))
        try:
            first: dict[str, tuple[str, RealCase]] = {}
            for case, value in real.items():  # each meter's first split
                first.setdefault(case.split("@")[0], (case, value))
            pick_real = dict(list(first.values())[: args.opendsm_seeds])
            pick_sim = {k: sim[k] for k in list(sim)[: args.opendsm_seeds]}
            got = opendsm_rows(work, pick_sim, pick_real, MODELS)
            if got is not None:
                rows += got[0]
                opendsm_s = got[1]
        finally:
            shutil.rmtree(work, ignore_errors=True)
    took = time.perf_counter() - t0

    print()
    print("\n".join(table(rows, MODELS)))
    print()
    print(
        "| reporting month | "
        + " | ".join(f"{k}: bias / RMS / inside 90 % (ASHRAE 14)" for k in MODELS)
        + " |"
    )
    print("|---|" + "---|" * len(MODELS))
    per = {
        k: by_month([r for r in rows if r.source == "sim" and r.who == "epcmon" and r.model == k])
        for k in MODELS
    }
    for label in per[MODELS[0]]:
        cells = []
        for k in MODELS:
            b = per[k].get(label)
            cells.append(
                "–" if b is None else f"{b[0]:+.1%} / {b[1]:.1%} / {b[2]:.0%} ({b[3]:.0%})"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    extra = f", opendsm {opendsm_s:.0f} s" if opendsm_s is not None else ""
    print(f"{args.seeds} seeds x 12 months in {t_sim:.1f} s; all {took:.1f} s{extra}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
from zoneinfo import ZoneInfo

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SITE_FILE = REPO / "sites" / "luan-admin-center.toml"
CONTRACT = "epc-2025-01"
HISTORY = (datetime(2024, 7, 1, tzinfo=UTC), datetime(2026, 7, 2, tzinfo=UTC))
REPORTING = (date(2025, 7, 1), date(2026, 7, 1))
MODELS = ("daily", "hourly")


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


def simulated_case(seed: int) -> tuple[object, object, dict[np.datetime64, float], dict[np.datetime64, float]]:
    """(site, usage over both years, true savings by local day, counterfactual by day)."""
    from core.config import contract_weather_station, load_site
    from processing.contract import _load
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
    cf = np.sum([history.counterfactual_kwh[m] for m in contract.meters], axis=0)
    true_by_day = dict(zip(uniq, np.bincount(inverse, weights=true), strict=True))
    cf_by_day = dict(zip(uniq, np.bincount(inverse, weights=cf), strict=True))
    with DuckDBStore(":memory:") as store:
        store.write(history.readings)
        usage = _load(site, contract, store, "electricity", HISTORY[0].date(), REPORTING[1])
    return site, usage, true_by_day, cf_by_day


def simulator_rows(seeds: Iterable[int], models: Sequence[str]) -> tuple[list[Row], dict[int, object]]:
    from processing.contract import fit_baseline_from_usage, savings_from_usage

    rows: list[Row] = []
    usages: dict[int, object] = {}
    for seed in seeds:
        site, usage, true_by_day, _ = simulated_case(seed)
        usages[seed] = usage
        contract = site.contract(CONTRACT)  # type: ignore[attr-defined]
        for kind in models:
            baseline = fit_baseline_from_usage(contract, usage, model=kind)  # type: ignore[arg-type]
            result = savings_from_usage(
                contract, baseline, usage, start=REPORTING[0], end=REPORTING[1]  # type: ignore[arg-type]
            )
            for p in (*result.months, result.total):
                sel = [d for d in true_by_day if p.start <= d.astype(object) < p.end]
                truth = float(sum(true_by_day[d] for d in sel))
                assert p.ashrae14_u90 is not None
                rows.append(
                    Row(
                        "sim",
                        "epcmon",
                        kind,
                        str(seed),
                        p.label if p.label != "total" else "year",
                        truth,
                        p.avoided,
                        p.u90.u,
                        p.u68.u,
                        p.ashrae14_u90.u,
                        p.baseline,
                    )
                )
        print(f"  seed {seed} done", file=sys.stderr, flush=True)
    return rows, usages


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


def real_splits(daily: object, *, test_months: int = 12, step: int = 3) -> list[tuple[date, date, date]]:
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


def real_rows(samples: Path, models: Sequence[str]) -> tuple[list[Row], dict[str, object]]:
    from processing.models import DailyChangePointModel, DailySettings, HourlySettings, HourlyTOWTModel
    from processing.savings import daily_savings, months_between, summarise, uncertainty_basis
    from processing.uncertainty import held_out_months

    rows: list[Row] = []
    cases: dict[str, object] = {}
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
                try:
                    if kind == "daily":
                        model = DailyChangePointModel(DailySettings(day_types="weekday")).fit(base_d)
                        model.heldout = held_out_months(model, base_d)
                    else:
                        model = HourlyTOWTModel(HourlySettings(day_types="weekday")).fit(base_h)
                        model.heldout = held_out_months(model, base_d, base_h)
                except Exception as exc:  # noqa: BLE001 - a meter a model cannot fit is reported
                    print(f"  {case} {kind}: {exc}", file=sys.stderr)
                    continue
                assert model.stats is not None
                ds = daily_savings(model, rep_d, rep_h, np.zeros(len(rep_d), dtype=bool))
                basis = uncertainty_basis(model)
                periods = [
                    summarise(ds, model.stats, model.GRANULARITY, label=lab, start=a, end=b, heldout=basis)
                    for lab, a, b in months_between(split, end)
                ]
                if (end - split).days >= 365:
                    periods.append(
                        summarise(ds, model.stats, model.GRANULARITY, label="year", start=split, end=_add_months(split, 12), heldout=basis)
                    )
                for p in periods:
                    if p.days_used < 0.8 * p.days:
                        continue
                    assert p.ashrae14_u90 is not None
                    rows.append(
                        Row("real", "epcmon", kind, case, p.label, 0.0, p.avoided, p.u90.u, p.u68.u, p.ashrae14_u90.u, p.baseline)
                    )
    return rows, cases


# -- scoring ---------------------------------------------------------------------------------


def score(rows: Sequence[Row]) -> dict[str, float]:
    months = [r for r in rows if r.period != "year"]
    years = [r for r in rows if r.period == "year"]

    def share(rs: Sequence[Row], attr: str, k: float = 1.0) -> float:
        return float(np.mean([abs(r.error) <= k * getattr(r, attr) for r in rs])) if rs else float("nan")

    rel = np.array([r.error / r.baseline for r in months if r.baseline])
    return {
        "months": len(months),
        "in90": share(months, "u90"),
        "in68": share(months, "u68"),
        "ashrae_in90": share(months, "ashrae_u90"),
        "years": len(years),
        "year_in90": sum(abs(r.error) <= r.u90 for r in years),
        "year_ashrae_in90": sum(abs(r.error) <= r.ashrae_u90 for r in years),
        "rmse_rel": float(np.sqrt(np.mean(rel**2))) if len(rel) else float("nan"),
        "width90_rel": float(np.median([r.u90 / r.baseline for r in months if r.baseline])) if months else float("nan"),
    }


def bias_by_month(rows: Sequence[Row]) -> dict[str, tuple[float, float, float]]:
    """Calendar month -> (mean relative error, share inside the 90 % interval, ASHRAE's share)."""
    out = {}
    for label in sorted({r.period for r in rows if r.period != "year"}):
        rs = [r for r in rows if r.period == label]
        out[label] = (
            float(np.mean([r.error / r.baseline for r in rs])),
            float(np.mean([abs(r.error) <= r.u90 for r in rs])),
            float(np.mean([abs(r.error) <= r.ashrae_u90 for r in rs])),
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--no-real", action="store_true")
    parser.add_argument("--no-opendsm", action="store_true")
    parser.add_argument("--opendsm-seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write every row here")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows, usages = simulator_rows(range(args.seeds), MODELS)
    for kind in MODELS:
        s = score([r for r in rows if r.model == kind])
        print(kind, s)
        for k, v in bias_by_month([r for r in rows if r.model == kind]).items():
            print(f"   {k} bias {v[0]:+.1%} in90 {v[1]:.0%} ashrae {v[2]:.0%}")
    if not args.no_real and (samples := opendsm_samples()) is not None:
        real, _ = real_rows(samples, MODELS)
        rows += real
        for kind in MODELS:
            print("real", kind, score([r for r in real if r.model == kind]))
    print(f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

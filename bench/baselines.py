"""Benchmark of the baseline models, side by side with opendsm 1.2.7 in the same run.

    .venv/bin/python -m bench.baselines            # the full run (a few minutes)
    .venv/bin/python -m bench.baselines --quick    # seconds, without opendsm: a smoke test

Measures, on synthetic office buildings (processing.testing: day-type loads, °C change points,
AR(1) noise; real Chinese holidays and make-up workdays), two years each, the first the
baseline and the second the test year:

1. fit time (CPU time of the fitting process, both sides: the machine is shared, and wall
   time would count the other tenants) per meter-year of our daily model (full selection 1P..5P over both day-type
   segments) and of our hourly time-of-week-and-temperature model; opendsm's daily and hourly
   models on the same data (°F, in its own venv `bench/.venv-opendsm`, created here on first
   use with `pip install opendsm==1.2.7 "multimethod<2"`, then cached);
2. 1,000 meters, daily + hourly fits, on 2 worker processes (wall time);
3. accuracy: out-of-sample CV(RMSE) and NMBE on the test year, ours and opendsm's;
4. savings on opendsm's bundled sample `il-electricity-cdd-hdd-daily` (synthetic, 10 %
   reduction from 10,000 to 9,000 kWh/year), fitted by both on the same days.
"""

from __future__ import annotations

import os

# Every fit here is a small problem: single-threaded BLAS on both sides (the environment is
# inherited by the worker processes and by opendsm's). OpenBLAS's idle threads otherwise spin
# and cost more than the fits themselves; the fleet parallelises over processes instead.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from core.calendar import WorkCalendar
from processing.frames import DailyData, HourlyData, daily_from_hourly, day_type_codes
from processing.models import DailyChangePointModel, DailySettings, HourlyTOWTModel
from processing.stats import fit_stats
from processing.testing import Building, synthetic_hourly

REPO = Path(__file__).resolve().parents[1]
OPENDSM_VENV = REPO / "bench" / ".venv-opendsm"
OPENDSM_PACKAGES = ("opendsm==1.2.7", "multimethod<2")
TZ = "Asia/Shanghai"
START, SPLIT, END = date(2024, 7, 1), date(2025, 7, 1), date(2026, 7, 1)


@dataclass(frozen=True)
class Sizes:
    timing_meters: int
    accuracy_meters: int
    fleet: int


DEFAULT = Sizes(timing_meters=40, accuracy_meters=8, fleet=1000)
QUICK = Sizes(timing_meters=3, accuracy_meters=2, fleet=8)


def building(seed: int) -> Building:
    rng = np.random.default_rng(10_000 + seed)
    scale = float(rng.uniform(0.2, 3.0))
    return Building(
        base=(21_000 * scale, 9_000 * scale, 7_500 * scale, 19_500 * scale),
        heat_cp=float(rng.uniform(10, 15)),
        cool_cp=float(rng.uniform(18, 23)),
        heat_slope=(700 * scale * float(rng.uniform(0.5, 1.5)), 250 * scale),
        cool_slope=(1_100 * scale * float(rng.uniform(0.5, 1.5)), 350 * scale),
        noise_cv=float(rng.uniform(0.02, 0.08)),
    )


def meter(seed: int) -> tuple[HourlyData, DailyData]:
    data = synthetic_hourly(START, END, tz=TZ, seed=seed, building=building(seed)).data
    assert isinstance(data, HourlyData)
    return data, daily_from_hourly(data)


def _fit_both(seed: int) -> tuple[float, float, float]:
    """Generate one meter, fit both models; (generation s, daily fit s, hourly fit s) in CPU
    time of this process: the machine is shared, and wall time would count the others."""
    t0 = time.process_time()
    hourly, daily = meter(seed)
    train_h, train_d = hourly.between(START, SPLIT), daily.between(START, SPLIT)
    t1 = time.process_time()
    DailyChangePointModel().fit(train_d)
    t2 = time.process_time()
    HourlyTOWTModel().fit(train_h)
    t3 = time.process_time()
    return t1 - t0, t2 - t1, t3 - t2


def _median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) * 1000


def ensure_opendsm_venv() -> Path | None:
    """The opendsm venv's python, created and cached on first use; None if it cannot be."""
    python = OPENDSM_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {OPENDSM_VENV} with {' '.join(OPENDSM_PACKAGES)} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(OPENDSM_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *OPENDSM_PACKAGES], check=True
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"opendsm venv not available: {exc}", file=sys.stderr)
        shutil.rmtree(OPENDSM_VENV, ignore_errors=True)
        return None
    return python


def _export(work: Path, seeds: Sequence[int]) -> None:
    """Each meter as opendsm reads it: local timestamps, °F, kWh (hourly and daily)."""
    for seed in seeds:
        hourly, daily = meter(seed)
        name = f"meter-{seed:04d}"
        h_times = np.asarray(hourly.ts_ms, dtype="datetime64[ms]")
        with open(work / f"{name}-hourly.csv", "w", encoding="utf-8") as fh:
            fh.write("datetime,temperature,observed\n")
            for t, c, e in zip(h_times, hourly.temperature, hourly.energy, strict=True):
                fh.write(f"{t}Z,{c * 9 / 5 + 32:.4f},{e:.6f}\n")
        # daily rows at local midnight (Asia/Shanghai = UTC+8, no DST)
        d_times = daily.day.astype("datetime64[ms]") - np.timedelta64(8, "h")
        with open(work / f"{name}-daily.csv", "w", encoding="utf-8") as fh:
            fh.write("datetime,temperature,observed\n")
            for t, c, e in zip(d_times, daily.temperature, daily.energy, strict=True):
                fh.write(f"{t}Z,{c * 9 / 5 + 32:.4f},{e:.6f}\n")
    (work / "config.json").write_text(json.dumps({"split": SPLIT.isoformat(), "tz": TZ}))


def _oos(observed: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    s = fit_stats(observed, predicted, p=0)
    return s.cvrmse, s.nmbe


def _il_ours(work: Path) -> dict[str, float]:
    """Our daily model on the IL sample's days (°F -> °C; US days: weekday/weekend split)."""
    frames = {}
    for name in ("baseline", "reporting"):
        rows = np.genfromtxt(
            work / f"il-{name}.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
        )
        days = np.array([str(r[0])[:10] for r in rows], dtype="datetime64[D]")
        temp_c = (np.array([float(r[1]) for r in rows]) - 32) * 5 / 9
        kwh = np.array([float(r[2]) if str(r[2]) != "nan" else np.nan for r in rows])
        codes = day_type_codes(days, WorkCalendar().day_type)
        frames[name] = DailyData(days, temp_c, codes, kwh)
    t0 = time.process_time()
    model = DailyChangePointModel(DailySettings(day_types="weekday")).fit(frames["baseline"])
    fit_s = time.process_time() - t0
    rep = frames["reporting"]
    predicted = model.predict(rep)
    ok = np.isfinite(predicted) & np.isfinite(rep.energy)
    from processing.savings import daily_savings, summarise

    ds = daily_savings(model, rep.take(ok), None, np.zeros(int(ok.sum()), dtype=bool))
    assert model.stats is not None
    total = summarise(
        ds,
        model.stats,
        "daily",
        label="",
        start=date.fromisoformat(str(rep.day[0])),
        end=date.fromisoformat(str(rep.day[-1] + 1)),
    )
    return {
        "fit_s": fit_s,
        "savings_kwh": total.avoided,
        "u90": total.u90.u,
        "observed_kwh": float(rep.energy[ok].sum()),
        "days": int(ok.sum()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, no opendsm: a smoke test"
    )
    parser.add_argument("--no-opendsm", action="store_true", help="skip the opendsm side")
    parser.add_argument("--fleet", type=int, default=None, help="meters in the fleet run")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULT
    fleet = args.fleet or sizes.fleet
    work = Path(tempfile.mkdtemp(prefix="bench-baselines-", dir=args.dir))
    try:
        return _run(sizes, fleet, work, with_opendsm=not (args.quick or args.no_opendsm))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(sizes: Sizes, fleet: int, work: Path, *, with_opendsm: bool) -> int:
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores")
    # 1. fit time per meter-year, ours (warm: one fit first)
    _fit_both(0)
    times = [_fit_both(seed) for seed in range(1, sizes.timing_meters + 1)]
    daily_ms = _median_ms([t[1] for t in times])
    hourly_ms = _median_ms([t[2] for t in times])

    # 2. the fleet on 2 worker processes
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        fleet_times = pool.map(_fit_both, range(1000, 1000 + fleet), chunksize=8)
    fleet_wall = time.perf_counter() - t0
    fit_only = sum(t[1] + t[2] for t in fleet_times) / 2

    # 3. accuracy on the test year, ours
    seeds = list(range(1, sizes.accuracy_meters + 1))
    ours: dict[str, list[tuple[float, float]]] = {"daily": [], "daily-weekday": [], "hourly": []}
    tests = {}
    for seed in seeds:
        hourly, daily = meter(seed)
        th, td = hourly.between(SPLIT, END), daily.between(SPLIT, END)
        tests[seed] = (th, td)
        dm = DailyChangePointModel().fit(daily.between(START, SPLIT))
        dw = DailyChangePointModel(DailySettings(day_types="weekday")).fit(
            daily.between(START, SPLIT)
        )
        hm = HourlyTOWTModel().fit(hourly.between(START, SPLIT))
        ours["daily"].append(_oos(td.energy, dm.predict(td)))
        ours["daily-weekday"].append(_oos(td.energy, dw.predict(td)))
        ours["hourly"].append(_oos(th.energy, hm.predict(th)))

    theirs: dict[str, list[tuple[float, float]]] = {"daily": [], "hourly": []}
    their_times: dict[str, list[float]] = {"daily": [], "hourly": []}
    il_theirs = il_ours = None
    import_s = None
    if with_opendsm:
        python = ensure_opendsm_venv()
        if python is not None:
            _export(work, seeds)
            t0 = time.perf_counter()
            done = subprocess.run(
                [str(python), str(REPO / "bench" / "opendsm_side.py"), str(work)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                return 1
            side = json.loads((work / "opendsm.json").read_text())
            import_s = side["import_s"]
            for seed in seeds:
                result = side["meters"][f"meter-{seed:04d}"]
                th, td = tests[seed]
                for freq, rows in (("daily", td), ("hourly", th)):
                    r = result[freq]
                    predicted = np.array([np.nan if v is None else v for v in r["predicted"]])
                    n = min(len(predicted), len(rows))
                    theirs[freq].append(_oos(rows.energy[:n], predicted[:n]))
                    their_times[freq].append(r["fit_s"])
            il_theirs = side["il"]
            il_ours = _il_ours(work)

    def mean(rows: list[tuple[float, float]], i: int) -> float:
        return float(np.mean([r[i] for r in rows]))

    print()
    print("| measure | epcmon | opendsm 1.2.7 (same run) | target |")
    print("|---|---|---|---|")
    d_them = (
        f"{statistics.median(their_times['daily']) * 1000:,.0f} ms" if their_times["daily"] else "–"
    )
    h_them = (
        f"{statistics.median(their_times['hourly']) * 1000:,.0f} ms"
        if their_times["hourly"]
        else "–"
    )
    speedup_d = (
        f" ({statistics.median(their_times['daily']) * 1000 / daily_ms:,.0f}x faster)"
        if their_times["daily"]
        else ""
    )
    speedup_h = (
        f" ({statistics.median(their_times['hourly']) * 1000 / hourly_ms:,.0f}x faster)"
        if their_times["hourly"]
        else ""
    )
    print(
        f"| daily model fit, CPU time per meter-year (median of {len(times)}) | {daily_ms:.1f} ms{speedup_d} | {d_them} | ≤ 10 ms, ≥ 100x |"
    )
    print(
        f"| hourly model fit, CPU time per meter-year (median of {len(times)}) | {hourly_ms:.1f} ms{speedup_h} | {h_them} | ≤ 200 ms |"
    )
    projected = ""
    if their_times["daily"]:
        per = statistics.median(their_times["daily"]) + statistics.median(their_times["hourly"])
        projected = f"~{per * fleet / 2 / 60:,.0f} min (projected from its fit times)"
    print(
        f"| {fleet:,} meters, daily + hourly, 2 processes | {fit_only:,.1f} s of fitting (CPU / 2), "
        f"{fleet_wall:,.1f} s wall incl. generating the data | {projected or '–'} | ≤ 5 min |"
    )
    if import_s is not None:
        print(f"| import time | – | {import_s:.1f} s | – |")
    for key, label in (("daily", "daily"), ("hourly", "hourly")):
        o = ours[key]
        t = theirs.get(key, [])
        their = f"{mean(t, 0):.1%} / {mean(t, 1):+.2%}" if t else "–"
        print(
            f"| out-of-sample CV(RMSE) / NMBE, {label}, {len(o)} meters, test year | "
            f"{mean(o, 0):.1%} / {mean(o, 1):+.2%} | {their} | – |"
        )
    o = ours["daily-weekday"]
    print(
        f"| the same, our daily model without holidays (weekday/weekend only) | "
        f"{mean(o, 0):.1%} / {mean(o, 1):+.2%} | – | – |"
    )
    if il_theirs is not None and il_ours is not None:
        truth = il_theirs["reporting_observed_kwh"] / 9.0  # 10 % less than the counterfactual
        print(
            f"| savings on `il-electricity-cdd-hdd-daily` ({il_ours['days']} reporting days; "
            f"true ≈ {truth:,.0f} kWh) | {il_ours['savings_kwh']:,.0f} kWh ± {il_ours['u90']:,.0f} (90 %) "
            f"| {il_theirs['savings_kwh']:,.0f} kWh | – |"
        )
        print(
            f"| daily fit on the IL sample | {il_ours['fit_s'] * 1000:.1f} ms | {il_theirs['fit_s'] * 1000:,.0f} ms | – |"
        )
    ok = daily_ms <= 10 and hourly_ms <= 200 and fit_only <= 300 * fleet / 1000
    print()
    print("targets met" if ok else "a target was missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

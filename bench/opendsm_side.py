# mypy: ignore-errors
"""The opendsm 1.2.7 side of `bench.baselines` and `bench.coverage`: runs in its own venv
(bench/.venv-opendsm), never imported by epcmon. Reads the meters `bench.baselines` exported
(°F, as opendsm expects), fits opendsm's daily and hourly models on the same split, and prints
JSON: fit times, test-year predictions, and the savings on opendsm's bundled sample
`il-electricity-cdd-hdd-daily` (whose days it also exports for our side to fit).

    bench/.venv-opendsm/bin/python bench/opendsm_side.py WORKDIR
    bench/.venv-opendsm/bin/python bench/opendsm_side.py --coverage WORKDIR

`--coverage`: the cases `bench.coverage` exported (`cases.json`: per case and model a baseline
and a reporting CSV and the months to score); for each reporting month opendsm's predicted
and observed sums and its own 90 % / 68 % savings uncertainty (`ReportingMetrics`, ASHRAE 14
with its n'), written to `coverage.json`.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
# Run as a script, this file's folder is sys.path[0], and bench/coverage.py there would shadow
# the `coverage` package that numba (under opendsm) imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

t_import = time.perf_counter()
import pandas as pd  # noqa: E402
from opendsm import eemeter as em  # noqa: E402
from opendsm.eemeter.samples.load import load_sample  # noqa: E402

IMPORT_S = time.perf_counter() - t_import

# opendsm 1.2.7's hourly model fails *after* fitting when the elastic net zeroes every
# coefficient of one hour of the day (a flat night hour): its BaselineMetrics insists on
# num_model_params >= 1. Clamp that count to 1 so the fit completes; predictions are not
# affected (the metrics are computed after the model is fitted).
import opendsm.eemeter.models.hourly.model as _hourly  # noqa: E402

_Metrics = _hourly.BaselineMetrics


def _metrics(*args, num_model_params=1, **kwargs):
    return _Metrics(*args, num_model_params=max(int(num_model_params), 1), **kwargs)


_hourly.BaselineMetrics = _metrics


def _frame(path: Path, tz: str) -> pd.DataFrame:
    df = pd.read_csv(path)
    df.index = pd.DatetimeIndex(pd.to_datetime(df["datetime"], utc=True)).tz_convert(tz)
    return df[["temperature", "observed"]]


def meters(work: Path, split: str, tz: str) -> dict:
    out = {}
    for daily_file in sorted(work.glob("meter-*-daily.csv")):
        name = daily_file.name.removesuffix("-daily.csv")
        result = {}
        for freq in ("daily", "hourly"):
            df = _frame(work / f"{name}-{freq}.csv", tz)
            cut = pd.Timestamp(split, tz=tz)
            train, test = df[df.index < cut], df[df.index >= cut]
            if freq == "daily":
                baseline = em.DailyBaselineData(train, is_electricity_data=True)
                reporting = em.DailyReportingData(test, is_electricity_data=True)
                model = em.DailyModel()
            else:
                baseline = em.HourlyBaselineData(train, is_electricity_data=True)
                reporting = em.HourlyReportingData(test, is_electricity_data=True)
                model = em.HourlyModel()
            t0 = time.process_time()  # CPU time, as on our side
            model.fit(baseline, ignore_disqualification=True)
            fit_s = time.process_time() - t0
            predicted = model.predict(reporting)
            result[freq] = {
                "fit_s": fit_s,
                "index": [t.isoformat() for t in predicted.index],
                "predicted": [None if pd.isna(v) else float(v) for v in predicted["predicted"]],
            }
        out[name] = result
    return out


def _utc(value) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def il_sample(work: Path) -> dict:
    meter, temperature, meta = load_sample("il-electricity-cdd-hdd-daily")
    blackout_start = _utc(meta["blackout_start_date"])
    blackout_end = _utc(meta["blackout_end_date"])
    baseline_meter = meter[
        (meter.index >= blackout_start - pd.Timedelta(days=365)) & (meter.index < blackout_start)
    ]
    reporting_meter = meter[
        (meter.index >= blackout_end) & (meter.index < blackout_end + pd.Timedelta(days=365))
    ]
    baseline = em.DailyBaselineData.from_series(
        baseline_meter, temperature, is_electricity_data=True
    )
    reporting = em.DailyReportingData.from_series(
        reporting_meter, temperature, is_electricity_data=True
    )
    t0 = time.process_time()
    model = em.DailyModel().fit(baseline, ignore_disqualification=True)
    fit_s = time.process_time() - t0
    predicted = model.predict(reporting)
    savings = float((predicted["predicted"] - predicted["observed"]).sum())
    # the same days for our side: daily mean °F and kWh, as opendsm prepared them
    for name, data in (("baseline", baseline), ("reporting", reporting)):
        df = data.df[["temperature", "observed"]].copy()
        df.index.name = "datetime"
        df.reset_index().to_csv(work / f"il-{name}.csv", index=False)
    return {
        "fit_s": fit_s,
        "savings_kwh": savings,
        "reporting_observed_kwh": float(predicted["observed"].sum()),
        "reporting_days": int(predicted["observed"].notna().sum()),
        "annual_baseline_total_load": meta["annual_baseline_total_load"],
        "annual_reporting_total_load": meta["annual_reporting_total_load"],
    }


def _metrics_unc(model, month_df, freq: str, level: float):
    from opendsm.common.metrics import ReportingMetrics

    try:
        rm = ReportingMetrics(
            baseline_metrics=model.baseline_metrics,
            reporting_df=month_df,
            data_frequency=freq,
            confidence_level=level,
            t_tail=2,
        )
        unc = rm.total_savings_uncertainty
    except Exception:
        return None
    return None if unc is None or pd.isna(unc) else float(unc)


def coverage(work: Path) -> dict:
    cases = json.loads((work / "cases.json").read_text())
    out = {}
    for name, case in cases.items():
        freq = case["model"]
        tz = case["tz"]
        base = _frame(work / case["baseline"], tz)
        rep = _frame(work / case["reporting"], tz)
        if freq == "daily":
            baseline = em.DailyBaselineData(base, is_electricity_data=True)
            reporting = em.DailyReportingData(rep, is_electricity_data=True)
            model = em.DailyModel()
        else:
            baseline = em.HourlyBaselineData(base, is_electricity_data=True)
            reporting = em.HourlyReportingData(rep, is_electricity_data=True)
            model = em.HourlyModel()
        t0 = time.process_time()
        try:
            model.fit(baseline, ignore_disqualification=True)
            predicted = model.predict(reporting, ignore_disqualification=True)
        except Exception as exc:
            out[name] = {"error": repr(exc)}
            continue
        fit_s = time.process_time() - t0
        df = predicted[["observed", "predicted"]].copy()
        months = {}
        for label in case["months"]:
            sel = df[df.index.strftime("%Y-%m") == label]
            sel = sel[sel["observed"].notna() & sel["predicted"].notna()]
            if len(sel) == 0:
                continue
            months[label] = {
                "predicted": float(sel["predicted"].sum()),
                "observed": float(sel["observed"].sum()),
                "u90": _metrics_unc(model, sel, freq, 0.90),
                "u68": _metrics_unc(model, sel, freq, 0.68),
                "rows": len(sel),
            }
        out[name] = {"fit_s": fit_s, "months": months}
    return out


def main() -> int:
    if sys.argv[1] == "--coverage":
        work = Path(sys.argv[2])
        (work / "coverage.json").write_text(json.dumps(coverage(work)))
        return 0
    work = Path(sys.argv[1])
    config = json.loads((work / "config.json").read_text())
    result = {
        "import_s": IMPORT_S,
        "meters": meters(work, config["split"], config["tz"]),
        "il": il_sample(work),
    }
    (work / "opendsm.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

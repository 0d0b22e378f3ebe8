"""Issue 5's acceptance test, and issue 13's: the contract's computed savings against the
simulators' truth, with the intervals the statements state.

The simulators know what the boundary would have used without the retrofit (the
counterfactual), so they know the true savings. On the reference site's simulated history
(baseline year 2024-07-01 .. 2025-07-01, then twelve reporting months) the avoided energy that
`compute_savings` reports must lie within its own stated 90 % interval of the truth, for the
daily and for the hourly model, on three seeds. The stated interval is `heldout-months`
(`processing/uncertainty.py`); the ASHRAE 14 figure is kept beside it.

Acceptance rule, and why it is what it is:

- The total lies within its U90 on each seed. One interval per seed: a miss would be a 10 %
  event, and the total is what the vendor is paid from.
- Per seed, at least 10 of the 12 months lie within their U90. A calibrated 90 % interval
  misses about 1.2 months in 12; 2 misses or fewer has probability 0.89 under independence
  (binomial, p = 0.1). The seeds are fixed, so the test is deterministic, not flaky; the rule
  says how much miss we accept as statistics rather than bias.
- No month lies outside 2 × U90 (|z| > 3.3 for a normal error, probability 0.001): a miss that
  far would be a bias in the model or in the uncertainty, not chance.
- Over the 3 seeds x 12 months, at least 85 % of the months lie within their U90, for each
  model (the bounded form of the 10-seed figure of `python -m bench.coverage`).

What issue 13 measured, kept as regressions: with the ASHRAE 14 figure the hourly model's
months were inside 34 % of the time over 10 seeds (here: the figure beside covers fewer months
than the stated one), and the hourly baseline failed CalTRACK's single-model test in all 12
baseline months while statements were produced anyway (January 2026: -243 kWh against 57,847
true on seed 0). Now the failing single model is replaced by CalTRACK's three-month-weighted
monthly models and a finding says so; a single model that fails the test is an error finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.config import SiteConfig, contract_weather_station, load_site
from processing import sufficiency
from processing.baseline import load as _load
from processing.contract import SavingsResult, compute_savings, fit_baseline
from processing.models import HourlySettings, HourlyTOWTModel
from processing.sufficiency import FIT_LIMITS, Severity
from simulators.history import generate_history
from storage.duckdb_store import DuckDBStore

SITE_FILE = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"
CONTRACT = "epc-2025-01"
HISTORY_START = datetime(2024, 7, 1, tzinfo=UTC)
# One day past the last reporting day, so the last local (UTC+8) day is complete.
HISTORY_END = datetime(2026, 7, 2, tzinfo=UTC)
REPORTING_END = date(2026, 7, 1)  # exclusive: twelve months from 2025-07-01
SEEDS = (0, 1, 2)
MODELS = ("daily", "hourly")

MIN_MONTHS_WITHIN = 10  # of 12; see the module docstring
FAR_MISS = 2.0  # no month beyond this many U90
MIN_COVERAGE = 0.85  # of the 36 months of the three seeds, per model


@dataclass(frozen=True)
class Run:
    seed: int
    model: str
    result: SavingsResult
    true_of: dict[tuple[date, date], float]  # (start, end) of a period -> true savings, kWh


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(SITE_FILE)


def _runs(site: SiteConfig, seed: int) -> list[Run]:
    contract = site.contract(CONTRACT)
    history = generate_history(
        site,
        HISTORY_START,
        HISTORY_END,
        interval="1h",
        seed=seed,
        meters=[*contract.meters, contract_weather_station(site, contract)],
    )
    results = {}
    with DuckDBStore(":memory:") as store:
        store.write(history.readings)
        for kind in MODELS:
            baseline = fit_baseline(site, CONTRACT, store, model=kind)  # type: ignore[arg-type]
            results[kind] = compute_savings(
                site, CONTRACT, store, end=REPORTING_END, baseline=baseline
            )
    # The true savings of the boundary per interval, assigned to the interval's local day
    # (intervals start on the hour; Asia/Shanghai has no DST, so none straddles midnight).
    true = np.sum([history.true_savings_kwh[m] for m in contract.meters], axis=0)
    tz = ZoneInfo(site.site.timezone)
    days = np.array(
        [datetime.fromtimestamp(int(t) / 1000, tz).date() for t in history.ts_ms], dtype=object
    )
    out = []
    for kind, result in results.items():
        true_of = {
            (p.start, p.end): float(true[(days >= p.start) & (days < p.end)].sum())
            for p in (*result.months, result.total)
        }
        out.append(Run(seed, kind, result, true_of))
    return out


@pytest.fixture(scope="module")
def runs(site: SiteConfig) -> list[Run]:
    return [run for seed in SEEDS for run in _runs(site, seed)]


def _z(run: Run, period_start: date, period_end: date, avoided: float, u90: float) -> float:
    return (avoided - run.true_of[(period_start, period_end)]) / u90


def test_reporting_period_is_twelve_full_months(runs: list[Run]) -> None:
    for run in runs:
        assert len(run.result.months) == 12
        assert all(p.days_used == p.days for p in run.result.months), run.seed
        assert run.result.total.days_used == 365


def test_total_within_its_u90(runs: list[Run]) -> None:
    for run in runs:
        t = run.result.total
        true = run.true_of[(t.start, t.end)]
        assert true > 0  # the retrofit saves energy in the simulation
        assert abs(t.avoided - true) <= t.u90.u, (
            f"seed {run.seed} {run.model}: computed {t.avoided:.0f} ± {t.u90.u:.0f} kWh, "
            f"true {true:.0f}"
        )


def test_months_within_their_u90(runs: list[Run]) -> None:
    for run in runs:
        zs = {p.label: _z(run, p.start, p.end, p.avoided, p.u90.u) for p in run.result.months}
        within = [label for label, z in zs.items() if abs(z) <= 1.0]
        report = ", ".join(f"{label} {z:+.2f}" for label, z in zs.items())
        assert len(within) >= MIN_MONTHS_WITHIN, f"seed {run.seed} {run.model}: {report}"
        assert max(abs(z) for z in zs.values()) <= FAR_MISS, (
            f"seed {run.seed} {run.model}: {report}"
        )


def test_stated_intervals_cover_the_months_as_they_say(runs: list[Run]) -> None:
    """Bounded coverage: 3 seeds x 12 months per model; the ASHRAE 14 figure beside covers
    fewer (issue 13: 78 % daily, 34 % hourly over 10 seeds)."""
    for kind in MODELS:
        months = [(run, p) for run in runs if run.model == kind for p in run.result.months]
        assert all(p.uncertainty_method == "heldout-months" for _, p in months)
        errors = [abs(p.avoided - run.true_of[(p.start, p.end)]) for run, p in months]
        stated = np.mean([e <= p.u90.u for e, (_, p) in zip(errors, months, strict=True)])
        ashrae = np.mean(
            [e <= p.ashrae14_u90.u for e, (_, p) in zip(errors, months, strict=True)]  # type: ignore[union-attr]
        )
        assert stated >= MIN_COVERAGE, (kind, stated)
        assert ashrae < stated, (kind, ashrae, stated)
        in68 = np.mean([e <= p.u68.u for e, (_, p) in zip(errors, months, strict=True)])
        assert 0.55 <= in68 <= 0.95, (kind, in68)  # a 68 % interval, not a 90 % one


def test_hourly_baseline_fails_the_single_model_test_and_is_segmented(runs: list[Run]) -> None:
    run = next(r for r in runs if r.seed == 0 and r.model == "hourly")
    baseline = run.result.baseline
    found = {f.code: f for f in baseline.findings}
    seg = found["hourly_segmentation"]
    assert len(seg.values["single_model_months"]) == 12  # every baseline month fails
    # the monthly models' own months are reported, not an error: CalTRACK sets no limit there
    assert found["monthly_nmbe"].severity in (Severity.INFO, Severity.WARNING)
    assert found["monthly_nmbe"].values["segmentation"] == "three_month_weighted"
    jan = next(p for p in run.result.months if p.label == "2026-01")
    true = run.true_of[(jan.start, jan.end)]
    assert true > 50_000
    assert abs(jan.avoided - true) <= jan.u90.u, (jan.avoided, jan.u90.u, true)


def test_the_single_hourly_model_would_be_an_error(site: SiteConfig) -> None:
    """The baseline that produced January 2026's -243 kWh: CalTRACK's single-model test fails
    in every month; judged as the model in use, that is an error finding (a status), never a
    bare statement."""
    contract = site.contract(CONTRACT)
    history = generate_history(
        site,
        HISTORY_START,
        datetime(2025, 7, 2, tzinfo=UTC),
        interval="1h",
        seed=0,
        meters=[*contract.meters, contract_weather_station(site, contract)],
    )
    with DuckDBStore(":memory:") as store:
        store.write(history.readings)
        usage = _load(site, contract, store, "electricity", date(2024, 7, 1), date(2025, 7, 1))
    hourly = usage.hourly.between(date(2024, 7, 1), date(2025, 7, 1))
    single = HourlyTOWTModel(HourlySettings(segmentation="single")).fit(hourly)
    months = [str(d)[:7] for d in hourly.day]
    (finding,) = sufficiency.monthly_nmbe(months, hourly.energy, single.predict(hourly))
    assert finding.severity is Severity.ERROR
    assert len(finding.values["months"]) == 12


def test_daily_model_meets_fit_limits(runs: list[Run]) -> None:
    cv_max, nmbe_max, _ = FIT_LIMITS["daily"]  # CV(RMSE) < 25 %, |NMBE| < 0.5 %
    for run in (r for r in runs if r.model == "daily"):
        model = run.result.baseline.model
        assert model.GRANULARITY == "daily"
        stats = model.stats
        assert stats is not None
        assert stats.n >= 360  # a full baseline year of days
        assert stats.cvrmse <= cv_max, (run.seed, stats.cvrmse)
        assert abs(stats.nmbe) <= nmbe_max, (run.seed, stats.nmbe)

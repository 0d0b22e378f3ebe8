"""ASHRAE 14 statistics and savings uncertainty, with mv.md's worked check reproduced."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from processing.stats import (
    FitStats,
    effective_n,
    fit_stats,
    k_factor,
    lag1_autocorrelation,
    monthly_nmbe_values,
    savings_uncertainty,
    t_two_sided,
)
from processing.uncertainty import HeldOutMonths, period_uncertainty


def _worked_stats(*, cap: bool) -> FitStats:
    n, p, rho = 365, 5, -0.028
    return FitStats(
        n=n,
        p=p,
        mean=1.0,
        cvrmse=0.2561,
        nmbe=0.0,
        r2=0.0,
        adj_r2=0.0,
        rho=rho,
        n_eff=effective_n(n, rho, cap=cap),
        n_eff_capped=cap,
    )


def test_mv_worked_check_uncapped() -> None:
    # mv.md: daily model, n 365, p 5, CV 0.2561, rho -0.028 (n' 385.7, uncapped), m 365,
    # M 12 (K 1.3925), 90 % two-sided (t 1.6491), savings 890.58 of E_base 9972.8
    stats = _worked_stats(cap=False)
    assert stats.n_eff == pytest.approx(385.7, abs=0.5)  # 386.0 from rho = -0.028 exactly
    u = savings_uncertainty(
        stats,
        e_base=9972.8,
        e_save=890.58,
        m=365,
        reporting_months=12,
        granularity="daily",
        confidence=0.90,
    )
    assert u.t == pytest.approx(1.6491, abs=1e-4)
    assert u.k == pytest.approx(1.3925, abs=1e-4)
    assert u.u == pytest.approx(299.4, abs=0.5)
    assert u.fsu == pytest.approx(0.336, abs=0.001)


def test_mv_worked_check_capped() -> None:
    stats = _worked_stats(cap=True)
    assert stats.n_eff == 365
    u = savings_uncertainty(
        stats,
        e_base=9972.8,
        e_save=890.58,
        m=365,
        reporting_months=12,
        granularity="daily",
        confidence=0.90,
    )
    assert u.fsu == pytest.approx(0.346, abs=0.001)


@pytest.mark.parametrize(
    ("confidence", "dof", "expected"),
    [
        (0.90, 360, 1.6491),  # t(0.95, 360)
        (0.95, 10, 2.2281),  # t(0.975, 10)
        (0.90, 1, 6.3138),
        (0.68, 1_000_000, 0.9945),  # ~ one normal standard deviation
        (0.99, 30, 2.7500),
    ],
)
def test_t_quantile_is_two_sided_at_the_confidence_level(
    confidence: float, dof: float, expected: float
) -> None:
    assert t_two_sided(confidence, dof) == pytest.approx(expected, abs=1e-4)


def test_t_refuses_alpha_like_nonsense() -> None:
    with pytest.raises(ValueError, match="confidence"):
        t_two_sided(1.5, 10)


def test_k_factor_sun_and_baltazar() -> None:
    assert k_factor("daily", 12) == pytest.approx(1.3925, abs=1e-4)
    assert k_factor("billing", 12) == pytest.approx(-0.00022 * 144 + 0.03306 * 12 + 0.94054)
    assert k_factor("hourly", 12) == 1.26
    assert k_factor("daily", 0.5) == k_factor("daily", 1)  # at least a month


def test_cvrmse_and_nmbe_divide_by_n_minus_p() -> None:
    y = np.array([10.0, 12.0, 11.0, 13.0, 9.0, 10.0])
    yhat = np.array([11.0, 11.0, 11.0, 12.0, 10.0, 10.0])
    s = fit_stats(y, yhat, p=2)
    resid = y - yhat
    assert s.cvrmse == pytest.approx(math.sqrt((resid**2).sum() / 4) / y.mean())
    assert s.nmbe == pytest.approx(resid.sum() / (4 * y.mean()))
    sst = ((y - y.mean()) ** 2).sum()
    assert s.r2 == pytest.approx(1 - (resid**2).sum() / sst)
    assert s.adj_r2 == pytest.approx(1 - ((resid**2).sum() / 4) / (sst / 5))


def test_lag1_autocorrelation_of_an_ar1_series() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros(20_000)
    for i in range(1, len(x)):
        x[i] = 0.6 * x[i - 1] + rng.normal()
    assert lag1_autocorrelation(x) == pytest.approx(0.6, abs=0.02)
    x[::7] = np.nan  # gaps skip pairs, not the estimate
    assert lag1_autocorrelation(x) == pytest.approx(0.6, abs=0.03)


def test_n_eff_cap_is_reported() -> None:
    assert effective_n(100, -0.2, cap=True) == 100
    assert effective_n(100, -0.2, cap=False) == pytest.approx(150)
    assert effective_n(100, 0.5, cap=True) == pytest.approx(100 / 3)


# -- held-out months (processing/uncertainty.py) -------------------------------------------------


def _basis(errors: list[float], *, days: int = 30) -> HeldOutMonths:
    daily = FitStats(
        n=360, p=10, mean=1000.0, cvrmse=0.05, nmbe=0.0, r2=0.9, adj_r2=0.9, rho=0.3,
        n_eff=effective_n(360, 0.3), n_eff_capped=True,
    )  # fmt: skip
    months = tuple(f"2024-{i:02d}" for i in range(1, len(errors) + 1))
    return HeldOutMonths(months, (days,) * len(errors), tuple(errors), daily)


def _days(start: str, n: int) -> np.ndarray:
    return np.arange(np.datetime64(start), np.datetime64(start) + n)


def test_heldout_without_deviations_is_the_daily_ashrae_figure() -> None:
    # Held-out errors no larger than the noise part predicts for a month: no month part.
    basis = _basis([0.0] * 12)
    assert basis.s_dev == 0.0
    days = _days("2025-07-01", 31)
    u = period_uncertainty(
        basis, e_base=31_000.0, e_save=3_000.0, days=days, reporting_months=1.0, confidence=0.9
    )
    ashrae = savings_uncertainty(
        basis.daily, e_base=31_000.0, e_save=3_000.0, m=31, reporting_months=1.0,
        granularity="daily", confidence=0.9,
    )  # fmt: skip
    assert u.u == pytest.approx(ashrae.u, rel=1e-12)


def test_heldout_month_part_by_hand() -> None:
    # 12 held-out months of 30 days, errors ±6,000: 200/day, a 30.44-day month 6,087.5 rms.
    basis = _basis([6_000.0, -6_000.0] * 6)
    assert basis.month_rms == pytest.approx(200 * 365.25 / 12)
    # noise part of one month: K(1) CV mean sqrt(30.44 (n/n')(1 + 2/n'))
    n_eff = basis.daily.n_eff
    noise = k_factor("daily", 1) * 0.05 * 1000 * math.sqrt(30.4375 * 360 / n_eff * (1 + 2 / n_eff))
    assert basis.month_noise == pytest.approx(noise)
    s_dev = math.sqrt(basis.month_rms**2 - noise**2)
    assert basis.s_dev == pytest.approx(s_dev)
    t11 = t_two_sided(0.9, 11)  # 12 held-out months: 11 degrees of freedom
    for n_days, months in ((31, [31]), (61, [31, 30])):  # July; July and August
        days = _days("2025-07-01", n_days)
        ashrae = savings_uncertainty(
            basis.daily, e_base=1000.0 * n_days, e_save=100.0 * n_days, m=n_days,
            reporting_months=n_days / 30.4375, granularity="daily", confidence=0.9,
        )  # fmt: skip
        c2 = sum((d / 30.4375) ** 2 for d in months)  # independent months: Σ c²
        u = period_uncertainty(
            basis, e_base=1000.0 * n_days, e_save=100.0 * n_days, days=days,
            reporting_months=n_days / 30.4375, confidence=0.9,
        )  # fmt: skip
        assert u.u == pytest.approx(math.sqrt(ashrae.u**2 + (t11 * s_dev) ** 2 * c2))
        assert u.fsu == pytest.approx(u.u / (100.0 * n_days))


def test_heldout_json_round_trip() -> None:
    basis = _basis([1.0, -2.5, 3.25])
    again = HeldOutMonths.from_dict(json.loads(json.dumps(basis.to_dict())))
    assert again == basis


def test_monthly_nmbe_values() -> None:
    months = ["2025-01"] * 2 + ["2025-02"] * 2
    observed = np.array([100.0, 100.0, 50.0, np.nan])
    predicted = np.array([90.0, 100.0, 55.0, 10.0])
    assert monthly_nmbe_values(months, observed, predicted) == [
        ("2025-01", 0.05),
        ("2025-02", -0.1),
    ]

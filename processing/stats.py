"""Goodness of fit and savings uncertainty (ASHRAE Guideline 14-2014, Annex B; CalTRACK 4.3).

The conventions, stated once (see `shared/reference/mv.md`):

- `p` counts every fitted parameter: coefficients (intercepts included) *and* change points.
- CV(RMSE) = sqrt(SSE / (n - p)) / mean(y).                       # ASHRAE 14 §4.3.2.4.1 (Eq. 4-2)
- NMBE = sum(y - yhat) / ((n - p) * mean(y)); the G14 form, not the n form some tools use.
  Positive NMBE: the model under-predicts.                         # ASHRAE 14 §4.3.2.4.1 (Eq. 4-1)
- R² = 1 - SSE/SST; adjusted R² = 1 - (SSE/(n - p)) / (SST/(n - 1)). mv.md writes n - p - 1
  with p counting the regressors *without* the intercept; ours counts the intercept, so the two
  are the same number.
- n' = n (1 - rho) / (1 + rho) with rho the lag-1 autocorrelation of the residuals in time
  order. We cap n' at n (`cap=True`, the conservative choice when rho < 0) unless asked not to;
  every result says which it used.                                  # Reddy & Claridge 2000
- U = t * K * CV * E_base * sqrt((n/n') (1 + 2/n') / m), FSU = U / E_save.  # G14 Annex B
  t is the two-sided Student t quantile at the *confidence level* (0.90 -> t(0.95, dof)),
  dof = n - p (not n - p - 1, not alpha).
  K = a M² + b M + d with M the number of months in the *reporting* period (Sun & Baltazar
  2013), daily and billing coefficients; hourly models use G14's 1.26, as common tools do.

Everything here is a pure function of arrays and numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

Granularity = Literal["hourly", "daily", "billing"]

# Sun & Baltazar (2013), ASHRAE Transactions 119(1): K = a M² + b M + d, M = reporting months.
_K_COEFFICIENTS: dict[str, tuple[float, float, float]] = {
    "daily": (-0.00024, 0.03535, 1.00286),
    "billing": (-0.00022, 0.03306, 0.94054),
}
K_HOURLY = 1.26  # ASHRAE 14 Annex B's constant, also used for hourly models by common tools


def k_factor(granularity: Granularity, reporting_months: float) -> float:
    """The Sun & Baltazar correction K for `reporting_months` months of reporting period."""
    if granularity == "hourly":
        return K_HOURLY
    a, b, d = _K_COEFFICIENTS[granularity]
    m = min(max(reporting_months, 1.0), 12.0 * 3)  # the fit was made for 1..36 months
    return a * m * m + b * m + d


# -- Student t -----------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: float) -> float:
    """Student t cumulative distribution."""
    tail = 0.5 * _betainc(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_two_sided(confidence: float, dof: float) -> float:
    """The t with P(|T| <= t) = confidence: 0.90 and dof 360 -> 1.6491 (t(0.95, 360))."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence}: expected a level in (0, 1), e.g. 0.90")
    if dof <= 0:
        raise ValueError(f"degrees of freedom {dof}: must be positive")
    target = 0.5 + confidence / 2.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, dof) < target:
        hi *= 2.0
    for _ in range(200):  # bisection to machine precision; called a handful of times
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, dof) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# -- fit statistics ------------------------------------------------------------------------


def lag1_autocorrelation(residuals: FloatArray) -> float:
    """Lag-1 autocorrelation of residuals in time order; pairs with a NaN are skipped."""
    r = np.asarray(residuals, dtype=np.float64)
    ok = np.isfinite(r)
    if ok.sum() < 3:
        return 0.0
    centred = np.where(ok, r - r[ok].mean(), np.nan)
    a, b = centred[:-1], centred[1:]
    pair = np.isfinite(a) & np.isfinite(b)
    denominator = float(np.sum(centred[ok] ** 2))
    if denominator == 0.0 or not pair.any():
        return 0.0
    # The usual estimator sum(r_t r_t+1) / sum(r_t^2), rescaled when gaps remove some pairs.
    return float(np.sum(a[pair] * b[pair]) / denominator * (ok.sum() - 1) / pair.sum())


def effective_n(n: int, rho: float, *, cap: bool = True) -> float:
    """n' = n (1 - rho) / (1 + rho); capped at n when `cap` (Reddy & Claridge 2000)."""
    rho = min(max(rho, -0.99), 0.99)
    n_eff = n * (1.0 - rho) / (1.0 + rho)
    return min(n_eff, float(n)) if cap else n_eff


@dataclass(frozen=True, slots=True)
class FitStats:
    """How well a baseline model fits its own data (ASHRAE 14 §4.3.2.4; CalTRACK 3.x)."""

    n: int
    p: int
    mean: float
    cvrmse: float
    nmbe: float
    r2: float
    adj_r2: float
    rho: float
    n_eff: float
    n_eff_capped: bool

    @property
    def dof(self) -> int:
        return self.n - self.p

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitStats:
        return cls(**data)


def fit_stats(
    observed: FloatArray, predicted: FloatArray, p: int, *, cap_n_eff: bool = True
) -> FitStats:
    """Statistics of a fit over its valid points, residuals kept in time order for rho."""
    y = np.asarray(observed, dtype=np.float64)
    yhat = np.asarray(predicted, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(yhat)
    n = int(ok.sum())
    if n <= p:
        raise ValueError(f"{n} points cannot support {p} parameters")
    resid = np.where(ok, y - yhat, np.nan)
    r = resid[ok]
    mean = float(y[ok].mean())
    sse = float(r @ r)
    sst = float(np.sum((y[ok] - mean) ** 2))
    dof = n - p
    cvrmse = math.sqrt(sse / dof) / mean if mean != 0 else math.inf  # ASHRAE 14 Eq. 4-2
    nmbe = float(r.sum()) / (dof * mean) if mean != 0 else math.inf  # ASHRAE 14 Eq. 4-1, n - p
    r2 = 1.0 - sse / sst if sst > 0 else 0.0
    adj = 1.0 - (sse / dof) / (sst / (n - 1)) if sst > 0 else 0.0
    rho = lag1_autocorrelation(resid)
    return FitStats(
        n=n,
        p=p,
        mean=mean,
        cvrmse=cvrmse,
        nmbe=nmbe,
        r2=r2,
        adj_r2=adj,
        rho=rho,
        n_eff=effective_n(n, rho, cap=cap_n_eff),
        n_eff_capped=cap_n_eff,
    )


def monthly_nmbe_values(
    months: list[str] | tuple[str, ...], observed: FloatArray, predicted: FloatArray
) -> list[tuple[str, float]]:
    """(YYYY-MM, NMBE) per month of rows: sum(y - yhat) / sum(y) over its valid rows
    (CalTRACK's single-model test for hourly models compares each with 1 %)."""
    m = np.asarray(months)
    y = np.asarray(observed, dtype=np.float64)
    yhat = np.asarray(predicted, dtype=np.float64)
    out = []
    for month in sorted(set(m.tolist())):
        sel = (m == month) & np.isfinite(y) & np.isfinite(yhat)
        total = float(y[sel].sum())
        if sel.sum() == 0 or total == 0:
            continue
        out.append((str(month), round(float((y[sel] - yhat[sel]).sum()) / total, 5)))
    return out


# -- savings uncertainty -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Uncertainty:
    """Absolute uncertainty of avoided energy at one confidence level, and its inputs."""

    confidence: float
    u: float
    fsu: float
    t: float
    k: float
    m: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def savings_uncertainty(
    stats: FitStats,
    *,
    e_base: float,
    e_save: float,
    m: int,
    reporting_months: float,
    granularity: Granularity,
    confidence: float,
) -> Uncertainty:
    """U = t K CV E_base sqrt((n/n') (1 + 2/n') / m); FSU = U / E_save.  # ASHRAE 14 Annex B

    `m` is the number of reporting points, `reporting_months` the M of Sun & Baltazar.
    FSU is infinite when there are no savings to speak of.
    """
    if m <= 0:
        return Uncertainty(confidence, math.nan, math.nan, math.nan, math.nan, 0)
    t = t_two_sided(confidence, stats.dof)
    k = k_factor(granularity, reporting_months)
    n, n_eff = stats.n, stats.n_eff
    u = t * k * stats.cvrmse * abs(e_base) * math.sqrt((n / n_eff) * (1.0 + 2.0 / n_eff) / m)
    fsu = u / abs(e_save) if e_save != 0 else math.inf
    return Uncertainty(confidence, u, fsu, t, k, m)

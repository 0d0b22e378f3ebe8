"""Avoided energy use and its uncertainty (IPMVP; ASHRAE Guideline 14 Annex B).

    avoided = (baseline model at reporting conditions + non-routine adjustments) - actual

per local day, summed over months, contract years and the whole reporting period so far.
Only days where both the baseline and the actual are known count, on both sides; days whose
actual was interpolated across a counter gap count (the energy is right, its split between
days is an estimate) and are reported. Uncertainty uses the model's fit statistics with
E_base the model's baseline over the days counted (adjustments are documented figures and
carry none), m the number of model points (days, or hours for an hourly model) and M the
length of the period in months (`stats.py`).

Billing models (monthly bills only): `billing_savings` over the reporting bills.

Normalised savings (optional): baseline-period model minus reporting-period model, both
driven by one typical year (mean temperature by day of year over the weather history, the
calendar of a chosen year).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np

from core.config import NonRoutineAdjustment
from processing.frames import (
    DAY_TYPE_CODES,
    BoolArray,
    DailyData,
    DayArray,
    FloatArray,
    HourlyData,
    IntArray,
    day_range,
    day_type_codes,
    to_date,
)
from processing.models import BaselineModel, BillingModel, DailyChangePointModel, HourlyTOWTModel
from processing.models.billing import BillingData
from processing.stats import FitStats, Granularity, Uncertainty, savings_uncertainty
from processing.uncertainty import HeldOutMonths, UncertaintyMethod, period_uncertainty

CONFIDENCE_LEVELS = (0.68, 0.90)
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class DailySavings:
    """Per local day of the reporting period: the baseline, adjustments, actual, points."""

    day: DayArray
    baseline: FloatArray
    adjustment: FloatArray
    actual: FloatArray
    estimated: BoolArray
    points: IntArray

    @property
    def used(self) -> BoolArray:
        return np.isfinite(self.baseline) & np.isfinite(self.actual)

    @property
    def adjusted_baseline(self) -> FloatArray:
        return np.asarray(self.baseline + self.adjustment, dtype=np.float64)

    @property
    def avoided(self) -> FloatArray:
        return np.asarray(self.adjusted_baseline - self.actual, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PeriodSavings:
    """Avoided energy over one period and its uncertainty at 68 % and 90 %."""

    label: str
    start: date
    end: date  # exclusive
    days: int
    days_used: int
    days_estimated: int
    baseline: float
    adjustments: float
    adjusted_baseline: float
    actual: float
    avoided: float
    u68: Uncertainty  # the stated interval, by `uncertainty_method`
    u90: Uncertainty
    uncertainty_method: str = "ashrae14"  # `uncertainty.METHODS`
    ashrae14_u68: Uncertainty | None = None  # ASHRAE 14 Annex B, always beside
    ashrae14_u90: Uncertainty | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PeriodSavings:
        def u(key: str) -> Uncertainty | None:
            return None if data.get(key) is None else Uncertainty(**data[key])

        return cls(
            **{
                **data,
                "start": date.fromisoformat(data["start"]),
                "end": date.fromisoformat(data["end"]),
                "u68": Uncertainty(**data["u68"]),
                "u90": Uncertainty(**data["u90"]),
                "ashrae14_u68": u("ashrae14_u68"),
                "ashrae14_u90": u("ashrae14_u90"),
            }
        )


def adjustment_per_day(
    adjustments: Sequence[NonRoutineAdjustment],
    days: DayArray,
    day_types: IntArray,
    baseline: FloatArray,
) -> FloatArray:
    """The sum of the non-routine adjustments active on each day (kWh or m³)."""
    out = np.zeros(len(days))
    for adj in adjustments:
        active = days >= np.datetime64(adj.start, "D")
        if adj.end is not None:
            active &= days < np.datetime64(adj.end, "D")
        if adj.day_types:
            active &= np.isin(day_types, [DAY_TYPE_CODES[t] for t in adj.day_types])
        if adj.amount_per_day is not None:
            out += np.where(active, adj.amount_per_day, 0.0)
        else:
            assert adj.fraction is not None
            out += np.where(active, np.nan_to_num(baseline) * adj.fraction, 0.0)
    return out


def daily_savings(
    model: BaselineModel,
    daily: DailyData,
    hourly: HourlyData | None,
    estimated: BoolArray,
    adjustments: Sequence[NonRoutineAdjustment] = (),
) -> DailySavings:
    """The reporting days' baseline (from the model), adjustments and actual."""
    if isinstance(model, HourlyTOWTModel):
        if hourly is None:
            raise ValueError("an hourly model needs hourly reporting data")
        predicted = model.predict(hourly)
        idx = np.searchsorted(daily.day, hourly.day)
        inside = (idx < len(daily)) & (daily.day[np.clip(idx, 0, len(daily) - 1)] == hourly.day)
        baseline: FloatArray = np.bincount(
            idx[inside], weights=np.nan_to_num(predicted[inside]), minlength=len(daily)
        ).astype(np.float64)
        bad = np.bincount(
            idx[inside],
            weights=(~np.isfinite(predicted[inside])).astype(float),
            minlength=len(daily),
        )
        baseline = np.where(bad == 0, baseline, np.nan)
        points = np.bincount(idx[inside], minlength=len(daily)).astype(np.int64)
    elif isinstance(model, DailyChangePointModel):
        baseline = model.predict(daily)
        points = np.ones(len(daily), dtype=np.int64)
    else:
        raise TypeError(
            f"{type(model).__name__} does not make daily predictions; see billing_savings()"
        )
    adjustment = adjustment_per_day(adjustments, daily.day, daily.day_type, baseline)
    return DailySavings(
        daily.day, baseline, adjustment, daily.energy, np.asarray(estimated, dtype=bool), points
    )


def uncertainty_basis(
    model: BaselineModel, method: UncertaintyMethod = "heldout-months"
) -> HeldOutMonths | None:
    """What `summarise` states its intervals from: the model's held-out months for
    `heldout-months` (None when the model has none, e.g. fitted outside a baseline), or None
    for `ashrae14`."""
    if method == "ashrae14":
        return None
    return getattr(model, "heldout", None)


def summarise(
    ds: DailySavings,
    stats: FitStats,
    granularity: Granularity,
    *,
    label: str,
    start: date,
    end: date,
    heldout: HeldOutMonths | None = None,
) -> PeriodSavings:
    """Totals and uncertainty over the days start <= d < end. The stated 68 % and 90 %
    intervals are the `heldout-months` ones when `heldout` is given (`uncertainty.py`), the
    ASHRAE 14 ones otherwise; the ASHRAE 14 figures are kept beside either way."""
    sel = (ds.day >= np.datetime64(start, "D")) & (ds.day < np.datetime64(end, "D"))
    used = sel & ds.used
    baseline = float(ds.baseline[used].sum())
    adjustments = float(ds.adjustment[used].sum())
    actual = float(ds.actual[used].sum())
    avoided = baseline + adjustments - actual
    m = int(ds.points[used].sum())
    months = (end - start).days / DAYS_PER_MONTH
    a68, a90 = (
        savings_uncertainty(
            stats,
            e_base=baseline,
            e_save=avoided,
            m=m,
            reporting_months=months,
            granularity=granularity,
            confidence=c,
        )
        for c in CONFIDENCE_LEVELS
    )
    u68, u90 = a68, a90
    method = "ashrae14"
    if heldout is not None:
        method = "heldout-months"
        u68, u90 = (
            period_uncertainty(
                heldout,
                e_base=baseline,
                e_save=avoided,
                days=ds.day[used],
                reporting_months=months,
                confidence=c,
            )
            for c in CONFIDENCE_LEVELS
        )
    return PeriodSavings(
        label=label,
        start=start,
        end=end,
        days=(end - start).days,
        days_used=int(used.sum()),
        days_estimated=int((used & ds.estimated).sum()),
        baseline=baseline,
        adjustments=adjustments,
        adjusted_baseline=baseline + adjustments,
        actual=actual,
        avoided=avoided,
        u68=u68,
        u90=u90,
        uncertainty_method=method,
        ashrae14_u68=a68,
        ashrae14_u90=a90,
    )


def billing_savings(
    model: BillingModel, reporting: BillingData, *, label: str = "total"
) -> PeriodSavings:
    """Avoided energy over billing periods (e.g. imported utility bills): the billing model's
    prediction for each complete period minus its bill; m = periods, M = their months."""
    assert model.stats is not None
    predicted = model.predict(reporting)
    used = np.isfinite(predicted) & np.isfinite(reporting.energy)
    baseline = float(predicted[used].sum())
    actual = float(reporting.energy[used].sum())
    days = int((reporting.end - reporting.start).astype(np.int64)[used].sum())
    u68, u90 = (
        savings_uncertainty(
            model.stats,
            e_base=baseline,
            e_save=baseline - actual,
            m=int(used.sum()),
            reporting_months=days / DAYS_PER_MONTH,
            granularity="billing",
            confidence=c,
        )
        for c in CONFIDENCE_LEVELS
    )
    first, last = to_date(reporting.start.min()), to_date(reporting.end.max())
    return PeriodSavings(
        label=label,
        start=first,
        end=last,
        days=(last - first).days,
        days_used=days,
        days_estimated=0,
        baseline=baseline,
        adjustments=0.0,
        adjusted_baseline=baseline,
        actual=actual,
        avoided=baseline - actual,
        u68=u68,
        u90=u90,
    )


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def months_between(start: date, end: date) -> list[tuple[str, date, date]]:
    """Calendar months overlapping [start, end), clipped to it: (YYYY-MM, start, end)."""
    out = []
    cur = month_start(start)
    while cur < end:
        nxt = next_month(cur)
        out.append((f"{cur:%Y-%m}", max(cur, start), min(nxt, end)))
        cur = nxt
    return out


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def contract_year_of(reporting_start: date, day: date) -> tuple[int, date, date]:
    """(1-based number, start, end) of the contract year holding `day`."""
    n = 0
    while add_years(reporting_start, n + 1) <= day:
        n += 1
    return n + 1, add_years(reporting_start, n), add_years(reporting_start, n + 1)


def typical_year(history: DailyData, year: int, day_type: Any) -> DailyData:
    """A typical year: each day of `year` gets the mean temperature of its day of year over
    the history, and its own calendar day type."""
    doy_hist = (history.day - history.day.astype("datetime64[Y]")).astype(np.int64)
    ok = np.isfinite(history.temperature)
    sums = np.bincount(
        np.minimum(doy_hist[ok], 364), weights=history.temperature[ok], minlength=365
    )
    counts = np.bincount(np.minimum(doy_hist[ok], 364), minlength=365)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    days = day_range(date(year, 1, 1), date(year + 1, 1, 1))
    doy = np.minimum((days - days.astype("datetime64[Y]")).astype(np.int64), 364)
    codes = day_type_codes(days, day_type)
    return DailyData(days, mean[doy], codes, np.full(len(days), np.nan))


def normalised_savings(
    baseline_model: DailyChangePointModel,
    reporting_model: DailyChangePointModel,
    typical: DailyData,
) -> float:
    """Baseline-period model minus reporting-period model over the typical year (IPMVP)."""
    return float(np.nansum(baseline_model.predict(typical) - reporting_model.predict(typical)))

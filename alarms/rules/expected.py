"""What use to expect: a contract boundary's baseline (the M&V model as the anomaly
detector), and a meter's own recent history for the meters no baseline covers.

- `Boundary`, `boundaries()`: each contract utility with a stored baseline, its use per
  hour, and the baseline's prediction per day and per hour with its daily uncertainty;
- `reference()`: a meter's same hour (or day) of the same kind of day (working, or not)
  over the window before a given instant: median and robust spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from alarms.context import HOUR_MS, BoolArray, Context, FloatArray, robust
from core.config import Contract, UtilityTerms, contract_weather_station
from processing.baseline import Baseline
from processing.evaluate import days_of
from processing.frames import DailyData, hourly_frame
from processing.pricing import month_index
from processing.stats import t_two_sided


@dataclass(frozen=True)
class Boundary:
    """One contract utility with a stored baseline, seen at one evaluation."""

    ctx: Context
    contract: Contract
    terms: UtilityTerms
    baseline: Baseline

    @property
    def subject(self) -> str:
        return f"{self.contract.id}/{self.terms.utility}"

    @property
    def meters(self) -> tuple[str, ...]:
        return self.terms.meters

    @cached_property
    def hourly(self) -> FloatArray:
        """The boundary's use per hour of the grid, in its statement unit (NaN unless
        every meter's hour is known)."""
        total = np.zeros(len(self.ctx.grid.start_ms))
        for meter in self.terms.meters:
            total = total + self.ctx.hourly_use(meter, self.terms.quantity)
        return total * self.terms.scale

    @cached_property
    def temperature(self) -> FloatArray:
        """Outdoor temperature per hour of the grid at the contract's weather station."""
        station = contract_weather_station(self.ctx.site, self.contract)
        return self.ctx.hourly_mean(station, "outdoor_temperature")

    @cached_property
    def predicted(self) -> tuple[FloatArray, FloatArray]:
        """The baseline's prediction (adjustments included) per local day of the grid, and
        per hour (a daily model's day spread by the baseline period's hourly shape)."""
        ctx, model = self.ctx, self.baseline.model
        days, index, types, _ended = ctx.days
        t = self.temperature
        counts = np.bincount(index, weights=np.isfinite(t), minlength=len(days))
        sums = np.bincount(index, weights=np.nan_to_num(t), minlength=len(days))
        with np.errstate(invalid="ignore", divide="ignore"):
            day_t = np.where(counts >= 12, sums / counts, np.nan)
        nothing = np.full(len(days), np.nan)
        daily = DailyData(days, day_t, types, nothing)
        grid = ctx.grid
        hourly = hourly_frame(
            grid.start_ms,
            ctx.site.site.timezone,
            ctx.site.work_calendar.day_type,
            t,
            np.full(len(grid.start_ms), np.nan),
        )
        adjustments = [a for a in self.contract.adjustments if a.utility == self.terms.utility]
        per_day = days_of(model, daily, hourly, np.zeros(len(days), bool), adjustments)
        day_pred = per_day.adjusted_baseline
        if model.GRANULARITY == "hourly":
            hour_pred = np.asarray(model.predict(hourly), dtype=np.float64)  # type: ignore[arg-type]
        else:
            profile = self.baseline.profile
            if profile is None:
                share = np.full(len(grid.start_ms), 1.0 / 24)
            else:
                share = profile.shape[grid.day_type, month_index(grid.day), grid.hour]
            hour_pred = day_pred[index] * share
        return day_pred, hour_pred

    @cached_property
    def sigma_day(self) -> tuple[float, int] | None:
        """The baseline's standard error of one day's use, and its degrees of freedom
        (the fit's own residuals summed per day); None for a billing model."""
        model = self.baseline.model
        held = getattr(model, "heldout", None)
        stats = held.daily if held is not None else model.stats
        if stats is None or model.GRANULARITY == "billing":
            return None
        if model.GRANULARITY == "hourly" and held is None:
            return None
        return stats.cvrmse * stats.mean, max(stats.dof, 1)

    def upper(self, confidence: float) -> tuple[FloatArray, FloatArray] | None:
        """Per day of the grid: the prediction, and its one-sided upper bound at `confidence`."""
        sigma = self.sigma_day
        if sigma is None:
            return None
        day_pred, _ = self.predicted
        t = t_two_sided(2 * confidence - 1, sigma[1])
        return day_pred, day_pred + t * sigma[0] * math.sqrt(1 + 1 / max(sigma[1], 1))


def boundaries(ctx: Context) -> list[Boundary]:
    out = []
    for contract in ctx.site.contracts:
        for utility in contract.utility_names():
            baseline = ctx.baselines.get((contract.id, utility))
            if baseline is not None:
                out.append(Boundary(ctx, contract, contract.terms(utility), baseline))
    return out


def same_hours(ctx: Context, target: int, before_ms: int) -> BoolArray:
    """Hours of the grid before `before_ms` at the same local hour of the same kind of day
    (working or not) as hour `target`."""
    g = ctx.grid
    working = g.working
    same = (g.hour == g.hour[target]) & (working == working[target]) & (g.start_ms < before_ms)
    return np.asarray(same, dtype=np.bool_)


def reference(values: FloatArray, mask: BoolArray, min_count: int) -> tuple[float, float] | None:
    """Median and robust spread of `values[mask]`, or None with fewer than `min_count`."""
    v = values[mask]
    if int(np.isfinite(v).sum()) < min_count:
        return None
    return robust(v)


def last_hours(ctx: Context, n: int) -> np.ndarray:
    """Indices of the last `n` hours of the grid that have ended."""
    done = np.flatnonzero(ctx.grid.complete)
    return done[-n:] if len(done) >= n else np.empty(0, np.int64)


def day_before(ctx: Context, hours: int = 24) -> int:
    """The instant `hours` before the last ended hour: older hours are the reference."""
    return int(ctx.now_ms // HOUR_MS * HOUR_MS - hours * HOUR_MS)

"""Billing (monthly) baseline model for sites with only periodic totals, e.g. utility bills
(CalTRACK 3.x billing methods; ASHRAE RP-1050 on use per day).

    use per day = b0 [+ bw W] [+ bh HDD(th)] [+ bc CDD(tc)]

over billing periods, where HDD(t) and CDD(t) are the period's mean daily (t - T)+ and
(T - t)+ from daily mean temperatures (°C), and W is the share of working days in the period
(workdays and make-up workdays): the Spring Festival month of a government building uses less
than its weather says, and W is how a bill-level model can know. Weighted least squares with
the period's days as weights; balance points by grid search (every `step_c` °C between the
10th and 90th percentile of daily temperatures); physically signed slopes; selection by
adjusted R² among 1P, 3PC, 3PH, 4P, 5P, each with and without W when there are at least
`min_periods_for_w` periods. Fit statistics are on period totals (kWh per period).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Self

import numpy as np

from core.errors import InsufficientData
from processing.frames import MAKEUP, WORKDAY, DailyData, DayArray, FloatArray, IntArray
from processing.models import changepoint as cp
from processing.stats import FitStats, Granularity, fit_stats


@dataclass(frozen=True, slots=True)
class BillingData:
    """Billing periods [start, end) with their totals, and the days that cover them."""

    start: DayArray
    end: DayArray
    energy: FloatArray
    daily: DailyData  # temperature and day type for every day of every period

    def __len__(self) -> int:
        return len(self.start)

    def period_index(self) -> tuple[IntArray, IntArray]:
        """For each day of `daily` inside a period, (day row, period row)."""
        day = self.daily.day
        idx = np.searchsorted(self.start, day, side="right") - 1
        inside = (idx >= 0) & (day < self.end[np.clip(idx, 0, None)])
        rows = np.flatnonzero(inside)
        return rows, idx[rows]


@dataclass(frozen=True, slots=True)
class BillingSettings:
    step_c: float = 0.5
    min_periods_for_w: int = 10
    cap_n_eff: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Features:
    days: FloatArray
    w: FloatArray
    t_complete: bool


class BillingModel:
    """Use per day against degree days and the working-day share, by billing period."""

    KIND = "billing-degree-day"
    GRANULARITY: ClassVar[Granularity] = "billing"

    def __init__(self, settings: BillingSettings | None = None) -> None:
        self.settings = settings or BillingSettings()
        self.form = "1P"
        self.use_w = False
        self.coef: dict[str, float] = {}
        self.heat_cp: float | None = None
        self.cool_cp: float | None = None
        self.stats: FitStats | None = None
        self.scores: dict[str, float] = {}

    @staticmethod
    def _period_means(data: BillingData, values: FloatArray) -> FloatArray:
        """Mean of per-day `values` (..., n_days) over each period -> (..., n_periods)."""
        rows, period = data.period_index()
        n = len(data)
        count = np.bincount(period, minlength=n).astype(np.float64)
        v = np.atleast_2d(values)[:, rows]
        out = np.zeros((v.shape[0], n))
        for i in range(v.shape[0]):
            out[i] = np.bincount(period, weights=v[i], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            res: FloatArray = out / count
        return res

    def _base(self, data: BillingData) -> tuple[FloatArray, FloatArray, FloatArray]:
        _rows, period = data.period_index()
        n = len(data)
        days = np.bincount(period, minlength=n).astype(np.float64)
        expected = (data.end - data.start).astype(np.int64).astype(np.float64)
        working = np.isin(data.daily.day_type, (WORKDAY, MAKEUP)).astype(np.float64)
        w = self._period_means(data, working)[0]
        t_ok = self._period_means(data, np.isfinite(data.daily.temperature).astype(float))[0]
        complete = (days == expected) & (t_ok == 1.0)
        return days, w, complete

    def fit(self, data: BillingData) -> Self:
        s = self.settings
        days, w, complete = self._base(data)
        ok = complete & np.isfinite(data.energy) & (days > 0)
        if ok.sum() < 6:
            raise InsufficientData(
                f"a billing model needs at least 6 complete periods, got {int(ok.sum())}"
            )
        t = data.daily.temperature
        finite = np.isfinite(t)
        lo, hi = np.percentile(t[finite], [10, 90])
        grid = cp.coarse_grid(float(lo), float(hi), s.step_c)
        heat = self._period_means(data, np.maximum(grid[:, None] - t[None, :], 0.0))[:, ok]
        cool = self._period_means(data, np.maximum(t[None, :] - grid[:, None], 0.0))[:, ok]
        y = (data.energy / np.where(days > 0, days, 1.0))[ok]
        weights = days[ok]
        n = int(ok.sum())
        sst = float(np.sum(weights * (y - np.average(y, weights=weights)) ** 2))

        best: tuple[float, str, bool, FloatArray, float | None, float | None] | None = None
        variants = [False, True] if n >= s.min_periods_for_w else [False]
        for use_w in variants:
            d = np.column_stack([np.ones(n), w[ok]]) if use_w else np.ones((n, 1))
            k = d.shape[1]
            b = cp.blocks(d, y, weights, heat, cool)
            i = np.arange(len(grid))
            hi_, ci_ = np.nonzero(grid[:, None] < grid[None, :])
            for form, heat_i, cool_i, extra in (
                ("1P", None, None, 0),
                ("3PC", None, i, 2),
                ("3PH", i, None, 2),
                ("4P", i, i, 3),
                ("5P", hi_, ci_, 4),
            ):
                if (heat_i is not None and len(heat_i) == 0) or (
                    cool_i is not None and len(cool_i) == 0
                ):
                    continue
                c = cp.solve(b, heat_i, cool_i)
                if c is None:
                    continue
                p = k + extra
                if n - p <= 0:
                    continue
                adj = 1.0 - (c.sse / (n - p)) / (sst / (n - 1)) if sst > 0 else 0.0
                name = form + ("+W" if use_w else "")
                self.scores[name] = round(adj, 6)
                if best is None or adj > best[0] + 1e-12:
                    hcp = float(grid[c.heat_index]) if c.heat_index >= 0 else None
                    ccp = float(grid[c.cool_index]) if c.cool_index >= 0 else None
                    best = (adj, form, use_w, c.coef, hcp, ccp)
        if best is None:
            raise InsufficientData("no billing model could be fitted")
        _, self.form, self.use_w, coef, self.heat_cp, self.cool_cp = best
        names = ["b0"] + (["bw"] if self.use_w else [])
        names += (["bh"] if self.heat_cp is not None else []) + (
            ["bc"] if self.cool_cp is not None else []
        )
        self.coef = {nm: float(v) for nm, v in zip(names, coef, strict=True)}
        predicted = self.predict(data)
        n_cp = (self.heat_cp is not None) + (self.cool_cp is not None)
        self.stats = fit_stats(
            np.where(ok, data.energy, np.nan),
            predicted,
            len(self.coef) + n_cp,
            cap_n_eff=s.cap_n_eff,
        )
        return self

    def predict(self, data: BillingData) -> FloatArray:
        """Energy per period (NaN for a period with days missing or without temperature)."""
        days, w, complete = self._base(data)
        t = data.daily.temperature
        upd = np.full(len(data), self.coef.get("b0", math.nan))
        if self.use_w:
            upd = upd + self.coef["bw"] * w
        if self.heat_cp is not None:
            upd = (
                upd
                + self.coef["bh"] * self._period_means(data, np.maximum(self.heat_cp - t, 0.0))[0]
            )
        if self.cool_cp is not None:
            upd = (
                upd
                + self.coef["bc"] * self._period_means(data, np.maximum(t - self.cool_cp, 0.0))[0]
            )
        return np.where(complete, upd * days, np.nan)

    def predict_days(self, daily: DailyData) -> FloatArray:
        """Use of each day at its own temperature and day type (NaN without a temperature).
        The model is linear in per-day terms, so a period's days sum to `predict` of the
        period: what a contract's daily statements count."""
        t = daily.temperature
        upd = np.full(len(daily), self.coef.get("b0", math.nan))
        if self.use_w:
            upd = upd + self.coef["bw"] * np.isin(daily.day_type, (WORKDAY, MAKEUP))
        if self.heat_cp is not None:
            upd = upd + self.coef["bh"] * np.maximum(self.heat_cp - t, 0.0)
        if self.cool_cp is not None:
            upd = upd + self.coef["bc"] * np.maximum(t - self.cool_cp, 0.0)
        return np.where(np.isfinite(t), upd, np.nan)

    def to_dict(self) -> dict[str, Any]:
        if self.stats is None:
            raise ValueError("the model is not fitted")
        return {
            "model": self.KIND,
            "version": 1,
            "settings": self.settings.to_dict(),
            "form": self.form,
            "use_w": self.use_w,
            "coef": dict(self.coef),
            "heat_cp": self.heat_cp,
            "cool_cp": self.cool_cp,
            "scores": dict(self.scores),
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BillingModel:
        if data.get("model") != cls.KIND:
            raise ValueError(f"not a {cls.KIND} model: {data.get('model')!r}")
        model = cls(BillingSettings(**data["settings"]))
        model.form = data["form"]
        model.use_w = bool(data["use_w"])
        model.coef = {k: float(v) for k, v in data["coef"].items()}
        model.heat_cp = data["heat_cp"]
        model.cool_cp = data["cool_cp"]
        model.scores = dict(data["scores"])
        model.stats = FitStats.from_dict(data["stats"])
        return model

    def describe(self) -> str:
        parts = [f"billing {self.form}{' +W' if self.use_w else ''}"]
        parts += [f"{k}={v:,.2f}" for k, v in self.coef.items()]
        if self.heat_cp is not None:
            parts.append(f"heating below {self.heat_cp:.1f}°C")
        if self.cool_cp is not None:
            parts.append(f"cooling above {self.cool_cp:.1f}°C")
        return ", ".join(parts)


def monthly_periods(daily: DailyData) -> BillingData:
    """Calendar-month billing periods with the daily energy summed (NaN if a day is missing)."""
    months = daily.day.astype("datetime64[M]")
    first, inverse = np.unique(months, return_inverse=True)
    start = first.astype("datetime64[D]")
    end = (first + 1).astype("datetime64[D]")
    summed = np.bincount(
        inverse, weights=np.nan_to_num(daily.energy, nan=0.0), minlength=len(first)
    )
    missing = np.bincount(
        inverse, weights=(~np.isfinite(daily.energy)).astype(float), minlength=len(first)
    )
    count = np.bincount(inverse, minlength=len(first))
    full = (end - start).astype(np.int64)
    energy = np.where((missing == 0) & (count == full), summed, np.nan).astype(np.float64)
    return BillingData(start, end, energy, daily)

"""Hourly time-of-week-and-temperature model (LBNL: Mathieu et al. 2011; CalTRACK 2.0 hourly).

    occupied hour:    E = a[slot] + sum_j b_j Tc_j(T)      (piecewise-linear in T)
    unoccupied hour:  E = a[slot] + b_u T

A *slot* is (kind of day, local hour). The anchors use the 168 hours of the week; a Chinese
government building also needs its statutory holidays and make-up workdays (调休), so in
`day_types="calendar"` mode the kinds of day are Monday..Sunday for ordinary days plus
`holiday` and `makeup_workday` of their own (9 x 24 slots). A kind of day with fewer than
`min_category_days` days in the fit borrows a neighbour's slots: holidays Sunday's, make-up
workdays Wednesday's. `"weekday"` mode is the plain 168-slot model.

Temperature basis: knots 40, 55, 65, 80, 90 °F in °C; an outer knot with fewer than
`min_points_beyond_knot` points beyond it is dropped (CalTRACK 3.x hourly).

Occupancy: regress load on (10 °C - T)+ and (T - 18.3 °C)+ (50 °F, 65 °F); a slot is occupied
when more than 65 % of its residuals are positive.

One model over the whole baseline (the CalTRACK month-by-month weighting is not applied): the
monthly NMBE check that allows it is reported as a finding (`sufficiency.py`). Fitting is
ordinary least squares with the slot intercepts partialled out (demeaning within slots, the
Frisch-Waugh-Lovell theorem), so it costs a few passes over the rows rather than a
200-column solve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np

from core.errors import InsufficientData
from processing.frames import HOLIDAY, MAKEUP, WEEKEND, WORKDAY, FloatArray, HourlyData, IntArray
from processing.stats import FitStats, Granularity, fit_stats

N_CATEGORIES = 9  # Monday..Sunday, holiday, make-up workday
N_SLOTS = N_CATEGORIES * 24
_HOLIDAY_CAT, _MAKEUP_CAT = 7, 8
_FALLBACK = {_HOLIDAY_CAT: 6, _MAKEUP_CAT: 2}  # Sunday's and Wednesday's hours


@dataclass(frozen=True, slots=True)
class HourlySettings:
    """How the hourly model is fitted; stored with every fitted model."""

    day_types: Literal["calendar", "weekday"] = "calendar"
    knots_c: tuple[float, ...] = (4.4, 12.8, 18.3, 26.7, 32.2)
    min_points_beyond_knot: int = 20
    occupancy_heat_c: float = 10.0
    occupancy_cool_c: float = 18.3
    occupancy_threshold: float = 0.65
    min_category_days: int = 3
    cap_n_eff: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "knots_c": list(self.knots_c)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourlySettings:
        return cls(**{**data, "knots_c": tuple(data["knots_c"])})


def temperature_basis(t: FloatArray, knots: tuple[float, ...]) -> FloatArray:
    """Piecewise-linear columns whose sum is T: min(T, k1), clip(T - k1, 0, k2 - k1), ..."""
    k = len(knots)
    out = np.zeros((len(t), k + 1))
    if k == 0:
        out[:, 0] = t
        return out
    out[:, 0] = np.minimum(t, knots[0])
    for j in range(1, k):
        out[:, j] = np.clip(t - knots[j - 1], 0.0, knots[j] - knots[j - 1])
    out[:, k] = np.maximum(t - knots[-1], 0.0)
    return out


class HourlyTOWTModel:
    """Time-of-week-and-temperature model with holidays as their own day type."""

    KIND = "hourly-towt"
    GRANULARITY: ClassVar[Granularity] = "hourly"

    def __init__(self, settings: HourlySettings | None = None) -> None:
        self.settings = settings or HourlySettings()
        self.knots: tuple[float, ...] = ()
        self.alpha = np.full(N_SLOTS, np.nan)
        self.occupied = np.zeros(N_SLOTS, dtype=bool)
        self.beta_occupied: FloatArray = np.zeros(0)
        self.beta_unoccupied = 0.0
        self.category_map = list(range(N_CATEGORIES))
        self.stats: FitStats | None = None

    def raw_categories(self, data: HourlyData) -> IntArray:
        wd = data.hour_of_week // 24
        if self.settings.day_types == "weekday":
            return np.asarray(wd, dtype=np.int64)
        codes = data.day_type
        weekend_day = wd >= 5
        cat = np.asarray(wd, dtype=np.int64).copy()
        cat[codes == HOLIDAY] = _HOLIDAY_CAT
        cat[codes == MAKEUP] = _MAKEUP_CAT
        cat[(codes == WORKDAY) & weekend_day] = _MAKEUP_CAT  # a site-declared working weekend
        cat[(codes == WEEKEND) & ~weekend_day] = 6  # a site-declared day off on a weekday
        return cat

    def slots(self, data: HourlyData) -> IntArray:
        cat = np.asarray(self.category_map)[self.raw_categories(data)]
        return np.asarray(cat * 24 + data.hour_of_week % 24, dtype=np.int64)

    def fit(self, data: HourlyData) -> Self:
        s = self.settings
        ok = data.valid
        if ok.sum() < 24 * 14:
            raise InsufficientData(
                f"an hourly model needs at least two weeks of valid hours, got {int(ok.sum())}"
            )
        d = data.take(ok)
        t, y = d.temperature, d.energy

        # Kinds of day too rare to stand alone borrow a neighbour's slots.
        raw = self.raw_categories(d)
        self.category_map = list(range(N_CATEGORIES))
        for cat, fallback in _FALLBACK.items():
            n_days = len(np.unique(d.day[raw == cat]))
            if n_days < s.min_category_days:
                self.category_map[cat] = fallback
        slot = self.slots(d)

        # Occupancy (Mathieu et al. 2011): share of positive residuals per slot.
        x_occ = np.column_stack(
            [
                np.ones_like(t),
                np.maximum(s.occupancy_heat_c - t, 0.0),
                np.maximum(t - s.occupancy_cool_c, 0.0),
            ]
        )
        coef, *_ = np.linalg.lstsq(x_occ, y, rcond=None)
        positive = (y - x_occ @ coef) > 0
        count = np.bincount(slot, minlength=N_SLOTS)
        share = np.bincount(slot, weights=positive.astype(np.float64), minlength=N_SLOTS)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.occupied = np.where(count > 0, share / count > s.occupancy_threshold, False)

        # Knots: drop outer ones with too few points beyond.
        knots = list(s.knots_c)
        while knots and (t < knots[0]).sum() < s.min_points_beyond_knot:
            knots.pop(0)
        while knots and (t > knots[-1]).sum() < s.min_points_beyond_knot:
            knots.pop()
        self.knots = tuple(knots)

        features = self._features(t, slot)
        # Partial out the slot intercepts: demean within slots, solve, recover intercepts.
        safe = np.maximum(count, 1)
        y_mean = np.bincount(slot, weights=y, minlength=N_SLOTS) / safe
        f_mean = np.stack(
            [np.bincount(slot, weights=f, minlength=N_SLOTS) / safe for f in features.T], 1
        )
        fd = features - f_mean[slot]
        yd = y - y_mean[slot]
        beta, *_ = np.linalg.lstsq(fd, yd, rcond=None)
        alpha = np.where(count > 0, y_mean - f_mean @ beta, np.nan).astype(np.float64)
        self.beta_occupied = np.asarray(beta[:-1], dtype=np.float64)
        self.beta_unoccupied = float(beta[-1])
        self.alpha = _fill_missing_slots(alpha)

        rank = int(np.linalg.matrix_rank(fd)) if len(fd) else 0
        p = int((count > 0).sum()) + rank
        predicted = self.predict(data)
        self.stats = fit_stats(
            np.where(ok, data.energy, np.nan), predicted, p, cap_n_eff=s.cap_n_eff
        )
        return self

    def _features(self, t: FloatArray, slot: IntArray) -> FloatArray:
        occ = self.occupied[slot]
        basis = temperature_basis(t, self.knots) * occ[:, None]
        return np.column_stack([basis, np.where(occ, 0.0, t)])

    def predict(self, data: HourlyData) -> FloatArray:
        """Energy per hour (NaN where the temperature is unknown)."""
        if not np.isfinite(self.alpha).any():
            raise ValueError("the model is not fitted")
        slot = self.slots(data)
        features = self._features(np.nan_to_num(data.temperature), slot)
        beta = np.append(self.beta_occupied, self.beta_unoccupied)
        out = self.alpha[slot] + features @ beta
        return np.where(np.isfinite(data.temperature), out, np.nan)

    def to_dict(self) -> dict[str, Any]:
        if self.stats is None:
            raise ValueError("the model is not fitted")
        return {
            "model": self.KIND,
            "version": 1,
            "settings": self.settings.to_dict(),
            "knots_c": list(self.knots),
            "category_map": list(self.category_map),
            "alpha": [float(a) for a in self.alpha],
            "occupied": [bool(o) for o in self.occupied],
            "beta_occupied": [float(b) for b in self.beta_occupied],
            "beta_unoccupied": self.beta_unoccupied,
            "stats": self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourlyTOWTModel:
        if data.get("model") != cls.KIND:
            raise ValueError(f"not a {cls.KIND} model: {data.get('model')!r}")
        model = cls(HourlySettings.from_dict(data["settings"]))
        model.knots = tuple(float(k) for k in data["knots_c"])
        model.category_map = [int(c) for c in data["category_map"]]
        model.alpha = np.array(data["alpha"], dtype=np.float64)
        model.occupied = np.array(data["occupied"], dtype=bool)
        model.beta_occupied = np.array(data["beta_occupied"], dtype=np.float64)
        model.beta_unoccupied = float(data["beta_unoccupied"])
        model.stats = FitStats.from_dict(data["stats"])
        return model

    def describe(self) -> str:
        occupied = int(self.occupied.sum())
        return (
            f"TOWT: {occupied} of {N_SLOTS} slots occupied, knots {list(self.knots)} °C, "
            f"occupied slopes {np.round(self.beta_occupied, 2).tolist()}, "
            f"unoccupied slope {self.beta_unoccupied:.2f}"
        )


def _fill_missing_slots(alpha: FloatArray) -> FloatArray:
    """Slots the fit never saw take the same hour of a kindred day (working or not)."""
    out = alpha.copy()
    by_cat = out.reshape(N_CATEGORIES, 24)
    kin = {
        0: (2, 1, 3, 4, 8),
        1: (2, 0, 3, 4, 8),
        2: (1, 3, 0, 4, 8),
        3: (2, 1, 4, 0, 8),
        4: (3, 2, 1, 0, 8),
        5: (6, 7),
        6: (5, 7),
        7: (6, 5),
        8: (2, 1, 3, 0, 4),
    }
    for cat in range(N_CATEGORIES):
        for hour in range(24):
            if np.isnan(by_cat[cat, hour]):
                for other in kin[cat] + tuple(range(N_CATEGORIES)):
                    if np.isfinite(alpha[other * 24 + hour]):
                        by_cat[cat, hour] = alpha[other * 24 + hour]
                        break
    return out

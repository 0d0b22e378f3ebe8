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

Segmentation (CalTRACK 2.0 hourly methods, "three-month weighted"): one model per calendar month,
fitted on that month's hours with weight 1 and the two neighbouring months' with weight 0.5,
and each hour predicted by its own month's model. `segmentation="auto"` (the default) first
fits one model over the whole baseline and keeps it when it passes CalTRACK's single-model
test (at most 2 baseline months with |NMBE| > 1 %); otherwise it fits the twelve weighted
models. The months that failed are kept (`single_model_failures`) for the findings. A month
whose weighted data cannot support a model (fewer than two weeks) uses the single model.

Fitting is weighted least squares with the slot intercepts partialled out (weighted demeaning
within slots, the Frisch-Waugh-Lovell theorem), so it costs a few passes over the rows rather
than a 200-column solve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np

from core.errors import InsufficientData
from processing.frames import HOLIDAY, MAKEUP, WEEKEND, WORKDAY, FloatArray, HourlyData, IntArray
from processing.stats import FitStats, Granularity, fit_stats, monthly_nmbe_values
from processing.uncertainty import HeldOutMonths

N_CATEGORIES = 9  # Monday..Sunday, holiday, make-up workday
N_SLOTS = N_CATEGORIES * 24
_HOLIDAY_CAT, _MAKEUP_CAT = 7, 8
_FALLBACK = {_HOLIDAY_CAT: 6, _MAKEUP_CAT: 2}  # Sunday's and Wednesday's hours
SINGLE_MODEL_NMBE = 0.01  # CalTRACK: a month fails the single-model test beyond |NMBE| 1 %
SINGLE_MODEL_MAX_FAILURES = 2  # ... and the single model is allowed with at most 2 such months

Segmentation = Literal["auto", "single", "three_month_weighted"]


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
    segmentation: Segmentation = "auto"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "knots_c": list(self.knots_c)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourlySettings:
        # `segmentation` came later: a model stored before it was one single model.
        return cls(**{"segmentation": "single", **data, "knots_c": tuple(data["knots_c"])})


@dataclass(frozen=True, slots=True)
class TOWTParams:
    """One fitted time-of-week-and-temperature model (the whole baseline, or one month's)."""

    knots: tuple[float, ...]
    category_map: tuple[int, ...]
    alpha: FloatArray
    occupied: np.ndarray
    beta_occupied: FloatArray
    beta_unoccupied: float
    p: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "knots_c": list(self.knots),
            "category_map": list(self.category_map),
            "alpha": [float(a) for a in self.alpha],
            "occupied": [bool(o) for o in self.occupied],
            "beta_occupied": [float(b) for b in self.beta_occupied],
            "beta_unoccupied": self.beta_unoccupied,
            "p": self.p,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TOWTParams:
        return cls(
            knots=tuple(float(k) for k in data["knots_c"]),
            category_map=tuple(int(c) for c in data["category_map"]),
            alpha=np.array(data["alpha"], dtype=np.float64),
            occupied=np.array(data["occupied"], dtype=bool),
            beta_occupied=np.array(data["beta_occupied"], dtype=np.float64),
            beta_unoccupied=float(data["beta_unoccupied"]),
            p=int(data.get("p", 0)),
        )


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


def month_of(days: np.ndarray) -> IntArray:
    """Calendar month 1..12 of local dates."""
    return np.asarray(days.astype("datetime64[M]").astype(np.int64) % 12 + 1, dtype=np.int64)


def month_weights(months: IntArray, month: int) -> FloatArray:
    """CalTRACK's three-month weights for `month`: 1 inside, 0.5 in either neighbour."""
    prev, nxt = (month - 2) % 12 + 1, month % 12 + 1
    return np.where(months == month, 1.0, np.where((months == prev) | (months == nxt), 0.5, 0.0))


class HourlyTOWTModel:
    """Time-of-week-and-temperature model with holidays as their own day type."""

    KIND = "hourly-towt"
    GRANULARITY: ClassVar[Granularity] = "hourly"

    def __init__(self, settings: HourlySettings | None = None) -> None:
        self.settings = settings or HourlySettings()
        self.single: TOWTParams | None = None
        self.monthly: dict[int, TOWTParams] = {}  # calendar month -> its weighted model
        self.single_model_failures: tuple[tuple[str, float], ...] = ()
        self.stats: FitStats | None = None
        self.heldout: HeldOutMonths | None = None  # set by the baseline fit (uncertainty.py)

    @property
    def segmentation(self) -> Literal["single", "three_month_weighted"]:
        return "three_month_weighted" if self.monthly else "single"

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

    def fit(self, data: HourlyData) -> Self:
        s = self.settings
        ok = data.valid
        if ok.sum() < 24 * 14:
            raise InsufficientData(
                f"an hourly model needs at least two weeks of valid hours, got {int(ok.sum())}"
            )
        d = data.take(ok)
        self.heldout = None
        self.monthly = {}
        self.single = self._fit_params(d, np.ones(len(d)))
        months = [str(x)[:7] for x in d.day]
        failures = monthly_nmbe_values(months, d.energy, self._predict_with(self.single, d))
        self.single_model_failures = tuple(
            (m, v) for m, v in failures if abs(v) > SINGLE_MODEL_NMBE
        )
        segment = s.segmentation == "three_month_weighted" or (
            s.segmentation == "auto" and len(self.single_model_failures) > SINGLE_MODEL_MAX_FAILURES
        )
        if segment:
            moy = month_of(d.day)
            for month in range(1, 13):
                w = month_weights(moy, month)
                if (w > 0).sum() < 24 * 14:
                    continue
                try:
                    self.monthly[month] = self._fit_params(d.take(w > 0), w[w > 0])
                except (InsufficientData, np.linalg.LinAlgError):
                    continue
        p = sum(par.p for par in self.monthly.values()) if self.monthly else self.single.p
        predicted = self.predict(data)
        self.stats = fit_stats(
            np.where(ok, data.energy, np.nan),
            predicted,
            min(p, int(ok.sum()) // 2),
            cap_n_eff=s.cap_n_eff,
        )
        return self

    def _fit_params(self, d: HourlyData, w: FloatArray) -> TOWTParams:
        """One weighted TOWT fit over rows `d` (all valid) with weights `w` > 0."""
        s = self.settings
        t, y = d.temperature, d.energy
        raw = self.raw_categories(d)
        category_map = list(range(N_CATEGORIES))
        for cat, fallback in _FALLBACK.items():
            if len(np.unique(d.day[raw == cat])) < s.min_category_days:
                category_map[cat] = fallback
        slot = np.asarray(np.asarray(category_map)[raw] * 24 + d.hour_of_week % 24)

        # Occupancy (Mathieu et al. 2011): weighted share of positive residuals per slot.
        sw = np.sqrt(w)
        x_occ = np.column_stack(
            [
                np.ones_like(t),
                np.maximum(s.occupancy_heat_c - t, 0.0),
                np.maximum(t - s.occupancy_cool_c, 0.0),
            ]
        )
        coef, *_ = np.linalg.lstsq(x_occ * sw[:, None], y * sw, rcond=None)
        positive = (y - x_occ @ coef) > 0
        count = np.bincount(slot, minlength=N_SLOTS)
        weight = np.bincount(slot, weights=w, minlength=N_SLOTS)
        share = np.bincount(slot, weights=w * positive, minlength=N_SLOTS)
        with np.errstate(invalid="ignore", divide="ignore"):
            occupied = np.where(weight > 0, share / weight > s.occupancy_threshold, False)

        # Knots: drop outer ones with too few points beyond.
        knots = list(s.knots_c)
        while knots and (t < knots[0]).sum() < s.min_points_beyond_knot:
            knots.pop(0)
        while knots and (t > knots[-1]).sum() < s.min_points_beyond_knot:
            knots.pop()

        features = _features(t, occupied[slot], tuple(knots))
        # Partial out the slot intercepts: weighted demeaning within slots, then solve.
        safe = np.where(weight > 0, weight, 1.0)
        y_mean = np.bincount(slot, weights=w * y, minlength=N_SLOTS) / safe
        f_mean = np.stack(
            [np.bincount(slot, weights=w * f, minlength=N_SLOTS) / safe for f in features.T], 1
        )
        fd = (features - f_mean[slot]) * sw[:, None]
        yd = (y - y_mean[slot]) * sw
        beta, *_ = np.linalg.lstsq(fd, yd, rcond=None)
        alpha = np.where(count > 0, y_mean - f_mean @ beta, np.nan).astype(np.float64)
        rank = int(np.linalg.matrix_rank(fd)) if len(fd) else 0
        return TOWTParams(
            knots=tuple(knots),
            category_map=tuple(category_map),
            alpha=_fill_missing_slots(alpha),
            occupied=np.asarray(occupied, dtype=bool),
            beta_occupied=np.asarray(beta[:-1], dtype=np.float64),
            beta_unoccupied=float(beta[-1]),
            p=int((count > 0).sum()) + rank,
        )

    def _predict_with(self, par: TOWTParams, data: HourlyData) -> FloatArray:
        slot = np.asarray(par.category_map)[self.raw_categories(data)] * 24 + data.hour
        features = _features(np.nan_to_num(data.temperature), par.occupied[slot], par.knots)
        beta = np.append(par.beta_occupied, par.beta_unoccupied)
        out: FloatArray = par.alpha[slot] + features @ beta
        return out

    def predict(self, data: HourlyData) -> FloatArray:
        """Energy per hour (NaN where the temperature is unknown)."""
        if self.single is None:
            raise ValueError("the model is not fitted")
        out = self._predict_with(self.single, data)
        if self.monthly:
            moy = month_of(data.day)
            for month, par in self.monthly.items():
                sel = moy == month
                if sel.any():
                    out[sel] = self._predict_with(par, data.take(sel))
        return np.where(np.isfinite(data.temperature), out, np.nan)

    def to_dict(self) -> dict[str, Any]:
        if self.stats is None or self.single is None:
            raise ValueError("the model is not fitted")
        return {
            "model": self.KIND,
            "version": 2,
            "settings": self.settings.to_dict(),
            **self.single.to_dict(),
            "segmentation": self.segmentation,
            "monthly": {str(m): par.to_dict() for m, par in sorted(self.monthly.items())},
            "single_model_failures": [[m, v] for m, v in self.single_model_failures],
            "stats": self.stats.to_dict(),
            "heldout": None if self.heldout is None else self.heldout.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourlyTOWTModel:
        if data.get("model") != cls.KIND:
            raise ValueError(f"not a {cls.KIND} model: {data.get('model')!r}")
        model = cls(HourlySettings.from_dict(data["settings"]))
        model.single = TOWTParams.from_dict(data)
        model.monthly = {
            int(m): TOWTParams.from_dict(p) for m, p in data.get("monthly", {}).items()
        }
        model.single_model_failures = tuple(
            (str(m), float(v)) for m, v in data.get("single_model_failures", [])
        )
        model.stats = FitStats.from_dict(data["stats"])
        if data.get("heldout") is not None:
            model.heldout = HeldOutMonths.from_dict(data["heldout"])
        return model

    def describe(self) -> str:
        par = self.single
        if par is None:
            return "TOWT: not fitted"
        head = (
            f"TOWT: {int(par.occupied.sum())} of {N_SLOTS} slots occupied, knots "
            f"{list(par.knots)} °C, occupied slopes {np.round(par.beta_occupied, 2).tolist()}, "
            f"unoccupied slope {par.beta_unoccupied:.2f}"
        )
        if self.monthly:
            head += (
                f"; {len(self.single_model_failures)} baseline months failed the single-model "
                f"test: {len(self.monthly)} three-month-weighted monthly models (CalTRACK)"
            )
        return head


def _features(t: FloatArray, occ: np.ndarray, knots: tuple[float, ...]) -> FloatArray:
    basis = temperature_basis(t, knots) * occ[:, None]
    return np.column_stack([basis, np.where(occ, 0.0, t)])


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

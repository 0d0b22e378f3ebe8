"""Daily change-point baseline models by day type (ASHRAE RP-1050; CalTRACK 3.x daily).

Energy per day against the day's mean outdoor temperature T (°C), with `(x)+ = max(x, 0)`:

    1P   E = b0
    2P   E = b0 + b1 T
    3PC  E = b0 + bc (T - tc)+
    3PH  E = b0 + bh (th - T)+
    4P   E = b0 + bh (t - T)+ + bc (T - t)+           (one change point)
    5P   E = b0 + bh (th - T)+ + bc (T - tc)+         th < tc

Day types. A government building runs its HVAC and lights on working days and not on others,
so the model has two *segments*, each with its own change points and slopes: working days
(`workday`, `makeup_workday`) and days off (`weekend`, `holiday`). Within a segment each day
type the data supports (at least `min_day_type_days` of them) gets its own intercept b0; a
rarer one shares the segment's main intercept. A segment with fewer than `min_segment_days`
days joins the other, keeping its intercepts. `day_types="weekday"` splits Monday-Friday from
Saturday-Sunday regardless of the calendar, and `"none"` fits one model: the comparisons the
tests and the benchmark make (the open-source anchors know no holidays nor make-up workdays).

Change points: grid search over the observed temperatures leaving at least
`min_points_beyond` days beyond every change point, every `coarse_step_c` °C, then every
`fine_step_c` °C around the best; least squares at every candidate, minimum SSE, physically
signed slopes (`changepoint.py`). Selection among the forms by adjusted R² (CalTRACK 2.0 and
later: no p-value screen); `p` counts intercepts, slopes and change points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal, Self

import numpy as np

from core.errors import InsufficientData
from processing.frames import (
    DAY_TYPES,
    HOLIDAY,
    MAKEUP,
    WEEKEND,
    WORKDAY,
    DailyData,
    FloatArray,
    IntArray,
    weekday,
)
from processing.models import changepoint as cp
from processing.stats import FitStats, Granularity, fit_stats
from processing.uncertainty import HeldOutMonths

Form = Literal["1P", "2P", "3PC", "3PH", "4P", "5P"]
FORMS: tuple[Form, ...] = ("1P", "2P", "3PC", "3PH", "4P", "5P")
DayTypeMode = Literal["calendar", "weekday", "none"]

# The segments of the calendar mode: (name, day types). The first listed is the default base.
_SEGMENTS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("working", (WORKDAY, MAKEUP)),
    ("off", (WEEKEND, HOLIDAY)),
)


@dataclass(frozen=True, slots=True)
class DailySettings:
    """How the daily model is fitted; stored with every fitted model."""

    day_types: DayTypeMode = "calendar"
    forms: tuple[Form, ...] = FORMS
    min_segment_days: int = 30
    min_day_type_days: int = 5
    min_points_beyond: int = 10
    coarse_step_c: float = 1.0
    fine_step_c: float = 0.1
    cap_n_eff: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "forms": list(self.forms)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DailySettings:
        return cls(**{**data, "forms": tuple(data["forms"])})


@dataclass(frozen=True, slots=True)
class Segment:
    """One fitted segment: its form, change points, intercepts by day type and slopes."""

    name: str
    day_types: tuple[int, ...]
    form: Form
    intercepts: dict[int, float]  # day-type code -> b0 (the base's and the supported others')
    base: int  # the day type whose intercept rarer ones share
    slope: float = 0.0  # 2P
    heat_slope: float = 0.0
    cool_slope: float = 0.0
    heat_cp: float | None = None
    cool_cp: float | None = None
    n: int = 0
    p: int = 0
    adj_r2: float = 0.0
    t_min: float = math.nan
    t_max: float = math.nan
    scores: dict[str, float] = field(default_factory=dict)  # form -> adjusted R², for the record

    def predict(self, temperature: FloatArray, codes: IntArray) -> FloatArray:
        b0 = np.array([self.intercepts.get(int(c), self.intercepts[self.base]) for c in range(4)])
        out = b0[codes].astype(np.float64)
        if self.form == "2P":
            out = out + self.slope * temperature
        if self.heat_cp is not None:
            out = out + self.heat_slope * np.maximum(self.heat_cp - temperature, 0.0)
        if self.cool_cp is not None:
            out = out + self.cool_slope * np.maximum(temperature - self.cool_cp, 0.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["day_types"] = [DAY_TYPES[c].value for c in self.day_types]
        d["intercepts"] = {DAY_TYPES[c].value: v for c, v in self.intercepts.items()}
        d["base"] = DAY_TYPES[self.base].value
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        codes = {t.value: i for i, t in enumerate(DAY_TYPES)}
        return cls(
            **{
                **data,
                "day_types": tuple(codes[t] for t in data["day_types"]),
                "intercepts": {codes[t]: float(v) for t, v in data["intercepts"].items()},
                "base": codes[data["base"]],
            }
        )


class DailyChangePointModel:
    """Daily change-point model by day type; see the module docstring."""

    KIND = "daily-changepoint"
    GRANULARITY: ClassVar[Granularity] = "daily"

    def __init__(self, settings: DailySettings | None = None) -> None:
        self.settings = settings or DailySettings()
        self.segments: list[Segment] = []
        self.segment_of: dict[int, int] = {}  # day-type code -> index into segments
        self.stats: FitStats | None = None
        self.heldout: HeldOutMonths | None = None  # set by the baseline fit (uncertainty.py)

    # -- fitting -------------------------------------------------------------------------

    def codes(self, data: DailyData) -> IntArray:
        """The day types this model distinguishes, from the data's calendar codes."""
        mode = self.settings.day_types
        if mode == "calendar":
            return np.asarray(data.day_type, dtype=np.int64)
        if mode == "weekday":
            return np.where(weekday(data.day) < 5, WORKDAY, WEEKEND).astype(np.int64)
        return np.zeros(len(data), dtype=np.int64)

    def fit(self, data: DailyData) -> Self:
        self.heldout = None
        ok = data.valid
        s = self.settings
        if ok.sum() < max(s.min_segment_days, 10):
            raise InsufficientData(
                f"a daily model needs at least {max(s.min_segment_days, 10)} valid days, "
                f"got {int(ok.sum())}"
            )
        t = data.temperature[ok]
        y = data.energy[ok]
        codes = self.codes(data)[ok]
        groups = [(name, types) for name, types in _SEGMENTS if np.isin(codes, types).sum() > 0]
        sizes = [int(np.isin(codes, types).sum()) for _, types in groups]
        if len(groups) > 1 and min(sizes) < s.min_segment_days:
            groups = [("all", tuple(c for _, types in groups for c in types))]
        self.segments = [
            self._fit_segment(name, types, t[m], y[m], codes[m])
            for name, types in groups
            if (m := np.isin(codes, types)).any()
        ]
        self.segment_of = {}
        for code in range(4):
            home = next((i for i, seg in enumerate(self.segments) if code in seg.day_types), None)
            if home is None:  # a kind of day the fit never saw: its calendar segment's kin
                kin = next(types for _, types in _SEGMENTS if code in types)
                home = next(
                    (i for i, seg in enumerate(self.segments) if set(kin) & set(seg.day_types)),
                    0,
                )
            self.segment_of[code] = home
        predicted = self.predict(data)
        self.stats = fit_stats(
            np.where(ok, data.energy, np.nan), predicted, self.n_parameters, cap_n_eff=s.cap_n_eff
        )
        return self

    @property
    def n_parameters(self) -> int:
        return sum(seg.p for seg in self.segments)

    def _fit_segment(
        self, name: str, types: tuple[int, ...], t: FloatArray, y: FloatArray, codes: IntArray
    ) -> Segment:
        s = self.settings
        counts = {c: int((codes == c).sum()) for c in types}
        base = max(types, key=lambda c: (counts[c], -types.index(c)))
        own = [base] + [c for c in types if c != base and counts[c] >= s.min_day_type_days]
        d = np.stack([(codes == c) if c != base else ~np.isin(codes, own[1:]) for c in own], 1)
        d = d.astype(np.float64)
        k = d.shape[1]
        n = len(y)
        sst = float(np.sum((y - y.mean()) ** 2))

        def adj_r2(sse: float, p: int) -> float:
            if n - p <= 0:
                return -math.inf
            return 1.0 - (sse / (n - p)) / (sst / (n - 1)) if sst > 0 else 0.0

        m = min(s.min_points_beyond, max(n // 4, 1))
        ts = np.sort(t)
        lo, hi = (ts[m], ts[n - m - 1]) if n > 2 * m + 1 else (math.nan, math.nan)
        grid = cp.coarse_grid(lo, hi, s.coarse_step_c)

        fits: dict[Form, tuple[float, int, FloatArray, float | None, float | None]] = {}
        if "1P" in s.forms:
            b = cp.blocks(d, y, None, None, None)
            c1 = cp.solve(b, None, None)
            if c1 is not None:
                fits["1P"] = (c1.sse, k, c1.coef, None, None)
        if "2P" in s.forms:
            b2 = cp.blocks(d, y, None, t[None, :], None)
            c2 = cp.solve(b2, np.zeros(1, dtype=np.int64), None, signed=False)
            if c2 is not None:
                fits["2P"] = (c2.sse, k + 1, c2.coef, None, None)
        if len(grid):
            # One set of cross products over the coarse grid serves every form's coarse search.
            h = np.maximum(grid[:, None] - t[None, :], 0.0)
            c = np.maximum(t[None, :] - grid[:, None], 0.0)
            coarse_blocks = cp.blocks(d, y, None, h, c)
            for form in ("3PC", "3PH", "4P", "5P"):
                if form in s.forms:
                    found = self._search(form, d, t, y, grid, lo, hi, coarse_blocks)
                    if found is not None:
                        fits[form] = found
        if not fits:
            raise InsufficientData(f"segment {name!r}: no candidate model could be fitted")
        scores = {f: adj_r2(v[0], v[1]) for f, v in fits.items()}
        best: Form = max(fits, key=lambda f: (scores[f], -FORMS.index(f)))
        _sse, p, coef, heat_cp, cool_cp = fits[best]
        intercepts = {c: float(coef[i]) for i, c in enumerate(own)}
        seg = Segment(
            name=name,
            day_types=types,
            form=best,
            intercepts=intercepts,
            base=base,
            n=n,
            p=p,
            adj_r2=scores[best],
            t_min=float(t.min()),
            t_max=float(t.max()),
            scores={f: round(v, 6) for f, v in scores.items()},
        )
        extra: dict[str, Any] = {}
        if best == "2P":
            extra["slope"] = float(coef[k])
        elif best in ("3PH", "4P", "5P"):
            extra |= {"heat_slope": float(coef[k]), "heat_cp": heat_cp}
        if best == "3PC":
            extra |= {"cool_slope": float(coef[k]), "cool_cp": cool_cp}
        elif best in ("4P", "5P"):
            extra |= {"cool_slope": float(coef[k + 1]), "cool_cp": cool_cp}
        return replace(seg, **extra)

    def _search(
        self,
        form: str,
        d: FloatArray,
        t: FloatArray,
        y: FloatArray,
        grid: FloatArray,
        lo: float,
        hi: float,
        coarse_blocks: cp.Blocks,
    ) -> tuple[float, int, FloatArray, float | None, float | None] | None:
        """Coarse then fine grid search of one change-point form."""
        s = self.settings
        k = d.shape[1]

        def run(
            gh: FloatArray | None, gc: FloatArray | None, b: cp.Blocks | None = None
        ) -> cp.Candidate | None:
            if b is None:
                h = np.maximum(gh[:, None] - t[None, :], 0.0) if gh is not None else None
                c = np.maximum(t[None, :] - gc[:, None], 0.0) if gc is not None else None
                b = cp.blocks(d, y, None, h, c, coarse_blocks.dtd_inv)
            if form == "3PH":
                assert gh is not None
                return cp.solve(b, np.arange(len(gh)), None)
            if form == "3PC":
                assert gc is not None
                return cp.solve(b, None, np.arange(len(gc)))
            assert gh is not None
            assert gc is not None
            if form == "4P":
                i = np.arange(len(gh))
                return cp.solve(b, i, i)
            hi_, ci_ = np.nonzero(gh[:, None] < gc[None, :] - 1e-9)
            if len(hi_) == 0:
                return None
            return cp.solve(b, hi_, ci_)

        heat_grid = grid if form in ("3PH", "4P", "5P") else None
        cool_grid = grid if form in ("3PC", "4P", "5P") else None
        coarse = run(heat_grid, cool_grid, coarse_blocks)
        if coarse is None:
            return None
        width = s.coarse_step_c
        fine_h = fine_c = None
        if heat_grid is not None:
            fine_h = cp.fine_grid(heat_grid[coarse.heat_index], width, s.fine_step_c, lo, hi)
        if cool_grid is not None:
            fine_c = cp.fine_grid(cool_grid[coarse.cool_index], width, s.fine_step_c, lo, hi)
        if form == "4P":
            fine_c = fine_h
        fine = run(fine_h, fine_c)
        if fine is None or fine.sse > coarse.sse:
            fine, fine_h, fine_c = coarse, heat_grid, cool_grid
        heat_cp = float(fine_h[fine.heat_index]) if fine_h is not None else None
        cool_cp = float(fine_c[fine.cool_index]) if fine_c is not None else None
        n_cp = {"3PC": 1, "3PH": 1, "4P": 1, "5P": 2}[form]
        n_slopes = 2 if form in ("4P", "5P") else 1
        return fine.sse, k + n_slopes + n_cp, fine.coef, heat_cp, cool_cp

    # -- predicting ----------------------------------------------------------------------

    def predict(self, data: DailyData) -> FloatArray:
        """Energy per day for the data's temperatures and day types (NaN without T)."""
        if not self.segments:
            raise ValueError("the model is not fitted")
        codes = self.codes(data)
        out = np.full(len(data), np.nan)
        which = np.array([self.segment_of[c] for c in range(4)])[codes]
        for i, seg in enumerate(self.segments):
            m = which == i
            if m.any():
                out[m] = seg.predict(data.temperature[m], codes[m])
        return out

    # -- serialising ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if self.stats is None:
            raise ValueError("the model is not fitted")
        return {
            "model": self.KIND,
            "version": 1,
            "settings": self.settings.to_dict(),
            "segments": [seg.to_dict() for seg in self.segments],
            "segment_of": {DAY_TYPES[c].value: i for c, i in self.segment_of.items()},
            "stats": self.stats.to_dict(),
            "heldout": None if self.heldout is None else self.heldout.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DailyChangePointModel:
        if data.get("model") != cls.KIND:
            raise ValueError(f"not a {cls.KIND} model: {data.get('model')!r}")
        model = cls(DailySettings.from_dict(data["settings"]))
        model.segments = [Segment.from_dict(s) for s in data["segments"]]
        codes = {t.value: i for i, t in enumerate(DAY_TYPES)}
        model.segment_of = {codes[t]: int(i) for t, i in data["segment_of"].items()}
        model.stats = FitStats.from_dict(data["stats"])
        if data.get("heldout") is not None:
            model.heldout = HeldOutMonths.from_dict(data["heldout"])
        return model

    def describe(self) -> str:
        """One line per segment, for people."""
        lines = []
        for seg in self.segments:
            parts = [f"{seg.name}: {seg.form}"]
            parts += [f"b0[{DAY_TYPES[c].value}]={v:,.1f}" for c, v in seg.intercepts.items()]
            if seg.form == "2P":
                parts.append(f"slope={seg.slope:,.2f}/°C")
            if seg.heat_cp is not None:
                parts.append(f"heating {seg.heat_slope:,.2f}/°C below {seg.heat_cp:.1f}°C")
            if seg.cool_cp is not None:
                parts.append(f"cooling {seg.cool_slope:,.2f}/°C above {seg.cool_cp:.1f}°C")
            parts.append(f"n={seg.n} adjR²={seg.adj_r2:.3f}")
            lines.append(", ".join(parts))
        return "\n".join(lines)

"""The physical anomalies as loads added to the model, quarter hour by quarter hour.

`SiteModel.evaluate()` calls `PhysicsAnomalies.apply()` on each meter's own load (after the
model's noise, before summing up the hierarchy), so an anomaly shows in the meter, in every
meter above it, in its counters and in everything derived from its load:

- `leak`: the flow added to the water meter, constant (a pipe does not follow office hours);
- `plant_on`: the chiller (or heat pump) runs at least at its minimum load, with one
  chilled-water pump, and the BTU meters see its minimum duty; the plant's mode is cooling
  (heating) while it runs;
- `base_load_step`: a constant load added, `share` of the meter's night load (its mean own
  load between 01:00 and 05:00 local over the seven nights before the step, without
  anomalies) or `kw`;
- `demand_peak`: the incomer's unmetered load raised so that it reads `share` of its
  transformer's rating (`[alarms.rules.transformer_load] rated_kva`, as kW: the simulated
  incomers report no power factor; without one, the model's own rating of the incomer) or
  `kw`, losses included in what it reads.

A quarter the anomaly covers in part gets that part of the load, so energy is exact at any
boundary. Anomalies apply to both worlds (actual and counterfactual): they are not savings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from core.config import Anomaly
from core.config.anomalies import DEFAULT_LEAK_M3H, DEFAULT_PEAK_SHARE, DEFAULT_STEP_SHARE
from simulators.roles import Role, SiteSpec
from simulators.timegrid import DAY_MS, QUARTER_MS, local_times

if TYPE_CHECKING:
    from simulators.model import SiteModel

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

MIN_PART_LOAD = 0.15
"""A chiller or heat pump left on with no demand runs at its minimum part load."""
NIGHT = (1.0, 5.0)
"""Local hours whose mean own load is a meter's night load."""
NIGHT_DAYS = 7

RollUp = Callable[[F64], tuple[F64, F64]]


def coverage(anomaly: Anomaly, q0: int, n: int) -> F64:
    """The share of each quarter [q0, q0 + n) the anomaly covers, 0..1."""
    qs = (q0 + np.arange(n, dtype=np.int64)) * QUARTER_MS
    end = anomaly.end_ms
    hi = np.minimum(qs + QUARTER_MS, end if end is not None else np.iinfo(np.int64).max)
    lo = np.maximum(qs, anomaly.start_ms)
    out: F64 = np.clip((hi - lo) / QUARTER_MS, 0.0, 1.0)
    return out


class PhysicsAnomalies:
    """The physical anomalies of one model (`leak`, `plant_on`, `base_load_step`,
    `demand_peak`); the others are ignored here."""

    def __init__(self, model: SiteModel, anomalies: Sequence[Anomaly]) -> None:
        self._model = model
        self.items: tuple[Anomaly, ...] = tuple(a for a in anomalies if a.physics)
        spec = model.spec
        for a in self.items:
            if a.meter not in spec.index:
                raise ValueError(f"anomaly at unknown meter {a.meter!r}")
        self._steps: dict[int, float] = {}

    def __bool__(self) -> bool:
        return bool(self.items)

    def _spec(self) -> SiteSpec:
        return self._model.spec

    def apply(self, q0: int, own_a: F64, own_c: F64 | None, mode: I8, roll_up: RollUp) -> None:
        """Add the anomalies active in quarters [q0, q0 + len(own_a)) to the own loads (the
        counterfactual's too unless it is None: the same array) and `mode`, in place."""
        n = own_a.shape[0]
        peaks: list[tuple[int, F64, Anomaly]] = []
        for k, a in enumerate(self.items):
            cov = coverage(a, q0, n)
            if not cov.any():
                continue
            i = self._spec().index[a.meter]
            if a.kind == "demand_peak":
                peaks.append((i, cov, a))
                continue
            for own in (own_a, own_c):
                if own is None:
                    continue
                if a.kind == "leak":
                    own[:, i] += cov * (a.flow_m3h if a.flow_m3h is not None else DEFAULT_LEAK_M3H)
                elif a.kind == "base_load_step":
                    own[:, i] += cov * self._step_kw(k, a, i)
                elif a.kind == "plant_on":
                    self._plant_on(own, i, cov, a)
            if a.kind == "plant_on":
                unit_mode = 1 if self._spec().meters[i].role is Role.CHILLER else 2
                mode[(cov > 0) & (mode == 0)] = unit_mode
        if peaks:
            reading, _ = roll_up(own_a)
            for i, cov, a in peaks:
                rated = self.rating(i)
                target = a.kw if a.kw is not None else (a.share or DEFAULT_PEAK_SHARE) * rated
                extra = cov * np.maximum(target - reading[:, i], 0.0)
                own_a[:, i] += extra
                if own_c is not None:
                    own_c[:, i] += extra

    def rating(self, i: int) -> float:
        """Incomer column `i`'s rating, kW: its transformer's rated kVA from the site's
        `[alarms.rules.transformer_load]`, else the model's own."""
        spec = self._spec().meters[i]
        rated = self._model.site.alarms.rules.transformer_load.rated_kva.get(spec.id)
        return float(rated) if rated is not None else spec.rated_kw

    def _plant_on(self, own: F64, i: int, cov: F64, a: Anomaly) -> None:
        from simulators.model import CHILLER_COP

        spec = self._spec()
        p = spec.plant
        if spec.meters[i].role is Role.CHILLER:
            plr = MIN_PART_LOAD
            duty = plr * p.chiller_kw_th
            power = p.chiller_kw_th / CHILLER_COP * (0.25 + 0.25 * plr + 0.5 * plr**2)
        else:  # an air-source heat pump at mild-weather COP, with its auxiliaries
            duty = MIN_PART_LOAD * p.heat_pump_kw_th
            power = duty / 3.1 + 0.012 * p.heat_pump_kw_th
        if a.kw is not None:
            power = a.kw

        def at_least(col: int, load: float) -> None:
            own[:, col] += cov * np.maximum(load - own[:, col], 0.0)

        at_least(i, power)
        if p.chw_pumps:
            at_least(p.chw_pumps[0], 0.88 * p.pump_chw_kw)
        for s in spec.meters:
            if s.role is Role.BTU:
                at_least(s.index, duty)

    def _step_kw(self, k: int, a: Anomaly, i: int) -> float:
        if a.kw is not None:
            return a.kw
        if k not in self._steps:
            self._steps[k] = (a.share or DEFAULT_STEP_SHARE) * self.night_load(i, a.start_ms)
        return self._steps[k]

    def night_load(self, i: int, before_ms: int) -> float:
        """Mean own load of meter column `i` between 01:00 and 05:00 local over the nights
        of the seven days before `before_ms`, without anomalies."""
        model = self._model
        q1 = before_ms // QUARTER_MS
        q0 = q1 - NIGHT_DAYS * DAY_MS // QUARTER_MS
        ev = model.evaluate(q0, q1 - q0, anomalies=False)
        mid = ev.ts_ms + QUARTER_MS // 2
        lt = local_times(mid, model.site.site.tz, model.site.work_calendar)
        night = (lt.hour >= NIGHT[0]) & (lt.hour < NIGHT[1])
        return float(ev.own_actual[night, i].mean()) if night.any() else 0.0

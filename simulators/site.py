"""The live virtual site: every meter's values at any instant, for the servers and the demo.

    sim = SimulatedSite(site, clock=AcceleratedClock(3600), seed=0)
    sim.values("E-D01")                 # now, by the clock
    sim.values("E-D01", now_ms)         # any instant
    sim.source("E-D01")                 # now_ms -> values, for a SimulatedUnit or a publisher
    sim.true_savings_kwh("E-TR1", a, b) # counterfactual - actual over [a, b)
    SimulatedSite(site, anomalies=plan.anomalies)  # with a leak, a chiller left on, ...

Values are those of `simulators.history` at the same instant: the model is evaluated one
UTC day at a time (cached), minute by minute; counters are the start value plus the energy
integrated from the epoch, so they only grow, survive restarts, and match a history written
to the store before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.config import Anomaly, MeterKind, SiteConfig
from simulators import derive
from simulators.clock import Clock, RealClock
from simulators.history import (
    CounterState,
    available_quantities,
    jitter,
    meter_values,
    true_savings,
)
from simulators.model import SiteModel
from simulators.roles import MeterSpec
from simulators.timegrid import DAY_MS, MINUTE_MS

F64 = npt.NDArray[np.float64]

ValueSource = Callable[[int], dict[str, float]]


@dataclass(frozen=True)
class _Day:
    start: CounterState
    readings: F64
    """(1440, meters) minute means."""
    cum: F64
    """(1441, meters) energy since the day's start at each minute boundary."""
    cum_cool: F64
    cum_heat: F64
    mode: npt.NDArray[np.int8]
    """(1440,) plant mode per minute."""


class SimulatedSite:
    """Live values of every meter of a site (thread-safe)."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        clock: Clock | Callable[[], int] | None = None,
        seed: int | None = None,
        model: SiteModel | None = None,
        anomalies: Sequence[Anomaly] = (),
    ) -> None:
        """`anomalies`: the physical ones are played by the model (the others are what the
        servers report: give them to the servers' `FaultPlan`)."""
        self.site = site
        self.seed = site.simulation.seed if seed is None else seed
        self.clock: Callable[[], int] = clock or RealClock()
        physics = tuple(a for a in anomalies if a.physics)
        self.model = (
            model
            if model is not None and model.seed == self.seed and model.anomalies == physics
            else SiteModel(site, self.seed, physics)
        )
        self._days: OrderedDict[int, _Day] = OrderedDict()
        self._starts: dict[int, CounterState] = {}
        self._lock = threading.Lock()
        self._roots = {
            s.index: derive.root_of(s, self.model.spec.meters) for s in self.model.spec.meters
        }
        self._quantities = {m.id: available_quantities(site, m.id) for m in site.meters}
        self._derived: dict[str, tuple[int, dict[str, float], float]] = {}

    # ------------------------------------------------------------------ days

    def _start_of(self, d: int) -> CounterState:
        """Counters at the start of UTC day d: known from the day before, or integrated
        from the epoch (once, the first time)."""
        if d not in self._starts:
            self._starts[d] = CounterState.at_quarter(self.model, d * 96)
        return self._starts[d]

    def _day(self, d: int) -> _Day:
        day = self._days.get(d)
        if day is not None:
            self._days.move_to_end(d)
            return day
        ev = self.model.evaluate(d * 96, 96)
        r = self.model.minute_readings(ev)
        e = r / 60.0
        mode = np.repeat(ev.mode, 15)
        zero = np.zeros((1, r.shape[1]))
        cum = np.vstack([zero, np.cumsum(e, axis=0)])
        cum_cool = np.vstack([zero, np.cumsum(e * (mode == 1)[:, None], axis=0)])
        cum_heat = np.vstack([zero, np.cumsum(e * (mode == 2)[:, None], axis=0)])
        day = _Day(self._start_of(d), r, cum, cum_cool, cum_heat, mode)
        self._days[d] = day
        self._starts.setdefault(d + 1, day.start.advanced(cum[-1], cum_cool[-1], cum_heat[-1]))
        while len(self._days) > 4:
            self._days.popitem(last=False)
        return day

    # ------------------------------------------------------------------ values

    def spec(self, meter_id: str) -> MeterSpec:
        self.site.meter(meter_id)  # NotFound for an unknown id
        return self.model.spec.spec(meter_id)

    def values(self, meter_id: str, now_ms: int | None = None) -> dict[str, float]:
        """Every quantity the meter reports at `now_ms` (default: the clock), canonical units."""
        t = self.clock() if now_ms is None else int(now_ms)
        s = self.spec(meter_id)
        i = s.index
        with self._lock:
            d = t // DAY_MS
            day = self._day(d)
            m = (t - d * DAY_MS) // MINUTE_MS
            frac_h = (t - d * DAY_MS - m * MINUTE_MS) / 3_600_000.0
            p = float(day.readings[m, i])
            mode = int(day.mode[m])
            total = float(day.start.total[i] + day.cum[m, i]) + p * frac_h
            cool = float(day.start.cool[i] + day.cum_cool[m, i]) + (
                p * frac_h if mode == 1 else 0.0
            )
            heat = float(day.start.heat[i] + day.cum_heat[m, i]) + (
                p * frac_h if mode == 2 else 0.0
            )
            root = self._roots[i]
            root_kw = float(day.readings[m, root]) if root is not None else 0.0
        # voltages, power factor and the like are recomputed once per simulated second;
        # counters and power are exact at every call
        second = t // 1000
        cached = self._derived.get(meter_id)
        if cached is None or cached[0] != second:
            ts = np.array([t], dtype=np.int64)
            wx = self.model.weather.at(ts)
            root_load = (
                {root: np.array([root_kw / max(self.model.spec.meters[root].rated_kw, 1.0)])}
                if root is not None
                else {}
            )
            ctx = derive.Context(ts, np.array([mode], dtype=np.int8), wx.temperature, root_load)
            arrays = meter_values(
                self.model,
                s,
                ts,
                np.array([p]),
                np.array([total]),
                np.array([cool]),
                np.array([heat]),
                ctx,
                root,
                wx,
                self._quantities[meter_id],
            )
            derived = {q: float(arrays[q][0]) for q in self._quantities[meter_id] if q in arrays}
            factor = 1.0 + 0.003 * float(jitter(s, ts)[0])
            cached = (second, derived, factor)
            self._derived[meter_id] = cached
        out = dict(cached[1])
        kind = s.meter.kind
        if kind is MeterKind.ELECTRICITY:
            if "power" in out:
                out["power"] = p * cached[2]
            for q in ("energy_import", "energy_total"):
                if q in out:
                    out[q] = total
        elif kind is MeterKind.WATER:
            if "flow" in out:
                out["flow"] = p
            if "volume" in out:
                out["volume"] = total
        elif kind is MeterKind.THERMAL:
            for q, v in (
                ("thermal_energy", total),
                ("cooling_energy", cool),
                ("heating_energy", heat),
                ("volume", total * derive.BTU_M3_PER_KWH),
            ):
                if q in out:
                    out[q] = v
        return out

    def source(self, meter_id: str) -> ValueSource:
        self.spec(meter_id)
        return lambda now_ms: self.values(meter_id, now_ms)

    def true_savings_kwh(self, meter_id: str, start_ms: int, end_ms: int) -> float:
        """Counterfactual - actual energy of a meter over [start, end) (quarter-aligned)."""
        cf, act = true_savings(self.model, start_ms, end_ms, [meter_id])
        return float(cf[0] - act[0])

"""History: a site's readings over a date range, straight from the model, vectorised.

    history = generate_history(site, datetime(2024, 7, 1, tzinfo=UTC),
                               datetime(2026, 7, 1, tzinfo=UTC), interval="1h", seed=0)
    history.readings            # store-ready ReadingBatch
    history.true_savings_kwh    # per meter: counterfactual - actual, per interval

Times are interval *start* times, UTC epoch ms, aligned to the interval in UTC. At each
time the readings hold what a collector polling then would store: counters (cumulative
kWh / m3 since the meter was installed, from a plausible non-zero value) and instantaneous
values (power, flow, temperatures, ...). Interval energies (`actual_kwh`, ...) are what
the counters advance over [ts, ts + interval).

Counters are a pure function of time: the model integrates from a fixed epoch
(`[simulation] epoch`, default 2024-01-01 local), so a history from January and one from
June, and a live simulated meter, all show the same counter at the same instant.

`iter_history()` yields the same thing in chunks (for ranges too long to hold at once:
a year at one minute is ~130 M readings); `generate_history()` concatenates them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from core.config import MeterKind, SiteConfig
from core.readings import ReadingBatch, to_ms
from simulators import derive
from simulators.faults import FaultPlan, apply_to_series
from simulators.model import Evaluation, SiteModel
from simulators.roles import MeterSpec, local_midnight_ms
from simulators.timegrid import MINUTE_MS, QUARTER_MS

if TYPE_CHECKING:
    from simulators.site import SimulatedSite

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

INTERVALS: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60}
"""Supported intervals, in minutes."""


@dataclass(frozen=True)
class History:
    """A site's simulated history. Arrays of per-interval values have shape (n,)."""

    ts_ms: npt.NDArray[np.int64]
    """Interval start times, UTC epoch ms."""
    interval_ms: int
    readings: ReadingBatch
    """Store-ready readings: counters (cumulative, sampled at each ts) and instantaneous
    values, in canonical units."""
    true_savings_kwh: dict[str, F64]
    """Per meter: counterfactual - actual energy in each interval (kWh; m3 for water);
    zero before the contract's reporting start."""
    counterfactual_kwh: dict[str, F64]
    """Per meter: energy in each interval without the retrofit."""
    actual_kwh: dict[str, F64]
    """Per meter: energy in each interval with it (what the counters advance by)."""
    outdoor_temperature: F64
    """Outdoor temperature at each ts, degC (the weather station's truth)."""
    meter_ids: tuple[str, ...] = field(default=())
    """The meters whose readings are included."""

    @classmethod
    def concat(cls, parts: Sequence[History]) -> History:
        if not parts:
            raise ValueError("no history parts")
        first = parts[0]
        keys = first.actual_kwh.keys()
        return cls(
            ts_ms=np.concatenate([p.ts_ms for p in parts]),
            interval_ms=first.interval_ms,
            readings=ReadingBatch.concat([p.readings for p in parts]),
            true_savings_kwh={
                k: np.concatenate([p.true_savings_kwh[k] for p in parts]) for k in keys
            },
            counterfactual_kwh={
                k: np.concatenate([p.counterfactual_kwh[k] for p in parts]) for k in keys
            },
            actual_kwh={k: np.concatenate([p.actual_kwh[k] for p in parts]) for k in keys},
            outdoor_temperature=np.concatenate([p.outdoor_temperature for p in parts]),
            meter_ids=first.meter_ids,
        )


def available_quantities(site: SiteConfig, meter_id: str) -> tuple[str, ...]:
    """Every quantity the meter's register map or payload format carries."""
    from collectors.profiles import get_profile

    m = site.meter(meter_id)
    if m.modbus is not None:
        return tuple(dict.fromkeys(f.quantity for f in get_profile(m.modbus.profile).fields))
    assert m.mqtt is not None
    return tuple(dict.fromkeys(f.quantity for f in site.format_of(m).fields))


def selected_quantities(site: SiteConfig, meter_id: str, quantities: str) -> tuple[str, ...]:
    if quantities not in ("core", "all"):
        raise ValueError(f"quantities must be 'core' or 'all', not {quantities!r}")
    have = available_quantities(site, meter_id)
    return have if quantities == "all" else tuple(q for q in have if q in derive.CORE)


def epoch_ms(site: SiteConfig) -> int:
    return local_midnight_ms(site, site.simulation.epoch)


class CounterState:
    """Counter readings of every meter at one instant: total, and its cooling and heating
    parts (thermal meters count those separately)."""

    def __init__(self, total: F64, cool: F64, heat: F64) -> None:
        self.total = total
        self.cool = cool
        self.heat = heat

    @classmethod
    def at_quarter(cls, model: SiteModel, q: int) -> CounterState:
        """The counters at the start of quarter q: start values plus the model's energy
        since the epoch."""
        cached = model.counter_cache.get(q)
        if cached is None:
            q_epoch = epoch_ms(model.site) // QUARTER_MS
            total, cool, heat = model.energy_between(q_epoch, q)
            start = model.start_values
            cached = (start + total, 0.7 * start + cool, 0.3 * start + heat)
            model.counter_cache[q] = cached
        return cls(*(a.copy() for a in cached))

    def advanced(self, total: F64, cool: F64, heat: F64) -> CounterState:
        return CounterState(self.total + total, self.cool + cool, self.heat + heat)


def _check_range(start: datetime, end: datetime, interval: str) -> tuple[int, int, int]:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    step = INTERVALS[interval] * MINUTE_MS
    a, b = to_ms(start), to_ms(end)
    if b <= a:
        raise ValueError("end must come after start")
    if a % step or b % step:
        raise ValueError(f"start and end must be aligned to the interval ({interval}, in UTC)")
    return a, b, step


def iter_history(
    site: SiteConfig,
    start: datetime,
    end: datetime,
    *,
    interval: str = "15m",
    seed: int = 0,
    meters: Sequence[str] | None = None,
    quantities: str = "core",
    faults: FaultPlan | None = None,
    model: SiteModel | None = None,
    chunk_days: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[History]:
    """`generate_history()` in chunks of `chunk_days` (default: 7 days at 1-5 minutes,
    56 days otherwise). `progress` is called with the ms of time covered after each."""
    a, b, step = _check_range(start, end, interval)
    physics = tuple(x for x in faults.anomalies if x.physics) if faults is not None else ()
    if model is None:
        model = SiteModel(site, seed, physics)
    elif physics and model.anomalies != physics:
        raise ValueError(
            "the model does not play the plan's anomalies: "
            "pass SiteModel(site, seed, anomalies=plan.anomalies)"
        )
    ids = tuple(meters) if meters is not None else tuple(m.id for m in site.meters)
    for mid in ids:
        site.meter(mid)  # raises NotFound
    sel = [model.spec.spec(mid) for mid in ids]
    wanted = {s.id: selected_quantities(site, s.id, quantities) for s in sel}
    step_min = step // MINUTE_MS
    days = chunk_days or (7 if step_min < 15 else 56)
    chunk = max(step, (days * 86_400_000 // step) * step)
    # counters at the first instant
    qa = a // QUARTER_MS
    state = CounterState.at_quarter(model, qa)
    if a % QUARTER_MS:
        ev = model.evaluate(qa, 1)
        part = model.minute_readings(ev)[: (a - qa * QUARTER_MS) // MINUTE_MS] / 60.0
        mode = np.repeat(ev.mode, 15)[: len(part)]
        state = state.advanced(part.sum(0), part[mode == 1].sum(0), part[mode == 2].sum(0))
    roots = {s.index: derive.root_of(s, model.spec.meters) for s in sel}
    counters = _CountersAt(model)
    t = a
    while t < b:
        u = min(b, t + chunk)
        part_h, state = _chunk(model, t, u, step, sel, wanted, roots, state, faults, counters)
        if progress is not None:
            progress(u - t)
        yield part_h
        t = u


def generate_history(
    site: SiteConfig,
    start: datetime,
    end: datetime,
    *,
    interval: str = "15m",
    seed: int = 0,
    meters: Sequence[str] | None = None,
    quantities: str = "core",
    faults: FaultPlan | None = None,
    model: SiteModel | None = None,
) -> History:
    """The site's readings over [start, end) every `interval` ("1m", "5m", "15m", "30m",
    "1h"), with the true savings. `quantities`: "core" (consumption counters and their
    rates, weather) or "all" (every quantity the meter's profile or payload format has).
    `faults`: what a collector would have stored from faulty meters (see `faults`); none by
    default. Same arguments, same numbers."""
    return History.concat(
        list(
            iter_history(
                site,
                start,
                end,
                interval=interval,
                seed=seed,
                meters=meters,
                quantities=quantities,
                faults=faults,
                model=model,
            )
        )
    )


def _chunk(
    model: SiteModel,
    a: int,
    b: int,
    step: int,
    sel: list[MeterSpec],
    wanted: dict[str, tuple[str, ...]],
    roots: dict[int, int | None],
    state: CounterState,
    faults: FaultPlan | None,
    counters: _CountersAt,
) -> tuple[History, CounterState]:
    q0 = a // QUARTER_MS
    q1 = -(-b // QUARTER_MS)
    ev = model.evaluate_blocks(q0, q1 - q0)
    ts = np.arange(a, b, step, dtype=np.int64)
    n = len(ts)
    step_min = step // MINUTE_MS
    measures = model.first_measure_ms()
    with_cf = measures is not None and b > measures
    if step_min < 15:
        off = (a - q0 * QUARTER_MS) // MINUTE_MS
        n_min = (b - a) // MINUTE_MS
        r_min = model.minute_readings(ev)[off : off + n_min]
        e = r_min.reshape(n, step_min, -1).sum(axis=1) / 60.0
        inst = r_min[::step_min]
        mode_min = np.repeat(ev.mode, 15)[off : off + n_min]
        e_cool = (r_min * (mode_min == 1)[:, None]).reshape(n, step_min, -1).sum(axis=1) / 60.0
        e_heat = (r_min * (mode_min == 2)[:, None]).reshape(n, step_min, -1).sum(axis=1) / 60.0
        if with_cf:
            c_min = model.minute_readings(ev, "counterfactual")[off : off + n_min]
            e_cf = c_min.reshape(n, step_min, -1).sum(axis=1) / 60.0
        else:
            e_cf = e
        mode_at = mode_min[::step_min]
    else:
        k = step_min // 15
        e = (ev.actual * 0.25).reshape(n, k, -1).sum(axis=1)
        e_cf = (ev.counterfactual * 0.25).reshape(n, k, -1).sum(axis=1) if with_cf else e
        rows = np.arange(0, n * k, k, dtype=np.int64)
        inst = model.readings_at(ev, rows, np.zeros(n, dtype=np.int64))
        # cooling / heating parts (thermal counters) summed quarter by quarter, each in its
        # own mode, as the live meters and the counters' start values count them: splitting
        # an interval's total by the time spent in each mode drifted kWh a day from them
        e_q = ev.actual * 0.25
        e_cool = (e_q * (ev.mode == 1)[:, None]).reshape(n, k, -1).sum(axis=1)
        e_heat = (e_q * (ev.mode == 2)[:, None]).reshape(n, k, -1).sum(axis=1)
        mode_at = ev.mode[rows]
    before_total = _exclusive_cumsum(e)
    before_cool = _exclusive_cumsum(e_cool)
    before_heat = _exclusive_cumsum(e_heat)
    wx = model.weather.at(ts)
    ctx = derive.Context(
        ts_ms=ts,
        mode=mode_at,
        outdoor=wx.temperature,
        root_load={
            r: inst[:, r] / max(model.spec.meters[r].rated_kw, 1.0)
            for r in set(roots.values())
            if r is not None
        },
    )
    labels: list[tuple[str, str]] = []
    times: list[I64] = []
    vals: list[F64] = []
    act_d: dict[str, F64] = {}
    cf_d: dict[str, F64] = {}
    sav_d: dict[str, F64] = {}
    for s in sel:
        i = s.index
        qs = wanted[s.id]
        values = meter_values(
            model,
            s,
            ts,
            inst[:, i],
            state.total[i] + before_total[:, i],
            state.cool[i] + before_cool[:, i],
            state.heat[i] + before_heat[:, i],
            ctx,
            roots[i],
            wx,
            qs,
        )
        for q in qs:
            if q not in values:
                continue
            v = values[q]
            t_out = ts
            if faults is not None:
                t_out, v = apply_to_series(
                    faults, s.meter, q, ts, v, values, site=model.site, counter_at=counters(s.id, q)
                )
            labels.append((s.id, q))
            times.append(t_out)
            vals.append(np.asarray(v, dtype=np.float64))
        if s.meter.kind is not MeterKind.WEATHER:
            act_d[s.id] = e[:, i].copy()
            cf_d[s.id] = e_cf[:, i].copy()
            sav_d[s.id] = cf_d[s.id] - act_d[s.id]
    # advanced by the same running sums the counters were sampled from (not a pairwise
    # sum, which may differ by an ulp and make a counter step back at the chunk boundary)
    new_state = state.advanced(
        before_total[-1] + e[-1], before_cool[-1] + e_cool[-1], before_heat[-1] + e_heat[-1]
    )
    hist = History(
        ts_ms=ts,
        interval_ms=step,
        readings=_batch(labels, times, vals),
        true_savings_kwh=sav_d,
        counterfactual_kwh=cf_d,
        actual_kwh=act_d,
        outdoor_temperature=wx.temperature,
        meter_ids=tuple(s.id for s in sel),
    )
    return hist, new_state


class _CountersAt:
    """The true counters at any instant, for faults that reset or move them at an instant
    outside the chunk at hand (the live site's values: the same numbers, computed a day at
    a time, only when asked)."""

    def __init__(self, model: SiteModel) -> None:
        self._model = model
        self._sim: SimulatedSite | None = None

    def __call__(self, meter_id: str, quantity: str) -> Callable[[int], float]:
        def at(ms: int) -> float:
            if self._sim is None:
                from simulators.site import SimulatedSite

                m = self._model
                self._sim = SimulatedSite(m.site, seed=m.seed, model=m, anomalies=m.anomalies)
            return self._sim.values(meter_id, ms)[quantity]

        return at


def _exclusive_cumsum(e: F64) -> F64:
    """Energy before each interval (cumsum - e would wobble by an ulp: counters must not)."""
    out = np.zeros_like(e)
    np.cumsum(e[:-1], axis=0, out=out[1:])
    return out


def _batch(labels: list[tuple[str, str]], times: list[I64], vals: list[F64]) -> ReadingBatch:
    """One columnar batch; the label columns by repetition (np.full of objects is slow)."""
    if not labels:
        return ReadingBatch.empty()
    counts = [len(t) for t in times]
    return ReadingBatch(
        meter_id=np.repeat(np.array([m for m, _ in labels], dtype=object), counts),
        quantity=np.repeat(np.array([q for _, q in labels], dtype=object), counts),
        ts_ms=np.concatenate(times),
        value=np.concatenate(vals),
    )


def meter_values(
    model: SiteModel,
    s: MeterSpec,
    ts: I64,
    inst: F64,
    total: F64,
    cool: F64,
    heat: F64,
    ctx: derive.Context,
    root: int | None,
    wx: object,
    wanted: tuple[str, ...],
) -> dict[str, F64]:
    """Every quantity the meter reports at the instants `ts`."""
    from simulators.weather import WeatherSample

    kind = s.meter.kind
    out: dict[str, F64]
    if kind is MeterKind.WEATHER:
        assert isinstance(wx, WeatherSample)
        return derive.weather(wx.temperature, wx.humidity, wx.irradiance)
    if kind is MeterKind.ELECTRICITY:
        rich = any(q not in derive.CORE for q in wanted)
        if rich:
            three = "voltage_l2" in wanted or "current_l2" in wanted or "power_l1" in wanted
            fn = derive.electrical if three else derive.single_phase
            out = fn(s, inst, ctx, root, model.seed)
        else:
            out = {"power": inst}
        out["power"] = inst * (1.0 + 0.003 * jitter(s, ts))
        out["energy_import"] = total
        out["energy_export"] = np.zeros(len(ts))
        out["energy_total"] = total
        return out
    if kind is MeterKind.WATER:
        out = (
            derive.water(s, inst, ctx)
            if any(q not in derive.CORE for q in wanted)
            else {"flow": inst}
        )
        out["volume"] = total
        out["volume_reverse"] = np.zeros(len(ts))
        return out
    out = derive.thermal(s, inst, ctx)
    out["thermal_energy"] = total
    out["cooling_energy"] = cool
    out["heating_energy"] = heat
    out["volume"] = total * derive.BTU_M3_PER_KWH
    return out


def jitter(s: MeterSpec, ts: I64) -> F64:
    from simulators import rand

    return rand.noise(s.key ^ 0x717, ts // 1000)


def true_savings(
    model: SiteModel, start_ms: int, end_ms: int, meters: Sequence[str]
) -> tuple[F64, F64]:
    """(counterfactual kWh, actual kWh) per meter over [start, end), quarter-aligned."""
    q0, q1 = start_ms // QUARTER_MS, -(-end_ms // QUARTER_MS)
    idx = [model.spec.index[m] for m in meters]
    cf = np.zeros(len(idx))
    act = np.zeros(len(idx))
    q = q0
    while q < q1:
        n = min(96 * 56, q1 - q)
        ev: Evaluation = model.evaluate(q, n)
        cf += ev.counterfactual[:, idx].sum(axis=0) * 0.25
        act += ev.actual[:, idx].sum(axis=0) * 0.25
        q += n
    return cf, act

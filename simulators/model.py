"""The virtual site's physics, vectorised over quarter hours: what every meter measures.

`SiteModel.evaluate(q0, n)` computes, for the quarter hours [q0, q0 + n) (quarter index =
UTC ms // 900 000), the mean power of every electricity meter (kW), the mean flow of every
water meter (m3/h) and the mean thermal power of every thermal meter (kW), in two worlds:
*actual* (the contract's measures in place from their reporting start) and
*counterfactual* (never retrofitted). Same weather, same people, same noise: the
difference is the measures alone, interactive effects included (LED lamps give off less
heat, so the chillers work less in summer and the heat pumps more in winter).

The quarter hour is the unit of truth: minute values (`minutes()`) redistribute each
quarter's energy over its 15 minutes without changing the sum, so a 1-minute history, a
15-minute one and an hourly one agree exactly on every quarter's and hour's energy, and
counters agree at every quarter boundary.

Loads, in brief (sizes in `roles`):

- offices (each department's 照明插座 sub-meter): lamps x the department's activity, dimmed
  a little by daylight; office equipment with a standby floor (PCs, water boilers left on);
  desk-side heaters on cold days; a network closet;
- common lighting (corridors, lobbies, basement: on in office hours, a security level at
  night), facade lighting (dusk to 22:30, longer on festival nights), lifts (traffic at
  arrival, lunch and departure), the IT room (constant, its air conditioning following the
  weather), the canteen (breakfast, lunch, a dinner for those working late), meeting halls;
- the chiller plant: a cooling load from the outdoor temperature (lagged by the building's
  mass), solar gain, internal gains (lights, equipment, people) and the fresh air's
  enthalpy; chillers staged by load with a lead chiller rotating weekly, efficiency falling
  with the wet-bulb temperature and at part load; constant-speed pumps and tower fans
  following the chillers; a morning pull-down; air-source heat pumps in winter (capacity and
  COP falling with the cold, defrost in damp cold); air-handling units;
- thermal meters: the header's BTU meter sees what the plant delivers, energy valves their
  coil's share;
- water: people's use following presence, cleaning before office hours, the kitchen at
  meal times, irrigation on dry mornings, cooling-tower make-up from the heat rejected
  (evaporation with four cycles of concentration), a closed loop's top-ups;
- incomers: the sum of what they feed plus losses (busbar and cable I^2R, auxiliaries).

Anomalies (a leak, a chiller left on, a base-load step, a demand peak: `anomalies=` of
`SiteModel`, see `simulators.anomaly_physics`) add their loads in both worlds, so they show
in every meter above the one they happen at and in the counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from core.config import Anomaly, EndUse, SiteConfig
from simulators import rand
from simulators.anomaly_physics import PhysicsAnomalies
from simulators.occupancy import Occupancy, Templates, occupancy, templates
from simulators.roles import Role, SiteSpec, build_spec
from simulators.timegrid import HOLIDAY, QUARTER_MS, LocalTimes, local_times
from simulators.weather import Weather, enthalpy, wet_bulb

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

WARMUP = 32
"""Quarters evaluated before the window: the thermal lag's memory (8 h)."""
BLOCK = 96 * 14
"""Quarters evaluated at once: two weeks keep the arrays small enough to stay fast."""

# building envelope and plant, per m2 of gross floor area
UA_W_M2K = 2.2
"""Conduction and infiltration, W/(m2.K): a 2000s concrete frame with single glazing."""
SOLAR_M2 = 0.03
"""Solar gain per m2 of floor per W/m2 of global horizontal irradiance."""
FRESH_AIR_KG_S_PER_PERSON = 0.018
"""30 m3/h of outdoor air per person (GB 50736), plus door and window infiltration."""
COOLING_SETPOINT = 26.0
"""Government buildings may not cool below 26 degC (国办发〔2007〕42号)."""
HEATING_SETPOINT = 20.0
"""... nor heat above 20 degC."""
SITE_DAY_SIGMA = 0.03
"""Site-wide day-to-day variation no model explains (events, visitors, operators)."""
CHILLER_COP = 4.6
"""Centrifugal chiller at full load with 30 degC condenser water: a 2008 machine, tubes not
as clean as when new."""
STAGE_UP = 0.75
"""Operators start the next chiller at 75 % load (a common, conservative practice)."""
INDOOR_ENTHALPY = enthalpy(np.array([26.0]), np.array([55.0]))[0]


@dataclass(frozen=True)
class Evaluation:
    """Quarter-hour means of every meter, both worlds, for quarters [q0, q0 + n)."""

    q0: int
    own_actual: F64
    """(n, meters): each meter's own load, before its children and losses."""
    own_counterfactual: F64
    losses_actual: F64
    """(n, meters): incomer losses (zero elsewhere)."""
    losses_counterfactual: F64
    actual: F64
    """(n, meters): what each meter reads (own + children + losses)."""
    counterfactual: F64
    mode: npt.NDArray[np.int8]
    """(n,): 0 plant off, 1 cooling, 2 heating, 3 ventilation only."""
    chw_pumps: I64
    """(n,): chilled/hot-water pumps running."""
    temperature: F64
    """(n,): outdoor temperature at the quarter's midpoint."""

    @property
    def n(self) -> int:
        return int(self.actual.shape[0])

    @property
    def ts_ms(self) -> I64:
        out: I64 = (self.q0 + np.arange(self.n, dtype=np.int64)) * QUARTER_MS
        return out


@dataclass(frozen=True)
class _Offices:
    """The departments' office meters, as columns (for one vectorised pass)."""

    meters: I64
    tenants: I64
    area: F64
    lpd: F64
    plug_w: F64
    heaters: F64
    staff: F64
    lit: npt.NDArray[np.bool_]
    """Meters that carry their department's lamps."""
    equipment: npt.NDArray[np.bool_]
    """Meters that carry its equipment (照明插座: both)."""


def _fir_lag(x: F64, tau_q: float, taps: int) -> F64:
    """Exponentially weighted mean of the last `taps` samples (a finite memory, so a
    value never depends on how far back the evaluation started)."""
    w = np.exp(-np.arange(taps) / tau_q)
    w /= w.sum()
    full = np.convolve(x, w, mode="full")[: len(x)]
    # the first taps-1 values lack history: pad with the first sample
    head = np.cumsum(w)[: min(taps, len(x))]
    full[: len(head)] += x[0] * (1.0 - head)
    out: F64 = full
    return out


class SiteModel:
    """The site file's meters as a model; pure: the same quarters give the same numbers."""

    def __init__(self, site: SiteConfig, seed: int = 0, anomalies: Sequence[Anomaly] = ()) -> None:
        self.site = site
        self.seed = seed
        self.spec: SiteSpec = build_spec(site, seed)
        self.weather = Weather(seed, site.site.latitude, site.site.longitude, site.site.tz)
        self._tpl: Templates = templates(self.spec)
        self.n_meters = len(self.spec.meters)
        self._keys = np.array([s.key for s in self.spec.meters], dtype=np.uint64)
        self._sq = np.array([s.sigma_quarter for s in self.spec.meters])
        self._sm = np.array([s.sigma_minute for s in self.spec.meters])
        self._site_key = rand.key(seed, "site-day-noise")
        self.counter_cache: dict[int, tuple[F64, F64, F64]] = {}
        """Counter readings (total, cooling, heating) at quarter starts, once computed."""
        self._sharing: dict[tuple[int | None, Role], int] = {}
        for s in self.spec.meters:
            k = (s.tenant_index, s.role)
            self._sharing[k] = self._sharing.get(k, 0) + 1
        self._office = self._office_group()
        self._office_set = set(self._office.meters.tolist())
        self._meeting_buildings = {
            s.building_index for s in self.spec.meters if s.role is Role.MEETING
        }
        self._anomalies = PhysicsAnomalies(self, anomalies)
        self.anomalies: tuple[Anomaly, ...] = self._anomalies.items
        """The physical anomalies this model plays (the others are what meters report)."""

    def _office_group(self) -> _Offices:
        rows = []
        for s in self.spec.meters:
            if s.role not in (Role.OFFICE, Role.OFFICE_LIGHTING) or s.tenant_index is None:
                continue
            tenant = self.spec.tenants[s.tenant_index]
            if tenant.kind != "department":
                continue
            hb = self.spec.habits[s.tenant_index]
            rows.append(
                (
                    s.index,
                    s.tenant_index,
                    s.area_m2,
                    hb.lighting_w_m2,
                    hb.plug_w_staff,
                    hb.heaters,
                    float(tenant.staff) / self._sharing[(s.tenant_index, s.role)],
                    s.size >= 0 or s.role is Role.OFFICE_LIGHTING,
                    s.role is Role.OFFICE,
                )
            )
        cols = list(zip(*rows, strict=True)) if rows else [()] * 9
        return _Offices(
            meters=np.array(cols[0], dtype=np.int64),
            tenants=np.array(cols[1], dtype=np.int64),
            area=np.array(cols[2], dtype=np.float64),
            lpd=np.array(cols[3], dtype=np.float64),
            plug_w=np.array(cols[4], dtype=np.float64),
            heaters=np.array(cols[5], dtype=np.float64),
            staff=np.array(cols[6], dtype=np.float64),
            lit=np.array(cols[7], dtype=bool),
            equipment=np.array(cols[8], dtype=bool),
        )

    @cached_property
    def start_values(self) -> F64:
        """Counter readings at the epoch: two to six years of use at the meter's mean load
        (estimated from four sample weeks of 2024, one per season)."""
        weeks = [19_737, 19_828, 19_919, 20_011]  # local days: mid Jan, Apr, Jul, Oct 2024
        mean = np.zeros(self.n_meters)
        for d in weeks:
            ev = self.evaluate(d * 96, 7 * 96, anomalies=False)
            mean += ev.actual.mean(axis=0) / len(weeks)
        years = np.array(
            [2.0 + 4.0 * float(rand.uniform(s.key ^ 0x57A, [0])[0]) for s in self.spec.meters]
        )
        out: F64 = np.round(mean * 8760.0 * years + 100.0, 1)
        return out

    def first_measure_ms(self) -> int | None:
        return min((m.from_ms for m in self.spec.measures), default=None)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, q0: int, n: int, *, anomalies: bool = True) -> Evaluation:
        """Quarters [q0, q0 + n); `anomalies=False`: as if none were configured."""
        qa = q0 - WARMUP
        ts = (qa + np.arange(n + WARMUP, dtype=np.int64)) * QUARTER_MS
        mid = ts + QUARTER_MS // 2
        lt = local_times(mid, self.site.site.tz, self.site.work_calendar)
        wx = self.weather.at(mid)
        occ = occupancy(self.spec, self._tpl, lt)
        nm = self.n_meters
        size = n + WARMUP
        factors = self._measure_factors(ts)
        any_measure = any(np.any(f != 1.0) for f in factors.values())

        # column-major: the model writes one meter (column) at a time
        own_a = np.zeros((size, nm), order="F")
        own_c = own_a if not any_measure else np.zeros((size, nm), order="F")
        gains_a = np.zeros(size)
        gains_c = gains_a if not any_measure else np.zeros(size)

        def add(i: int, eu: EndUse, load: F64, gain: float) -> None:
            nonlocal gains_a, gains_c
            f = factors.get(eu)
            own_c[:, i] += load
            if any_measure:
                own_a[:, i] += load if f is None else load * f
                if gain:
                    gains_c += gain * load
                    gains_a += gain * (load if f is None else load * f)
            elif gain:
                gains_a += gain * load

        def add_many(idx: I64, eu: EndUse, load: F64, gain: float) -> None:
            nonlocal gains_a, gains_c
            f = factors.get(eu)
            own_c[:, idx] += load
            if any_measure:
                la = load if f is None else load * f[:, None]
                own_a[:, idx] += la
                if gain:
                    gains_c += gain * load.sum(axis=1)
                    gains_a += gain * la.sum(axis=1)
            elif gain:
                gains_a += gain * load.sum(axis=1)

        self._offices(occ, wx.irradiance, wx.temperature, add_many)
        self._electric_loads(lt, wx.irradiance, wx.temperature, occ, add)
        self._water_loads(lt, wx.cloud, wx.temperature, occ, own_a, own_c, factors)
        mode, chw = self._plant(lt, wx, occ, gains_a, gains_c, own_a, own_c, factors, any_measure)
        noise = self._quarter_noise(qa, size, lt.day)
        own_a *= noise
        if own_c is not own_a:
            own_c *= noise

        sl = slice(WARMUP, None)
        one_world = own_c is own_a
        own_a, own_c = own_a[sl], own_c[sl]
        mode = mode[sl]
        if anomalies and self._anomalies:
            self._anomalies.apply(q0, own_a, None if one_world else own_c, mode, self._roll_up)
        act, loss_a = self._roll_up(own_a)
        if own_c is own_a:
            cf, loss_c = act, loss_a
        else:
            cf, loss_c = self._roll_up(own_c)
        return Evaluation(
            q0=q0,
            own_actual=own_a,
            own_counterfactual=own_c,
            losses_actual=loss_a,
            losses_counterfactual=loss_c,
            actual=act,
            counterfactual=cf,
            mode=mode,
            chw_pumps=chw[sl],
            temperature=wx.temperature[sl],
        )

    def evaluate_blocks(self, q0: int, n: int, block: int = BLOCK) -> Evaluation:
        """`evaluate()` over a long range, computed in blocks (faster: smaller arrays)."""
        if n <= block:
            return self.evaluate(q0, n)
        parts = [self.evaluate(q, min(block, q0 + n - q)) for q in range(q0, q0 + n, block)]

        def cat(name: str) -> Any:
            return np.concatenate([getattr(p, name) for p in parts])

        return Evaluation(
            q0=q0,
            own_actual=cat("own_actual"),
            own_counterfactual=cat("own_counterfactual"),
            losses_actual=cat("losses_actual"),
            losses_counterfactual=cat("losses_counterfactual"),
            actual=cat("actual"),
            counterfactual=cat("counterfactual"),
            mode=cat("mode"),
            chw_pumps=cat("chw_pumps"),
            temperature=cat("temperature"),
        )

    def _measure_factors(self, ts: I64) -> dict[EndUse, F64]:
        out: dict[EndUse, F64] = {}
        for m in self.spec.measures:
            f = out.get(m.end_use, np.ones(len(ts)))
            out[m.end_use] = np.where(ts >= m.from_ms, f * (1.0 - m.reduction), f)
        return out

    def _quarter_noise(self, qa: int, size: int, local_day: I64) -> F64:
        """Multiplicative noise per meter and quarter: a smooth hourly part, a white part,
        a per-meter daily part, and a site-wide daily part (what no model explains: events,
        visitors, the facility team's habits) that makes whole-site days vary."""
        # Laid out (hour, quarter of the hour, meter) so that nothing is gathered; few
        # full-size temporaries on purpose (fresh large arrays cost page faults).
        h0 = qa // 4
        o = qa - h0 * 4
        n_h = (o + size + 3) // 4
        hours = h0 + np.arange(n_h + 1, dtype=np.int64)
        nodes = rand.noise(self._keys[None, :], hours[:, None])
        k = (np.arange(4) / 4.0)[None, :, None]
        blk = nodes[:-1, None, :] * (0.75 * (1.0 - k))
        blk += nodes[1:, None, :] * (0.75 * k)
        # white noise per quarter: four 16-bit uniforms from one hash per hour, centred and
        # scaled to unit variance (uniform on +-sqrt(3))
        h = rand.hash64(self._keys[None, :] ^ np.uint64(0x5EED), hours[:n_h, None])
        scale = 0.65 * 3.4641016
        for j in range(4):
            part = ((h >> np.uint64(16 * j)) & np.uint64(0xFFFF)).astype(np.float64)
            part *= scale / 65536.0
            part -= scale / 2.0
            blk[:, j, :] += part
        out = blk.reshape(n_h * 4, self.n_meters)[o : o + size]
        tmp = np.empty_like(out)
        first = int(local_day.min())
        days = np.arange(first, int(local_day.max()) + 1, dtype=np.int64)
        day_m = rand.noise(self._keys[None, :] ^ np.uint64(0xDA7), days[:, None])
        np.take(day_m, local_day - first, axis=0, out=tmp)
        tmp *= 0.5
        out += tmp
        out *= self._sq[None, :]
        site_day = rand.noise(self._site_key, days)[local_day - first]
        out += (1.0 + SITE_DAY_SIGMA * site_day)[:, None]
        np.maximum(out, 0.05, out=out)
        return out

    # ------------------------------------------------------------------ electricity

    def _offices(
        self, occ: Occupancy, ghi: F64, temp: F64, put: Callable[[I64, EndUse, F64, float], None]
    ) -> None:
        """Every department's office meters at once: lamps, equipment, the network closet."""
        o = self._office
        if not len(o.meters):
            return
        daylight = np.clip(ghi / 600.0, 0.0, 1.0)
        cold = np.clip((10.0 - temp) / 10.0, 0.0, 1.5)
        act = occ.activity[:, o.tenants]
        on = act * (1.08 * (1.0 - 0.25 * daylight))[:, None]
        np.clip(on, 0.0, 1.0, out=on)
        lit = o.lit
        lighting = (0.04 + 0.96 * on[:, lit]) * (o.area * o.lpd / 1000.0)[lit]
        put(o.meters[lit], EndUse.LIGHTING, lighting, 0.9)
        eq = o.equipment
        staff = o.staff[eq]
        plugs = act[:, eq] * (staff * o.plug_w[eq] / 1000.0)
        plugs += act[:, eq] * cold[:, None] * (staff * 0.12 * o.heaters[eq])
        plugs += o.area[eq] * 0.002 + staff * 0.035
        put(o.meters[eq], EndUse.PLUG, plugs, 0.85)
        it = np.broadcast_to(0.3 + o.area[eq] * 0.0002, plugs.shape)
        put(o.meters[eq], EndUse.IT, it, 0.5)

    def _electric_loads(
        self,
        lt: LocalTimes,
        ghi: F64,
        temp: F64,
        occ: Occupancy,
        put: Callable[[int, EndUse, F64, float], None],
    ) -> None:
        h = lt.hour
        working = lt.working
        summer = (lt.month >= 5) & (lt.month <= 9)
        pm_end = np.where(summer, 18.0, 17.5)
        daylight = np.clip(ghi / 600.0, 0.0, 1.0)
        cold = np.clip((10.0 - temp) / 10.0, 0.0, 1.5)
        festival = lt.day_type == HOLIDAY  # statutory holiday: festive facade lighting
        dark = ghi < 25.0
        for s in self.spec.meters:
            i = s.index
            role = s.role
            ti = s.tenant_index
            bi = s.building_index
            if role in (Role.OFFICE, Role.OFFICE_LIGHTING):
                if i in self._office_set:
                    continue  # done with all departments at once (_offices)
                area = s.area_m2
                tenant = self.spec.tenants[ti] if ti is not None else None
                hb = self.spec.habits[ti] if ti is not None else None
                if tenant is not None and tenant.kind == "department" and hb is not None:
                    act = occ.activity[:, ti]
                    staff = float(tenant.staff) / self._sharing[(ti, role)]
                    lpd, plug_w, heaters = hb.lighting_w_m2, hb.plug_w_staff, hb.heaters
                else:
                    act = occ.building_presence[:, bi]
                    staff = area / 15.0
                    lpd, plug_w, heaters = 9.0, 100.0, 0.3
                on = np.clip(act * (1.0 - 0.25 * daylight) * 1.08, 0.0, 1.0)
                lighting = area * lpd / 1000.0 * (0.04 + 0.96 * on)
                if s.size >= 0 or role is Role.OFFICE_LIGHTING:
                    put(i, EndUse.LIGHTING, lighting, 0.9)
                if role is Role.OFFICE:
                    standby = area * 0.002 + staff * 0.035
                    plugs = standby + staff * plug_w / 1000.0 * act
                    plugs = plugs + staff * 0.12 * heaters * cold * act
                    put(i, EndUse.PLUG, plugs, 0.85)
                    put(i, EndUse.IT, np.full(len(h), 0.3 + area * 0.0002), 0.5)
            elif role is Role.COMMON_LIGHTING:
                on_hours = working & (h >= 7.0) & (h < pm_end + 1.5)
                weekend_day = ~working & (h >= 8.0) & (h < 18.0)
                frac = np.where(on_hours, 0.95, np.where(weekend_day, 0.45, 0.25))
                put(i, EndUse.LIGHTING, s.size * frac, 0.9)
            elif role is Role.OUTDOOR_LIGHTING:
                evening = dark & (h >= 15.0) & ((h < 22.5) | (festival & (h < 23.5)))
                night = dark & ~evening
                frac = np.where(evening, np.where(festival, 1.0, 0.85), np.where(night, 0.15, 0.0))
                put(i, EndUse.LIGHTING, s.size * frac, 0.0)
            elif role is Role.LIFT:
                pres = occ.building_presence[:, bi]
                change = np.abs(np.diff(pres, prepend=pres[:1])) * 4.0
                traffic = np.clip(0.2 * pres + 1.2 * change + 0.25 * occ.lunch * pres, 0.0, 1.0)
                put(i, EndUse.LIFT, s.size * (0.9 + 11.0 * traffic), 0.3)
            elif role is Role.IT_ROOM:
                day = working & (h >= 8.5) & (h < 18.0)
                load = s.size * (1.0 + 0.006 * (temp - 20.0)) * (1.0 + 0.04 * day)
                put(i, EndUse.IT, load, 0.0)
            elif role is Role.CANTEEN:
                put(i, EndUse.PLUG, s.size * self._canteen(h, working, occ), 0.5)
                lit = working & (h >= 6.5) & (h < 19.0)
                put(i, EndUse.LIGHTING, s.size * 0.1 * np.where(lit, 1.0, 0.15), 0.9)
            elif role is Role.MEETING:
                use = np.clip(occ.meeting + 0.1 * occ.building_presence[:, bi], 0.0, 1.0)
                put(i, EndUse.LIGHTING, s.area_m2 * 0.012 * (0.06 + 0.94 * use), 0.9)
                put(i, EndUse.PLUG, s.area_m2 * 0.003 * (0.3 + 0.7 * use), 0.8)
            elif role in (
                Role.PLUG_PRINTER,
                Role.PLUG_DISPLAY,
                Role.PLUG_AV,
                Role.PLUG_TERMINALS,
                Role.PLUG_GENERIC,
            ):
                put(
                    i,
                    EndUse.PLUG,
                    s.size * self._device(s.meter.name, role, h, working, occ, ti, bi),
                    0.9,
                )
            elif role is Role.OTHER:
                put(i, s.meter.end_use, s.size * (0.3 + 0.7 * occ.building_presence[:, bi]), 0.0)

    @staticmethod
    def _canteen(h: F64, working: npt.NDArray[np.bool_], occ: Occupancy) -> F64:
        breakfast = (h >= 6.5) & (h < 8.5)
        prep = (h >= 9.5) & (h < 11.0)
        service = (h >= 11.0) & (h < 12.75)
        clean = (h >= 12.75) & (h < 14.0)
        dinner = (h >= 16.5) & (h < 18.75)
        work = np.select(
            [breakfast, prep, service, clean, dinner],
            [0.35, 0.4 + 0.3 * (h - 9.5) / 1.5, 1.0, 0.45, 0.2 + 1.5 * occ.site_overtime],
            0.12,
        )
        off = np.where((h >= 11.0) & (h < 12.5), 0.2, 0.12)
        out: F64 = np.where(working, work, off)
        return out

    @staticmethod
    def _device(
        name: str,
        role: Role,
        h: F64,
        working: npt.NDArray[np.bool_],
        occ: Occupancy,
        ti: int | None,
        bi: int,
    ) -> F64:
        act = (
            occ.activity[:, ti]
            if ti is not None and occ.activity[:, ti].max() > 0
            else occ.building_presence[:, bi]
        )
        if role is Role.PLUG_PRINTER:
            out: F64 = 0.03 + 0.6 * act
        elif role is Role.PLUG_DISPLAY:
            always = any(w in name for w in ("指挥", "应急", "command", "control"))
            on = working & (h >= 8.0) & (h < 18.5)
            out = np.where(on, 0.85, 0.55 if always else 0.02) + 0.1 * act
        elif role is Role.PLUG_AV:
            out = 0.25 + 0.75 * np.clip(occ.meeting, 0.0, 1.0)
        elif role is Role.PLUG_TERMINALS:
            out = 0.05 + 0.9 * np.clip(act * 1.1, 0.0, 1.0)
        else:
            out = 0.1 + 0.8 * act
        return out

    # ------------------------------------------------------------------ water

    def _water_loads(
        self,
        lt: LocalTimes,
        cloud: F64,
        temp: F64,
        occ: Occupancy,
        own_a: F64,
        own_c: F64,
        factors: dict[EndUse, F64],
    ) -> None:
        h = lt.hour
        working = lt.working
        f_dom = factors.get(EndUse.DOMESTIC_WATER)
        cleaning = working & (h >= 6.5) & (h < 8.0)
        zones: dict[int, float] = {}
        for s in self.spec.meters:
            if s.role is Role.WATER_ZONE:
                zones[s.building_index] = zones.get(s.building_index, 0.0) + s.size
        for s in self.spec.meters:
            i, bi, role = s.index, s.building_index, s.role
            if role is Role.WATER_MAIN or role is Role.WATER_ZONE:
                b_staff = self.spec.building_staff[bi]
                # m3/h: 40 L per person-day spread over ~8 h of presence; the cleaners' tenth of
                # it between 06:30 and 08:00; a drip
                base = b_staff * 0.040 / 8.0 * occ.building_presence[:, bi]
                base = (
                    base + np.where(cleaning, b_staff * 0.040 * 0.07, 0.0) + 0.01 * b_staff * 0.04
                )
                share = (1.0 - zones.get(bi, 0.0)) if role is Role.WATER_MAIN else s.size
                load = base * share
            elif role is Role.WATER_TENANT:
                ti = s.tenant_index
                p = occ.presence[:, ti] if ti is not None else occ.building_presence[:, bi]
                load = s.size / 8.0 * p
            elif role is Role.WATER_KITCHEN:
                # cooking and washing up; refrigeration (the canteen's night load) uses none
                cooking = np.maximum(self._canteen(h, working, occ) - 0.12, 0.0) / 0.88
                load = s.size * (0.45 * cooking + 0.005)
            elif role is Role.IRRIGATION:
                month = lt.month
                season = (month >= 4) & (month <= 10) & (temp > 12.0) & (cloud < 0.45)
                when = ((h >= 5.5) & (h < 7.0)) | ((h >= 18.0) & (h < 19.0))
                load = np.where(season & when, s.size, 0.0)
            elif role is Role.LOOP_MAKEUP:
                monday = (lt.weekday == 0) & working & (h >= 9.0) & (h < 9.5)
                winter = (lt.month <= 3) | (lt.month >= 11)
                load = 0.02 + np.where(monday & winter, 1.5, 0.0)
            else:
                continue
            own_c[:, i] += load
            if own_a is not own_c:
                own_a[:, i] += load if f_dom is None else load * f_dom

    # ------------------------------------------------------------------ plant

    def _mode_by_day(self, lt: LocalTimes) -> npt.NDArray[np.int8]:
        first = int(lt.day.min())
        days = np.arange(first - 2, int(lt.day.max()) + 1, dtype=np.int64)
        mean = self.weather.daily_mean(days)
        run3 = (mean[2:] + mean[1:-1] + mean[:-2]) / 3.0
        today = mean[2:]
        cooling = (run3 >= 21.5) | ((today >= 24.0) & (run3 >= 20.0))
        heating = (run3 <= 8.5) | ((today <= 6.0) & (run3 <= 10.0))
        code = np.where(cooling, 1, np.where(heating, 2, 3)).astype(np.int8)
        out: npt.NDArray[np.int8] = code[lt.day - first]
        return out

    def _plant(
        self,
        lt: LocalTimes,
        wx: object,
        occ: Occupancy,
        gains_a: F64,
        gains_c: F64,
        own_a: F64,
        own_c: F64,
        factors: dict[EndUse, F64],
        any_measure: bool,
    ) -> tuple[npt.NDArray[np.int8], I64]:
        from simulators.weather import WeatherSample

        assert isinstance(wx, WeatherSample)
        p = self.spec.plant
        area = p.area_m2
        h = lt.hour
        working = lt.working
        summer = (lt.month >= 5) & (lt.month <= 9)
        pm_end = np.where(summer, 18.0, 17.5)
        season = self._mode_by_day(lt)
        temp, rh, ghi = wx.temperature, wx.humidity, wx.irradiance
        t_lag = _fir_lag(temp, 10.0, WARMUP)
        ghi_lag = _fir_lag(ghi, 3.0, 12)
        start = np.select([season == 1, season == 2], [7.5, 7.0], 7.75)
        stop = pm_end + 1.0
        sched = working & (h >= start) & (h < stop)
        # weekend duty in hard weather: one chiller or heat pump for the floors on duty
        people = occ.people.sum(axis=1)
        staff = max(1.0, float(sum(t.staff for t in self.spec.tenants)))
        occ_frac = people / staff
        duty_weather = ((season == 1) & (temp > 33.0)) | ((season == 2) & (temp < 3.0))
        duty = ~working & duty_weather & (occ_frac > 0.03) & (h >= 9.0) & (h < 17.0)
        on = sched | duty
        mode = np.where(on, season, 0).astype(np.int8)
        since = np.where(sched, (h - start) * 4.0, 99.0)
        pulldown = np.select(
            [since < 1, since < 2, since < 3, since < 4], [1.35, 1.25, 1.15, 1.06], 1.0
        )
        partial = np.where(duty, 0.35, 1.0)

        ua = UA_W_M2K * area / 1000.0
        sol = SOLAR_M2 * area / 1000.0
        vent = FRESH_AIR_KG_S_PER_PERSON * staff * (0.45 + 0.55 * np.clip(occ_frac / 0.9, 0.0, 1.0))
        dh = np.maximum(wx.enthalpy - INDOOR_ENTHALPY, 0.0)
        people_kw = 0.13 * people

        def cooling(g: F64) -> F64:
            q = ua * (t_lag - COOLING_SETPOINT) + sol * ghi_lag + g + people_kw + vent * dh
            q = np.maximum(q * pulldown, 0.06 * p.design_cooling_kw) * partial
            out: F64 = np.where(mode == 1, q, 0.0)
            return out

        def heating(g: F64) -> F64:
            loss = ua * (HEATING_SETPOINT - t_lag) + vent * 1.006 * (HEATING_SETPOINT - temp)
            q = loss * 1.1 - 0.8 * g - 0.06 * people - 0.5 * sol * ghi_lag
            q = np.maximum(q * np.where(since < 4, 1.4, 1.0), 0.05 * p.design_cooling_kw) * partial
            out: F64 = np.where(mode == 2, q, 0.0)
            return out

        wb = wet_bulb(temp, rh)
        q_a = cooling(gains_a)
        h_a = heating(gains_a)
        same = not any_measure
        q_c = q_a if same else cooling(gains_c)
        h_c = h_a if same else heating(gains_c)
        week = (lt.day + 3) // 7  # weeks start on Monday
        chw_running = self._plant_meters(
            lt, mode, season, temp, rh, wb, q_a, h_a, own_a, factors, week, occ
        )
        if own_c is not own_a:
            self._plant_meters(lt, mode, season, temp, rh, wb, q_c, h_c, own_c, {}, week, occ)
        return mode, chw_running

    def _plant_meters(
        self,
        lt: LocalTimes,
        mode: npt.NDArray[np.int8],
        season: npt.NDArray[np.int8],
        temp: F64,
        rh: F64,
        wb: F64,
        q: F64,
        heat: F64,
        own: F64,
        factors: dict[EndUse, F64],
        week: I64,
        occ: Occupancy,
    ) -> I64:
        p = self.spec.plant
        spec = self.spec.meters

        def f(eu: EndUse) -> F64 | float:
            return factors.get(eu, 1.0)

        n_ch = len(p.chillers)
        cap = p.chiller_kw_th
        cooling = mode == 1
        heating = mode == 2
        if n_ch:
            n_on = np.where(cooling, np.clip(np.ceil(q / (STAGE_UP * cap)), 1, n_ch), 0).astype(
                np.int64
            )
            plr = np.where(n_on > 0, np.maximum(q / np.maximum(n_on, 1) / cap, 0.15), 0.0)
            t_cw = np.maximum(wb + 5.0, 18.0)
            cop_full = CHILLER_COP * (1.0 - 0.03 * (t_cw - 30.0))
            eir = 0.25 + 0.25 * plr + 0.5 * plr**2
            total = np.where(n_on > 0, n_on * cap / cop_full * eir, 0.0)
        else:
            n_on = np.zeros(len(q), dtype=np.int64)
            total = np.zeros(len(q))
        lead = week % max(1, n_ch)
        ch_standby = np.where(season == 1, 1.2, 0.3)
        for j, i in enumerate(p.chillers):
            running = ((j - lead) % n_ch) < n_on
            load = np.where(running, total / np.maximum(n_on, 1), ch_standby)
            own[:, i] += load * f(EndUse.CHILLER)
        # hot water circulates through the same two-pipe system in winter
        n_hp = len(p.heat_pumps)
        hp_cap_t = p.heat_pump_kw_th * np.clip(1.0 + 0.025 * (temp - 7.0), 0.55, 1.1)
        if n_hp:
            hp_on = np.where(
                heating, np.clip(np.ceil(heat / (0.95 * hp_cap_t)), 1, n_hp), 0
            ).astype(np.int64)
            delivered = np.minimum(heat, hp_on * hp_cap_t)
            defrost = np.where((temp > -4.0) & (temp < 6.0) & (rh > 75.0), 0.87, 1.0)
            cop_h = np.clip(3.1 * (1.0 + 0.032 * (temp - 7.0)), 1.7, 4.2) * defrost
            hp_total = np.where(
                hp_on > 0, delivered / cop_h + hp_on * 0.012 * p.heat_pump_kw_th, 0.0
            )
        else:
            hp_on = np.zeros(len(q), dtype=np.int64)
            delivered = np.zeros(len(q))
            hp_total = np.zeros(len(q))
        lead_hp = week % max(1, n_hp)
        hp_standby = np.where(season == 2, 0.8, 0.1)
        for j, i in enumerate(p.heat_pumps):
            running = ((j - lead_hp) % n_hp) < hp_on
            own[:, i] += np.where(running, hp_total / np.maximum(hp_on, 1), hp_standby) * f(
                EndUse.HEATING
            )

        n_pumps = len(p.chw_pumps)
        # constant-speed pumps, one more than the chillers need (the usual low-delta-T habit)
        chw_on = np.where(cooling, n_on + 1, np.where(heating, hp_on, 0))
        chw_on = np.minimum(chw_on, max(1, n_pumps - 1))
        chw_on = np.minimum(chw_on, n_pumps)
        lead_p = week % max(1, n_pumps)
        for j, i in enumerate(p.chw_pumps):
            running = ((j - lead_p) % n_pumps) < chw_on
            own[:, i] += np.where(running, 0.88 * p.pump_chw_kw, 0.0) * f(EndUse.CHW_PUMP)
        n_cw = len(p.cw_pumps)
        cw_on = np.minimum(n_on, n_cw)
        lead_cw = (week + 1) % max(1, n_cw)
        for j, i in enumerate(p.cw_pumps):
            running = ((j - lead_cw) % n_cw) < cw_on
            own[:, i] += np.where(running, 0.9 * p.pump_cw_kw, 0.0) * f(EndUse.CW_PUMP)
        n_t = len(p.towers)
        t_on = np.minimum(n_on, n_t)
        rejected = q + total
        fan = np.clip(
            0.35
            + 0.65
            * rejected
            / np.maximum(t_on * cap * 1.25, 1.0)
            * (np.maximum(wb, 5.0) / 26.0) ** 2,
            0.3,
            1.0,
        )
        for j, i in enumerate(p.towers):
            running = ((j - lead) % n_t) < t_on
            own[:, i] += np.where(running, fan * p.tower_kw, 0.0) * f(EndUse.COOLING_TOWER)

        h = lt.hour
        for i in p.ahus:
            s = spec[i]
            run = mode > 0
            if s.building_index in self._meeting_buildings:
                level = np.where(run, np.clip(occ.meeting + 0.25, 0.0, 1.0), 0.0)
            else:
                level = np.where(run, np.where(mode == 3, 0.6, 0.8), 0.0)
            own[:, i] += s.size * level * f(EndUse.AHU)
        del h

        thermal = np.where(cooling, q, np.where(heating, delivered, 0.0))
        design = p.design_cooling_kw
        btu = [s for s in spec if s.role is Role.BTU]
        coils = [s for s in spec if s.role is Role.COIL]
        coil_sum = np.zeros(len(q))
        for s in coils:
            share = thermal / design
            if s.building_index in self._meeting_buildings:
                share = share * np.clip(occ.meeting + 0.3, 0.0, 1.3)
            load = s.size * np.clip(share * 1.6, 0.0, 1.0)
            own[:, s.index] += load
            coil_sum += load
        for s in btu:
            parent_of_coils = sum(1 for c in s.children if spec[c].role is Role.COIL)
            own[:, s.index] += np.maximum(thermal - (coil_sum if parent_of_coils else 0.0), 0.0)
        for s in spec:
            if s.role is Role.TOWER_MAKEUP:
                # evaporation 1 kg per 2450 kJ rejected, four cycles of concentration, drift
                evap = rejected * (cooling) / 2450.0 * 3.6
                own[:, s.index] += s.size * (evap * 4.0 / 3.0 * 1.02) * f(EndUse.MAKEUP_WATER)
        out: I64 = chw_on
        return out

    # ------------------------------------------------------------------ hierarchy

    def _roll_up(self, own: F64) -> tuple[F64, F64]:
        reading = own.copy(order="F")
        losses = np.zeros_like(own, order="F")
        for i in self.spec.order:
            s = self.spec.meters[i]
            for c in s.children:
                reading[:, i] += reading[:, c]
            if s.role is Role.INCOMER:
                load = reading[:, i] / max(s.rated_kw, 1.0)
                losses[:, i] = s.rated_kw * (0.0015 + 0.010 * load**2)
                reading[:, i] += losses[:, i]
        return reading, losses

    # ------------------------------------------------------------------ minutes

    def _minute_uniforms(self, quarters: I64) -> tuple[npt.NDArray[np.uint64], F64]:
        """Four hashes per (quarter, meter) -> 16 16-bit uniforms, and the mean of the
        first 15 (the quarter's minutes)."""
        idx = quarters[:, None] * 4 + np.arange(4, dtype=np.int64)[None, :]
        h = rand.hash64(self._keys[None, None, :] ^ np.uint64(0x3117), idx[:, :, None])
        m16 = np.uint64(0xFFFF)
        total = (h & m16) + ((h >> np.uint64(16)) & m16) + ((h >> np.uint64(32)) & m16)
        total = total.sum(axis=1) + (h[:, :3, :] >> np.uint64(48)).sum(axis=1)
        mean: F64 = total.astype(np.float64) / (15.0 * 65536.0)
        return h, mean

    def minute_weights(self, quarters: I64) -> F64:
        """(len(quarters), 15, meters): each quarter's minute weights, mean exactly 1.

        w = 1 + sigma * sqrt(12) * (u - mean(u)) with u uniform, one per minute: zero-sum
        over the quarter by construction (so a quarter's energy never changes), positive
        while sigma <= 0.28, and any one minute's weight needs only its quarter's four
        hashes."""
        h, mean = self._minute_uniforms(quarters)
        n = len(quarters)
        u = np.empty((n, 16, self.n_meters))
        for k in range(4):  # minute 4j + k from bits 16k.. of hash j
            u[:, k::4, :] = (h >> np.uint64(16 * k)) & np.uint64(0xFFFF)
        w = u[:, :15, :]
        w *= 1.0 / 65536.0
        w -= mean[:, None, :]
        w *= (self._sm * 3.4641016)[None, None, :]
        w += 1.0
        out: F64 = w
        return out

    def weights_at(self, quarters: I64, minute: I64) -> F64:
        """(len(quarters), meters): the weight of one minute (0..14) of each quarter."""
        h, mean = self._minute_uniforms(quarters)
        j, k = minute // 4, minute % 4
        pick = h[np.arange(len(quarters)), j]
        u = ((pick >> (np.uint64(16) * k.astype(np.uint64))[:, None]) & np.uint64(0xFFFF)).astype(
            np.float64
        )
        out: F64 = 1.0 + (self._sm * 3.4641016)[None, :] * (u / 65536.0 - mean)
        return out

    def _roll_up_with(self, own: F64, losses: F64) -> F64:
        reading = own.copy(order="F")
        for i in self.spec.order:
            s = self.spec.meters[i]
            for c in s.children:
                reading[:, i] += reading[:, c]
            if s.role is Role.INCOMER:
                reading[:, i] += losses[:, i]
        return reading

    def minute_readings(self, ev: Evaluation, world: str = "actual") -> F64:
        """(n * 15, meters): minute means of what each meter reads."""
        own_q = ev.own_actual if world == "actual" else ev.own_counterfactual
        loss_q = ev.losses_actual if world == "actual" else ev.losses_counterfactual
        w = self.minute_weights(ev.q0 + np.arange(ev.n, dtype=np.int64))
        own = (own_q[:, None, :] * w).reshape(ev.n * 15, self.n_meters)
        return self._roll_up_with(own, np.repeat(loss_q, 15, axis=0))

    def readings_at(self, ev: Evaluation, rows: I64, minute: I64, world: str = "actual") -> F64:
        """(len(rows), meters): what each meter reads during minute `minute` (0..14) of
        the quarters `rows` of the evaluation."""
        own_q = ev.own_actual if world == "actual" else ev.own_counterfactual
        loss_q = ev.losses_actual if world == "actual" else ev.losses_counterfactual
        own = own_q[rows] * self.weights_at(ev.q0 + rows, minute)
        return self._roll_up_with(own, loss_q[rows])

    def energy_between(self, q_from: int, q_to: int, chunk: int = BLOCK) -> tuple[F64, F64, F64]:
        """Energy (kWh; m3 for water) each meter counts over quarters [q_from, q_to):
        total, and the parts counted in cooling and in heating mode (thermal meters)."""
        total = np.zeros(self.n_meters)
        cool = np.zeros(self.n_meters)
        heat = np.zeros(self.n_meters)
        sign = 1.0
        if q_to < q_from:
            q_from, q_to, sign = q_to, q_from, -1.0
        q = q_from
        while q < q_to:
            n = min(chunk, q_to - q)
            ev = self.evaluate(q, n)
            e = ev.actual * 0.25
            total += e.sum(axis=0)
            cool += e[ev.mode == 1].sum(axis=0)
            heat += e[ev.mode == 2].sum(axis=0)
            q += n
        return sign * total, sign * cool, sign * heat

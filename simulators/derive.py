"""Everything else a meter reports, derived from the model's power, flow or heat.

A power meter does not only count kWh: it shows phase voltages (the transformer's output,
sagging with its load, minus the feeder's drop), currents, power factor by kind of load
(lamps, computers, motors, lifts; a capacitor bank at the incomers), reactive and apparent
power, the grid frequency. A water meter shows pressure, water temperature, the pipe's
state, its battery. A BTU meter and an energy valve show flow and supply/return
temperatures consistent with the heat they count.

All functions are vectorised over instants of one meter and pure: the same instant gives
the same numbers in a history and on a live register.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators import rand
from simulators.roles import MeterSpec, Role
from simulators.timegrid import DAY_MS, HOUR_MS, MINUTE_MS, QUARTER_MS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

CORE = frozenset(
    {
        "energy_import",
        "volume",
        "thermal_energy",
        "cooling_energy",
        "heating_energy",
        "power",
        "flow",
        "thermal_power",
        "cooling_power",
        "heating_power",
        "outdoor_temperature",
        "relative_humidity",
    }
)
"""What M&V and dashboards need: consumption counters and their rates, the weather."""

WATER_KJ_PER_M3_K = 4186.0
DESIGN_DELTA_T = 5.0
"""Chilled water: 7/12 degC."""
BTU_M3_PER_KWH = 3600.0 / (WATER_KJ_PER_M3_K * DESIGN_DELTA_T)

# (power factor at load, at light load) by role; incomers are compensated separately
_PF: dict[Role, tuple[float, float]] = {
    Role.OFFICE: (0.93, 0.82),
    Role.OFFICE_LIGHTING: (0.96, 0.9),
    Role.CANTEEN: (0.9, 0.78),
    Role.MEETING: (0.94, 0.85),
    Role.COMMON_LIGHTING: (0.95, 0.9),
    Role.OUTDOOR_LIGHTING: (0.95, 0.9),
    Role.LIFT: (0.86, 0.62),
    Role.IT_ROOM: (0.97, 0.95),
    Role.PLUG_PRINTER: (0.93, 0.55),
    Role.PLUG_DISPLAY: (0.95, 0.7),
    Role.PLUG_AV: (0.92, 0.75),
    Role.PLUG_TERMINALS: (0.94, 0.7),
    Role.PLUG_GENERIC: (0.92, 0.65),
    Role.CHILLER: (0.92, 0.82),
    Role.CHW_PUMP: (0.87, 0.8),
    Role.CW_PUMP: (0.87, 0.8),
    Role.COOLING_TOWER: (0.84, 0.75),
    Role.HEAT_PUMP: (0.9, 0.8),
    Role.AHU: (0.95, 0.9),
}


@dataclass(frozen=True)
class Context:
    """Site-wide state at each instant that meters' derived values depend on."""

    ts_ms: I64
    mode: npt.NDArray[np.int8]
    """Plant mode: 0 off, 1 cooling, 2 heating, 3 ventilation."""
    outdoor: F64
    """Outdoor temperature, degC."""
    root_load: dict[int, F64]
    """Load of each incomer (by meter index) as a share of its rating."""


def root_of(spec: MeterSpec, specs: tuple[MeterSpec, ...]) -> int | None:
    parents = {c: s.index for s in specs for c in s.children}
    i: int | None = spec.index
    last = None
    while i is not None:
        last = i
        i = parents.get(i)
    return last if last is not None and specs[last].role is Role.INCOMER else None


def electrical(
    spec: MeterSpec,
    power: F64,
    ctx: Context,
    root: int | None,
    seed: int,
) -> dict[str, F64]:
    ts = ctx.ts_ms
    root_load = ctx.root_load.get(root) if root is not None else None
    n = len(ts)
    k = spec.key
    rated = max(spec.rated_kw, 1e-3)
    frac = np.clip(power / rated, 0.0, 2.0)
    site = rand.key(seed, "grid")
    # the grid: slow site-wide drift, a little higher at night; the transformer's sag
    q = ts // QUARTER_MS
    hour = np.mod(ts + 8 * HOUR_MS, DAY_MS) / HOUR_MS
    grid = 1.2 * rand.noise(site, q) * 0.5 + 1.0 * np.cos(2 * np.pi * (hour - 3.0) / 24.0)
    sag = 7.0 * (root_load if root_load is not None else np.full(n, 0.35))
    drop = 0.0 if spec.role is Role.INCOMER else 3.0 * np.clip(frac, 0.0, 1.2)
    root_key = rand.key(seed, "phase", root)
    out: dict[str, F64] = {}
    volts = []
    for ph in range(3):
        offset = 1.2 * float(rand.noise(root_key, [ph])[0])
        jitter = 0.15 * rand.noise(k ^ (ph + 1), ts // 1000)
        v = 231.0 + grid - sag - drop + offset + jitter
        volts.append(v)
        out[f"voltage_l{ph + 1}"] = v
    v1, v2, v3 = volts
    out["voltage_l12"] = np.sqrt(v1**2 + v2**2 + v1 * v2)
    out["voltage_l23"] = np.sqrt(v2**2 + v3**2 + v2 * v3)
    out["voltage_l31"] = np.sqrt(v3**2 + v1**2 + v3 * v1)
    out["frequency"] = (
        50.0
        + 0.025 * rand.noise(site ^ 7, ts // MINUTE_MS)
        + 0.004 * rand.noise(site ^ 9, ts // 1000)
    )
    if spec.role is Role.INCOMER:
        # capacitor bank: stepped compensation keeps it near 0.95-0.98
        pf = 0.955 + 0.02 * np.clip(frac * 2.0, 0.0, 1.0) + 0.006 * rand.noise(k, q)
    else:
        full, light = _PF.get(spec.role, (0.9, 0.75))
        pf = light + (full - light) * np.sqrt(np.clip(frac / 0.6, 0.0, 1.0))
        pf = pf + 0.005 * rand.noise(k, q)
    pf = np.clip(pf, 0.5, 0.995)
    out["power"] = power
    out["power_factor"] = pf
    out["apparent_power"] = power / pf
    out["reactive_power"] = power * np.tan(np.arccos(pf))
    shares = _phase_shares(spec, q, len(spec.meter.id))
    for ph in range(3):
        p_ph = power * shares[ph]
        pf_ph = np.clip(pf * (1.0 + 0.01 * (ph - 1)), 0.5, 0.999)
        out[f"power_l{ph + 1}"] = p_ph
        out[f"power_factor_l{ph + 1}"] = pf_ph
        out[f"current_l{ph + 1}"] = p_ph * 1000.0 / (volts[ph] * pf_ph)
    src = spec.meter.modbus
    out["ct_ratio"] = np.full(n, src.ct_ratio if src else 1.0)
    out["pt_ratio"] = np.full(n, src.pt_ratio if src else 1.0)
    return out


def single_phase(
    spec: MeterSpec, power: F64, ctx: Context, root: int | None, seed: int
) -> dict[str, F64]:
    """A smart plug: one phase carries it all."""
    three = electrical(spec, power, ctx, root, seed)
    v = three["voltage_l1"]
    pf = three["power_factor"]
    return {
        "power": power,
        "power_factor": pf,
        "apparent_power": three["apparent_power"],
        "reactive_power": three["reactive_power"],
        "voltage_l1": v,
        "current_l1": power * 1000.0 / (v * pf),
        "frequency": three["frequency"],
    }


def _phase_shares(spec: MeterSpec, q: I64, _: int) -> tuple[F64, F64, F64]:
    base = rand.uniform(spec.key ^ 0xB41, np.arange(2))
    d1 = 0.06 * (float(base[0]) - 0.5) + 0.01 * rand.noise(spec.key ^ 0xB42, q)
    d2 = 0.06 * (float(base[1]) - 0.5) + 0.01 * rand.noise(spec.key ^ 0xB43, q)
    a = 1.0 / 3.0 + d1
    b = 1.0 / 3.0 + d2
    return a, b, 1.0 - a - b


def water(spec: MeterSpec, flow: F64, ctx: Context) -> dict[str, F64]:
    ts = ctx.ts_ms
    n = len(ts)
    k = spec.key
    days = ts / DAY_MS
    hour = np.mod(ts + 8 * HOUR_MS, DAY_MS) / HOUR_MS
    zone = 0.12 if spec.role is Role.WATER_ZONE else 0.0
    pressure = (
        0.32
        + zone
        + 0.015 * np.cos(2 * np.pi * (hour - 3.0) / 24.0)
        - 0.04 * np.clip(flow / max(spec.rated_kw, 0.1), 0.0, 1.5)
        + 0.003 * rand.noise(k, ts // MINUTE_MS)
    )
    doy = np.mod(days - 10_957.0, 365.2425)
    temp = (
        17.0
        - 9.0 * np.cos(2 * np.pi * (doy - 40.0) / 365.2425)
        + 0.1 * rand.noise(k ^ 3, ts // QUARTER_MS)
    )
    years = (days - 19_723.0) / 365.25  # since 2024-01-01
    battery = np.clip(3.62 - 0.03 * years, 3.3, 3.7) + 0.002 * rand.noise(k ^ 5, ts // HOUR_MS)
    return {
        "flow": flow,
        "pipe_status": np.full(n, 170.0),  # 0xAA: pipe full
        "pressure": pressure,
        "water_temperature": temp,
        "battery_voltage": battery,
    }


def thermal(spec: MeterSpec, heat: F64, ctx: Context) -> dict[str, F64]:
    """`heat`: thermal power (kW) this meter sees, cooling in cooling mode, heating in heating."""
    ts = ctx.ts_ms
    k = spec.key
    cooling = ctx.mode == 1
    heating = ctx.mode == 2
    delta = np.where(heating, 8.0 if spec.role is Role.COIL else DESIGN_DELTA_T, DESIGN_DELTA_T)
    delta = delta + 0.15 * rand.noise(k, ts // MINUTE_MS)
    flow_m3h = np.where(heat > 0.0, heat * 3600.0 / (WATER_KJ_PER_M3_K * delta), 0.0)
    idle = 18.0 + 0.3 * (ctx.outdoor - 18.0)
    supply = np.where(cooling, 7.0, np.where(heating, 45.0, idle)) + 0.1 * rand.noise(
        k ^ 1, ts // MINUTE_MS
    )
    ret = np.where(cooling, supply + delta, np.where(heating, supply - delta, idle + 0.3))
    out = {
        "thermal_power": heat,
        "cooling_power": np.where(cooling, heat, 0.0),
        "heating_power": np.where(heating, heat, 0.0),
        "supply_temperature": supply,
        "return_temperature": ret,
    }
    if spec.role is Role.COIL:
        share = np.clip(heat / max(spec.size, 1.0), 0.0, 1.0)
        out["valve_position"] = np.where(heat > 0.0, np.clip(share**0.7, 0.05, 1.0), 0.0)
        out["flow"] = np.minimum(flow_m3h, 45.0 * 3.6)  # the valve's 45 l/s range
    else:
        out["flow"] = flow_m3h
    return out


def weather(outdoor: F64, humidity: F64, irradiance: F64) -> dict[str, F64]:
    return {
        "outdoor_temperature": outdoor,
        "relative_humidity": humidity,
        "solar_irradiance": irradiance,
    }

"""The quantity vocabulary: every reading is one of these, in its canonical unit.

A *counter* is a cumulative register (kWh, m³): interval consumption is derived from it
and a missed poll loses resolution, never energy. Everything else is an instantaneous value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.errors import ConfigError


class Unit(StrEnum):
    W = "W"
    KW = "kW"
    VAR = "var"
    KVAR = "kvar"
    VA = "VA"
    KVA = "kVA"
    WH = "Wh"
    KWH = "kWh"
    MWH = "MWh"
    GJ = "GJ"
    GJ_PER_H = "GJ/h"
    V = "V"
    A = "A"
    HZ = "Hz"
    M3 = "m3"
    L = "L"
    M3_PER_H = "m3/h"
    L_PER_S = "L/s"
    MPA = "MPa"
    KPA = "kPa"
    CELSIUS = "degC"
    PERCENT = "%"
    W_PER_M2 = "W/m2"
    RATIO = "1"


# Factor to the base of each dimension; conversion is value * f_from / f_to.
_DIMENSION: dict[Unit, tuple[str, float]] = {
    Unit.W: ("power", 1e-3),
    Unit.KW: ("power", 1.0),
    Unit.GJ_PER_H: ("power", 1e9 / 3.6e6),  # 1 GJ/h = 277.78 kW
    Unit.VAR: ("reactive", 1e-3),
    Unit.KVAR: ("reactive", 1.0),
    Unit.VA: ("apparent", 1e-3),
    Unit.KVA: ("apparent", 1.0),
    Unit.WH: ("energy", 1e-3),
    Unit.KWH: ("energy", 1.0),
    Unit.MWH: ("energy", 1e3),
    Unit.GJ: ("energy", 1e9 / 3.6e6),  # 1 GJ = 277.78 kWh
    Unit.V: ("voltage", 1.0),
    Unit.A: ("current", 1.0),
    Unit.HZ: ("frequency", 1.0),
    Unit.M3: ("volume", 1.0),
    Unit.L: ("volume", 1e-3),
    Unit.M3_PER_H: ("flow", 1.0),
    Unit.L_PER_S: ("flow", 3.6),
    Unit.MPA: ("pressure", 1.0),
    Unit.KPA: ("pressure", 1e-3),
    Unit.CELSIUS: ("temperature", 1.0),
    Unit.PERCENT: ("percent", 1.0),
    Unit.W_PER_M2: ("irradiance", 1.0),
    Unit.RATIO: ("ratio", 1.0),
}


def conversion_factor(source: Unit, target: Unit) -> float:
    """Multiply a value in `source` by this to get it in `target`."""
    dim_s, f_s = _DIMENSION[source]
    dim_t, f_t = _DIMENSION[target]
    if dim_s != dim_t:
        raise ConfigError(f"cannot convert {source} ({dim_s}) to {target} ({dim_t})")
    return f_s / f_t


@dataclass(frozen=True, slots=True)
class QuantitySpec:
    name: str
    unit: Unit
    counter: bool
    description: str
    low: float
    high: float
    """Physically plausible range: a value outside it is a fault, never a reading."""

    def accepts(self, value: float) -> bool:
        return self.low <= value <= self.high


# Plausible ranges by unit; generous, they catch garbage (a swapped word order, a spike
# of 1e38 from an uninitialised float register), not unusual loads.
_RANGE: dict[Unit, tuple[float, float]] = {
    Unit.KW: (-1e5, 1e5),
    Unit.KVAR: (-1e5, 1e5),
    Unit.KVA: (0, 1e5),
    Unit.KWH: (0, 1e12),
    Unit.V: (0, 100_000),
    Unit.A: (-1e5, 1e5),
    Unit.HZ: (40, 70),
    Unit.M3: (0, 1e10),
    Unit.M3_PER_H: (-1e5, 1e5),
    Unit.MPA: (-0.2, 10),
    Unit.CELSIUS: (-60, 150),
    Unit.PERCENT: (0, 100),
    Unit.W_PER_M2: (0, 1500),
    Unit.RATIO: (-1e6, 1e6),
}


def _q(name: str, unit: Unit, description: str, *, counter: bool = False) -> QuantitySpec:
    low, high = _RANGE[unit]
    if name.startswith("power_factor"):
        low, high = -1.0, 1.0
    elif name == "valve_position":
        low, high = 0.0, 1.0
    return QuantitySpec(name, unit, counter, description, low, high)


QUANTITIES: dict[str, QuantitySpec] = {
    q.name: q
    for q in (
        # electricity
        _q("power", Unit.KW, "total active power"),
        _q("power_l1", Unit.KW, "active power, phase L1"),
        _q("power_l2", Unit.KW, "active power, phase L2"),
        _q("power_l3", Unit.KW, "active power, phase L3"),
        _q("reactive_power", Unit.KVAR, "total reactive power"),
        _q("apparent_power", Unit.KVA, "total apparent power"),
        _q("voltage_l1", Unit.V, "phase voltage L1-N"),
        _q("voltage_l2", Unit.V, "phase voltage L2-N"),
        _q("voltage_l3", Unit.V, "phase voltage L3-N"),
        _q("voltage_l12", Unit.V, "line voltage L1-L2"),
        _q("voltage_l23", Unit.V, "line voltage L2-L3"),
        _q("voltage_l31", Unit.V, "line voltage L3-L1"),
        _q("current_l1", Unit.A, "current L1"),
        _q("current_l2", Unit.A, "current L2"),
        _q("current_l3", Unit.A, "current L3"),
        _q("power_factor", Unit.RATIO, "total power factor"),
        _q("power_factor_l1", Unit.RATIO, "power factor L1"),
        _q("power_factor_l2", Unit.RATIO, "power factor L2"),
        _q("power_factor_l3", Unit.RATIO, "power factor L3"),
        _q("frequency", Unit.HZ, "grid frequency"),
        _q("energy_import", Unit.KWH, "imported active energy", counter=True),
        _q("energy_export", Unit.KWH, "exported active energy", counter=True),
        _q("energy_total", Unit.KWH, "total active energy", counter=True),
        _q("ct_ratio", Unit.RATIO, "current-transformer ratio configured in the meter"),
        _q("pt_ratio", Unit.RATIO, "voltage-transformer ratio configured in the meter"),
        # water
        _q("volume", Unit.M3, "forward cumulative volume", counter=True),
        _q("volume_reverse", Unit.M3, "reverse cumulative volume", counter=True),
        _q("flow", Unit.M3_PER_H, "volume flow"),
        _q("pressure", Unit.MPA, "pipe pressure"),
        _q("water_temperature", Unit.CELSIUS, "water temperature"),
        _q("pipe_status", Unit.RATIO, "pipe status code (0x55 empty, 0xAA full)"),
        _q("battery_voltage", Unit.V, "meter battery voltage"),
        # thermal
        _q("thermal_power", Unit.KW, "delivered thermal power (cooling or heating)"),
        _q("thermal_energy", Unit.KWH, "delivered thermal energy", counter=True),
        _q("cooling_power", Unit.KW, "delivered cooling power"),
        _q("heating_power", Unit.KW, "delivered heating power"),
        _q("cooling_energy", Unit.KWH, "delivered cooling energy", counter=True),
        _q("heating_energy", Unit.KWH, "delivered heating energy", counter=True),
        _q("supply_temperature", Unit.CELSIUS, "supply water temperature"),
        _q("return_temperature", Unit.CELSIUS, "return water temperature"),
        _q("valve_position", Unit.RATIO, "relative valve position 0..1"),
        # weather
        _q("outdoor_temperature", Unit.CELSIUS, "outdoor dry-bulb temperature"),
        _q("relative_humidity", Unit.PERCENT, "outdoor relative humidity"),
        _q("solar_irradiance", Unit.W_PER_M2, "global horizontal irradiance"),
    )
}


def quantity(name: str) -> QuantitySpec:
    try:
        return QUANTITIES[name]
    except KeyError:
        raise ConfigError(f"unknown quantity {name!r}") from None

"""A small live model of a site's meters: enough for the thin path and the demo.

Each meter's values come from its kind, its floor area and the occupancy the calendar
implies; counters integrate power over real elapsed time, so they only ever grow. The
realistic virtual site (weather persistence, the chiller plant, the retrofit) builds on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

from core.calendar import WorkCalendar
from core.config import Meter, MeterKind, SiteConfig

HOUR_MS = 3_600_000


def occupancy(local: datetime, calendar: WorkCalendar) -> float:
    """0..1: government office hours 08:30-12:00 and 14:30-17:30, a quiet lunch break."""
    if not calendar.is_working_day(local.date()):
        return 0.05
    h = local.hour + local.minute / 60
    if 8.5 <= h < 12.0 or 14.5 <= h < 17.5:
        return 1.0
    if 12.0 <= h < 14.5:
        return 0.45
    if 7.5 <= h < 8.5 or 17.5 <= h < 19.5:
        return 0.3
    return 0.05


def outdoor_temperature(local: datetime) -> float:
    """Lu'an-like climatology: 2.5 degC in January to 28.5 degC in July, 8 K diurnal swing."""
    day = local.timetuple().tm_yday
    seasonal = 15.5 - 13.0 * math.cos(2 * math.pi * (day - 15) / 365.25)
    diurnal = -4.0 * math.cos(2 * math.pi * (local.hour + local.minute / 60 - 3) / 24)
    return seasonal + diurnal


@dataclass
class LiveMeter:
    meter: Meter
    tz: ZoneInfo
    calendar: WorkCalendar
    peak_kw: float
    seed: int = 0
    _last_ms: int | None = None
    _counters: dict[str, float] = field(default_factory=dict)
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, sum(map(ord, self.meter.id))])
        base = float(self._rng.uniform(1_000, 20_000))
        for q in ("energy_import", "energy_total", "volume", "thermal_energy", "cooling_energy"):
            self._counters[q] = base
        self._counters["energy_export"] = 0.0
        self._counters["heating_energy"] = 0.0
        self._counters["volume_reverse"] = 0.0

    def _integrate(self, now_ms: int, rates_per_hour: dict[str, float]) -> None:
        if self._last_ms is not None and now_ms > self._last_ms:
            hours = (now_ms - self._last_ms) / HOUR_MS
            for q, rate in rates_per_hour.items():
                self._counters[q] += max(rate, 0.0) * hours
        self._last_ms = now_ms if self._last_ms is None else max(self._last_ms, now_ms)

    def values(self, now_ms: int) -> dict[str, float]:
        """Every quantity this meter can report, in canonical units."""
        local = datetime.fromtimestamp(now_ms / 1000, tz=self.tz)
        occ = occupancy(local, self.calendar)
        noise = float(self._rng.normal(0, 0.03))
        kind = self.meter.kind
        if kind is MeterKind.ELECTRICITY:
            return self._electricity(now_ms, occ, noise)
        if kind is MeterKind.WATER:
            flow = max(0.0, self.peak_kw * (0.05 + 0.95 * occ) * (1 + noise))
            self._integrate(now_ms, {"volume": flow})
            return {
                "volume": self._counters["volume"],
                "volume_reverse": self._counters["volume_reverse"],
                "flow": flow,
                "pipe_status": 170.0,  # 0xAA: pipe full
                "pressure": 0.32 + 0.02 * noise,
                "water_temperature": 16.0,
                "battery_voltage": 3.6,
            }
        if kind is MeterKind.THERMAL:
            cooling = max(0.0, outdoor_temperature(local) - 20.0) * self.peak_kw / 12 * (0.3 + occ)
            heating = max(0.0, 10.0 - outdoor_temperature(local)) * self.peak_kw / 12 * occ
            thermal = cooling + heating
            delta_t = 5.0
            self._integrate(
                now_ms,
                {"thermal_energy": thermal, "cooling_energy": cooling, "heating_energy": heating},
            )
            return {
                "thermal_power": thermal,
                "thermal_energy": self._counters["thermal_energy"],
                "cooling_power": cooling,
                "heating_power": heating,
                "cooling_energy": self._counters["cooling_energy"],
                "heating_energy": self._counters["heating_energy"],
                "flow": thermal / (4.186 * delta_t) * 3.6,
                "volume": self._counters["volume"],
                "supply_temperature": 7.0 if cooling >= heating else 45.0,
                "return_temperature": 12.0 if cooling >= heating else 40.0,
                "valve_position": min(1.0, 0.2 + 0.8 * occ),
            }
        temp = outdoor_temperature(local) + float(self._rng.normal(0, 0.3))
        sun = max(0.0, math.sin(math.pi * (local.hour + local.minute / 60 - 6) / 12))
        return {
            "outdoor_temperature": temp,
            "relative_humidity": min(100.0, max(20.0, 75 - 1.2 * (temp - 15) + 5 * noise)),
            "solar_irradiance": 800 * sun,
        }

    def _electricity(self, now_ms: int, occ: float, noise: float) -> dict[str, float]:
        power = max(0.0, self.peak_kw * (0.15 + 0.85 * occ) * (1 + noise))
        self._integrate(now_ms, {"energy_import": power, "energy_total": power})
        v = [220.0 + float(self._rng.normal(0, 1.5)) for _ in range(3)]
        pf = min(0.99, 0.93 + float(self._rng.normal(0, 0.01)))
        split = (0.35, 0.33, 0.32)
        out = {
            "power": power,
            "apparent_power": power / pf,
            "reactive_power": power * math.tan(math.acos(pf)),
            "power_factor": pf,
            "frequency": 50.0 + float(self._rng.normal(0, 0.02)),
            "energy_import": self._counters["energy_import"],
            "energy_total": self._counters["energy_total"],
            "energy_export": self._counters["energy_export"],
        }
        for i, share in enumerate(split, start=1):
            p = power * share
            out[f"power_l{i}"] = p
            out[f"voltage_l{i}"] = v[i - 1]
            out[f"current_l{i}"] = p * 1000 / (v[i - 1] * pf)
            out[f"power_factor_l{i}"] = pf
        out["voltage_l12"] = (v[0] + v[1]) / 2 * math.sqrt(3)
        out["voltage_l23"] = (v[1] + v[2]) / 2 * math.sqrt(3)
        out["voltage_l31"] = (v[2] + v[0]) / 2 * math.sqrt(3)
        src = self.meter.modbus
        out["ct_ratio"] = src.ct_ratio if src else 1.0
        out["pt_ratio"] = src.pt_ratio if src else 1.0
        return out


def peak_for(meter: Meter, site: SiteConfig) -> float:
    """A plausible peak for a meter: ~30 W/m2 of its tenant's or building's floor area."""
    area = next((t.floor_area_m2 for t in site.tenants if t.id == meter.tenant), None)
    if area is None:
        area = next(b.floor_area_m2 for b in site.buildings if b.id == meter.building) / 10
    if meter.kind is MeterKind.WATER:
        return area / 2_000  # m3/h
    if meter.kind is MeterKind.THERMAL:
        return area * 0.08  # kW of cooling
    return area * 0.03


def live_meters(site: SiteConfig, meters: list[Meter], seed: int = 0) -> dict[str, LiveMeter]:
    return {
        m.id: LiveMeter(m, site.site.tz, site.work_calendar, peak_for(m, site), seed)
        for m in meters
    }

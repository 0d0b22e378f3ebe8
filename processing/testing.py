"""A small, honest synthetic building for tests and benchmarks (not the site simulator).

Load = a base that depends on the day type (working days high, weekends and holidays low,
make-up workdays like workdays) + heating and cooling slopes around change points in °C that
differ between working days and days off + AR(1) noise. Dates are real and go through the real
`WorkCalendar`, so Chinese statutory holidays and make-up workdays (调休) are the real ones.
Temperatures follow a Lu'an-like climatology with an AR(1) weather anomaly and a diurnal swing.
A retrofit can remove a fraction of the load from a date on; the removed energy is returned as
the truth the savings tests check against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from core.calendar import WorkCalendar
from processing.frames import (
    MAKEUP,
    WEEKEND,
    WORKDAY,
    DailyData,
    FloatArray,
    HourlyData,
    IntArray,
    day_range,
    day_type_codes,
    hourly_frame,
)

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Building:
    """Parameters of the synthetic building (daily kWh and kWh per °C-day)."""

    base: tuple[float, float, float, float] = (21_000.0, 9_000.0, 7_500.0, 19_500.0)
    """Base load per day type (workday, weekend, holiday, make-up workday), kWh/day."""
    heat_cp: float = 12.0
    cool_cp: float = 20.0
    heat_slope: tuple[float, float] = (700.0, 250.0)
    """Heating kWh per °C below `heat_cp`: working days, days off."""
    cool_slope: tuple[float, float] = (1_100.0, 350.0)
    """Cooling kWh per °C above `cool_cp`: working days, days off."""
    noise_cv: float = 0.035
    """Standard deviation of the noise, as a fraction of the workday base."""
    noise_rho: float = 0.5
    """Lag-1 autocorrelation of the noise (day to day; hour to hour for hourly data)."""


def daily_temperature(days: np.ndarray, rng: np.random.Generator) -> FloatArray:
    """Lu'an-like daily means: 2.5 °C in mid-January to 28.5 °C in mid-July, AR(1) weather."""
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64)
    seasonal = 15.5 - 13.0 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    anomaly = _ar1(len(days), 0.7, 3.0, rng)
    return np.asarray(seasonal + anomaly, dtype=np.float64)


def _ar1(n: int, rho: float, sd: float, rng: np.random.Generator) -> FloatArray:
    e = rng.normal(0.0, sd * np.sqrt(1 - rho * rho), n)
    out = np.empty(n)
    prev = rng.normal(0.0, sd)
    for i in range(n):
        prev = rho * prev + e[i]
        out[i] = prev
    return out


def _working(codes: IntArray) -> npt.NDArray[np.bool_]:
    return np.asarray((codes == WORKDAY) | (codes == MAKEUP), dtype=bool)


def daily_load(building: Building, temperature: FloatArray, codes: IntArray) -> FloatArray:
    """The noiseless daily load."""
    base = np.asarray(building.base)[codes]
    work = _working(codes)
    hs = np.where(work, building.heat_slope[0], building.heat_slope[1])
    cs = np.where(work, building.cool_slope[0], building.cool_slope[1])
    return np.asarray(
        base
        + hs * np.maximum(building.heat_cp - temperature, 0.0)
        + cs * np.maximum(temperature - building.cool_cp, 0.0),
        dtype=np.float64,
    )


@dataclass(frozen=True, slots=True)
class Synthetic:
    """Generated data and the truth behind it."""

    data: DailyData | HourlyData
    counterfactual: FloatArray
    """The load had there been no retrofit (equal to `data.energy` before it)."""

    @property
    def true_savings(self) -> FloatArray:
        return np.asarray(self.counterfactual - self.data.energy, dtype=np.float64)


def synthetic_daily(
    start: date,
    end: date,
    *,
    seed: int = 0,
    building: Building | None = None,
    calendar: WorkCalendar | None = None,
    retrofit: date | None = None,
    reduction: float = 0.0,
    ignore_calendar: bool = False,
) -> Synthetic:
    """Daily data for local dates start <= d < end; from `retrofit` on the load is reduced
    by `reduction` (a fraction). `ignore_calendar`: a building that knows only weekends."""
    b = building or Building()
    cal = calendar or WorkCalendar()
    rng = np.random.default_rng(seed)
    days = day_range(start, end)
    codes = day_type_codes(days, cal.day_type)
    load_codes = codes
    if ignore_calendar:
        load_codes = np.where(((days.astype(np.int64) + 3) % 7) < 5, WORKDAY, WEEKEND)
    temperature = daily_temperature(days, rng)
    clean = daily_load(b, temperature, load_codes)
    noise = _ar1(len(days), b.noise_rho, b.noise_cv * b.base[0], rng)
    counterfactual = np.maximum(clean + noise, 0.0)
    energy = counterfactual.copy()
    if retrofit is not None:
        energy = np.where(days >= np.datetime64(retrofit), energy * (1 - reduction), energy)
    return Synthetic(DailyData(days, temperature, codes, energy), counterfactual)


# Share of the daily base by local hour on working days and days off (each sums to 1).
_WORK_PROFILE = np.array(
    [
        0.6,
        0.6,
        0.6,
        0.6,
        0.6,
        0.7,
        0.9,
        1.4,
        2.0,
        2.2,
        2.2,
        2.1,
        1.6,
        1.5,
        1.9,
        2.1,
        2.1,
        2.0,
        1.5,
        1.1,
        0.9,
        0.8,
        0.7,
        0.6,
    ]
)
_WORK_PROFILE = _WORK_PROFILE / _WORK_PROFILE.sum()
_OFF_PROFILE = np.full(24, 1 / 24)
# HVAC runs in these local hours on working days (it follows office hours).
_HVAC_HOURS = np.zeros(24, dtype=bool)
_HVAC_HOURS[7:19] = True


def synthetic_hourly(
    start: date,
    end: date,
    *,
    tz: str = "Asia/Shanghai",
    seed: int = 0,
    building: Building | None = None,
    calendar: WorkCalendar | None = None,
    retrofit: date | None = None,
    reduction: float = 0.0,
) -> Synthetic:
    """Hourly data for the local dates start <= d < end (hour starts in UTC ms)."""
    from zoneinfo import ZoneInfo

    b = building or Building()
    cal = calendar or WorkCalendar()
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(tz)
    t0 = int(datetime(start.year, start.month, start.day, tzinfo=zone).timestamp()) * 1000
    t1 = int(datetime(end.year, end.month, end.day, tzinfo=zone).timestamp()) * 1000
    ts = np.arange(t0, t1, HOUR_MS, dtype=np.int64)
    frame = hourly_frame(ts, tz, cal.day_type, np.zeros(len(ts)), np.zeros(len(ts)))
    days = frame.day
    doy = (days - days.astype("datetime64[Y]")).astype(np.int64)
    hour = frame.hour
    seasonal = 15.5 - 13.0 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    day_idx = (days - days[0]).astype(np.int64)
    anomaly = _ar1(int(day_idx.max()) + 1, 0.7, 3.0, rng)[day_idx]
    diurnal = -4.0 * np.cos(2 * np.pi * (hour - 3) / 24)
    temperature = seasonal + anomaly + diurnal + rng.normal(0, 0.4, len(ts))
    codes = frame.day_type
    work = _working(codes)
    base_day = np.asarray(b.base)[codes]
    profile = np.where(work, _WORK_PROFILE[hour], _OFF_PROFILE[hour])
    hvac = np.where(work, _HVAC_HOURS[hour] * 2.0, 1.0) / 24.0  # working days: 12 h at 2/24
    hs = np.where(work, b.heat_slope[0], b.heat_slope[1])
    cs = np.where(work, b.cool_slope[0], b.cool_slope[1])
    clean = base_day * profile + hvac * (
        hs * np.maximum(b.heat_cp - temperature, 0.0)
        + cs * np.maximum(temperature - b.cool_cp, 0.0)
    )
    noise = _ar1(len(ts), b.noise_rho, b.noise_cv * b.base[0] / 24 * 2.0, rng)
    counterfactual = np.maximum(clean + noise, 0.0)
    energy = counterfactual.copy()
    if retrofit is not None:
        energy = np.where(days >= np.datetime64(retrofit), energy * (1 - reduction), energy)
    data = HourlyData(ts, frame.hour_of_week, days, codes, temperature, energy)
    return Synthetic(data, counterfactual)


def counter_samples(
    hourly: HourlyData, *, start_value: float = 100_000.0, every_s: int = 900, seed: int = 0
) -> tuple[IntArray, FloatArray]:
    """Cumulative register samples every `every_s` seconds that integrate `hourly.energy`
    (evenly within each hour): what a meter's kWh register would have shown."""
    rng = np.random.default_rng(seed)
    steps = HOUR_MS // (every_s * 1000)
    per_step = np.repeat(hourly.energy / steps, steps)
    ts = hourly.ts_ms[0] + np.arange(len(per_step) + 1, dtype=np.int64) * every_s * 1000
    cumulative = start_value + np.concatenate([[0.0], np.cumsum(per_step)])
    # registers have a resolution: 0.01 kWh
    cumulative = np.floor(cumulative * 100 + rng.uniform(0, 1e-6)) / 100
    return ts, cumulative


def write_boundary(
    store: Any,
    meters: tuple[str, ...],
    weather_station: str,
    synthetic: Synthetic,
    *,
    every_s: int = 900,
    shares: tuple[float, ...] | None = None,
) -> dict[str, FloatArray]:
    """Write a synthetic hourly building into a store as the boundary meters' kWh registers
    (split by `shares`) and the station's outdoor temperature; returns each meter's true
    hourly savings."""
    from core.readings import ReadingBatch

    data = synthetic.data
    assert isinstance(data, HourlyData)
    split = shares or tuple(1.0 / len(meters) for _ in meters)
    truth: dict[str, FloatArray] = {}
    batches = []
    for i, (meter, share) in enumerate(zip(meters, split, strict=True)):
        part = HourlyData(
            data.ts_ms,
            data.hour_of_week,
            data.day,
            data.day_type,
            data.temperature,
            data.energy * share,
        )
        ts, values = counter_samples(part, start_value=10_000.0 * (i + 1), every_s=every_s, seed=i)
        batches.append(ReadingBatch.for_series(meter, "energy_import", ts, values))
        truth[meter] = synthetic.true_savings * share
    batches.append(
        ReadingBatch.for_series(
            weather_station, "outdoor_temperature", data.ts_ms + HOUR_MS // 2, data.temperature
        )
    )
    store.write(ReadingBatch.concat(batches))
    return truth

"""A boundary's hourly and daily usage with outdoor temperature, in the site's local time.

`usage_from_samples()` is pure: register samples of the boundary's meters and the weather
station's hourly mean temperatures in, `Usage` out. `load_usage()` is the thin I/O around it:
it reads the counters (`read_raw`, so that resets and gaps can be seen) and hourly mean
temperatures (`aggregate`) from a `TimeSeriesStore`.

Buckets: local days (midnight to midnight in the site's zone) and the hours inside them.
A bucket of the boundary is known only when every meter's is; it is `estimated` when any
meter's boundary value was interpolated across a gap (`counters.py`). Temperature: gaps of up
to 6 hours are interpolated linearly (CalTRACK 2.2); a day's mean needs half its hours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from core.calendar import DayType
from processing.counters import CounterEvent, bucket_consumption
from processing.frames import (
    BoolArray,
    DailyData,
    FloatArray,
    HourlyData,
    IntArray,
    day_range,
    day_type_codes,
    hourly_frame,
    local_day_edges_ms,
)
from storage.base import Agg, Every, TimeSeriesStore

HOUR_MS = 3_600_000
MAX_TEMPERATURE_GAP_H = 6  # CalTRACK 2.2: temperature gaps up to six hours may be interpolated


@dataclass(frozen=True, slots=True)
class Usage:
    """A boundary's consumption and the weather, by local hour and local day."""

    hourly: HourlyData
    hourly_estimated: BoolArray
    daily: DailyData
    daily_estimated: BoolArray
    events: Mapping[str, tuple[CounterEvent, ...]]
    temperature_interpolated_hours: int

    def digest(self) -> str:
        """SHA-256 of the numbers a statement depends on, to see whether data changed."""
        h = hashlib.sha256()
        for array in (
            self.daily.day.astype(np.int64),
            self.daily.energy,
            self.daily.temperature,
            self.daily.day_type,
            self.daily_estimated,
            self.hourly.energy,
            self.hourly.temperature,
        ):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


def _fill_short_gaps(values: FloatArray, max_gap: int) -> tuple[FloatArray, int]:
    """Linear interpolation across runs of at most `max_gap` NaNs between known values."""
    v = values.copy()
    known = np.flatnonzero(np.isfinite(v))
    if len(known) < 2:
        return v, 0
    filled = 0
    gaps = np.flatnonzero(np.diff(known) > 1)
    for g in gaps.tolist():
        a, b = known[g], known[g + 1]
        if b - a - 1 <= max_gap:
            v[a + 1 : b] = np.interp(np.arange(a + 1, b), [a, b], [v[a], v[b]])
            filled += b - a - 1
    return v, filled


def usage_from_samples(
    counters: Mapping[str, tuple[IntArray, FloatArray]],
    temperature: tuple[IntArray, FloatArray],
    *,
    start: date,
    end: date,
    tz: str,
    day_type: Callable[[date], DayType],
    max_gap_ms: int = 65 * 60_000,
    rollover: Mapping[str, float] | None = None,
) -> Usage:
    """Usage of the local days start <= d < end from register samples per meter and hourly
    mean temperatures (hour start, °C)."""
    day_edges = local_day_edges_ms(start, end, tz)
    hour_edges = np.arange(day_edges[0], day_edges[-1] + 1, HOUR_MS, dtype=np.int64)
    n_hours, n_days = len(hour_edges) - 1, len(day_edges) - 1
    h_energy = np.zeros(n_hours)
    h_est = np.zeros(n_hours, dtype=bool)
    d_energy = np.zeros(n_days)
    d_est = np.zeros(n_days, dtype=bool)
    events: dict[str, tuple[CounterEvent, ...]] = {}
    if not counters:
        h_energy[:] = np.nan
        d_energy[:] = np.nan
    for meter, (ts, values) in counters.items():
        modulus = (rollover or {}).get(meter)
        hc = bucket_consumption(ts, values, hour_edges, max_gap_ms=max_gap_ms, rollover=modulus)
        dc = bucket_consumption(ts, values, day_edges, max_gap_ms=max_gap_ms, rollover=modulus)
        h_energy += hc.value
        h_est |= hc.estimated
        d_energy += dc.value
        d_est |= dc.estimated
        events[meter] = hc.events
    # Hourly temperatures on the hour grid, short gaps filled. The grid reaches
    # MAX_TEMPERATURE_GAP_H hours beyond the period on both sides, so that a gap at its edge is
    # filled the same way whatever the period (a month's statement alone or in a series).
    t_ts, t_val = temperature
    pad = MAX_TEMPERATURE_GAP_H
    padded = np.full(n_hours + 2 * pad, np.nan)
    pos = (np.asarray(t_ts, dtype=np.int64) - hour_edges[0]) // HOUR_MS + pad
    inside = (pos >= 0) & (pos < len(padded))
    padded[pos[inside]] = np.asarray(t_val, dtype=np.float64)[inside]
    known = np.isfinite(padded[pad : pad + n_hours]).sum()
    padded, _ = _fill_short_gaps(padded, MAX_TEMPERATURE_GAP_H)
    hour_t = padded[pad : pad + n_hours]
    filled = int(np.isfinite(hour_t).sum() - known)
    hourly = hourly_frame(hour_edges[:-1], tz, day_type, hour_t, h_energy)
    # Daily temperature: mean of the day's hours, with at least half of them known.
    days = day_range(start, end)
    day_of_hour = np.searchsorted(day_edges, hour_edges[:-1], side="right") - 1
    t_ok = np.isfinite(hour_t)
    t_sum = np.bincount(day_of_hour, weights=np.where(t_ok, hour_t, 0.0), minlength=n_days)
    t_n = np.bincount(day_of_hour, weights=t_ok.astype(float), minlength=n_days)
    hours_in_day = np.diff(day_edges) // HOUR_MS
    with np.errstate(invalid="ignore", divide="ignore"):
        d_temp = np.where(t_n * 2 >= hours_in_day, t_sum / t_n, np.nan)
    codes = day_type_codes(days, day_type)
    daily = DailyData(days, d_temp, codes, d_energy)
    return Usage(hourly, h_est, daily, d_est, events, filled)


def load_usage(
    store: TimeSeriesStore,
    *,
    meters: Sequence[str],
    quantity: str,
    weather_station: str,
    start: date,
    end: date,
    tz: str,
    day_type: Callable[[date], DayType],
    max_gap_ms: int = 65 * 60_000,
) -> Usage:
    """Read the boundary's counters and the station's temperatures, then `usage_from_samples`."""
    edges = local_day_edges_ms(start, end + timedelta(days=1), tz)
    margin = 2 * 86_400_000  # samples on both sides of the period to interpolate its edges
    counters = {}
    for meter in meters:
        raw = store.read_raw(meter, quantity, int(edges[0]) - margin, int(edges[-2]) + margin)
        counters[meter] = (raw.ts_ms, raw.value)
    pad = MAX_TEMPERATURE_GAP_H * HOUR_MS
    temp = store.aggregate(
        weather_station,
        "outdoor_temperature",
        int(edges[0]) - pad,
        int(edges[-2]) + pad,
        Every(1, "h"),
        Agg.MEAN,
    )
    return usage_from_samples(
        counters,
        (temp.ts_ms, temp.value),
        start=start,
        end=end,
        tz=tz,
        day_type=day_type,
        max_gap_ms=max_gap_ms,
    )

"""What a rule sees: one instant of the service, read-only.

A `Context` holds what the engine gathered for one evaluation: the series it keeps (as of
`now_ms`, nothing later), the hours of its window in the site's local time with their day
types, the collectors' meter states and counters, the supervisor's parts and conditions,
the contracts' baselines, and which alarms are raised (for clear thresholds). Derived
arrays (a meter's use per hour on the shared hour grid, per local day, per quarter hour)
are computed once per evaluation, when a rule first asks.

Rules are pure functions `rule(ctx, settings) -> list[Condition]`; building a context is
the engine's job (`alarms.engine`), so a rule can be tested on hand-made readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from alarms.window import QUARTER_MS, SeriesView, Window
from core.config import AlarmsConfig, Meter, MeterKind, SiteConfig
from core.health import HealthSnapshot
from processing.baseline import Baseline
from processing.frames import MAKEUP, WORKDAY, hourly_frame

HOUR_MS = 3_600_000
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PRIMARY: dict[MeterKind, tuple[str, ...]] = {
    MeterKind.ELECTRICITY: ("energy_import", "energy_total"),
    MeterKind.WATER: ("volume",),
    MeterKind.THERMAL: ("thermal_energy", "cooling_energy", "heating_energy"),
    MeterKind.GAS: ("volume",),
    MeterKind.WEATHER: ("outdoor_temperature",),
}
"""The series that tells a meter's use (or, for a weather station, that it reports): the
first of these the store holds."""


@dataclass(frozen=True, slots=True)
class MeterState:
    """The collectors' view of a meter (`collectors.availability`), when they run here."""

    up: bool
    last_seen_ms: int
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class OpsSample:
    """The service's counters at one evaluation: what data rules compare over time."""

    at_ms: int
    dead_letters: int | None = None
    """MQTT messages written to the dead-letter file since the service started."""
    spool_batches: int | None = None
    """Batches held in the spool in front of a network store."""


@dataclass(frozen=True, slots=True)
class Grid:
    """The hours of the window (UTC starts), in the site's local time."""

    start_ms: IntArray
    day: npt.NDArray[np.datetime64]
    hour: IntArray
    day_type: IntArray
    complete: BoolArray
    """The hour has ended."""
    working: BoolArray
    """The hour is on a working day (or a 调休 make-up day)."""

    def within(self, hours: tuple[int, int]) -> BoolArray:
        return (self.hour >= hours[0]) & (self.hour < hours[1])


@dataclass
class Context:
    """One evaluation's view of the service (module doc)."""

    site: SiteConfig
    now_ms: int
    window: Window
    primary: Mapping[str, str]
    """Meter id -> the quantity its use (or its reporting) is read from."""
    started_ms: int = 0
    """When the engine started: a meter never seen is silent since then."""
    raised: frozenset[tuple[str, str]] = frozenset()
    health: HealthSnapshot | None = None
    meter_states: Mapping[str, MeterState] | None = None
    ops: tuple[OpsSample, ...] = ()
    baselines: Mapping[tuple[str, str], Baseline] = field(default_factory=dict)
    _hourly: dict[str, FloatArray] = field(default_factory=dict, repr=False)
    _views: dict[tuple[str, str], SeriesView | None] = field(default_factory=dict, repr=False)

    @property
    def settings(self) -> AlarmsConfig:
        return self.site.alarms

    def is_raised(self, rule: str, subject: str) -> bool:
        return (rule, subject) in self.raised

    # -- series --------------------------------------------------------------------------------

    def view(self, meter_id: str, quantity: str) -> SeriesView | None:
        key = (meter_id, quantity)
        if key not in self._views:
            self._views[key] = self.window.view(key, self.now_ms)
        return self._views[key]

    def use_view(self, meter_id: str) -> SeriesView | None:
        quantity = self.primary.get(meter_id)
        return None if quantity is None else self.view(meter_id, quantity)

    def meters(self, kinds: tuple[MeterKind, ...] = ()) -> list[Meter]:
        """The site's meters (of `kinds`) whose use the engine reads."""
        return [
            m
            for m in self.site.meters
            if m.id in self.primary
            and (not kinds or m.kind in kinds)
            and m.kind is not MeterKind.WEATHER
        ]

    # -- the hour grid ---------------------------------------------------------------------------

    @cached_property
    def grid(self) -> Grid:
        last = self.now_ms // HOUR_MS * HOUR_MS
        n = max(1, self.window.retain_ms // HOUR_MS)
        starts = last - HOUR_MS * np.arange(n - 1, -1, -1, dtype=np.int64)
        frame = hourly_frame(
            starts,
            self.site.site.timezone,
            self.site.work_calendar.day_type,
            np.zeros(n),
            np.zeros(n),
        )
        return Grid(
            starts,
            frame.day,
            frame.hour,
            frame.day_type,
            starts + HOUR_MS <= self.now_ms,
            np.isin(frame.day_type, (WORKDAY, MAKEUP)),
        )

    def hourly_use(self, meter_id: str, quantity: str | None = None) -> FloatArray:
        """The meter's use in each hour of the grid (the running hour so far), from its
        primary counter or `quantity`; NaN where unknown: no reading at either end of the
        hour, or the counter went back."""
        quantity = quantity or self.primary.get(meter_id, "")
        key = f"{meter_id}\x00{quantity}\x00use"
        if key not in self._hourly:
            view = self.view(meter_id, quantity) if quantity else None
            self._hourly[key] = (
                np.full(len(self.grid.start_ms), np.nan)
                if view is None or not view.counter
                else hourly_from_quarters(view.q_ts, view.q_v, self.grid.start_ms)
            )
        return self._hourly[key]

    def hourly_mean(self, meter_id: str, quantity: str) -> FloatArray:
        """An instantaneous quantity's mean in each hour of the grid (NaN: no reading)."""
        key = f"{meter_id}\x00{quantity}"
        if key not in self._hourly:
            view = self.view(meter_id, quantity)
            out = np.full(len(self.grid.start_ms), np.nan)
            if view is not None and len(view.q_ts):
                idx = (view.q_ts // HOUR_MS * HOUR_MS - self.grid.start_ms[0]) // HOUR_MS
                ok = (idx >= 0) & (idx < len(out)) & np.isfinite(view.q_v)
                sums = np.bincount(idx[ok], weights=(view.q_v * view.q_n)[ok], minlength=len(out))
                counts = np.bincount(idx[ok], weights=view.q_n[ok], minlength=len(out))
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = np.where(counts > 0, sums / counts, np.nan)
            self._hourly[key] = out
        return self._hourly[key]

    @cached_property
    def days(self) -> tuple[npt.NDArray[np.datetime64], IntArray, IntArray, BoolArray]:
        """The grid's local days: (dates, the day of each hour, day types, day has ended)."""
        days, index = np.unique(self.grid.day, return_inverse=True)
        types = np.zeros(len(days), np.int64)
        types[index] = self.grid.day_type
        hours = np.bincount(index, minlength=len(days))
        ended = np.bincount(index, weights=self.grid.complete, minlength=len(days)) == hours
        ended &= hours >= 23
        return days, index.astype(np.int64), types, ended

    def daily(self, hourly: FloatArray) -> FloatArray:
        """Per local day of the grid: the sum of `hourly`, NaN unless every hour is known and
        the day has ended (the grid's first day, cut by the window, never counts)."""
        days, index, _types, ended = self.days
        sums = np.bincount(index, weights=np.nan_to_num(hourly), minlength=len(days))
        bad = np.bincount(index, weights=~np.isfinite(hourly), minlength=len(days))
        ok = ended & (bad == 0)
        ok[0] = False
        return np.where(ok, sums, np.nan)

    @cached_property
    def outdoor(self) -> FloatArray | None:
        """The outdoor temperature's mean in each hour of the grid, from the site's first
        weather station that reports; None when none does."""
        for m in self.site.meters:
            quantity = self.primary.get(m.id)
            if m.kind is MeterKind.WEATHER and quantity is not None:
                t = self.hourly_mean(m.id, quantity)
                if np.isfinite(t).sum() >= 24:
                    return t
        return None

    def outdoor_by_day(self, hours: tuple[int, int] | None = None) -> FloatArray | None:
        """Per local day of the grid: the mean outdoor temperature over its `hours` (local,
        [start, end); default the whole day), NaN with fewer than half of them known."""
        t = self.outdoor
        if t is None:
            return None
        days, index, _types, _ended = self.days
        take = np.isfinite(t) if hours is None else np.isfinite(t) & self.grid.within(hours)
        span = 24 if hours is None else hours[1] - hours[0]
        n = np.bincount(index, weights=take, minlength=len(days))
        sums = np.bincount(index, weights=np.where(take, t, 0.0), minlength=len(days))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n * 2 >= span, sums / n, np.nan)

    def quarter_demand(self, meter_id: str) -> tuple[IntArray, FloatArray]:
        """The meter's mean power (kW) in each quarter hour of the window whose previous
        quarter hour has a reading: the 15-minute demand 需量 is measured by."""
        view = self.use_view(meter_id)
        if view is None or not view.counter or len(view.q_ts) < 2:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        step = np.diff(view.q_v)
        follows = np.diff(view.q_ts) == QUARTER_MS
        ok = follows & (step >= 0)
        return view.q_ts[1:][ok], step[ok] * (HOUR_MS / QUARTER_MS)


def hourly_from_quarters(q_ts: IntArray, q_v: FloatArray, hours: IntArray) -> FloatArray:
    """A counter's use per hour from its last value in each quarter hour: the last value of
    the hour minus that of the hour before (NaN when either hour has none, or it went back)."""
    out = np.full(len(hours), np.nan)
    if len(q_ts) == 0 or len(hours) == 0:
        return out
    h = q_ts // HOUR_MS * HOUR_MS
    is_last = np.r_[h[1:] != h[:-1], True]
    idx = (h[is_last] - hours[0]) // HOUR_MS + 1  # 0: the hour before the grid
    last = np.full(len(hours) + 1, np.nan)
    ok = (idx >= 0) & (idx <= len(hours))
    last[idx[ok]] = q_v[is_last][ok]
    use = last[1:] - last[:-1]
    return np.where(use >= 0, use, np.nan)


def robust(values: FloatArray) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 x MAD) of the finite values (NaN, NaN
    when there are none)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return float("nan"), float("nan")
    median = _median(v)
    return median, 1.4826 * _median(np.abs(v - median))


def percentile(values: FloatArray, q: float) -> float:
    """`np.percentile(values, q)` (linear interpolation, the same arithmetic) of a non-empty
    array, without its overhead."""
    s = np.sort(values)
    x = (len(s) - 1) * (q / 100)
    i = int(np.floor(x))
    if i + 1 >= len(s):
        return float(s[-1])
    a, b, g = s[i], s[i + 1], x - i
    d = b - a
    return float(b - d * (1 - g) if g >= 0.5 else a + d * g)


def _median(v: FloatArray) -> float:
    """`np.median` of a non-empty array, without its overhead (rules call it per meter and
    hour at every evaluation): the middle value, or the mean of the two middle ones."""
    s = np.sort(v)
    k = len(s) // 2
    return float(s[k]) if len(s) % 2 else float((s[k - 1] + s[k]) / 2)

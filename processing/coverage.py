"""Which meters had data over a window (a month), hour by hour: the hours each one missed, as
gaps, and whether it was silent at the window's end (offline).

    rows = coverage(site, store, start_ms, end_ms)   # one COUNT read per meter
    [r for r in rows if r.gaps]                       # the meters with data gaps

An hour *has data* when the meter's main series holds at least one reading in it: its
counter (kWh, m³, thermal kWh), or for a meter without one (a weather station) its first
measured quantity. Hours are the store's hourly buckets (UTC hours) that overlap the window.
`gaps()` is the pure part: present hours in, runs of missing hours out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.config import Meter, MeterKind, SiteConfig
from processing.rollups import COUNTER
from storage.base import Agg, Every, TimeSeriesStore

HOUR = Every.parse("1h")
HOUR_MS = HOUR.approx_ms

_FALLBACK = {
    MeterKind.THERMAL: ("cooling_energy", "heating_energy", "thermal_power"),
    MeterKind.WEATHER: ("outdoor_temperature", "relative_humidity"),
}
"""What a meter without its kind's counter is checked by, in order of preference."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Whole hours with no reading: [start, end) in UTC ms."""

    start_ms: int
    end_ms: int

    @property
    def hours(self) -> int:
        return -(-(self.end_ms - self.start_ms) // HOUR_MS)


@dataclass(frozen=True, slots=True)
class MeterCoverage:
    """One meter over the window: how many of its hours had data, and the runs that did not."""

    meter_id: str
    kind: str
    quantity: str | None
    """The series checked (None: the store holds nothing of this meter)."""
    hours: int
    hours_with_data: int
    gaps: tuple[Gap, ...]
    end_ms: int

    @property
    def share(self) -> float:
        return self.hours_with_data / self.hours if self.hours else 0.0

    @property
    def silent(self) -> bool:
        """No reading at all in the window."""
        return self.hours_with_data == 0

    @property
    def offline_at_end(self) -> bool:
        """Silent in the window's last hour: offline when the window closed."""
        return bool(self.gaps) and self.gaps[-1].end_ms == self.end_ms

    @property
    def longest_gap(self) -> Gap | None:
        return max(self.gaps, key=lambda g: (g.hours, -g.start_ms)) if self.gaps else None


def hour_grid(start_ms: int, end_ms: int) -> npt.NDArray[np.int64]:
    """Start of every hourly bucket that overlaps [start, end)."""
    first = HOUR.floor(start_ms)
    return np.arange(first, end_ms, HOUR_MS, dtype=np.int64)


def gaps(present_ms: npt.NDArray[np.int64], start_ms: int, end_ms: int) -> tuple[Gap, ...]:
    """Runs of hours of [start, end) not in `present_ms` (hour starts), each [start, end);
    the last one ends at `end_ms`."""
    grid = hour_grid(start_ms, end_ms)
    missing = ~np.isin(grid, present_ms)
    if not missing.any():
        return ()
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        stop = int(grid[e]) if e < len(grid) else end_ms
        out.append(Gap(int(grid[s]), stop))
    return tuple(out)


def primary_quantity(meter: Meter, stored: Iterable[str]) -> str | None:
    """The series a meter's presence is judged by: its kind's counter when the store has
    it, else a fallback of its kind, else its first stored quantity."""
    have = sorted(set(stored))
    candidates: list[str | None] = [COUNTER.get(meter.kind), *_FALLBACK.get(meter.kind, ())]
    for candidate in candidates:
        if candidate in have:
            return candidate
    return have[0] if have else None


def coverage(
    site: SiteConfig, store: TimeSeriesStore, start_ms: int, end_ms: int
) -> list[MeterCoverage]:
    """Every meter of the site over [start, end), in site-file order."""
    stored: dict[str, set[str]] = {}
    for meter_id, name in store.series_keys():
        stored.setdefault(meter_id, set()).add(name)
    n = len(hour_grid(start_ms, end_ms))
    out = []
    for m in site.meters:
        quantity = primary_quantity(m, stored.get(m.id, ()))
        present = np.zeros(0, dtype=np.int64)
        if quantity is not None:
            series = store.aggregate(
                m.id, quantity, start_ms, end_ms, HOUR, Agg.COUNT, site.site.timezone
            )
            present = series.ts_ms[series.value > 0]
        found = gaps(present, start_ms, end_ms)
        missing = sum(g.hours for g in found)
        out.append(MeterCoverage(m.id, m.kind.value, quantity, n, n - missing, found, end_ms))
    return out


__all__ = ["Gap", "MeterCoverage", "coverage", "gaps", "hour_grid", "primary_quantity"]

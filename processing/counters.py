"""Interval consumption from cumulative registers (kWh, m³): pure functions over samples.

A counter is the truth for energy: between two samples the consumption is their difference,
whatever happened in between, so a missed poll loses resolution and never energy. What can go
wrong, and what happens (each is an `CounterEvent` the caller reports; nothing is silent):

- **glitch**: one sample out of line with both neighbours (a spike or a dip that the next
  sample undoes). The sample is dropped; the energy is in its neighbours' difference.
- **roll-over**: the register wrapped at its modulus (`rollover`, e.g. 99,999,999.9 kWh or
  2³² x resolution). The difference is taken modulo the register.
- **reset**: the register went back (meter replaced or cleared). The new register is taken to
  have started at zero, so the interval's consumption is the new reading.
- **jitter**: a sample a hair below the level before it, by at most `JITTER` of that level
  (a register read as float32 rounds 397,208.14 kWh to 397,208.125; a meter's total and its
  tariff registers disagree in the last digit). That is the register's resolution, not a
  reset: the level holds until the register passes it, so no consumption is invented (taken
  as a reset, the whole register, 397 MWh, would be credited to one interval) and none is
  lost. Not an event: nothing happened to the meter.
- **gap**: two samples further apart than `max_gap_ms`. The energy between them is known,
  but not when it was used. Bucket boundaries inside the gap are interpolated linearly, and
  every bucket that depends on such a boundary is marked `estimated`: fit no model on it,
  count it in totals with the mark.

Consumption is never negative. Bucket boundaries between samples are interpolated linearly
on the corrected cumulative energy, so buckets add up exactly to the samples' total.
Buckets before the first or after the last sample are unknown (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


JITTER = 1e-6
"""A step back by at most this share of the register's level is its resolution (float32
registers round to about 6e-8 of their value), never a reset or roll-over: a real reset
goes back to near zero, a roll-over by nearly the whole register."""


class EventKind(StrEnum):
    GLITCH = "glitch"
    ROLLOVER = "rollover"
    RESET = "reset"
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """Something the register did that the consumption had to account for."""

    kind: EventKind
    start_ms: int
    end_ms: int
    before: float
    after: float
    consumption: float  # what the interval was credited with (gap: spread over its buckets)

    def describe(self) -> str:
        minutes = (self.end_ms - self.start_ms) / 60_000
        match self.kind:
            case EventKind.GLITCH:
                return f"dropped one sample {self.before:,.3f} out of line with its neighbours"
            case EventKind.ROLLOVER:
                return f"register rolled over from {self.before:,.3f} to {self.after:,.3f}"
            case EventKind.RESET:
                return f"register reset from {self.before:,.3f} to {self.after:,.3f}; counted from zero"
            case _:
                return f"no sample for {minutes:,.0f} min; {self.consumption:,.3f} spread linearly"


@dataclass(frozen=True, slots=True)
class Consumption:
    """Consumption per bucket [edges[i], edges[i+1]) and how far to trust it."""

    edges_ms: IntArray
    value: FloatArray  # NaN: unknown (no sample on one side)
    estimated: BoolArray  # a boundary was interpolated across a gap
    events: tuple[CounterEvent, ...]

    @property
    def start_ms(self) -> IntArray:
        return self.edges_ms[:-1]

    @property
    def usable(self) -> BoolArray:
        """Known and not estimated: fit for a model."""
        return np.isfinite(self.value) & ~self.estimated


def clean_counter(
    ts_ms: IntArray,
    values: FloatArray,
    *,
    rollover: float | None = None,
) -> tuple[IntArray, FloatArray, list[CounterEvent]]:
    """Sample times and corrected cumulative consumption (from 0 at the first sample), with
    the events met. Input in time order; NaN samples are ignored."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(v)
    ts, v = ts[keep], v[keep]
    events: list[CounterEvent] = []
    if len(v) == 0:
        return ts, v, events
    # Glitches: a sample above both neighbours while they increase (a spike), or below both
    # (a dip). Decided on the raw values; a roll-over or reset is not a glitch because the
    # sample after it stays low.
    if len(v) >= 3:
        prev, cur, nxt = v[:-2], v[1:-1], v[2:]
        spike = (cur > nxt) & (prev <= nxt)
        dip = (cur < prev) & (prev <= nxt)
        bad = np.flatnonzero(spike | dip) + 1
        for i in bad.tolist():
            events.append(
                CounterEvent(
                    EventKind.GLITCH, int(ts[i - 1]), int(ts[i + 1]), float(v[i]), float(v[i]), 0.0
                )
            )
        if len(bad):
            mask = np.ones(len(v), dtype=bool)
            mask[bad] = False
            ts, v = ts[mask], v[mask]
    v = _hold_jitter(v)
    delta = np.diff(v)
    for i in np.flatnonzero(delta < 0).tolist():
        before, after = float(v[i]), float(v[i + 1])
        wrapped = (rollover - before) + after if rollover is not None else None
        if wrapped is not None and 0 <= wrapped < rollover / 2:  # type: ignore[operator]
            delta[i] = wrapped
            kind = EventKind.ROLLOVER
        else:
            delta[i] = max(after, 0.0)
            kind = EventKind.RESET
        events.append(
            CounterEvent(kind, int(ts[i]), int(ts[i + 1]), before, after, float(delta[i]))
        )
    cumulative = np.concatenate([[0.0], np.cumsum(delta)])
    return ts, cumulative, events


def _hold_jitter(v: FloatArray) -> FloatArray:
    """`v` with each sample a hair below the level before it (module doc: jitter) raised to
    that level. Visits only the samples below a level, so a clean series costs one diff."""
    back = np.flatnonzero(np.diff(v) < 0)
    if len(back) == 0:
        return v
    v = v.copy()
    for i in back.tolist():
        level = v[i]  # raised already when it was itself a held sample
        j = i + 1
        while j < len(v) and v[j] < level and level - v[j] <= JITTER * abs(level):
            v[j] = level
            j += 1
    return v


def bucket_consumption(
    ts_ms: IntArray,
    values: FloatArray,
    edges_ms: IntArray,
    *,
    max_gap_ms: int = 65 * 60_000,
    rollover: float | None = None,
) -> Consumption:
    """Consumption in each bucket between consecutive `edges_ms` from register samples."""
    edges = np.asarray(edges_ms, dtype=np.int64)
    ts, cumulative, events = clean_counter(ts_ms, values, rollover=rollover)
    n_buckets = len(edges) - 1
    if len(ts) < 2:
        return Consumption(
            edges, np.full(n_buckets, np.nan), np.zeros(n_buckets, dtype=bool), tuple(events)
        )
    at_edge = np.interp(edges, ts, cumulative)
    outside = (edges < ts[0]) | (edges > ts[-1])
    at_edge[outside] = np.nan
    value = np.diff(at_edge)
    # Gaps: intervals longer than max_gap; an edge strictly inside one is an estimate.
    gap = np.flatnonzero(np.diff(ts) > max_gap_ms)
    edge_estimated = np.zeros(len(edges), dtype=bool)
    if len(gap):
        gap_start, gap_end = ts[gap], ts[gap + 1]
        pos = np.searchsorted(ts, edges, side="right") - 1  # the sample at or before each edge
        inside = (pos >= 0) & (pos < len(ts) - 1)
        in_gap = np.zeros(len(edges), dtype=bool)
        is_gap_interval = np.zeros(len(ts), dtype=bool)
        is_gap_interval[gap] = True
        in_gap[inside] = is_gap_interval[pos[inside]] & (edges[inside] != ts[pos[inside]])
        edge_estimated = in_gap
        for s, e, i in zip(gap_start.tolist(), gap_end.tolist(), gap.tolist(), strict=True):
            events.append(
                CounterEvent(
                    EventKind.GAP,
                    int(s),
                    int(e),
                    float(cumulative[i]),
                    float(cumulative[i + 1]),
                    float(cumulative[i + 1] - cumulative[i]),
                )
            )
    estimated = edge_estimated[:-1] | edge_estimated[1:]
    # A bucket lying wholly inside a gap has no edge in a sample interval of its own.
    if len(gap):
        mid = (edges[:-1] + edges[1:]) // 2
        pos = np.searchsorted(ts, mid, side="right") - 1
        inside = (pos >= 0) & (pos < len(ts) - 1)
        whole = np.zeros(n_buckets, dtype=bool)
        gap_set = np.zeros(len(ts), dtype=bool)
        gap_set[gap] = True
        whole[inside] = gap_set[pos[inside]]
        estimated |= whole
    value = np.where(np.isfinite(value), np.maximum(value, 0.0), np.nan)
    events.sort(key=lambda e: e.start_ms)
    return Consumption(edges, value, estimated, tuple(events))

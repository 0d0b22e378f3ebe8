"""What the alarm engine keeps of the store between evaluations, and how it keeps it current
with incremental reads (the only module of the engine that reads the store).

Per series (meter, quantity) it keeps:

- the **recent** raw readings (the last `raw_keep_ms`): offline, resets, jumps, the load of
  the last minutes;
- **quarter-hour buckets** over `retain_ms` (a counter's last value in each quarter hour, an
  instantaneous quantity's mean and count): hourly and daily use, base load, demand, the
  month's maximum demand. 35 days of 120 series is ~400,000 numbers.

The first evaluation loads both from the store (one roll-up and one raw read per series);
each later one reads only the raw readings since the previous one (less `late_ms`, for
readings that arrive late) and recomputes the quarter hours they touch. `prefetch(start,
end)` loads a whole stretch at once for a replay over history (a benchmark): evaluations at
instants up to `end` then read nothing, and see nothing after their instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.quantities import QUANTITIES
from storage.base import Agg, Every, Series, TimeSeriesStore

QUARTER_MS = 900_000
QUARTER = Every(15, "m")
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Key = tuple[str, str]


@dataclass
class SeriesData:
    """One series as the engine keeps it."""

    counter: bool
    recent_ts: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    recent_v: FloatArray = field(default_factory=lambda: np.empty(0, np.float64))
    q_ts: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    q_v: FloatArray = field(default_factory=lambda: np.empty(0, np.float64))
    q_n: FloatArray = field(default_factory=lambda: np.empty(0, np.float64))
    """Readings in each quarter hour (the weight of an instantaneous quantity's mean)."""


def quarters_of(
    ts: IntArray, v: FloatArray, counter: bool
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Quarter-hour buckets of raw readings in time order: (starts, last or mean, count)."""
    if len(ts) == 0:
        empty = np.empty(0, np.float64)
        return np.empty(0, np.int64), empty, empty
    q = ts // QUARTER_MS * QUARTER_MS
    starts, first, counts = np.unique(q, return_index=True, return_counts=True)
    if counter:
        last = first + counts - 1
        return starts, v[last].astype(np.float64), counts.astype(np.float64)
    sums = np.add.reduceat(v, first)
    return starts, sums / counts, counts.astype(np.float64)


@dataclass(frozen=True, slots=True)
class SeriesView:
    """A series up to one instant: its recent readings and its quarter hours (the one
    holding the instant computed from the readings up to it)."""

    recent: Series
    q_ts: IntArray
    q_v: FloatArray
    q_n: FloatArray
    counter: bool

    @property
    def last_ts(self) -> int | None:
        if len(self.recent):
            return int(self.recent.ts_ms[-1])
        return int(self.q_ts[-1]) if len(self.q_ts) else None


class Window:
    """The series the rules read, kept current (module doc)."""

    def __init__(
        self,
        keys: list[Key],
        *,
        retain_ms: int,
        raw_keep_ms: int = 2 * 3_600_000,
        late_ms: int = 900_000,
    ) -> None:
        self.retain_ms = retain_ms
        self.late_ms = late_ms
        self.raw_keep_ms = max(raw_keep_ms, late_ms + 2 * QUARTER_MS)
        self.series: dict[Key, SeriesData] = {}
        self.cursor_ms: int | None = None
        """Everything before this has been read."""
        self.reads = 0
        """Store reads so far (for tests of incrementality and for the measurement)."""
        self._unloaded: set[Key] = set()
        self.add(keys)

    def add(self, keys: list[Key]) -> list[Key]:
        """Start keeping more series (a meter that reported for the first time); they are
        loaded on the next `update`. Returns those that are new."""
        new = [k for k in keys if k not in self.series]
        for meter, quantity in new:
            spec = QUANTITIES.get(quantity)
            self.series[(meter, quantity)] = SeriesData(counter=bool(spec and spec.counter))
        self._unloaded |= set(new)
        return new

    # -- reading the store ---------------------------------------------------------------------

    def _load(self, store: TimeSeriesStore, key: Key, start_ms: int, end_ms: int) -> None:
        """Quarter hours of [start, end - raw_keep) from the store's roll-up, raw readings
        of the rest."""
        data = self.series[key]
        raw_from = max(start_ms, end_ms - self.raw_keep_ms) // QUARTER_MS * QUARTER_MS
        if raw_from > start_ms:
            agg = Agg.LAST if data.counter else Agg.MEAN
            rolled = store.aggregate(*key, start_ms, raw_from, QUARTER, agg)
            data.q_ts, data.q_v = rolled.ts_ms, rolled.value
            data.q_n = np.ones(len(rolled), np.float64)
            self.reads += 1
            if not data.counter and len(rolled):
                counts = store.aggregate(*key, start_ms, raw_from, QUARTER, Agg.COUNT)
                self.reads += 1
                n = dict(zip(counts.ts_ms.tolist(), counts.value.tolist(), strict=True))
                data.q_n = np.array([n.get(t, 1.0) for t in rolled.ts_ms.tolist()], np.float64)
        raw = store.read_raw(*key, raw_from, end_ms)
        self.reads += 1
        data.recent_ts, data.recent_v = raw.ts_ms, raw.value
        self._requarter(data, raw_from)

    def update(self, store: TimeSeriesStore, now_ms: int) -> None:
        """Read what arrived since the last update (everything, the first time)."""
        end = max(now_ms + 1, self.cursor_ms or 0)
        loaded = sorted(self._unloaded)
        for key in loaded:
            self._load(store, key, end - self.retain_ms, end)
        self._unloaded = set()
        if self.cursor_ms is None:
            self.cursor_ms = end
            return
        if end <= self.cursor_ms:  # prefetched, or asked twice for the same instant
            return
        since = self.cursor_ms - self.late_ms
        for key, data in self.series.items():
            if key in loaded:
                continue
            raw = store.read_raw(*key, since, end)
            self.reads += 1
            self._merge(data, raw, since)
        self.cursor_ms = end
        self._trim(end)

    def prefetch(self, store: TimeSeriesStore, start_ms: int, end_ms: int) -> None:
        """Load [start - retain, end) at once for evaluations at instants in [start, end)."""
        self._unloaded = set(self.series)
        self.cursor_ms = None
        for key in sorted(self._unloaded):
            self._load_all(store, key, start_ms - self.retain_ms, end_ms)
        self._unloaded = set()
        self.cursor_ms = end_ms

    def _load_all(self, store: TimeSeriesStore, key: Key, start_ms: int, end_ms: int) -> None:
        data = self.series[key]
        raw = store.read_raw(*key, start_ms, end_ms)
        self.reads += 1
        data.recent_ts, data.recent_v = raw.ts_ms, raw.value
        data.q_ts, data.q_v, data.q_n = quarters_of(raw.ts_ms, raw.value, data.counter)

    # -- keeping it -----------------------------------------------------------------------------

    def _merge(self, data: SeriesData, raw: Series, since_ms: int) -> None:
        keep = data.recent_ts < since_ms
        data.recent_ts = np.concatenate([data.recent_ts[keep], raw.ts_ms])
        data.recent_v = np.concatenate([data.recent_v[keep], raw.value])
        self._requarter(data, since_ms // QUARTER_MS * QUARTER_MS)

    def _requarter(self, data: SeriesData, from_ms: int) -> None:
        """Quarter hours from `from_ms` on, recomputed from the recent readings (which reach
        back that far: `raw_keep_ms` exceeds `late_ms` by two quarter hours)."""
        sel = data.recent_ts >= from_ms
        ts, v, n = quarters_of(data.recent_ts[sel], data.recent_v[sel], data.counter)
        old = data.q_ts < from_ms
        data.q_ts = np.concatenate([data.q_ts[old], ts])
        data.q_v = np.concatenate([data.q_v[old], v])
        data.q_n = np.concatenate([data.q_n[old], n])

    def _trim(self, end_ms: int) -> None:
        q_from, raw_from = end_ms - self.retain_ms, end_ms - self.raw_keep_ms
        for data in self.series.values():
            if len(data.q_ts) and data.q_ts[0] < q_from:
                k = int(np.searchsorted(data.q_ts, q_from))
                data.q_ts, data.q_v, data.q_n = data.q_ts[k:], data.q_v[k:], data.q_n[k:]
            if len(data.recent_ts) and data.recent_ts[0] < raw_from:
                k = int(np.searchsorted(data.recent_ts, raw_from))
                data.recent_ts, data.recent_v = data.recent_ts[k:], data.recent_v[k:]

    # -- what the rules see ---------------------------------------------------------------------

    def view(self, key: Key, now_ms: int) -> SeriesView | None:
        """The series as it was at `now_ms` (nothing later), or None when not kept."""
        data = self.series.get(key)
        if data is None:
            return None
        end = int(np.searchsorted(data.recent_ts, now_ms, side="right"))
        lo = int(np.searchsorted(data.recent_ts, now_ms - self.raw_keep_ms))
        recent = Series(data.recent_ts[lo:end], data.recent_v[lo:end])
        current = now_ms // QUARTER_MS * QUARTER_MS
        first = now_ms - self.retain_ms
        a = int(np.searchsorted(data.q_ts, first))
        b = int(np.searchsorted(data.q_ts, current))
        cur = recent.ts_ms >= current
        ts, v, n = quarters_of(recent.ts_ms[cur], recent.value[cur], data.counter)
        return SeriesView(
            recent,
            np.concatenate([data.q_ts[a:b], ts]),
            np.concatenate([data.q_v[a:b], v]),
            np.concatenate([data.q_n[a:b], n]),
            data.counter,
        )

"""A stand-in alarm engine for `bench.alarms`: three trivial rules and a bare life cycle.

It is here to exercise the detection harness before the real rules are merged (and to test
it): `meter_offline` (no reading for 2.5 poll intervals), `counter_reset` /
`implausible_jump` (the newest counter readings step down / up by more than `JUMP`), and
`night_water_flow` (a water meter's least flow between 01:00 and 05:00 local last night above
`LEAK_M3H`). The life cycle raises an alarm the first time its condition is active and
clears it the first time it is not. `python -m bench.alarms --engine MODULE:FUNCTION` runs the
real engine instead: a function `(site, store) -> (evaluate, lifecycle)` like `engine` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from alarms.model import Alarm, Category, Condition, Severity, Transition
from core.config import MeterKind, SiteConfig
from storage.base import TimeSeriesStore

STALE_INTERVALS = 2.5
JUMP = 5_000.0
"""A counter step larger than this (kWh, m³) in one reading is implausible here."""
LEAK_M3H = 0.3
COUNTER = {
    MeterKind.ELECTRICITY: "energy_import",
    MeterKind.WATER: "volume",
    MeterKind.THERMAL: "thermal_energy",
}


class StandInRules:
    """`evaluate(store, now_ms)`: what the three rules see now."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self._last: dict[str, tuple[int, float]] = {}
        self._nights: dict[tuple[str, int], float] = {}

    def __call__(self, store: TimeSeriesStore, now_ms: int) -> list[Condition]:
        return [
            *self._offline(store, now_ms),
            *self._counters(store, now_ms),
            *self._leaks(store, now_ms),
        ]

    def _offline(self, store: TimeSeriesStore, now_ms: int) -> list[Condition]:
        newest: dict[str, int] = {}
        for r in store.latest():
            newest[r.meter_id] = max(newest.get(r.meter_id, r.ts_ms), r.ts_ms)
        out = []
        for m in self.site.meters:
            if m.id not in newest:
                continue  # never seen: not installed yet
            age_s = (now_ms - newest[m.id]) / 1000
            limit = STALE_INTERVALS * m.poll_interval_s
            out.append(
                Condition(
                    "meter_offline", m.id, age_s > limit, Severity.WARNING, Category.DATA,
                    f"{m.id}: no reading for {age_s:.0f} s", age_s, limit, "s", (m.id,), now_ms,
                )
            )  # fmt: skip
        return out

    def _counters(self, store: TimeSeriesStore, now_ms: int) -> list[Condition]:
        out = []
        for m in self.site.meters:
            quantity = COUNTER.get(m.kind)
            if quantity is None:
                continue
            last = self._last.get(m.id)
            since = last[0] + 1 if last is not None else now_ms - 3_600_000
            s = store.read_raw(m.id, quantity, since, now_ms + 1)
            if not len(s):
                continue
            values = np.concatenate([[last[1]], s.value]) if last is not None else s.value
            self._last[m.id] = (int(s.ts_ms[-1]), float(s.value[-1]))
            steps = np.diff(values)
            for rule, active in (
                ("counter_reset", bool((steps < 0).any())),
                ("implausible_jump", bool((steps > JUMP).any())),
            ):
                out.append(
                    Condition(
                        rule, m.id, active, Severity.WARNING, Category.DATA,
                        f"{m.id}: {rule.replace('_', ' ')}", meters=(m.id,), observed_ms=now_ms,
                    )
                )  # fmt: skip
        return out

    def _leaks(self, store: TimeSeriesStore, now_ms: int) -> list[Condition]:
        tz = self.site.site.tz
        local = datetime.fromtimestamp(now_ms / 1000, tz)
        night = local.replace(hour=1, minute=0, second=0, microsecond=0)
        if local.hour < 5:
            night -= timedelta(days=1)
        a = int(night.timestamp() * 1000)
        b = a + 4 * 3_600_000
        out = []
        for m in self.site.meters:
            if m.kind is not MeterKind.WATER:
                continue
            key = (m.id, a)
            if key not in self._nights:
                s = store.read_raw(m.id, "flow", a, b)
                self._nights[key] = float(s.value.min()) if len(s) else float("nan")
            least = self._nights[key]
            out.append(
                Condition(
                    "night_water_flow", m.id, bool(least > LEAK_M3H), Severity.WARNING,
                    Category.CONSUMPTION, f"{m.id}: {least:.2f} m³/h at night", least, LEAK_M3H,
                    "m³/h", (m.id,), now_ms,
                )
            )  # fmt: skip
        return out


class StandInLifeCycle:
    """Raised when first active, cleared when first not; no hysteresis, no minimum duration."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, str], Alarm] = {}
        self._ids = 0

    def observe(self, conditions: Sequence[Condition], now_ms: int) -> list[Transition]:
        out = []
        for c in conditions:
            key = (c.rule, c.subject)
            alarm = self._active.get(key)
            if c.active and alarm is None:
                self._ids += 1
                alarm = Alarm(
                    self._ids, c.rule, c.subject, "active", c.severity, c.category, c.message,
                    now_ms, now_ms, value=c.value, threshold=c.threshold, unit=c.unit,
                    meters=c.meters,
                )  # fmt: skip
                self._active[key] = alarm
                out.append(Transition("raised", alarm, now_ms))
            elif not c.active and alarm is not None:
                del self._active[key]
                cleared = replace(alarm, state="cleared", updated_ms=now_ms, cleared_ms=now_ms)
                out.append(Transition("cleared", cleared, now_ms))
        return out


def engine(site: SiteConfig, store: TimeSeriesStore) -> tuple[StandInRules, StandInLifeCycle]:
    del store
    return StandInRules(site), StandInLifeCycle()

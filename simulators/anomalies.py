"""Anomalies with ground truth: what was injected, where and when, and which alarm should say so.

    truth = truth_table(site, plan.anomalies)   # one `Truth` per anomaly
    truth[0].kind, truth[0].meter, truth[0].start_ms, truth[0].end_ms, truth[0].rules

The anomalies themselves are configured as `core.config.Anomaly` (`[[simulation.anomalies]]`,
`--fault METER:leak,start=...`, or drawn at random by `simulators.anomaly_draw`). The
physical ones (`leak`, `plant_on`, `base_load_step`, `demand_peak`) change the model
(`simulators.anomaly_physics`); the others change what a meter reports, live and in a
history, through `DataAnomalies` (used by `simulators.faults`).

`RULES` names, per kind, the alarm rules that catch it (the first is the one meant for it):
the names of `[alarms.rules]` (`alarms.rules.REGISTRY`), matched by a detection benchmark
against the alarms raised (a jump also makes its day's use implausible, a leak or a step up
shows in the day's use and out of hours). `CATEGORY` is the alarm category each kind belongs to (`alarms.model.Category`
values; the simulators do not import `alarms`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from core.config import Anomaly, SiteConfig
from core.config.anomalies import (
    DEFAULT_JUMP,
    DEFAULT_LEAK_M3H,
    DEFAULT_PEAK_SHARE,
    DEFAULT_STEP_SHARE,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

RULES: dict[str, tuple[str, ...]] = {
    "leak": ("night_water_flow", "daily_use", "out_of_hours"),
    "plant_on": ("plant_no_demand", "out_of_hours", "daily_use", "base_load"),
    "base_load_step": ("base_load", "out_of_hours", "daily_use"),
    "demand_peak": ("transformer_load", "max_demand"),
    "silent": ("meter_offline",),
    "counter_reset": ("counter_reset",),
    "jump": ("implausible_jump", "daily_use"),
}
"""Alarm rules that catch each kind of anomaly, the one meant for it first."""

CATEGORY: dict[str, str] = {
    "leak": "consumption",
    "plant_on": "consumption",
    "base_load_step": "consumption",
    "demand_peak": "capacity",
    "silent": "data",
    "counter_reset": "data",
    "jump": "data",
}
"""Each kind's alarm category (`alarms.model.Category`: data, consumption, capacity)."""

_DEFAULTS: dict[str, tuple[str, float]] = {
    "leak": ("flow_m3h", DEFAULT_LEAK_M3H),
    "base_load_step": ("share", DEFAULT_STEP_SHARE),
    "demand_peak": ("share", DEFAULT_PEAK_SHARE),
    "jump": ("amount", DEFAULT_JUMP),
}


@dataclass(frozen=True)
class Truth:
    """One injected anomaly, as a detection is scored against it."""

    kind: str
    meter: str
    start_ms: int
    end_ms: int | None
    """Exclusive; None: it never ends. Instants (counter reset, jump) end where they start."""
    category: str
    rules: tuple[str, ...]
    """The alarm rules that catch it, the one meant for it first."""
    meters: tuple[str, ...]
    """The meters whose readings show it: its own, and for a physical anomaly the meters
    above it (a leak behind a sub-meter flows through the main too)."""
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        return self.rules[0]

    def row(self) -> dict[str, object]:
        """A flat row for a CSV or Parquet truth file."""
        return {
            "kind": self.kind,
            "meter": self.meter,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "category": self.category,
            "rule": self.rule,
            "rules": ";".join(self.rules),
            "meters": ";".join(self.meters),
            "parameters": json.dumps(self.parameters, sort_keys=True),
        }


def ancestors(site: SiteConfig, meter_id: str) -> tuple[str, ...]:
    """The meters above `meter_id`, nearest first."""
    out: list[str] = []
    parent = site.meter(meter_id).parent
    while parent is not None:
        out.append(parent)
        parent = site.meters_by_id[parent].parent
    return tuple(out)


def truth_of(site: SiteConfig, anomaly: Anomaly) -> Truth:
    meters = (
        (anomaly.meter, *ancestors(site, anomaly.meter)) if anomaly.physics else (anomaly.meter,)
    )
    params = {
        k: v
        for k, v in anomaly.model_dump(include={"flow_m3h", "share", "kw", "amount"}).items()
        if v is not None
    }
    if not params and anomaly.kind in _DEFAULTS:  # say what was injected
        params = dict([_DEFAULTS[anomaly.kind]])
    return Truth(
        kind=anomaly.kind,
        meter=anomaly.meter,
        start_ms=anomaly.start_ms,
        end_ms=anomaly.end_ms,
        category=CATEGORY[anomaly.kind],
        rules=RULES[anomaly.kind],
        meters=meters,
        parameters=params,
    )


def truth_table(
    site: SiteConfig,
    anomalies: Sequence[Anomaly],
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Truth]:
    """The anomalies as truth, by start; with a range, only those that overlap [start, end)."""
    rows = [truth_of(site, a) for a in anomalies]
    if start_ms is not None:
        rows = [t for t in rows if t.end_ms is None or t.end_ms >= start_ms]
    if end_ms is not None:
        rows = [t for t in rows if t.start_ms < end_ms]
    return sorted(rows, key=lambda t: (t.start_ms, t.meter, t.kind))


# ------------------------------------------------------------------ what meters report


class DataAnomalies:
    """The anomalies that change what a meter reports (silence, counter resets and jumps),
    by meter; pure."""

    def __init__(self, anomalies: Sequence[Anomaly]) -> None:
        self._silent: dict[str, list[Anomaly]] = {}
        self._counter: dict[str, list[Anomaly]] = {}
        for a in sorted(anomalies, key=lambda a: a.start_ms):
            if a.kind == "silent":
                self._silent.setdefault(a.meter, []).append(a)
            elif a.kind in ("counter_reset", "jump"):
                self._counter.setdefault(a.meter, []).append(a)

    def __bool__(self) -> bool:
        return bool(self._silent or self._counter)

    def affects(self, meter_id: str) -> bool:
        return meter_id in self._silent or meter_id in self._counter

    def silent(self, meter_id: str, now_ms: int) -> bool:
        return any(a.active(now_ms) for a in self._silent.get(meter_id, ()))

    def silent_mask(self, meter_id: str, ts: I64) -> npt.NDArray[np.bool_]:
        """True where the meter is silent at `ts`."""
        out = np.zeros(len(ts), dtype=bool)
        for a in self._silent.get(meter_id, ()):
            end = a.end_ms
            out |= (ts >= a.start_ms) & (ts < (end if end is not None else np.iinfo(np.int64).max))
        return out

    def counter_events(self, meter_id: str) -> list[Anomaly]:
        return list(self._counter.get(meter_id, ()))

    def counter_offset(self, meter_id: str, now_ms: int, raw_at: Callable[[int], float]) -> float:
        """What the reported counter differs from the true one by at `now_ms`: a reset
        takes away everything counted up to it (jumps before it too), a jump adds its amount.
        `raw_at(ms)` is the true counter at an instant."""
        offset = 0.0
        for a in self._counter.get(meter_id, ()):
            if a.start_ms > now_ms:
                break
            offset = _after(a, offset, raw_at)
        return offset

    def counter_offsets(self, meter_id: str, ts: I64, raw_at: Callable[[int], float]) -> F64:
        """`counter_offset` at each of `ts` (vectorised)."""
        out = np.zeros(len(ts))
        offset = 0.0
        events = self._counter.get(meter_id, ())
        for k, a in enumerate(events):
            offset = _after(a, offset, raw_at)
            until = events[k + 1].start_ms if k + 1 < len(events) else np.iinfo(np.int64).max
            out[(ts >= a.start_ms) & (ts < until)] = offset
        return out


def _after(event: Anomaly, offset: float, raw_at: Callable[[int], float]) -> float:
    if event.kind == "counter_reset":
        return -raw_at(event.start_ms)
    return offset + (event.amount if event.amount is not None else DEFAULT_JUMP)

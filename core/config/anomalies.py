"""The simulators' anomalies, each with its true start and end: `[[simulation.anomalies]]`.

An anomaly is something an alarm should catch. Four change the site's physics (what the
meters measure, counters included), three what a meter reports:

| kind | meter | what happens from `start` to `end` |
|---|---|---|
| `leak` | a water meter | `flow_m3h` more flows through it, night and day |
| `plant_on` | a chiller or heat pump | it runs at its minimum load (with a chilled-water pump), whatever the demand: left on over a holiday |
| `base_load_step` | an electricity meter | its load rises by `share` of its night load (or by `kw`) |
| `demand_peak` | an incomer | its demand is held at `share` of its transformer's rating (or at `kw`); one hour unless `end` says |
| `silent` | any meter | it answers nothing (Modbus timeouts, no MQTT messages, no readings) |
| `counter_reset` | a meter with counters | at `start` its counters restart from zero (instant: no `end`) |
| `jump` | a meter with counters | at `start` its counters jump by `amount` and count on from there (instant) |

Which meters suit which kind (a leak needs a water meter, ...) is checked with the site's
other cross-references (`check_anomaly_references`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from core.config.base import EntityId, FieldError, _Model
from core.config.places import EndUse, MeterKind

if TYPE_CHECKING:
    from core.config.site import SiteConfig
    from core.errors import ConfigError

AnomalyKind = Literal[
    "leak", "plant_on", "base_load_step", "demand_peak", "silent", "counter_reset", "jump"
]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = (
    "leak",
    "plant_on",
    "base_load_step",
    "demand_peak",
    "silent",
    "counter_reset",
    "jump",
)
PHYSICS_KINDS: frozenset[str] = frozenset({"leak", "plant_on", "base_load_step", "demand_peak"})
"""Kinds that change what the meters measure (the model), not only what they report."""
INSTANT_KINDS: frozenset[str] = frozenset({"counter_reset", "jump"})

DEFAULT_LEAK_M3H = 0.5
DEFAULT_STEP_SHARE = 0.5
DEFAULT_PEAK_SHARE = 0.97
DEFAULT_PEAK_DURATION = timedelta(hours=1)
DEFAULT_JUMP = 10_000.0

_PARAMETERS: dict[str, frozenset[str]] = {
    "leak": frozenset({"flow_m3h"}),
    "plant_on": frozenset({"kw"}),
    "base_load_step": frozenset({"share", "kw"}),
    "demand_peak": frozenset({"share", "kw"}),
    "silent": frozenset(),
    "counter_reset": frozenset(),
    "jump": frozenset({"amount"}),
}


class Anomaly(_Model):
    """One anomaly with its true start and end: `[[simulation.anomalies]]`."""

    kind: AnomalyKind
    """What goes wrong (see the table in the README's Simulators section)."""
    meter: EntityId
    """The meter it happens at."""
    start: datetime
    """When it starts (with a UTC offset, e.g. `2025-08-01T22:00:00+08:00`)."""
    end: datetime | None = None
    """When it ends (exclusive); absent: for good (`demand_peak`: one hour). `counter_reset`
    and `jump` are instants and take none."""
    flow_m3h: float | None = Field(default=None, gt=0, le=1000)
    """`leak`: the flow added, m³/h (default 0.5)."""
    share: float | None = Field(default=None, gt=0, le=10)
    """`base_load_step`: the rise as a share of the meter's night load (default 0.5, i.e.
    +50 %); `demand_peak`: the demand held, as a share of the incomer's transformer rating
    (`[alarms.rules.transformer_load] rated_kva`; default 0.97)."""
    kw: float | None = Field(default=None, gt=0, le=100_000)
    """Instead of `share`, in kW: the rise (`base_load_step`), the demand held
    (`demand_peak`), the unit's load while left on (`plant_on`; default its minimum load)."""
    amount: float | None = Field(default=None, gt=0)
    """`jump`: how far the counters jump, in their own unit (default 10,000)."""

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2025-08-01T22:00:00+08:00")
        return value

    @model_validator(mode="after")
    def _fits_its_kind(self) -> Anomaly:
        allowed = _PARAMETERS[self.kind]
        for name in ("flow_m3h", "share", "kw", "amount"):
            if getattr(self, name) is not None and name not in allowed:
                takes = ", ".join(sorted(allowed)) or "no parameters"
                raise FieldError(name, f"a {self.kind} anomaly takes {takes}")
        if self.share is not None and self.kw is not None:
            raise FieldError("kw", "give share or kw, not both")
        if self.kind in INSTANT_KINDS and self.end is not None:
            raise FieldError("end", f"a {self.kind} is an instant: give start only")
        if self.end is not None and self.end <= self.start:
            raise FieldError("end", "must come after start")
        return self

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int | None:
        """The end (exclusive), UTC epoch ms; None: for good. Instants end where they start."""
        if self.kind in INSTANT_KINDS:
            return self.start_ms
        if self.end is not None:
            return int(self.end.timestamp() * 1000)
        if self.kind == "demand_peak":
            return self.start_ms + int(DEFAULT_PEAK_DURATION.total_seconds() * 1000)
        return None

    @property
    def physics(self) -> bool:
        return self.kind in PHYSICS_KINDS

    def active(self, now_ms: int) -> bool:
        end = self.end_ms
        return now_ms >= self.start_ms and (end is None or now_ms < end)


def unsuited(anomaly: Anomaly, site: SiteConfig) -> str | None:
    """Why `anomaly` cannot happen at its meter (None: it can); the meter must exist."""
    m = site.meters_by_id[anomaly.meter]
    kind = anomaly.kind
    if kind == "leak" and m.kind is not MeterKind.WATER:
        return "a leak needs a water meter"
    if kind == "plant_on" and (
        m.kind is not MeterKind.ELECTRICITY or m.end_use not in (EndUse.CHILLER, EndUse.HEATING)
    ):
        return "plant_on needs a chiller or heat pump meter (end use chiller or heating)"
    if kind == "base_load_step" and (
        m.kind is not MeterKind.ELECTRICITY or m.end_use is EndUse.INCOMER
    ):
        return "a base-load step needs an electricity meter below the incomers"
    if kind == "demand_peak" and m.end_use is not EndUse.INCOMER:
        return "a demand peak needs an incomer"
    if kind in INSTANT_KINDS and m.kind is MeterKind.WEATHER:
        return f"a {kind} needs a meter with counters"
    return None


def check_anomaly_references(cfg: SiteConfig, fail: Callable[[str, str, str], ConfigError]) -> None:
    """Each anomaly names a meter of the site that suits its kind."""
    for i, anomaly in enumerate(cfg.simulation.anomalies):
        if anomaly.meter not in cfg.meters_by_id:
            raise fail("[simulation]", f"anomalies.{i}.meter", f"no meter {anomaly.meter!r}")
        reason = unsuited(anomaly, cfg)
        if reason is not None:
            raise fail("[simulation]", f"anomalies.{i}.meter", f"{anomaly.meter}: {reason}")

"""The alarm rules `epcmon run` evaluates, and how an alarm is raised and cleared: `[alarms]`
and `[alarms.rules.<rule>]`.

Every rule has a table of its own under `[alarms.rules]`, with the four keys all rules share
(`enabled`, `severity`, `raise_after_s`, `clear_after_s`) and its own thresholds; a rule
absent from the file runs with the defaults below, which suit the reference site. The
rules themselves are in `alarms/rules/` (one registry, keyed by the same names).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from core.config.base import EntityId, FieldError, _Model
from core.config.places import EndUse, MeterKind

if TYPE_CHECKING:
    from core.config.site import SiteConfig
    from core.errors import ConfigError

SeverityName = Literal["info", "warning", "critical"]
Hours = tuple[int, int]


class RuleSettings(_Model):
    """What every rule has: on or off, how severe, how long before it is raised or cleared."""

    enabled: bool = True
    """Evaluate this rule."""
    severity: SeverityName = "warning"
    """The alarm's severity (`info`, `warning`, `critical`)."""
    raise_after_s: int = Field(default=0, ge=0, le=7 * 86_400)
    """The condition must hold this long before the alarm is raised (a blip raises nothing)."""
    clear_after_s: int = Field(default=0, ge=0, le=7 * 86_400)
    """The condition must be gone this long before the alarm clears (a flapping meter makes
    one alarm, not one per flap)."""


# -- data ------------------------------------------------------------------------------------


class MeterOffline(RuleSettings):
    """A meter that stopped reporting: `[alarms.rules.meter_offline]`."""

    raise_after_s: int = Field(default=300, ge=0, le=7 * 86_400)
    """The meter must stay silent this long beyond `after_intervals` before the alarm."""
    clear_after_s: int = Field(default=300, ge=0, le=7 * 86_400)
    """It must report again for this long before the alarm clears."""
    after_intervals: float = Field(default=3.0, ge=1, le=1000)
    """Silent for this many of its intervals (`poll_interval_s`) means offline ..."""
    min_silence_s: int = Field(default=900, ge=0, le=86_400)
    """... and never for less than this (a 15 s meter missing a minute is not offline)."""


class CounterReset(RuleSettings):
    """A counter register that went back (meter replaced or cleared, or a register roll-over):
    `[alarms.rules.counter_reset]`."""

    hold_s: int = Field(default=3600, ge=0, le=7 * 86_400)
    """The alarm stays active this long after the reset was seen (it is an event)."""


class ImplausibleJump(RuleSettings):
    """A counter that jumps further than the meter can have used: `[alarms.rules.implausible_jump]`."""

    factor: float = Field(default=10.0, gt=1)
    """A step between two readings whose rate exceeds this many times the meter's highest
    hourly use over `[alarms] reference_days` is implausible ..."""
    min_step: float = Field(default=50.0, ge=0)
    """... when it is also at least this much (kWh, m³)."""
    hold_s: int = Field(default=3600, ge=0, le=7 * 86_400)
    """The alarm stays active this long after the jump was seen. A jump stands alone: it is
    judged once the next reading shows the usual pace again (plant starting for the season
    keeps its new pace, and is use, not a jump)."""


class DeadLetters(RuleSettings):
    """MQTT messages that could not be used piling up: `[alarms.rules.dead_letters]`."""

    max_new: int = Field(default=10, ge=1)
    """This many new dead letters within `window_s` raise the alarm."""
    window_s: int = Field(default=900, ge=60, le=86_400)
    """The window they are counted in."""


class SpoolGrowing(RuleSettings):
    """Readings held in the spool in front of a network store that is not taking them:
    `[alarms.rules.spool_growing]`."""

    window_s: int = Field(default=600, ge=60, le=86_400)
    """The spool grew over this window ..."""
    min_batches: int = Field(default=1, ge=1)
    """... and holds at least this many batches; or it holds `max_batches` at all."""
    max_batches: int = Field(default=500, ge=1)
    """This many batches held is an alarm even when the spool is not growing."""


class StoreDegraded(RuleSettings):
    """The store refusing writes (ingest paused): `[alarms.rules.store_degraded]`."""

    severity: SeverityName = "critical"
    """The alarm's severity."""
    raise_after_s: int = Field(default=60, ge=0, le=7 * 86_400)
    """The store must refuse writes this long before the alarm."""


class PartRestarting(RuleSettings):
    """A supervised part of `epcmon run` failing and being restarted:
    `[alarms.rules.part_restarting]`."""

    window_s: int = Field(default=900, ge=60, le=86_400)
    """A part down now, or restarted within this window, is an alarm."""


# -- consumption -----------------------------------------------------------------------------


class OutOfHours(RuleSettings):
    """Use outside occupied hours (nights, weekends, holidays; 调休 days are working days)
    above what is expected then: `[alarms.rules.out_of_hours]`."""

    kinds: tuple[MeterKind, ...] = (MeterKind.ELECTRICITY,)
    """Meters of these kinds are judged, each against its own hourly profile (the same
    hour of the same kind of day over `[alarms] reference_days`); a contract's boundary is
    judged against its baseline's prediction."""
    min_hours: int = Field(default=3, ge=1, le=24)
    """The excess must last this many consecutive unoccupied hours."""
    ratio: float = Field(default=0.5, gt=0)
    """An hour is in excess when its use exceeds the expected by this share of it ..."""
    sigmas: float = Field(default=4.0, gt=0)
    """... and by this many robust standard deviations of that hour's use ..."""
    min_excess: float = Field(default=5.0, ge=0)
    """... and by at least this much (kWh per hour)."""


class DailyUse(RuleSettings):
    """A day's use above the expected by more than its uncertainty: `[alarms.rules.daily_use]`.

    For a contract's boundary, the expected is its baseline model's prediction (the M&V model
    as the anomaly detector) and the uncertainty the model's own; for other meters, the
    median of the same kind of day over `[alarms] reference_days` and its spread."""

    kinds: tuple[MeterKind, ...] = (MeterKind.ELECTRICITY, MeterKind.WATER)
    """Meters of these kinds are judged (besides every contract's boundary)."""
    confidence: float = Field(default=0.99, gt=0.5, lt=1)
    """One-sided level: a day above the baseline's upper prediction bound at this level is
    an excess (0.99: about one normal day in a hundred would be)."""
    sigmas: float = Field(default=5.0, gt=0)
    """Meters without a baseline: the excess must exceed this many robust standard
    deviations of the same kind of day ..."""
    ratio: float = Field(default=0.3, gt=0)
    """... and this share of the expected ..."""
    min_excess: float = Field(default=20.0, ge=0)
    """... and this much (kWh or m³ per day)."""


class BaseLoad(RuleSettings):
    """A meter's base load (its night-time use) stepping up: `[alarms.rules.base_load]`."""

    kinds: tuple[MeterKind, ...] = (MeterKind.ELECTRICITY,)
    """Meters of these kinds are judged."""
    ratio: float = Field(default=0.3, gt=0)
    """Last night's mean hourly use above the median night of `[alarms] reference_days` by
    this share ..."""
    sigmas: float = Field(default=5.0, gt=0)
    """... and by this many robust standard deviations of those nights ..."""
    min_step: float = Field(default=2.0, ge=0)
    """... and by at least this much (kWh per hour)."""


class NightWaterFlow(RuleSettings):
    """Water flowing all night (a leak): `[alarms.rules.night_water_flow]`."""

    severity: SeverityName = "critical"
    """The alarm's severity."""
    leak_m3_per_h: float = Field(default=0.3, gt=0)
    """Every hour of the night used at least this much more than the meter's usual quietest
    night hour (the median over `[alarms] reference_days`) ..."""
    min_hours: int = Field(default=3, ge=1, le=12)
    """... for at least this many night hours."""


class PlantNoDemand(RuleSettings):
    """Chillers or heat pumps running when nobody needs them (outside occupied hours, or on
    a day off): `[alarms.rules.plant_no_demand]`."""

    end_uses: tuple[EndUse, ...] = (EndUse.CHILLER, EndUse.HEATING)
    """Meters of these end uses are the plant."""
    running_kw: float = Field(default=20.0, gt=0)
    """A plant meter using this much per hour (kWh/h) is running."""
    min_hours: int = Field(default=2, ge=1, le=24)
    """Running this many consecutive hours without demand raises the alarm."""
    margin_h: int = Field(default=1, ge=0, le=6)
    """Hours before and after the occupied hours of a working day that still count as demand
    (pre-cooling, late meetings)."""


# -- capacity --------------------------------------------------------------------------------


class TransformerLoad(RuleSettings):
    """An incomer's load approaching its transformer's rating: `[alarms.rules.transformer_load]`."""

    rated_kva: dict[EntityId, float] = Field(default_factory=dict)
    """Rated kVA of the transformer behind each incomer meter, by meter id."""
    window_s: int = Field(default=900, ge=60, le=7200)
    """The load is the mean over this window (a 15-minute demand)."""
    warn_ratio: float = Field(default=0.95, gt=0, le=2)
    """Load over rated kVA at or above this is a warning ..."""
    critical_ratio: float = Field(default=1.0, gt=0, le=2)
    """... at or above this critical ..."""
    clear_ratio: float = Field(default=0.9, gt=0, le=2)
    """... and a raised alarm clears only below this (hysteresis)."""
    power_factor: float = Field(default=1.0, gt=0, le=1)
    """Assumed when a meter reports neither apparent power nor power factor (1: its kW, the
    least its kVA can be)."""

    @model_validator(mode="after")
    def _ordered(self) -> TransformerLoad:
        if not self.clear_ratio <= self.warn_ratio <= self.critical_ratio:
            raise FieldError("clear_ratio", "needs clear_ratio <= warn_ratio <= critical_ratio")
        for meter_id, kva in self.rated_kva.items():
            if kva <= 0:
                raise FieldError(f"rated_kva.{meter_id}", f"must be positive (got {kva})")
        return self


class MaxDemand(RuleSettings):
    """The month's maximum demand (需量, the highest 15-minute mean of the summed incomers)
    approaching the contracted value: `[alarms.rules.max_demand]`."""

    contracted_kw: float | None = Field(default=None, gt=0)
    """The contracted maximum demand, kW; absent: the rule does not run."""
    meters: tuple[EntityId, ...] = ()
    """The meters whose sum is the demand; empty: every incomer."""
    warn_ratio: float = Field(default=0.9, gt=0, le=2)
    """The month's maximum at or above this share of the contracted value is a warning ..."""
    critical_ratio: float = Field(default=1.0, gt=0, le=2)
    """... at or above it critical (the excess is billed)."""

    @model_validator(mode="after")
    def _ordered(self) -> MaxDemand:
        if self.warn_ratio > self.critical_ratio:
            raise FieldError("warn_ratio", "needs warn_ratio <= critical_ratio")
        return self


class AlarmRules(_Model):
    """The rules, each with its thresholds: `[alarms.rules]`."""

    meter_offline: MeterOffline = MeterOffline()
    """A meter stopped reporting."""
    counter_reset: CounterReset = CounterReset()
    """A counter went back (reset or roll-over)."""
    implausible_jump: ImplausibleJump = ImplausibleJump()
    """A counter jumped further than the meter can use."""
    dead_letters: DeadLetters = DeadLetters()
    """Dead letters rising."""
    spool_growing: SpoolGrowing = SpoolGrowing()
    """The spool growing."""
    store_degraded: StoreDegraded = StoreDegraded()
    """The store refusing writes."""
    part_restarting: PartRestarting = PartRestarting()
    """A supervised part restarting."""
    out_of_hours: OutOfHours = OutOfHours()
    """Use outside occupied hours above the expected."""
    daily_use: DailyUse = DailyUse()
    """A day's use above the baseline's prediction by more than its uncertainty."""
    base_load: BaseLoad = BaseLoad()
    """Base load stepping up."""
    night_water_flow: NightWaterFlow = NightWaterFlow()
    """Water flowing all night (a leak)."""
    plant_no_demand: PlantNoDemand = PlantNoDemand()
    """Thermal plant running with no demand."""
    transformer_load: TransformerLoad = TransformerLoad()
    """An incomer near its transformer's rating."""
    max_demand: MaxDemand = MaxDemand()
    """The month's maximum demand near the contracted value."""


class AlarmsConfig(_Model):
    """Alarms `epcmon run` raises, clears and keeps with their history: `[alarms]`."""

    enabled: bool = True
    """`epcmon run` evaluates the rules (the API and the page show stored alarms either way)."""
    every_s: int = Field(default=60, ge=1, le=3600)
    """How often the rules are evaluated (each evaluation reads only what arrived since the
    last one)."""
    file: str = ""
    """SQLite file of alarms and their history; empty: `alarms.sqlite3` beside the statements
    file (`storage.statements_file`)."""
    occupied_hours: Hours = (8, 18)
    """Local hours [start, end) a working day is occupied (working days and 调休 days come
    from the calendar; weekends and holidays are unoccupied all day)."""
    night_hours: Hours = (1, 5)
    """Local hours [start, end) that are the night (base load, leaks)."""
    reference_days: int = Field(default=28, ge=7, le=90)
    """Days of a meter's own history its expected use is learned from."""
    similar_weather_c: float = Field(default=3.0, ge=0, le=20)
    """A meter's daily use and base load are judged against the reference days whose mean
    outdoor temperature was within this many °C of the judged day's (the site's weather
    station; heating and cooling follow the weather). 0: against every reference day."""
    late_s: int = Field(default=900, ge=0, le=86_400)
    """Readings arriving up to this late (device timestamps, spool replays) are still seen."""
    rules: AlarmRules = AlarmRules()
    """The rules and their thresholds."""

    @model_validator(mode="after")
    def _hours(self) -> AlarmsConfig:
        for key in ("occupied_hours", "night_hours"):
            start, end = getattr(self, key)
            if not 0 <= start < end <= 24:
                raise FieldError(
                    key, f"expected [start, end) with 0 <= start < end <= 24 (got {[start, end]})"
                )
        return self


RULE_NAMES: tuple[str, ...] = tuple(AlarmRules.model_fields)
"""Every rule's name, in the order of `[alarms.rules]`."""


def check_alarm_references(cfg: SiteConfig, fail: Callable[[str, str, str], ConfigError]) -> None:
    """Rules name meters that exist and measure what the rule reads."""
    rules = cfg.alarms.rules
    for meter_id in rules.transformer_load.rated_kva:
        meter = cfg.meters_by_id.get(meter_id)
        entity = "[alarms.rules.transformer_load]"
        if meter is None:
            raise fail(entity, f"rated_kva.{meter_id}", f"no meter {meter_id!r}")
        if meter.kind is not MeterKind.ELECTRICITY:
            raise fail(
                entity, f"rated_kva.{meter_id}", f"meter {meter_id!r} is not an electricity meter"
            )
    for i, meter_id in enumerate(rules.max_demand.meters):
        meter = cfg.meters_by_id.get(meter_id)
        entity = "[alarms.rules.max_demand]"
        if meter is None:
            raise fail(entity, f"meters.{i}", f"no meter {meter_id!r}")
        if meter.kind is not MeterKind.ELECTRICITY:
            raise fail(entity, f"meters.{i}", f"meter {meter_id!r} is not an electricity meter")

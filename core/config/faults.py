"""The simulators' settings and the fault schema: `[simulation]`,
`[simulation.faults.<meter>]`, `[simulation.gateway_faults.<gateway>]` (the anomalies of
`[[simulation.anomalies]]` are in `core.config.anomalies`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config.anomalies import Anomaly
from core.config.base import EntityId, FieldError, _Model


class MeterFaults(_Model):
    """Faults of one simulated meter, none unless configured: `[simulation.faults.<meter id>]`."""

    offline: bool = False
    """No answer at all: Modbus requests time out, MQTT messages stop."""
    offline_from_ms: int | None = None
    """Start of the offline window, UTC epoch ms (absent: from the start)."""
    offline_until_ms: int | None = None
    """End of the offline window, UTC epoch ms (absent: for good)."""
    delay_s: float = Field(default=0.0, ge=0, le=60)
    """Every Modbus answer comes this many (wall-clock) seconds late: past the collector's
    timeout, a timeout."""
    busy_rate: float = Field(default=0.0, ge=0, le=1)
    """Probability that a Modbus request is answered with exception 6 (server device busy)."""
    gateway_no_response_rate: float = Field(default=0.0, ge=0, le=1)
    """Probability of exception 11 (gateway target device failed to respond)."""
    counter_reset_at_ms: int | None = None
    """At this instant (UTC epoch ms) the counters restart from zero: a replaced or reset meter."""
    rollover: bool = False
    """Integer counter registers wrap at 32 bits (unsigned at 2^32, signed at 2^31)."""
    rollover_at_ms: int | None = None
    """When they wrap (UTC epoch ms); absent: 60 s of simulated time after the start."""
    spike_rate: float = Field(default=0.0, ge=0, le=1)
    """Probability that a reading's instantaneous values come back multiplied by `spike_factor`."""
    spike_factor: float = Field(default=10.0, gt=0)
    """How big a spike is."""
    malformed_rate: float = Field(default=0.0, ge=0, le=1)
    """MQTT: probability that a message is malformed (truncated JSON, a text value, no timestamp)."""
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    """MQTT: probability that a message is published twice."""
    clock_skew_s: float = Field(default=0.0, ge=-86_400, le=86_400)
    """MQTT: the device clock's error; device timestamps are this many seconds ahead."""

    @model_validator(mode="after")
    def _rates_add_up(self) -> MeterFaults:
        if self.busy_rate + self.gateway_no_response_rate > 1:
            raise FieldError("busy_rate", "busy_rate + gateway_no_response_rate must not exceed 1")
        return self


GarbageKind = Literal[
    "any", "random", "length", "truncated", "oversized", "function", "transaction", "unit"
]


class GatewayFaults(_Model):
    """Faults of a simulated gateway, all units: `[simulation.gateway_faults.<gateway id>]`.

    They hit the gateway's connections rather than one meter; none unless configured."""

    drop_rate: float = Field(default=0.0, ge=0, le=1)
    """Probability that a request makes the gateway close the connection instead of answering
    (the request is lost; the client must reconnect)."""
    garbage_rate: float = Field(default=0.0, ge=0, le=1)
    """Probability that a request is answered with garbage instead of its answer (1: always);
    which kind, `garbage` says."""
    garbage: GarbageKind = "any"
    """The garbage: `random` bytes; a wrong byte count (`length`); a `truncated` frame (the
    MBAP header promises more than is sent); an `oversized` frame (a length beyond what
    Modbus allows); a wrong `function` code; a wrong `transaction` id; a wrong `unit` id;
    `any` of these, drawn per answer."""
    from_ms: int | None = None
    """The faults start at this instant (UTC epoch ms, simulated time); absent: from the start."""
    until_ms: int | None = None
    """They end at this instant (UTC epoch ms, simulated time); absent: for good."""

    @model_validator(mode="after")
    def _rates_add_up(self) -> GatewayFaults:
        if self.drop_rate + self.garbage_rate > 1:
            raise FieldError("drop_rate", "drop_rate + garbage_rate must not exceed 1")
        return self


class SimulationConfig(_Model):
    """The meter simulators: `[simulation]`."""

    seed: int = Field(default=0, ge=0)
    """Seed of the virtual site (weather, people, noise, faults): same seed, same numbers."""
    acceleration: float = Field(default=1.0, gt=0, le=1_000_000)
    """Simulated seconds per wall-clock second for `epcmon simulate serve` (3600: an hour a second)."""
    start: datetime | None = None
    """Simulated time an accelerated run starts from (with a UTC offset); absent: now."""
    epoch: date = date(2024, 1, 1)
    """Local date from which counters integrate the model (each shows its start value then);
    keep it before the first day you simulate."""
    faults: dict[EntityId, MeterFaults] = Field(default_factory=dict)
    """Faults by meter id; none unless listed."""
    gateway_faults: dict[EntityId, GatewayFaults] = Field(default_factory=dict)
    """Faults by gateway id (dropped connections, garbage answers); none unless listed."""
    anomalies: tuple[Anomaly, ...] = ()
    """Anomalies with their true start and end (a leak, a chiller left on, a base-load step,
    a demand peak, a silent meter, a counter reset, a jump), for measuring how well alarms
    catch them; none unless listed."""

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2025-07-01T08:00:00+08:00")
        return value

"""MQTT: the broker (`[mqtt]`), payload formats and a meter's MQTT source."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from core.config.base import FieldError, _Model
from core.config.places import SiteInfo
from core.config.topics import MqttRoute
from core.errors import ConfigError
from core.net import parse_mqtt_url
from core.quantities import QUANTITIES, Unit, conversion_factor


class MqttConfig(_Model):
    """The MQTT broker the collector subscribes to: `[mqtt]`."""

    url: str = ""
    """`mqtt://host:port`. Empty: `epcmon demo` starts an embedded broker."""
    client_id: str = ""
    """Stable client id for a persistent session. Empty: `epcmon-<site id>`."""
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    """MQTT keep-alive in seconds."""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT protocol version (the embedded demo broker speaks 3.1.1)."""
    session_expiry_s: int = Field(default=86_400, ge=0)
    """How long the broker keeps our session (and queues QoS 1 messages) while we are away."""
    username: str = ""
    """Broker user name; the password comes from the environment (EPCMON_MQTT_PASSWORD)."""
    shared_group: str = Field(default="", pattern=r"^[A-Za-z0-9_\-]*$")
    """Subscribe as `$share/<group>/...` so several collector processes split the messages."""
    buffer_messages: int = Field(default=10_000, ge=1, le=1_000_000)
    """Messages held in the collector between receipt and commit; when full, reading from
    the broker pauses (the broker keeps the rest in our persistent session)."""
    batch_linger_ms: int = Field(default=50, ge=0, le=5_000)
    """How long the collector waits for more messages after the first of a batch before it
    commits them in one store transaction: a lone message is stored and acknowledged
    within this (plus the write); under load a batch fills to `batch_max_messages` first.
    0: commit whatever has arrived at once (more, smaller transactions)."""
    batch_max_messages: int = Field(default=5_000, ge=1, le=1_000_000)
    """Most messages committed (and acknowledged) in one store transaction."""
    batch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1_024, le=1024 * 1024 * 1024)
    """Most payload bytes in one batch: a batch ends at whichever of this and
    `batch_max_messages` comes first (a batch always takes at least one message)."""
    routes: dict[str, MqttRoute] = Field(default_factory=dict)
    """Topic patterns that map many devices to meters: `[mqtt.routes.NAME]`."""
    max_payload_bytes: int = Field(default=65_536, ge=256, le=16 * 1024 * 1024)
    """Largest payload parsed; a longer one is a dead letter (meters send a few hundred bytes)."""
    max_depth: int = Field(default=16, ge=1, le=256)
    """Deepest nesting of JSON objects and arrays parsed (checked before parsing, without
    recursion); a deeper payload is a dead letter."""
    max_number_chars: int = Field(default=32, ge=8, le=400)
    """Longest number literal (sign, digits, point, exponent) parsed: a reading or a timestamp
    in nanoseconds needs at most ~20; longer is a dead letter, as are `NaN` and `Infinity`."""
    earliest_timestamp: date = date(2010, 1, 1)
    """Device timestamps before this date (local midnight) are refused: a clock that was never
    set reads 1970 or 2000. `[site] commissioned`, when later, is the floor instead."""
    max_future_skew_s: int = Field(default=600, ge=0, le=366 * 86_400)
    """How far a device timestamp may be ahead of our receive time; further is refused (raise
    it to collect from a simulator running faster than real time)."""
    dead_letter_file_bytes: int = Field(default=16 * 1024 * 1024, ge=4_096)
    """The dead-letter file is rotated when it would grow past this."""
    dead_letter_files: int = Field(default=4, ge=1, le=100)
    """Rotated dead-letter files kept besides the current one (the oldest is deleted): at most
    `(dead_letter_files + 1) * dead_letter_file_bytes` on disk."""
    discover: tuple[str, ...] = ()
    """Topic filters (MQTT wildcards `+` and `#` allowed) subscribed to besides the meters'
    own, so that devices nobody configured yet are listed with their last payload
    (`GET /api/v1/devices/unconfigured`, and the page), e.g. `["tele/+/SENSOR", "gw/#"]`.
    Their messages are dead-lettered (`unknown meter`) until a meter is configured. Devices on
    a route's pattern are listed without this. A message that also matches a meter's own
    topic arrives twice (once per matching subscription) and is stored once."""
    max_unconfigured_devices: int = Field(default=500, ge=10, le=100_000)
    """Unconfigured devices kept in the list (`data/devices.sqlite3`); beyond, the ones
    seen longest ago are dropped, so a flood of random topics cannot grow it."""

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if value:
            parse_mqtt_url(value)
        return value

    @field_validator("discover")
    @classmethod
    def _valid_filters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for topic_filter in value:
            check_topic_filter(topic_filter)
        return value

    @field_validator("earliest_timestamp")
    @classmethod
    def _after_the_epoch(cls, value: date) -> date:
        if value < date(1970, 1, 2):
            raise ValueError("must be after 1970-01-01 (epoch 0 is what an unset clock sends)")
        return value


def check_topic_filter(value: str) -> str:
    """`value` if it is a valid MQTT topic filter (MQTT 5 §4.7): `+` and `#` only as whole
    levels, `#` only last; not `$share/...` (use `shared_group`), not empty."""
    if not value or len(value) > 512 or "\x00" in value:
        raise ValueError(f"{value[:60]!r} is not a topic filter (empty, too long or a NUL)")
    if value.startswith("$share/"):
        raise ValueError(f"{value!r}: use [mqtt] shared_group for shared subscriptions")
    levels = value.split("/")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise ValueError(f"{value!r}: a wildcard must be a whole level, not {level!r}")
        if level == "#" and i != len(levels) - 1:
            raise ValueError(f"{value!r}: # must be the last level")
    return value


class PayloadField(_Model):
    """One value in a payload: an entry of `fields`."""

    pointer: str = Field(pattern=r"^(/[^/]*)+$")
    """RFC 6901 JSON pointer into the payload (into each record, with `records`), e.g.
    `/ENERGY/Power`."""
    quantity: str
    """The quantity it carries (see the quantity table)."""
    unit: Unit
    """The unit the device writes; converted to the quantity's canonical unit."""
    scale: float = 1.0
    """Multiplies the value as written, before the unit conversion: `0.01` for a device that
    writes hundredths of a kWh (`value * scale + offset`, like a Modbus register)."""
    offset: float = 0.0
    """Added after `scale`, in the unit as written: `-40` for a sensor that writes
    temperature + 40."""

    @field_validator("scale", "offset")
    @classmethod
    def _finite(cls, value: float, info: ValidationInfo) -> float:
        if not math.isfinite(value) or (info.field_name == "scale" and value == 0):
            raise ValueError("must be a finite number" + (", not 0" if value == 0 else ""))
        return value

    @model_validator(mode="after")
    def _quantity_and_unit_agree(self) -> PayloadField:
        if self.quantity not in QUANTITIES:
            raise FieldError("quantity", f"unknown quantity {self.quantity!r}")
        canonical = QUANTITIES[self.quantity].unit
        try:
            conversion_factor(self.unit, canonical)
        except ConfigError:
            raise FieldError(
                "unit",
                f"unit {self.unit.value!r} cannot express {self.quantity!r} "
                f"(canonical unit {canonical.value!r})",
            ) from None
        return self


EPOCH_FORMATS = ("epoch_s", "epoch_ms")
NAMED_TIME_FORMATS = (*EPOCH_FORMATS, "iso8601")
_SAMPLE_TIME = datetime(2026, 3, 17, 8, 9, 10)  # no field 1: a missing day or month shows
_LOCALE_DIRECTIVES = re.compile(r"%[cxX]")


def check_time_format(value: str) -> str:
    """`value` if it names a timestamp form we read: `epoch_s`, `epoch_ms`, `iso8601`, or a
    `strptime` format that gives at least the date (year, month, day)."""
    if value in NAMED_TIME_FORMATS:
        return value
    if "%" not in value:
        raise ValueError(
            f"{value!r}: must be epoch_s, epoch_ms, iso8601, or a strptime format such as "
            '"%Y/%m/%d %H:%M:%S"'
        )
    if _LOCALE_DIRECTIVES.search(value):
        raise ValueError(f"{value!r}: %c, %x and %X depend on the locale; spell the format out")
    try:
        written = _SAMPLE_TIME.strftime(value)
        read = datetime.strptime(written, value)
    except ValueError as exc:
        raise ValueError(f"{value!r}: {exc}") from None
    if read.date() != _SAMPLE_TIME.date():
        raise ValueError(f"{value!r}: must give the date (year, month and day), not only part")
    return value


class PayloadFormat(_Model):
    """How one family of devices writes its JSON: `[payload_formats.<name>]`."""

    records: str | None = Field(default=None, pattern=r"^(/[^/]*)*$")
    """JSON pointer to an array of records in the message, each read like a message of its
    own (its values, its timestamp, and the meter it names for a route whose template takes a
    value from the payload): a batch of readings, or a gateway's whole RS-485 bus. `""`: the
    message itself is the array. Absent: the message is one record."""
    timestamp: str = ""
    """JSON pointer of the device timestamp; empty: the time the message was received."""
    timestamp_scope: Literal["record", "message"] = "record"
    """With `records`: whether `timestamp` points into each record (each has its own time)
    or into the message (one time for every record)."""
    timestamp_format: str = "iso8601"
    """How the timestamp is written: `epoch_s`, `epoch_ms`, `iso8601`, or a `strptime`
    format such as `"%Y/%m/%d %H:%M:%S"` (read in `timestamp_timezone` unless it has `%z`)."""
    timestamp_timezone: str = "UTC"
    """Zone for timestamps written without an offset (many plugs write local time)."""
    numeric_strings: bool = False
    """Read numbers written as JSON strings (`"1234.56"`, as many IoT platforms send them),
    for values and epoch timestamps: the string must be a plain decimal number of at most
    `[mqtt] max_number_chars` characters (ASCII digits, an optional `-`, point and exponent;
    no spaces, no separators, no `NaN`); anything else is still refused."""
    fields: tuple[PayloadField, ...] = Field(min_length=1)
    """The values to take: `{ pointer, quantity, unit, scale, offset }`."""

    @field_validator("timestamp_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return SiteInfo._known_timezone(value)

    @field_validator("timestamp_format")
    @classmethod
    def _known_time_format(cls, value: str) -> str:
        return check_time_format(value)

    @model_validator(mode="after")
    def _scope_needs_records(self) -> PayloadFormat:
        if self.timestamp_scope == "message" and self.records is None:
            raise FieldError("timestamp_scope", '"message" needs `records` (an array of them)')
        return self


class MqttSource(_Model):
    """Where an MQTT meter publishes: `[meters.mqtt]`."""

    topic: str = Field(default="", max_length=512)
    """The concrete topic the meter publishes on (no wildcards); empty with `route`."""
    format: str = ""
    """Name of a payload format (with `topic`)."""
    route: str = ""
    """Name of an `[mqtt.routes.NAME]` whose pattern maps this meter's topic instead."""

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value or value.startswith("$"):
            raise ValueError(f"a meter's topic must be concrete, not {value!r}")
        return value

    @model_validator(mode="after")
    def _topic_or_route(self) -> MqttSource:
        if bool(self.topic) == bool(self.route):
            raise ValueError("give either topic (with format) or route")
        if self.topic and not self.format:
            raise FieldError("format", "a topic needs its payload format")
        if self.route and self.format:
            raise FieldError("format", "a routed meter takes its format from the route")
        return self

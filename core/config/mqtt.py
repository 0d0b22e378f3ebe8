"""MQTT: the broker (`[mqtt]`), payload formats and a meter's MQTT source."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

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

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if value:
            parse_mqtt_url(value)
        return value

    @field_validator("earliest_timestamp")
    @classmethod
    def _after_the_epoch(cls, value: date) -> date:
        if value < date(1970, 1, 2):
            raise ValueError("must be after 1970-01-01 (epoch 0 is what an unset clock sends)")
        return value


class PayloadField(_Model):
    """One value in a payload: an entry of `fields`."""

    pointer: str = Field(pattern=r"^(/[^/]*)+$")
    """RFC 6901 JSON pointer into the payload, e.g. `/ENERGY/Power`."""
    quantity: str
    """The quantity it carries (see the quantity table)."""
    unit: Unit
    """The unit the device writes; converted to the quantity's canonical unit."""

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


class PayloadFormat(_Model):
    """How one family of devices writes its JSON: `[payload_formats.<name>]`."""

    timestamp: str = ""
    """JSON pointer of the device timestamp; empty: the time the message was received."""
    timestamp_format: Literal["epoch_s", "epoch_ms", "iso8601"] = "iso8601"
    """How the timestamp is written."""
    timestamp_timezone: str = "UTC"
    """Zone for ISO timestamps written without an offset (many plugs write local time)."""
    fields: tuple[PayloadField, ...] = Field(min_length=1)
    """The values to take: `{ pointer, quantity, unit }`."""

    @field_validator("timestamp_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return SiteInfo._known_timezone(value)


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

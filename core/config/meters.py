"""Meters and the Modbus gateways they hang off."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config.base import EntityId, _Model
from core.config.mqtt import MqttSource
from core.config.places import EndUse, MeterKind
from core.quantities import QUANTITIES


class Gateway(_Model):
    """A Modbus TCP gateway (serial-to-Ethernet) and its meters: `[[gateways]]`."""

    id: EntityId
    """ASCII id."""
    host: str = Field(min_length=1)
    """Address of the gateway."""
    port: int = Field(default=502, ge=0, le=65535)
    """TCP port."""
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    """Per-request answer timeout."""
    busy_retries: int = Field(default=2, ge=0, le=10)
    """Retries after Modbus exception 6 (busy); no other error is retried within a cycle."""


class ModbusSource(_Model):
    """Where a Modbus meter answers: `[meters.modbus]`."""

    gateway: EntityId
    """The gateway it hangs off."""
    unit: int = Field(ge=1, le=247)
    """Modbus unit (slave) id on that gateway's bus."""
    profile: str = Field(min_length=1)
    """Register map, one of the shipped profiles."""
    ct_ratio: float = Field(default=1.0, gt=0)
    """Current-transformer ratio, for profiles whose registers hold secondary values."""
    pt_ratio: float = Field(default=1.0, gt=0)
    """Voltage-transformer ratio, likewise."""
    quantities: tuple[str, ...] = ()
    """Poll only these quantities of the profile (default: all of them)."""

    @field_validator("quantities")
    @classmethod
    def _known_quantities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [q for q in value if q not in QUANTITIES]
        if unknown:
            raise ValueError(f"unknown quantities {unknown}")
        return value


class Meter(_Model):
    """A meter: `[[meters]]`, with exactly one of `[meters.modbus]` or `[meters.mqtt]`."""

    id: EntityId
    """ASCII id (in URLs, topics and tags)."""
    name: str = ""
    """Display name."""
    kind: MeterKind
    """`electricity`, `water`, `gas`, `thermal` or `weather`."""
    building: EntityId
    """The building it belongs to."""
    tenant: EntityId | None = None
    """The tenant it meters, if it meters one."""
    parent: EntityId | None = None
    """The meter upstream of this one (a feeder's incomer)."""
    end_use: EndUse = EndUse.MIXED
    """What it measures (incomer, lighting, chiller, ...)."""
    poll_interval_s: int = Field(default=60, ge=1, le=86_400)
    """Modbus: poll period, aligned to the wall clock. MQTT: the expected reporting period."""
    modbus: ModbusSource | None = None
    """Modbus source."""
    mqtt: MqttSource | None = None
    """MQTT source."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Meter:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a meter needs exactly one source: [modbus] or [mqtt]")
        return self

    @property
    def protocol(self) -> Literal["modbus", "mqtt"]:
        return "modbus" if self.modbus is not None else "mqtt"

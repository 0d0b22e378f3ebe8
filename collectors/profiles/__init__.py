"""Meter profiles: register maps of real meters, kept as data files beside this module.

A profile names its datasheet or the open-source project it was taken from, and says when
that source stands alone (`provisional = true`). The collectors poll by it and the
simulators serve by it, so both sides read the same addresses.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from collectors.modbus.decode import (
    RegisterSpec,
    RegisterType,
    StringSpec,
    Transformer,
    WordOrder,
)
from core.config import MeterKind
from core.errors import ConfigError
from core.quantities import QUANTITIES, Unit, conversion_factor


class ProfileField(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    quantity: str
    address: int = Field(ge=0, le=0xFFFF)
    type: RegisterType
    unit: Unit
    order: WordOrder | None = None
    """Overrides the profile's word order for this field."""
    scale: float = 1.0
    offset: float = 0.0
    transformer: Transformer = Transformer.NONE
    static: bool = False
    """Configuration, not measurement (CT/PT ratios): read once per connection, not every poll."""

    @model_validator(mode="after")
    def _known_quantity(self) -> ProfileField:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}")
        conversion_factor(self.unit, QUANTITIES[self.quantity].unit)
        return self


class IdentificationField(BaseModel):
    """A string register block read once per connection (serial number, model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: int = Field(ge=0, le=0xFFFF)
    count: int = Field(ge=1, le=125)
    order: WordOrder | None = None


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    manufacturer: str
    model: str
    kind: MeterKind
    source: str = Field(min_length=1)
    provisional: bool = False
    notes: str = ""
    function: Literal["holding", "input"]
    """FC3 (holding registers) or FC4 (input registers)."""
    word_order: WordOrder = WordOrder.ABCD
    max_registers: int = Field(default=125, ge=1, le=125)
    """Most registers the device answers in one request."""
    gap_fill: int = Field(default=16, ge=0, le=124)
    """Most unused registers one read may span to merge two fields; 0 for devices that
    reject reads over undocumented addresses."""
    fields: tuple[ProfileField, ...] = Field(min_length=1)
    identification: tuple[IdentificationField, ...] = ()

    def spec(self, field: ProfileField) -> RegisterSpec:
        return RegisterSpec(
            address=field.address,
            type=field.type,
            order=field.order or self.word_order,
            scale=field.scale,
            offset=field.offset,
            transformer=field.transformer,
        )

    def string_spec(self, ident: IdentificationField) -> StringSpec:
        return StringSpec(ident.address, ident.count, ident.order or self.word_order)

    def field(self, quantity: str) -> ProfileField:
        for f in self.fields:
            if f.quantity == quantity:
                return f
        raise KeyError(quantity)

    @property
    def function_code(self) -> int:
        return 3 if self.function == "holding" else 4


def _load(name: str, text: str) -> Profile:
    where = f"collectors/profiles/{name}.toml"
    try:
        data = tomllib.loads(text)
        profile = Profile.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError, ConfigError) as exc:
        raise ConfigError(str(exc), file=where, entity=f"profile {name!r}") from None
    if profile.name != name:
        raise ConfigError("name differs from the file name", file=where, key="name")
    for f in profile.fields:
        profile.spec(f)  # raises on a field that overruns the address space
    return profile


@cache
def load_profiles() -> Mapping[str, Profile]:
    """Every profile shipped with epcmon, by name."""
    out: dict[str, Profile] = {}
    for entry in resources.files("collectors.profiles").iterdir():
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            out[name] = _load(name, entry.read_text(encoding="utf-8"))
    return out


def get_profile(name: str) -> Profile:
    try:
        return load_profiles()[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}") from None

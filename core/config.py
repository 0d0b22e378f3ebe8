"""The site configuration: one TOML file, validated once into frozen models.

Every default is declared once, beside its field. `load_site()` is the only way in: it
parses the file, validates it, checks the cross-references (meter -> gateway, tenant ->
building, ...) and raises one `ConfigError` naming the file, the entity and the key.
Nothing downstream ever sees a dict or a half-valid site.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Collection, Mapping
from datetime import date
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from core.calendar import DayType, WorkCalendar
from core.errors import ConfigError
from core.quantities import QUANTITIES, Unit, conversion_factor

EntityId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", strict=True)
]
"""Ids are ASCII, start alnum, at most 64 chars: they appear in URLs, topics and tags."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class MeterKind(StrEnum):
    ELECTRICITY = "electricity"
    WATER = "water"
    THERMAL = "thermal"
    WEATHER = "weather"


class EndUse(StrEnum):
    """What a meter measures, as the simulators and the savings core need to know."""

    INCOMER = "incomer"  # a transformer incomer: the sum of what it feeds, plus losses
    MIXED = "mixed"  # a department's or area's sub-meter: lighting + plugs + IT
    LIGHTING = "lighting"
    PLUG = "plug"
    IT = "it"
    LIFT = "lift"
    CHILLER = "chiller"
    CHW_PUMP = "chw_pump"
    CW_PUMP = "cw_pump"
    COOLING_TOWER = "cooling_tower"
    AHU = "ahu"
    HEATING = "heating"
    COOLING_DELIVERED = "cooling_delivered"  # a BTU meter on the chilled-water header
    COIL_ENERGY = "coil_energy"  # an energy valve on an AHU coil
    DOMESTIC_WATER = "domestic_water"
    MAKEUP_WATER = "makeup_water"  # cooling-tower make-up
    WATER_MAIN = "water_main"
    WEATHER = "weather"


class SiteInfo(_Model):
    id: EntityId
    name: str = Field(min_length=1)
    name_en: str = ""
    timezone: str = "Asia/Shanghai"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    climate: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DayOverride(_Model):
    date: date
    day_type: DayType
    note: str = ""


class CalendarConfig(_Model):
    overrides: tuple[DayOverride, ...] = ()


class StorageConfig(_Model):
    backend: Literal["duckdb"] = "duckdb"
    path: str = "data/epcmon.duckdb"
    """DuckDB file, relative to the working directory. One process owns it."""


class MqttConfig(_Model):
    url: str = ""
    """`mqtt://host:port`. Empty: `epcmon demo` starts an embedded broker."""
    client_id: str = ""
    """Stable client id for a persistent session. Empty: `epcmon-<site id>`."""
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class ApiConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_points: int = Field(default=50_000, ge=100)
    """Most points one series response may carry."""


class Building(_Model):
    id: EntityId
    name: str = Field(min_length=1)
    name_en: str = ""
    floor_area_m2: float = Field(gt=0)
    floors: int = Field(default=1, ge=1)


class Tenant(_Model):
    id: EntityId
    name: str = Field(min_length=1)
    name_en: str = ""
    building: EntityId
    floor_area_m2: float = Field(gt=0)
    staff: int = Field(default=0, ge=0)
    kind: Literal["department", "common"] = "department"


class Gateway(_Model):
    id: EntityId
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=0, le=65535)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    busy_retries: int = Field(default=2, ge=0, le=10)
    """Retries after Modbus exception 6 (busy); no other error is retried within a cycle."""


class PayloadField(_Model):
    pointer: str = Field(pattern=r"^(/[^/]*)+$")
    """RFC 6901 JSON pointer into the payload, e.g. `/ENERGY/Power`."""
    quantity: str
    unit: Unit

    @model_validator(mode="after")
    def _quantity_and_unit_agree(self) -> PayloadField:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}")
        canonical = QUANTITIES[self.quantity].unit
        try:
            conversion_factor(self.unit, canonical)
        except ConfigError:
            raise ValueError(
                f"unit {self.unit.value!r} cannot express {self.quantity!r} "
                f"(canonical unit {canonical.value!r})"
            ) from None
        return self


class PayloadFormat(_Model):
    """How one family of devices writes its JSON."""

    timestamp: str = ""
    """JSON pointer of the device timestamp; empty: the time the message was received."""
    timestamp_format: Literal["epoch_s", "epoch_ms", "iso8601"] = "iso8601"
    timestamp_timezone: str = "UTC"
    """Zone for timestamps written without an offset (many plugs write local time)."""
    fields: tuple[PayloadField, ...] = Field(min_length=1)

    @field_validator("timestamp_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return SiteInfo._known_timezone(value)


class ModbusSource(_Model):
    gateway: EntityId
    unit: int = Field(ge=1, le=247)
    profile: str = Field(min_length=1)
    ct_ratio: float = Field(default=1.0, gt=0)
    pt_ratio: float = Field(default=1.0, gt=0)


class MqttSource(_Model):
    topic: str = Field(min_length=1, max_length=512)
    format: str = Field(min_length=1)

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value or value.startswith("$"):
            raise ValueError(f"a meter's topic must be concrete, not {value!r}")
        return value


class Meter(_Model):
    id: EntityId
    name: str = ""
    kind: MeterKind
    building: EntityId
    tenant: EntityId | None = None
    parent: EntityId | None = None
    """The meter upstream of this one (a feeder's incomer)."""
    end_use: EndUse = EndUse.MIXED
    poll_interval_s: int = Field(default=60, ge=1, le=86_400)
    modbus: ModbusSource | None = None
    mqtt: MqttSource | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Meter:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a meter needs exactly one source: [modbus] or [mqtt]")
        return self

    @property
    def protocol(self) -> Literal["modbus", "mqtt"]:
        return "modbus" if self.modbus is not None else "mqtt"


class Measure(_Model):
    id: EntityId
    description: str = ""
    end_use: EndUse
    reduction: float = Field(gt=0, lt=1)
    """Fraction of the end use's energy the measure removes (LED lighting: 0.40)."""


class Contract(_Model):
    id: EntityId
    name: str = Field(min_length=1)
    vendor: str = Field(min_length=1)
    meters: tuple[EntityId, ...] = Field(min_length=1)
    baseline_start: date
    baseline_end: date
    reporting_start: date
    reporting_end: date | None = None
    measures: tuple[Measure, ...] = ()

    @model_validator(mode="after")
    def _periods_in_order(self) -> Contract:
        if self.baseline_end <= self.baseline_start:
            raise ValueError("baseline_end must come after baseline_start")
        if self.reporting_start < self.baseline_end:
            raise ValueError("reporting_start must not come before baseline_end")
        if self.reporting_end is not None and self.reporting_end <= self.reporting_start:
            raise ValueError("reporting_end must come after reporting_start")
        return self


class SiteConfig(_Model):
    site: SiteInfo
    calendar: CalendarConfig = CalendarConfig()
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    api: ApiConfig = ApiConfig()
    buildings: tuple[Building, ...] = Field(min_length=1)
    tenants: tuple[Tenant, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    payload_formats: dict[str, PayloadFormat] = Field(default_factory=dict)
    meters: tuple[Meter, ...] = ()
    contracts: tuple[Contract, ...] = ()

    _source: str = PrivateAttr(default="")

    @property
    def source(self) -> str:
        """The file this came from, for messages."""
        return self._source

    @cached_property
    def meters_by_id(self) -> Mapping[str, Meter]:
        return {m.id: m for m in self.meters}

    @cached_property
    def gateways_by_id(self) -> Mapping[str, Gateway]:
        return {g.id: g for g in self.gateways}

    @cached_property
    def work_calendar(self) -> WorkCalendar:
        return WorkCalendar({o.date: o.day_type for o in self.calendar.overrides})

    def meter(self, meter_id: str) -> Meter:
        from core.errors import NotFound

        try:
            return self.meters_by_id[meter_id]
        except KeyError:
            raise NotFound(f"no meter {meter_id!r}") from None


# --------------------------------------------------------------------------- loading

_SINGULAR = {
    "buildings": "building",
    "tenants": "tenant",
    "gateways": "gateway",
    "meters": "meter",
    "contracts": "contract",
    "payload_formats": "payload_format",
}


def _entity_and_key(raw: Mapping[str, Any], loc: tuple[int | str, ...]) -> tuple[str, str]:
    """('meters', 3, 'modbus', 'unit') -> ("meter 'E-12'", 'modbus.unit')."""
    if not loc:
        return "", ""
    section = str(loc[0])
    if section in _SINGULAR and len(loc) >= 2:
        label = _SINGULAR[section]
        ident: object = loc[1]
        if isinstance(loc[1], int):
            items = raw.get(section)
            if isinstance(items, list) and loc[1] < len(items) and isinstance(items[loc[1]], dict):
                ident = items[loc[1]].get("id", f"#{loc[1] + 1}")
            else:
                ident = f"#{loc[1] + 1}"
        key = ".".join(str(p) for p in loc[2:]) or "(entry)"
        return f"{label} {ident!r}", key
    return f"[{section}]", ".".join(str(p) for p in loc[1:]) or "(section)"


def _from_validation_error(path: str, raw: Mapping[str, Any], err: ValidationError) -> ConfigError:
    problems = []
    for e in err.errors(include_url=False):
        entity, key = _entity_and_key(raw, tuple(e["loc"]))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif "input" in e and not isinstance(e["input"], dict | list):
            msg = f"{msg} (got {e['input']!r})"
        problems.append((entity, key, msg))
    entity, key, msg = problems[0]
    more = "".join(f"\n  also: {e}: {k}: {m}" for e, k, m in problems[1:])
    return ConfigError(msg + more, file=path, entity=entity, key=key)


def _check_references(cfg: SiteConfig, path: str, known_profiles: Collection[str] | None) -> None:
    def fail(entity: str, key: str, msg: str) -> ConfigError:
        return ConfigError(msg, file=path, entity=entity, key=key)

    for section, items in (
        ("building", cfg.buildings),
        ("tenant", cfg.tenants),
        ("gateway", cfg.gateways),
        ("meter", cfg.meters),
        ("contract", cfg.contracts),
    ):
        for ident, count in Counter(i.id for i in items).items():
            if count > 1:
                raise fail(f"{section} {ident!r}", "id", f"duplicate id ({count} entries)")

    buildings = {b.id for b in cfg.buildings}
    tenants = {t.id: t for t in cfg.tenants}
    for t in cfg.tenants:
        if t.building not in buildings:
            raise fail(f"tenant {t.id!r}", "building", f"no building {t.building!r}")
    topics: dict[str, str] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for m in cfg.meters:
        entity = f"meter {m.id!r}"
        if m.building not in buildings:
            raise fail(entity, "building", f"no building {m.building!r}")
        if m.tenant is not None and m.tenant not in tenants:
            raise fail(entity, "tenant", f"no tenant {m.tenant!r}")
        if m.parent is not None and (m.parent not in cfg.meters_by_id or m.parent == m.id):
            raise fail(entity, "parent", f"no other meter {m.parent!r}")
        if m.modbus is not None:
            if m.modbus.gateway not in cfg.gateways_by_id:
                raise fail(entity, "modbus.gateway", f"no gateway {m.modbus.gateway!r}")
            if known_profiles is not None and m.modbus.profile not in known_profiles:
                raise fail(
                    entity,
                    "modbus.profile",
                    f"unknown profile {m.modbus.profile!r} (known: {', '.join(sorted(known_profiles))})",
                )
            slot = (m.modbus.gateway, m.modbus.unit)
            if slot in endpoints:
                raise fail(
                    entity,
                    "modbus.unit",
                    f"unit {m.modbus.unit} on {m.modbus.gateway!r} is "
                    f"already meter {endpoints[slot]!r}",
                )
            endpoints[slot] = m.id
        if m.mqtt is not None:
            if m.mqtt.format not in cfg.payload_formats:
                raise fail(entity, "mqtt.format", f"no payload format {m.mqtt.format!r}")
            if m.mqtt.topic in topics:
                raise fail(
                    entity, "mqtt.topic", f"topic already used by meter {topics[m.mqtt.topic]!r}"
                )
            topics[m.mqtt.topic] = m.id
    for c in cfg.contracts:
        for i, meter_id in enumerate(c.meters):
            if meter_id not in cfg.meters_by_id:
                raise fail(f"contract {c.id!r}", f"meters.{i}", f"no meter {meter_id!r}")
    # a cycle in parent links would make hierarchy queries loop
    for m in cfg.meters:
        seen = {m.id}
        cur = m.parent
        while cur is not None:
            if cur in seen:
                raise fail(f"meter {m.id!r}", "parent", "parent links form a cycle")
            seen.add(cur)
            cur = cfg.meters_by_id[cur].parent


_TOP_LEVEL_ARRAYS = re.compile(r"^(buildings|tenants|gateways|meters|contracts)$")


def parse_site(
    data: Mapping[str, Any],
    *,
    source: str = "<memory>",
    known_profiles: Collection[str] | None = None,
) -> SiteConfig:
    """Validate an already-parsed TOML document."""
    for key, value in data.items():
        if _TOP_LEVEL_ARRAYS.match(key) and not isinstance(value, list):
            raise ConfigError(
                f"must be an array of tables ([[{key}]]), not {type(value).__name__}",
                file=source,
                entity=f"[{key}]",
                key=key,
            )
    try:
        cfg = SiteConfig.model_validate(data)
    except ValidationError as err:
        raise _from_validation_error(source, data, err) from None
    _check_references(cfg, source, known_profiles)
    cfg._source = source
    return cfg


def load_site(path: str | Path, *, known_profiles: Collection[str] | None = None) -> SiteConfig:
    """Read, validate and cross-check a site file. Raises `ConfigError`, never half-loads."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=str(p)) from None
    return parse_site(data, source=str(p), known_profiles=known_profiles)

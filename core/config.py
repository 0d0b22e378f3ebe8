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
from datetime import date, datetime
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
    model_config = ConfigDict(
        frozen=True, extra="forbid", str_strip_whitespace=True, use_attribute_docstrings=True
    )


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
    """The site itself: `[site]`."""

    id: EntityId
    """Short ASCII id; tags every stored point."""
    name: str = Field(min_length=1)
    """Display name (Chinese first)."""
    name_en: str = ""
    """English display name."""
    timezone: str = "Asia/Shanghai"
    """IANA time zone: day and month buckets, office hours and the calendar follow it."""
    latitude: float = Field(ge=-90, le=90)
    """Degrees north."""
    longitude: float = Field(ge=-180, le=180)
    """Degrees east."""
    climate: str = ""
    """Free text, e.g. the GB 50176 climate zone."""

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
    """One date whose day type the site decides: `[[calendar.overrides]]`."""

    date: date
    """The local date."""
    day_type: DayType
    """`workday`, `weekend`, `holiday` or `makeup_workday`."""
    note: str = ""
    """Why (kept for the auditor)."""


class CalendarConfig(_Model):
    """The workday calendar: `[calendar]`."""

    overrides: tuple[DayOverride, ...] = ()
    """Dates that differ from the national calendar (closures, years not yet published)."""


class StorageConfig(_Model):
    """The time-series store: `[storage]`."""

    backend: Literal["duckdb"] = "duckdb"
    """Embedded DuckDB (one process owns the file)."""
    path: str = "data/epcmon.duckdb"
    """DuckDB file, relative to the working directory."""


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


class ApiConfig(_Model):
    """The HTTP API: `[api]`."""

    host: str = "127.0.0.1"
    """Listen address: loopback unless you mean otherwise."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Listen port (0: any free port)."""
    max_points: int = Field(default=50_000, ge=100)
    """Most points one series response may carry; more is a 400 that says how to ask."""


class Building(_Model):
    """A building of the site: `[[buildings]]`."""

    id: EntityId
    """ASCII id."""
    name: str = Field(min_length=1)
    """Display name."""
    name_en: str = ""
    """English display name."""
    floor_area_m2: float = Field(gt=0)
    """Gross floor area, m²: the denominator of energy intensity."""
    floors: int = Field(default=1, ge=1)
    """Storeys above ground."""


class Tenant(_Model):
    """A department (or a common area) occupying part of a building: `[[tenants]]`."""

    id: EntityId
    """ASCII id."""
    name: str = Field(min_length=1)
    """Display name."""
    name_en: str = ""
    """English display name."""
    building: EntityId
    """The building it occupies."""
    floor_area_m2: float = Field(gt=0)
    """Floor area it occupies, m² (cost allocation, simulated loads)."""
    staff: int = Field(default=0, ge=0)
    """Head count."""
    kind: Literal["department", "common"] = "department"
    """`department`, or `common` for lobbies, canteens, server rooms."""


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


class MqttSource(_Model):
    """Where an MQTT meter publishes: `[meters.mqtt]`."""

    topic: str = Field(min_length=1, max_length=512)
    """The concrete topic the meter publishes on (no wildcards)."""
    format: str = Field(min_length=1)
    """Name of a payload format."""

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value or value.startswith("$"):
            raise ValueError(f"a meter's topic must be concrete, not {value!r}")
        return value


class Meter(_Model):
    """A meter: `[[meters]]`, with exactly one of `[meters.modbus]` or `[meters.mqtt]`."""

    id: EntityId
    """ASCII id (in URLs, topics and tags)."""
    name: str = ""
    """Display name."""
    kind: MeterKind
    """`electricity`, `water`, `thermal` or `weather`."""
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


class Measure(_Model):
    """An energy-conservation measure of a contract: `[[contracts.measures]]`."""

    id: EntityId
    """ASCII id."""
    description: str = ""
    """What was done."""
    end_use: EndUse
    """The end use it acts on."""
    reduction: float = Field(gt=0, lt=1)
    """Fraction of the end use's energy the measure removes (LED lighting: 0.40)."""


class Contract(_Model):
    """An energy-performance contract (合同能源管理): `[[contracts]]`."""

    id: EntityId
    """ASCII id."""
    name: str = Field(min_length=1)
    """Contract title."""
    vendor: str = Field(min_length=1)
    """The energy-service company."""
    meters: tuple[EntityId, ...] = Field(min_length=1)
    """The measurement boundary: the meters whose sum the savings are computed on."""
    baseline_start: date
    """First day of the baseline period."""
    baseline_end: date
    """Day after the baseline period."""
    reporting_start: date
    """First day of the reporting period (the retrofit is in place)."""
    reporting_end: date | None = None
    """Day after the reporting period; open-ended if absent."""
    measures: tuple[Measure, ...] = ()
    """The measures installed."""

    @model_validator(mode="after")
    def _periods_in_order(self) -> Contract:
        if self.baseline_end <= self.baseline_start:
            raise ValueError("baseline_end must come after baseline_start")
        if self.reporting_start < self.baseline_end:
            raise ValueError("reporting_start must not come before baseline_end")
        if self.reporting_end is not None and self.reporting_end <= self.reporting_start:
            raise ValueError("reporting_end must come after reporting_start")
        return self


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
            raise ValueError("busy_rate + gateway_no_response_rate must not exceed 1")
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

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2025-07-01T08:00:00+08:00")
        return value


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
    simulation: SimulationConfig = SimulationConfig()

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
    for meter_id in cfg.simulation.faults:
        if meter_id not in cfg.meters_by_id:
            raise fail("[simulation]", f"faults.{meter_id}", f"no meter {meter_id!r}")
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

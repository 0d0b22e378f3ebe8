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


SECRET_ENV = ("EPCMON_INFLUX_TOKEN", "EPCMON_INFLUX_PASSWORD")
"""The environment variables that carry the store's secrets; no secret is read from a file."""


class InfluxConfig(_Model):
    """InfluxDB, for `backend = "influx"`: `[storage.influx]`; secrets only from the environment.

    The token (2.x, 3.x) is `EPCMON_INFLUX_TOKEN`, the password (1.x) `EPCMON_INFLUX_PASSWORD`;
    a `token` or `password` key in the file is refused.
    """

    # A secret put in the file by mistake must not be echoed by a validation error.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(default="http://127.0.0.1:8086", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """Base URL of the server, `http(s)://host:port` (a path prefix is allowed)."""
    mode: Literal["v1", "v2", "v3"] = "v2"
    """`v1`: InfluxDB 1.x (`/write` with database and retention policy, user and password).
    `v2`: InfluxDB ≥ 1.8 and 2.x (`/api/v2/write` through influxdb-client, token; reads through
    the v1 compatibility API, which needs a DBRP mapping of `database`). `v3`: InfluxDB 3.x
    (`/api/v2/write`, bearer token for reads)."""
    database: str = "epcmon"
    """Database for writes in `v1` mode and for InfluxQL reads in every mode (2.x: the
    database name DBRP-mapped to the bucket; 3.x: the database)."""
    retention_policy: str = ""
    """Retention policy (`v1` writes and all reads); empty: the database's default."""
    org: str = ""
    """Organisation for `v2` writes (ignored by 3.x)."""
    bucket: str = ""
    """Bucket for `v2`/`v3` writes; empty: `database`, or `database/retention_policy`."""
    username: str = ""
    """User for `v1` mode (empty: no authentication); the password is `EPCMON_INFLUX_PASSWORD`."""
    precision: Literal["ms", "s"] = "ms"
    """Timestamp precision written. `s` refuses readings that are not on a whole second."""
    gzip: bool = False
    """Compress write bodies (worth it over a slow link, costs CPU on both ends)."""
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Timeout of one HTTP request."""
    retries: int = Field(default=3, ge=0, le=20)
    """Retries of a write after a connection error or HTTP ≥ 429, with exponential backoff;
    after the last one the batch goes to the spool."""
    retry_backoff_s: float = Field(default=0.5, ge=0, le=60)
    """First backoff; doubled each retry (a server's `Retry-After` is honoured up to 60 s)."""
    batch_lines: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most lines per write request; larger batches are split."""
    tz_clause: bool = True
    """The server supports InfluxQL `tz()` (1.4+, 2.x, 3.x). `false`: day buckets are
    computed from fixed offsets, one query per span of constant UTC offset."""

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_files(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in ("token", "password"):
                if key in data:
                    raise ValueError(
                        f"`{key}` does not belong in the site file: set "
                        f"EPCMON_INFLUX_{key.upper()} in the environment"
                    )
        return data


INFLUX_ENV_PREFIX = "EPCMON_INFLUX_"
"""`EPCMON_INFLUX_<KEY>` (e.g. `EPCMON_INFLUX_URL`) overrides `[storage.influx]` `<key>`."""


def influx_from_environment(influx: InfluxConfig, environ: Mapping[str, str]) -> InfluxConfig:
    """`influx` with every `EPCMON_INFLUX_<KEY>` of `environ` applied, validated; a bad
    value is a `ConfigError` naming the variable."""
    overrides = {
        name: environ[INFLUX_ENV_PREFIX + name.upper()]
        for name in InfluxConfig.model_fields
        if INFLUX_ENV_PREFIX + name.upper() in environ
    }
    if not overrides:
        return influx
    try:
        return InfluxConfig.model_validate({**influx.model_dump(), **overrides})
    except ValidationError as err:
        error = err.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        raise ConfigError(
            error["msg"],
            file="environment",
            entity=INFLUX_ENV_PREFIX + name.upper(),
            key=f"storage.influx.{name}",
        ) from None


class SpoolConfig(_Model):
    """The durable spool for writes the store cannot take now: `[storage.spool]`."""

    path: str = "data/spool.sqlite3"
    """SQLite file of spooled batches, relative to the working directory."""
    max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    """Bound of the spool's payload in bytes; reaching it raises `SpoolFull`, never drops."""
    replay_interval_s: float = Field(default=5.0, ge=0, le=3600)
    """While batches are spooled, how often a write first tries the store again."""


class StorageConfig(_Model):
    """The time-series store: `[storage]`."""

    backend: Literal["duckdb", "influx"] = "duckdb"
    """`duckdb`: embedded DuckDB (one process owns the file). `influx`: an InfluxDB server
    (`[storage.influx]`), writes spooled while it cannot be reached (`[storage.spool]`)."""
    path: str = "data/epcmon.duckdb"
    """DuckDB file, relative to the working directory."""
    influx: InfluxConfig = InfluxConfig()
    """The InfluxDB server, for `backend = "influx"`."""
    spool: SpoolConfig = SpoolConfig()
    """The spool in front of InfluxDB."""
    statements_path: str = ""
    """SQLite file of fitted baselines and monthly statements; empty: beside the store file
    (`<path>.statements.sqlite`)."""

    @property
    def statements_file(self) -> str:
        return self.statements_path or f"{self.path}.statements.sqlite"


_ROUTE_VAR = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class MqttRoute(_Model):
    """Devices whose topic names the meter: `[mqtt.routes.NAME]`.

    `pattern = "tele/{device}/SENSOR"` with `meter = "PLUG-{device}"` maps the topic
    `tele/c1/SENSOR` to meter `PLUG-c1`. A variable stands for one whole topic level.
    """

    pattern: str = Field(min_length=1, max_length=512)
    """Topic with `{name}` variables, each a whole level; no MQTT wildcards."""
    meter: str = Field(min_length=1)
    """Meter id template over the pattern's variables."""
    format: str = Field(min_length=1)
    """Name of the payload format these devices write."""

    @model_validator(mode="after")
    def _variables_agree(self) -> MqttRoute:
        if "+" in self.pattern or "#" in self.pattern or self.pattern.startswith("$"):
            raise ValueError("pattern: use {name} variables, not MQTT wildcards")
        levels = self.pattern.split("/")
        names = []
        for level in levels:
            found = _ROUTE_VAR.findall(level)
            if found and not _ROUTE_VAR.fullmatch(level):
                raise ValueError(f"pattern: a variable must be a whole topic level, not {level!r}")
            names += found
        if not names or len(set(names)) != len(names):
            raise ValueError("pattern: needs distinct {name} variables")
        used = set(_ROUTE_VAR.findall(self.meter))
        if used != set(names):
            # every variable in the id keeps the mapping invertible: a meter knows its topic
            raise ValueError(
                f"meter: template must use exactly the variables of the pattern {sorted(names)}"
            )
        return self

    def match(self, topic: str) -> str | None:
        """The meter id for `topic`, or None when it does not match."""
        pattern_levels = self.pattern.split("/")
        topic_levels = topic.split("/")
        if len(pattern_levels) != len(topic_levels):
            return None
        values: dict[str, str] = {}
        for p, t in zip(pattern_levels, topic_levels, strict=True):
            if m := _ROUTE_VAR.fullmatch(p):
                if not t:
                    return None
                values[m.group(1)] = t
            elif p != t:
                return None
        return _ROUTE_VAR.sub(lambda m: values[m.group(1)], self.meter)

    def topic_for(self, meter_id: str) -> str | None:
        """The topic a routed meter publishes on (inverse of `match`)."""
        regex = "".join(
            f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part)
            for i, part in enumerate(_ROUTE_VAR.split(self.meter))
        )
        m = re.fullmatch(regex, meter_id)
        if m is None:
            return None
        return _ROUTE_VAR.sub(lambda v: m.group(v.group(1)), self.pattern)

    @property
    def subscription(self) -> str:
        return _ROUTE_VAR.sub("+", self.pattern)


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


class ApiConfig(_Model):
    """The HTTP API: `[api]`."""

    host: str = "127.0.0.1"
    """Listen address: loopback unless you mean otherwise."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Listen port (0: any free port)."""
    max_points: int = Field(default=50_000, ge=100)
    """Most points one series response may carry; more is a 400 that says how to ask."""
    max_range_days: int = Field(default=3_660, ge=1)
    """Longest time range one request may ask for."""
    keys_path: str = "data/api-keys.sqlite3"
    """SQLite file of API keys (stored hashed), managed with `epcmon keys`."""
    rate_limit_per_s: float = Field(default=50.0, gt=0)
    """Requests per second one key may make, sustained."""
    rate_burst: int = Field(default=200, ge=1)
    """Requests one key may make at once before the rate limit applies."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; none by default (CORS closed)."""


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
    quantities: tuple[str, ...] = ()
    """Poll only these quantities of the profile (default: all of them)."""

    @field_validator("quantities")
    @classmethod
    def _known_quantities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [q for q in value if q not in QUANTITIES]
        if unknown:
            raise ValueError(f"unknown quantities {unknown}")
        return value


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
            raise ValueError("a topic needs its payload format")
        if self.route and self.format:
            raise ValueError("a routed meter takes its format from the route")
        return self


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


TouPeriodName = Literal["sharp", "peak", "flat", "valley"]


class TouWindow(_Model):
    """Local hours of one time-of-use period: an entry of `windows`."""

    period: TouPeriodName
    """`sharp` (尖峰), `peak` (高峰), `flat` (平段) or `valley` (低谷)."""
    start: int = Field(ge=0, le=23)
    """First local hour of the window (0-23)."""
    end: int = Field(ge=1, le=24)
    """Hour the window ends (exclusive, 1-24)."""

    @model_validator(mode="after")
    def _ordered(self) -> TouWindow:
        if self.end <= self.start:
            raise ValueError(f"window {self.start}-{self.end}: end must come after start")
        return self


class TariffSeason(_Model):
    """Time-of-use periods and prices for some months: `[[contracts.tariff.seasons]]`."""

    name: str = Field(min_length=1)
    """E.g. `summer` (the months with a sharp peak)."""
    months: tuple[int, ...] = Field(min_length=1)
    """Calendar months (1-12) the season covers."""
    windows: tuple[TouWindow, ...] = ()
    """Hours of the non-flat periods; every hour not in a window is `flat`."""
    prices: dict[TouPeriodName, float] = Field(min_length=1)
    """Energy price by period, CNY/kWh (must include `flat` and every windowed period)."""

    @model_validator(mode="after")
    def _consistent(self) -> TariffSeason:
        if any(not 1 <= m <= 12 for m in self.months):
            raise ValueError(f"months {list(self.months)}: expected 1-12")
        hours: dict[int, str] = {}
        for w in self.windows:
            for h in range(w.start, w.end):
                if h in hours:
                    raise ValueError(f"hour {h} is both {hours[h]} and {w.period}")
                hours[h] = w.period
        needed = {w.period for w in self.windows} | ({"flat"} if len(hours) < 24 else set())
        missing = sorted(needed - set(self.prices))
        if missing:
            raise ValueError(f"no price for period(s) {', '.join(missing)}")
        if any(price < 0 for price in self.prices.values()):
            raise ValueError("prices must not be negative")
        return self

    def period_of_hour(self) -> tuple[str, ...]:
        """The period of each local hour 0-23."""
        out = ["flat"] * 24
        for w in self.windows:
            out[w.start : w.end] = [w.period] * (w.end - w.start)
        return tuple(out)


class Tariff(_Model):
    """What energy and water cost: `[contracts.tariff]`."""

    kind: Literal["flat", "tou"] = "flat"
    """`flat`: one price; `tou`: time-of-use periods by season."""
    flat_price_cny_per_kwh: float = Field(default=0.0, ge=0)
    """The price of a `flat` tariff, CNY/kWh."""
    seasons: tuple[TariffSeason, ...] = ()
    """`tou`: seasons covering each month exactly once."""
    water_price_cny_per_m3: float = Field(default=0.0, ge=0)
    """Water and sewage price, CNY/m³ (for a water boundary)."""

    @model_validator(mode="after")
    def _complete(self) -> Tariff:
        if self.kind == "flat" and self.seasons:
            raise ValueError("a flat tariff has no seasons (set kind = 'tou')")
        if self.kind == "tou":
            covered = [m for season in self.seasons for m in season.months]
            if sorted(covered) != list(range(1, 13)):
                raise ValueError(
                    f"the seasons must cover months 1-12 exactly once, they cover {sorted(covered)}"
                )
        return self

    def price_table(self) -> tuple[tuple[float, ...], ...]:
        """CNY/kWh for each (month 1-12, local hour 0-23), as rows month-1."""
        if self.kind == "flat":
            return tuple((self.flat_price_cny_per_kwh,) * 24 for _ in range(12))
        rows: list[tuple[float, ...]] = [()] * 12
        for season in self.seasons:
            row = tuple(season.prices[p] for p in season.period_of_hour())  # type: ignore[index]
            for m in season.months:
                rows[m - 1] = row
        return tuple(rows)

    def period_table(self) -> tuple[tuple[str, ...], ...]:
        """The period name of each (month, hour); `flat` throughout for a flat tariff."""
        if self.kind == "flat":
            return tuple(("flat",) * 24 for _ in range(12))
        rows: list[tuple[str, ...]] = [()] * 12
        for season in self.seasons:
            for m in season.months:
                rows[m - 1] = season.period_of_hour()
        return tuple(rows)


class Guarantee(_Model):
    """Guaranteed savings (节能量保证): `[contracts.guarantee]`."""

    kwh_per_year: float = Field(gt=0)
    """Avoided electricity the vendor guarantees per contract year, kWh."""
    shortfall_price_cny_per_kwh: float = Field(default=0.0, ge=0)
    """What the vendor pays per kWh short at the year's end; 0: the year's average tariff."""


class NonRoutineAdjustment(_Model):
    """A dated, documented change to the baseline: `[[contracts.adjustments]]`."""

    id: EntityId
    """ASCII id."""
    utility: Literal["electricity", "water"] = "electricity"
    """Which boundary it adjusts."""
    start: date
    """First local day it applies."""
    end: date | None = None
    """Day after the last it applies; open-ended if absent."""
    amount_per_day: float | None = None
    """kWh (or m³) added to the baseline per applicable day; negative removes."""
    fraction: float | None = Field(default=None, gt=-1, lt=10)
    """Instead: a fraction of the baseline added (0.03 = +3 %)."""
    day_types: tuple[DayType, ...] = ()
    """Only on these day types (empty: every day)."""
    description: str = Field(min_length=1)
    """What changed, e.g. a department moving in."""
    document: str = Field(min_length=1)
    """The document that records it (letter, approval number), for the auditor."""

    @model_validator(mode="after")
    def _one_amount(self) -> NonRoutineAdjustment:
        if (self.amount_per_day is None) == (self.fraction is None):
            raise ValueError("give exactly one of amount_per_day or fraction")
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must come after start")
        return self


class BaselineSettings(_Model):
    """How the contract's baseline is modelled: `[contracts.baseline]`."""

    model: Literal["daily", "hourly"] = "daily"
    """`daily`: change-point models by day type; `hourly`: time-of-week-and-temperature."""
    day_types: Literal["calendar", "weekday", "none"] = "calendar"
    """`calendar`: workdays, weekends, statutory holidays and make-up workdays; `weekday`:
    Monday-Friday against the weekend only (as the open-source anchors); `none`."""
    cap_n_eff: bool = True
    """Cap the autocorrelation-corrected n' at n (conservative when residuals alternate)."""
    max_gap_minutes: int = Field(default=65, ge=1)
    """Counter samples further apart are a gap: buckets interpolated across it are marked."""


class StatementSettings(_Model):
    """Monthly statements: `[contracts.statements]`."""

    settle_days: int = Field(default=3, ge=0, le=28)
    """Days after a month ends before its statement is computed (late data settles)."""
    normalised: bool = False
    """Also report normalised savings over a typical year (needs a year of reporting data)."""


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
    weather_station: EntityId | None = None
    """The weather meter whose outdoor temperature drives the baseline; absent: the site's
    only weather meter."""
    water_meters: tuple[EntityId, ...] = ()
    """A water boundary (m³), modelled and priced like the electricity one; optional."""
    baseline: BaselineSettings = BaselineSettings()
    """How the baseline is modelled."""
    tariff: Tariff | None = None
    """Prices that turn avoided kWh and m³ into CNY; absent: statements carry no money."""
    vendor_share: float = Field(default=1.0, ge=0, le=1)
    """Shared savings: the vendor's share of the cost savings (0.7 = 70 %)."""
    guarantee: Guarantee | None = None
    """Guaranteed savings, if the contract has them."""
    grid_emission_factor_t_per_mwh: float = Field(default=0.5703, ge=0)
    """tCO2 per MWh avoided (China's 2022 national grid average, MEE: 0.5703)."""
    adjustments: tuple[NonRoutineAdjustment, ...] = ()
    """Non-routine adjustments to the baseline, dated and documented."""
    statements: StatementSettings = StatementSettings()
    """Monthly statement settings."""

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
    # A validation error must not print the document, which may hold a misplaced secret.
    model_config = ConfigDict(hide_input_in_errors=True)

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

    def topic_of(self, meter: Meter) -> str:
        """The topic an MQTT meter publishes on (its own, or the one its route implies)."""
        if meter.mqtt is None:
            raise ValueError(f"meter {meter.id} is not an MQTT meter")
        if meter.mqtt.topic:
            return meter.mqtt.topic
        topic = self.mqtt.routes[meter.mqtt.route].topic_for(meter.id)
        assert topic is not None  # checked when the site was loaded
        return topic

    def format_of(self, meter: Meter) -> PayloadFormat:
        if meter.mqtt is None:
            raise ValueError(f"meter {meter.id} is not an MQTT meter")
        name = meter.mqtt.format or self.mqtt.routes[meter.mqtt.route].format
        return self.payload_formats[name]

    def contract(self, contract_id: str) -> Contract:
        from core.errors import NotFound

        for c in self.contracts:
            if c.id == contract_id:
                return c
        known = ", ".join(c.id for c in self.contracts) or "none"
        raise NotFound(f"no contract {contract_id!r} (known: {known})")

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
        if m.mqtt is not None and m.mqtt.route:
            route = cfg.mqtt.routes.get(m.mqtt.route)
            if route is None:
                raise fail(entity, "mqtt.route", f"no route {m.mqtt.route!r} in [mqtt.routes]")
            if route.topic_for(m.id) is None:
                raise fail(
                    entity,
                    "mqtt.route",
                    f"id does not fit the route's meter template {route.meter!r}",
                )
        if m.mqtt is not None and m.mqtt.topic:
            if m.mqtt.format not in cfg.payload_formats:
                raise fail(entity, "mqtt.format", f"no payload format {m.mqtt.format!r}")
            if m.mqtt.topic in topics:
                raise fail(
                    entity, "mqtt.topic", f"topic already used by meter {topics[m.mqtt.topic]!r}"
                )
            topics[m.mqtt.topic] = m.id
    for name, route in cfg.mqtt.routes.items():
        if route.format not in cfg.payload_formats:
            raise fail(f"[mqtt] route {name!r}", "format", f"no payload format {route.format!r}")
    weather = [m.id for m in cfg.meters if m.kind is MeterKind.WEATHER]
    for c in cfg.contracts:
        entity = f"contract {c.id!r}"
        for i, meter_id in enumerate(c.meters):
            if meter_id not in cfg.meters_by_id:
                raise fail(entity, f"meters.{i}", f"no meter {meter_id!r}")
            if cfg.meters_by_id[meter_id].kind is not MeterKind.ELECTRICITY:
                raise fail(entity, f"meters.{i}", f"meter {meter_id!r} is not an electricity meter")
        for i, meter_id in enumerate(c.water_meters):
            if meter_id not in cfg.meters_by_id:
                raise fail(entity, f"water_meters.{i}", f"no meter {meter_id!r}")
            if cfg.meters_by_id[meter_id].kind is not MeterKind.WATER:
                raise fail(entity, f"water_meters.{i}", f"meter {meter_id!r} is not a water meter")
        if c.weather_station is not None:
            if c.weather_station not in weather:
                raise fail(entity, "weather_station", f"no weather meter {c.weather_station!r}")
        elif len(weather) != 1:
            raise fail(
                entity,
                "weather_station",
                f"the site has {len(weather)} weather meters: name the one to use",
            )
        for i, adj in enumerate(c.adjustments):
            if adj.utility == "water" and not c.water_meters:
                raise fail(entity, f"adjustments.{i}.utility", "the contract has no water boundary")
        if (
            c.tariff is not None
            and c.tariff.kind == "flat"
            and c.tariff.flat_price_cny_per_kwh == 0
        ):
            raise fail(entity, "tariff.flat_price_cny_per_kwh", "a flat tariff needs a price")
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


def with_environment(site: SiteConfig, environ: Mapping[str, str]) -> SiteConfig:
    """`site` with the settings the environment overrides (`EPCMON_INFLUX_<KEY>`)."""
    influx = influx_from_environment(site.storage.influx, environ)
    if influx is site.storage.influx:
        return site
    updated = site.model_copy(
        update={"storage": site.storage.model_copy(update={"influx": influx})}
    )
    updated._source = site.source
    return updated


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


def contract_weather_station(site: SiteConfig, contract: Contract) -> str:
    """The weather meter a contract's baseline uses (validated at load)."""
    if contract.weather_station is not None:
        return contract.weather_station
    return next(m.id for m in site.meters if m.kind is MeterKind.WEATHER)

"""The whole site file: `SiteConfig`, and the HTTP API's settings."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from pydantic import ConfigDict, Field, PrivateAttr

from core.calendar import WorkCalendar
from core.config.alarms import AlarmsConfig
from core.config.base import _Model
from core.config.billing import BillingConfig
from core.config.contracts import Contract
from core.config.faults import SimulationConfig
from core.config.intensity import IntensityConfig
from core.config.meters import Gateway, Meter
from core.config.mqtt import MqttConfig, PayloadFormat
from core.config.notify import NotifyConfig
from core.config.places import Building, CalendarConfig, MeterKind, SiteInfo, Tenant
from core.config.reports import ReportsConfig
from core.config.storage import StorageConfig


class ApiConfig(_Model):
    """The HTTP API: `[api]`."""

    host: str = "127.0.0.1"
    """Listen address: loopback unless you mean otherwise."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Listen port (0: any free port)."""
    reuse_port: bool = False
    """Bind the port with `SO_REUSEPORT` (Linux), so several `epcmon run --role web` processes
    listen on one address and the kernel spreads the connections over them; every process
    on the port must set it (and run as the same user)."""
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
    public_url: str = Field(default="", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$")
    """The address people open the page at (behind a proxy, e.g. `https://epc.example.gov.cn`);
    alarm messages link to it. Empty: messages carry no link."""
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    """Where a collector-only process (`epcmon collect`, `epcmon run --role collector`) serves
    `/metrics`, on `host`, with the API's keys (a viewer key as bearer token): shard i of n
    listens on `metrics_port + i - 1`; 0: any free port. Processes serving the API serve
    `/metrics` there."""
    worker_metrics_port: int = Field(default=9107, ge=0, le=65535)
    """Where the worker process (`epcmon run --role worker`: the scheduled jobs without the
    API) serves `/metrics`, on `host`, with the API's keys; 0: any free port."""


class ScheduleConfig(_Model):
    """What `epcmon run` does by itself on a timer: `[schedule]`."""

    recompute_every_s: int = Field(default=3600, ge=60, le=86_400)
    """How often the service brings every contract up to date: fits a missing baseline, writes
    the statements of months that closed (and new versions when late data changed them), and
    refreshes the running month's provisional figures. It also runs once at start."""


class SiteConfig(_Model):
    # A validation error must not print the document, which may hold a misplaced secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    site: SiteInfo
    calendar: CalendarConfig = CalendarConfig()
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    api: ApiConfig = ApiConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    buildings: tuple[Building, ...] = Field(min_length=1)
    tenants: tuple[Tenant, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    payload_formats: dict[str, PayloadFormat] = Field(default_factory=dict)
    meters: tuple[Meter, ...] = ()
    contracts: tuple[Contract, ...] = ()
    billing: BillingConfig = BillingConfig()
    intensity: IntensityConfig = IntensityConfig()
    reports: ReportsConfig = ReportsConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    simulation: SimulationConfig = SimulationConfig()
    notify: NotifyConfig = NotifyConfig()

    _source: str = PrivateAttr(default="")
    _store_scope: str = PrivateAttr(default="")

    @property
    def source(self) -> str:
        """The file this came from, for messages."""
        return self._source

    @property
    def store_scope(self) -> str:
        """In a portfolio: the site id its meters are stored under in the shared store
        (`<site>/<meter>`); empty for a site on its own."""
        return self._store_scope

    @cached_property
    def meters_by_id(self) -> Mapping[str, Meter]:
        return {m.id: m for m in self.meters}

    @cached_property
    def gateways_by_id(self) -> Mapping[str, Gateway]:
        return {g.id: g for g in self.gateways}

    @cached_property
    def work_calendar(self) -> WorkCalendar:
        c = self.calendar
        return WorkCalendar(
            {o.date: o.day_type for o in c.overrides},
            source=c.source,
            country=c.country,
            subdivision=c.subdivision,
        )

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


def contract_weather_station(site: SiteConfig, contract: Contract) -> str:
    """The weather meter a contract's baseline uses (validated at load)."""
    if contract.weather_station is not None:
        return contract.weather_station
    return next(m.id for m in site.meters if m.kind is MeterKind.WEATHER)

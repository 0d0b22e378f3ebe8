"""Cross-references the models cannot check alone: meter -> gateway, tenant -> building, ..."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from core.calendar import CHINA_TIMEZONES
from core.config.alarms import check_alarm_references
from core.config.anomalies import check_anomaly_references
from core.config.billing import check_billing_references
from core.config.places import MeterKind
from core.config.site import SiteConfig
from core.errors import ConfigError


def check_references(cfg: SiteConfig, path: str, known_profiles: Collection[str] | None) -> None:
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

    if cfg.calendar.source == "china" and cfg.site.timezone not in CHINA_TIMEZONES:
        raise fail(
            "[calendar]",
            "source",
            f"the site's time zone {cfg.site.timezone!r} is outside mainland China, and the "
            "calendar source is 'china' (the default): say which holidays apply, "
            "source = 'holidays' with country = '..', or source = 'none'",
        )
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
        for utility in c.utility_names()[1:]:
            terms = c.terms(utility)
            for i, meter_id in enumerate(terms.meters):
                key = f"utilities.{utility}.meters.{i}"
                if meter_id not in cfg.meters_by_id:
                    raise fail(entity, key, f"no meter {meter_id!r}")
                kind = cfg.meters_by_id[meter_id].kind
                if kind is not terms.meter_kind:
                    raise fail(
                        entity, key, f"meter {meter_id!r} is a {kind} meter, not a {utility} meter"
                    )
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
            if adj.utility not in c.utility_names():
                raise fail(
                    entity,
                    f"adjustments.{i}.utility",
                    f"the contract has no {adj.utility} boundary",
                )
        if (
            c.tariff is not None
            and c.tariff.kind == "flat"
            and c.tariff.flat_price_cny_per_kwh == 0
        ):
            raise fail(entity, "tariff.flat_price_cny_per_kwh", "a flat tariff needs a price")
    check_billing_references(cfg, fail)
    check_alarm_references(cfg, fail)
    for meter_id in cfg.simulation.faults:
        if meter_id not in cfg.meters_by_id:
            raise fail("[simulation]", f"faults.{meter_id}", f"no meter {meter_id!r}")
    for gateway_id in cfg.simulation.gateway_faults:
        if gateway_id not in cfg.gateways_by_id:
            raise fail("[simulation]", f"gateway_faults.{gateway_id}", f"no gateway {gateway_id!r}")
    check_anomaly_references(cfg, fail)
    # a cycle in parent links would make hierarchy queries loop
    for m in cfg.meters:
        seen = {m.id}
        cur = m.parent
        while cur is not None:
            if cur in seen:
                raise fail(f"meter {m.id!r}", "parent", "parent links form a cycle")
            seen.add(cur)
            cur = cfg.meters_by_id[cur].parent

"""The reference site file: it loads, and it describes the site the design promises.

These are the facts the simulators, the dashboards and the M&V tests rely on: 57 departments
each behind exactly one sub-meter that rolls up to a transformer incomer, a contract whose
boundary is the incomers, every meter profile and both payload shapes in use, and gateways
only ever on loopback (on site, their LAN addresses live outside the repository).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

import pytest

from core.config import EndUse, Meter, MeterKind, SiteConfig, load_site

SITE_FILE = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"

KNOWN_PROFILES = frozenset(
    {
        "eastron-sdm630",
        "chint-dtsu666",
        "acrel-adw300",
        "acrel-dtsd1352",
        "xintai-water",
        "tuf2000m",
        "belimo-energy-valve",
    }
)


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(SITE_FILE, known_profiles=KNOWN_PROFILES)


def _root(site: SiteConfig, meter: Meter) -> Meter:
    """The top of a meter's parent chain (the loader has already ruled out cycles)."""
    while meter.parent is not None:
        meter = site.meter(meter.parent)
    return meter


def test_identity(site: SiteConfig) -> None:
    assert site.site.id == "luan-admin-center"
    assert site.site.timezone == "Asia/Shanghai"
    assert len(site.buildings) == 4
    assert 90_000 <= sum(b.floor_area_m2 for b in site.buildings) <= 100_000


def test_57_departments(site: SiteConfig) -> None:
    departments = [t for t in site.tenants if t.kind == "department"]
    assert len(departments) == 57
    assert len({t.name for t in departments}) == 57


def test_every_department_has_one_sub_meter_under_an_incomer(site: SiteConfig) -> None:
    buildings = {t.id: t.building for t in site.tenants}
    for tenant in (t for t in site.tenants if t.kind == "department"):
        sub_meters = [
            m
            for m in site.meters
            if m.tenant == tenant.id
            and m.kind is MeterKind.ELECTRICITY
            and m.end_use is EndUse.MIXED
        ]
        assert len(sub_meters) == 1, tenant.id
        (sub,) = sub_meters
        assert sub.building == buildings[tenant.id], tenant.id
        assert sub.parent is not None, tenant.id
        assert _root(site, sub).end_use is EndUse.INCOMER, tenant.id


def test_every_building_has_a_water_meter(site: SiteConfig) -> None:
    with_water = {m.building for m in site.meters if m.kind is MeterKind.WATER}
    assert with_water == {b.id for b in site.buildings}


def test_exactly_one_weather_meter(site: SiteConfig) -> None:
    weather = [m for m in site.meters if m.kind is MeterKind.WEATHER]
    assert len(weather) == 1
    assert weather[0].end_use is EndUse.WEATHER


def test_contract_boundary_is_the_incomers(site: SiteConfig) -> None:
    incomers = {m.id for m in site.meters if m.end_use is EndUse.INCOMER}
    for contract in site.contracts:
        assert contract.meters
        assert all(site.meter(m).end_use is EndUse.INCOMER for m in contract.meters)
        # whole-site boundary (IPMVP Option C): every incomer, once
        assert sorted(contract.meters) == sorted(incomers)


def test_gateways_only_on_loopback(site: SiteConfig) -> None:
    for gw in site.gateways:
        assert gw.host == "127.0.0.1", gw.id
        assert ipaddress.ip_address(gw.host).is_loopback, gw.id
    ports = [gw.port for gw in site.gateways]
    assert len(set(ports)) == len(ports)


def test_modbus_endpoints_and_topics_unique(site: SiteConfig) -> None:
    slots = Counter((m.modbus.gateway, m.modbus.unit) for m in site.meters if m.modbus)
    assert max(slots.values()) == 1
    topics = Counter(m.mqtt.topic for m in site.meters if m.mqtt)
    assert max(topics.values()) == 1
    per_gateway = Counter(gateway for gateway, _ in slots)
    assert max(per_gateway.values()) <= 40


def test_every_profile_is_used(site: SiteConfig) -> None:
    used = {m.modbus.profile for m in site.meters if m.modbus}
    assert used == KNOWN_PROFILES


def test_flat_and_nested_payloads_are_used(site: SiteConfig) -> None:
    used_formats = {m.mqtt.format for m in site.meters if m.mqtt}
    depths = {
        name: max(f.pointer.count("/") for f in site.payload_formats[name].fields)
        for name in used_formats
    }
    assert 1 in depths.values(), depths  # flat: {"temp_c": ...}
    assert any(d >= 2 for d in depths.values()), depths  # nested: {"ENERGY": {"Power": ...}}


def test_department_floor_area_fits_the_buildings(site: SiteConfig) -> None:
    departments = [t for t in site.tenants if t.kind == "department"]
    assert sum(t.floor_area_m2 for t in departments) < sum(b.floor_area_m2 for b in site.buildings)
    for building in site.buildings:
        tenants_here = sum(t.floor_area_m2 for t in site.tenants if t.building == building.id)
        assert tenants_here < building.floor_area_m2, building.id

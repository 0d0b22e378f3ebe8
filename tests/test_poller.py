"""The Modbus poller against simulated gateways on loopback (pymodbus servers)."""

from __future__ import annotations

import logging
import time

import pytest

from collectors.availability import Availability
from collectors.modbus.poller import GatewayPoller
from collectors.profiles import get_profile, load_profiles
from core.config import parse_site
from core.quantities import QUANTITIES
from core.readings import ReadingBatch
from simulators.modbus_server import SimulatedGateway, SimulatedUnit

PT, CT = 10.0, 40.0


def plausible_values(profile_name: str) -> dict[str, float]:
    """A value inside each quantity's range, distinct per quantity, in canonical units."""
    out = {}
    for i, field in enumerate(get_profile(profile_name).fields):
        spec = QUANTITIES[field.quantity]
        if field.quantity in ("ct_ratio", "pt_ratio"):
            out[field.quantity] = CT if field.quantity == "ct_ratio" else PT
        elif field.quantity.startswith("power_factor") or field.quantity == "valve_position":
            out[field.quantity] = 0.9 - i * 0.001
        elif spec.unit.value == "Hz":
            out[field.quantity] = 50.01
        elif spec.unit.value == "degC":
            out[field.quantity] = 7.0 + i
        elif spec.unit.value == "MPa":
            out[field.quantity] = 0.32
        else:
            out[field.quantity] = 100.0 + 7 * i
    return out


def site_for(units: dict[int, str], port: int, timeout: float = 0.5):
    return parse_site(
        {
            "site": {"id": "t", "name": "T", "latitude": 31, "longitude": 116},
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
            "gateways": [{"id": "gw", "host": "127.0.0.1", "port": port, "timeout_s": timeout}],
            "meters": [
                {
                    "id": f"M{unit}",
                    "kind": get_profile(name).kind.value,
                    "building": "b",
                    "modbus": {
                        "gateway": "gw",
                        "unit": unit,
                        "profile": name,
                        **({"pt_ratio": PT, "ct_ratio": CT} if name == "acrel-dtsd1352" else {}),
                    },
                }
                for unit, name in units.items()
            ],
        },
        known_profiles=set(load_profiles()),
    )


async def _poll(units: dict[int, str], served: dict[int, str] | None = None, cycles: int = 1):
    served = served or units
    values = {unit: plausible_values(name) for unit, name in served.items()}
    gateway = SimulatedGateway(
        [
            SimulatedUnit(
                u,
                get_profile(n),
                lambda _now, u=u: values[u],
                PT if n == "acrel-dtsd1352" else 1.0,
                CT if n == "acrel-dtsd1352" else 1.0,
            )
            for u, n in served.items()
        ],
        clock=lambda: int(time.time() * 1000),
    )
    port = await gateway.start()
    site = site_for(units, port)
    batches: list[ReadingBatch] = []

    async def sink(batch: ReadingBatch) -> None:
        batches.append(batch)

    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), sink, availability)
    try:
        for _ in range(cycles):
            await poller.poll_cycle()
    finally:
        poller.client.close()
        await gateway.stop()
    return values, batches, availability


@pytest.mark.parametrize("profile_name", sorted(load_profiles()))
async def test_every_profile_decodes_to_the_simulators_values(profile_name):
    values, batches, availability = await _poll({7: profile_name})
    got = {r.quantity: r.value for r in ReadingBatch.concat(batches)}
    assert set(got) == set(values[7])
    for quantity, value in values[7].items():
        # integer registers round to their step (e.g. 0.01 kWh x PT x CT)
        step = 0.01 * PT * CT if profile_name == "acrel-dtsd1352" else 0.01
        assert got[quantity] == pytest.approx(value, rel=1e-5, abs=step), quantity
    assert availability.snapshot()["M7"].up


async def test_configuration_registers_are_read_once_per_connection():
    _values, batches, availability = await _poll({3: "chint-dtsu666"}, cycles=3)
    per_cycle = [{r.quantity for r in b} for b in batches]
    assert "ct_ratio" in per_cycle[0]
    assert all("ct_ratio" not in q for q in per_cycle[1:])
    assert all("power" in q for q in per_cycle)
    assert availability.counters["modbus_requests"] == 2 + 1 + 2 + 2  # cycle 1: 2 + ratios


async def test_illegal_address_names_the_meter_and_the_address(caplog):
    # unit 5 is configured as an Acrel ADW300 but is really a CHINT DTSU666: nothing of the
    # ADW300 map exists there; the unit beside it keeps being polled
    with caplog.at_level(logging.ERROR, logger="epcmon.modbus"):
        _values, batches, _ = await _poll(
            {5: "acrel-adw300", 6: "xintai-water"},
            served={5: "chint-dtsu666", 6: "xintai-water"},
            cycles=2,
        )
    errors = [r.getMessage() for r in caplog.records]
    assert any(
        "meter 'M5': modbus.profile: the device rejects voltage_l1 at address 20" in e
        for e in errors
    )
    assert (
        len([e for e in errors if "energy_export at address 64" in e]) == 1
    )  # logged once, then dropped
    assert all({r.meter_id for r in b} == {"M6"} for b in batches)
    assert len(batches) == 2


async def test_a_silent_unit_is_skipped_and_probed_less_often():
    # unit 9 is configured but not served: the gateway answers for it with an exception
    # (pymodbus: exception 11, no response from the target), so it goes down and backs off
    _values, batches, availability = await _poll(
        {8: "xintai-water", 9: "xintai-water"}, served={8: "xintai-water"}, cycles=6
    )
    state = availability.snapshot()
    assert state["M8"].up
    assert not state["M9"].up
    assert all({r.meter_id for r in b} == {"M8"} for b in batches)
    # 6 cycles: unit 9 is asked in cycles 1, 2, 4 (skipping 0, then 1, then 3 cycles)
    assert availability.counters["modbus_errors"] == 3

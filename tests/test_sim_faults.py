"""Faults appear when configured, and only then: Modbus exceptions 6 and 11, silence,
late answers, counter resets and roll-overs, spikes; gateways that drop connections or answer
garbage; malformed, duplicated and clock-skewed MQTT messages; the same in a generated history."""

from __future__ import annotations

import json
import queue
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pyModbusTCP.client import ModbusClient

from collectors.mqtt.payload import parse_payload
from core.config import GatewayFaults, MeterFaults, parse_site
from core.errors import ConfigError, PayloadError
from simulators.faults import GARBAGE_KINDS, FaultPlan, garble
from simulators.history import generate_history
from simulators.mqtt_publisher import MqttMeterPublisher
from tests.conftest import Broker
from tests.sim_helpers import model, site
from tests.sim_servers import SUMMER_MORNING_MS, Served, serving

MINUTE_MS = 60_000


def client(served: Served, meter_id: str, timeout: float = 5.0) -> ModbusClient:
    port, unit = served.endpoint(meter_id)
    return ModbusClient(host="127.0.0.1", port=port, unit_id=unit, timeout=timeout, auto_open=True)


def u32(regs: list[int]) -> int:
    value: int = struct.unpack(">I", struct.pack(">HH", *regs))[0]
    return value


def i32(regs: list[int]) -> int:
    value: int = struct.unpack(">i", struct.pack(">HH", *regs))[0]
    return value


# ------------------------------------------------------------------ Modbus


def test_nothing_is_injected_unless_configured():
    with serving(["E-D01", "E-TR1", "W-MAIN"]) as served:
        for meter, address, count in (
            ("E-D01", 0x2000, 0x32),
            ("E-TR1", 0x61, 3),
            ("W-MAIN", 1, 6),
        ):
            c = client(served, meter)
            try:
                for _ in range(40):
                    assert c.read_holding_registers(address, count) is not None, (
                        c.last_except_as_txt
                    )
                    served.clock.advance(MINUTE_MS)
            finally:
                c.close()
        for gateway in served.gateways.values():
            assert gateway.injected == {}
            assert gateway.faults.empty


def test_busy_and_gateway_no_response_hit_only_their_meter():
    plan = FaultPlan(
        {"E-D01": MeterFaults(busy_rate=1.0), "E-D55": MeterFaults(gateway_no_response_rate=1.0)}
    )
    with serving(["E-D01", "E-D55", "E-D54"], faults=plan) as served:
        for meter, code in (("E-D01", 6), ("E-D55", 11)):
            c = client(served, meter)
            try:
                assert c.read_holding_registers(0x2000, 2) is None
                assert c.last_except == code, meter
            finally:
                c.close()
        c = client(served, "E-D54")
        try:
            assert c.read_holding_registers(0x2000, 2) is not None
        finally:
            c.close()
        assert served.gateway_of("E-D01").injected == {"busy": 1, "gateway_no_response": 1}


def _outcomes(plan: FaultPlan, n: int) -> list[int]:
    with serving(["E-D01"], faults=plan) as served:
        c = client(served, "E-D01")
        try:
            out = []
            for _ in range(n):
                ok = c.read_holding_registers(0x2006, 2) is not None
                out.append(0 if ok else c.last_except)
            return out
        finally:
            c.close()


def test_exception_rates_are_seeded_and_reproducible():
    faults = MeterFaults(busy_rate=0.2, gateway_no_response_rate=0.1)
    first = _outcomes(FaultPlan({"E-D01": faults}, seed=7), 150)
    again = _outcomes(FaultPlan({"E-D01": faults}, seed=7), 150)
    other = _outcomes(FaultPlan({"E-D01": faults}, seed=8), 150)
    assert first == again
    assert first != other
    assert 0.1 < first.count(6) / 150 < 0.3
    assert 0.03 < first.count(11) / 150 < 0.2
    assert set(first) == {0, 6, 11}


def test_an_offline_meter_does_not_answer_until_it_comes_back():
    back_ms = SUMMER_MORNING_MS + 30 * MINUTE_MS
    plan = FaultPlan({"E-D01": MeterFaults(offline=True, offline_until_ms=back_ms)})
    with serving(["E-D01", "E-D55"], faults=plan) as served:
        silent = client(served, "E-D01", timeout=0.3)
        neighbour = client(served, "E-D55")
        try:
            assert silent.read_holding_registers(0x2006, 2) is None
            assert "timeout" in silent.last_error_as_txt
            assert neighbour.read_holding_registers(0x2006, 2) is not None  # same gateway
            served.clock.advance(31 * MINUTE_MS)
            assert silent.read_holding_registers(0x2006, 2) is not None
        finally:
            silent.close()
            neighbour.close()


def test_a_late_answer_is_never_taken_for_the_next_one():
    """A unit answering after the client's timeout: its late answer carries its own
    transaction id, so the client drops it instead of taking it for the next request's."""
    plan = FaultPlan({"E-D01": MeterFaults(delay_s=0.6)})
    with serving(["E-D01", "E-D55"], faults=plan) as served:
        port, unit = served.endpoint("E-D01")
        _, other = served.endpoint("E-D55")

        async def scenario() -> tuple[str, list[int]]:
            c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.3, retries=0)
            await c.connect()
            try:
                with pytest.raises(ModbusIOException):
                    await c.read_holding_registers(0x2006, count=2, device_id=unit)
                try:  # a second slow request: the first's answer arrives while it waits
                    rr = await c.read_holding_registers(0x2000, count=6, device_id=unit)
                    second = f"answered {len(rr.registers)} registers"
                except ModbusIOException:
                    second = "timed out"
                fast = await c.read_holding_registers(0x2006, count=2, device_id=other)
                return second, list(fast.registers)
            finally:
                c.close()

        second, fast = served.run(scenario())
        assert second == "timed out"
        expected = served.sim.values("E-D55")["voltage_l1"] / 0.1
        assert struct.unpack(">f", struct.pack(">HH", *fast))[0] == pytest.approx(
            expected, rel=1e-6
        )


def test_counters_reset_to_zero():
    at = SUMMER_MORNING_MS + 5 * MINUTE_MS
    with serving(
        ["E-TR1"], faults=FaultPlan({"E-TR1": MeterFaults(counter_reset_at_ms=at)})
    ) as served:
        c = client(served, "E-TR1")
        try:
            before = u32(c.read_holding_registers(0x0A, 2)) * 0.01 * 400
            served.clock.advance(20 * MINUTE_MS)
            after = u32(c.read_holding_registers(0x0A, 2)) * 0.01 * 400
        finally:
            c.close()
    assert before > 100_000
    assert 0 < after < 1_000  # kWh of 15 minutes since the reset


@pytest.mark.parametrize(
    ("meter", "address", "signed"),
    [("E-TR1", 0x0A, False), ("E-D28", 62, True)],  # uint32 (DTSD1352), int32 (ADW300)
)
def test_integer_counters_roll_over_at_32_bits(meter: str, address: int, signed: bool):
    at = SUMMER_MORNING_MS + 10 * MINUTE_MS
    plan = FaultPlan({meter: MeterFaults(rollover=True, rollover_at_ms=at)})
    with serving([meter], faults=plan) as served:
        c = client(served, meter)
        try:
            before = c.read_holding_registers(address, 2)
            served.clock.advance(20 * MINUTE_MS)
            after = c.read_holding_registers(address, 2)
        finally:
            c.close()
    if signed:
        assert 2**31 - 10**6 < i32(before) < 2**31
        assert -(2**31) <= i32(after) < -(2**31) + 10**6
    else:
        assert 2**32 - 10**6 < u32(before) < 2**32
        assert 0 <= u32(after) < 10**6


def test_spikes_multiply_instantaneous_values_only():
    plan = FaultPlan({"E-D48": MeterFaults(spike_rate=1.0, spike_factor=10.0)})
    with serving(["E-D48"], faults=plan) as served:
        c = client(served, "E-D48")
        try:
            regs = c.read_input_registers(0x34, 2)  # P total, W
            energy = c.read_input_registers(0x48, 2)
        finally:
            c.close()
        truth = served.sim.values("E-D48")
    power = struct.unpack(">f", struct.pack(">HH", *regs))[0] / 1000
    assert power == pytest.approx(10 * truth["power"], rel=1e-5)
    kwh = struct.unpack(">f", struct.pack(">HH", *energy))[0]
    assert kwh == pytest.approx(truth["energy_import"], rel=1e-6)


# ------------------------------------------------------------------ MQTT


@pytest.fixture
def received(mosquitto: Broker) -> Iterator[queue.Queue[tuple[str, bytes]]]:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fault-test-sub", protocol=mqtt.MQTTv5)
    subscribed = queue.Queue[bool]()
    sub.on_message = lambda _c, _u, msg: got.put((msg.topic, msg.payload))
    sub.on_subscribe = lambda *_: subscribed.put(True)
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    sub.subscribe("luan-admin-center/#", qos=1)
    subscribed.get(timeout=10)
    try:
        yield got
    finally:
        sub.disconnect()
        sub.loop_stop()


def _publish(mosquitto: Broker, plan: FaultPlan, meter_ids: list[str], now_ms: int) -> int:
    from simulators.site import SimulatedSite

    sim = SimulatedSite(site(), model=model())
    meters = [site().meter(m) for m in meter_ids]
    pub = MqttMeterPublisher(
        site(),
        [(m, sim.source(m.id)) for m in meters],
        mosquitto.url,
        faults=plan,
        clock=lambda: now_ms,
    )
    pub.client.connect(mosquitto.host, mosquitto.port)
    pub.client.loop_start()
    try:
        sent = pub.publish_once(now_ms)
        pub.flush(timeout=10)
        return sent
    finally:
        pub.client.disconnect()
        pub.client.loop_stop()


def _collect(got: queue.Queue[tuple[str, bytes]], n: int) -> list[tuple[str, bytes]]:
    return [got.get(timeout=10) for _ in range(n)]


def test_mqtt_meters_publish_both_payload_shapes_cleanly_without_faults(
    mosquitto: Broker, received: queue.Queue[tuple[str, bytes]]
):
    ids = ["WX-ROOF", "E-PLUG-D01", "W-IOT-CANTEEN"]
    sent = _publish(mosquitto, FaultPlan(), ids, SUMMER_MORNING_MS)
    assert sent == 3
    messages = dict(_collect(received, 3))
    assert received.empty()
    for meter_id in ids:
        m = site().meter(meter_id)
        assert m.mqtt is not None
        readings = parse_payload(
            messages[m.mqtt.topic], site().payload_formats[m.mqtt.format], meter_id, 0
        )
        assert {r.ts_ms for r in readings} == {SUMMER_MORNING_MS}
    nested = json.loads(messages[site().meter("E-PLUG-D01").mqtt.topic])  # type: ignore[union-attr]
    assert isinstance(nested["ENERGY"], dict)
    assert nested["Time"] == "2025-07-15T10:00:00"  # Tasmota writes local time


def test_mqtt_faults_malformed_duplicated_skewed_and_silent(
    mosquitto: Broker, received: queue.Queue[tuple[str, bytes]]
):
    plan = FaultPlan(
        {
            "WX-ROOF": MeterFaults(malformed_rate=1.0),
            "E-PLUG-D01": MeterFaults(duplicate_rate=1.0),
            "W-IOT-CANTEEN": MeterFaults(clock_skew_s=-90),
            "W-IOT-HP": MeterFaults(offline=True),
        },
        seed=3,
    )
    ids = ["WX-ROOF", "E-PLUG-D01", "W-IOT-CANTEEN", "W-IOT-HP", "E-PLUG-D08"]
    sent = _publish(mosquitto, plan, ids, SUMMER_MORNING_MS)
    assert sent == 5  # weather 1 (broken), plug twice, water 1, offline 0, the clean plug 1
    by_topic: dict[str, list[bytes]] = {}
    for where, payload in _collect(received, 5):
        by_topic.setdefault(where, []).append(payload)
    fmt = site().payload_formats

    def topic(meter_id: str) -> str:
        m = site().meter(meter_id)
        assert m.mqtt is not None
        return m.mqtt.topic

    with pytest.raises(PayloadError):
        parse_payload(by_topic[topic("WX-ROOF")][0], fmt["weather-flat"], "WX-ROOF", 0)
    plug = by_topic[topic("E-PLUG-D01")]
    assert len(plug) == 2
    assert plug[0] == plug[1]
    water = parse_payload(by_topic[topic("W-IOT-CANTEEN")][0], fmt["water-flat"], "W", 0)
    assert water[0].ts_ms == SUMMER_MORNING_MS - 90_000
    assert topic("W-IOT-HP") not in by_topic
    clean = parse_payload(by_topic[topic("E-PLUG-D08")][0], fmt["tasmota"], "P", 0)
    assert clean[0].ts_ms == SUMMER_MORNING_MS


# ------------------------------------------------------------------ configuration


def test_faults_from_the_site_file_and_the_command_line():
    import tomllib

    from tests.sim_helpers import SITE_FILE

    data = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    data["simulation"] = {"seed": 5, "faults": {"E-D01": {"busy_rate": 0.25, "delay_s": 1.5}}}
    configured = parse_site(data)
    plan = FaultPlan.from_site(configured)
    assert plan.seed == 5
    assert plan.meters["E-D01"].busy_rate == 0.25
    data["simulation"] = {"faults": {"E-NOPE": {"offline": True}}}
    with pytest.raises(ConfigError, match="E-NOPE"):
        parse_site(data)
    cli = FaultPlan.parse(["E-D01:offline", "W-MAIN:spike_rate=0.1,spike_factor=5"], seed=2)
    assert cli.meters["E-D01"].offline
    assert cli.meters["W-MAIN"].spike_factor == 5
    with pytest.raises(ConfigError, match="busy_rate"):
        FaultPlan.parse(["E-D01:busy_rate=2"])
    with pytest.raises(ConfigError, match="METER:key"):
        FaultPlan.parse(["E-D01"])
    assert FaultPlan().empty
    assert FaultPlan.from_site(site()).empty  # the reference site has none


def test_gateway_faults_from_the_site_file_and_the_command_line():
    import tomllib

    from epcmon.simulate import faults_for
    from tests.sim_helpers import SITE_FILE

    data = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    data["simulation"] = {
        "gateway_faults": {"gw-east": {"drop_rate": 0.15, "garbage_rate": 0.05}},
        "faults": {"E-D01": {"offline": True}},
    }
    plan = FaultPlan.from_site(parse_site(data))
    assert plan.gateways["gw-east"].drop_rate == 0.15
    assert plan.gateways["gw-east"].garbage == "any"
    assert plan.meters["E-D01"].offline
    data["simulation"] = {"gateway_faults": {"gw-nope": {"drop_rate": 0.1}}}
    with pytest.raises(ConfigError, match=r"gateway_faults\.gw-nope: no gateway 'gw-nope'"):
        parse_site(data)
    data["simulation"] = {"gateway_faults": {"gw-east": {"drop_rate": 0.6, "garbage_rate": 0.6}}}
    with pytest.raises(ConfigError, match="drop_rate"):
        parse_site(data)
    # --fault: the keys say whose fault it is
    cli = FaultPlan.parse(
        ["gw-east:drop_rate=0.15", "gw-west:garbage_rate=1,garbage=transaction", "E-D01:offline"]
    )
    assert cli.gateways["gw-east"].drop_rate == 0.15
    assert cli.gateways["gw-west"].garbage == "transaction"
    assert set(cli.meters) == {"E-D01"}
    with pytest.raises(ConfigError, match="drop_rate are a gateway's faults, offline a meter's"):
        FaultPlan.parse(["gw-east:drop_rate=0.1,offline"])
    with pytest.raises(ConfigError, match=r"gateway 'gw-east': .*garbage: Input should be"):
        FaultPlan.parse(["gw-east:garbage_rate=1,garbage=noise"])
    with pytest.raises(ConfigError, match="unknown gateway 'gw-nope'"):
        faults_for(site(), ("gw-nope:drop_rate=0.1",), 0)
    merged = faults_for(site(), ("gw-east:drop_rate=0.1", "E-D01:offline"), 3)
    assert set(merged.gateways) == {"gw-east"}
    assert not merged.empty


FRAME = bytes.fromhex("0009 0000 0009 05 03 06 0001 0002 0003")
"""The answer to transaction 9, unit 5, FC 3, three registers."""


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_each_kind_of_garbage_breaks_what_it_says(kind):
    rng = np.random.default_rng(1)
    for _ in range(30):
        out = garble(kind, FRAME, rng)
        assert out != FRAME
        if kind == "random":
            assert 1 <= len(out) <= 40
            continue
        length = int.from_bytes(out[4:6], "big")
        if kind == "truncated":  # the header promises the whole frame; part of it comes
            assert out == FRAME[: len(out)]
            assert 7 <= len(out) < 6 + length
            continue
        assert len(out) == 6 + length  # the others are framed as they claim
        tid, unit, fc = int.from_bytes(out[0:2], "big"), out[6], out[7]
        if kind == "oversized":
            assert length > 254
        elif kind == "transaction":
            assert (unit, out[7:]) == (5, FRAME[7:])
            assert tid != 9
        elif kind == "unit":
            assert (tid, out[7:]) == (9, FRAME[7:])
            assert unit != 5
        elif kind == "function":
            assert (tid, unit) == (9, 5)
            assert fc != 3
        elif kind == "length":
            assert (tid, unit, fc) == (9, 5, 3)
            byte_count, data = out[8], out[9:]
            assert (byte_count, len(data)) != (6, 6)


def test_an_independent_client_sees_the_gateway_drop_and_garble_then_recover():
    until = SUMMER_MORNING_MS + MINUTE_MS
    plan = FaultPlan(
        gateways={
            # E-D01 and E-D54 are behind gw-main-lv2, W-MAIN behind gw-water
            "gw-main-lv2": GatewayFaults(drop_rate=1.0, until_ms=until),
            "gw-water": GatewayFaults(garbage_rate=1.0, garbage="transaction", until_ms=until),
        }
    )
    with serving(["E-D01", "E-D54", "W-MAIN"], faults=plan) as served:
        dropping, garbling = client(served, "E-D01", 1.0), client(served, "W-MAIN", 1.0)
        beside = client(served, "E-D54", 1.0)  # every unit behind the gateway is hit
        try:
            for _ in range(3):
                assert dropping.read_holding_registers(0x2000, 2) is None
                assert garbling.read_holding_registers(1, 6) is None
            assert beside.read_holding_registers(0x2000, 2) is None
            assert served.gateway_of("E-D01").injected == {"drop": 4}
            assert served.gateway_of("W-MAIN").injected == {
                "garbage": 3,
                "garbage_transaction": 3,
            }
            served.clock.advance(MINUTE_MS)  # the faults' window is over
            assert dropping.read_holding_registers(0x2000, 2) is not None
            assert garbling.read_holding_registers(1, 6) is not None
        finally:
            dropping.close()
            garbling.close()
            beside.close()


# ------------------------------------------------------------------ history


def test_history_faults_appear_where_configured_and_nowhere_else():
    start = datetime(2025, 3, 2, 16, tzinfo=UTC)
    end = start + timedelta(days=1)
    down = int((start + timedelta(hours=6)).timestamp() * 1000)
    up = int((start + timedelta(hours=9)).timestamp() * 1000)
    reset = int((start + timedelta(hours=12)).timestamp() * 1000)
    plan = FaultPlan(
        {
            "E-D01": MeterFaults(offline=True, offline_from_ms=down, offline_until_ms=up),
            "E-D55": MeterFaults(counter_reset_at_ms=reset),
            "E-D54": MeterFaults(spike_rate=0.5, spike_factor=10.0),
        },
        seed=1,
    )
    meters = ["E-D01", "E-D55", "E-D54", "E-D56"]
    clean = generate_history(site(), start, end, interval="15m", meters=meters, model=model())
    faulty = generate_history(
        site(), start, end, interval="15m", meters=meters, model=model(), faults=plan
    )

    def series(h: object, meter: str, quantity: str) -> tuple[np.ndarray, np.ndarray]:
        r = h.readings  # type: ignore[attr-defined]
        sel = (r.meter_id == meter) & (r.quantity == quantity)
        return r.ts_ms[sel], r.value[sel]

    ts, _ = series(faulty, "E-D01", "power")
    assert len(ts) == 96 - 12
    assert not ((ts >= down) & (ts < up)).any()
    ts, energy = series(faulty, "E-D55", "energy_import")
    assert energy[ts < reset].min() > 1000
    assert energy[ts >= reset].max() < 500
    _, spiked = series(faulty, "E-D54", "power")
    _, truth = series(clean, "E-D54", "power")
    ratio = spiked / truth
    assert set(np.round(ratio, 6)) == {1.0, 10.0}
    for meter in ("E-D56",):  # no fault: identical to the clean history
        for q in ("power", "energy_import"):
            np.testing.assert_array_equal(series(faulty, meter, q)[1], series(clean, meter, q)[1])
    _, counter = series(clean, "E-D55", "energy_import")
    assert (np.diff(counter) > 0).all()

"""MQTT payload parsing (pure) and its inverse used by the simulators."""

from __future__ import annotations

import pytest

from collectors.mqtt.payload import MISSING, parse_payload, resolve_pointer
from core.config import PayloadFormat
from core.errors import PayloadError
from simulators.payloads import render_payload

FLAT = PayloadFormat.model_validate(
    {
        "timestamp": "/ts",
        "timestamp_format": "epoch_ms",
        "fields": [
            {"pointer": "/temp_c", "quantity": "outdoor_temperature", "unit": "degC"},
            {"pointer": "/rh", "quantity": "relative_humidity", "unit": "%"},
        ],
    }
)
TASMOTA = PayloadFormat.model_validate(
    {
        "timestamp": "/Time",
        "timestamp_format": "iso8601",
        "timestamp_timezone": "Asia/Shanghai",
        "fields": [
            {"pointer": "/ENERGY/Total", "quantity": "energy_import", "unit": "kWh"},
            {"pointer": "/ENERGY/Power", "quantity": "power", "unit": "W"},
        ],
    }
)


def test_flat_payload_with_device_time():
    got = parse_payload(b'{"ts": 1767225600000, "temp_c": 3.2, "rh": 78}', FLAT, "WX", 0)
    assert [(r.meter_id, r.quantity, r.ts_ms, r.value) for r in got] == [
        ("WX", "outdoor_temperature", 1767225600000, 3.2),
        ("WX", "relative_humidity", 1767225600000, 78.0),
    ]


def test_nested_payload_local_time_and_unit_conversion():
    payload = b'{"Time":"2026-01-05T09:00:00","ENERGY":{"Total":12.345,"Power":850}}'
    got = {r.quantity: r for r in parse_payload(payload, TASMOTA, "PLUG", 0)}
    # 09:00 in Shanghai is 01:00 UTC
    assert got["power"].ts_ms == 1767574800000
    assert got["power"].value == pytest.approx(0.85)  # W -> kW
    assert got["energy_import"].value == pytest.approx(12.345)


def test_receive_time_when_the_format_has_no_timestamp():
    fmt = PayloadFormat.model_validate(
        {"fields": [{"pointer": "/p", "quantity": "power", "unit": "kW"}]}
    )
    assert parse_payload(b'{"p": 1}', fmt, "M", 42)[0].ts_ms == 42


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"temp_c": 1}', "no timestamp at /ts"),
        (b'{"ts": "yesterday", "temp_c": 1}', "not a number"),
        (b'{"ts": 1767225600000, "temp_c": "warm"}', "/temp_c is 'warm'"),
        (b'{"ts": 1767225600000, "temp_c": true}', "not a finite number"),
        (b'{"ts": 1767225600000}', "none of the format's fields"),
    ],
)
def test_malformed_payloads_say_why(payload, reason):
    with pytest.raises(PayloadError, match=reason):
        parse_payload(payload, FLAT, "WX", 0)


def test_bad_iso_timestamp():
    with pytest.raises(PayloadError, match="not ISO-8601"):
        parse_payload(b'{"Time":"05/01/2026","ENERGY":{"Power":1}}', TASMOTA, "P", 0)


def test_json_pointer_escapes_and_arrays():
    doc = {"a/b": {"m~n": [10, 20]}}
    assert resolve_pointer(doc, "/a~1b/m~0n/1") == 20
    assert resolve_pointer(doc, "/a~1b/m~0n/5") is MISSING  # absent, not an error
    assert resolve_pointer(doc, "/a~1b/x") is MISSING


@pytest.mark.parametrize("fmt", [FLAT, TASMOTA], ids=["flat", "nested"])
def test_render_then_parse_round_trip(fmt):
    values = {
        "outdoor_temperature": 21.5,
        "relative_humidity": 60.0,
        "energy_import": 1234.5,
        "power": 1.25,
    }
    ts = 1767574800000
    got = {r.quantity: r for r in parse_payload(render_payload(fmt, values, ts), fmt, "M", 0)}
    assert got
    for quantity, reading in got.items():
        assert reading.ts_ms == ts
        assert reading.value == pytest.approx(values[quantity])


def test_out_of_range_values_are_refused():
    payload = b'{"ts": 1767225600000, "temp_c": 3.2, "rh": 180}'
    with pytest.raises(
        PayloadError, match=r"out of range: /rh gives relative_humidity = 180 %, outside \[0, 100\]"
    ):
        parse_payload(payload, FLAT, "WX", 0)

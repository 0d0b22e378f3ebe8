"""MQTT payload parsing (pure) and its inverse used by the simulators; the bounded parser
against the hostile corpus (tests/hostile_payloads.py)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.mqtt.payload import (
    HARD_LATEST_MS,
    MISSING,
    PayloadLimits,
    default_limits,
    nesting_depth_exceeds,
    parse_payload,
    parse_timestamp,
    resolve_pointer,
)
from core.config import MqttConfig, PayloadFormat, parse_site
from core.errors import ConfigError, PayloadError
from core.readings import Reading
from simulators.payloads import render_payload
from tests.hostile_payloads import FORMATS, MAX_BYTES, MAX_DEPTH, Case, corpus

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
        (b"\xff\xfe", "not UTF-8: byte 0xff at offset 0"),
        (b"[1, 2]", "not an object: the payload is a JSON array"),
        (b'{"temp_c": 1}', "no timestamp at /ts"),
        (b'{"ts": "yesterday", "temp_c": 1}', "not a number"),
        (b'{"ts": 1767225600000, "temp_c": "warm"}', '/temp_c is "warm"'),
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


# --- the findings of issue 12, each first reproduced against the old parser ----------------

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, the receive time of the pure tests
SITE_LIMITS = PayloadLimits.of(MqttConfig(), commissioned=None, timezone="UTC")
"""The collector's limits: `[mqtt]`'s defaults, with the future skew measured from NOW_MS."""


def _refused(payload: bytes, fmt: PayloadFormat = FLAT) -> str:
    with pytest.raises(PayloadError) as caught:
        parse_payload(payload, fmt, "WX", NOW_MS, SITE_LIMITS)
    return str(caught.value)


def test_deeply_nested_json_is_refused_without_recursion():
    """Was: RecursionError out of json.loads, and the subscriber task died."""
    roomy = PayloadLimits(1 << 20, 16, 32, SITE_LIMITS.earliest_ms, None)
    with pytest.raises(PayloadError, match="nested too deep"):
        parse_payload(b"[" * 200_000 + b"]" * 200_000, FLAT, "WX", NOW_MS, roomy)
    assert "nested too deep" in _refused(b"[" * 30_000 + b"]" * 30_000)
    assert "nested too deep" in _refused(b'{"a":' * 5_000 + b"1" + b"}" * 5_000)


def test_thousands_of_digits_are_refused():
    """Was: ValueError from Python's 4300-digit int limit."""
    reason = _refused(b'{"ts": 1767225600000, "temp_c": ' + b"1" * 5000 + b"}")
    assert "number out of range: a literal of 5000 characters" in reason
    assert "number out of range" in _refused(b'{"ts": ' + b"9" * 4301 + b', "temp_c": 1}')


@pytest.mark.parametrize("literal", ["1e20", "1e308", "-1e308", str(2**70), "1e17"])
@pytest.mark.parametrize("unit", ["epoch_s", "epoch_ms"])
def test_huge_epoch_timestamps_are_refused_without_overflow(literal, unit):
    """Was: OverflowError (1e308 * 1000) or a year-248073 reading (1e17 ms) handed on."""
    fmt = FLAT.model_copy(update={"timestamp_format": unit})
    reason = _refused(f'{{"ts": {literal}, "temp_c": 1}}'.encode(), fmt)
    assert reason.startswith("implausible timestamp: ")
    assert ("ahead of the receive time" in reason) != literal.startswith("-")


def test_tasmota_time_in_year_0001_is_refused():
    """Was: OverflowError from astimezone() in year 1 at UTC+8."""
    reason = _refused(b'{"Time":"0001-01-01T00:00:00","ENERGY":{"Power":1}}', TASMOTA)
    assert "before the earliest plausible time 2010-01-01" in reason


@pytest.mark.parametrize(
    ("ts", "where"),
    [
        ("0", "1970-01-01T00:00:00Z, before"),
        ("-2208988800000", "1900-01-01T00:00:00Z, before"),
        ("32503680000000", "3000-01-01T00:00:00Z, more than 600 s ahead"),
        ("253402300799000", "9999-12-31T23:59:59Z, more than 600 s ahead"),
        ("100000000000000000", "year 3170843, more than 600 s ahead"),
    ],
)
def test_absurd_timestamps_are_refused(ts, where):
    """Was: stored (1e17 ms overflowed the store's `ts * 1000`)."""
    assert where in _refused(f'{{"ts": {ts}, "temp_c": 1}}'.encode())


def test_seconds_and_milliseconds_are_told_apart_and_never_guessed():
    seconds = NOW_MS // 1000 - 60
    assert "1767225540 looks like seconds, but the format says epoch_ms" in _refused(
        f'{{"ts": {seconds}, "temp_c": 1}}'.encode()
    )
    as_s = FLAT.model_copy(update={"timestamp_format": "epoch_s"})
    assert "looks like milliseconds, but the format says epoch_s" in _refused(
        f'{{"ts": {seconds * 1000}, "temp_c": 1}}'.encode(), as_s
    )
    assert "looks like microseconds" in _refused(
        f'{{"ts": {seconds * 1_000_000}, "temp_c": 1}}'.encode()
    )
    [reading] = parse_payload(f'{{"ts": {seconds}, "temp_c": 1}}'.encode(), as_s, "WX", NOW_MS)
    assert reading.ts_ms == seconds * 1000


def test_duplicate_keys_are_refused():
    """Was: the last value won, and could carry a value past the range check."""
    assert 'duplicate key "rh"' in _refused(b'{"ts": 1767225600000, "rh": 180, "rh": 50}')
    assert 'duplicate key "ts"' in _refused(b'{"ts": 1, "ts": 1767225600000, "rh": 50}')


def test_the_window_follows_the_site_file():
    site = parse_site(
        {
            "site": {
                "id": "t",
                "name": "T",
                "latitude": 31,
                "longitude": 116,
                "timezone": "Asia/Shanghai",
                "commissioned": "2025-06-01",
            },
            "mqtt": {
                "max_future_skew_s": 60,
                "max_payload_bytes": 1024,
                "max_depth": 2,
                "max_number_chars": 16,
            },
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
        }
    )
    limits = PayloadLimits.of_site(site)
    commissioned = datetime(2025, 5, 31, 16, tzinfo=UTC)  # local midnight in Shanghai
    assert limits.earliest_ms == int(commissioned.timestamp() * 1000)

    def ts(ms: int) -> int:
        return parse_timestamp(ms, FLAT, limits, NOW_MS)

    assert ts(limits.earliest_ms) == limits.earliest_ms
    with pytest.raises(PayloadError, match="before the earliest plausible time 2025-05-31T16"):
        ts(limits.earliest_ms - 1)
    assert ts(NOW_MS + 60_000) == NOW_MS + 60_000
    with pytest.raises(PayloadError, match="more than 60 s ahead of the receive time"):
        ts(NOW_MS + 60_001)
    with pytest.raises(PayloadError, match="payload too large: 1,025 bytes"):
        parse_payload(b" " * 1025, FLAT, "WX", NOW_MS, limits)
    with pytest.raises(PayloadError, match="more than max_depth 2"):
        parse_payload(b'{"a": [[1]]}', FLAT, "WX", NOW_MS, limits)
    assert parse_payload(
        b'{"ts": 1767225600000, "temp_c": 1, "a": [1]}', FLAT, "WX", NOW_MS, limits
    )
    with pytest.raises(PayloadError, match="literal of 17 characters"):
        parse_payload(
            b'{"ts": 1767225600000, "temp_c": 1.000000000000000}', FLAT, "WX", NOW_MS, limits
        )


def test_the_later_of_the_floor_and_the_commissioning_date_wins():
    early = PayloadLimits.of(MqttConfig(), commissioned=date(2001, 1, 1), timezone="UTC")
    assert early.earliest_ms == int(datetime(2010, 1, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("earliest_timestamp", "1970-01-01", "after 1970-01-01"),
        ("max_depth", 0, "max_depth"),
        ("max_payload_bytes", 10, "max_payload_bytes"),
    ],
)
def test_bad_limits_in_the_site_file_are_config_errors(key, value, says):
    with pytest.raises(ConfigError, match=says):
        parse_site(
            {
                "site": {"id": "t", "name": "T", "latitude": 31, "longitude": 116},
                "mqtt": {key: value},
                "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
            }
        )


def test_without_a_receive_clock_only_the_hard_ceiling_applies():
    """Callers that pass no limits (simulators, old tests with received_ms=0) keep working,
    and still cannot get a timestamp past 2200 out of the parser."""
    assert default_limits().latest_ms(0) == HARD_LATEST_MS
    assert parse_payload(b'{"ts": 1767225600000, "temp_c": 1}', FLAT, "WX", 0)
    with pytest.raises(PayloadError, match="after 2200-01-01"):
        parse_payload(b'{"ts": 7258118400001, "temp_c": 1}', FLAT, "WX", 0)


def test_depth_scan_ignores_brackets_in_strings_and_escapes():
    assert not nesting_depth_exceeds('{"a": "[[[[[[[[[[", "b": "\\"[[[[[[\\\\"}', 3)
    assert nesting_depth_exceeds('{"a": "\\\\", "b": [[[[1]]]]}', 4)
    assert not nesting_depth_exceeds('{"a": "\\\\", "b": [[[1]]]}', 4)
    assert not nesting_depth_exceeds("[]" * 10_000, 1)  # wide is not deep


# --- the hostile corpus ----------------------------------------------------------------------

CORPUS = corpus(NOW_MS)


def _outcome(payload: bytes, fmt: PayloadFormat) -> list[Reading] | PayloadError:
    """Readings, or the PayloadError; anything else raised fails the test."""
    try:
        return parse_payload(payload, fmt, "M", NOW_MS, SITE_LIMITS)
    except PayloadError as exc:
        return exc


def _check_readings(readings: list[Reading]) -> None:
    assert readings
    for r in readings:
        assert isinstance(r.ts_ms, int)
        assert SITE_LIMITS.earliest_ms <= r.ts_ms <= NOW_MS + 600_000
        assert math.isfinite(r.value)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_every_corpus_case_has_its_outcome(case: Case):
    """(a) of the brief: readings or a PayloadError with the expected reason, nothing else."""
    fmt = FORMATS[case.fmt]
    if case.reason is None:
        _check_readings(parse_payload(case.payload, fmt, "M", NOW_MS, SITE_LIMITS))
    else:
        with pytest.raises(PayloadError) as caught:
            parse_payload(case.payload, fmt, "M", NOW_MS, SITE_LIMITS)
        assert case.reason in str(caught.value)


def test_every_corpus_case_through_every_format_gives_readings_or_a_payload_error():
    outcomes = {"readings": 0, "refused": 0}
    for case in CORPUS:
        for fmt in FORMATS.values():
            got = _outcome(case.payload, fmt)
            if isinstance(got, PayloadError):
                assert str(got)
                outcomes["refused"] += 1
            else:
                _check_readings(got)
                outcomes["readings"] += 1
    assert outcomes["readings"] > 20
    assert outcomes["refused"] > 300


def test_the_corpus_is_wide():
    assert len(CORPUS) >= 150
    assert sum(c.reason is None for c in CORPUS) >= 20
    assert any(len(c.payload) > MAX_BYTES for c in CORPUS)
    assert any(len(c.payload) == MAX_BYTES and c.reason is None for c in CORPUS)
    assert any(c.payload.count(b"[") > MAX_DEPTH for c in CORPUS)
    assert {c.fmt for c in CORPUS} == set(FORMATS)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_readings_or_a_payload_error(payload: bytes):
    for fmt in FORMATS.values():
        got = _outcome(payload, fmt)
        if not isinstance(got, PayloadError):
            _check_readings(got)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "ts": json_values | st.integers(min_value=-(2**80), max_value=2**80),
            "p": json_values,
            "e": json_values,
            "Time": json_values | st.datetimes().map(datetime.isoformat),
            "ENERGY": st.fixed_dictionaries(
                {}, optional={"Power": json_values, "Total": json_values}
            ),
        },
    )
)
def test_arbitrary_documents_give_readings_or_a_payload_error(document: dict[str, object]):
    payload = json.dumps(document).encode()
    for fmt in FORMATS.values():
        got = _outcome(payload, fmt)
        if not isinstance(got, PayloadError):
            _check_readings(got)


def test_the_parser_is_not_slower_than_it_needs_to_be():
    """Not a benchmark (bench.ingest_mqtt is): a guard that the checks stay cheap, generous
    enough for a busy machine."""
    payload = json.dumps({"ts": NOW_MS - 1000, "p": 1234.5, "e": 10.25}).encode()
    fmt = FORMATS["flat_ms"]
    n = 5_000
    started = time.perf_counter()
    for _ in range(n):
        parse_payload(payload, fmt, "M", NOW_MS, SITE_LIMITS)
    per_message_us = (time.perf_counter() - started) / n * 1e6
    assert per_message_us < 200


def test_the_parser_benchmark_runs(capsys):
    from bench.parse_payload import main

    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "flat payload -> 2 readings" in out
    assert f"hostile corpus, {len(CORPUS)} cases: mean" in out

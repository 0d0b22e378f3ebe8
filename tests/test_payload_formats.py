"""Payload formats as devices really publish (issue 17): numbers sent as strings, `strptime`
time formats, arrays of readings in one message, per-field scale and offset, and messages that
carry several meters (a value in the payload naming the meter, mapped by a route's template).
Pure: the parser and the router, no broker (tests/test_payload_formats_live.py has the broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from collectors.mqtt.payload import PayloadLimits, parse_payload, parse_records
from collectors.mqtt.routing import TopicRouter
from core.config import MqttConfig, MqttRoute, PayloadFormat, parse_site
from core.errors import ConfigError, PayloadError

NOW_MS = 1_772_352_000_000  # 2026-03-01T08:00Z, the receive time of these tests
LIMITS = PayloadLimits.of(MqttConfig(), commissioned=None, timezone="UTC")
SHANGHAI_8AM_MS = int(datetime(2026, 3, 1, 0, 0, tzinfo=UTC).timestamp() * 1000)
"""2026/03/01 08:00:00 in Asia/Shanghai."""


def fmt(**keys: object) -> PayloadFormat:
    return PayloadFormat.model_validate(keys)


def values(readings) -> list[tuple[str, str, int, float]]:
    return [(r.meter_id, r.quantity, r.ts_ms, round(r.value, 6)) for r in readings]


def refused(payload: bytes | str, f: PayloadFormat, **kw: object) -> str:
    if isinstance(payload, str):
        payload = payload.encode()
    with pytest.raises(PayloadError) as caught:
        parse_records(payload, f, NOW_MS, LIMITS, **kw)  # type: ignore[arg-type]
    return str(caught.value)


# --- numbers sent as strings ----------------------------------------------------------------

STRINGS = fmt(
    timestamp="/ts",
    timestamp_format="epoch_ms",
    numeric_strings=True,
    fields=[
        {"pointer": "/p", "quantity": "power", "unit": "W"},
        {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
    ],
)


def test_numbers_sent_as_strings_are_read_when_the_format_says_so():
    payload = b'{"ts": "1772351940000", "p": "1530.5", "e": "012345.67"}'
    assert values(parse_payload(payload, STRINGS, "M", NOW_MS, LIMITS)) == [
        ("M", "power", 1772351940000, 1.5305),
        ("M", "energy_import", 1772351940000, 12345.67),
    ]
    # real JSON numbers still are numbers
    assert parse_payload(b'{"ts": 1772351940000, "p": 1}', STRINGS, "M", NOW_MS, LIMITS)
    # and without `numeric_strings` a string is what it always was: not a number
    plain = STRINGS.model_copy(update={"numeric_strings": False})
    with pytest.raises(PayloadError, match=r'not a number: /p is "1530\.5"'):
        parse_payload(b'{"ts": 1772351940000, "p": "1530.5"}', plain, "M", NOW_MS, LIMITS)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", 'not a number: /p is "abc"'),
        ("", 'not a number: /p is ""'),
        (" 12", "not a number"),
        ("12 ", "not a number"),
        ("1,530", "not a number"),
        ("0x10", "not a number"),
        ("+5", "not a number"),
        (".5", "not a number"),
        ("NaN", "not a number"),
        ("Infinity", "not a number"),
        ("-inf", "not a number"),
        ("١٢", "not a number"),  # Arabic-Indic digits: str.isdigit() says yes, we say no
        ("１２", "not a number"),  # full-width digits
        ("1e400", "overflows a double"),
        ("1e-400", "underflows to 0"),
        ("1" * 33, "number out of range: a literal of 33 characters"),
        ("9" * 5000, "number out of range"),
        ("1e9", "out of range: /p gives power"),
    ],
)
def test_strings_that_are_not_plain_numbers_are_still_refused(text, reason):
    payload = json.dumps({"ts": NOW_MS - 1000, "p": text}).encode()
    assert reason in refused(payload, STRINGS)


def test_a_timestamp_sent_as_a_string_keeps_its_window():
    assert "looks like seconds" in refused(b'{"ts": "1772351940", "p": "1"}', STRINGS)
    assert "before the earliest plausible time" in refused(b'{"ts": "0", "p": "1"}', STRINGS)
    assert "ahead of the receive time" in refused(b'{"ts": "1e17", "p": "1"}', STRINGS)


# --- strptime time formats -----------------------------------------------------------------

CN_TIME = fmt(
    timestamp="/time",
    timestamp_format="%Y/%m/%d %H:%M:%S",
    timestamp_timezone="Asia/Shanghai",
    fields=[{"pointer": "/v", "quantity": "volume", "unit": "m3"}],
)


def test_a_strptime_format_in_the_formats_time_zone():
    [record] = parse_records(b'{"time": "2026/03/01 08:00:00", "v": 1}', CN_TIME, NOW_MS, LIMITS)
    assert record.ts_ms == SHANGHAI_8AM_MS
    with_offset = CN_TIME.model_copy(update={"timestamp_format": "%Y/%m/%d %H:%M:%S %z"})
    [record] = parse_records(
        b'{"time": "2026/03/01 09:00:00 +0900", "v": 1}', with_offset, NOW_MS, LIMITS
    )
    assert record.ts_ms == SHANGHAI_8AM_MS  # the written offset wins over the format's zone
    date_only = CN_TIME.model_copy(update={"timestamp_format": "%Y%m%d"})
    [record] = parse_records(b'{"time": "20260301", "v": 1}', date_only, NOW_MS, LIMITS)
    assert record.ts_ms == SHANGHAI_8AM_MS - 8 * 3_600_000  # local midnight


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"2026-03-01 08:00:00"', 'bad timestamp: "2026-03-01 08:00:00" does not match'),
        ('"2026/02/30 08:00:00"', "does not match"),
        ('"2026/03/01 08:00:00 extra"', "does not match"),
        ('"2001/01/01 00:00:00"', "before the earliest plausible time"),
        ('"2099/01/01 00:00:00"', "ahead of the receive time"),
        ('"0001/01/01 00:00:00"', "before the earliest plausible time"),
        ('"' + "2026" * 100 + '"', "too long"),
        ("1772352000", "is not a string (%Y/%m/%d %H:%M:%S)"),
        ("null", "is not a string"),
    ],
)
def test_strptime_timestamps_that_do_not_fit_are_refused(value, reason):
    assert reason in refused(f'{{"time": {value}, "v": 1}}', CN_TIME)


@pytest.mark.parametrize(
    ("timestamp_format", "says"),
    [
        ("YYYY/MM/DD HH:MM:SS", "epoch_s, epoch_ms, iso8601, or a strptime format"),
        ("%Y/%m/%d %Q", "bad directive"),
        ("%H:%M:%S", "must give the date"),
        ("%Y-%m", "must give the date"),
        ("%c", "locale"),
    ],
)
def test_a_bad_time_format_is_a_config_error(timestamp_format, says):
    with pytest.raises(ValidationError, match=says):
        CN_TIME.model_copy(update={"timestamp_format": timestamp_format}).model_validate(
            {**CN_TIME.model_dump(), "timestamp_format": timestamp_format}
        )


# --- arrays of readings ------------------------------------------------------------------

BATCH = fmt(
    records="/data",
    timestamp="/t",
    timestamp_format="%Y/%m/%d %H:%M:%S",
    timestamp_timezone="Asia/Shanghai",
    numeric_strings=True,
    fields=[{"pointer": "/total", "quantity": "volume", "unit": "m3"}],
)


def hourly(n: int, start_hour: int = 0) -> list[dict[str, str]]:
    return [
        {"t": f"2026/03/01 {start_hour + h:02d}:00:00", "total": f"{100 + h * 0.25:.2f}"}
        for h in range(n)
    ]


def test_an_array_of_readings_each_with_its_own_time():
    payload = json.dumps({"imei": "86", "data": hourly(8)}).encode()
    got = values(parse_payload(payload, BATCH, "W", NOW_MS, LIMITS))
    assert got == [
        ("W", "volume", SHANGHAI_8AM_MS - (8 - h) * 3_600_000, 100 + h * 0.25) for h in range(8)
    ]


def test_the_message_itself_may_be_the_array():
    top = BATCH.model_copy(update={"records": ""})
    got = parse_payload(json.dumps(hourly(3)).encode(), top, "W", NOW_MS, LIMITS)
    assert len(got) == 3


def test_a_record_without_any_value_is_skipped_but_an_empty_message_is_refused():
    data = [*hourly(2), {"t": "2026/03/01 05:00:00", "err": "E07"}]
    assert len(parse_payload(json.dumps({"data": data}).encode(), BATCH, "W", NOW_MS, LIMITS)) == 2
    assert "no values" in refused(b'{"data": []}', BATCH)
    assert "no values" in refused(b'{"data": [{"t": "2026/03/01 05:00:00"}]}', BATCH)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('{"imei": "86"}', "no records at /data"),
        ('{"data": {"t": 1}}', "not an array: /data is a JSON object"),
        ('{"data": [1, 2]}', "not an object: record 0 of /data is a JSON number"),
        ('{"data": [{"total": "1"}]}', "no timestamp at /t: record 0"),
        (
            '{"data": [{"t": "2026/03/01 05:00:00", "total": "1"}, '
            '{"t": "1970/01/01 00:00:00", "total": "1"}]}',
            "implausible timestamp: record 1:",
        ),
        (
            '{"data": [{"t": "2026/03/01 05:00:00", "total": "x"}]}',
            'not a number: record 0: /total is "x"',
        ),
    ],
)
def test_arrays_that_cannot_be_used_say_which_record(payload, reason):
    assert reason in refused(payload, BATCH)


def test_one_bad_record_refuses_the_whole_message():
    """A half-read message hides faults: the reason names the record, nothing is stored."""
    data = hourly(3)
    data[1]["total"] = "-5"
    assert "out of range: record 1: /total gives volume = -5 m3" in refused(
        json.dumps({"data": data}), BATCH
    )


def test_records_at_the_depth_and_size_bounds():
    many = json.dumps({"data": hourly(1) * 1300}).encode()
    assert len(many) < MqttConfig().max_payload_bytes
    assert len(parse_records(many, BATCH, NOW_MS, LIMITS)) == 1300
    deep = fmt(records="/a/b/c", fields=[{"pointer": "/p", "quantity": "power", "unit": "W"}])
    assert refused(b'{"a": {"b": {"c": [' + b"[" * 20 + b"]" * 20 + b"]}}}", deep).startswith(
        "nested too deep"
    )


# --- scale and offset ----------------------------------------------------------------------


def test_per_field_scale_and_offset_before_the_unit_conversion():
    f = fmt(
        fields=[
            {"pointer": "/Ep", "quantity": "energy_import", "unit": "kWh", "scale": 0.01},
            {"pointer": "/P", "quantity": "power", "unit": "W", "scale": 10},
            {"pointer": "/T", "quantity": "supply_temperature", "unit": "degC", "offset": -40},
            {"pointer": "/U", "quantity": "voltage_l1", "unit": "V", "scale": 0.1, "offset": 0},
        ]
    )
    got = {
        r.quantity: r.value
        for r in parse_payload(b'{"Ep": 123456, "P": 153, "T": 65, "U": 2201}', f, "M", 7)
    }
    assert got == pytest.approx(
        {
            "energy_import": 1234.56,
            "power": 1.53,  # 153 * 10 W = 1.53 kW
            "supply_temperature": 25.0,
            "voltage_l1": 220.1,
        }
    )


def test_the_range_check_applies_after_scale_and_offset():
    f = fmt(fields=[{"pointer": "/e", "quantity": "energy_import", "unit": "kWh", "offset": -100}])
    with pytest.raises(PayloadError, match="out of range: /e gives energy_import = -50 kWh"):
        parse_payload(b'{"e": 50}', f, "M", 7)


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"scale": 0}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"offset": float("inf")}, "offset"),
    ],
)
def test_bad_scale_or_offset_is_a_config_error(keys, says):
    with pytest.raises(ValidationError, match=says):
        fmt(fields=[{"pointer": "/e", "quantity": "energy_import", "unit": "kWh", **keys}])


# --- several meters in one message -----------------------------------------------------------

BUS = fmt(
    records="/devices",
    timestamp="/time",
    timestamp_scope="message",
    timestamp_format="%Y/%m/%d %H:%M:%S",
    timestamp_timezone="Asia/Shanghai",
    numeric_strings=True,
    fields=[
        {"pointer": "/Ep", "quantity": "energy_import", "unit": "kWh", "scale": 0.01},
        {"pointer": "/P", "quantity": "power", "unit": "W"},
    ],
)


def bus_message(addresses) -> bytes:  # type: ignore[no-untyped-def]
    return json.dumps(
        {
            "gw": "GWB2",
            "time": "2026/03/01 08:00:00",
            "devices": [{"addr": a, "Ep": f"{a * 1000}", "P": f"{a * 100}"} for a in addresses],
        }
    ).encode()


def test_records_name_their_meter_and_share_the_message_time():
    records = parse_records(bus_message(range(1, 11)), BUS, NOW_MS, LIMITS, names=("/addr",))
    assert [r.names for r in records] == [(str(a),) for a in range(1, 11)]
    assert {r.ts_ms for r in records} == {SHANGHAI_8AM_MS}
    assert records[2].values == (("energy_import", 30.0), ("power", 0.3))


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        (None, "no meter name at /addr: record 0"),
        (True, "bad meter name: record 0: /addr is true"),
        (1.5, "bad meter name: record 0: /addr is 1.5"),
        ("a/b", 'bad meter name: record 0: /addr is "a/b"'),
        ("+", "bad meter name"),
        ("x" * 65, "bad meter name"),
        ("", "bad meter name"),
        ("电表", "bad meter name"),
        ([1], "bad meter name"),
    ],
)
def test_a_meter_name_that_cannot_be_part_of_an_id_is_refused(addr, reason):
    payload = json.dumps({"time": "2026/03/01 08:00:00", "devices": [{"P": "1"}]}).encode()
    if addr is not None:
        payload = json.dumps(
            {"time": "2026/03/01 08:00:00", "devices": [{"addr": addr, "P": "1"}]}
        ).encode()
    assert reason in refused(payload, BUS, names=("/addr",))


def test_timestamp_scope_message_needs_records():
    with pytest.raises(ValidationError, match="needs `records`"):
        fmt(timestamp="/t", timestamp_scope="message", fields=BUS.model_dump()["fields"])


# --- routes whose meter template takes a value from the payload -------------------------------


def bus_site(*, addresses=range(1, 11), pattern="rs485/{gw}/up", meter="E-{gw}-{/addr}"):  # type: ignore[no-untyped-def]
    return parse_site(
        {
            "site": {"id": "s", "name": "S", "latitude": 31, "longitude": 116},
            "mqtt": {"routes": {"bus": {"pattern": pattern, "meter": meter, "format": "bus"}}},
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
            "payload_formats": {"bus": BUS.model_dump(mode="json")},
            "meters": [
                {
                    "id": meter.replace("{gw}", "GWB2").replace("{/addr}", str(a)),
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"route": "bus"},
                }
                for a in addresses
            ],
        }
    )


def test_a_route_maps_a_value_in_the_payload_to_meter_ids():
    site = bus_site(addresses=[1, 2, 3])
    router = TopicRouter(site)
    assert router.subscriptions() == ["rs485/+/up"]
    route = router.route("rs485/GWB2/up")
    assert route is not None
    assert route.names == ("/addr",)
    assert route.meter_of(("2",)) == "E-GWB2-2"
    assert route.meter_of(("9",)) is None  # not configured: an unknown meter
    assert router.route("rs485/GWB9/up") is not None  # the gateway is named by the payload too
    assert site.topic_of(site.meters_by_id["E-GWB2-3"]) == "rs485/GWB2/up"


def test_a_route_with_no_topic_variable_names_its_meters_by_the_payload_alone():
    site = bus_site(pattern="gateway/bus-1/data", meter="BUS1-{/addr}", addresses=[4])
    router = TopicRouter(site)
    assert router.subscriptions() == ["gateway/bus-1/data"]
    route = router.route("gateway/bus-1/data")
    assert route is not None
    assert route.meter_of(("4",)) == "BUS1-4"
    assert site.topic_of(site.meters_by_id["BUS1-4"]) == "gateway/bus-1/data"


@pytest.mark.parametrize(
    ("pattern", "meter", "message"),
    [
        ("gateway/bus-1/data", "BUS1", "needs a variable"),
        ("rs485/{gw}/up", "E-{/addr}", "exactly the variables of the pattern"),
        ("rs485/{gw}/up", "E-{gw}-{/a{b}", "variable"),
        ("rs485/{gw}/up", "E-{gw}-{addr}", "exactly the variables of the pattern"),
    ],
)
def test_bad_payload_variables_in_routes(pattern, meter, message):
    with pytest.raises(ValidationError, match=message):
        MqttRoute(pattern=pattern, meter=meter, format="bus")


def test_a_format_with_payload_names_needs_no_topic_per_meter():
    """Ten meters on one topic: the site file says so once, in the route."""
    site = bus_site()
    assert len(site.meters) == 10
    assert {site.topic_of(m) for m in site.meters} == {"rs485/GWB2/up"}


def test_a_bad_route_template_is_named_in_the_config_error():
    with pytest.raises(ConfigError, match=r"routes\.bus\.meter"):
        bus_site(meter="E-{gw}-{addr}")

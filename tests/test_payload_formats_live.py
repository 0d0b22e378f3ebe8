"""Devices as they publish, from site-file configuration alone, through a real Mosquitto, the
real subscriber and a DuckDB store (issue 17, "What must show"):

- a Chinese IoT water meter (NB-IoT, forwarded by its platform) writing numbers as strings and
  times as `YYYY/MM/DD HH:MM:SS` local time, once with its reading and once with its day of
  hourly readings in one message;
- an RS-485 bus gateway publishing its whole bus, 10 meters in one message, with scale
  factors (hundredths of a kWh, tenths of a volt) and one time for all.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collectors.availability import Availability
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import SiteConfig
from core.errors import ConfigError
from epcmon.sites import load
from storage.deadletters import DeadLetters
from storage.duckdb_store import DuckDBStore
from tests.test_mqtt_subscriber import Pub, start, until

SHANGHAI = ZoneInfo("Asia/Shanghai")
END_MS = 7_258_118_400_000

SITE = """
[site]
id = "t"
name = "测试"
latitude = 31.7
longitude = 116.5
timezone = "Asia/Shanghai"

[mqtt]
url = "{url}"
client_id = "test-{prefix}"

# 电信 CTWing 转发的 NB-IoT 水表：数值为字符串，时间为本地时间 YYYY/MM/DD HH:MM:SS
#   {{"deviceId":"861234567890123","IMEI":"861234567890123","meterNo":"2301001",
#    "dataTime":"2026/03/01 08:00:00","totalFlow":"001234.567","reverseFlow":"0.000",
#    "instantFlow":"0.850","battery":"3.62","valveStatus":"0"}}
[payload_formats.nb-water]
timestamp = "/dataTime"
timestamp_format = "%Y/%m/%d %H:%M:%S"
timestamp_timezone = "Asia/Shanghai"
numeric_strings = true
fields = [
  {{ pointer = "/totalFlow", quantity = "volume", unit = "m3" }},
  {{ pointer = "/reverseFlow", quantity = "volume_reverse", unit = "m3" }},
  {{ pointer = "/instantFlow", quantity = "flow", unit = "m3/h" }},
  {{ pointer = "/battery", quantity = "battery_voltage", unit = "V" }},
]

# 同型号水表每日上报一次当天 24 个整点冻结读数
[payload_formats.nb-water-daily]
records = "/frozen"
timestamp = "/time"
timestamp_format = "%Y/%m/%d %H:%M:%S"
timestamp_timezone = "Asia/Shanghai"
numeric_strings = true
fields = [{{ pointer = "/total", quantity = "volume", unit = "m3" }}]

# RS-485 网关：一条消息带整条总线的表，Ep 单位 0.01 kWh，U 单位 0.1 V，P 单位 W
#   {{"gw":"GWB2","time":"2026/03/01 08:00:00",
#    "devices":[{{"addr":1,"Ep":"123456","P":"1530","U":"2201"}}, ...]}}
[payload_formats.rs485-bus]
records = "/devices"
timestamp = "/time"
timestamp_scope = "message"
timestamp_format = "%Y/%m/%d %H:%M:%S"
timestamp_timezone = "Asia/Shanghai"
numeric_strings = true
fields = [
  {{ pointer = "/Ep", quantity = "energy_import", unit = "kWh", scale = 0.01 }},
  {{ pointer = "/P", quantity = "power", unit = "W" }},
  {{ pointer = "/U", quantity = "voltage_l1", unit = "V", scale = 0.1 }},
]

[mqtt.routes.bus]
pattern = "{prefix}/rs485/{{gw}}/up"
meter = "E-{{gw}}-{{/addr}}"
format = "rs485-bus"

[[buildings]]
id = "main"
name = "主楼"
floor_area_m2 = 1000

[[meters]]
id = "W-NB-01"
kind = "water"
building = "main"
[meters.mqtt]
topic = "{prefix}/ctwing/861234567890123"
format = "nb-water"

[[meters]]
id = "W-NB-02"
kind = "water"
building = "main"
[meters.mqtt]
topic = "{prefix}/ctwing/861234567890124"
format = "nb-water-daily"
"""

BUS_METER = """
[[meters]]
id = "E-GWB2-{addr}"
kind = "electricity"
building = "main"
[meters.mqtt]
route = "bus"
"""


def site_file(tmp_path: Path, url: str, prefix: str) -> SiteConfig:
    text = SITE.format(url=url, prefix=prefix) + "".join(
        BUS_METER.format(addr=a) for a in range(1, 11)
    )
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return load(path)


def local(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y/%m/%d %H:%M:%S")


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def now() -> datetime:
    """A whole minute a little in the past, so that every device time is plausible."""
    return datetime.now(SHANGHAI).replace(second=0, microsecond=0) - timedelta(minutes=2)


async def test_an_nb_iot_water_meter_with_string_numbers_and_slashed_local_times(
    mosquitto, tmp_path, now
):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = site_file(tmp_path, mosquitto.url, prefix)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, availability), dead, availability)
    stop, task = await start(sub)
    pub = Pub(mosquitto.port)
    reading = {
        "deviceId": "861234567890123",
        "IMEI": "861234567890123",
        "meterNo": "2301001",
        "dataTime": local(now),
        "totalFlow": "001234.567",
        "reverseFlow": "0.000",
        "instantFlow": "0.850",
        "battery": "3.62",
        "valveStatus": "0",
    }
    pub.send(f"{prefix}/ctwing/861234567890123", json.dumps(reading).encode())
    midnight = now.replace(hour=0, minute=0)
    hours = [midnight - timedelta(days=1) + timedelta(hours=h) for h in range(24)]
    daily = {
        "deviceId": "861234567890124",
        "frozen": [
            {"time": local(h), "total": f"{500 + i * 0.125:.3f}"} for i, h in enumerate(hours)
        ],
    }
    pub.send(f"{prefix}/ctwing/861234567890124", json.dumps(daily).encode())
    # the same meter, a value that is not a number: refused, whatever the string says
    bad = {**reading, "totalFlow": "1,234.567"}
    pub.send(f"{prefix}/ctwing/861234567890123", json.dumps(bad).encode())
    pub.close()
    await until(lambda: availability.counters["mqtt_messages"] == 3, "3 acks", task=task)
    stop.set()
    await task

    def series(meter: str, quantity: str) -> list[tuple[int, float]]:
        s = store.read_raw(meter, quantity, 0, END_MS)
        return [(int(t), float(v)) for t, v in zip(s.ts_ms, s.value, strict=True)]

    at = ms(now)
    assert series("W-NB-01", "volume") == [(at, pytest.approx(1234.567))]
    assert series("W-NB-01", "volume_reverse") == [(at, 0.0)]
    assert series("W-NB-01", "flow") == [(at, pytest.approx(0.85))]
    assert series("W-NB-01", "battery_voltage") == [(at, pytest.approx(3.62))]
    assert series("W-NB-02", "volume") == [
        (ms(h), pytest.approx(500 + i * 0.125)) for i, h in enumerate(hours)
    ]
    [letter] = dead.read()
    assert letter["reason"] == 'not a number: /totalFlow is "1,234.567", not a finite number'
    store.close()


async def test_a_bus_gateway_publishing_ten_meters_in_one_message(mosquitto, tmp_path, now):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = site_file(tmp_path, mosquitto.url, prefix)
    assert {site.topic_of(m) for m in site.meters if m.mqtt and m.mqtt.route} == {
        f"{prefix}/rs485/GWB2/up"
    }
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, availability), dead, availability)
    stop, task = await start(sub)
    pub = Pub(mosquitto.port)
    minutes = [now - timedelta(minutes=m) for m in (2, 1, 0)]
    for i, moment in enumerate(minutes):
        message = {
            "gw": "GWB2",
            "time": local(moment),
            "devices": [
                {"addr": a, "Ep": str(100_000 * a + i), "P": str(150 * a), "U": str(2200 + a)}
                for a in range(1, 11)
            ],
        }
        pub.send(f"{prefix}/rs485/GWB2/up", json.dumps(message).encode())
    pub.close()
    await until(lambda: availability.counters["mqtt_messages"] == 3, "3 acks", task=task)
    stop.set()
    await task

    for a in range(1, 11):
        meter = f"E-GWB2-{a}"
        energy = store.read_raw(meter, "energy_import", 0, END_MS)
        assert [int(t) for t in energy.ts_ms] == [ms(m) for m in minutes], meter
        assert list(energy.value) == pytest.approx([1000.0 * a + i * 0.01 for i in range(3)])
        assert list(store.read_raw(meter, "power", 0, END_MS).value) == pytest.approx(
            [0.15 * a] * 3
        )
        assert list(store.read_raw(meter, "voltage_l1", 0, END_MS).value) == pytest.approx(
            [220.0 + a / 10] * 3
        )
        assert availability.snapshot()[meter].up
    assert availability.counters["mqtt_readings"] == 3 * 10 * 3
    assert dead.count == 0
    store.close()


def test_the_site_file_says_it_once_per_gateway(tmp_path):
    """Ten meters on one topic are ten `route = "bus"` entries, no topic repeated; a meter
    whose id the route's template cannot give is refused at load, naming it."""
    site = site_file(tmp_path, "mqtt://127.0.0.1:1883", "p")
    assert sum(1 for m in site.meters if m.mqtt and m.mqtt.route == "bus") == 10
    bad = (tmp_path / "site.toml").read_text(encoding="utf-8") + BUS_METER.format(addr=11).replace(
        "E-GWB2-11", "X-GWB2-11"
    )
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"meter 'X-GWB2-11': mqtt.route: id does not fit"):
        load(tmp_path / "bad.toml")

"""Devices nobody configured (issue 17): what arrives from them is listed (topic, last payload,
count, first and last seen, a suggested site-file snippet) for an installer to adopt, as Home
Assistant lists discovered devices, and their messages are still dead letters ("unknown
meter"). Through a real Mosquitto and the real subscriber; the list's store and the API on
their own."""

from __future__ import annotations

import json
import logging
import time
import tomllib
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyStore, Role
from collectors.availability import Availability
from collectors.mqtt.bounded import default_limits
from collectors.mqtt.discovery import Discovery
from collectors.mqtt.payload import parse_records
from collectors.mqtt.routing import TopicRouter, Unrouted
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.mqtt.suggest import suggest
from collectors.writer import StoreWriter
from epcmon.sites import load
from processing.statements import StatementStore
from storage.deadletters import DeadLetters
from storage.devices import DEVICES_FILE, Sighting, UnconfiguredDevices, read_unconfigured
from storage.duckdb_store import DuckDBStore
from tests.test_mqtt_subscriber import Pub, start, until
from tests.test_payload_formats_live import BUS_METER, SHANGHAI, SITE, local

PLUG = {"Time": "2026-03-01T08:00:00", "ENERGY": {"Total": 12.5, "Power": 150, "Voltage": 221}}


def site_text(url: str, prefix: str, buses: range = range(1, 11)) -> str:
    """The live test's site (a water meter, a bus gateway's ten meters), listening to
    Tasmota plugs nobody configured yet."""
    text = SITE.format(url=url, prefix=prefix).replace(
        f'client_id = "test-{prefix}"',
        f'client_id = "test-{prefix}"\ndiscover = ["{prefix}/tele/+/SENSOR"]',
    )
    return text + "".join(BUS_METER.format(addr=a) for a in buses)


def write_site(tmp_path: Path, text: str, name: str = "site.toml"):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load(path)


def bus_message(now: datetime, addrs: range) -> bytes:
    devices = [{"addr": a, "Ep": str(100_000 * a), "P": "1500", "U": "2201"} for a in addrs]
    return json.dumps({"gw": "GWB2", "time": local(now), "devices": devices}).encode()


async def test_unconfigured_devices_are_listed_and_still_dead_lettered(mosquitto, tmp_path):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = write_site(tmp_path, site_text(mosquitto.url, prefix))
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    devices = UnconfiguredDevices.for_mqtt(tmp_path / DEVICES_FILE, site.mqtt)
    sub = MqttSubscriber(
        site, mosquitto.url, StoreWriter(store, availability), dead, availability, devices=devices
    )
    stop, task = await start(sub)
    now = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(minutes=1)
    before_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    plug = f"{prefix}/tele/plug7/SENSOR"
    pub.send(plug, json.dumps(PLUG).encode())
    pub.send(plug, json.dumps({**PLUG, "ENERGY": {**PLUG["ENERGY"], "Power": 151}}).encode())
    # the bus grew two meters nobody configured: the ten known are stored, the two listed
    pub.send(f"{prefix}/rs485/GWB2/up", bus_message(now, range(1, 13)))
    # a second gateway on the route's pattern, none of its meters configured
    pub.send(f"{prefix}/rs485/GWC9/up", bus_message(now, range(1, 3)))
    # the same gateway writing something its format cannot read: still an unknown device
    pub.send(f"{prefix}/rs485/GWC9/up", b"not json")
    pub.close()
    await until(lambda: availability.counters["mqtt_messages"] == 5, "5 acks", task=task)
    stop.set()
    await task  # the last notes are written as it stops
    after_ms = int(time.time() * 1000)

    for a in range(1, 11):
        assert len(store.read_raw(f"E-GWB2-{a}", "energy_import", 0, 2**62)) == 1
    assert len(store.read_raw("E-GWB2-11", "energy_import", 0, 2**62)) == 0
    reasons = [letter["reason"] for letter in dead.read()]
    assert len(reasons) == 5
    assert all(r.startswith("unknown meter: ") for r in reasons), reasons
    assert (
        "(E-GWB2-11, E-GWB2-12); the readings of the 10 configured ones are stored" in (reasons[2])
    )

    listed = {(s.topic, s.meter): s for s in read_unconfigured(tmp_path / DEVICES_FILE)}
    assert set(listed) == {
        (plug, ""),
        (f"{prefix}/rs485/GWB2/up", "E-GWB2-11"),
        (f"{prefix}/rs485/GWB2/up", "E-GWB2-12"),
        (f"{prefix}/rs485/GWC9/up", "E-GWC9-1"),
        (f"{prefix}/rs485/GWC9/up", "E-GWC9-2"),
        (f"{prefix}/rs485/GWC9/up", "E-GWC9-{/addr}"),
    }
    seen = listed[(plug, "")]
    assert seen.count == 2
    assert before_ms <= seen.first_ms <= seen.last_ms <= after_ms
    assert json.loads(seen.payload)["ENERGY"]["Power"] == 151  # the last one
    assert seen.reason == f"unknown meter: no meter is mapped to topic {plug!r}"
    assert seen.route == ""
    assert listed[(f"{prefix}/rs485/GWB2/up", "E-GWB2-11")].route == "bus"
    assert listed[(f"{prefix}/rs485/GWC9/up", "E-GWC9-{/addr}")].payload == b"not json"
    assert availability.counters["mqtt_unconfigured_messages"] == 7
    devices.close()
    store.close()


def test_a_suggested_snippet_adopts_the_device_as_it_stands(tmp_path):
    """Pasted into the site file as it is, the suggestion configures the device: its payload
    then gives readings for the new meter (an installer still checks quantities and units)."""
    text = site_text("mqtt://127.0.0.1:1883", "p")
    site = write_site(tmp_path, text)
    limits = default_limits()
    now = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(minutes=1)
    water = {
        "deviceId": "861234567890199",
        "dataTime": local(now),
        "totalFlow": "001234.567",
        "instantFlow": "0.850",
    }
    cases = {
        "p/tele/plug7/SENSOR": json.dumps({**PLUG, "Time": now.isoformat()}).encode(),
        "p/ctwing/861234567890199": json.dumps(water).encode(),
    }
    snippets = []
    for topic, payload in cases.items():
        snippet = suggest(site, Unrouted(topic), payload, limits)
        tomllib.loads(snippet)  # valid TOML on its own
        snippets.append(snippet)
    assert 'timestamp_format = "%Y/%m/%d %H:%M:%S"' in snippets[1]
    assert "numeric_strings = true" in snippets[1]
    bus = suggest(site, Unrouted("p/rs485/GWB2/up", "bus", "E-GWB2-11"), b"{}", limits)
    assert 'id = "E-GWB2-11"' in bus
    assert 'route = "bus"' in bus
    snippets.append(bus)

    adopted = write_site(tmp_path, text + "\n" + "\n".join(snippets), "adopted.toml")
    router = TopicRouter(adopted)
    received_ms = int(time.time() * 1000)
    got = {}
    for topic, payload in cases.items():
        route = router.route(topic)
        assert route is not None, topic
        [record] = parse_records(payload, route.fmt, received_ms, limits, route.names)
        got[route.meter_id] = dict(record.values)
    plug, water_meter = (m for m in got if m not in site.meters_by_id)
    assert got[plug]["power"] == pytest.approx(0.15)  # W, read as kW
    assert got[plug]["energy_import"] == pytest.approx(12.5)
    assert got[water_meter]["volume"] == pytest.approx(1234.567)
    assert got[water_meter]["flow"] == pytest.approx(0.85)
    assert adopted.meters_by_id["E-GWB2-11"].mqtt.route == "bus"  # type: ignore[union-attr]


def test_no_suggestion_from_a_payload_without_numbers(tmp_path):
    site = write_site(tmp_path, site_text("mqtt://127.0.0.1:1883", "p"))
    for payload in (b"not json", b'{"state": "ON"}', b"[1, 2]", b'"x"'):
        assert suggest(site, Unrouted("p/x"), payload, default_limits()) == ""


def sighting(topic: str, at_ms: int, payload: bytes = b"{}", count: int = 1) -> Sighting:
    return Sighting(topic, "", "", count, at_ms, at_ms, payload, "unknown meter: test")


def test_the_list_is_bounded_and_counts_add_up(tmp_path):
    path = tmp_path / DEVICES_FILE
    assert read_unconfigured(path) == []  # no file yet: nothing, and none created
    assert not path.exists()
    devices = UnconfiguredDevices(path, max_devices=10, max_payload_bytes=8)
    devices.record([sighting(f"flood/{i}", 1000 + i) for i in range(25)])
    devices.record([sighting("flood/24", 900, b"older payload", count=3)])
    listed = read_unconfigured(path)
    assert [s.topic for s in listed] == [f"flood/{i}" for i in range(24, 14, -1)]
    newest = listed[0]
    assert (newest.count, newest.first_ms, newest.last_ms) == (4, 900, 1024)
    assert newest.payload == b"{}"  # the later payload stays
    devices.record([sighting("big", 2000, b"0123456789abcdef")])
    big = read_unconfigured(path, limit=1)[0]
    assert (big.payload, big.payload_bytes) == (b"01234567", 16)
    assert len(read_unconfigured(path)) == 10
    devices.close()


def test_an_unwritable_list_does_not_stop_ingest_and_keeps_its_notes(tmp_path, caplog):
    site = write_site(tmp_path, site_text("mqtt://127.0.0.1:1883", "p"))
    availability = Availability()
    devices = UnconfiguredDevices(tmp_path / DEVICES_FILE)
    discovery = Discovery(site, default_limits(), devices, availability)
    devices._db.execute(
        "CREATE TRIGGER no BEFORE INSERT ON unconfigured BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    caplog.set_level(logging.WARNING, "epcmon.mqtt")
    for at in (1000, 2000):
        discovery.saw(Unrouted("p/x"), b'{"power": 1}', at, "unknown meter: x")
        discovery.flush()  # never raises
    assert availability.counters["mqtt_discovery_failures"] == 2
    assert [r.message for r in caplog.records].count(
        "the list of unconfigured devices cannot be written: full"
    ) == 1
    devices._db.execute("DROP TRIGGER no")
    discovery.flush()
    [kept] = devices.list()
    assert (kept.count, kept.first_ms, kept.last_ms) == (2, 1000, 2000)
    assert "written again" in caplog.records[-1].message
    devices.close()


@pytest.fixture
def api(tmp_path):  # type: ignore[no-untyped-def]
    site = write_site(tmp_path, site_text("mqtt://127.0.0.1:1883", "p", buses=range(1, 3)))
    store = DuckDBStore(tmp_path / "s.duckdb")
    keys = KeyStore(tmp_path / "keys.sqlite3")
    tokens = {r: keys.create(Role(r))[1] for r in ("admin", "engineer", "viewer")}
    tokens["vendor"] = keys.create(Role.VENDOR, contracts=("c1",))[1]
    statements = StatementStore(tmp_path / "statements.sqlite")
    app = create_app(site, store, keys=keys, data_dir=tmp_path, statements=statements)
    with TestClient(app) as client:
        yield client, tokens, tmp_path / DEVICES_FILE
    store.close()
    keys.close()


def test_the_api_lists_them_for_the_buildings_roles_and_not_for_vendors(api):
    client, tokens, path = api
    url = "/api/v1/devices/unconfigured"
    assert client.get(url, headers={"Authorization": f"Bearer {tokens['viewer']}"}).json() == []
    devices = UnconfiguredDevices(path, max_payload_bytes=7)
    devices.record(
        [
            Sighting("p/tele/a/SENSOR", "", "", 3, 1000, 5000, b'{"Power": 1}', "unknown meter: a"),
            Sighting("p/raw", "", "", 1, 2000, 2000, b"\xff\xfe\x00", "unknown meter: b"),
            Sighting("p/zh", "", "", 1, 3000, 3000, '{"表表": 1}'.encode(), "unknown meter: c"),
            # a meter configured since it was seen: left out
            Sighting("p/rs485/GWB2/up", "E-GWB2-2", "bus", 1, 4000, 4000, b"{}", "unknown"),
            Sighting("p/rs485/GWB2/up", "E-GWB2-11", "bus", 1, 4000, 4000, b"{}", "unknown"),
        ]
    )
    devices.close()
    for role in ("admin", "engineer", "viewer"):
        r = client.get(url, headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == 200, role
    rows = r.json()
    assert [d["topic"] for d in rows] == [
        "p/tele/a/SENSOR",
        "p/rs485/GWB2/up",
        "p/zh",
        "p/raw",
    ]
    first = rows[0]
    assert first["count"] == 3
    assert (first["first_seen"], first["last_seen"]) == (
        "1970-01-01T00:00:01Z",
        "1970-01-01T00:00:05Z",
    )
    assert (first["last_payload"], first["truncated"], first["payload_bytes"]) == (
        '{"Power',
        True,
        12,
    )
    assert rows[1]["meter"] == "E-GWB2-11"
    assert rows[1]["route"] == "bus"
    assert rows[2]["last_payload"] == '{"表'  # cut inside a character: the whole ones shown
    assert rows[3]["last_payload"] is None
    assert rows[3]["last_payload_b64"] == "//4A"
    limited = client.get(
        url, params={"limit": 1}, headers={"Authorization": f"Bearer {tokens['engineer']}"}
    )
    assert len(limited.json()) == 1
    r = client.get(url, headers={"Authorization": f"Bearer {tokens['vendor']}"})
    assert r.status_code == 403
    assert client.get(url).status_code == 401


def test_which_unreadable_messages_are_from_unconfigured_devices(tmp_path):
    """A message its format cannot read is an unconfigured device's only when no configured
    meter can be on its topic: a meter's own topic, or a gateway with a configured meter on
    the bus, keep the parse error as their reason."""
    site = write_site(tmp_path, site_text("mqtt://127.0.0.1:1883", "p"))
    router = TopicRouter(site)
    claimed = {
        "p/ctwing/861234567890123": True,  # W-NB-01's own topic
        "p/rs485/GWB2/up": True,  # E-GWB2-1 ... 10
        "p/rs485/GWC9/up": False,  # the bus route's pattern, none of its meters configured
    }
    for topic, expected in claimed.items():
        route = router.route(topic)
        assert route is not None, topic
        assert route.claims_any() is expected, topic
    assert router.route("p/tele/plug7/SENSOR") is None

"""Fault scenarios for the collectors, each counting what was published against what was
stored: a broker restart mid-stream, a collector killed with SIGKILL, malformed payloads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from api.keys import KeyStore, Role
from collectors.availability import Availability
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import parse_site
from storage.deadletters import DeadLetters, read_dead_letters
from storage.duckdb_store import DuckDBStore
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000
END = 4_102_444_800_000
METERS = 20


def site_data(prefix: str, url: str, store: Path | None = None) -> dict[str, object]:
    return {
        "site": {"id": "faults", "name": "F", "latitude": 31, "longitude": 116},
        "mqtt": {"url": url, "client_id": f"collector-{prefix}", "buffer_messages": 500},
        **({"storage": {"path": str(store)}} if store else {}),
        "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
        "payload_formats": {
            "flat": {
                "timestamp": "/ts",
                "timestamp_format": "epoch_ms",
                "fields": [{"pointer": "/e", "quantity": "energy_import", "unit": "kWh"}],
            },
        },
        "meters": [
            {
                "id": f"M{i:02d}",
                "kind": "electricity",
                "building": "b",
                "mqtt": {"topic": f"{prefix}/m{i:02d}", "format": "flat"},
            }
            for i in range(METERS)
        ],
    }


class Publisher:
    """Publishes a numbered stream with QoS 1 from a thread, surviving broker restarts
    (paho resends unacknowledged messages when it reconnects), and counts PUBACKs."""

    def __init__(self, port: int, prefix: str, count: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{prefix}",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.prefix, self.count = prefix, count
        self.halfway = threading.Event()
        self._acked: set[int] = set()
        self._cond = threading.Condition()
        self.client.on_publish = self._on_publish

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._cond:  # the broker's PUBACK: it has the message
            self._acked.add(mid)
            self._cond.notify_all()

    def run(self) -> None:
        self.client.loop_start()
        for i in range(self.count):
            payload = json.dumps({"ts": T0 + (i // METERS) * 1000, "e": float(i)})
            # while the broker is away paho keeps QoS 1 messages and sends them on reconnect
            self.client.publish(f"{self.prefix}/m{i % METERS:02d}", payload, qos=1)
            if i == self.count // 2:
                self.halfway.set()

    def acked(self, timeout: float = 60) -> int:
        with self._cond:
            self._cond.wait_for(lambda: len(self._acked) >= self.count, timeout)
            return len(self._acked)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored_points(store: DuckDBStore) -> int:
    return sum(len(store.read_raw(f"M{i:02d}", "energy_import", 0, END)) for i in range(METERS))


async def test_a_broker_restart_during_10000_messages_loses_and_doubles_nothing(
    mosquitto, tmp_path
):
    prefix = f"a-{uuid.uuid4().hex[:6]}"
    site = parse_site(site_data(prefix, mosquitto.url))
    store = DuckDBStore(tmp_path / "a.duckdb")
    availability = Availability()
    sub = MqttSubscriber(
        site,
        mosquitto.url,
        StoreWriter(store, availability),
        DeadLetters(tmp_path / "dead.jsonl"),
        availability,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await sub.wait_connected(10)

    pub = Publisher(mosquitto.port, prefix, 10_000)
    thread = threading.Thread(target=pub.run)
    thread.start()
    await asyncio.to_thread(pub.halfway.wait, 60)
    await asyncio.to_thread(mosquitto.stop)  # mid-stream
    await asyncio.to_thread(mosquitto.start)
    await asyncio.to_thread(thread.join, 120)
    assert await asyncio.to_thread(pub.acked) == 10_000
    pub.close()

    async def all_stored() -> None:
        while stored_points(store) < 10_000:
            await asyncio.sleep(0.05)  # the subscriber drains the redelivered rest

    try:
        await asyncio.wait_for(all_stored(), 60)
    except TimeoutError:
        raise AssertionError(
            f"stored {stored_points(store)}; counters {dict(availability.counters)}; buffered {sub.buffered}"
        ) from None
    stop.set()
    await task
    assert stored_points(store) == 10_000  # every message once: the store keys on (meter, time)
    values = sorted(
        float(v)
        for i in range(METERS)
        for v in store.read_raw(f"M{i:02d}", "energy_import", 0, END).value
    )
    assert values == [float(i) for i in range(10_000)]
    store.close()


class Service:
    """`epcmon run` in a subprocess, its output in a file (a pipe nobody reads would fill
    and block the service's logging)."""

    def __init__(self, site_file: Path, data_dir: Path) -> None:
        self.log = data_dir / f"service-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "epcmon.cli",
                    "run",
                    "--site",
                    str(site_file),
                    "--data-dir",
                    str(data_dir),
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the service:\n{self.output}")
            time.sleep(0.05)  # poll the log file for the line

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _stored_via_api(port: int, key: str) -> int:
    total = 0
    for i in range(METERS):
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/meters/M{i:02d}/series",
            params={
                "quantity": "energy_import",
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-02T00:00:00Z",
            },
            timeout=5,
            headers={"Authorization": f"Bearer {key}"},
        )
        r.raise_for_status()
        total += len(r.json()["points"])
    return total


def test_c_a_collector_killed_with_sigkill_loses_nothing_it_acknowledged(mosquitto, tmp_path):
    prefix = f"c-{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    site_file = tmp_path / "site.toml"
    lines = [
        '[site]\nid = "faults"\nname = "F"\nlatitude = 31\nlongitude = 116\n',
        f'[storage]\npath = "{tmp_path / "c.duckdb"}"\n',
        f'[api]\nport = {api_port}\nkeys_path = "{tmp_path / "keys.sqlite3"}"\n',
        f'[mqtt]\nurl = "{mosquitto.url}"\nclient_id = "collector-{prefix}"\n',
        '[[buildings]]\nid = "b"\nname = "B"\nfloor_area_m2 = 100\n',
        '[payload_formats.flat]\ntimestamp = "/ts"\ntimestamp_format = "epoch_ms"\n'
        'fields = [{ pointer = "/e", quantity = "energy_import", unit = "kWh" }]\n',
    ]
    lines += [
        f'[[meters]]\nid = "M{i:02d}"\nkind = "electricity"\nbuilding = "b"\n'
        f'[meters.mqtt]\ntopic = "{prefix}/m{i:02d}"\nformat = "flat"\n'
        for i in range(METERS)
    ]
    site_file.write_text("\n".join(lines))

    keys = KeyStore(tmp_path / "keys.sqlite3")
    _key_id, key = keys.create(Role.VIEWER)
    keys.close()
    first = Service(site_file, tmp_path)
    # subscribed: the broker keeps what is published for it from here on. "running" came
    # before the SUBSCRIBE reached the broker, and the first messages, published to no
    # session yet, were missing (9,970-9,996 of 10,000 stored, now and then)
    first.wait_for("MQTT subscribed")
    pub = Publisher(mosquitto.port, prefix, 10_000)
    thread = threading.Thread(target=pub.run)
    thread.start()
    pub.halfway.wait(60)
    os.kill(first.proc.pid, signal.SIGKILL)  # mid-stream, no chance to clean up
    first.proc.wait(10)
    thread.join(120)
    assert pub.acked() == 10_000
    pub.close()

    second = Service(site_file, tmp_path)  # same client id: the broker resumes the session
    try:
        second.wait_for("running")
        deadline = time.monotonic() + 120  # a loaded machine drains slowly; done is done
        stored, progress = 0, []
        while time.monotonic() < deadline and stored < 10_000:
            stored = _stored_via_api(api_port, key)
            progress.append(stored)
            # the collector drains what the broker kept for it; ten series reads five times a
            # second competed with its writes for the store
            time.sleep(1.0)
        letters = read_dead_letters(tmp_path / "dead-letters.jsonl", limit=20)
        # slow or stuck: the count every 10 s tells which
        assert stored == 10_000, (stored, progress[::10], letters, second.output[-3000:])
    finally:
        code = second.stop()
    assert code == 0, second.output


async def test_e_malformed_payloads_are_dead_lettered_and_the_collector_lives(mosquitto, tmp_path):
    prefix = f"e-{uuid.uuid4().hex[:6]}"
    site = parse_site(site_data(prefix, mosquitto.url))
    store = DuckDBStore(tmp_path / "e.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, availability), dead, availability)
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await sub.wait_connected(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    bad = [
        b"",
        b"\x00\xff",
        b"[]",
        b'{"ts": 1}',
        b'{"ts": "x", "e": 1}',
        b'{"ts": 1, "e": -5}',
        b'{"ts": 1, "e": "1e400"}',
        b'{"ts": 1, "e": 1e400}',
    ]
    infos = [pub.publish(f"{prefix}/m00", p, qos=1) for p in bad]
    infos.append(pub.publish(f"{prefix}/nobody", b'{"ts": 1, "e": 1}', qos=1))  # unknown meter
    infos += [
        pub.publish(f"{prefix}/m01", json.dumps({"ts": T0 + i, "e": float(i)}), qos=1)
        for i in range(100)
    ]
    for info in infos:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()

    async def settled() -> None:
        while availability.counters["mqtt_messages"] < len(infos) - 1:  # `nobody` is not subscribed
            await asyncio.sleep(0.02)

    await asyncio.wait_for(settled(), 20)
    assert not task.done()  # alive
    stop.set()
    await task
    assert dead.count == len(bad)
    assert len(store.read_raw("M01", "energy_import", 0, END)) == 100
    assert len(store.read_raw("M00", "energy_import", 0, END)) == 0
    store.close()


async def test_b_the_store_down_for_30s_loses_nothing(mosquitto, tmp_path):
    """InfluxDB stopped for 30 s under `epcmon run`: MQTT messages and Modbus polls of the
    outage are spooled on disk and replayed when it returns; every one stored exactly once."""
    from collectors.profiles import get_profile
    from simulators.modbus_server import SimulatedGateway, SimulatedUnit
    from storage.spool import Spool
    from tests.conftest import start_influxd

    influx = start_influxd(tmp_path / "influxd")
    gateway = SimulatedGateway(
        [
            SimulatedUnit(
                1,
                get_profile("eastron-sdm630"),
                lambda now: {"power": 5.0, "energy_import": now / 1e6},
            )
        ],
        clock=lambda: int(time.time() * 1000),
    )
    modbus_port = await gateway.start()
    prefix = f"b-{uuid.uuid4().hex[:6]}"
    spool_path = tmp_path / "spool.sqlite3"
    site_file = tmp_path / "site.toml"
    lines = [
        '[site]\nid = "faults"\nname = "F"\nlatitude = 31\nlongitude = 116\n',
        '[storage]\nbackend = "influx"\n',
        f'[storage.influx]\nurl = "{influx.url}"\nmode = "v1"\ndatabase = "outage"\nretries = 1\n'
        "retry_backoff_s = 0.1\ntimeout_s = 2\n",
        f'[storage.spool]\npath = "{spool_path}"\nreplay_interval_s = 1\n',
        f'[api]\nport = {free_port()}\nkeys_path = "{tmp_path / "keys.sqlite3"}"\n',
        f'[mqtt]\nurl = "{mosquitto.url}"\nclient_id = "collector-{prefix}"\n',
        '[[buildings]]\nid = "b"\nname = "B"\nfloor_area_m2 = 100\n',
        f'[[gateways]]\nid = "gw"\nhost = "127.0.0.1"\nport = {modbus_port}\n',
        '[payload_formats.flat]\ntimestamp = "/ts"\ntimestamp_format = "epoch_ms"\n'
        'fields = [{ pointer = "/e", quantity = "energy_import", unit = "kWh" }]\n',
        '[[meters]]\nid = "E-MB"\nkind = "electricity"\nbuilding = "b"\npoll_interval_s = 1\n'
        '[meters.modbus]\ngateway = "gw"\nunit = 1\nprofile = "eastron-sdm630"\nquantities = ["power"]\n',
    ]
    lines += [
        f'[[meters]]\nid = "M{i:02d}"\nkind = "electricity"\nbuilding = "b"\n'
        f'[meters.mqtt]\ntopic = "{prefix}/m{i:02d}"\nformat = "flat"\n'
        for i in range(METERS)
    ]
    site_file.write_text("\n".join(lines))
    influx.query('CREATE DATABASE "outage"')

    def count(measurement: str, where: str = "") -> int:
        answer = influx.query(f'SELECT count("value") FROM "{measurement}" {where}', "outage")
        series = answer["results"][0].get("series")  # type: ignore[index]
        return int(series[0]["values"][0][1]) if series else 0

    service = Service(site_file, tmp_path)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    sent = 0

    async def publish(n: int, seconds: float) -> None:
        nonlocal sent
        for _ in range(n):
            payload = json.dumps({"ts": T0 + sent * 1000, "e": float(sent)})
            pub.publish(f"{prefix}/m{sent % METERS:02d}", payload, qos=1).wait_for_publish(5)
            sent += 1
            await asyncio.sleep(seconds / n)  # a steady stream, as meters publish

    try:
        await asyncio.to_thread(service.wait_for, "MQTT subscribed")  # "running" came first
        await publish(200, 2)
        outage_start = time.time()
        await asyncio.to_thread(influx.stop)
        await publish(1_500, 30)  # the 30 s outage
        outage_end = time.time()
        await asyncio.to_thread(influx.start)
        await publish(200, 2)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count("energy_import") < sent:
            await asyncio.sleep(0.5)  # the spool replays at its own pace
        stored = count("energy_import")
        if stored != sent:  # which readings, and where they went: lost or late
            answer = influx.query('SELECT "value" FROM "energy_import"', "outage")
            rows = answer["results"][0].get("series") or []  # type: ignore[index]
            have = {round(v[1]) for series in rows for v in series["values"]}
            missing = sorted(set(range(sent)) - have)[:20]
            with Spool(spool_path) as spool:
                held = (spool.depth, spool.rejected)
            letters = read_dead_letters(tmp_path / "dead-letters.jsonl", limit=20)
            pytest.fail(
                f"{stored} of {sent} stored; missing e={missing} (published as message e); "
                f"spool depth, rejected: {held}; dead letters: {letters}\n"
                f"{service.output[-4000:]}"
            )
        assert stored == sent == 1_900
        polled = count(
            "power",
            f"WHERE time >= {int(outage_start * 1e9)} AND time < {int(outage_end * 1e9)}",
        )
        assert polled >= int(outage_end - outage_start) - 2  # polls of the outage, one a second
    finally:
        pub.disconnect()
        pub.loop_stop()
        code = await asyncio.to_thread(service.stop)
        await gateway.stop()
        influx.stop()
    assert code == 0, service.output
    with Spool(spool_path) as spool:
        assert spool.depth == 0  # everything replayed

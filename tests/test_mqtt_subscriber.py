"""The MQTT subscriber against a real Mosquitto: MQTT 5, QoS 1, ack after commit, dead letters,
duplicates stored once; every message has an outcome whatever it holds; store faults pause
ingest without losing an ack; the subscriber can be run again after it raised."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.availability import Availability
from collectors.mqtt.payload import Record, parse_records
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import parse_site
from core.errors import StoreError
from core.readings import ReadingBatch
from storage.deadletters import DeadLetters
from storage.duckdb_store import DuckDBStore
from tests.fullfs import fill, small_filesystem
from tests.hostile_payloads import corpus, valid_probe


def _site(prefix: str, url: str):
    return parse_site(
        {
            "site": {"id": "t", "name": "T", "latitude": 31, "longitude": 116},
            "mqtt": {"url": url, "client_id": f"test-{prefix}"},
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
            "payload_formats": {
                "flat": {
                    "timestamp": "/ts",
                    "timestamp_format": "epoch_ms",
                    "fields": [
                        {"pointer": "/p", "quantity": "power", "unit": "W"},
                        {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
                    ],
                },
            },
            "meters": [
                {
                    "id": "M1",
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"topic": f"{prefix}/m1", "format": "flat"},
                },
                {
                    "id": "M2",
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"topic": f"{prefix}/m2", "format": "flat"},
                },
            ],
        }
    )


async def test_subscriber_stores_acks_and_dead_letters(mosquitto, tmp_path):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, availability), dead, availability)
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await sub.wait_connected(10)

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    t0 = 1_767_225_600_000
    sent = []
    for i in range(200):
        meter = "m1" if i % 2 == 0 else "m2"
        payload = json.dumps({"ts": t0 + i * 60_000, "p": 1000 + i, "e": 10 + i})
        sent.append(pub.publish(f"{prefix}/{meter}", payload, qos=1))
    # a redelivered (duplicate) message and three that cannot be used
    sent.append(pub.publish(f"{prefix}/m1", json.dumps({"ts": t0, "p": 1000, "e": 10}), qos=1))
    sent.append(pub.publish(f"{prefix}/m1", b"{not json", qos=1))
    sent.append(pub.publish(f"{prefix}/m2", json.dumps({"ts": t0, "p": "NaN"}), qos=1))
    for info in sent:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()

    async def settled() -> None:
        while availability.counters["mqtt_messages"] < len(sent):
            await asyncio.sleep(0.02)  # the subscriber counts what it has committed and acked

    await asyncio.wait_for(settled(), 20)
    stop.set()
    await task

    m1 = store.read_raw("M1", "power", t0, t0 + 10**9)
    m2 = store.read_raw("M2", "power", t0, t0 + 10**9)
    assert len(m1) == 100
    assert len(m2) == 100
    assert m1.value[0] == pytest.approx(1.0)  # W -> kW
    assert dead.count == 2
    reasons = [r["reason"] for r in dead.read()]
    assert any("not JSON" in str(r) for r in reasons)
    assert any("not a finite number" in str(r) or "'NaN'" in str(r) for r in reasons)
    assert availability.counters["mqtt_dead_letters"] == 2
    store.close()


async def test_unacked_messages_are_redelivered_after_a_restart(mosquitto, tmp_path):
    """Messages queued while the collector is away (persistent session) arrive when it returns."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")

    async def run_until(count: int) -> None:
        sub = MqttSubscriber(
            site, mosquitto.url, StoreWriter(store, availability), dead, availability
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sub.run(stop))
        await sub.wait_connected(10)

        async def settled() -> None:
            while availability.counters["mqtt_messages"] < count:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(settled(), 20)
        stop.set()
        await task

    await run_until(0)  # creates the persistent session and its subscriptions
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    t0 = 1_767_225_600_000
    infos = [
        pub.publish(f"{prefix}/m1", json.dumps({"ts": t0 + i * 1000, "p": 5, "e": i}), qos=1)
        for i in range(50)
    ]
    for info in infos:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    await run_until(50)  # the session kept them while nobody was connected
    assert len(store.read_raw("M1", "energy_import", t0, t0 + 10**9)) == 50
    store.close()


# --- helpers for the hostile and fault scenarios ------------------------------------------

END_MS = 7_258_118_400_000


def _hostile_site(prefix: str, url: str, **mqtt_keys: Any):
    flat = [
        {"pointer": "/p", "quantity": "power", "unit": "W"},
        {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
    ]
    return parse_site(
        {
            "site": {"id": "t", "name": "T", "latitude": 31, "longitude": 116},
            "mqtt": {
                "url": url,
                "client_id": f"test-{prefix}",
                "keepalive_s": 10,
                "routes": {
                    "odd": {"pattern": f"{prefix}/odd/{{device}}/SENSOR", "meter": "ODD-{device}", "format": "flat_ms"}
                },
                **mqtt_keys,
            },
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
            "payload_formats": {
                "flat_ms": {"timestamp": "/ts", "timestamp_format": "epoch_ms", "fields": flat},
                "flat_s": {"timestamp": "/ts", "timestamp_format": "epoch_s", "fields": flat},
                "tasmota": {
                    "timestamp": "/Time",
                    "timestamp_format": "iso8601",
                    "timestamp_timezone": "Asia/Shanghai",
                    "fields": [
                        {"pointer": "/ENERGY/Power", "quantity": "power", "unit": "W"},
                        {"pointer": "/ENERGY/Total", "quantity": "energy_import", "unit": "kWh"},
                    ],
                },
            },
            "meters": [
                {"id": "P", "kind": "electricity", "building": "b", "mqtt": {"topic": f"{prefix}/probe", "format": "flat_ms"}},
                {"id": "H-flat_ms", "kind": "electricity", "building": "b", "mqtt": {"topic": f"{prefix}/h/ms", "format": "flat_ms"}},
                {"id": "H-flat_s", "kind": "electricity", "building": "b", "mqtt": {"topic": f"{prefix}/h/s", "format": "flat_s"}},
                {"id": "H-tasmota", "kind": "electricity", "building": "b", "mqtt": {"topic": f"{prefix}/h/tasmota", "format": "tasmota"}},
                {"id": "ODD-known", "kind": "electricity", "building": "b", "mqtt": {"route": "odd"}},
            ],
        }
    )  # fmt: skip


HOSTILE_TOPIC = {"flat_ms": "h/ms", "flat_s": "h/s", "tasmota": "h/tasmota"}


class Pub:
    """A QoS 1 publisher that waits for the broker's PUBACK of everything it sent."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []

    def send(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def close(self) -> None:
        for info in self.infos:
            info.wait_for_publish(30)
            assert info.is_published()
        self.client.disconnect()
        self.client.loop_stop()


async def until(
    condition: Callable[[], bool],
    what: str,
    timeout: float = 30,
    task: asyncio.Task[None] | None = None,
) -> None:
    """Poll `condition` until it holds; fail at the deadline, or at once if `task` died."""
    deadline = time.monotonic() + timeout
    while not condition():
        if task is not None and task.done():
            task.result()  # raises what stopped it
            pytest.fail(f"the subscriber stopped while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # the subscriber works in its task; look again


class Gate:
    """The real StoreWriter, behind a switch that makes the store refuse writes (StoreError,
    as the writer raises for a full disk) or refuse certain readings (any other error)."""

    def __init__(self, writer: StoreWriter) -> None:
        self.writer = writer
        self.failing = False
        self.poison_value: float | None = None
        self.calls = 0
        self.refused = 0

    async def __call__(self, batch: ReadingBatch) -> None:
        self.calls += 1
        if self.failing:
            self.refused += 1
            raise StoreError("disk full (test)")
        if self.poison_value is not None and (batch.value == self.poison_value).any():
            raise ValueError(f"cannot store {self.poison_value}")
        await self.writer(batch)


async def start(sub: MqttSubscriber) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await sub.wait_connected(10)
    return stop, task


async def register_session(site, url: str, tmp_path: Path) -> None:
    """Connect once as the site's client (creating its persistent session), then leave."""
    sub = MqttSubscriber(site, url, Gate(None), DeadLetters(tmp_path / "reg.jsonl"), Availability())  # type: ignore[arg-type]
    stop, task = await start(sub)
    stop.set()
    await task


def probes_stored(store: DuckDBStore) -> int:
    return len(store.read_raw("P", "power", 0, END_MS))


# --- every message has an outcome -----------------------------------------------------------


async def test_the_hostile_corpus_never_stops_ingest(mosquitto, tmp_path):
    """(b) of the brief: hostile messages interleaved with valid probes against a real broker,
    subscriber and DuckDB store: 0 ingest stops, every probe stored once, every hostile message
    dead-lettered with its reason, and everything acknowledged (nothing comes back after a
    reconnect)."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, availability), dead, availability)
    stop, task = await start(sub)

    now_ms = int(time.time() * 1000)
    hostile = [
        (f"{prefix}/{HOSTILE_TOPIC[c.fmt]}", c.payload, c.reason)
        for c in corpus(now_ms)
        if c.reason
    ]
    odd_topics = ["ü ñ 中", "a b", "x" * 200, "emoji😀", "..", "ODD-known-not"]
    hostile += [
        (f"{prefix}/odd/{t}/SENSOR", valid_probe(0, now_ms), "unknown meter") for t in odd_topics
    ]
    pub = Pub(mosquitto.port)
    for i, (topic, payload, _reason) in enumerate(hostile):
        pub.send(topic, payload)
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
    pub.send(f"{prefix}/odd/known/SENSOR", valid_probe(0, now_ms))  # a routed meter
    pub.close()
    sent = len(pub.infos)

    await until(
        lambda: availability.counters["mqtt_messages"] >= sent, "every message acked", task=task
    )
    assert not task.done()  # 0 ingest stops
    stop.set()
    await task

    assert probes_stored(store) == len(hostile)  # every probe, once
    first = store.read_raw("P", "power", 0, END_MS)
    assert first.value[0] == pytest.approx(1.0)  # 1000 W
    assert len(store.read_raw("ODD-known", "power", 0, END_MS)) == 1
    for meter in ("H-flat_ms", "H-flat_s", "H-tasmota"):
        assert len(store.read_raw(meter, "power", 0, END_MS)) == 0
    letters = dead.read(limit=10_000)
    assert len(letters) == len(hostile) == dead.count
    for (topic, payload, reason), letter in zip(hostile, letters, strict=True):
        assert letter["source"] == topic
        assert reason in letter["reason"], (letter["reason"], reason)
        assert letter["payload_bytes"] == len(payload)
    assert availability.counters["mqtt_dead_letters"] == len(hostile)
    assert availability.counters.get("mqtt_parser_failures", 0) == 0

    # nothing is redelivered: after a reconnect only the new sentinel arrives
    again = Availability()
    sub2 = MqttSubscriber(site, mosquitto.url, StoreWriter(store, again), dead, again)
    stop2, task2 = await start(sub2)
    pub = Pub(mosquitto.port)
    pub.send(f"{prefix}/probe", valid_probe(len(hostile) + 1, now_ms))
    pub.close()
    await until(lambda: probes_stored(store) == len(hostile) + 1, "the sentinel", task=task2)
    await until(lambda: again.counters["mqtt_messages"] == 1, "the sentinel's ack", task=task2)
    stop2.set()
    await task2
    assert again.counters["mqtt_messages"] == 1
    assert dead.count == len(hostile)
    store.close()


POISON = [
    b"[" * 30_000 + b"]" * 30_000,  # RecursionError in json.loads
    b'{"ts": 1767225600000, "p": ' + b"1" * 5000 + b"}",  # ValueError: int digits
    b'{"ts": 1e308, "p": 1}',  # OverflowError in epoch_ms arithmetic (epoch_s: 1e20)
    b'{"ts": 1e17, "p": 1}',  # year 3170843: overflowed the store
]


async def test_a_poison_message_redelivered_after_a_restart_does_not_stop_ingest(
    mosquitto, tmp_path
):
    """Was: the poison message killed the subscriber task; the broker redelivered it on restart
    and ingest stopped again, for good. Here the first run can write neither readings (the
    store refuses) nor dead letters (their path is a directory), so it acknowledges nothing and
    the second run gets every message again, poison first."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    dead = DeadLetters(tmp_path / "dead.jsonl")
    await register_session(site, mosquitto.url, tmp_path)
    now_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    for i, poison in enumerate(POISON):
        pub.send(f"{prefix}/h/ms", poison)
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
    pub.close()

    first = Availability()
    gate = Gate(StoreWriter(store, first))
    gate.failing = True
    unwritable = tmp_path / "dead-letters-is-a-directory"
    unwritable.mkdir()
    sub = MqttSubscriber(site, mosquitto.url, gate, DeadLetters(unwritable), first)
    stop, task = await start(sub)
    await until(lambda: first.counters["mqtt_ingest_paused"] > 0, "the pause", task=task)
    assert not task.done()
    stop.set()
    await task
    assert probes_stored(store) == 0
    assert first.counters["mqtt_messages"] == 0  # nothing acked

    second = Availability()
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, second), dead, second)
    stop, task = await start(sub)
    await until(lambda: probes_stored(store) == len(POISON), "the probes", task=task)
    await until(lambda: second.counters["mqtt_messages"] == 2 * len(POISON), "acks", task=task)
    stop.set()
    await task
    reasons = [r["reason"] for r in dead.read()]
    assert [r.split(":")[0] for r in reasons] == [
        "nested too deep",
        "number out of range",
        "implausible timestamp",
        "implausible timestamp",
    ]
    store.close()


async def test_a_parser_bug_dead_letters_the_message_and_ingest_goes_on(
    mosquitto, tmp_path, caplog
):
    """Any exception out of the parser, not only PayloadError, gives the message an outcome.
    (A parser with a bug is passed in: the real one no longer raises anything else.)"""

    def buggy(payload: bytes, *args: Any) -> list[Record]:
        if payload == b'{"boom": 1}':
            raise RecursionError("maximum recursion depth exceeded")
        return parse_records(payload, *args)

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(
        site, mosquitto.url, StoreWriter(store, availability), dead, availability, parse=buggy
    )
    stop, task = await start(sub)
    now_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    for i in range(20):
        pub.send(f"{prefix}/h/ms", b'{"boom": 1}')
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
    pub.close()
    with caplog.at_level(logging.WARNING, logger="epcmon.mqtt"):
        await until(lambda: availability.counters["mqtt_messages"] == 40, "acks", task=task)
    stop.set()
    await task
    assert probes_stored(store) == 20
    assert dead.count == 20
    assert (
        dead.read()[0]["reason"]
        == "parser failed: RecursionError: maximum recursion depth exceeded"
    )
    assert availability.counters["mqtt_parser_failures"] == 20
    logged = [r for r in caplog.records if "payload parser failed" in r.getMessage()]
    assert len(logged) == 1  # once, with its traceback, not once per message
    assert logged[0].exc_info is not None
    store.close()


async def test_readings_the_store_refuses_are_isolated_and_the_rest_stored(mosquitto, tmp_path):
    """A sink error that is not StoreError means the run itself is bad: written again message
    by message, the poison ones become dead letters, the rest are stored, all acked."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    gate = Gate(StoreWriter(store, availability))
    gate.poison_value = 0.666  # 666 W
    sub = MqttSubscriber(site, mosquitto.url, gate, dead, availability)
    now_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    await register_session(site, mosquitto.url, tmp_path)  # queue all, so they come as one run
    poison = json.dumps({"ts": now_ms - 5000, "p": 666}).encode()
    for i in range(30):
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
        if i % 10 == 0:
            pub.send(f"{prefix}/h/ms", poison)
    pub.close()
    stop, task = await start(sub)
    await until(lambda: availability.counters["mqtt_messages"] == 33, "acks", task=task)
    stop.set()
    await task
    assert probes_stored(store) == 30
    assert dead.count == 3
    assert {r["reason"] for r in dead.read()} == {"store refused: ValueError: cannot store 0.666"}
    assert availability.counters["mqtt_store_rejects"] == 3
    store.close()


# --- store faults pause ingest and never lose an ack ----------------------------------------


async def test_a_store_fault_pauses_ingest_and_it_resumes_by_itself(mosquitto, tmp_path, caplog):
    """The store refuses writes for longer than the hold: the subscriber acks nothing,
    disconnects, probes, reconnects when the store is back, and the broker redelivers:
    every message stored exactly once; one log line for the pause, one for the resumption."""
    from core.health import Health

    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url, buffer_messages=20)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    health = Health()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    gate = Gate(StoreWriter(store, availability))
    sub = MqttSubscriber(
        site, mosquitto.url, gate, dead, availability, health=health, hold_s=0.3, retry_max_s=0.2
    )
    caplog.set_level(logging.INFO, logger="epcmon.mqtt")
    stop, task = await start(sub)
    now_ms = int(time.time() * 1000)
    gate.failing = True
    pub = Pub(mosquitto.port)
    for i in range(100):  # more than the buffer: paho's thread waits in on_message
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
    pub.send(f"{prefix}/h/ms", b"not json")
    pub.close()
    await until(lambda: sub._link is None, "the deliberate disconnect", task=task)
    assert health.is_degraded("mqtt-ingest")
    assert "disk full (test)" in health.snapshot().conditions["mqtt-ingest"].detail
    refused = gate.refused
    await until(lambda: gate.refused >= refused + 3, "probes of the store", task=task)
    assert probes_stored(store) == 0
    assert availability.counters["mqtt_messages"] == 0  # nothing acked while paused
    gate.failing = False
    await until(lambda: probes_stored(store) == 100, "every message stored", task=task)
    await until(lambda: availability.counters["mqtt_messages"] >= 101, "every ack", task=task)
    stop.set()
    await task
    assert not health.is_degraded("mqtt-ingest")
    assert availability.counters["mqtt_ingest_paused"] == 1
    assert availability.counters["mqtt_ingest_resumed"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("MQTT ingest paused" in m for m in messages) == 1
    assert sum("MQTT ingest resumed" in m for m in messages) == 1
    assert any("not JSON" in r["reason"] for r in dead.read())
    store.close()


async def test_messages_held_during_a_store_fault_stay_with_the_broker(mosquitto, tmp_path):
    """Stopped while paused, the collector has acknowledged nothing: a new one gets every
    message from the broker's session and stores each once."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url, buffer_messages=20)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    gate = Gate(StoreWriter(store, availability))
    gate.failing = True
    sub = MqttSubscriber(site, mosquitto.url, gate, dead, availability, hold_s=5)
    stop, task = await start(sub)
    now_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    for i in range(60):
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
    pub.close()
    await until(lambda: gate.refused >= 2, "a retry while held", task=task)
    stop.set()  # while still connected and holding
    await task
    assert availability.counters["mqtt_messages"] == 0

    again = Availability()
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, again), dead, again)
    stop, task = await start(sub)
    await until(lambda: probes_stored(store) == 60, "every message stored", task=task)
    stop.set()
    await task
    assert again.counters["mqtt_messages"] == 60
    store.close()


async def test_ids_of_a_lost_connection_are_never_acked_on_the_next(mosquitto, tmp_path):
    """The broker goes away while a run is held (store failing): the run is committed once the
    store is back, but its message ids belong to the lost connection, so it is not acked on the
    new one; the broker redelivers it, the store takes it once, and that copy is acked."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    gate = Gate(StoreWriter(store, availability))
    gate.failing = True
    sub = MqttSubscriber(site, mosquitto.url, gate, dead, availability, hold_s=5)
    stop, task = await start(sub)
    now_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    for i in range(30):
        pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
    pub.close()
    await until(lambda: gate.refused >= 1, "a held run", task=task)
    await asyncio.to_thread(mosquitto.stop)
    await until(lambda: not sub._connected.is_set(), "the lost connection", task=task)
    gate.failing = False
    await until(
        lambda: availability.counters["mqtt_unacked_after_reconnect"] > 0,
        "the held run committed without an ack",
        task=task,
    )
    await asyncio.to_thread(mosquitto.start)
    await until(lambda: availability.counters["mqtt_messages"] == 30, "the redelivery", task=task)
    stop.set()
    await task
    assert probes_stored(store) == 30
    store.close()


# --- restartable ----------------------------------------------------------------------------


class FailingOnce(DeadLetters):
    """Dead letters whose first write hits a bug (not an OSError): `run()` must raise it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.broken = True

    def write(self, letters: Any) -> None:
        if self.broken:
            self.broken = False
            raise RuntimeError("a bug in the dead letters")
        super().write(letters)


async def test_run_can_be_called_again_after_it_raised(mosquitto, tmp_path):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = FailingOnce(tmp_path / "dead.jsonl")
    sub = MqttSubscriber(site, mosquitto.url, StoreWriter(store, availability), dead, availability)
    stop, task = await start(sub)
    now_ms = int(time.time() * 1000)
    pub = Pub(mosquitto.port)
    pub.send(f"{prefix}/h/ms", b"not json")
    pub.send(f"{prefix}/probe", valid_probe(0, now_ms))
    pub.close()
    with pytest.raises(RuntimeError, match="a bug in the dead letters"):
        await asyncio.wait_for(task, 20)  # not swallowed: the supervisor sees it
    assert availability.counters["mqtt_messages"] == 0

    stop, task = await start(sub)  # the same object, run again: the broker redelivers
    await until(lambda: probes_stored(store) == 1, "the probe", task=task)
    await until(lambda: availability.counters["mqtt_messages"] == 2, "acks", task=task)
    stop.set()
    await task
    assert dead.count == 1

    stop, task = await start(sub)  # and again after a clean stop
    pub = Pub(mosquitto.port)
    pub.send(f"{prefix}/probe", valid_probe(1, now_ms))
    pub.close()
    await until(lambda: probes_stored(store) == 2, "the second probe", task=task)
    stop.set()
    await task
    store.close()


# --- dead letters on a full file system ---------------------------------------------------


async def test_dead_letters_on_a_full_disk_hold_the_ack_until_there_is_room(mosquitto, tmp_path):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _hostile_site(prefix, mosquitto.url)
    store = DuckDBStore(tmp_path / "s.duckdb")
    with small_filesystem(tmp_path / "small", 256) as small:
        availability = Availability()
        dead = DeadLetters(small / "dead.jsonl")
        sub = MqttSubscriber(
            site, mosquitto.url, StoreWriter(store, availability), dead, availability,
            hold_s=0.3, retry_max_s=0.2,
        )  # fmt: skip
        filler = fill(small)
        stop, task = await start(sub)
        now_ms = int(time.time() * 1000)
        pub = Pub(mosquitto.port)
        for i in range(5):
            pub.send(f"{prefix}/h/ms", b'{"ts": 0, "p": 1}')
            pub.send(f"{prefix}/probe", valid_probe(i, now_ms))
        pub.close()
        await until(
            lambda: availability.counters["mqtt_ingest_paused"] == 1, "the pause", task=task
        )
        assert availability.counters["mqtt_messages"] == 0  # not acked: not written
        filler.unlink()
        await until(
            lambda: availability.counters["mqtt_ingest_resumed"] == 1, "resumption", task=task
        )
        await until(lambda: availability.counters["mqtt_messages"] >= 10, "every ack", task=task)
        stop.set()
        await task
        assert probes_stored(store) == 5
        reasons = [r["reason"] for r in dead.read()]
        assert len(reasons) >= 5  # a run held through the fault may be written twice
        assert all("before the earliest plausible time" in r for r in reasons)
        for line in (small / "dead.jsonl").read_bytes().splitlines():
            json.loads(line)  # no torn record from the failed writes
    store.close()

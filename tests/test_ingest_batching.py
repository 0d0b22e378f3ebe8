"""MQTT ingest batched by time and size (issue 16): the `Inbox` between paho's thread and the
loop, and the subscriber against a real Mosquitto: a lone message lands within the linger,
a backlog is committed in batches bounded by messages, acks only after commit, in order."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.availability import Availability
from collectors.mqtt.inbox import Inbox
from collectors.mqtt.lean import LeanClient
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import parse_site
from core.readings import ReadingBatch
from storage.deadletters import DeadLetters
from storage.duckdb_store import DuckDBStore

T0 = 1_767_225_600_000


def _inbox(**kw: Any) -> Inbox[int]:
    opts: dict[str, Any] = {
        "capacity": 1_000,
        "linger_s": 0.0,
        "max_messages": 1_000,
        "max_bytes": 1 << 20,
    }
    return Inbox(asyncio.get_running_loop(), **(opts | kw))


async def _drain(inbox: Inbox[int], n: int) -> list[list[int]]:
    stop = asyncio.Event()
    batches: list[list[int]] = []
    while sum(map(len, batches)) < n:
        batch = await asyncio.wait_for(inbox.take(stop), 5)
        assert batch is not None
        batches.append(batch)
        inbox.release(len(batch))
    return batches


async def test_batches_are_cut_at_max_messages_in_order():
    inbox = _inbox(max_messages=10, linger_s=0.05)
    for i in range(35):
        assert inbox.put(i, 10)
    batches = await _drain(inbox, 35)
    assert [len(b) for b in batches] == [10, 10, 10, 5]
    assert [i for b in batches for i in b] == list(range(35))


async def test_batches_are_cut_at_max_bytes_but_take_one_message_at_least():
    inbox = _inbox(max_bytes=100)
    for i, size in enumerate([30, 30, 30, 30, 500, 30]):
        inbox.put(i, size)
    batches = await _drain(inbox, 6)
    assert batches == [[0, 1, 2], [3], [4], [5]]


async def test_a_lone_message_waits_out_the_linger_and_no_longer():
    inbox = _inbox(linger_s=0.2)
    stop = asyncio.Event()
    taking = asyncio.create_task(inbox.take(stop))
    await asyncio.sleep(0)  # the consumer waits for a first message
    put_at = time.monotonic()
    threading.Thread(target=inbox.put, args=(1, 10)).start()
    batch = await asyncio.wait_for(taking, 5)
    took = time.monotonic() - put_at
    assert batch == [1]
    assert 0.18 <= took < 1.5, took


async def test_a_full_batch_ends_the_linger_at_once():
    inbox = _inbox(linger_s=30.0, max_messages=50)
    stop = asyncio.Event()
    taking = asyncio.create_task(inbox.take(stop))

    def produce() -> None:
        for i in range(50):
            inbox.put(i, 10)

    threading.Thread(target=produce).start()
    batch = await asyncio.wait_for(taking, 5)  # not 30 s
    assert batch == list(range(50))


async def test_stop_ends_a_wait_and_a_linger():
    inbox = _inbox(linger_s=30.0)
    stop = asyncio.Event()
    waiting = asyncio.create_task(inbox.take(stop))
    await asyncio.sleep(0)  # waiting for a first message
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is None
    inbox.put(1, 10)
    stop2 = asyncio.Event()
    lingering = asyncio.create_task(inbox.take(stop2))
    await asyncio.sleep(0)  # lingering
    stop2.set()
    assert await asyncio.wait_for(lingering, 5) is None


async def test_a_full_inbox_blocks_the_producer_until_released_and_close_unblocks_it():
    fulls: list[int] = []
    inbox = _inbox(capacity=3, on_full=lambda: fulls.append(1))
    for i in range(3):
        assert inbox.put(i, 10)
    results: list[bool] = []
    producer = threading.Thread(target=lambda: results.append(inbox.put(3, 10)))
    producer.start()
    await _until(lambda: fulls == [1])  # said just before it waits for room
    assert producer.is_alive()  # blocked: paho stops reading the socket
    # a full buffer ends the linger: nothing more can come until something is released
    batch = await asyncio.wait_for(_inbox_take(inbox), 5)
    assert batch == [0, 1, 2]
    inbox.release(1)
    await asyncio.to_thread(producer.join, 5)
    assert results == [True]
    blocked = threading.Thread(target=lambda: results.append(inbox.put(4, 10)))
    blocked.start()  # held: 2 of the batch + message 3 = 3, full again
    await _until(lambda: fulls == [1, 1])
    assert blocked.is_alive()
    inbox.close()
    await asyncio.to_thread(blocked.join, 5)
    assert results == [True, False]  # not taken: unacknowledged, the broker sends it again


async def _inbox_take(inbox: Inbox[int]) -> list[int] | None:
    return await inbox.take(asyncio.Event())


# --- the subscriber against Mosquitto -----------------------------------------------------


def _site(prefix: str, url: str, protocol: str, **mqtt_keys: Any):
    return parse_site(
        {
            "site": {"id": "t", "name": "T", "latitude": 31, "longitude": 116},
            "mqtt": {
                "url": url,
                "client_id": f"test-{prefix}",
                "protocol": protocol,
                **mqtt_keys,
            },
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 100}],
            "payload_formats": {
                "flat": {
                    "timestamp": "/ts",
                    "timestamp_format": "epoch_ms",
                    "fields": [
                        {"pointer": "/p", "quantity": "power", "unit": "W"},
                        {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
                    ],
                }
            },
            "meters": [
                {
                    "id": "M1",
                    "kind": "electricity",
                    "building": "b",
                    "mqtt": {"topic": f"{prefix}/m1", "format": "flat"},
                }
            ],
        }
    )


def _publish(port: int, topic: str, n: int, start: int = 0) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1_000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [
        pub.publish(topic, json.dumps({"ts": T0 + i * 1000, "p": 5, "e": i}), qos=1)
        for i in range(start, start + n)
    ]
    for info in infos:
        info.wait_for_publish(30)
        assert info.is_published()
    pub.disconnect()
    pub.loop_stop()


class Recorder:
    """The real writer, noting each commit (in messages: two readings each) in `events`."""

    def __init__(self, writer: StoreWriter, events: list[tuple[str, int]]) -> None:
        self.writer = writer
        self.events = events

    async def __call__(self, batch: ReadingBatch) -> None:
        await self.writer(batch)
        self.events.append(("commit", len(batch) // 2))


async def _until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)  # the subscriber works in its task; look again


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_lone_message_is_stored_and_acked_within_the_linger(mosquitto, tmp_path, protocol):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _site(prefix, mosquitto.url, protocol, batch_linger_ms=300, batch_max_messages=5_000)
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    events: list[tuple[str, int]] = []
    sub = MqttSubscriber(
        site,
        mosquitto.url,
        Recorder(StoreWriter(store, availability), events),
        DeadLetters(tmp_path / "dead.jsonl"),
        availability,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await sub.wait_connected(10)
    sent_at = time.monotonic()
    await asyncio.to_thread(_publish, mosquitto.port, f"{prefix}/m1", 1)
    await _until(lambda: availability.counters["mqtt_messages"] == 1, timeout=10)
    took = time.monotonic() - sent_at
    stop.set()
    await task
    assert events == [("commit", 1)]
    # waited for company (the linger), then committed alone: not 5,000 messages' worth
    assert 0.25 <= took < 3.0, took
    assert len(store.read_raw("M1", "power", T0, T0 + 10**9)) == 1
    store.close()


async def test_a_backlog_is_committed_in_bounded_batches_acked_after_commit_in_order(
    mosquitto, tmp_path
):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    site = _site(
        prefix,
        mosquitto.url,
        "5",
        batch_linger_ms=50,
        batch_max_messages=400,
        buffer_messages=2_000,
    )
    store = DuckDBStore(tmp_path / "s.duckdb")
    availability = Availability()
    dead = DeadLetters(tmp_path / "dead.jsonl")
    events: list[tuple[str, int]] = []

    async def run_until(count: int, spy: bool) -> None:
        sub = MqttSubscriber(
            site,
            mosquitto.url,
            Recorder(StoreWriter(store, availability), events),
            dead,
            availability,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sub.run(stop))
        await sub.wait_connected(10)
        if spy:
            assert sub._link is not None
            client = sub._link.client
            assert isinstance(client, LeanClient)
            ack_many = client.ack_many

            def noted_acks(mids: Sequence[int]) -> None:
                events.extend(("ack", mid) for mid in mids)
                ack_many(mids)

            client.ack_many = noted_acks  # type: ignore[method-assign]
        await _until(lambda: availability.counters["mqtt_messages"] >= count)
        stop.set()
        await task

    await run_until(0, spy=False)  # the persistent session and its subscription
    n = 3_000
    await asyncio.to_thread(_publish, mosquitto.port, f"{prefix}/m1", n)
    await run_until(n, spy=True)  # the broker sends the backlog as fast as we take it

    commits = [size for kind, size in events if kind == "commit"]
    assert sum(commits) == n
    assert max(commits) == 400  # under load a batch fills up to batch_max_messages
    assert len(commits) <= n // 400 + 5  # a few transactions, not one per message
    acked = [mid for kind, mid in events if kind == "ack"]
    assert len(acked) == n
    assert acked == sorted(acked)  # in receive order (the broker numbers them in order)
    committed = 0
    acks = 0
    for kind, size in events:  # never an ack for a message not yet committed
        if kind == "commit":
            committed += size
        else:
            acks += 1
            assert acks <= committed
    assert len(store.read_raw("M1", "energy_import", T0, T0 + 10**9)) == n
    store.close()
    # the broker took every ack: back in the session, the next message is a new one, not a
    # redelivery of one of those (unacknowledged messages are sent again first)
    await asyncio.to_thread(_publish, mosquitto.port, f"{prefix}/m1", 1, n)
    first = await asyncio.to_thread(_first_message, mosquitto.port, f"test-{prefix}")
    assert json.loads(first)["e"] == n


def _first_message(port: int, client_id: str) -> bytes:
    got: list[bytes] = []
    arrived = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        got.append(message.payload)
        arrived.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    try:
        assert arrived.wait(20), "no message from the session"
    finally:
        c.disconnect()
        c.loop_stop()
    return got[0]

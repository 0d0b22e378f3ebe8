"""The MQTT subscriber against a real Mosquitto: MQTT 5, QoS 1, ack after commit, dead letters,
duplicates stored once."""

from __future__ import annotations

import asyncio
import json
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.availability import Availability
from collectors.deadletters import DeadLetters
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import parse_site
from storage.duckdb_store import DuckDBStore


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

"""bench.api's load of the production shape: the API served by the `Service` of `epcmon run`
(role `all`: the MQTT collector, the recompute, the alarms and the API on one event loop,
over one DuckDB store), while a publisher process feeds the collector through a real
Mosquitto at the ingest benchmark's rate.

The reference site's Modbus gateways are not polled (no simulators run here): the Service
gets a shard that owns none of them, so the only collector is the MQTT subscriber, which
subscribes to 100 extra meters publishing two readings a message (bench.ingest_mqtt's
payloads).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

PREFIX = "bench/meter"
METERS = 100


def ingest_site_data(data: dict[str, Any], mqtt_port: int) -> dict[str, Any]:
    """The site's data (a `SiteConfig` dump) with the MQTT broker and 100 bench meters."""
    data["mqtt"].update(
        url=f"mqtt://127.0.0.1:{mqtt_port}",
        client_id="bench-api",
        shared_group="bench",  # the Service's shard (see `shard_without_gateways`) needs one
        buffer_messages=20_000,
    )
    data["payload_formats"]["bench-flat"] = {
        "timestamp": "/ts",
        "timestamp_format": "epoch_ms",
        "fields": [
            {"pointer": "/p", "quantity": "power", "unit": "W"},
            {"pointer": "/e", "quantity": "energy_import", "unit": "kWh"},
        ],
    }
    building = data["buildings"][0]["id"]
    data["meters"] += [
        {
            "id": f"BENCH-{i:03d}",
            "kind": "electricity",
            "building": building,
            "mqtt": {"topic": f"{PREFIX}/{i:03d}", "format": "bench-flat"},
        }
        for i in range(METERS)
    ]
    return data


def shard_without_gateways(gateway_ids: list[str]) -> tuple[int, int]:
    """(index, count) of a shard that owns none of the gateways (`epcmon.runtime.Shard`
    hashes ids with crc32): count = gateways + 1 leaves a slot free."""
    count = len(gateway_ids) + 1
    taken = {zlib.crc32(g.encode()) % count for g in gateway_ids}
    return next(i for i in range(count) if i not in taken) + 1, count


def serve_service(store_path: str, keys_path: str, port: int, mqtt_port: int) -> None:
    from api.keys import KeyStore
    from bench.api import site_for
    from core.config import SiteConfig
    from epcmon.runtime import Service, Shard, stop_on_signals
    from storage.duckdb_store import DuckDBStore

    site: SiteConfig = site_for(Path(store_path), Path(keys_path), port, mqtt_port=mqtt_port)
    index, count = shard_without_gateways([g.id for g in site.gateways])

    async def main() -> None:
        store = DuckDBStore(store_path)
        service = Service(
            site,
            store,
            Path(store_path).parent,
            role="all",
            shard=Shard(index, count),
            keys=KeyStore(keys_path),
        )
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            await service.start()
            await service.run(stop)
        finally:
            service.close()
            store.close()

    asyncio.run(main())


def publish_paced(mqtt_port: int, rate: int) -> None:
    """QoS 1 messages at `rate` per second, until killed (a process of its own)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-api-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", mqtt_port)
    c.loop_start()
    t0_ms = int(time.time() * 1000) // 1000 * 1000
    tick = 0.02
    per_tick = max(1, round(rate * tick))
    sent = 0
    start = time.monotonic()
    while True:
        for _ in range(per_tick):
            i = sent
            payload = json.dumps(
                {"ts": t0_ms + (i // METERS) * 1000, "p": 1000 + i % 97, "e": 10 + i * 0.001}
            )
            c.publish(f"{PREFIX}/{i % METERS:03d}", payload, qos=1)
            sent += 1
        ahead = start + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing: the publisher keeps to `rate`, it waits for nothing


def ingested(base: str, key: str) -> float:
    """Messages the collector has committed (its `mqtt_messages` counter, from /metrics)."""
    request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    m = re.search(
        r'^epcmon_collector_events_total\{event="mqtt_messages"\} ([\d.e+]+)$', text, re.M
    )
    if m is None:
        m = re.search(r'^epcmon_collector_events\{event="mqtt_messages"\} ([\d.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0

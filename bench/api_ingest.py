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

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from bench.api import ANCHOR, ROOT, cases, measure, median, profile, report, server
from core.net import free_port

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


def serve_service(
    store_path: str, keys_path: str, port: int, mqtt_port: int, role: str = "all"
) -> None:
    """`epcmon run`'s Service (role `all`: collectors and API in one process; `collector`:
    the collectors only, which write how many messages they committed to
    `<store>.ingested` when stopped)."""
    from api.keys import KeyStore
    from bench.api import site_for
    from core.config import SiteConfig
    from epcmon.collecting import Shard
    from epcmon.runtime import Service, stop_on_signals
    from storage.duckdb_store import DuckDBStore

    site: SiteConfig = site_for(Path(store_path), Path(keys_path), port, mqtt_port=mqtt_port)
    index, count = shard_without_gateways([g.id for g in site.gateways])

    async def main() -> None:
        store = DuckDBStore(store_path)
        service = Service(
            site,
            store,
            Path(store_path).parent,
            role="all" if role == "all" else "collector",
            shard=Shard(index, count),
            keys=KeyStore(keys_path),
        )
        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            await service.start()
            await service.run(stop)
        finally:
            if service.collectors is not None:
                counted = service.collectors.availability.counters["mqtt_messages"]
                Path(store_path + ".ingested").write_text(str(counted))
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
    tick = 0.02
    per_tick = max(1, round(rate * tick))
    sent = 0
    start = time.monotonic()
    while True:
        # now's time (the collector refuses readings from the future) and a counter that
        # only rises per meter, as a real meter's would
        now_ms = int(time.time() * 1000)
        for k in range(per_tick):
            i = sent
            payload = json.dumps(
                {"ts": now_ms + k // METERS, "p": 1000 + i % 97, "e": 10 + i * 0.001}
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


def anchor_of(figures: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """The anchor's medians, taken out of `figures`: measured under the same load, beside
    the API (a bare FastAPI process of its own), so the ratio is to what this machine gave
    a minimal FastAPI route at that moment."""
    rows = figures.pop(ANCHOR)
    return {f: median(rows, f) for f in ("rps", "p50", "p99")}


def ingest_case(
    tmp: str,
    store: Path,
    keys: Path,
    key: str,
    args: argparse.Namespace,
    seconds: int,
    runs: int,
) -> bool:
    from bench.ingest_mqtt import start_broker

    (Path(tmp) / "broker").mkdir(exist_ok=True)
    broker, mqtt_port = start_broker(Path(tmp) / "broker")
    port, bare_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with (
            server(["--serve-bare", str(bare_port)], bare_port),
            server(
                ["--serve-service", str(store), str(keys), str(port), str(mqtt_port), "all"], port
            ) as api,
        ):
            publisher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.api",
                    "--publish",
                    str(mqtt_port),
                    str(args.ingest_rate),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 30
                while ingested(base, key) == 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the collector stored nothing in 30 s")
                    time.sleep(0.2)  # wait for the collector to subscribe and commit
                n0, t0 = ingested(base, key), time.monotonic()
                print(
                    f"\nwith the collectors ingesting, {args.ingest_rate:,} messages/s published:"
                )
                urls = [(ANCHOR, f"http://127.0.0.1:{bare_port}/bare"), *cases(f"{base}/api/v1")]
                figures = measure(urls, key, seconds, args.connections, runs)
                rate = (ingested(base, key) - n0) / (time.monotonic() - t0)
                if args.profile:
                    profile(
                        api.pid, cases(f"{base}/api/v1"), key, min(seconds, 6), args.connections
                    )
            finally:
                publisher.terminate()
                publisher.wait(10)
    finally:
        broker.terminate()
        broker.wait(10)
    return report(
        f"the API in epcmon run's Service while its MQTT collector stored {rate:,.0f} messages/s "
        f"({args.ingest_rate:,} published), medians",
        figures,
        anchor_of(figures),
    )


def split_case(
    tmp: str,
    store: Path,
    keys: Path,
    key: str,
    args: argparse.Namespace,
    seconds: int,
    runs: int,
) -> bool:
    """The API (`--role api`) and the collector (`--role collector`) in processes of their
    own. They cannot share a DuckDB file (one process owns it), so the collector writes to a
    file of its own here, standing in for the InfluxDB both would share in production: the
    load on the machine is the same, the GIL is not shared."""
    from bench.ingest_mqtt import start_broker

    (Path(tmp) / "broker-split").mkdir(exist_ok=True)
    broker, mqtt_port = start_broker(Path(tmp) / "broker-split")
    collector_store = Path(tmp) / "collector.duckdb"
    port, collector_port, bare_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        with (
            server(["--serve-bare", str(bare_port)], bare_port),
            server(["--serve", str(store), str(keys), str(port)], port),
        ):
            collector = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.api",
                    "--serve-service",
                    str(collector_store),
                    str(keys),
                    str(collector_port),
                    str(mqtt_port),
                    "collector",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            publisher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.api",
                    "--publish",
                    str(mqtt_port),
                    str(args.ingest_rate),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            t0 = time.monotonic()
            try:
                print(
                    f"\nAPI and collector in separate processes, {args.ingest_rate:,} messages/s published:"
                )
                time.sleep(3)  # the collector subscribes and reaches its rate (nothing to poll)
                urls = [(ANCHOR, f"http://127.0.0.1:{bare_port}/bare"), *cases(base)]
                figures = measure(urls, key, seconds, args.connections, runs)
            finally:
                publisher.terminate()
                publisher.wait(10)
                collector.terminate()
                collector.wait(30)
            counted = Path(str(collector_store) + ".ingested")
            rate = float(counted.read_text()) / (time.monotonic() - t0) if counted.exists() else 0.0
    finally:
        broker.terminate()
        broker.wait(10)
    return report(
        f"the API (--role api) beside a collector process (--role collector) that stored "
        f"{rate:,.0f} messages/s ({args.ingest_rate:,} published), medians",
        figures,
        anchor_of(figures),
    )

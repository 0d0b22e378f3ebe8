"""MQTT ingest end to end: Mosquitto -> collector -> DuckDB, manual ack after commit.

Figures printed beside their anchor, all from one run on the local Mosquitto:
- the ceiling: a bare paho QoS 1 subscriber that only counts (auto-ack);
- one collector process (`MqttSubscriber` -> `StoreWriter` -> `DuckDBStore`);
- two collector processes on a `$share` subscription (each with its own DuckDB file: one
  process owns a DuckDB file; with InfluxDB they would share one store).

Each consumer first registers its persistent session, goes offline, the publisher then
queues N QoS 1 messages in the broker (counting PUBACKs, i.e. what the broker really took),
and the consumers reconnect and drain: the time from the first to the last message received
is the sustained rate, independent of how fast one Python publisher can publish. Every run
checks that all N messages were stored (zero loss).

    python -m bench.ingest_mqtt [--messages N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.net import free_port

PREFIX = "bench/meter"
METERS = 100
GROUP = "bench"
END_MS = 4_102_444_800_000  # 2100-01-01


def start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
        "max_inflight_messages 0\nlog_dest none\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("mosquitto did not start")


def site_dict(port: int, client_id: str, shared: bool) -> dict[str, Any]:
    return {
        "site": {"id": "bench", "name": "bench", "latitude": 31.7, "longitude": 116.5},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{port}",
            "client_id": client_id,
            "shared_group": GROUP if shared else "",
            "buffer_messages": 20_000,
        },
        "buildings": [{"id": "b", "name": "b", "floor_area_m2": 1000}],
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
                "id": f"M{i:03d}",
                "kind": "electricity",
                "building": "b",
                "mqtt": {"topic": f"{PREFIX}/{i:03d}", "format": "flat"},
            }
            for i in range(METERS)
        ],
    }


def register_session(port: int, client_id: str, topic_filter: str) -> None:
    """Create a persistent session with the subscription, then go offline."""
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_subscribe = lambda *_args: subscribed.set()
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    c.subscribe(topic_filter, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("no SUBACK from the broker")
    c.disconnect()
    c.loop_stop()


def publish(port: int, n: int) -> int:
    """Publish n QoS 1 messages; return how many the broker acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = 1_767_225_600_000
    infos = []
    for i in range(n):
        payload = json.dumps(
            {"ts": t0 + (i // METERS) * 1000, "p": 1000 + i % 97, "e": 10 + i * 0.001}
        )
        infos.append(c.publish(f"{PREFIX}/{i % METERS:03d}", payload, qos=1))
    acked = 0
    for info in infos:
        info.wait_for_publish(60)
        acked += info.is_published()
    c.disconnect()
    c.loop_stop()
    return acked


def _connect_persistent(client: mqtt.Client, port: int) -> None:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)


def bare_counter(port: int, client_id: str, total: Any, goal: int, out: Any) -> None:
    """The ceiling: count messages, auto-ack, nothing else."""
    count = 0
    first = last = 0.0

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal count, first, last
        last = time.perf_counter()
        if count == 0:
            first = last
        count += 1
        with total.get_lock():
            total.value += 1

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_message = on_message
    _connect_persistent(c, port)
    c.loop_start()
    deadline = time.monotonic() + 180
    while total.value < goal and time.monotonic() < deadline:
        time.sleep(0.02)  # the network thread counts; this one only waits for the goal
    c.disconnect()
    c.loop_stop()
    out.put((count, count, first, last))


def collector(
    port: int, client_id: str, shared: bool, total: Any, goal: int, store_path: str, out: Any
) -> None:
    """One collector process: MqttSubscriber -> StoreWriter -> DuckDBStore, ack after commit."""
    from collectors.availability import Availability
    from collectors.mqtt.subscriber import MqttSubscriber
    from collectors.writer import StoreWriter
    from core.config import parse_site
    from core.readings import ReadingBatch
    from storage.deadletters import DeadLetters
    from storage.duckdb_store import DuckDBStore

    site = parse_site(site_dict(port, client_id, shared))
    store = DuckDBStore(store_path)
    availability = Availability()
    first: list[float] = []

    class CountingWriter(StoreWriter):
        async def __call__(self, batch: ReadingBatch) -> None:
            if not first:
                first.append(time.perf_counter())
            await super().__call__(batch)
            with total.get_lock():
                total.value += len(batch) // 2  # two readings per message

    async def main() -> float:
        sub = MqttSubscriber(
            site,
            site.mqtt.url,
            CountingWriter(store, availability),
            DeadLetters(Path(store_path).with_suffix(".dead")),
            availability,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(sub.run(stop))
        await sub.wait_connected(10)
        deadline = time.monotonic() + 180
        while total.value < goal and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the subscriber task does the work; wait for the goal
        last = time.perf_counter()
        stop.set()
        await task
        return last

    last = asyncio.run(main())
    stored = sum(len(store.read_raw(f"M{i:03d}", "power", 0, END_MS)) for i in range(METERS))
    store.close()
    out.put((availability.counters["mqtt_messages"], stored, first[0] if first else last, last))


def collect_results(queue: Any, procs: list[Any], timeout: float = 240) -> list[Any]:
    results: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=0.5))
        except Exception:  # queue.Empty: check that the workers are still alive
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"a worker failed (exit codes {[p.exitcode for p in procs]})"
                ) from None
    return results


def run_case(name: str, workers: int, n: int, kind: str, workdir: Path) -> dict[str, float]:
    broker, port = start_broker(workdir / name)
    ctx = mp.get_context("spawn")
    try:
        queue = ctx.Queue()
        shared = workers > 1
        ids = [f"{name}-{i}" for i in range(workers)]
        stores = [str(workdir / f"{cid}.duckdb") for cid in ids]
        # 1. sessions: each consumer subscribes once and goes offline
        if kind == "bare":
            topic = f"$share/{GROUP}/{PREFIX}/#" if shared else f"{PREFIX}/#"
            for cid in ids:
                register_session(port, cid, topic)
        else:
            zero = ctx.Value("q", 0)
            procs = [
                ctx.Process(target=collector, args=(port, cid, shared, zero, 0, path, queue))
                for cid, path in zip(ids, stores, strict=True)
            ]
            for p in procs:
                p.start()
            collect_results(queue, procs)
            for p in procs:
                p.join()
        # 2. the broker queues n messages for the offline sessions
        sent = publish(port, n)
        # 3. the consumers come back and drain
        total = ctx.Value("q", 0)
        if kind == "bare":
            procs = [
                ctx.Process(target=bare_counter, args=(port, cid, total, sent, queue))
                for cid in ids
            ]
        else:
            procs = [
                ctx.Process(target=collector, args=(port, cid, shared, total, sent, path, queue))
                for cid, path in zip(ids, stores, strict=True)
            ]
        for p in procs:
            p.start()
        results = collect_results(queue, procs)
        for p in procs:
            p.join(timeout=30)
        received = sum(r[0] for r in results)
        stored = sum(r[1] for r in results)
        active = [r for r in results if r[0]]
        first = min((r[2] for r in active), default=0.0)
        last = max((r[3] for r in active), default=0.0)
        rate = received / (last - first) if last > first else 0.0
        return {
            "sent": sent,
            "received": received,
            "stored": stored,
            "rate": rate,
            "split": [r[0] for r in results],
        }
    finally:
        broker.terminate()
        broker.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="500 messages: a smoke test")
    args = parser.parse_args(argv)
    n = 500 if args.quick else args.messages
    print(
        f"epcmon MQTT ingest benchmark: {n:,} QoS 1 messages (2 readings each), 2 cores, local Mosquitto"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = []
        for name, workers, kind in (
            ("ceiling", 1, "bare"),
            ("collector-1", 1, "collector"),
            ("collector-2", 2, "collector"),
        ):
            (workdir / name).mkdir()
            r = run_case(name, workers, n, kind, workdir)
            rows.append((name, workers, kind, r))
            loss = r["sent"] - (r["stored"] if kind == "collector" else r["received"])
            ok &= loss == 0 and r["sent"] == n
            print(
                f"  {name:12s} {workers} process(es): {r['rate']:>9,.0f} messages/s "
                f"({2 * r['rate']:,.0f} readings/s), sent {r['sent']:,}, "
                f"{'stored' if kind == 'collector' else 'received'} {r['stored'] if kind == 'collector' else r['received']:,}, "
                f"lost {loss}"
            )
    ceiling = rows[0][3]["rate"]
    print()
    print(f"{'measure':36s} {'messages/s':>12s} {'of ceiling':>11s}  target")
    for name, _w, _kind, r in rows:
        target = {
            "ceiling": "anchor ~20,000 messages/s",
            "collector-1": ">= 50 % of the ceiling, zero loss",
            "collector-2": "more than one process, zero loss",
        }[name]
        print(f"{name:36s} {r['rate']:>12,.0f} {r['rate'] / ceiling:>10.0%}  {target}")
    if not ok:
        print("LOSS: a run did not store every message it was sent", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

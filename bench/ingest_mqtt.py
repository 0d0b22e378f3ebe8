"""MQTT ingest end to end: Mosquitto -> collector -> DuckDB, manual ack after commit.

Figures printed beside their anchors, all from the same run on the local Mosquitto, on one
MQTT protocol version (`--protocol`, default `[mqtt] protocol`'s):
- broker: what Mosquitto delivers to a minimal fast client (`mosquitto_sub`, C libmosquitto,
  QoS 1, persistent session): the physical limit on this machine;
- paho: a bare paho-mqtt QoS 1 subscriber that only counts (auto-ack, stock client, no
  per-message lock or shared counter): the honest ceiling of a Python client;
- paho-lean: the same counter on `collectors.mqtt.lean.LeanClient` (the client the collector
  uses): the ceiling of our client without our pipeline;
- collector-1: one collector process (`MqttSubscriber` -> `StoreWriter` -> `DuckDBStore`),
  with the mean messages per store transaction;
- collector-2: two collector processes on a `$share` subscription (each with its own DuckDB
  file: one process owns a DuckDB file; with InfluxDB they would share one store).

Each consumer first registers its persistent session, goes offline, the publisher then
queues N QoS 1 messages in the broker (counting PUBACKs, i.e. what the broker really took),
and the consumers reconnect and drain: the time from the first to the last message received
is the sustained rate, independent of how fast one Python publisher can publish. Every run
checks that all N messages were stored (zero loss). `--runs` runs (3), medians printed.

    python -m bench.ingest_mqtt [--messages N] [--runs R] [--protocol 5|3.1.1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
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

from core.config import MqttConfig
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


def site_dict(port: int, client_id: str, shared: bool, protocol: str) -> dict[str, Any]:
    return {
        "site": {"id": "bench", "name": "bench", "latitude": 31.7, "longitude": 116.5},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{port}",
            "client_id": client_id,
            "shared_group": GROUP if shared else "",
            "protocol": protocol,
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


def _client(client_id: str, protocol: str, lean: bool = False) -> mqtt.Client:
    from collectors.mqtt.lean import LeanClient

    cls = LeanClient if lean else mqtt.Client
    if protocol == "5":
        return cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return cls(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=False,
    )


def _connect_persistent(client: mqtt.Client, port: int, protocol: str, fresh: bool) -> None:
    if protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=fresh, properties=props)
    else:
        client.connect("127.0.0.1", port)


def register_session(port: int, client_id: str, topic_filter: str, protocol: str) -> None:
    """Create a persistent session with the subscription, then go offline."""
    subscribed = threading.Event()
    c = _client(client_id, protocol)
    c.on_subscribe = lambda *_args: subscribed.set()
    _connect_persistent(c, port, protocol, fresh=True)
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


def bare_counter(
    port: int,
    client_id: str,
    protocol: str,
    lean: bool,
    total: Any,
    goal: int,
    out: Any,
    start: Any,
) -> None:
    """A ceiling: count messages, auto-ack, nothing else. No lock per message: the main
    thread adds the count to the processes' shared `total` every 10 ms, until `goal`."""
    count = 0
    first = last = 0.0

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal count, first, last
        last = time.perf_counter()
        if count == 0:
            first = last
        count += 1

    c = _client(client_id, protocol, lean)
    c.on_message = on_message
    start.wait(60)
    cpu = _cpu()
    _connect_persistent(c, port, protocol, fresh=False)
    c.loop_start()
    added = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = count
        with total.get_lock():
            total.value += seen - added
            reached = total.value >= goal
        added = seen
        if reached:
            break
        time.sleep(0.01)  # the network thread counts; this one adds it up for the others
    c.disconnect()
    c.loop_stop()
    out.put((count, count, first, last, 0, _cpu() - cpu))


def broker_ceiling(port: int, client_id: str, protocol: str, goal: int) -> tuple[int, float]:
    """What the broker delivers to `mosquitto_sub` (C, QoS 1, auto-ack): (messages, seconds
    from the first to the last), from the receive times it prints."""
    binary = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
    args = [binary, "-h", "127.0.0.1", "-p", str(port), "-i", client_id, "-c", "-q", "1"]
    args += ["-t", f"{PREFIX}/#", "-C", str(goal), "-F", "%U", "-W", "180"]
    args += ["-V", "5", "-x", "3600"] if protocol == "5" else ["-V", "311"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=200, check=True)
    times = [float(line) for line in done.stdout.split()]
    return len(times), (times[-1] - times[0]) if len(times) > 1 else 0.0


def collector(
    port: int,
    client_id: str,
    shared: bool,
    protocol: str,
    total: Any,
    goal: int,
    store_path: str,
    out: Any,
    start: Any,
) -> None:
    """One collector process: MqttSubscriber -> StoreWriter -> DuckDBStore, ack after commit."""
    from collectors.availability import Availability
    from collectors.mqtt.subscriber import MqttSubscriber
    from collectors.writer import StoreWriter
    from core.config import parse_site
    from core.readings import ReadingBatch
    from storage.deadletters import DeadLetters
    from storage.duckdb_store import DuckDBStore

    site = parse_site(site_dict(port, client_id, shared, protocol))
    store = DuckDBStore(store_path)
    availability = Availability()
    first: list[float] = []
    writes = [0]

    class CountingWriter(StoreWriter):
        async def __call__(self, batch: ReadingBatch) -> None:
            writes[0] += 1
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
        first.append(time.perf_counter())  # the broker sends the queue from now on
        deadline = time.monotonic() + 180
        while total.value < goal and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the subscriber task does the work; wait for the goal
        last = time.perf_counter()
        stop.set()
        await task
        return last

    start.wait(60)  # every process imported and ready: connect together
    cpu = _cpu()
    last = asyncio.run(main())
    stored = sum(len(store.read_raw(f"M{i:03d}", "power", 0, END_MS)) for i in range(METERS))
    store.close()
    received = availability.counters["mqtt_messages"]
    cpu = _cpu() - cpu  # before reading the store back
    out.put((received, stored, first[0] if first else last, last, writes[0], cpu))


def _cpu(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by this process, or by process `pid`."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


CASES = (
    ("broker", 1, "mosquitto_sub"),
    ("paho", 1, "bare"),
    ("paho-lean", 1, "lean"),
    ("collector-1", 1, "collector"),
    ("collector-2", 2, "collector"),
)


def run_case(
    name: str, workers: int, n: int, kind: str, workdir: Path, protocol: str | None = None
) -> dict[str, Any]:
    """One case (`CASES`): `workers` consumers of `kind` drain `n` queued messages."""
    protocol = protocol or MqttConfig().protocol
    broker, port = start_broker(workdir / name)
    ctx = mp.get_context("spawn")
    try:
        queue = ctx.Queue()
        shared = workers > 1
        ids = [f"{name}-{i}" for i in range(workers)]
        stores = [str(workdir / f"{cid}.duckdb") for cid in ids]
        # 1. sessions: each consumer subscribes once and goes offline
        if kind == "collector":
            zero = ctx.Value("q", 0)
            start = ctx.Barrier(workers)
            procs = [
                ctx.Process(
                    target=collector,
                    args=(port, cid, shared, protocol, zero, 0, path, queue, start),
                )
                for cid, path in zip(ids, stores, strict=True)
            ]
            for p in procs:
                p.start()
            collect_results(queue, procs)
            for p in procs:
                p.join()
        else:
            topic = f"$share/{GROUP}/{PREFIX}/#" if shared else f"{PREFIX}/#"
            for cid in ids:
                register_session(port, cid, topic, protocol)
        # 2. the broker queues n messages for the offline sessions
        sent = publish(port, n)
        # 3. the consumers come back and drain
        broker_cpu = _cpu(broker.pid)
        if kind == "mosquitto_sub":
            received, seconds = broker_ceiling(port, ids[0], protocol, sent)
            rate = received / seconds if seconds > 0 else 0.0
            return {
                "sent": sent,
                "received": received,
                "stored": received,
                "rate": rate,
                "cores": 0.0,
                "broker_cores": (_cpu(broker.pid) - broker_cpu) / seconds if seconds else 0.0,
            }
        total = ctx.Value("q", 0)
        start = ctx.Barrier(workers)
        if kind == "collector":
            procs = [
                ctx.Process(
                    target=collector,
                    args=(port, cid, shared, protocol, total, sent, path, queue, start),
                )
                for cid, path in zip(ids, stores, strict=True)
            ]
        else:
            procs = [
                ctx.Process(
                    target=bare_counter,
                    args=(port, cid, protocol, kind == "lean", total, sent, queue, start),
                )
                for cid in ids
            ]
        for p in procs:
            p.start()
        results = collect_results(queue, procs)
        for p in procs:
            p.join(timeout=30)
        received = sum(r[0] for r in results)
        stored = sum(r[1] for r in results)
        writes = sum(r[4] for r in results)
        broker_cpu = _cpu(broker.pid) - broker_cpu
        active = [r for r in results if r[0]]
        first = min((r[2] for r in active), default=0.0)
        last = max((r[3] for r in active), default=0.0)
        rate = received / (last - first) if last > first else 0.0
        return {
            "sent": sent,
            "received": received,
            "stored": stored,
            "rate": rate,
            "per_write": received / writes if writes else 0.0,
            "split": [r[0] for r in results],
            # cores busy while draining (the consumers' CPU includes connecting and, for
            # the collectors, stopping: an upper bound)
            "cores": sum(r[5] for r in results) / (last - first) if last > first else 0.0,
            "broker_cores": broker_cpu / (last - first) if last > first else 0.0,
        }
    finally:
        broker.terminate()
        broker.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default=MqttConfig().protocol)
    parser.add_argument("--quick", action="store_true", help="500 messages, 1 run: a smoke test")
    args = parser.parse_args(argv)
    n = 500 if args.quick else args.messages
    runs = 1 if args.quick else args.runs
    print(
        f"epcmon MQTT ingest benchmark: {n:,} QoS 1 messages (2 readings each), MQTT "
        f"{args.protocol}, local Mosquitto, {runs} run(s)"
    )
    ok = True
    rates: dict[str, list[float]] = {name: [] for name, _w, _k in CASES}
    cpu_us: dict[str, list[float]] = {name: [] for name, _w, _k in CASES}
    per_write: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            workdir = Path(tmp) / f"run{run}"
            for name, workers, kind in CASES:
                (workdir / name).mkdir(parents=True)
                r = run_case(name, workers, n, kind, workdir, args.protocol)
                loss = r["sent"] - r["stored"]
                ok &= loss == 0 and r["sent"] == n
                rates[name].append(r["rate"])
                busy = r["broker_cores"] if kind == "mosquitto_sub" else r["cores"]
                cpu_us[name].append(busy / r["rate"] * 1e6 if r["rate"] else 0.0)
                if name == "collector-1":
                    per_write.append(r["per_write"])
                print(
                    f"  run {run + 1} {name:12s} {workers} process(es): {r['rate']:>9,.0f} "
                    f"messages/s, sent {r['sent']:,}, "
                    f"{'stored' if kind == 'collector' else 'received'} {r['stored']:,}, "
                    f"lost {loss}; cores busy: consumers {r['cores']:.2f}, broker "
                    f"{r['broker_cores']:.2f}",
                    flush=True,
                )
            ratio = rates["collector-1"][-1] / max(rates["paho"][-1], 1e-9)
            print(f"  run {run + 1}: collector-1 / paho {ratio:.0%}", flush=True)
    med = {name: statistics.median(v) for name, v in rates.items()}
    paho = max(med["paho"], 1e-9)
    one = max(med["collector-1"], 1e-9)
    print()
    print(f"medians of {runs} run(s), MQTT {args.protocol}")
    print(f"{'measure':14s} {'messages/s':>12s} {'CPU µs/msg':>11s}  ratio")
    rows = (
        ("broker", f"{med['broker'] / paho:.1f}x paho (the physical limit here)"),
        ("paho", "anchor: bare paho counter, stock client"),
        ("paho-lean", f"{med['paho-lean'] / paho:.0%} of paho (our client, no pipeline)"),
        (
            "collector-1",
            f"{one / paho:.0%} of paho (target >= 80 %), {one / max(med['paho-lean'], 1e-9):.0%} "
            f"of paho-lean, {statistics.median(per_write):,.0f} messages per store write",
        ),
        ("collector-2", f"{med['collector-2'] / one:.2f}x collector-1 (target >= 1.6x)"),
    )
    for name, said in rows:
        cost = statistics.median(cpu_us[name])
        print(f"{name:14s} {med[name]:>12,.0f} {cost:>11.1f}  {said}")
    print(
        "CPU µs/msg: CPU time of the consumer processes (the broker's, for `broker`) per "
        "message while draining: what a message costs, whatever share of the shared cores "
        "the run got"
    )
    print(f"lost: {'0 in every run' if ok else 'SOME'}")
    if not ok:
        print("LOSS: a run did not store every message it was sent", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

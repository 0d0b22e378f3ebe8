"""Ingest of one polling interval of a simulated city: `epcmon run --role collector` processes
vs bare subscribers, on the city's real topics and payloads (part 1 of bench/portfolio.py).

The method is bench/ingest_mqtt.py's: the consumers register their persistent sessions, go
offline, the broker queues one QoS 1 message per MQTT meter of the city (PUBACKs counted),
the consumers come back and drain. The collectors are the real `epcmon run --site DIR --role
collector --shard i/n` processes (a portfolio's shard takes whole sites: each site's MQTT
client and gateways live in exactly one process), writing to one VictoriaMetrics (the production store, through `[storage] backend =
"influx"`, v2 write API); the end is read from VictoriaMetrics' own counter of inserted rows
(`vm_rows_inserted_total{type="influx"}`), so what is timed is "stored", not "received".
The bare subscribers (`bench.ingest_mqtt.bare_counter`: one paho client per process on
`city/#`, count and auto-ack) drain the same messages: the broker ceiling for a Python client.

Each collector process's cost is read from /proc: startup (spawn to every site's client
connected, from Mosquitto's `$SYS` counters, 1 s resolution), resident memory, threads, and
CPU while idle between intervals.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.ingest_mqtt import _cpu, bare_counter, collect_results, register_session
from core.config import MqttConfig, Portfolio
from core.net import free_port
from core.quantities import QUANTITIES
from simulators.payloads import render_payload

ROOT = Path(__file__).resolve().parents[1]
GROUP = "epcmon"
TOKEN = "bench"  # VictoriaMetrics takes any token


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Mosquitto on a free port, unbounded queues, `$SYS` every second."""
    workdir.mkdir(parents=True, exist_ok=True)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
        "max_inflight_messages 0\nmax_connections -1\nsys_interval 1\nlog_dest none\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_port(port, proc)
    return proc, port


def start_victoria(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """VictoriaMetrics on a free port (as tests/conftest.py's fixture starts it)."""
    binary = shutil.which("victoria-metrics")
    if binary is None:
        raise RuntimeError("victoria-metrics is not installed (Debian package victoria-metrics)")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"-storageDataPath={workdir}/vm",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args!r} did not listen on {port}") from None
            time.sleep(0.02)  # poll the port until the server listens


def vm_rows(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(r'^vm_rows_inserted_total\{type="influx"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def point_city(city_dir: Path, mqtt_port: int, vm_url: str, api_port: int = 0) -> None:
    """The generated city on this broker (`[mqtt] url`, `shared_group`) and this store."""
    for path in city_dir.glob("*.toml"):
        if path.name == "portfolio.toml":
            text = (
                '[portfolio]\nid = "luan-city"\nname = "bench city"\n\n'
                '[storage]\nbackend = "influx"\n\n[storage.influx]\n'
                f'url = "{vm_url}"\nmode = "v2"\norg = "bench"\nbucket = "epcmon"\n\n'
                f'[api]\nhost = "127.0.0.1"\nport = {api_port or free_port()}\n'
                "metrics_port = 0\nworker_metrics_port = 0\n"
            )
        else:
            text = re.sub(
                r'\[mqtt\]\nurl = "[^"]*"\n(shared_group = "[^"]*"\n)?',
                f'[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\nshared_group = "{GROUP}"\n',
                path.read_text(),
            )
        path.write_text(text)


def interval_messages(portfolio: Portfolio, ts_ms: int) -> tuple[list[tuple[str, bytes]], int]:
    """One message per MQTT meter of the city, its real topic and payload format; and the
    readings they carry."""
    out: list[tuple[str, bytes]] = []
    readings = 0
    for site in portfolio.sites:
        for i, meter in enumerate(site.meters):
            if meter.mqtt is None:
                continue
            fmt = site.format_of(meter)
            values = {f.quantity: _value(f.quantity, i) for f in fmt.fields}
            out.append((site.topic_of(meter), render_payload(fmt, values, ts_ms)))
            readings += len(values)
    return out, readings


def _value(quantity: str, i: int) -> float:
    """A plausible reading (inside the quantity's accepted range; counters large)."""
    spec = QUANTITIES[quantity]
    value = 1000.0 + i if spec.counter else 10.0 + i % 17
    return value if spec.accepts(value) else (spec.low + spec.high) / 2


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> int:
    """Publish at QoS 1; how many the broker acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-city-pub", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(topic, payload, qos=1) for topic, payload in messages]
    acked = 0
    for info in infos:
        info.wait_for_publish(120)
        acked += info.is_published()
    c.disconnect()
    c.loop_stop()
    return acked


class SysWatch:
    """Mosquitto's `$SYS/broker/clients/connected`, as it publishes it (every second)."""

    def __init__(self, port: int) -> None:
        self.connected = -1
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sys")
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("$SYS/broker/clients/connected")
        self.c.loop_start()

    def _on(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        self.connected = int(m.payload)

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.connected < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # the broker publishes the count every second
        return True

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def proc_status(pid: int) -> dict[str, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024,
        "threads": float(fields["Threads"]),
    }


@dataclass
class Collectors:
    procs: list[subprocess.Popen[bytes]]
    started: float
    logs: list[Path]

    def connected(self) -> int:
        """Site clients that logged their connection (a client stuck before its CONNACK
        counts at the broker, not here)."""
        return sum(p.read_text().count("MQTT connected to") for p in self.logs if p.exists())

    def first_connected(self, after: float) -> float:
        """Wall time of the first site client's connection logged after `after`."""
        times = []
        for path in self.logs:
            for line in path.read_text().splitlines():
                if "MQTT connected to" in line:
                    stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    if stamp >= after:
                        times.append(stamp)
        return min(times, default=0.0)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def spawn_collectors(city_dir: Path, workdir: Path, n: int) -> Collectors:
    """n `epcmon run --role collector --shard i/n` processes over the one city."""
    env = {**os.environ, "EPCMON_INFLUX_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    procs = []
    started = time.perf_counter()
    logs = [workdir / f"collector-shard-{n}-{i}" / "log.txt" for i in range(1, n + 1)]
    for i, log_path in enumerate(logs, 1):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "epcmon.cli", "run", "--site", str(city_dir)]
        args += ["--role", "collector", "--shard", f"{i}/{n}"]
        args += ["--data-dir", str(log_path.parent / "data")]
        with log_path.open("ab") as log:
            procs.append(
                subprocess.Popen(args, cwd=log_path.parent, env=env, stdout=log, stderr=log)
            )
    return Collectors(procs, started, logs)


def refused(city_dir: Path, workdir: Path) -> str:
    """What `--shard 1/1` over the whole city says, when one process cannot hold every site's
    MQTT client (its exit code and one line)."""
    env = {**os.environ, "EPCMON_INFLUX_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "epcmon.cli", "run", "--site", str(city_dir)]
    args += ["--role", "collector", "--data-dir", str(workdir / "refused")]
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return "started"
    return f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1]}"


def collector_case(
    city_dir: Path,
    portfolio: Portfolio,
    workdir: Path,
    n: int,
    vm_url: str,
    ts_ms: int,
) -> dict[str, Any]:
    """n collector processes drain one interval: rate, loss and each process's costs."""
    broker, port = start_mosquitto(workdir / f"broker-shard{n}")
    point_city(city_dir, port, vm_url)
    clients = sum(any(m.mqtt for m in s.meters) for s in portfolio.sites)  # one each
    sys_watch = SysWatch(port)
    try:
        # 1. sessions: the collectors start (timed), subscribe, and stop
        sys_watch.wait(1, 10)
        base = sys_watch.connected
        run = spawn_collectors(city_dir, workdir, n)
        sys_watch.wait(base + clients, 120)  # every client at least opened its connection
        connected, changed = -1, time.perf_counter()
        while connected < clients and time.perf_counter() - changed < 5:
            if run.connected() != connected:
                connected, changed = run.connected(), time.perf_counter()
            time.sleep(0.05)  # poll the logs: a client stuck before its CONNACK never says
        startup = changed - run.started
        cpu0 = [_cpu(p.pid) for p in run.procs]
        status = [proc_status(p.pid) for p in run.procs]
        fds = [len(os.listdir(f"/proc/{p.pid}/fd")) for p in run.procs]
        idle_s = 5.0
        time.sleep(idle_s)  # the idle cost: what the connected clients burn between intervals
        idle = sum(_cpu(p.pid) for p in run.procs) - sum(cpu0)
        run.stop()
        # 2. the broker queues the interval for the offline sessions
        messages, readings = interval_messages(portfolio, ts_ms)
        sent = publish_all(port, messages)
        # 3. the collectors come back and drain into VictoriaMetrics
        before = vm_rows(vm_url)
        spawned = time.time() - 1  # the log's clock is the wall clock (1 s: its rounding)
        run = spawn_collectors(city_dir, workdir, n)
        first = last = last_wall = 0.0
        got = 0
        deadline = time.monotonic() + 300
        while got < readings and time.monotonic() < deadline:
            now_rows = vm_rows(vm_url) - before
            if now_rows != got:
                last, last_wall = time.perf_counter(), time.time()
                first = first or last
                got = now_rows
            elif got and time.perf_counter() - last > 10:
                break  # nothing stored for 10 s: report what was
            time.sleep(0.05)  # poll the store's counter
        peak = [proc_status(p.pid) for p in run.procs]
        cpu = sum(_cpu(p.pid) for p in run.procs)
        run.stop()
        connected_at = run.first_connected(spawned)
        drain = last_wall - connected_at if connected_at else 0.0
        return {
            "sent": sent,
            "messages": len(messages),
            "readings": readings,
            "stored": got,
            # from the first site client connected (what a running collector would have
            # been) to the last row stored; first to last row stored (rows come in batches)
            "drain_s": drain,
            "rows_s": last - first,
            "to_stored_s": last - run.started,
            # stored messages (readings scaled) per second
            "rate": got * len(messages) / readings / drain if drain > 0 else 0.0,
            "startup_s": startup,
            "rss_mb": [s["rss_mb"] for s in status],
            "peak_mb": [s["hwm_mb"] for s in peak],
            "threads": [s["threads"] for s in status],
            "fds": fds,
            "clients": clients,
            "connected": connected,
            "idle_cores": idle / idle_s,
            "cpu_s": cpu,
        }
    finally:
        sys_watch.close()
        broker.terminate()
        broker.wait(10)


def bare_case(portfolio: Portfolio, workdir: Path, n: int, ts_ms: int) -> dict[str, Any]:
    """n bare subscribers (one client each, `city/#`) drain the same interval."""
    broker, port = start_mosquitto(workdir / f"broker-b{n}")
    protocol = MqttConfig().protocol
    try:
        ids = [f"bare-{n}-{i}" for i in range(n)]
        topic = f"$share/{GROUP}/#" if n > 1 else "#"
        for cid in ids:
            register_session(port, cid, topic, protocol)
        messages, _ = interval_messages(portfolio, ts_ms)
        sent = publish_all(port, messages)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        total = ctx.Value("q", 0)
        start = ctx.Barrier(n)
        procs = [
            ctx.Process(
                target=bare_counter, args=(port, cid, protocol, False, total, sent, queue, start)
            )
            for cid in ids
        ]
        for p in procs:
            p.start()
        results = collect_results(queue, procs)
        for p in procs:
            p.join(timeout=30)
        received = sum(r[0] for r in results)
        active = [r for r in results if r[0]]
        first = min((r[2] for r in active), default=0.0)
        last = max((r[3] for r in active), default=0.0)
        return {
            "sent": sent,
            "received": received,
            "drain_s": last - first,
            "rate": received / (last - first) if last > first else 0.0,
        }
    finally:
        broker.terminate()
        broker.wait(10)

"""The soak test of issue 12: `epcmon run`, left alone against real parts, while everything an
installation meets goes wrong in one run.

Real parts: Mosquitto (persistence on, saved every second), three simulated Modbus gateways
(one behaving, one answering garbage, one dropping 15 % of its connections), `epcmon run` as a
process, its DuckDB store on a small tmpfs of its own, two years of the contract's history in
it. In that run:

1. hostile MQTT payloads of every class (tests/hostile_payloads.py) interleaved with valid
   probes;
2. the store's file system fills up: ingest pauses, `/healthz` degrades; probes keep coming
   and wait in the broker;
3. the broker is killed with SIGKILL while it holds them, and restarted;
4. space is freed: ingest resumes by itself.

At the end: every valid probe is stored exactly once, every hostile message is in the dead
letters with its reason, `/healthz` went degraded and came back, the statements of the closed
months exist, the misbehaving gateways cost a handful of log lines, and the process stops
cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from api.keys import KeyStore, Role
from collectors.profiles import get_profile
from core.config import GatewayFaults
from core.net import free_port
from processing.testing import synthetic_hourly, write_boundary
from simulators.faults import FaultPlan
from simulators.modbus_server import SimulatedGateway, SimulatedUnit
from storage.deadletters import read_dead_letters
from storage.duckdb_store import DuckDBStore
from tests.conftest import Broker, require, wait_for_port
from tests.fullfs import fill, small_filesystem
from tests.hostile_payloads import corpus, valid_probe

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")
HOSTILE_TOPIC = {"flat_ms": "soak/h/ms", "flat_s": "soak/h/s", "tasmota": "soak/h/tasmota"}
PROBE_TOPIC = "soak/probe"

pytestmark = pytest.mark.e2e


def _site(tmp: Path, fs: Path, api: int, broker: int, gateways: dict[str, int]) -> Path:
    flat = """[
  { pointer = "/p", quantity = "power", unit = "W" },
  { pointer = "/e", quantity = "energy_import", unit = "kWh" },
]"""
    meters = []
    for gw, count in (("gw-good", 3), ("gw-garbage", 2), ("gw-drops", 5)):
        for unit in range(1, count + 1):
            meters.append(f"""
[[meters]]
id = "E-{gw[3:].upper()}-{unit}"
kind = "electricity"
building = "b"
poll_interval_s = 1
[meters.modbus]
gateway = "{gw}"
unit = {unit}
profile = "eastron-sdm630"
quantities = ["power", "energy_import"]
""")
    for meter, topic, fmt, kind in (
        ("P", PROBE_TOPIC, "flat_ms", "electricity"),
        ("H-flat_ms", HOSTILE_TOPIC["flat_ms"], "flat_ms", "electricity"),
        ("H-flat_s", HOSTILE_TOPIC["flat_s"], "flat_s", "electricity"),
        ("H-tasmota", HOSTILE_TOPIC["tasmota"], "tasmota", "electricity"),
        ("E-TR1", "soak/tr1", "flat_ms", "electricity"),
        ("WX", "soak/wx", "flat_ms", "weather"),
    ):
        meters.append(f"""
[[meters]]
id = "{meter}"
kind = "{kind}"
building = "b"
[meters.mqtt]
topic = "{topic}"
format = "{fmt}"
""")
    text = (
        f"""
[site]
id = "soak"
name = "浸泡测试"
latitude = 31.7
longitude = 116.5
commissioned = 2024-01-01

[storage]
path = "{fs / "store.duckdb"}"
statements_path = "{tmp / "statements.sqlite"}"

[api]
port = {api}
keys_path = "{tmp / "keys.sqlite3"}"
rate_limit_per_s = 1000
rate_burst = 1000

[mqtt]
url = "mqtt://127.0.0.1:{broker}"
client_id = "soak-{os.getpid()}"
keepalive_s = 10

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[payload_formats.flat_ms]
timestamp = "/ts"
timestamp_format = "epoch_ms"
fields = {flat}

[payload_formats.flat_s]
timestamp = "/ts"
timestamp_format = "epoch_s"
fields = {flat}

[payload_formats.tasmota]
timestamp = "/Time"
timestamp_timezone = "Asia/Shanghai"
fields = [
  {{ pointer = "/ENERGY/Power", quantity = "power", unit = "W" }},
  {{ pointer = "/ENERGY/Total", quantity = "energy_import", unit = "kWh" }},
]
"""
        + "".join(
            f"""
[[gateways]]
id = "{gw}"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5
"""
            for gw, port in gateways.items()
        )
        + "".join(meters)
        + """
[[contracts]]
id = "c1"
name = "浸泡合同"
vendor = "ESCO"
meters = ["E-TR1"]
weather_station = "WX"
baseline_start = 2024-07-01
baseline_end = 2025-07-01
reporting_start = 2025-07-01
"""
    )
    path = tmp / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _broker(tmp: Path) -> Broker:
    binary = require("mosquitto", "mosquitto")
    port = free_port()
    conf = tmp / "mosquitto.conf"
    (tmp / "mosquitto").mkdir()
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        + ("user root\n" if os.geteuid() == 0 else "")
        + "persistence true\n"
        f"persistence_location {tmp / 'mosquitto'}/\n"
        "autosave_interval 1\n"
        "max_queued_messages 100000\n"
        f"log_dest file {tmp / 'mosquitto.log'}\n"
    )
    return Broker("127.0.0.1", port, None, [binary, "-c", str(conf)])  # type: ignore[arg-type]


class Publisher:
    """QoS 1 from a device's side: a message counts as sent once the broker's PUBACK came."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, items: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def _until(condition: Callable[[], object], what: str, timeout: float, proc) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if proc.returncode is not None:
            pytest.fail(f"epcmon run exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)  # epcmon works in its own process: look again


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _saves(tmp: Path) -> int:
    log = tmp / "mosquitto.log"
    return log.read_text(errors="replace").count("Saving in-memory database") if log.exists() else 0


async def test_epcmon_run_survives_a_hostile_week_in_minutes(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "fs", 64 * 1024) as fs:
        await _soak(tmp_path, fs)


async def _soak(tmp: Path, fs: Path) -> None:
    # -- the store: two years of the contract's boundary, so statements are due ---------------
    today = datetime.now(TZ).date()
    synthetic = synthetic_hourly(
        date(2024, 6, 28), today, seed=3, retrofit=date(2025, 7, 1), reduction=0.1
    )
    with DuckDBStore(fs / "store.duckdb") as store:
        write_boundary(store, ("E-TR1",), "WX", synthetic)

    # -- the gateways: one behaving, one answering garbage, one dropping connections ---------
    values = {"power": 1500.0, "energy_import": 1234.5}
    profile = get_profile("eastron-sdm630")
    now = lambda: int(time.time() * 1000)  # noqa: E731
    plan = FaultPlan(
        gateways={
            "gw-garbage": GatewayFaults(garbage_rate=1.0, garbage="any"),
            "gw-drops": GatewayFaults(drop_rate=0.15),
        },
        seed=7,
    )
    gateways = {
        name: SimulatedGateway(
            [SimulatedUnit(u, profile, lambda _t: values) for u in range(1, count + 1)],
            clock=now,
            faults=plan,
            name=name,
        )
        for name, count in (("gw-good", 3), ("gw-garbage", 2), ("gw-drops", 5))
    }
    ports = {name: await gw.start() for name, gw in gateways.items()}
    broker = _broker(tmp)
    broker.start()
    api_port = free_port()
    site = _site(tmp, fs, api_port, broker.port, ports)
    keys = KeyStore(tmp / "keys.sqlite3")
    _, admin = keys.create(Role.ADMIN, name="soak")
    keys.close()

    # the subscriber's persistent session must exist before anything is published to it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "epcmon.cli", "run", "--site", str(site), "--data-dir", str(tmp),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output: list[str] = []

    async def read_output() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_output())
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}",
        timeout=10,
        headers={"Authorization": f"Bearer {admin}"},
    )
    health_seen: list[tuple[int, dict[str, object]]] = []
    watching = True

    async def watch_health() -> None:  # what an external monitor would have seen
        while watching:
            try:
                r = await asyncio.to_thread(client.get, "/healthz")
                health_seen.append((r.status_code, r.json()))
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)  # a monitor's scrape interval

    def probes_stored() -> int:
        r = client.get(
            "/api/v1/meters/P/series",
            params={"quantity": "power", "start": iso(now() - 7_200_000), "end": iso(now())},
        )
        assert r.status_code == 200, r.text
        return len(r.json()["points"])

    def healthz() -> dict[str, object]:
        try:
            return dict(client.get("/healthz").json())
        except httpx.TransportError:
            return {}

    watcher: asyncio.Task[None] | None = None
    publisher: Publisher | None = None
    try:
        await _until(lambda: healthz().get("status") == "ok", "the service up", 60, proc)
        watcher = asyncio.create_task(watch_health())

        # -- statements of the closed months, written by the service --------------------------
        def final_statements() -> int:
            r = client.get("/api/v1/contracts/c1/statements")
            return sum(e["status"] == "final" for e in r.json()) if r.status_code == 200 else 0

        await _until(lambda: final_statements() >= 12, "12 final statements", 120, proc)

        # -- 1. hostile payloads interleaved with valid probes ---------------------------------
        now_ms = now()
        hostile = [(HOSTILE_TOPIC[c.fmt], c.payload, c.reason) for c in corpus(now_ms) if c.reason]
        publisher = Publisher(broker.port)
        probes = 0
        batch: list[tuple[str, bytes]] = []
        for topic, payload, _reason in hostile:
            batch += [(topic, payload), (PROBE_TOPIC, valid_probe(probes, now_ms))]
            probes += 1
        publisher.send(batch)
        await _until(
            lambda: probes_stored() == probes, "the probes among hostile payloads", 60, proc
        )

        # -- 2. the store's disk fills up: ingest pauses, /healthz degrades --------------------
        ballast = fill(fs)

        def problems() -> dict[str, str]:
            return dict(healthz().get("problems", {}))  # type: ignore[call-overload]

        # the pollers' writes fail first (every second): the store condition
        await _until(lambda: "store" in problems(), "/healthz: the store degraded", 60, proc)
        full_probes = [(PROBE_TOPIC, valid_probe(probes + i, now_ms)) for i in range(50)]
        publisher.send(full_probes)  # acknowledged by the broker, not by epcmon
        probes += len(full_probes)
        await _until(lambda: "mqtt-ingest" in problems(), "/healthz: MQTT ingest paused", 60, proc)
        assert probes_stored() < probes

        # -- 3. the broker dies (SIGKILL) while it holds the waiting probes; it comes back -----
        publisher.close()
        publisher = None
        before = _saves(tmp)
        await _until(lambda: _saves(tmp) >= before + 2, "two saves of the broker", 30, proc)
        broker.proc.send_signal(signal.SIGKILL)
        broker.proc.wait(10)
        broker.start()  # same port, same persistence file
        wait_for_port(broker.port, broker.proc)
        publisher = Publisher(broker.port)
        late = [(PROBE_TOPIC, valid_probe(probes + i, now_ms)) for i in range(20)]
        publisher.send(late)
        probes += len(late)

        # -- 4. space again: ingest resumes by itself -------------------------------------------
        ballast.unlink()
        await _until(
            lambda: probes_stored() == probes, "every probe stored after the outage", 120, proc
        )
        await _until(lambda: healthz().get("status") == "ok", "/healthz ok again", 60, proc)
        await _until(lambda: health_seen[-1][0] == 200, "the monitor to see it", 10, proc)
        assert final_statements() >= 12
        metrics = client.get("/metrics").text
    finally:
        watching = False
        if watcher is not None:
            await watcher
        if publisher is not None:
            publisher.close()
        client.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
        await reader
        for gw in gateways.values():
            await gw.stop()
        if broker.proc.poll() is None:
            broker.stop()
    text = "".join(output)
    if os.environ.get("SOAK_DEBUG"):
        print(text, [code for code, _ in health_seen])
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text

    # every valid probe exactly once: one row per timestamp, the value it was sent with
    with DuckDBStore(fs / "store.duckdb") as store:
        stored = store.read_raw("P", "power", 0, 4_102_444_800_000)
        assert len(stored) == probes
        assert len(np.unique(stored.ts_ms)) == probes
        expected = np.array([1.0 + i / 1000 for i in range(probes)])  # valid_probe: 1000 + i W
        assert np.allclose(np.sort(stored.value), expected)
        for meter in ("H-flat_ms", "H-flat_s", "H-tasmota"):
            assert len(store.read_raw(meter, "power", 0, 4_102_444_800_000)) == 0

    # every hostile message in the dead letters, with its reason
    letters = read_dead_letters(tmp / "dead-letters.jsonl", limit=100_000)
    for topic, _payload, reason in hostile:
        assert any(d["source"] == topic and reason in d["reason"] for d in letters), reason

    # /healthz went degraded (naming the store) and came back
    statuses = [code for code, _ in health_seen]
    first_bad = statuses.index(503)
    assert 200 in statuses[:first_bad]
    assert statuses[-1] == 200
    assert any("store" in body.get("problems", {}) for code, body in health_seen if code == 503)  # type: ignore[operator]

    # misbehaving gateways: a handful of lines, not one a frame; the dropping one still polled
    assert sum("gw-garbage" in line for line in output) <= 10, text
    assert sum("gw-drops" in line for line in output) <= 10, text
    assert 'epcmon_meter_up{meter="E-DROPS-1"} 1.0' in metrics
    assert 'epcmon_meter_up{meter="E-GOOD-1"} 1.0' in metrics

"""SIGHUP reloads the site file of a running `epcmon run`: real Mosquitto with QoS 1 traffic
running, a Modbus gateway on loopback. A meter (and a gateway) added to the file is collected
without dropping the MQTT session or losing a message; a bad file changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from api.keys import KeyStore, Role
from collectors.profiles import get_profile
from simulators.modbus_server import SimulatedGateway, SimulatedUnit
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def _site_text(tmp_path: Path, mqtt_port: int, api_port: int, prefix: str) -> str:
    return f"""
[site]
id = "reload-test"
name = "重载测试"
latitude = 31.7
longitude = 116.5

[storage]
path = "{tmp_path / "store.duckdb"}"

[api]
port = {api_port}
keys_path = "{tmp_path / "keys.sqlite3"}"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "reload-test-{os.getpid()}"

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[payload_formats.plain]
timestamp = "/ts"
timestamp_format = "epoch_ms"
fields = [{{ pointer = "/p", quantity = "power", unit = "kW" }}]

[[meters]]
id = "M-1"
kind = "electricity"
building = "b"
[meters.mqtt]
topic = "{prefix}/m1"
format = "plain"
"""


def _added(prefix: str, modbus_port: int) -> str:
    return f"""
[[gateways]]
id = "gw-new"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.5

[[meters]]
id = "M-2"
kind = "electricity"
building = "b"
[meters.mqtt]
topic = "{prefix}/m2"
format = "plain"

[[meters]]
id = "E-2"
kind = "electricity"
building = "b"
poll_interval_s = 1
[meters.modbus]
gateway = "gw-new"
unit = 3
profile = "eastron-sdm630"
quantities = ["power"]
"""


class Publisher:
    """QoS 1 messages to one topic, each with its own timestamp, until stopped."""

    def __init__(self, port: int, topic: str, base_ms: int) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.topic = topic
        self.base_ms = base_ms
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def publish(self, topic: str, ts_ms: int, value: float) -> None:
        info = self.client.publish(topic, json.dumps({"ts": ts_ms, "p": value}), qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.publish(self.topic, self.base_ms + self.sent * 1000, 1.0)
            self.sent += 1
            self._stop.wait(0.01)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


class Output:
    """The lines a subprocess writes, read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.lines: list[str] = []
        self._task = asyncio.create_task(self._read(proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def wait_for(self, text: str, timeout: float = 30, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if text in line:
                    return line
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in:\n" + "\n".join(self.lines))

    async def close(self) -> None:
        await asyncio.wait_for(self._task, 30)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


async def _points(client: httpx.AsyncClient, meter: str) -> list[dict[str, object]]:
    try:
        reply = await client.get(
            f"/api/v1/meters/{meter}/series",
            params={"quantity": "power", "start": "2020-01-01T00:00:00Z"},
        )
    except httpx.TransportError:
        return []
    if reply.status_code != 200:
        return []
    points: list[dict[str, object]] = reply.json()["points"]
    return points


async def _until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_sighup_adds_a_meter_without_losing_a_message(tmp_path, mosquitto):
    prefix = f"reload-{os.getpid()}-{time.monotonic_ns()}"
    gateway = SimulatedGateway(
        [SimulatedUnit(3, get_profile("eastron-sdm630"), lambda _now: {"power": 7.5})],
        clock=lambda: int(time.time() * 1000),
    )
    modbus_port = await gateway.start()
    api_port = free_port()
    site = tmp_path / "site.toml"
    first = _site_text(tmp_path, mosquitto.port, api_port, prefix)
    site.write_text(first, encoding="utf-8")
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _key_id, key = keys.create(Role.VIEWER, name="test")
    keys.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "epcmon.cli",
        "run",
        "--site",
        str(site),
        "--data-dir",
        str(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = Output(proc)
    base_ms = (int(time.time()) - 3600) * 1000  # an hour ago: one second apart, all distinct
    publisher = Publisher(mosquitto.port, f"{prefix}/m1", base_ms)
    try:
        await out.wait_for("MQTT subscribed")  # what is published from here on is ours
        publisher.start()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=5,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:

            async def first_stored() -> bool:
                return bool(await _points(client, "M-1"))

            await _until(first_stored)
            # 1. a meter and a gateway added, while QoS 1 traffic runs
            site.write_text(first + _added(prefix, modbus_port), encoding="utf-8")
            mark = len(out.lines)
            proc.send_signal(signal.SIGHUP)
            line = await out.wait_for("reload:", after=mark)
            assert "added meters E-2, M-2" in line, line
            assert "added gateways gw-new" in line, line
            await out.wait_for("MQTT subscribed", after=mark)  # the new meter's topic
            publisher.publish(f"{prefix}/m2", base_ms, 3.0)

            async def new_meters_stored() -> bool:
                return bool(await _points(client, "M-2")) and bool(await _points(client, "E-2"))

            await _until(new_meters_stored)
            assert (await _points(client, "M-2"))[0]["value"] == pytest.approx(3.0)
            assert (await _points(client, "E-2"))[0]["value"] == pytest.approx(7.5)

            # 2. a bad file changes nothing: one line naming the error, still collecting
            site.write_text(first.replace('kind = "electricity"', 'kind = "plasma"'), "utf-8")
            mark = len(out.lines)
            proc.send_signal(signal.SIGHUP)
            line = await out.wait_for("reload failed", after=mark)
            assert "kind" in line
            assert "M-1" in line
            assert "keeping the running configuration" in line
            assert proc.returncode is None
            publisher.publish(f"{prefix}/m2", base_ms + 1000, 4.0)

            async def still_collected() -> bool:
                return len(await _points(client, "M-2")) == 2

            await _until(still_collected)
            meters = {m["id"] for m in (await client.get("/api/v1/meters")).json()}
            assert meters == {"M-1", "M-2", "E-2"}

            # 3. every message published to the first meter while all this happened is stored
            publisher.stop()
            sent = publisher.sent

            async def all_stored() -> bool:
                return len(await _points(client, "M-1")) == sent

            await _until(all_stored, timeout=20)
    finally:
        publisher.stop()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await out.close()
        await gateway.stop()
    assert proc.returncode == 0, out.text
    assert sent > 20  # traffic really ran across the reloads
    assert out.text.count("MQTT connected") == 1, out.text  # the session was never dropped
    assert "Traceback" not in out.text

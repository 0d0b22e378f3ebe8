"""`epcmon run` as an operator starts it: a site file, real Mosquitto, a Modbus gateway on
loopback; readings of both protocols come back through the API; SIGTERM stops it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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


def _site_file(tmp_path: Path, modbus_port: int, mqtt_port: int, api_port: int) -> Path:
    text = f"""
[site]
id = "run-test"
name = "运行测试"
latitude = 31.7
longitude = 116.5

[storage]
path = "{tmp_path / "store.duckdb"}"

[api]
port = {api_port}
keys_path = "{tmp_path / "keys.sqlite3"}"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "run-test-{os.getpid()}"

[mqtt.routes.plugs]
pattern = "run-test/tele/{{device}}/SENSOR"
meter = "PLUG-{{device}}"
format = "tasmota"

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[[gateways]]
id = "gw"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.5

[payload_formats.tasmota]
timestamp = "/Time"
timestamp_timezone = "Asia/Shanghai"
fields = [{{ pointer = "/ENERGY/Power", quantity = "power", unit = "W" }}]

[[meters]]
id = "E-1"
kind = "electricity"
building = "b"
poll_interval_s = 1
[meters.modbus]
gateway = "gw"
unit = 3
profile = "eastron-sdm630"
quantities = ["power", "voltage_l1", "energy_import"]

[[meters]]
id = "PLUG-a1"
kind = "electricity"
building = "b"
[meters.mqtt]
route = "plugs"
"""
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_run_collects_both_protocols_and_serves_them(tmp_path, mosquitto):
    values = {"power": 12.5, "voltage_l1": 221.0, "energy_import": 1000.0}
    gateway = SimulatedGateway(
        [SimulatedUnit(3, get_profile("eastron-sdm630"), lambda _now: values)],
        clock=lambda: int(time.time() * 1000),
    )
    port = await gateway.start()
    api_port = free_port()
    site = _site_file(tmp_path, port, mosquitto.port, api_port)
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
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=5,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            pub.connect("127.0.0.1", mosquitto.port)
            pub.loop_start()
            deadline = time.monotonic() + 40
            power: list[dict[str, object]] = []
            plug: list[dict[str, object]] = []
            while time.monotonic() < deadline and (len(power) < 2 or not plug):
                stamp = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M:%S")
                pub.publish(
                    "run-test/tele/a1/SENSOR",
                    json.dumps({"Time": stamp, "ENERGY": {"Power": 85}}),
                    qos=1,
                ).wait_for_publish(5)
                try:
                    power = (
                        await client.get("/api/v1/meters/E-1/series", params={"quantity": "power"})
                    ).json()["points"]
                    plug = (
                        await client.get(
                            "/api/v1/meters/PLUG-a1/series", params={"quantity": "power"}
                        )
                    ).json()["points"]
                except httpx.TransportError:
                    pass  # not listening yet
                await asyncio.sleep(0.3)  # polls arrive once a second
            pub.disconnect()
            pub.loop_stop()
            assert len(power) >= 2
            assert all(p["value"] == pytest.approx(12.5) for p in power)
            assert plug
            assert plug[0]["value"] == pytest.approx(0.085)
            meters = {m["id"]: m for m in (await client.get("/api/v1/meters")).json()}
            assert meters["E-1"]["quantities"] == [
                "energy_import",
                "power",
                "voltage_l1",
            ]  # only those polled
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        await gateway.stop()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "modbus gateway gw" in text
    assert "stopped" in text
    assert "Traceback" not in text

"""`epcmon run` raising an alarm end to end: a meter of a simulated Modbus gateway goes
offline, the service's alarm part raises `meter_offline` for it, the API lists it, an
engineer acknowledges it, and it clears once the meter answers again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.keys import KeyStore, Role
from collectors.profiles import get_profile
from core.config import MeterFaults
from simulators.faults import FaultPlan
from simulators.modbus_server import SimulatedGateway, SimulatedUnit
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def _site_file(tmp_path: Path, modbus_port: int, api_port: int) -> Path:
    meters = "".join(
        f"""
[[meters]]
id = "{meter}"
name = "{name}"
kind = "electricity"
building = "b"
poll_interval_s = 1
[meters.modbus]
gateway = "gw"
unit = {unit}
profile = "eastron-sdm630"
quantities = ["power", "energy_import"]
"""
        for meter, name, unit in (("E-1", "一号表", 1), ("E-2", "二号表", 2))
    )
    text = f"""
[site]
id = "alarm-run"
name = "告警测试"
latitude = 31.7
longitude = 116.5

[storage]
path = "{tmp_path / "store.duckdb"}"
statements_path = "{tmp_path / "statements.sqlite3"}"

[api]
port = {api_port}
keys_path = "{tmp_path / "keys.sqlite3"}"

[reports]
enabled = false

[alarms]
every_s = 1

[alarms.rules.meter_offline]
after_intervals = 2
min_silence_s = 3
raise_after_s = 1
clear_after_s = 2

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[[gateways]]
id = "gw"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.3
{meters}"""
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def _until(client: httpx.AsyncClient, params: dict[str, Any], found: Any, what: str,
                 proc: asyncio.subprocess.Process, seconds: float = 40) -> dict[str, Any]:  # fmt: skip
    deadline = time.monotonic() + seconds
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert proc.returncode is None, "epcmon run exited"
        try:
            body = (await client.get("/api/v1/alarms", params=params)).json()
        except httpx.TransportError:
            body = {}  # not listening yet
        hit = found(body)
        if hit:
            return hit  # type: ignore[no-any-return]
        await asyncio.sleep(0.3)  # the alarm part evaluates once a second
    raise AssertionError(f"no {what} after {seconds} s: {body}")


async def test_a_meter_going_offline_raises_an_alarm_visible_in_the_api(tmp_path: Path) -> None:
    values = {"power": 12.5, "energy_import": 1000.0}
    units = [
        SimulatedUnit(u, get_profile("eastron-sdm630"), lambda _now: values, meter_id=m)
        for u, m in ((1, "E-1"), (2, "E-2"))
    ]
    gateway = SimulatedGateway(units, clock=lambda: int(time.time() * 1000), name="gw")
    port = await gateway.start()
    api_port = free_port()
    site = _site_file(tmp_path, port, api_port)
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _id, key = keys.create(Role.ENGINEER, name="值班工程师")
    keys.close()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "epcmon.cli", "run", "--site", str(site), "--data-dir",
        str(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=5,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:

            def offline(body: dict[str, Any]) -> dict[str, Any] | None:
                return next(
                    (a for a in body.get("alarms", []) if a["rule"] == "meter_offline"), None
                )

            # both meters answer: nothing is raised (the service just started)
            await _until(client, {}, lambda b: "total" in b, "alarm listing", proc)
            gateway.faults = FaultPlan(meters={"E-2": MeterFaults(offline=True)})
            alarm = await _until(client, {}, offline, "meter_offline alarm", proc)
            assert alarm["subject"] == "E-2"
            assert alarm["state"] == "active"
            assert alarm["meters"] == ["E-2"]
            assert "E-2 二号表" in alarm["message"]
            listing = (await client.get("/api/v1/alarms")).json()
            assert [a["subject"] for a in listing["alarms"]] == ["E-2"], listing  # E-1 is fine

            ack = await client.post(f"/api/v1/alarms/{alarm['id']}/ack")
            assert ack.status_code == 200, ack.text
            assert ack.json()["acknowledged_by"].startswith("值班工程师 (key ")

            gateway.faults = FaultPlan()  # the meter answers again

            def cleared(body: dict[str, Any]) -> dict[str, Any] | None:
                return next((a for a in body.get("alarms", []) if a["id"] == alarm["id"]), None)

            done = await _until(client, {"state": "cleared"}, cleared, "cleared alarm", proc)
            assert done["cleared"] is not None
            assert done["acknowledged_by"].startswith("值班工程师")
            detail = (await client.get(f"/api/v1/alarms/{alarm['id']}")).json()
            assert [e["kind"] for e in detail["history"]] == ["raised", "acknowledged", "cleared"]
            metrics = (await client.get("/metrics")).text
            assert "epcmon_alarms_active" in metrics
            health = (await client.get("/healthz")).json()
            assert health["parts"]["alarms"]["state"] == "running"
    finally:
        if proc.returncode is None:
            proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        await gateway.stop()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "alarms" in text  # named among the parts it runs
    assert "Traceback" not in text
    assert "meter_offline E-2" in text  # the log dispatcher: one line per transition

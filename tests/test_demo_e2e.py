"""The thin path end to end: `epcmon demo` on free ports, both kinds of meter read back
through the API with plausible values, and a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def _lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return out, thread


def _wait_for_line(
    lines: queue.Queue[str], pattern: str, deadline: float, seen: list[str]
) -> re.Match[str]:
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(seen)}")


def _series(client: httpx.Client, meter: str, quantity: str) -> list[dict[str, object]]:
    r = client.get(f"/api/v1/meters/{meter}/series", params={"quantity": quantity})
    assert r.status_code == 200, r.text
    points: list[dict[str, object]] = r.json()["points"]
    return points


def test_demo_runs_end_to_end(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "epcmon.cli",
            "demo",
            "--data-dir",
            str(tmp_path),
            "--port",
            "0",
            "--interval",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen: list[str] = []
    try:
        lines, pump = _lines(proc)
        match = _wait_for_line(
            lines, r"API on (http://127\.0\.0\.1:\d+)", time.monotonic() + 60, seen
        )
        base = match.group(1)
        key = _wait_for_line(
            lines, r"demo API key \(admin, this run only\): (epc_\S+)", time.monotonic() + 10, seen
        ).group(1)
        output_so_far = "".join(seen)
        assert "history back-filled" in output_so_far
        assert "beside the simulator's truth" in output_so_far  # statements next to the truth
        assert re.search(r"department bills \d{4}-\d{2}: 57 departments", output_so_far)
        modbus_meter, mqtt_meter = "E-D01", "WX-ROOF"
        assert httpx.get(f"{base}/api/v1/meters", timeout=5).status_code == 401  # no key, no data
        # the first minute is the demo's busiest (each closed month's report is written, the
        # alarms read their reference weeks, the caches warm): an answer, not its speed, is
        # what this test checks (bench.api and bench.page measure speed)
        with httpx.Client(
            base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ) as client:
            # the main job, within a minute of starting: the contract's monthly statements
            listing = client.get("/api/v1/contracts/epc-2025-01/statements").json()
            assert sum(e["status"] == "final" for e in listing) >= 12, listing
            month = re.search(r"department bills (\d{4}-\d{2})", output_so_far).group(1)  # type: ignore[union-attr]
            bills = client.get("/api/v1/bills", params={"month": month}).json()
            assert len(bills["rows"]) == 57
            meters = {m["id"]: m for m in client.get("/api/v1/meters").json()}
            assert meters[modbus_meter]["protocol"] == "modbus"
            assert meters[mqtt_meter]["protocol"] == "mqtt"
            deadline = time.monotonic() + 45
            power = voltage = temperature = energy = []
            while time.monotonic() < deadline:
                power = _series(client, modbus_meter, "power")
                voltage = _series(client, modbus_meter, "voltage_l1")
                energy = _series(client, modbus_meter, "energy_import")
                temperature = _series(client, mqtt_meter, "outdoor_temperature")
                if len(power) >= 3 and len(temperature) >= 3:
                    break
                time.sleep(0.5)  # polling the API for data that arrives every second
            assert len(power) >= 3, "".join(seen)
            assert len(temperature) >= 3, "".join(seen)
            assert all(0 < float(p["value"]) < 2_000 for p in power)  # kW for a department
            assert all(198 <= float(p["value"]) <= 242 for p in voltage)  # 220 V +/- 10 %
            counters = [float(p["value"]) for p in energy]
            assert counters == sorted(counters)  # a counter never falls
            assert all(-20 < float(p["value"]) < 45 for p in temperature)
            times = [str(p["time"]) for p in power]
            assert times == sorted(times)
            assert all(t.endswith("Z") for t in times)

            hourly = client.get(
                f"/api/v1/meters/{modbus_meter}/series",
                params={"quantity": "power", "every": "1h", "agg": "max"},
            ).json()
            assert hourly["points"]
            assert hourly["agg"] == "max"
            assert (
                client.get("/api/v1/meters/NOPE/series", params={"quantity": "power"}).status_code
                == 404
            )
            bad = client.get(
                f"/api/v1/meters/{modbus_meter}/series", params={"quantity": "power", "every": "5x"}
            )
            assert bad.status_code == 422
            assert "every" in bad.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # also when the test failed: a pipe left to the garbage collector fails a later test
        pump.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    while not lines.empty():
        seen.append(lines.get_nowait())
    output = "".join(seen)
    assert proc.returncode == 0, output
    assert "stopped cleanly" in output
    assert "Traceback" not in output
    assert (tmp_path / "epcmon-demo.duckdb").exists()

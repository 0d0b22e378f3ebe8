"""The store benchmark still runs: `python -m bench.store --quick` exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]


def test_store_benchmark_quick_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.store", "--quick", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "store ingest, median batch" in done.stdout
    assert "hourly mean, one meter-year" in done.stdout
    assert list(tmp_path.iterdir()) == []  # the work directory is cleaned up


def test_mqtt_ingest_benchmark_quick_run() -> None:
    require("mosquitto", "mosquitto")
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest_mqtt", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "collector-1" in done.stdout
    assert "lost 0" in done.stdout


def test_simulator_benchmark_quick_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.simulate", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "history 1 min" in done.stdout
    assert "Modbus gateway, pymodbus client" in done.stdout


def test_influx_benchmark_quick_run(tmp_path: Path) -> None:
    require("influxd", "influxdb")
    done = subprocess.run(
        [sys.executable, "-m", "bench.influx", "--quick", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "InfluxStore.write" in done.stdout
    assert "same answer: yes" in done.stdout
    assert "store copy DuckDB -> InfluxDB" in done.stdout  # and every point copied (else exit 1)
    assert "store copy, no-op resume" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_scale_out_benchmark_quick_run() -> None:
    require("mosquitto", "mosquitto")
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale_out", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "collector-4" in done.stdout
    assert done.stdout.count("lost 0") == 6  # 1, 2, 4 processes, bare and collectors


def test_modbus_poll_benchmark_quick_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.poll_modbus", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100 meters / 10 gateways, one cycle, merged plan" in done.stdout
    assert "naive plan (one request per field)" in done.stdout

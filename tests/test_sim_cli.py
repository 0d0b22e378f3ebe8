"""`epcmon simulate history` and `epcmon simulate serve`, run as the user runs them."""

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

import paho.mqtt.client as mqtt
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pyModbusTCP.client import ModbusClient

from storage.base import Agg, Every
from storage.duckdb_store import DuckDBStore
from tests.sim_helpers import ROOT, SITE_FILE


def epcmon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epcmon.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def history(*args: str) -> subprocess.CompletedProcess[str]:
    done = epcmon(
        "simulate", "history", "--site", str(SITE_FILE), "--from", "2025-07-01", "--to", "2025-07-02",
        "--no-progress", *args,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_history_into_a_store_with_the_truth_beside(tmp_path: Path):
    store_path = tmp_path / "h.duckdb"
    truth = tmp_path / "truth.csv"
    done = history("--interval", "15m", "--out", str(store_path), "--truth", str(truth))
    assert "readings of 116 meters" in done.stdout
    with DuckDBStore(store_path) as store:
        start_ms = 1_751_299_200_000  # 2025-06-30T16:00Z: midnight in Lu'an
        counts = store.aggregate(
            "E-TR1", "energy_import", start_ms, start_ms + 86_400_000, Every.parse("1d"), Agg.COUNT
        )
        assert counts.value.sum() == 96
        first = store.aggregate(
            "E-TR1", "energy_import", start_ms, start_ms + 86_400_000, Every.parse("1d"), Agg.FIRST
        )
        assert first.value[0] > 1_000_000  # a counter that has run for years
    table = pacsv.read_csv(truth)
    assert set(table.column_names) == {"ts", "meter_id", "actual", "counterfactual", "true_savings"}
    rows = table.filter(pacsv_equal(table, "meter_id", "E-TR1"))
    assert rows.num_rows == 96
    assert sum(rows.column("true_savings").to_pylist()) > 0  # the retrofit is in


def pacsv_equal(table: object, column: str, value: str) -> object:
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)  # type: ignore[attr-defined]


def test_history_to_parquet_all_quantities_and_same_seed_same_file(tmp_path: Path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        history(
            "--interval",
            "1h",
            "--meters",
            "E-D01,WX-ROOF",
            "--quantities",
            "all",
            "--out",
            str(out),
            "--seed",
            "3",
        )
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.equals(tb)
    quantities = set(ta.column("quantity").to_pylist())
    assert {
        "voltage_l1",
        "current_l3",
        "power_factor",
        "frequency",
        "solar_irradiance",
    } <= quantities
    assert set(ta.column("meter_id").to_pylist()) == {"E-D01", "WX-ROOF"}


def test_history_with_a_fault_from_the_command_line(tmp_path: Path):
    out = tmp_path / "f.csv"
    history(
        "--interval", "1h", "--meters", "E-D01,E-D55", "--out", str(out), "--fault", "E-D01:offline"
    )
    meters = set(pacsv.read_csv(out).column("meter_id").to_pylist())
    assert meters == {"E-D55"}


def test_history_refuses_what_it_cannot_do(tmp_path: Path):
    done = epcmon(
        "simulate", "history", "--site", str(SITE_FILE), "--from", "2025-07-01", "--to", "2025-07-02",
        "--interval", "7m", "--out", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert done.returncode != 0
    assert "interval" in done.stderr
    done = epcmon(
        "simulate", "history", "--site", str(SITE_FILE), "--from", "2025-07-01", "--to", "2025-07-02",
        "--fault", "E-NOPE:offline", "--out", str(tmp_path / "x.csv"),
    )  # fmt: skip
    assert done.returncode == 2
    assert "E-NOPE" in done.stderr


def test_serve_prints_its_gateways_and_answers_there():
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "epcmon.cli", "simulate", "serve", "--site", str(SITE_FILE),
            "--any-port", "--start", "2024-03-04T10:00:00+08:00", "--speed", "60",
            "--fault", "E-D55:busy_rate=1", "--fault", "gw-west:garbage_rate=1,garbage=unit",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    seen: list[str] = []
    gateways: dict[str, int] = {}
    broker = ""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if m := re.search(r"gateway (\S+) on 127\.0\.0\.1:(\d+)", line):
                gateways[m.group(1)] = int(m.group(2))
            if m := re.search(r"broker .* on (mqtt://\S+)", line):
                broker = m.group(1)
            if "serving" in line:
                break
        output = "".join(seen)
        assert len(gateways) == 7, output
        assert broker, output
        c = ModbusClient(
            host="127.0.0.1", port=gateways["gw-main-lv2"], unit_id=181, timeout=5, auto_open=True
        )
        try:
            regs = c.read_holding_registers(0x2006, 2)
            assert regs is not None
            assert c.read_holding_registers(0x2006, 2) is not None
            busy = ModbusClient(
                host="127.0.0.1",
                port=gateways["gw-main-lv2"],
                unit_id=171,
                timeout=5,
                auto_open=True,
            )
            assert busy.read_holding_registers(0x2006, 2) is None
            assert busy.last_except == 6
            busy.close()
        finally:
            c.close()
        # the weather station publishes every simulated minute: a second at 60x
        got: queue.Queue[bytes] = queue.Queue()
        host, port = broker.removeprefix("mqtt://").split(":")
        sub = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="serve-test", protocol=mqtt.MQTTv311
        )
        sub.on_message = lambda _c, _u, msg: got.put(msg.payload)
        sub.on_connect = lambda c, *_: c.subscribe("luan-admin-center/weather/roof", qos=1)
        sub.connect(host, int(port))
        sub.loop_start()
        try:
            payload = got.get(timeout=20)
            assert b'"temp_c"' in payload
        finally:
            sub.disconnect()
            sub.loop_stop()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pumping.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    while not lines.empty():
        seen.append(lines.get_nowait())
    output = "".join(seen)
    assert proc.returncode == 0, output
    assert "stopped; Modbus requests served" in output
    assert "fault on gateway gw-west: {'garbage_rate': 1.0, 'garbage': 'unit'}" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "command", [["simulate", "history", "--help"], ["simulate", "serve", "--help"]]
)
def test_help(command: list[str]):
    done = epcmon(*command)
    assert done.returncode == 0
    assert "--site" in done.stdout

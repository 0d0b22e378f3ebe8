"""Each role several times, as the city's deployment runs it (docs/operations.md, "Scaling to
a city"): two collectors splitting the MQTT subscription (`--role collector --shard i/2`,
`$share`), two web processes on one port (`--role web`, `[api] reuse_port`: the kernel spreads
the connections), one worker (`--role worker`: recompute, alarms), on Mosquitto and one
InfluxDB 1.6.7 they all share, and the statements and alarms files beside it.

What must show: readings published to the broker are read back through the one address, and
both web processes answer; a statement the worker writes is served by both; the alarms are
raised once (the web processes run no scheduled job); one web process killed, the address
goes on serving."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from api.keys import KeyStore, Role
from core.net import free_port
from epcmon.sites import load
from processing.testing import synthetic_hourly, write_boundary
from storage.influx import InfluxStore
from tests.conftest import InfluxServer
from tests.test_collector_faults import METERS, Publisher
from tests.test_scale_out import stored_values, wait_stored

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 400
CONTRACT = "epc-scale"


class Epcmon:
    """`epcmon run --role ROLE` in a subprocess, in its own directory (its own spool)."""

    def __init__(self, site_file: Path, workdir: Path, role: str, shard: str = "1/1") -> None:
        workdir.mkdir()
        self.role = role
        self.log = workdir / "epcmon.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "epcmon.cli", "run", "--role", role, "--shard", shard,
                 "--site", str(site_file), "--data-dir", str(workdir)],
                cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code
            )  # fmt: skip

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the {self.role}:\n{self.output}")
            time.sleep(0.05)  # poll the log file for the line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def write_site(path: Path, prefix: str, mqtt_url: str, influx_url: str, database: str,
               api_port: int) -> None:  # fmt: skip
    d = path.parent
    lines = [
        '[site]\nid = "scale"\nname = "S"\nlatitude = 31.7\nlongitude = 116.5\n',
        f'[storage]\nbackend = "influx"\nstatements_path = "{d / "statements.sqlite3"}"\n',
        f'[storage.influx]\nurl = "{influx_url}"\nmode = "v1"\ndatabase = "{database}"\n',
        '[storage.spool]\npath = "spool.sqlite3"\n',  # relative: one spool per process
        f'[api]\nport = {api_port}\nreuse_port = true\nkeys_path = "{d / "keys.sqlite3"}"\n'
        "metrics_port = 0\nworker_metrics_port = 0\n",
        f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "collector-{prefix}"\n'
        f'shared_group = "g{prefix.replace("-", "")}"\n',
        "[schedule]\nrecompute_every_s = 3600\n",  # the first pass runs at start
        "[reports]\nenabled = false\n",
        # every meter here is offline (the readings are back-dated): an alarm each, quickly
        "[alarms]\nevery_s = 1\n[alarms.rules.meter_offline]\nmin_silence_s = 3\n"
        "raise_after_s = 1\nafter_intervals = 1\n",
        '[[buildings]]\nid = "b"\nname = "B"\nfloor_area_m2 = 10000\n',
        '[payload_formats.flat]\ntimestamp = "/ts"\ntimestamp_format = "epoch_ms"\n'
        'fields = [{ pointer = "/e", quantity = "energy_import", unit = "kWh" }]\n',
    ]
    meters = [(f"M{i:02d}", "electricity", f"{prefix}/m{i:02d}") for i in range(METERS)]
    meters += [("E-C1", "electricity", f"{prefix}/c1"), ("WX", "weather", f"{prefix}/wx")]
    lines += [
        f'[[meters]]\nid = "{m}"\nkind = "{kind}"\nbuilding = "b"\npoll_interval_s = 1\n'
        f'[meters.mqtt]\ntopic = "{topic}"\nformat = "flat"\n'
        for m, kind, topic in meters
    ]
    lines.append(
        f'[[contracts]]\nid = "{CONTRACT}"\nname = "C"\nvendor = "V"\nmeters = ["E-C1"]\n'
        "baseline_start = 2024-07-01\nbaseline_end = 2025-07-01\n"
        'reporting_start = 2025-07-01\nweather_station = "WX"\n'
    )
    path.write_text("\n".join(lines))


def write_history(site_file: Path) -> None:
    """The contract's meter and weather station, 2024-07 to 2025-08 (retrofit in 2025-07), so
    that the worker fits the baseline and writes the statements of 2025-07 and 2025-08."""
    site = load(site_file)
    store = InfluxStore(site.storage.influx, site=site)
    try:
        synthetic = synthetic_hourly(
            date(2024, 7, 1), date(2025, 9, 1), seed=7, calendar=site.work_calendar,
            retrofit=date(2025, 7, 1), reduction=0.1,
        )  # fmt: skip
        write_boundary(store, ("E-C1",), "WX", synthetic, every_s=3600)
    finally:
        store.close()


def answer(url: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """(the answering process's id, the answer to `path`), on one new connection: its
    `/healthz` names the process, and the next request on that connection goes to it."""
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        pid = int(client.get("/healthz").json()["pid"])
        response = client.get(path)
        assert response.status_code == 200, response.text
        return pid, response.json()


def until(what: str, check: Callable[[], Any], timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)  # the worker's recompute and alarms run at their own pace
    raise AssertionError(f"no {what} after {timeout} s")


def test_each_role_several_times_on_shared_engines(mosquitto, influxdb: InfluxServer,
                                                   influx_db: str, tmp_path: Path) -> None:  # fmt: skip
    prefix = f"r-{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    site_file = tmp_path / "site.toml"
    write_site(site_file, prefix, mosquitto.url, influxdb.url, influx_db, api_port)
    write_history(site_file)
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _, key = keys.create(Role.ENGINEER, name="scale test")
    keys.close()
    auth = {"Authorization": f"Bearer {key}"}
    url = f"http://127.0.0.1:{api_port}"

    processes = [
        Epcmon(site_file, tmp_path / "c1", "collector", "1/2"),
        Epcmon(site_file, tmp_path / "c2", "collector", "2/2"),
        Epcmon(site_file, tmp_path / "w1", "web"),
        Epcmon(site_file, tmp_path / "w2", "web"),
        Epcmon(site_file, tmp_path / "jobs", "worker"),
    ]
    first, second, web1, web2, worker = processes
    try:
        first.wait_for(f"as collector-{prefix}-1")
        second.wait_for(f"as collector-{prefix}-2")
        for web in (web1, web2):
            web.wait_for(f"API on http://127.0.0.1:{api_port}")  # both bound the one port
        worker.wait_for("running ")
        assert "api" not in worker.output.split("running ")[1].split(";")[0].split(", ")
        first.wait_for("MQTT subscribed")
        second.wait_for("MQTT subscribed")

        # 1. readings through the broker and two collectors, read back through the one address
        history = len(stored_values(influxdb, influx_db))  # the contract's meter's counters
        pub = Publisher(mosquitto.port, prefix, MESSAGES)
        pub.run()
        assert pub.acked() == MESSAGES
        pub.close()
        assert wait_stored(influxdb, influx_db, history + MESSAGES) == history + MESSAGES
        answered: dict[int, Any] = {}
        while {web1.proc.pid, web2.proc.pid} - set(answered):
            pid, body = answer(url, "/api/v1/meters/M00/latest", auth)
            answered[pid] = body
            assert len(answered) <= 2, answered
        assert set(answered) == {web1.proc.pid, web2.proc.pid}
        assert answered[web1.proc.pid] == answered[web2.proc.pid]
        assert answered[web1.proc.pid]  # M00's latest readings, as the collectors stored them

        # 2. the worker's statements, served by both web processes
        until("statement of 2025-08", lambda: "2025-08" in _months(url, auth), timeout=60)
        served: dict[int, list[str]] = {}
        while len(served) < 2:
            pid, body = answer(url, f"/api/v1/contracts/{CONTRACT}/statements", auth)
            served[pid] = [m["month"] for m in body if m["status"] != "provisional"]
        assert set(served) == {web1.proc.pid, web2.proc.pid}
        assert all(months[:2] == ["2025-07", "2025-08"] for months in served.values()), served

        # 3. the alarms are raised once: the web processes run no scheduled job
        until("meter_offline alarms", lambda: _active(url, auth) >= METERS + 2)
        with sqlite3.connect(tmp_path / "alarms.sqlite3") as db:
            rows = db.execute("SELECT rule, subject, count(*) FROM alarms GROUP BY 1, 2").fetchall()
            raised = db.execute(
                "SELECT alarm_id, count(*) FROM alarm_events WHERE kind = 'raised' GROUP BY 1"
            ).fetchall()
        assert {n for _r, _s, n in rows} == {1}, rows
        assert {n for _a, n in raised} == {1}, raised
        for pid in (web1.proc.pid, web2.proc.pid):
            parts = until(f"/healthz of {pid}", lambda pid=pid: _parts_of(url, pid))
            assert set(parts) == {"api"}, parts

        # 4. one web process killed: the address goes on serving, from the other
        os.kill(web1.proc.pid, signal.SIGKILL)
        web1.proc.wait(10)
        for _ in range(20):
            pid, body = answer(url, "/api/v1/meters/M00/latest", auth)
            assert pid == web2.proc.pid
            assert body == answered[web2.proc.pid]
    finally:
        codes = {p.role + str(i): p.stop() for i, p in enumerate(processes) if p is not web1}
        web1.stop()
    assert set(codes.values()) == {0}, {p.role: p.output[-2000:] for p in processes}


def _months(url: str, auth: dict[str, str]) -> list[str]:
    body = httpx.get(f"{url}/api/v1/contracts/{CONTRACT}/statements", headers=auth).json()
    return [m["month"] for m in body if m["status"] != "provisional"]


def _active(url: str, auth: dict[str, str]) -> int:
    return int(httpx.get(f"{url}/api/v1/alarms", headers=auth).json()["total"])


def _parts_of(url: str, pid: int) -> dict[str, Any] | None:
    """The parts the web process `pid` runs (None when another process answered)."""
    body = httpx.get(f"{url}/healthz").json()
    return body["parts"] if body["pid"] == pid else None

"""Several collector processes on one broker and one store, as deploy/compose.yaml runs them:
`epcmon run --role collector --shard 1/2` and `--shard 2/2` with `mqtt.shared_group`, each in
its own working directory (its own spool), both writing to InfluxDB 1.6.7.

Every message stored exactly once while two collectors split the subscription (both get a share:
each dead-letters the unusable payloads it receives in its own directory), and nothing lost
when one is killed with SIGKILL mid-stream and comes back with the same client id (the broker
kept its persistent session and its share of the messages)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.conftest import InfluxServer
from tests.test_collector_faults import METERS, Publisher

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 4_000
BAD = 40


class Collector:
    """`epcmon run --role collector --shard i/n` in a subprocess, in its own directory."""

    def __init__(self, site_file: Path, workdir: Path, shard: str) -> None:
        workdir.mkdir(exist_ok=True)
        self.log = workdir / f"collector-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "epcmon.cli",
                    "run",
                    "--role",
                    "collector",
                    "--shard",
                    shard,
                    "--site",
                    str(site_file),
                    "--data-dir",
                    str(workdir),
                ],
                cwd=workdir,  # the site file's relative spool path lands here
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the collector:\n{self.output}")
            time.sleep(0.05)  # poll the log file for the line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def write_site(path: Path, prefix: str, mqtt_url: str, influx_url: str, database: str) -> None:
    lines = [
        '[site]\nid = "scale"\nname = "S"\nlatitude = 31\nlongitude = 116\n',
        '[storage]\nbackend = "influx"\n',
        f'[storage.influx]\nurl = "{influx_url}"\nmode = "v1"\ndatabase = "{database}"\n',
        '[storage.spool]\npath = "spool.sqlite3"\n',  # relative: one spool per process
        "[api]\nmetrics_port = 0\n",  # each collector's /metrics on a free port
        f'[mqtt]\nurl = "{mqtt_url}"\nclient_id = "collector-{prefix}"\n'
        f'shared_group = "g{prefix.replace("-", "")}"\n',
        '[[buildings]]\nid = "b"\nname = "B"\nfloor_area_m2 = 100\n',
        '[payload_formats.flat]\ntimestamp = "/ts"\ntimestamp_format = "epoch_ms"\n'
        'fields = [{ pointer = "/e", quantity = "energy_import", unit = "kWh" }]\n',
    ]
    lines += [
        f'[[meters]]\nid = "M{i:02d}"\nkind = "electricity"\nbuilding = "b"\n'
        f'[meters.mqtt]\ntopic = "{prefix}/m{i:02d}"\nformat = "flat"\n'
        for i in range(METERS)
    ]
    path.write_text("\n".join(lines))


def stored_values(influx: InfluxServer, database: str) -> list[float]:
    answer = influx.query('SELECT "value" FROM "energy_import"', database)
    series = answer["results"][0].get("series") or []  # type: ignore[index]
    return sorted(float(row[1]) for s in series for row in s["values"])


def wait_stored(influx: InfluxServer, database: str, goal: int, timeout: float = 40) -> int:
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        stored = len(stored_values(influx, database))
        if stored >= goal:
            break
        time.sleep(0.3)  # the collectors drain at their own pace
    return stored


def test_two_collectors_share_a_subscription_and_survive_a_sigkill(
    mosquitto, influxdb, influx_db, tmp_path
):
    prefix = f"s-{uuid.uuid4().hex[:6]}"
    site_file = tmp_path / "site.toml"
    write_site(site_file, prefix, mosquitto.url, influxdb.url, influx_db)
    first = Collector(site_file, tmp_path / "c1", "1/2")
    second = Collector(site_file, tmp_path / "c2", "2/2")
    restarted: Collector | None = None
    try:
        for c, cid in ((first, f"collector-{prefix}-1"), (second, f"collector-{prefix}-2")):
            c.wait_for(f"as {cid}")  # "MQTT connected to ... as <stable client id>"
        time.sleep(0.5)  # the SUBACKs follow the connection

        # 1. both running: every message once
        pub = Publisher(mosquitto.port, f"{prefix}", MESSAGES)
        pub.run()
        assert pub.acked() == MESSAGES
        assert wait_stored(influxdb, influx_db, MESSAGES) == MESSAGES
        assert stored_values(influxdb, influx_db) == [float(i) for i in range(MESSAGES)]
        # the split: unusable payloads are dead-lettered by the process that received them,
        # in its own data directory: each collector got some, together each exactly once
        for j in range(BAD):
            pub.client.publish(f"{prefix}/m{j % METERS:02d}", b"not json", qos=1).wait_for_publish(
                10
            )
        dead = [tmp_path / c / "dead-letters.jsonl" for c in ("c1", "c2")]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(_lines(f) for f in dead) < BAD:
            time.sleep(0.1)  # the collectors write dead letters as they receive them
        split = [_lines(f) for f in dead]
        assert sum(split) == BAD, split
        assert min(split) > 0, split
        pub.close()

        # 2. one killed mid-stream, restarted with the same shard (same client id)
        pub = Publisher(mosquitto.port, f"{prefix}b", MESSAGES)
        pub.prefix = prefix  # same topics, a second client
        thread = threading.Thread(target=_publish_from, args=(pub, MESSAGES))
        thread.start()
        pub.halfway.wait(60)
        os.kill(first.proc.pid, signal.SIGKILL)  # no chance to clean up
        first.proc.wait(10)
        thread.join(120)
        assert pub.acked() == MESSAGES
        pub.close()
        restarted = Collector(site_file, tmp_path / "c1", "1/2")
        restarted.wait_for(f"as collector-{prefix}-1")
        assert wait_stored(influxdb, influx_db, 2 * MESSAGES) == 2 * MESSAGES
        assert stored_values(influxdb, influx_db) == [float(i) for i in range(2 * MESSAGES)]
    finally:
        codes = [c.stop() for c in (second, restarted) if c is not None]
        first.stop()
    assert codes == [0] * len(codes), second.output


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _publish_from(pub: Publisher, offset: int) -> None:
    """Publisher.run for messages offset .. offset + count (later timestamps, same meters)."""
    import json

    from tests.test_collector_faults import T0

    pub.client.loop_start()
    for j in range(pub.count):
        i = offset + j
        payload = json.dumps({"ts": T0 + (i // METERS) * 1000, "e": float(i)})
        pub.client.publish(f"{pub.prefix}/m{i % METERS:02d}", payload, qos=1)
        if j == pub.count // 2:
            pub.halfway.set()

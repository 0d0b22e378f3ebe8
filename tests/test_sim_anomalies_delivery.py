"""What must show (issue 15): a night-time water leak injected in the simulator reaches a real
SMTP server and a real webhook receiver as one alarm each, and a clear of each when it stops.

All real parts: the site file's `[[simulation.anomalies]]` leak played by the simulator's
physics, its MQTT meter publishing through Mosquitto, `epcmon run`'s service in-process (the
MQTT collector, the store, the alarm engine with the site's rules, the notify part), an
aiosmtpd server and an HTTP receiver on loopback.

Time is compressed, not waited for: the four nights before the leak (the rule's reference)
are the simulator's history written to the store before the service starts; then the
simulator runs at `SPEED` times real time (its meter's readings carry simulated timestamps,
as a device's do), and the alarm engine's clock is the same accelerated clock (the only
change to the service: `service.alarm_engine.clock`), so a night passes in a few seconds.
The rules that judge silence or late data by the clock are switched off in this site (at
this speed a fraction of a second of MQTT latency is half an hour), and `[alarms] late_s`
covers the collector's batching.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from core.config import load_site
from core.net import free_port
from epcmon.runtime import Service
from simulators.clock import AcceleratedClock
from simulators.faults import FaultPlan
from simulators.history import iter_history
from simulators.mqtt_publisher import MqttMeterPublisher
from simulators.site import SimulatedSite
from storage.duckdb_store import DuckDBStore
from tests.conftest import IN_CI
from tests.notify_helpers import Receiver

try:
    from aiosmtpd.controller import Controller
except ImportError:  # pragma: no cover - the dev extra installs it
    if IN_CI:
        raise
    pytest.skip("aiosmtpd not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = pytest.mark.e2e

SPEED = 7200.0
"""Simulated seconds per real second: two hours a second."""
T0 = "2025-07-08T20:00:00+08:00"
"""The service starts here (simulated); the history before it is written at once."""
LEAK = ("2025-07-08T22:00:00+08:00", "2025-07-09T07:00:00+08:00")


def _site_file(tmp_path: Path, broker_url: str, smtp_port: int, hook_url: str) -> Path:
    off = "".join(
        f"\n[alarms.rules.{rule}]\nenabled = false\n"
        for rule in ("meter_offline", "daily_use", "implausible_jump", "counter_reset")
    )
    text = f"""
[site]
id = "leak-e2e"
name = "漏水测试楼"
latitude = 31.75
longitude = 116.5

[storage]
path = "{tmp_path / "store.duckdb"}"
statements_path = "{tmp_path / "statements.sqlite3"}"

[api]
port = {free_port()}
keys_path = "{tmp_path / "keys.sqlite3"}"

[mqtt]
url = "{broker_url}"

[reports]
enabled = false

[payload_formats.water-flat]
timestamp = "/time"
timestamp_format = "iso8601"
timestamp_timezone = "UTC"
fields = [
  {{ pointer = "/total_m3", quantity = "volume", unit = "m3" }},
  {{ pointer = "/flow_m3h", quantity = "flow", unit = "m3/h" }},
]

[[buildings]]
id = "b"
name = "办公楼"
floor_area_m2 = 12000

[[meters]]
id = "W-1"
name = "办公楼给水总表"
kind = "water"
building = "b"
end_use = "domestic_water"
poll_interval_s = 900
mqtt = {{ topic = "leak-e2e/water/main", format = "water-flat" }}

[simulation]
seed = 3

[[simulation.anomalies]]
kind = "leak"
meter = "W-1"
start = {LEAK[0]}
end = {LEAK[1]}
flow_m3h = 1.0

[alarms]
every_s = 1
late_s = 86400
{off}
[[notify.channels]]
id = "mail"
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "能源监测 <epcmon@example.gov.cn>"
recipients = ["duty@example.gov.cn"]
retry_backoff_s = 0.05
retry_max_s = 0.2

[[notify.channels]]
id = "hook"
type = "webhook"
url = "{hook_url}/alarms"
retry_backoff_s = 0.05
retry_max_s = 0.2
"""
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Mailbox:
    """aiosmtpd's handler: keeps every message's bytes."""

    def __init__(self) -> None:
        self.mail: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mail.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


async def _until(condition: Any, seconds: float, what: str, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if task.done():
            task.result()  # the service ended: say why
            raise AssertionError(f"the service stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds} s")
        await asyncio.sleep(0.05)  # the service runs on this loop: let it


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def test_a_night_leak_reaches_mail_and_webhook_once_and_clears(
    mosquitto: Any, smtp: tuple[Mailbox, int], hook: Receiver, tmp_path: Path
) -> None:
    box, smtp_port = smtp
    site = load_site(_site_file(tmp_path, mosquitto.url, smtp_port, hook.url))
    plan = FaultPlan.from_site(site)
    assert [a.kind for a in plan.anomalies] == ["leak"]
    store = DuckDBStore(site.storage.path)
    t0 = datetime.fromisoformat(T0)
    for part in iter_history(site, t0 - timedelta(days=4), t0, faults=plan):
        store.write(part.readings)  # the four nights before: history, written at once
    service = Service(site, store, tmp_path)
    assert service.alarm_engine is not None
    assert service.notify is not None
    clock = AcceleratedClock(SPEED, _ms(T0))
    service.alarm_engine.clock = clock
    sim = SimulatedSite(site, clock=clock, anomalies=plan.anomalies)
    meter = site.meter("W-1")
    publisher = MqttMeterPublisher(
        site, [(meter, sim.source("W-1"))], mosquitto.url, clock=clock, faults=plan
    )
    stop = asyncio.Event()
    await service.start()
    task = asyncio.create_task(service.run(stop))
    feed = asyncio.create_task(publisher.run(stop))
    try:
        await _until(lambda: len(box.mail) >= 1 and len(hook.on("/alarms")) >= 1, 60,
                     "leak alarm delivered", task)  # fmt: skip
        raised_at = clock()
        await _until(lambda: len(box.mail) >= 2 and len(hook.on("/alarms")) >= 2, 60,
                     "clear delivered", task)  # fmt: skip
        cleared_at = clock()
        await asyncio.sleep(3 * service.site.alarms.every_s)  # nothing more is on its way
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, feed), 30)
        service.close()
        store.close()

    # simulated time: told during the leak's night, cleared on the next night
    assert _ms(LEAK[0]) < raised_at < _ms(LEAK[1]) + 6 * 3_600_000, raised_at
    assert cleared_at > _ms(LEAK[1]), cleared_at
    assert len(box.mail) == 2, [message_from_bytes(m).get("Subject") for m in box.mail]
    raised, cleared = (message_from_bytes(m, policy=policy.default) for m in box.mail)
    assert str(raised["Subject"]).startswith("【严重告警】夜间持续用水"), raised["Subject"]
    assert "W-1 办公楼给水总表" in raised.get_content()
    assert str(cleared["Subject"]).startswith("【已恢复】"), cleared["Subject"]
    posts = [r.json() for r in hook.on("/alarms")]
    assert len(posts) == 2, posts
    told = [(t["kind"], t["alarm"]["rule"], t["alarm"]["subject"]) for p in posts
            for t in p["transitions"]]  # fmt: skip
    assert told == [
        ("raised", "night_water_flow", "W-1"),
        ("cleared", "night_water_flow", "W-1"),
    ]
    leak = posts[0]["transitions"][0]["alarm"]
    assert leak["severity"] == "critical"
    assert leak["value"] >= leak["threshold"]  # the least night hour's use, m³
    assert _ms(LEAK[0]) <= leak["raised_ms"] < _ms(LEAK[1])

"""Shared by the notify tests: a small site, alarm changes, and the real receivers (an HTTP
server recording what it is sent, an SMTP server) on loopback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from alarms.model import Alarm, Category, Severity, Transition, TransitionKind
from core.config import parse_site

TZ = ZoneInfo("Asia/Shanghai")


def local_ms(text: str) -> int:
    """`2025-07-14 02:15` in Asia/Shanghai, as UTC epoch ms."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ).timestamp() * 1000)


def site(channels: list[dict[str, Any]], *, public_url: str = "https://epc.example.gov.cn"):
    data: dict[str, Any] = {
        "site": {
            "id": "luan-test",
            "name": "六安市行政中心",
            "name_en": "Lu'an Administrative Center",
            "latitude": 31.7,
            "longitude": 116.5,
        },
        "api": {"public_url": public_url},
        "buildings": [
            {"id": "main", "name": "主楼", "name_en": "Main building", "floor_area_m2": 1000}
        ],
        "tenants": [
            {
                "id": "dept-01",
                "name": "市发改委",
                "name_en": "Development and Reform Commission",
                "building": "main",
                "floor_area_m2": 300,
            }
        ],
        "payload_formats": {
            "flat": {
                "timestamp": "/ts",
                "timestamp_format": "epoch_ms",
                "fields": [{"pointer": "/v", "quantity": "volume", "unit": "m3"}],
            }
        },
        "meters": [
            {
                "id": "W-MAIN",
                "name": "主楼给水引入管 DN150",
                "kind": "water",
                "building": "main",
                "end_use": "water_main",
                "mqtt": {"topic": "t/w-main", "format": "flat"},
            },
            {
                "id": "E-DEPT-01",
                "name": "市发改委照明插座",
                "kind": "electricity",
                "building": "main",
                "tenant": "dept-01",
                "mqtt": {"topic": "t/e-dept-01", "format": "flat"},
            },
        ],
        "notify": {"channels": channels},
    }
    return parse_site(data)


def alarm(
    id: int = 17,
    *,
    rule: str = "night_water_flow",
    subject: str = "W-MAIN",
    severity: Severity = Severity.WARNING,
    raised: str = "2025-07-14 02:15",
    cleared: str | None = None,
    value: float | None = 1.25,
    threshold: float | None = 0.5,
    unit: str = "m³/h",
    message: str = "夜间持续用水：最低流量 1.25 m³/h",
    meters: tuple[str, ...] = ("W-MAIN",),
    acknowledged_by: str | None = None,
) -> Alarm:
    raised_ms = local_ms(raised)
    cleared_ms = local_ms(cleared) if cleared else None
    return Alarm(
        id=id,
        rule=rule,
        subject=subject,
        state="cleared" if cleared else "active",
        severity=severity,
        category=Category.CONSUMPTION,
        message=message,
        raised_ms=raised_ms,
        updated_ms=cleared_ms or raised_ms,
        cleared_ms=cleared_ms,
        acknowledged_by=acknowledged_by,
        value=value,
        threshold=threshold,
        unit=unit,
        meters=meters,
    )


def change(kind: TransitionKind = "raised", **kw: Any) -> Transition:
    a = alarm(**kw)
    at = a.cleared_ms if kind == "cleared" and a.cleared_ms else a.raised_ms
    return Transition(kind, a, at)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)  # poll the condition again


class FakeClock:
    """Wall time the test moves (epoch s)."""

    def __init__(self, local: str) -> None:
        self.now = local_ms(local) / 1000

    def __call__(self) -> float:
        return self.now

    def set(self, local: str) -> None:
        self.now = local_ms(local) / 1000


# --------------------------------------------------------------------------- HTTP receiver


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = '{"errcode":0,"errmsg":"ok"}'
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer (on purpose): not worth a traceback


class Receiver:
    """A real HTTP server on loopback that records every request; `plan` lists the answers
    to give first (then 200 `{"errcode":0}`); `answer_for` decides per request if set."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.plan: list[Answer] = []
        self.answer_for: Callable[[Request], Answer] | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                parts = urlsplit(self.path)
                request = Request(
                    "POST",
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with receiver.lock:
                    if receiver.answer_for is not None:
                        answer = receiver.answer_for(request)
                    else:
                        answer = receiver.plan.pop(0) if receiver.plan else Answer()
                if answer.delay_s:
                    time.sleep(answer.delay_s)  # a slow receiver, on purpose
                with receiver.lock:
                    receiver.requests.append(request)
                data = answer.body.encode()
                self.send_response(answer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()

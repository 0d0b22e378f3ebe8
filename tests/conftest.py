"""Fixtures that start real parts on free loopback ports, with their data in temp dirs.

A test that needs a part this machine lacks fails under CI (CI=true) and skips, saying why,
elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.net import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.path.exists(p)), None
    )
    if path is None:
        reason = f"{binary} not installed (Debian package {package}; .ci/run installs it)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # the server is starting; poll its port again
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Broker:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    command: list[str]

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop as an operator would (SIGTERM: Mosquitto saves its persistence file)."""
        self.proc.terminate()
        self.proc.wait(timeout=10)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, self.proc)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto 2 on a free port, persistence in a temp dir, queue limits raised."""
    binary = require("mosquitto", "mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        # as root Mosquitto drops to user `mosquitto`, which cannot write our temp dir
        + ("user root\n" if os.geteuid() == 0 else "")
        + "persistence true\n"
        f"persistence_location {tmp_path}/\n"
        "max_queued_messages 100000\n"
        "max_inflight_messages 100\n"
        "log_dest none\n"
    )
    broker = Broker("127.0.0.1", port, None, [binary, "-c", str(conf)])  # type: ignore[arg-type]
    broker.start()
    try:
        yield broker
    finally:
        if broker.proc.poll() is None:
            broker.stop()


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Poll `url` until it answers below 500 (the server is up, not just listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # starting: ask again
    raise TimeoutError(f"{url} did not answer after {timeout}s")


@dataclass
class InfluxServer:
    """influxd 1.x on loopback with its data in a temp dir; `stop()`/`start()` keep both."""

    binary: str
    directory: Path
    port: int
    rpc_port: int
    auth: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = self.directory / "influxdb.conf"
        conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            "[meta]\n"
            f'  dir = "{self.directory}/meta"\n'
            "  logging-enabled = false\n"
            "[data]\n"
            f'  dir = "{self.directory}/data"\n'
            f'  wal-dir = "{self.directory}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n"
            "  store-enabled = false\n"
            "[continuous_queries]\n"
            "  enabled = false\n"
            "[http]\n"
            f'  bind-address = "127.0.0.1:{self.port}"\n'
            "  log-enabled = false\n"
            f"  auth-enabled = {'true' if self.auth else 'false'}\n"
        )
        with (self.directory / "influxd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=log
            )
        wait_for_http(f"{self.url}/ping", self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def query(self, statement: str, database: str = "") -> dict[str, object]:
        answer = httpx.post(
            f"{self.url}/query", params={"q": statement, "db": database}, timeout=30
        )
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result


def start_influxd(directory: Path, *, auth: bool = False) -> InfluxServer:
    binary = require("influxd", "influxdb")
    directory.mkdir(parents=True, exist_ok=True)
    server = InfluxServer(binary, directory, free_port(), free_port(), auth)
    server.start()
    return server


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """InfluxDB 1.6.7 for the whole session; tests take their own database (`influx_db`)."""
    server = start_influxd(tmp_path_factory.mktemp("influxd"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxServer) -> Iterator[str]:
    """A fresh, uniquely named database on the session's InfluxDB, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    influxdb.query(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        influxdb.query(f'DROP DATABASE "{name}"')


@dataclass
class VictoriaMetrics:
    url: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics on a free port, keeping back-dated points (`-retentionPeriod=100y`)."""
    binary = require("victoria-metrics", "victoria-metrics")
    directory = tmp_path_factory.mktemp("victoria-metrics")
    port = free_port()
    with (directory / "victoria-metrics.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"-storageDataPath={directory}/data",
                f"-httpListenAddr=127.0.0.1:{port}",
                "-retentionPeriod=100y",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc)
        yield VictoriaMetrics(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

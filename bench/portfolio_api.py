"""Portfolio API latency under 50 connections (part 3 of bench/portfolio.py): `epcmon run
--site DIR --role web` over the city's store and statements (left by part 2 in the
deployment directory), loaded by wrk (bench/api.py's `run_wrk`) route after route, the
anchor `/healthz` measured in the same run, interleaved."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.api import run_wrk
from bench.portfolio_recompute import summarise
from bench.pyspy import Profile
from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 60
"""wrk's request timeout: a slow route's latencies are measured, not dropped as timeouts."""


def routes(base: str, site: str, meter: str) -> list[tuple[str, str]]:
    """The anchor first, `/api/v1/portfolio` last: a route that saturates the web process
    leaves a backlog that would slow whatever is measured after it."""
    latest = f"/api/v1/sites/{site}/meters/{meter}/latest"
    return [
        ("anchor: /healthz", f"{base}/healthz"),
        ("/api/v1/sites", f"{base}/api/v1/sites"),
        (latest, f"{base}{latest}"),
        ("/api/v1/portfolio (warm)", f"{base}/api/v1/portfolio"),
    ]


def web(city: Path, home: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    """The portfolio's web process on a free port, with an engineer key; (process, port, key)."""
    from api.keys import KeyStore, Role

    port = free_port()
    text = (city / "portfolio.toml").read_text()
    (city / "portfolio.toml").write_text(
        text.replace(
            "port = 8000",
            f"port = {port}\nmetrics_port = 0\nworker_metrics_port = 0\n"
            "rate_limit_per_s = 1e6\nrate_burst = 1000000",  # wrk's one key is not a client
        )
    )
    keys = KeyStore(home / "data" / "api-keys.sqlite3")
    key = keys.create(Role.ENGINEER, name="bench")[1]
    keys.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "epcmon.cli", "run", "--site", str(city), "--role", "web"]
    with (home / "web.log").open("ab") as log:
        proc = subprocess.Popen(args, cwd=home, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, key
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.terminate()
                raise RuntimeError(f"the web process did not listen (see {home}/web.log)") from None
            time.sleep(0.05)  # poll the port until uvicorn listens


def measure(
    city: Path, home: Path, site: str, meter: str, seconds: int, connections: int = 50
) -> dict[str, Any]:
    proc, port, key = web(city, home)
    base = f"http://127.0.0.1:{port}"
    try:
        auth = {"Authorization": f"Bearer {key}"}
        t0 = time.perf_counter()
        first = httpx.get(f"{base}/api/v1/portfolio", headers=auth, timeout=300)
        cold = time.perf_counter() - t0
        first.raise_for_status()
        out: dict[str, Any] = {"cold_portfolio_s": cold, "routes": {}}
        cases = routes(base, site, meter)
        for _name, url in cases:
            check = httpx.get(url, headers=auth, timeout=300)
            if check.status_code != 200:
                raise RuntimeError(f"{url}: HTTP {check.status_code} {check.text[:300]}")
        serial = []
        for _ in range(3):  # one request alone, warm: what one user waits
            t0 = time.perf_counter()
            httpx.get(f"{base}/api/v1/portfolio", headers=auth, timeout=300).raise_for_status()
            serial.append(time.perf_counter() - t0)
        out["warm_portfolio_s"] = sorted(serial)[1]
        for name, url in cases:
            if name.startswith("/api/v1/portfolio") and Profile.available():
                with Profile(proc.pid, seconds) as profile:
                    out["routes"][name] = run_wrk(url, key, seconds, connections, TIMEOUT_S)
                out["profile"] = summarise(profile.raw)
            else:
                run_wrk(url, key, 1, 4, TIMEOUT_S)  # warm up
                out["routes"][name] = run_wrk(url, key, seconds, connections, TIMEOUT_S)
        out["rss_mb"] = (
            int(
                next(
                    line.split()[1]
                    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")
                )
            )
            / 1024
        )
        return out
    finally:
        proc.terminate()
        proc.wait(30)

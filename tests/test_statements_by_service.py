"""Statements written by the service: `epcmon run`, left alone on a store with two years of
history, serves the contract's monthly statements through the API with no manual command;
an open or future month is refused by the API and the CLI, and nothing is stored for it.

Regression: `processing/schedule.py` had `Recompute`, but `epcmon run` never started it.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from api.keys import KeyStore, Role
from core.net import free_port

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "sites" / "luan-admin-center.toml"
CONTRACT = "epc-2025-01"
TZ = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.e2e


def _site(tmp_path: Path, api_port: int) -> Path:
    text = SITE.read_text(encoding="utf-8")
    text = text.replace(
        'path = "data/luan-admin-center.duckdb"', f'path = "{tmp_path / "store.duckdb"}"'
    )
    text = text.replace("[api]\n", f'[api]\nkeys_path = "{tmp_path / "keys.sqlite3"}"\n', 1)
    text = text.replace("port = 8000", f"port = {api_port}", 1)
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epcmon.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM statements").fetchone()[0])


async def test_run_writes_and_serves_the_statements_by_itself(tmp_path: Path) -> None:
    today = datetime.now(TZ).date()
    api_port = free_port()
    site = _site(tmp_path, api_port)
    history = _cli(
        "simulate", "history", "--site", str(site), "--from", "2024-07-01",
        "--to", str(today), "--meters", "E-TR1,E-TR2,E-TR3,E-TR4,WX-ROOF", "--no-progress",
    )  # fmt: skip
    assert history.returncode == 0, history.stderr
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _, vendor = keys.create(Role.VENDOR, contracts=(CONTRACT,), name="ESCO")
    keys.close()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "epcmon.cli", "run", "--site", str(site), "--data-dir", str(tmp_path),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started = time.monotonic()
    this_month = today.strftime("%Y-%m")
    listing: list[dict[str, object]] = []
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=30,
            headers={"Authorization": f"Bearer {vendor}"},
        ) as client:
            deadline = started + 240
            while time.monotonic() < deadline:
                try:
                    r = await client.get(f"/api/v1/contracts/{CONTRACT}/statements")
                    if r.status_code == 200:
                        listing = r.json()
                        # the pass writes month by month: done once the running month is there
                        final = sum(e["status"] == "final" for e in listing)
                        if final >= 12 and listing[-1]["month"] == this_month:
                            break
                except httpx.TransportError:
                    pass  # not listening yet
                await asyncio.sleep(0.5)
            took = time.monotonic() - started
            final = [e for e in listing if e["status"] == "final"]
            assert len(final) >= 12, listing
            assert all(e["version"] == 1 for e in final)
            assert listing[-1]["month"] == this_month
            assert listing[-1]["status"] == "provisional"

            closed = final[-1]["month"]
            stmt = (await client.get(f"/api/v1/contracts/{CONTRACT}/statements/{closed}")).json()
            assert stmt["status"] == "final"
            assert stmt["numbers"]["month"]["days_used"] > 0
            running = await client.get(f"/api/v1/contracts/{CONTRACT}/statements/{this_month}")
            assert running.json()["status"] == "provisional"
            future = (today.replace(day=1) + timedelta(days=400)).strftime("%Y-%m")
            refused = await client.get(f"/api/v1/contracts/{CONTRACT}/statements/{future}")
            assert refused.status_code == 422
            assert "has not ended" in refused.json()["detail"]

            health = await client.get("/healthz")
            assert health.json()["parts"]["recompute"]["state"] == "running"
            assert health.json()["parts"]["api"]["restarts"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert took < 240

    # The CLI refuses a month that has not ended, before anything is fitted or stored.
    statements_db = tmp_path / "store.duckdb.statements.sqlite"
    before = _rows(statements_db)
    for month in (today.strftime("%Y-%m"), future):
        run = _cli(
            "savings", "report", "--contract", CONTRACT, "--month", month, "--site", str(site)
        )
        assert run.returncode != 0
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, run.stderr
        assert "has not ended" in lines[0]
        assert "nan" not in run.stdout + run.stderr
    assert _rows(statements_db) == before

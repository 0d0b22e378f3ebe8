"""`epcmon run`, left alone on a store holding last month, writes last month's energy report
beside the statements with no manual command, lists it in the API and serves it to an
engineer; `/healthz` names the `reports` part."""

from __future__ import annotations

import asyncio
import io
import signal
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

openpyxl = pytest.importorskip("openpyxl")

ROOT = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Asia/Shanghai")

pytestmark = pytest.mark.e2e


def _site(tmp_path: Path, api_port: int) -> Path:
    """The reference site on a temp store and port, without its contract (no statement to
    wait for), keeping one month's report from the first day after the month ends."""
    text = (ROOT / "sites" / "luan-admin-center.toml").read_text(encoding="utf-8")
    text = text[: text.index("[[contracts]]")] + text[text.index("[billing.tariff]") :]
    text = text.replace(
        'path = "data/luan-admin-center.duckdb"', f'path = "{tmp_path / "store.duckdb"}"'
    )
    text = text.replace("[api]\n", f'[api]\nkeys_path = "{tmp_path / "keys.sqlite3"}"\n', 1)
    text = text.replace("port = 8000", f"port = {api_port}", 1)
    text += "\n[reports]\nsettle_days = 0\nmonths = 1\n"
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_run_writes_last_months_report_and_serves_it(tmp_path: Path) -> None:
    today = datetime.now(TZ).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    month = last_month.strftime("%Y-%m")
    api_port = free_port()
    site = _site(tmp_path, api_port)
    history = subprocess.run(
        [sys.executable, "-m", "epcmon.cli", "simulate", "history", "--site", str(site),
         "--from", str(last_month - timedelta(days=2)), "--to", str(today), "--no-progress"],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=300,
    )  # fmt: skip
    assert history.returncode == 0, history.stderr
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _, engineer = keys.create(Role.ENGINEER, name="facility office")
    keys.close()

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "epcmon.cli", "run", "--role", "api", "--site", str(site),
        "--data-dir", str(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    listing: list[dict[str, object]] = []
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=30,
            headers={"Authorization": f"Bearer {engineer}"},
        ) as client:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not listing:
                try:
                    r = await client.get("/api/v1/reports")  # lists, never writes
                    if r.status_code == 200:
                        listing = r.json()
                except httpx.TransportError:
                    pass  # not listening yet
                if not listing:
                    await asyncio.sleep(0.5)
            assert [e["month"] for e in listing] == [month]
            reports = tmp_path / "reports"  # beside store.duckdb.statements.sqlite
            assert sorted(p.name for p in reports.iterdir()) == [
                f"luan-admin-center-energy-report-{month}.{ext}" for ext in ("json", "pdf", "xlsx")
            ]
            xlsx = await client.get(f"/api/v1/reports/{month}.xlsx")
            assert xlsx.status_code == 200
            book = openpyxl.load_workbook(io.BytesIO(xlsx.content), data_only=True)
            assert "部门 Departments" in book.sheetnames
            bills = (await client.get("/api/v1/bills", params={"month": month})).json()
            assert listing[0]["kwh"] == bills["site"]["kwh"] > 0
            health = (await client.get("/healthz")).json()
            assert health["parts"]["reports"]["state"] == "running"
            assert health["parts"]["reports"]["restarts"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert f"monthly report {month} written" in text

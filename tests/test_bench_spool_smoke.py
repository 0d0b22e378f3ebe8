"""The spool catch-up benchmark still runs: `python -m bench.spool_catchup --quick` exits 0,
having spooled an outage of a real InfluxDB 1.6.7 and counted every reading back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]


def test_spool_catchup_benchmark_quick_run(tmp_path: Path) -> None:
    require("influxd", "influxdb")
    done = subprocess.run(
        [sys.executable, "-m", "bench.spool_catchup", "--quick", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a 5-minute outage catches up in" in done.stdout
    assert "x the ingest rate" in done.stdout
    assert "one write per spooled batch" in done.stdout
    assert "CHECK FAILED" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []  # the work directory is cleaned up

"""The portfolio benchmark still runs: `python -m bench.portfolio --quick` exits 0, prints each
figure beside its anchor and the capacity statement, and cleans up its work directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]


def test_portfolio_benchmark_quick_run(tmp_path: Path) -> None:
    require("mosquitto", "mosquitto")
    require("victoria-metrics", "victoria-metrics")
    require("wrk", "wrk")
    done = subprocess.run(
        [sys.executable, "-m", "bench.portfolio", "--quick", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "bare-1" in out  # ingest beside the bare subscribers
    assert "shard-1" in out  # the collectors: one process in a quick run
    assert "readings stored (lost 0)" in out
    assert "recompute of every statement" in out
    assert "growth" in out
    assert "anchor: /healthz" in out
    assert "/api/v1/portfolio (warm)" in out
    assert "NON-2XX" not in out
    assert "capacity of this machine" in out
    assert list(tmp_path.iterdir()) == []  # the work directory is cleaned up

"""The coverage benchmark still runs: one seed, no real meters, no opendsm (seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_coverage_benchmark_one_seed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.coverage", "--seeds", "1", "--no-real", "--no-opendsm"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| simulator truth")]
    assert [row.split(" | ")[1] for row in rows] == ["daily", "hourly"]
    assert all("| 12 |" in row for row in rows)  # twelve reporting months each
    assert "| 2026-02 |" in done.stdout  # the month-by-month table

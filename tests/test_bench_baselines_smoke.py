"""The baselines benchmark still runs: `python -m bench.baselines --quick` exits 0 (no opendsm)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_baselines_benchmark_quick_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.baselines", "--quick", "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "daily model fit, CPU time per meter-year" in done.stdout
    assert "hourly model fit, CPU time per meter-year" in done.stdout
    assert "out-of-sample CV(RMSE)" in done.stdout
    assert list(tmp_path.iterdir()) == []  # the work directory is cleaned up

"""The Modbus drop benchmark still runs: `python -m bench.modbus_drops --quick` exits 0 and
prints both figures (the anchor and the dropping gateway) beside the target."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_modbus_drop_benchmark_quick_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.modbus_drops", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    anchor = re.search(r"0 % of connections dropped .*?(\d+\.\d+) %", done.stdout)
    dropping = re.search(
        r"15 % dropped \((\d+\.\d) % of requests measured.*?(\d+\.\d+) %", done.stdout
    )
    assert anchor, done.stdout
    assert dropping, done.stdout
    assert float(anchor.group(1)) == 100.0  # a gateway that behaves loses nothing
    assert 5.0 < float(dropping.group(1)) < 30.0  # the faults were there
    assert float(dropping.group(2)) > 80.0  # quick sizes: a smoke test, not the target
    assert ">= 95 %" in done.stdout
    assert "Traceback" not in done.stderr

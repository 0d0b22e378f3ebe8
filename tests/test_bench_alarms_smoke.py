"""The alarm-detection benchmark: its scoring against the truth, and a short run of the real
engine over a simulated week (`python -m bench.alarms --days 7`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from alarms.model import Alarm, Category, Severity, Transition
from bench.alarm_scoring import report, score
from simulators.anomalies import Truth

REPO = Path(__file__).resolve().parents[1]
HOUR = 3_600_000


def raised(rule: str, subject: str, at_ms: int, meters: tuple[str, ...] = ()) -> Transition:
    alarm = Alarm(1, rule, subject, "active", Severity.WARNING, Category.CONSUMPTION, "m",
                  at_ms, at_ms, meters=meters or (subject,))  # fmt: skip
    return Transition("raised", alarm, at_ms)


def test_a_detection_is_the_first_matching_alarm_within_the_window() -> None:
    leak = Truth("leak", "W-M-HI", 0, 24 * HOUR, "consumption",
                 ("night_water_flow", "daily_use"), ("W-M-HI", "W-MAIN"))  # fmt: skip
    quiet = Truth("silent", "E-D02", 100 * HOUR, 102 * HOUR, "data", ("meter_offline",),
                  ("E-D02",))  # fmt: skip
    got = score(
        [leak, quiet],
        [
            raised("meter_offline", "W-MAIN", 2 * HOUR),  # the wrong rule for a leak: false
            raised("night_water_flow", "W-MAIN", 6 * HOUR),  # the meter above: caught
            raised("daily_use", "W-M-HI", 30 * HOUR),  # later, still within the grace
            raised("meter_offline", "E-D02", 100 * HOUR + HOUR // 2),
            raised("daily_use", "E-D09", 50 * HOUR),  # nothing there: false
        ],
        meter_months=10,
    )
    assert [d.delay_ms for d in got.detections] == [6 * HOUR, HOUR // 2]
    assert [t.alarm.subject for t in got.false_alarms] == ["W-MAIN", "E-D09"]
    assert got.share_detected == 1.0
    assert got.false_per_meter_month == 0.2
    assert got.median_delay_h("data") == 0.5
    missed = score([quiet], [raised("meter_offline", "E-D02", 110 * HOUR)], meter_months=1)
    assert missed.detected == 0  # after the end plus six hours: too late to count
    lines = report(got, score([], [raised("base_load", "E-D01", 0)], meter_months=10))
    assert "detected: 2/2 = 100.0% (target ≥ 95%)" in lines
    assert "false alarms by rule: base_load 1" in lines


def test_alarm_benchmark_short_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.alarms", "--days", "7", "--per-kind", "1",
         "--warmup-days", "8"],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"^detected: \d+/\d+ = [\d.]+% \(target ≥ 95%\)$", out, re.M), out
    assert "median time to detection, data" in out
    assert "(target ≤ 1.0 h)" in out
    assert re.search(r"false alarms on a span without anomalies: \d+ over 27 meter-months", out)
    assert "highest 15-minute transformer load without anomalies" in out
    assert re.search(r"^silent +1 +1 ", out, re.M), out  # the silent meter is caught


def test_the_replay_evaluates_each_rule_when_its_verdict_can_change() -> None:
    from bench.alarms import FAST_RULES, instants
    from tests.sim_helpers import site

    day = 1_751_299_200_000  # 2025-07-01 00:00 in Lu'an (UTC+8)
    zoom = [(day + 10 * HOUR + 1, day + 11 * HOUR)]
    steps = dict(instants(site(), day, day + 24 * HOUR, 15 * 60_000, zoom, everywhere=False))
    assert len(steps) == 24 + 3  # every hour, and the quarters inside the zoom
    assert steps[day + 10 * HOUR + 15 * 60_000] == FAST_RULES
    assert {"meter_offline", "transformer_load"} <= FAST_RULES
    assert "daily_use" not in FAST_RULES
    hourly = steps[day + 3 * HOUR]
    assert hourly is not None
    assert {"out_of_hours", "night_water_flow", "meter_offline"} <= hourly
    assert "daily_use" not in hourly
    assert "base_load" not in hourly
    assert "base_load" in (steps[day + 5 * HOUR] or ())  # the night's end
    assert "daily_use" in (steps[day + 24 * HOUR] or ())  # local midnight
    every = instants(site(), day, day + HOUR, 15 * 60_000, [], everywhere=True)
    assert every == [(day + k * 15 * 60_000, None) for k in range(1, 5)]


def test_the_engines_quick_median_and_percentile_are_numpys() -> None:
    """The benchmark made them quick (they run per meter and hour at every evaluation); the
    verdicts must not move: the same numbers as numpy's, to the last bit."""
    import numpy as np

    from alarms.context import percentile, robust

    rng = np.random.default_rng(1)
    for n in [*range(1, 40), 700, 701]:
        v = rng.gamma(2.0, 3.0, n)
        assert percentile(v, 99) == float(np.percentile(v, 99))
        m = float(np.median(v))
        assert robust(v) == (m, 1.4826 * float(np.median(np.abs(v - m))))
    assert robust(np.array([np.nan, 1.0, 3.0])) == (2.0, 1.4826)

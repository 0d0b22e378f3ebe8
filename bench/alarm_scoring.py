"""Scoring alarms against the simulators' ground truth (pure).

    s = score(truth_table(site, anomalies), transitions, meter_months=116 * 12)
    s.share_detected, s.median_delay_h("data"), s.false_per_meter_month

An anomaly is *detected* by the first alarm raised at or after its start, and no later than
its end plus its category's grace (`GRACE_MS`), whose rule is one of the anomaly's rules
(`simulators.anomalies.RULES`) and whose subject, or one of whose meters, is a meter that
shows the anomaly (its own, or for a physical anomaly one above it). The time to detection is
from the anomaly's true start to that alarm's raising. A *false alarm* is an alarm raised
that matches no anomaly's window; on a span without anomalies, every alarm raised is one.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from alarms.model import Alarm, Transition
from simulators.anomalies import Truth

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

GRACE_MS: dict[str, int] = {"data": 6 * HOUR_MS, "capacity": 6 * HOUR_MS, "consumption": 2 * DAY_MS}
"""How long after an anomaly's end an alarm still counts as catching it."""

TARGET_DETECTED = 0.95
TARGET_DELAY_H: dict[str, float] = {"data": 1.0, "capacity": 1.0, "consumption": 24.0}
"""Median time to detection, hours (issue 15)."""
TARGET_FALSE_PER_METER_MONTH = 0.1
CATEGORIES = ("data", "consumption", "capacity")


def matches(truth: Truth, alarm: Alarm) -> bool:
    """The alarm's rule and meters are those of the anomaly."""
    if alarm.rule not in truth.rules:
        return False
    return alarm.subject in truth.meters or bool(set(alarm.meters) & set(truth.meters))


def window(truth: Truth) -> tuple[int, int | None]:
    """When an alarm raised catches it: [start, end + grace]; None: open (it never ends)."""
    if truth.end_ms is None:
        return truth.start_ms, None
    return truth.start_ms, truth.end_ms + GRACE_MS[truth.category]


def _inside(at_ms: int, span: tuple[int, int | None]) -> bool:
    return at_ms >= span[0] and (span[1] is None or at_ms <= span[1])


@dataclass(frozen=True)
class Detection:
    truth: Truth
    raised: Transition | None
    """The alarm that caught it first; None: missed."""

    @property
    def delay_ms(self) -> int | None:
        return None if self.raised is None else self.raised.at_ms - self.truth.start_ms


@dataclass(frozen=True)
class Score:
    detections: tuple[Detection, ...]
    false_alarms: tuple[Transition, ...]
    meter_months: float

    @property
    def detected(self) -> int:
        return sum(d.raised is not None for d in self.detections)

    @property
    def share_detected(self) -> float:
        return self.detected / len(self.detections) if self.detections else float("nan")

    @property
    def false_per_meter_month(self) -> float:
        return len(self.false_alarms) / self.meter_months if self.meter_months else float("nan")

    def of(self, *, category: str | None = None, kind: str | None = None) -> list[Detection]:
        return [
            d
            for d in self.detections
            if (category is None or d.truth.category == category)
            and (kind is None or d.truth.kind == kind)
        ]

    def median_delay_h(self, category: str | None = None, kind: str | None = None) -> float:
        """Median time to detection of the detected ones, hours (nan: none detected)."""
        delays = [d.delay_ms for d in self.of(category=category, kind=kind)]
        found = [x / HOUR_MS for x in delays if x is not None]
        return statistics.median(found) if found else float("nan")


def score(
    truths: Sequence[Truth], transitions: Sequence[Transition], *, meter_months: float
) -> Score:
    raised = sorted((t for t in transitions if t.kind == "raised"), key=lambda t: t.at_ms)
    found: list[Detection] = []
    for truth in sorted(truths, key=lambda t: t.start_ms):
        span = window(truth)
        first = next(
            (t for t in raised if _inside(t.at_ms, span) and matches(truth, t.alarm)), None
        )
        found.append(Detection(truth, first))
    false = tuple(
        t
        for t in raised
        if not any(_inside(t.at_ms, window(tr)) and matches(tr, t.alarm) for tr in truths)
    )
    return Score(tuple(found), false, meter_months)


def _by_rule(raised: Sequence[Transition]) -> str:
    """`daily_use 3, meter_offline 1`: how many alarms of each rule, most first."""
    counts = Counter(t.alarm.rule for t in raised)
    return ", ".join(f"{rule} {n}" for rule, n in counts.most_common())


def _hours(h: float) -> str:
    if h != h:  # nan
        return "–"
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def report(anomalies: Score, clean: Score | None) -> list[str]:
    """The figures beside their targets, one line each."""
    out = [f"{'kind':<16}{'injected':>9}{'detected':>10}{'median to detection':>22}"]
    kinds = sorted({d.truth.kind for d in anomalies.detections})
    for kind in kinds:
        ds = anomalies.of(kind=kind)
        hit = sum(d.raised is not None for d in ds)
        out.append(
            f"{kind:<16}{len(ds):>9}{hit:>10}{_hours(anomalies.median_delay_h(kind=kind)):>22}"
        )
    out.append("")
    share = anomalies.share_detected
    out.append(
        f"detected: {anomalies.detected}/{len(anomalies.detections)} = {share:.1%} "
        f"(target ≥ {TARGET_DETECTED:.0%})"
    )
    for cat in CATEGORIES:
        ds = anomalies.of(category=cat)
        if not ds:
            continue
        hit = sum(d.raised is not None for d in ds)
        out.append(
            f"median time to detection, {cat} ({hit}/{len(ds)} detected): "
            f"{_hours(anomalies.median_delay_h(category=cat))} "
            f"(target ≤ {_hours(TARGET_DELAY_H[cat])})"
        )
    out.append(
        f"alarms raised matching no anomaly, on the anomalies' span: {len(anomalies.false_alarms)}"
        f" ({anomalies.false_per_meter_month:.3f} per meter-month)"
        + (f": {_by_rule(anomalies.false_alarms)}" if anomalies.false_alarms else "")
    )
    if clean is not None:
        if clean.false_alarms:
            out.append(f"false alarms by rule: {_by_rule(clean.false_alarms)}")
        out.append(
            f"false alarms on a span without anomalies: {len(clean.false_alarms)} over "
            f"{clean.meter_months:,.0f} meter-months = {clean.false_per_meter_month:.3f} per "
            f"meter-month (target ≤ {TARGET_FALSE_PER_METER_MONTH})"
        )
    return out

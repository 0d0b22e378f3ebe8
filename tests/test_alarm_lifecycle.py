"""The alarm life cycle: a minimum duration before raising, hysteresis before clearing (a
flapping meter makes one alarm), updates when severity or value move, resuming after a
restart, acknowledgement."""

from __future__ import annotations

from alarms.lifecycle import Lifecycle, Timing, UpdatePolicy, acknowledged
from alarms.model import Alarm, Category, Condition, Severity

MIN = 60_000
T0 = 1_750_000_000_000


def cond(active: bool, *, value: float = 1.0, severity: Severity = Severity.WARNING,
         subject: str = "E-1", rule: str = "meter_offline") -> Condition:  # fmt: skip
    return Condition(rule, subject, active, severity, Category.DATA, "表计离线", value, 0.5, "min",
                     (subject,))  # fmt: skip


def cycle(raise_min: int = 5, clear_min: int = 5) -> Lifecycle:
    return Lifecycle(lambda _rule: Timing(raise_min * MIN, clear_min * MIN), next_id=7)


def kinds(transitions: list) -> list[str]:  # type: ignore[type-arg]
    return [t.kind for t in transitions]


def test_a_flapping_meter_makes_one_alarm_not_hundreds() -> None:
    life = cycle(raise_min=5, clear_min=5)
    seen = []
    for minute in range(240):  # four hours, down one minute, up the next
        seen += life.observe([cond(minute % 2 == 0)], T0 + minute * MIN)
    for minute in range(240, 260):  # then it stays up
        seen += life.observe([cond(False)], T0 + minute * MIN)
    assert kinds(seen) == ["raised", "cleared"]
    raised, cleared = seen
    assert raised.alarm.id == cleared.alarm.id == 7
    assert raised.alarm.raised_ms == T0  # since when: the flapping began
    assert raised.at_ms == T0 + 6 * MIN  # held (with short gaps) for the minimum duration
    assert cleared.at_ms == T0 + 244 * MIN  # last down at minute 238: up for five minutes


def test_without_hysteresis_the_same_input_makes_an_alarm_per_flap() -> None:
    life = cycle(raise_min=0, clear_min=0)
    seen = []
    for minute in range(240):
        seen += life.observe([cond(minute % 2 == 0)], T0 + minute * MIN)
    assert kinds(seen).count("raised") == 120  # what the defaults are there to prevent


def test_a_blip_shorter_than_the_minimum_duration_raises_nothing() -> None:
    life = cycle(raise_min=5, clear_min=0)
    seen = []
    for minute in range(4):
        seen += life.observe([cond(True)], T0 + minute * MIN)
    seen += life.observe([cond(False)], T0 + 4 * MIN)
    seen += life.observe([cond(True)], T0 + 5 * MIN)  # a new episode: the clock starts over
    assert seen == []
    assert life.raised == frozenset()
    seen += life.observe([cond(True)], T0 + 10 * MIN)
    assert kinds(seen) == ["raised"]
    assert seen[0].alarm.raised_ms == T0 + 5 * MIN


def test_a_subject_not_judged_keeps_its_state() -> None:
    life = cycle(raise_min=0, clear_min=0)
    assert kinds(life.observe([cond(True)], T0)) == ["raised"]
    assert life.observe([], T0 + 60 * MIN) == []  # the rule could not judge it (no data)
    assert life.raised == {("meter_offline", "E-1")}
    other = cond(True, subject="E-2")
    assert kinds(life.observe([other], T0 + 61 * MIN)) == ["raised"]
    assert [a.id for a in life.open_alarms()] == [7, 8]


def test_updates_when_severity_changes_or_the_value_moves_materially() -> None:
    life = Lifecycle(lambda _r: Timing(), update=UpdatePolicy(ratio=0.25, every_ms=60 * MIN))
    assert kinds(life.observe([cond(True, value=100)], T0)) == ["raised"]
    assert life.observe([cond(True, value=110)], T0 + MIN) == []  # 10 %: not material
    assert life.observe([cond(True, value=200)], T0 + 2 * MIN) == []  # material, too soon
    changed = life.observe([cond(True, value=200, severity=Severity.CRITICAL)], T0 + 3 * MIN)
    assert kinds(changed) == ["updated"]  # severity: at once
    assert changed[0].alarm.severity is Severity.CRITICAL
    assert life.observe([cond(True, value=210, severity=Severity.CRITICAL)], T0 + 70 * MIN) == []
    moved = life.observe([cond(True, value=300, severity=Severity.CRITICAL)], T0 + 70 * MIN)
    assert kinds(moved) == ["updated"]  # +50 % of what was told, an hour later
    assert life.open_alarms()[0].value == 300  # the shown value follows every evaluation


def test_resumes_the_stored_alarms_after_a_restart() -> None:
    stored = Alarm(41, "meter_offline", "E-1", "active", Severity.WARNING, Category.DATA,
                   "表计离线", T0 - 60 * MIN, T0 - 30 * MIN, value=30.0)  # fmt: skip
    life = cycle(raise_min=5, clear_min=5)
    life.resume([stored])
    assert life.observe([cond(True)], T0) == []  # still offline: the same alarm, not a new one
    assert life.observe([cond(False)], T0 + MIN) == []
    done = life.observe([cond(False)], T0 + 7 * MIN)
    assert kinds(done) == ["cleared"]
    assert done[0].alarm.id == 41
    assert done[0].alarm.cleared_ms == T0 + 7 * MIN
    assert kinds(life.observe([cond(True, subject="E-9")], T0 + 8 * MIN)) == []
    assert kinds(life.observe([cond(True, subject="E-9")], T0 + 14 * MIN)) == ["raised"]
    assert life.open_alarms()[0].id == 42  # ids go on after the stored ones


def test_retire_clears_the_alarms_of_a_rule_switched_off() -> None:
    life = cycle(raise_min=0)
    life.observe([cond(True), cond(True, rule="base_load")], T0)
    done = life.retire(["base_load"], T0 + MIN, "rule switched off")
    assert [(t.kind, t.alarm.rule) for t in done] == [("cleared", "base_load")]
    assert "rule switched off" in done[0].alarm.message
    assert life.raised == {("meter_offline", "E-1")}


def test_acknowledged_records_who_and_when_and_nothing_else() -> None:
    life = cycle(raise_min=0)
    (raised,) = life.observe([cond(True)], T0)
    t = acknowledged(raised.alarm, "张工 (key 1a2b3c4d)", T0 + 5 * MIN)
    assert t.kind == "acknowledged"
    assert t.alarm.acknowledged_by == "张工 (key 1a2b3c4d)"
    assert t.alarm.acknowledged_ms == T0 + 5 * MIN
    assert t.alarm.state == "active"
    assert t.alarm.severity is raised.alarm.severity

"""The alarm store: alarms with their history in SQLite, acknowledgements, listing (active
first, filtered, paged), counts for /metrics, and what survives reopening the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from alarms.lifecycle import Lifecycle, Timing
from alarms.model import Category, Condition, Severity
from alarms.store import AlarmStore, default_path
from core.errors import NotFound
from tests.alarm_fixtures import tiny_site

T0 = 1_750_000_000_000
MIN = 60_000


def cond(subject: str, active: bool = True, *, severity: Severity = Severity.WARNING,
         rule: str = "meter_offline", value: float = 20.0) -> Condition:  # fmt: skip
    return Condition(rule, subject, active, severity, Category.DATA, f"{subject} 离线", value,
                     15.0, "min", (subject,))  # fmt: skip


def life(store: AlarmStore) -> Lifecycle:
    cycle = Lifecycle(lambda _r: Timing(), next_id=store.next_id())
    cycle.resume(store.open_alarms())
    return cycle


def test_history_of_an_alarm_from_raised_to_cleared(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path / "alarms.sqlite3")
    cycle = life(store)
    (raised,) = store.record(cycle.observe([cond("E-1")], T0))
    assert raised.alarm.id == 1
    store.record(cycle.observe([cond("E-1", severity=Severity.CRITICAL)], T0 + MIN))
    ack = store.acknowledge(1, "张工 (key 1a2b3c4d)", T0 + 2 * MIN)
    assert ack.alarm.acknowledged_by == "张工 (key 1a2b3c4d)"
    (cleared,) = store.record(cycle.observe([cond("E-1", False)], T0 + 3 * MIN))
    # the acknowledgement made through the API survives the engine's later transitions
    assert cleared.alarm.acknowledged_by == "张工 (key 1a2b3c4d)"
    assert cleared.alarm.acknowledged_ms == T0 + 2 * MIN
    history = store.history(1)
    assert [(e.kind, e.at_ms) for e in history] == [
        ("raised", T0), ("updated", T0 + MIN), ("acknowledged", T0 + 2 * MIN),
        ("cleared", T0 + 3 * MIN),
    ]  # fmt: skip
    assert history[1].severity is Severity.CRITICAL
    assert history[2].by == "张工 (key 1a2b3c4d)"
    alarm = store.get(1)
    assert alarm.state == "cleared"
    assert alarm.cleared_ms == T0 + 3 * MIN
    assert alarm.meters == ("E-1",)
    store.close()
    again = AlarmStore(tmp_path / "alarms.sqlite3")  # what a restarted service finds
    assert again.get(1) == alarm
    assert again.next_id() == 2
    assert again.open_alarms() == []


def test_listing_puts_active_first_then_severity_then_newest() -> None:
    store = AlarmStore(":memory:")
    cycle = life(store)
    store.record(cycle.observe([cond("A")], T0))
    store.record(cycle.observe([cond("B", severity=Severity.CRITICAL)], T0 + MIN))
    store.record(cycle.observe([cond("C")], T0 + 2 * MIN))
    store.record(cycle.observe([cond("A", False)], T0 + 3 * MIN))
    active = store.alarms()
    assert [a.subject for a in active.alarms] == ["B", "C"]
    assert active.total == 2
    every = store.alarms(state="all")
    assert [a.subject for a in every.alarms] == ["B", "C", "A"]
    assert [a.subject for a in store.alarms(state="cleared").alarms] == ["A"]
    paged = store.alarms(state="all", limit=1, offset=1)
    assert [a.subject for a in paged.alarms] == ["C"]
    assert paged.total == 3
    recent = store.alarms(state="all", since_ms=T0 + 2 * MIN)  # raised or changed since
    assert {a.subject for a in recent.alarms} == {"C", "A"}
    only_b = store.alarms(state="all", visible=lambda a: "B" in a.meters)
    assert [a.subject for a in only_b.alarms] == ["B"]
    assert only_b.total == 1
    assert store.active_counts() == {
        ("meter_offline", "critical"): 1,
        ("meter_offline", "warning"): 1,
    }


def test_refresh_keeps_the_shown_value_current_without_history() -> None:
    store = AlarmStore(":memory:")
    cycle = life(store)
    store.record(cycle.observe([cond("E-1", value=20.0)], T0))
    cycle.observe([cond("E-1", value=22.0)], T0 + MIN)
    store.refresh(cycle.open_alarms())
    assert store.get(1).value == 22.0
    assert [e.kind for e in store.history(1)] == ["raised"]


def test_unknown_alarm_is_not_found() -> None:
    store = AlarmStore(":memory:")
    with pytest.raises(NotFound, match="no alarm 9"):
        store.acknowledge(9, "someone", T0)


def test_the_file_lives_beside_the_statements_unless_the_site_says() -> None:
    site = tiny_site()
    beside = Path(site.storage.statements_file).parent / "alarms.sqlite3"
    assert default_path(site) == str(beside)
    assert default_path(site, "/srv/epcmon/statements.sqlite3") == "/srv/epcmon/alarms.sqlite3"
    assert default_path(site, ":memory:") == ":memory:"
    assert (
        default_path(tiny_site({"file": "/var/lib/epcmon/a.sqlite3"}))
        == "/var/lib/epcmon/a.sqlite3"
    )

"""The alarm engine: incremental reads, meters that appear late, a replay over prefetched
history that sees what the live service saw, a failing rule that does not stop the others,
transitions stored and dispatched once, and a restart that resumes the stored alarms."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from alarms.engine import AlarmEngine
from alarms.model import Category, Transition
from alarms.rules import REGISTRY, Rule
from alarms.store import AlarmStore
from core.readings import ReadingBatch
from storage.duckdb_store import DuckDBStore
from tests.alarm_fixtures import DAY, HOUR, counter, local_ms, office, tiny_site, usual

NOW = local_ms(2025, 6, 18, 4, 30)
START = NOW - 35 * DAY


class Recorder:
    """A dispatcher that keeps what it was handed."""

    def __init__(self) -> None:
        self.got: list[Transition] = []

    def dispatch(self, transitions: list[Transition]) -> None:
        self.got += transitions


def active(conditions: list, rule: str | None = None) -> dict[tuple[str, str], float | None]:  # type: ignore[type-arg]
    return {
        (c.rule, c.subject): c.value
        for c in conditions
        if c.active and (rule is None or c.rule == rule)
    }


def test_later_evaluations_read_only_what_arrived() -> None:
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW))
    engine = AlarmEngine(tiny_site(), store, AlarmStore(":memory:"))
    engine.evaluate(NOW)
    series = len(engine.window.series)
    first = engine.window.reads
    assert series >= 6  # four meters' counters, the weather, the incomer's power
    later = NOW + 60_000
    store.write(counter("E-1", "energy_import", office, NOW, later + 1, step_ms=60_000,
                        first=float(store.latest(["E-1"])[0].value) + 100))  # fmt: skip
    engine.evaluate(later)
    assert engine.window.reads - first == series  # one raw read per series, nothing rolled up
    view = engine.window.view(("E-1", "energy_import"), later)
    assert view is not None
    assert view.last_ts == later


def test_a_meter_reporting_for_the_first_time_is_read_at_once() -> None:
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW, skip=("W-1",)))
    engine = AlarmEngine(tiny_site(), store, AlarmStore(":memory:"))
    engine.evaluate(NOW)
    assert "W-1" not in engine.primary
    store.write(counter("W-1", "volume", lambda t: 1.0 + 0 * t, NOW, NOW + 20 * 60_000,
                        step_ms=60_000))  # fmt: skip
    found = engine.evaluate(NOW + 20 * 60_000)
    assert engine.primary["W-1"] == "volume"
    offline = {c.subject: c.active for c in found if c.rule == "meter_offline"}
    assert offline["W-1"] is False


def test_late_readings_within_late_s_are_seen() -> None:
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW - 30 * 60_000))  # the last half hour arrives late
    engine = AlarmEngine(tiny_site(), store, AlarmStore(":memory:"))
    assert ("meter_offline", "E-1") in active(engine.evaluate(NOW))
    store.write(usual(NOW - 30 * 60_000, NOW + 60_000))  # a spool replays it, ten minutes on
    assert ("meter_offline", "E-1") not in active(engine.evaluate(NOW + 60_000))


def test_a_replay_over_prefetched_history_sees_what_the_live_service_saw() -> None:
    """The benchmark's way: load a stretch once, then evaluate instant after instant."""
    store = DuckDBStore(":memory:")
    leak_from = NOW - 30 * HOUR
    batch = usual(START, NOW + 6 * HOUR, rates={
        "W-1": lambda t: np.where(t >= leak_from, 1.0, 0.0) + 0.5 + 0.0 * t,
        "E-1": lambda t: office(t) + np.where(t >= NOW - 3 * HOUR, 20.0, 0.0),
    })  # fmt: skip
    store.write(batch)
    instants = [NOW + i * 15 * 60_000 for i in range(8)]
    live_store = DuckDBStore(":memory:")
    live = AlarmEngine(tiny_site(), live_store, AlarmStore(":memory:"))
    replay = AlarmEngine(tiny_site(), store, AlarmStore(":memory:"))
    replay.prefetch(instants[0], instants[-1] + 1)
    reads = replay.window.reads
    for now in instants:
        live_store.write(_until(batch, now))  # the live store holds nothing after now
        seen_live = active(live.evaluate(now))
        seen_replay = active(replay.evaluate(now))
        assert seen_replay == seen_live, now
    assert replay.window.reads == reads  # nothing read after the prefetch
    assert ("night_water_flow", "W-1") in seen_replay
    assert ("out_of_hours", "E-1") in seen_replay


def _until(batch: ReadingBatch, now: int) -> ReadingBatch:
    keep = batch.ts_ms <= now
    return ReadingBatch(batch.meter_id[keep], batch.quantity[keep], batch.ts_ms[keep],
                        batch.value[keep])  # fmt: skip


def test_a_failing_rule_is_named_in_health_and_the_others_go_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_ctx: object, _s: object) -> list[object]:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(REGISTRY, "base_load", Rule("base_load", Category.CONSUMPTION, broken))
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW))
    engine = AlarmEngine(tiny_site(), store, AlarmStore(":memory:"))
    caplog.set_level(logging.ERROR, "epcmon.alarms")
    for i in range(3):
        found = engine.evaluate(NOW + i * 60_000)
    assert {c.rule for c in found} >= {"meter_offline", "daily_use"}  # the others went on
    assert engine.health.snapshot().conditions["alarms base_load"].detail == (
        "ZeroDivisionError: division by zero"
    )
    said = [r for r in caplog.records if r.name == "epcmon.alarms"]
    assert [r.getMessage() for r in said] == ["alarm rule base_load failed"]  # logged once
    monkeypatch.undo()
    engine.evaluate(NOW + 5 * 60_000)
    assert "alarms base_load" not in engine.health.snapshot().conditions


def test_transitions_are_stored_and_dispatched_once_and_a_restart_resumes() -> None:
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW, skip=("E-1",)))
    store.write(counter("E-1", "energy_import", office, START, NOW - HOUR))  # silent an hour
    alarms = AlarmStore(":memory:")
    recorder = Recorder()
    site = tiny_site({"rules": {"meter_offline": {"raise_after_s": 0, "min_silence_s": 1800}}})
    engine = AlarmEngine(site, store, alarms, dispatcher=recorder, clock=lambda: NOW + 120_000)
    engine.step(NOW)
    engine.step(NOW + 60_000)  # still offline: nothing new
    assert [(t.kind, t.alarm.subject) for t in recorder.got] == [("raised", "E-1")]
    assert [a.subject for a in alarms.open_alarms()] == ["E-1"]

    # the part restarts (a new run() after a failure): the stored alarm is taken over
    async def one_evaluation() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        await asyncio.sleep(0)  # let it start; stop after its first evaluation
        stop.set()
        await task

    asyncio.run(one_evaluation())
    assert [(t.kind, t.alarm.subject) for t in recorder.got] == [("raised", "E-1")]
    assert len(alarms.alarms(state="all").alarms) == 1


def test_switching_a_rule_off_clears_its_alarms() -> None:
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW, skip=("E-1",)))
    alarms = AlarmStore(":memory:")
    site = tiny_site({"rules": {"meter_offline": {"raise_after_s": 0}}})
    engine = AlarmEngine(site, store, alarms)
    engine.evaluate(NOW - DAY)  # the engine started a day ago
    engine.step(NOW)
    assert [a.subject for a in alarms.open_alarms()] == ["E-1"]
    off = tiny_site({"rules": {"meter_offline": {"enabled": False}}})
    again = AlarmEngine(off, store, alarms)
    done = again.retire_disabled(NOW + 60_000)
    assert [(t.kind, t.alarm.subject) for t in done] == [("cleared", "E-1")]
    assert alarms.open_alarms() == []
    assert not [c for c in again.evaluate(NOW + 120_000) if c.rule == "meter_offline"]


def test_an_acknowledgement_another_process_records_is_dispatched_by_the_engine_once(
    tmp_path,
) -> None:
    """`--role web` records an acknowledgement in the alarms file; the worker's engine, which
    owns the notify channels, delivers it (once). One made through the engine's own store
    (`--role api`/`all`: the route dispatched it itself) is not sent again.

    Regression: a web process's acknowledgements reached no channel."""
    store = DuckDBStore(":memory:")
    store.write(usual(START, NOW, skip=("E-1",)))
    store.write(counter("E-1", "energy_import", office, START, NOW - HOUR))  # silent an hour
    worker_alarms = AlarmStore(tmp_path / "alarms.sqlite3")
    web_alarms = AlarmStore(tmp_path / "alarms.sqlite3")
    recorder = Recorder()
    site = tiny_site({"rules": {"meter_offline": {"raise_after_s": 0, "min_silence_s": 1800}}})
    engine = AlarmEngine(site, store, worker_alarms, dispatcher=recorder)
    engine.step(NOW)
    (raised,) = recorder.got
    web_alarms.acknowledge(raised.alarm.id, "张工 (key 1a2b3c4d)", NOW + 30_000)
    engine.step(NOW + 60_000)
    engine.step(NOW + 120_000)
    kinds = [(t.kind, t.alarm.subject, t.alarm.acknowledged_by) for t in recorder.got]
    assert kinds == [("raised", "E-1", None), ("acknowledged", "E-1", "张工 (key 1a2b3c4d)")]

    worker_alarms.acknowledge(raised.alarm.id, "李工", NOW + 150_000)  # this process's route
    engine.step(NOW + 180_000)
    assert len(recorder.got) == 2
    for a in (worker_alarms, web_alarms):
        a.close()

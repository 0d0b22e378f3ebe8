"""The supervisor: a part that fails is logged, restarted with backoff and named in Health;
a fatal error stops the service; nothing dies unseen."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.errors import ConfigError
from core.health import Health
from epcmon.supervisor import Backoff, Supervisor

FAST = Backoff(first_s=0.01, max_s=0.05, settle_s=10.0)


async def until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def test_backoff_is_exponential_and_capped() -> None:
    b = Backoff(first_s=1, max_s=60)
    assert [b.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


async def test_a_failing_part_is_restarted_and_named_while_down(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="epcmon.supervisor")
    health = Health()
    supervisor = Supervisor(health, FAST)
    starts = {"flaky": 0, "steady": 0}

    async def flaky(stop: asyncio.Event) -> None:
        starts["flaky"] += 1
        if starts["flaky"] <= 3:
            raise RuntimeError(f"boom {starts['flaky']}")
        await stop.wait()

    async def steady(stop: asyncio.Event) -> None:
        starts["steady"] += 1
        await stop.wait()

    supervisor.add("flaky", flaky)
    supervisor.add("steady", steady)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await until(lambda: starts["flaky"] == 4)
    snapshot = health.snapshot()
    assert snapshot.parts["flaky"].state == "running"
    assert snapshot.parts["flaky"].restarts == 3
    assert snapshot.parts["flaky"].last_error == "RuntimeError: boom 3"
    assert starts["steady"] == 1  # the others never noticed
    assert health.ok
    stop.set()
    await asyncio.wait_for(task, 5)
    assert {p.state for p in health.snapshot().parts.values()} == {"stopped"}
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)  # each with its traceback


async def test_a_part_is_named_with_its_error_while_it_is_down() -> None:
    health = Health()
    supervisor = Supervisor(health, Backoff(first_s=0.3, max_s=0.3))
    fail = True

    async def part(stop: asyncio.Event) -> None:
        if fail:
            raise OSError("gateway socket closed")
        await stop.wait()

    supervisor.add("modbus gw-1", part)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await until(lambda: health.snapshot().parts["modbus gw-1"].state == "restarting")
    assert not health.ok
    assert health.snapshot().problems() == {
        "part modbus gw-1": "restarting: OSError: gateway socket closed"
    }
    fail = False
    await until(lambda: health.snapshot().parts["modbus gw-1"].state == "running")
    assert health.ok
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_part_that_returns_by_itself_is_restarted() -> None:
    health = Health()
    supervisor = Supervisor(health, FAST)
    runs = 0

    async def quitter(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            return  # e.g. a collector loop that ended quietly
        await stop.wait()

    supervisor.add("quitter", quitter)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await until(lambda: runs == 3)
    assert health.snapshot().parts["quitter"].restarts == 2
    assert "stopped by itself" in health.snapshot().parts["quitter"].last_error
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_configuration_error_stops_the_service() -> None:
    health = Health()
    supervisor = Supervisor(health, FAST)
    stopped = asyncio.Event()
    other_started = asyncio.Event()

    async def bad(stop: asyncio.Event) -> None:
        await other_started.wait()
        raise ConfigError("no such profile", file="site.toml", entity="meter 'E-1'", key="profile")

    async def other(stop: asyncio.Event) -> None:
        other_started.set()
        await stop.wait()
        stopped.set()

    supervisor.add("bad", bad)
    supervisor.add("other", other)
    with pytest.raises(ConfigError, match="no such profile"):
        await asyncio.wait_for(supervisor.run(asyncio.Event()), 5)
    assert stopped.is_set()  # the other part was told to stop, not abandoned
    assert health.snapshot().parts["bad"].state == "failed"


async def test_stop_during_backoff_ends_promptly() -> None:
    supervisor = Supervisor(Health(), Backoff(first_s=30, max_s=30))

    async def failing(stop: asyncio.Event) -> None:
        raise RuntimeError("down")

    supervisor.add("failing", failing)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await until(lambda: supervisor.health.snapshot().parts["failing"].state == "restarting")
    stop.set()
    await asyncio.wait_for(task, 2)  # not the 30 s backoff


def test_health_logs_each_transition_once(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="epcmon.health")
    health = Health()
    for _ in range(100):
        health.degrade("store", "disk full; ingest paused")
    assert not health.ok
    assert health.snapshot().problems() == {"store": "disk full; ingest paused"}
    for _ in range(100):
        health.recover("store")
    assert health.ok
    assert len(caplog.records) == 2


async def test_parts_are_added_removed_and_replaced_while_it_runs() -> None:
    health = Health()
    supervisor = Supervisor(health, FAST)
    running: dict[str, int] = {}
    ended: list[str] = []

    def part(label: str):  # type: ignore[no-untyped-def]
        async def run(stop: asyncio.Event) -> None:
            running[label] = running.get(label, 0) + 1
            await stop.wait()
            ended.append(label)

        return run

    supervisor.add("old", part("old"))
    supervisor.add("kept", part("kept"))
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await until(lambda: running.get("kept") == 1 and running.get("old") == 1)
    supervisor.add("new", part("new"))  # starts at once
    await until(lambda: running.get("new") == 1)
    await supervisor.remove("old")  # returns once it ended
    assert ended == ["old"]
    assert "old" not in health.snapshot().parts
    await supervisor.replace("kept", part("kept v2"))
    await until(lambda: running.get("kept v2") == 1)
    assert ended == ["old", "kept"]
    assert supervisor.names == ["new", "kept"]
    assert health.snapshot().parts["kept"].state == "running"
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sorted(ended) == ["kept", "kept v2", "new", "old"]  # parts added later stop too
    assert running == {"old": 1, "kept": 1, "new": 1, "kept v2": 1}

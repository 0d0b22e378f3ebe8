"""The durable spool and the spooling store, on real SQLite files and a real DuckDB store
(whose failures a thin wrapper switches on and off)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from core.errors import SpoolFull, StoreError, StoreUnavailable
from core.health import Health
from core.readings import Reading, ReadingBatch
from storage.base import ReadsFromInner, TimeSeriesStore
from storage.duckdb_store import DuckDBStore
from storage.spool import Spool, SpoolDrain, SpoolingStore, deserialise, serialise

T0 = 1_772_323_200_000  # 2026-03-01T00:00Z


def minute_batch(index: int, meters: int = 3, minutes: int = 10) -> ReadingBatch:
    ts = np.repeat(T0 + (index * minutes + np.arange(minutes)) * 60_000, meters)
    names = np.array([f"E-{i:02d}" for i in range(meters)], dtype=object)
    return ReadingBatch(
        meter_id=np.tile(names, minutes),
        quantity=np.full(len(ts), "power", dtype=object),
        ts_ms=ts,
        value=np.arange(len(ts), dtype=np.float64) + index * 1000.5,
    )


def same(a: ReadingBatch, b: ReadingBatch) -> bool:
    return list(a) == list(b)


def test_a_batch_survives_serialisation_exactly() -> None:
    batch = ReadingBatch.from_readings(
        [Reading("E-01", "power", T0, 1.5), Reading("W 2", "volume", -5, float("nan"))]
    )
    back = deserialise(serialise(batch))
    assert [r.meter_id for r in back] == ["E-01", "W 2"]
    assert back.ts_ms.tolist() == [T0, -5]
    assert back.value[0] == 1.5
    assert np.isnan(back.value[1])
    assert back.meter_id.dtype == object
    assert back.ts_ms.dtype == np.int64


def test_minute_data_is_compact() -> None:
    batch = minute_batch(0, meters=50, minutes=60)
    assert len(serialise(batch)) < 10 * len(batch)


def test_fifo_and_durable_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "spool" / "spool.sqlite3"
    with Spool(path) as spool:
        ids = [spool.push(minute_batch(i)) for i in range(3)]
        assert ids == sorted(ids)
        assert spool.depth == 3
        assert spool.bytes > 0
        head = spool.peek()
        assert head is not None
        assert head.id == ids[0]
        assert same(head.batch, minute_batch(0))
        spool.pop(head.id)
        assert spool.depth == 2
    with Spool(path) as reopened:
        assert reopened.depth == 2
        got = []
        while (head := reopened.peek()) is not None:
            got.append(head.batch)
            reopened.pop(head.id)
        assert [same(b, minute_batch(i)) for i, b in zip((1, 2), got, strict=True)] == [True] * 2
        assert (reopened.depth, reopened.bytes) == (0, 0)
        assert reopened.peek() is None
        reopened.pop(12345)  # popping what is not there changes nothing
        assert reopened.depth == 0


def test_a_full_spool_refuses_loudly_and_keeps_what_it_has(tmp_path: Path) -> None:
    big = minute_batch(0, meters=100, minutes=500)
    with Spool(tmp_path / "spool.sqlite3", max_bytes=1 << 20) as spool:

        def fill() -> int:
            for index in range(1000):
                spool.push(minute_batch(index, meters=100, minutes=500))
            return 1000

        taken = spool.depth
        with pytest.raises(SpoolFull, match=r"spool .* is full") as refused:
            fill()
        taken = spool.depth
        assert "50000 readings" in str(refused.value)
        assert isinstance(refused.value, StoreError)
        assert taken > 0
        assert spool.bytes <= spool.max_bytes
        head = spool.peek()
        assert head is not None
        assert same(head.batch, big)


class Switchable(ReadsFromInner):
    """A real store whose writes fail while `down` is set, like an unreachable server."""

    def __init__(self, inner: DuckDBStore) -> None:
        self.inner = inner
        self.down = False
        self.attempts = 0

    def write(self, batch: ReadingBatch) -> int:
        self.attempts += 1
        if self.down:
            raise StoreUnavailable("connection refused")
        return self.inner.write(batch)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[Switchable]:
    with DuckDBStore(tmp_path / "store.duckdb") as duck:
        yield Switchable(duck)


def test_spooling_store_is_a_store(flaky: Switchable, tmp_path: Path) -> None:
    store = SpoolingStore(flaky, Spool(tmp_path / "spool.sqlite3"))
    assert isinstance(store, TimeSeriesStore)
    assert "spool.sqlite3" in repr(store)
    store.close()


def test_outage_spools_in_order_and_replays_everything_once(
    flaky: Switchable, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storage.spool")
    store = SpoolingStore(flaky, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0)
    assert store.write(minute_batch(0)) == 30
    flaky.down = True
    for index in range(1, 5):
        assert store.write(minute_batch(index)) == 30  # spooled, returns normally
    # A correction of a spooled point must land after the point it corrects.
    store.write(ReadingBatch.for_series("E-00", "power", [T0 + 10 * 60_000], [-1.0]))
    assert store.spool.depth == 5
    assert store.spooled_batches == 5
    assert caplog.text.count("spooling to") == 1  # logged once when it went down

    flaky.down = False
    assert store.write(minute_batch(5)) == 30  # replays first, then writes

    assert store.spool.depth == 0
    assert store.replayed_batches == 5
    assert caplog.text.count("drained") == 1
    raw = flaky.inner.read_raw("E-00", "power", 0, 2**53)
    assert len(raw) == 60
    assert raw.value[10] == -1.0
    assert len(flaky.inner.read_raw("E-02", "power", 0, 2**53)) == 60
    store.close()


def test_replay_stops_at_the_first_failure_and_keeps_the_rest(
    flaky: Switchable, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    store = SpoolingStore(flaky, spool, replay_interval_s=0)
    flaky.down = True
    for index in range(3):
        store.write(minute_batch(index))
    assert store.replay() == 0
    assert spool.depth == 3
    flaky.down = False
    assert store.replay() == 3
    assert store.replay() == 0
    assert len(flaky.inner.read_raw("E-01", "power", 0, 2**53)) == 30


def test_an_unreachable_store_is_retried_at_most_once_per_interval(
    flaky: Switchable, tmp_path: Path
) -> None:
    store = SpoolingStore(flaky, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=3600)
    flaky.down = True
    for index in range(10):
        store.write(minute_batch(index))
    assert flaky.attempts == 1  # the first write failed; the others queued behind it
    assert store.spool.depth == 10
    flaky.down = False
    assert store.replay() == 10  # an explicit replay does not wait for the interval


def test_spool_survives_a_restart_of_the_process(flaky: Switchable, tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    first = SpoolingStore(flaky, Spool(path), replay_interval_s=0)
    flaky.down = True
    first.write(minute_batch(0))
    first.spool.close()

    flaky.down = False
    second = SpoolingStore(flaky, Spool(path), replay_interval_s=0)
    assert second.spool.depth == 1
    second.write(minute_batch(1))
    assert second.spool.depth == 0
    assert len(flaky.inner.read_raw("E-00", "power", 0, 2**53)) == 20


def test_a_full_spool_is_an_error_to_the_writer(flaky: Switchable, tmp_path: Path) -> None:
    store = SpoolingStore(
        flaky, Spool(tmp_path / "spool.sqlite3", max_bytes=1 << 20), replay_interval_s=0
    )
    flaky.down = True

    def fill() -> None:
        for index in range(1000):
            store.write(minute_batch(index, meters=100, minutes=500))

    with pytest.raises(SpoolFull):
        fill()
    assert store.spool.depth > 0


# -- the drain: on its own timer, in coalesced chunks, off the event loop ---------------------


class Gated(Switchable):
    """A `Switchable` whose writes can be held at a gate (a slow store), counted by size."""

    def __init__(self, inner: DuckDBStore) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.sizes: list[int] = []
        self.threads: set[int] = set()
        self.fail_with: BaseException | None = None

    def write(self, batch: ReadingBatch) -> int:
        self.threads.add(threading.get_ident())
        self.entered.set()
        self.gate.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        written = super().write(batch)
        self.sizes.append(len(batch))
        return written


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Gated]:
    with DuckDBStore(tmp_path / "store.duckdb") as duck:
        yield Gated(duck)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)  # poll the condition; the drain runs in its own thread


def spool_down(store: SpoolingStore, flaky: Switchable, batches: int) -> None:
    flaky.down = True
    for index in range(batches):
        store.write(minute_batch(index))
    flaky.down = False


def test_the_drain_empties_the_spool_without_any_new_write(gated: Gated, tmp_path: Path) -> None:
    health = Health()
    store = SpoolingStore(
        gated,
        Spool(tmp_path / "spool.sqlite3"),
        replay_interval_s=0.05,
        drain_points=300,
        health=health,
    )
    spool_down(store, gated, 40)  # 40 batches of 30 readings
    assert store.spool.depth == 40
    assert health.is_degraded("spool")
    gated.sizes.clear()
    gated.threads.clear()

    async def scenario() -> None:
        stop = asyncio.Event()
        drain = asyncio.create_task(SpoolDrain(store, idle_s=0.05).run(stop))
        await until(lambda: store.spool.depth == 0)
        stop.set()
        await drain

    asyncio.run(scenario())
    assert gated.sizes == [300] * 4  # ten spooled batches per write, not one write each
    assert threading.get_ident() not in gated.threads  # replayed off the event loop
    assert store.replayed_batches == 40
    assert store.replayed_points == 1200
    assert not health.is_degraded("spool")
    assert store.drains_attached == 0
    for meter in ("E-00", "E-02"):
        assert len(gated.inner.read_raw(meter, "power", 0, 2**53)) == 400
    store.close()


def test_coalesced_replay_keeps_the_later_value_of_a_key(flaky: Switchable, tmp_path: Path) -> None:
    store = SpoolingStore(
        flaky, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0, drain_points=1_000
    )
    flaky.down = True
    for value in (1.0, 2.0, 3.0):  # three corrections of one point, in one chunk
        store.write(ReadingBatch.for_series("E-00", "power", [T0, T0 + 60_000], [value, value]))
    store.write(minute_batch(0))  # and the same keys again, with other values
    store.write(ReadingBatch.for_series("E-00", "power", [T0], [-5.0]))
    flaky.down = False
    assert store.replay() == 5
    raw = flaky.inner.read_raw("E-00", "power", 0, 2**53)
    assert raw.value[0] == -5.0  # the last write of the key, as if never spooled
    assert raw.value[1] == minute_batch(0).value[3]
    assert len(raw) == 10


def test_writes_go_on_into_the_spool_while_the_drain_writes(gated: Gated, tmp_path: Path) -> None:
    store = SpoolingStore(
        gated, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0, drain_points=10_000
    )
    spool_down(store, gated, 5)
    gated.gate.clear()  # the store takes its time with the replay
    gated.entered.clear()

    async def scenario() -> None:
        stop = asyncio.Event()
        drain = asyncio.create_task(SpoolDrain(store, idle_s=0.05).run(stop))
        await asyncio.to_thread(gated.entered.wait, 10)
        began = time.monotonic()
        for index in range(5, 8):  # ingest goes on while the replay hangs in the store
            await asyncio.to_thread(store.write, minute_batch(index))
        took = time.monotonic() - began
        assert took < 2.0
        assert store.spool.depth == 8  # behind the chunk being replayed, in order
        gated.gate.set()
        await until(lambda: store.spool.depth == 0)
        stop.set()
        await drain

    asyncio.run(scenario())
    got = gated.inner.read_raw("E-01", "power", 0, 2**53)
    assert got.ts_ms.tolist() == (T0 + np.arange(80) * 60_000).tolist()
    store.close()


def test_the_drain_waits_for_a_store_that_is_still_down(flaky: Switchable, tmp_path: Path) -> None:
    store = SpoolingStore(flaky, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0.2)
    spool_down(store, flaky, 3)
    flaky.down = True
    flaky.attempts = 0

    async def scenario() -> None:
        stop = asyncio.Event()
        drain = asyncio.create_task(SpoolDrain(store, idle_s=0.05).run(stop))
        await until(lambda: flaky.attempts >= 3)
        tried = flaky.attempts
        flaky.down = False
        await until(lambda: store.spool.depth == 0)
        stop.set()
        await drain
        assert tried <= 4  # one try per replay_interval_s, not a busy loop

    began = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - began >= 0.4
    assert len(flaky.inner.read_raw("E-01", "power", 0, 2**53)) == 30


def test_a_drain_that_failed_can_run_again(gated: Gated, tmp_path: Path) -> None:
    store = SpoolingStore(gated, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0)
    spool_down(store, gated, 3)
    gated.fail_with = RuntimeError("a bug in the store")

    async def scenario() -> None:
        stop = asyncio.Event()
        with pytest.raises(RuntimeError, match="a bug"):
            await SpoolDrain(store, idle_s=0.05).run(stop)  # never swallowed
        assert store.drains_attached == 0
        assert store.spool.depth == 3  # nothing lost
        gated.fail_with = None
        drain = asyncio.create_task(SpoolDrain(store, idle_s=0.05).run(stop))  # the restart
        await until(lambda: store.spool.depth == 0)
        stop.set()
        await drain

    asyncio.run(scenario())
    assert len(gated.inner.read_raw("E-01", "power", 0, 2**53)) == 30


def test_a_spool_left_by_an_earlier_run_is_degraded_until_drained(
    flaky: Switchable, tmp_path: Path
) -> None:
    path = tmp_path / "spool.sqlite3"
    first = SpoolingStore(flaky, Spool(path), replay_interval_s=0)
    spool_down(first, flaky, 2)
    first.spool.close()
    health = Health()
    second = SpoolingStore(flaky, Spool(path), health=health)
    assert health.is_degraded("spool")
    assert "2 batches waiting" in health.snapshot().conditions["spool"].detail

    async def scenario() -> None:  # no write arrives: the drain alone empties it
        stop = asyncio.Event()
        drain = asyncio.create_task(SpoolDrain(second, idle_s=0.05).run(stop))
        await until(lambda: second.spool.depth == 0)
        stop.set()
        await drain

    asyncio.run(scenario())
    assert second.replayed_batches == 2
    assert not health.is_degraded("spool")
    assert len(flaky.inner.read_raw("E-01", "power", 0, 2**53)) == 20


def test_an_unreadable_spooled_batch_is_set_aside(flaky: Switchable, tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    store = SpoolingStore(flaky, Spool(path), replay_interval_s=0)
    spool_down(store, flaky, 3)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE batches SET payload = x'00ff00ff' WHERE id = 2")
    db.close()
    assert store.replay() == 2
    assert store.spool.depth == 0
    assert store.spool.rejected == 1
    assert len(flaky.inner.read_raw("E-01", "power", 0, 2**53)) == 20

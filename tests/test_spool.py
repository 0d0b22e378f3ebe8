"""The durable spool and the spooling store, on real SQLite files and a real DuckDB store
(whose failures a thin wrapper switches on and off)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.errors import SpoolFull, StoreError, StoreUnavailable
from core.readings import Reading, ReadingBatch
from storage.base import Agg, Every, Series, TimeSeriesStore
from storage.duckdb_store import DuckDBStore
from storage.spool import Spool, SpoolingStore, deserialise, serialise

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


class Switchable:
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

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        return self.inner.read_raw(meter_id, quantity, start_ms, end_ms)

    def aggregate(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        agg: Agg,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.aggregate(meter_id, quantity, start_ms, end_ms, every, agg, tz)

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.consumption(meter_id, quantity, start_ms, end_ms, every, tz)

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        return self.inner.latest(meter_ids)

    def series_keys(self) -> list[tuple[str, str]]:
        return self.inner.series_keys()

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

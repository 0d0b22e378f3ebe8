"""Compaction of the DuckDB file: what it gives back, and that it is safe while the store is in
use (writes and reads carry on while the file is copied; none is lost or fails).

Finding (issue 17): DuckDB does not shrink its file. Rewriting the same day of readings (the
idempotent path deletes the stored points and appends the new ones) nearly doubled it, and
neither `CHECKPOINT` nor `VACUUM` gives the space back; only a copy into a fresh file does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.readings import ReadingBatch, to_ms
from storage.base import Agg, Every
from storage.duckdb_store import DuckDBStore

T0 = to_ms(datetime(2026, 3, 1, tzinfo=UTC))
MINUTE = 60_000
DAY = 86_400_000
METERS = np.array([f"m{i:02d}" for i in range(40)], dtype=object)


def day_batches(day: int, seed: int = 0, minutes_a_batch: int = 10) -> Iterator[ReadingBatch]:
    """A day of 1-minute power readings of 40 meters, in collector-sized batches of 10 minutes
    (or larger ones where only the data matters: the tests run faster)."""
    rng = np.random.default_rng(seed + day)
    for first in range(0, 1440, minutes_a_batch):
        minutes = np.arange(first, first + minutes_a_batch)
        ts = np.repeat(T0 + day * DAY + minutes * MINUTE, len(METERS))
        yield ReadingBatch(
            meter_id=np.tile(METERS, len(minutes)),
            quantity=np.full(len(ts), "power", dtype=object),
            ts_ms=ts,
            value=np.round(rng.normal(50.0, 10.0, len(ts)), 3),
        )


def write_days(store: DuckDBStore, days: range, seed: int = 0, minutes_a_batch: int = 10) -> None:
    for day in days:
        for batch in day_batches(day, seed, minutes_a_batch):
            store.write(batch)


def size(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_a_rewritten_day_leaves_the_file_size_unchanged_after_compaction(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(path) as store:
        write_days(store, range(3))
        store.compact()
    compacted = size(path)

    with DuckDBStore(path) as store:
        write_days(store, range(1, 2))  # the same day again, identical readings
    grown = size(path)
    assert grown > compacted * 1.1, "the finding: a rewrite grows the file"

    with DuckDBStore(path) as store:
        done = store.compact()
        assert done is not None
        assert done.bytes_before == grown
        assert done.bytes_after == compacted
        assert store.read_raw("m07", "power", T0, T0 + 3 * DAY).value.size == 3 * 1440
    assert size(path) == compacted


def test_compaction_is_skipped_below_the_free_fraction(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(path) as store:
        write_days(store, range(2), minutes_a_batch=1440)
        assert store.compact(min_free_fraction=0.5) is None  # nothing deleted: no free blocks
        write_days(store, range(2), seed=1, minutes_a_batch=1440)  # every point replaced
        assert store.free_fraction() >= 0.25  # measured: 3 of 10 blocks
        done = store.compact(min_free_fraction=0.25)
        assert done is not None
        assert done.bytes_after < done.bytes_before
        assert store.free_fraction() == 0.0


def test_an_in_memory_store_has_nothing_to_compact() -> None:
    with DuckDBStore(":memory:") as store:
        write_days(store, range(1), minutes_a_batch=1440)
        assert store.compact() is None


def test_writes_and_reads_carry_on_while_the_file_is_compacted(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(path) as store:
        write_days(store, range(4), minutes_a_batch=1440)
        write_days(store, range(4), seed=7, minutes_a_batch=1440)  # free blocks to give back
        errors: list[BaseException] = []
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:
            # new points, and corrections of points already stored (the replay must replace
            # them in the fresh file, not add to them)
            i = 0
            while not stop.is_set() or i < 20:
                ts = T0 + 10 * DAY + i * MINUTE
                try:
                    store.write(ReadingBatch.for_series("live", "power", [ts], [float(i)]))
                    store.write(ReadingBatch.for_series("m03", "power", [T0 + i * MINUTE], [-i]))
                except BaseException as exc:
                    errors.append(exc)
                    return
                written.append(ts)
                i += 1

        def reader() -> None:
            while not stop.is_set():
                try:
                    got = store.aggregate(
                        "m05", "power", T0, T0 + 4 * DAY, Every(1, "d"), Agg.COUNT
                    )
                    assert got.value.tolist() == [1440.0] * 4
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(written) < 5 and time.monotonic() < deadline:  # writes are flowing
            time.sleep(0.01)
        done = store.compact()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        assert done is not None
        assert done.replayed > 0, "writes went on during the copy"
        live = store.read_raw("live", "power", 0, 2**53)
        assert live.ts_ms.tolist() == written
        corrected = store.read_raw("m03", "power", T0, T0 + len(written) * MINUTE)
        assert corrected.value.tolist() == [-float(i) for i in range(len(written))]
        assert store.latest(["live"])[0].value == float(len(written) - 1)
    with DuckDBStore(path) as reopened:  # the fresh file is the store now, with every point
        assert reopened.read_raw("live", "power", 0, 2**53).ts_ms.tolist() == written
        assert len(reopened.read_raw("m05", "power", T0, T0 + 4 * DAY)) == 4 * 1440


def test_a_compaction_cut_short_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """A leftover of a compaction killed half-way is removed by the next one; the store itself
    was never touched (the fresh file replaces it only once complete)."""
    path = tmp_path / "store.duckdb"
    leftover = tmp_path / "store.duckdb.compact"
    leftover.write_bytes(b"half a copy")
    with DuckDBStore(path) as store:
        write_days(store, range(1), minutes_a_batch=1440)
        write_days(store, range(1), seed=3, minutes_a_batch=1440)
        assert store.compact() is not None
        assert len(store.read_raw("m00", "power", T0, T0 + DAY)) == 1440
    assert not leftover.exists()
    assert not Path(f"{leftover}.wal").exists()


def test_compaction_needs_room_for_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(path) as store:
        write_days(store, range(1), minutes_a_batch=1440)
        write_days(store, range(1), seed=3, minutes_a_batch=1440)
        skipped = store.compact(disk_free=lambda _path: 1024)
        assert skipped is None
        assert not path.with_name("store.duckdb.compact").exists()  # no copy was started
        assert len(store.read_raw("m00", "power", T0, T0 + DAY)) == 1440


def test_compaction_can_run_again(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with DuckDBStore(path) as store:
        for r in range(2):
            write_days(store, range(1), seed=r, minutes_a_batch=1440)
            assert store.compact() is not None
        assert store.read_raw("m01", "power", T0, T0 + DAY).value.size == 1440

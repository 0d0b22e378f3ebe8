"""What only the DuckDB store does: its file (persistence, one owner), memory, threads.

The contract every store honours is tested in test_store_contract.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from core.errors import StoreError, StoreUnavailable
from core.readings import Reading, ReadingBatch, to_ms
from storage.base import Agg, Every
from storage.duckdb_store import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
HOUR = 3_600_000
T0 = to_ms(datetime(2026, 3, 1, tzinfo=UTC))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_ms(datetime(year, month, day, hour, minute, tzinfo=UTC))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore(path) as opened:
        yield opened


def count(store: DuckDBStore, meter: str = "m1", quantity: str = "p") -> int:
    return len(store.read_raw(meter, quantity, 0, 2**53))


def values_by_ts(store: DuckDBStore, meter: str = "m1", quantity: str = "p") -> dict[int, float]:
    got = store.read_raw(meter, quantity, 0, 2**53)
    return dict(zip(got.ts_ms.tolist(), got.value.tolist(), strict=True))


def test_in_memory_store(tmp_path: Path) -> None:
    with DuckDBStore(":memory:") as memory:
        memory.write(ReadingBatch.for_series("m1", "p", [T0, T0 + 1], [1.0, 2.0]))
        assert count(memory) == 2


def test_parent_directory_is_created(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "a" / "b" / "store.duckdb") as nested:
        nested.write(ReadingBatch.for_series("m1", "p", [T0], [1.0]))
    assert (tmp_path / "a" / "b" / "store.duckdb").is_file()


# -- idempotency: one point per (meter, quantity, ts), last write wins -----------------


def test_data_and_idempotency_survive_a_reopen(path: Path) -> None:
    batch = ReadingBatch.for_series("m1", "p", T0 + np.arange(50) * 1000, np.arange(50.0))
    with DuckDBStore(path) as first:
        first.write(batch)
        first.write(ReadingBatch.for_series("m2", "p", [T0], [7.0]))

    with DuckDBStore(path) as second:
        assert second.series_keys() == [("m1", "p"), ("m2", "p")]
        assert values_by_ts(second) == {T0 + i * 1000: float(i) for i in range(50)}
        second.write(batch)  # redelivered after a restart
        second.write(ReadingBatch.for_series("m1", "p", [T0 + 10_000], [-1.0]))
        second.write(ReadingBatch.for_series("m3", "p", [T0], [3.0]))  # a new series id
        assert count(second) == 50
        assert values_by_ts(second)[T0 + 10_000] == -1.0

    with DuckDBStore(path) as third:
        assert count(third) == 50
        assert third.series_keys() == [("m1", "p"), ("m2", "p"), ("m3", "p")]
        assert third.latest(["m2", "m3"]) == [
            Reading("m2", "p", T0, 7.0),
            Reading("m3", "p", T0, 3.0),
        ]


def test_second_process_cannot_open_the_file(store: DuckDBStore, path: Path) -> None:
    store.write(ReadingBatch.for_series("m1", "p", [T0], [1.0]))
    script = textwrap.dedent(
        """
        import sys
        from core.errors import StoreUnavailable
        from storage.duckdb_store import DuckDBStore
        try:
            DuckDBStore(sys.argv[1])
        except StoreUnavailable as exc:
            print(exc)
            sys.exit(3)
        sys.exit(0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert str(path) in done.stdout
    assert "another epcmon process probably owns it" in done.stdout


def test_second_store_on_the_same_file_in_one_process_is_refused(
    store: DuckDBStore, path: Path
) -> None:
    with pytest.raises(StoreUnavailable, match="already open in this process"):
        DuckDBStore(path)
    store.close()
    with DuckDBStore(path) as reopened:
        assert reopened.series_keys() == []


def test_a_closed_store_says_so(path: Path) -> None:
    closed = DuckDBStore(path)
    closed.close()
    closed.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        closed.read_raw("m1", "p", 0, 1)


# -- threads -------------------------------------------------------------------------


def test_reads_from_threads_while_a_writer_writes(store: DuckDBStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                raw = store.read_raw("m1", "p", 0, 2**53)
                assert np.all(np.diff(raw.ts_ms) > 0)
                store.aggregate("m1", "p", 0, 2**53, Every.parse("1d"), Agg.MEAN, "Asia/Shanghai")
                store.latest(["m1"])
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for i in range(30):
            ts = T0 + (np.arange(1000) + i * 500) * 1000  # each batch half rewrites the last
            store.write(ReadingBatch.for_series("m1", "p", ts, np.full(1000, float(i))))
    finally:
        done.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert count(store) == 29 * 500 + 1000
    assert store.read_raw("m1", "p", 0, 2**53).value[-1] == 29.0


def test_an_hourly_mean_does_not_depend_on_the_read_window(tmp_path: Path) -> None:
    """Regression (issue 17): with `avg`, DuckDB's threads added an hour's points in an order
    that depended on the read's window, so the same hour's mean differed in its last bits
    between a read of a year and a read of a week, and a statement's inputs digest with it."""
    hour = 3_600_000
    start = to_ms(datetime(2025, 1, 1, tzinfo=UTC))
    hours = start + np.arange(400 * 24, dtype=np.int64) * hour
    rng = np.random.default_rng(3)
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        for minute in (0, 10, 50):  # an hour's points in three batches, row groups apart
            store.write(
                ReadingBatch.for_series(
                    "wx",
                    "outdoor_temperature",
                    hours + minute * 60_000,
                    rng.normal(15, 8, len(hours)),
                )
            )
            filler = start + np.arange(130_000, dtype=np.int64) * 60_000
            store.write(
                ReadingBatch.for_series(f"f{minute}", "power", filler, np.ones(len(filler)))
            )
        whole = store.aggregate("wx", "outdoor_temperature", 0, 2**53, Every(1, "h"), Agg.MEAN)
        for first in range(0, 400 * 24, 24 * 37):
            window = (int(hours[first]), int(hours[first]) + 7 * 24 * hour)
            week = store.aggregate("wx", "outdoor_temperature", *window, Every(1, "h"), Agg.MEAN)
            inside = (whole.ts_ms >= window[0]) & (whole.ts_ms < window[1])
            assert week.value.tolist() == whole.value[inside].tolist()

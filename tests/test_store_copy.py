"""`epcmon store copy`: DuckDB history into a real InfluxDB 1.6.7, interrupted and resumed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import InfluxConfig
from core.errors import ConfigError, StoreUnavailable
from core.readings import ReadingBatch
from epcmon.cli import main
from storage.base import Agg, Every, Series
from storage.copy import CopyState, copy_history, plan_copy
from storage.duckdb_store import DuckDBStore
from storage.influx import InfluxStore
from storage.influx import bulk as influx_bulk
from tests.conftest import InfluxServer, start_influxd

REPO = Path(__file__).resolve().parents[1]
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
MINUTE = 60_000


def history(path: Path) -> dict[tuple[str, str], int]:
    """Three series over three months of 5-minute data in a DuckDB file."""
    sizes = {
        ("E-D01", "power"): 26_000,
        ("E-D01", "energy_import"): 26_000,
        ("W-01", "volume"): 900,
    }
    with DuckDBStore(path) as duck:
        for (meter, quantity), n in sizes.items():
            ts = T0 + np.arange(n) * 5 * MINUTE
            duck.write(ReadingBatch.for_series(meter, quantity, ts, np.arange(n) * 0.5))
    return sizes


def influx_counts(store: InfluxStore, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out = {}
    for meter, quantity in keys:
        counts = store.aggregate(meter, quantity, 0, 2**53, Every.parse("1mo"), Agg.COUNT)
        out[(meter, quantity)] = int(counts.value.sum())
    return out


def test_copy_is_resumable_after_the_server_went_away(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source_path = tmp_path / "history.duckdb"
    sizes = history(source_path)
    total = sum(sizes.values())
    server: InfluxServer = start_influxd(tmp_path / "influxd")
    try:
        server.query("CREATE DATABASE epcmon")
        state_path = tmp_path / "copy.json"
        spec_from, spec_to = f"duckdb:{source_path}", f"influx:{server.url}"
        config = InfluxConfig(url=server.url, mode="v1", database="epcmon", retries=0)

        # First run: the server stops after the second batch.
        sent: list[int] = []

        def stop_after_two(points: int) -> None:
            sent.append(points)
            if len(sent) == 2:
                server.stop()

        with DuckDBStore(source_path) as source, InfluxStore(config) as destination:
            state = CopyState.open(state_path, spec_from, spec_to)
            plan = plan_copy(source, state)
            assert plan.points == total
            with pytest.raises(StoreUnavailable):
                copy_history(
                    source, destination, plan, state, batch_points=10_000, progress=stop_after_two
                )
        assert sent == [10_000, 10_000]
        saved = json.loads(state_path.read_text())
        # Series in sorted order, batches across series: 20,000 points of the first one.
        assert saved["copied"] == {"E-D01\tenergy_import": T0 + 19_999 * 5 * MINUTE}

        # Second run, through the command: it copies exactly what the first one did not.
        server.start()
        code = main(
            [
                "store", "copy", "--from", spec_from, "--to", spec_to,
                "--site", str(REPO / "sites/luan-admin-center.toml"),
                "--mode", "v1", "--database", "epcmon",
                "--batch", "10000", "--state", str(state_path), "--no-progress",
            ]
        )  # fmt: skip
        assert code == 0
        out = capsys.readouterr().out
        assert f"copying {total - 20_000:,} points of 3 series" in out
        assert f"copied {total - 20_000:,} points" in out
        with InfluxStore(config) as check, DuckDBStore(source_path) as source:
            assert influx_counts(check, list(sizes)) == sizes
            for meter, quantity in sizes:
                got = check.read_raw(meter, quantity, 0, 2**53)
                want = source.read_raw(meter, quantity, 0, 2**53)
                assert got.ts_ms.tolist() == want.ts_ms.tolist()
                assert got.value.tolist() == want.value.tolist()
            assert sorted(check.series_keys()) == sorted(sizes)

        # Third run: nothing left to copy, nothing written.
        assert main(
            ["store", "copy", "--from", spec_from, "--to", spec_to, "--mode", "v1",
             "--database", "epcmon", "--state", str(state_path), "--no-progress"]
        ) == 0  # fmt: skip
        out = capsys.readouterr().out
        assert "copying 0 points of 0 series" in out
        assert "copied 0 points" in out
    finally:
        server.stop()


class Failing:
    """A destination that fails its `fail_at`-th write (after writing nothing of it)."""

    def __init__(self, inner: DuckDBStore, fail_at: int) -> None:
        self.inner, self.fail_at, self.writes = inner, fail_at, 0

    def write(self, batch: ReadingBatch) -> int:
        self.writes += 1
        if self.writes == self.fail_at:
            raise StoreUnavailable("the destination went away")
        return self.inner.write(batch)


class Reads(DuckDBStore):
    """A DuckDB source that counts its reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[str] = []

    def read_raw(self, *args: Any) -> Series:
        self.reads.append("read_raw")
        return super().read_raw(*args)

    def aggregate(self, *args: Any) -> Series:
        self.reads.append("aggregate")
        return super().aggregate(*args)

    def census(self, *args: Any) -> dict[tuple[str, str], int]:
        self.reads.append("census")
        return super().census(*args)

    def read_after(self, *args: Any) -> Iterator[ReadingBatch]:
        for batch in super().read_after(*args):
            self.reads.append("chunk")
            yield batch


def test_duckdb_to_duckdb_copies_every_point_exactly_once_across_a_resume(
    tmp_path: Path,
) -> None:
    source_path, target_path = tmp_path / "history.duckdb", tmp_path / "copy.duckdb"
    sizes = history(source_path)
    total = sum(sizes.values())
    state_path = tmp_path / "copy.json"
    written = []
    with Reads(source_path) as source, DuckDBStore(target_path) as target:
        state = CopyState.open(state_path, "duckdb:a", "duckdb:b")
        plan = plan_copy(source, state)
        assert plan.left == dict(sorted(sizes.items()))
        destination = Failing(target, fail_at=4)  # three batches of 15,000 land
        with pytest.raises(StoreUnavailable):
            copy_history(source, destination, plan, state, batch_points=15_000)  # type: ignore[arg-type]
        written.append(45_000)
        # resumed from the state file alone, as a new process would
        state = CopyState.open(state_path, "duckdb:a", "duckdb:b")
        plan = plan_copy(source, state)
        assert plan.points == total - 45_000
        written.append(copy_history(source, target, plan, state, batch_points=15_000))
        assert sum(written) == total
        for meter, quantity in sizes:
            got = target.read_raw(meter, quantity, -(2**40), 2**53)
            want = source.read_raw(meter, quantity, -(2**40), 2**53)
            assert len(got) == sizes[(meter, quantity)]
            assert got.ts_ms.tolist() == want.ts_ms.tolist()
            assert got.value.tolist() == want.value.tolist()

        # A no-op resume: one census query, no point read, nothing written.
        source.reads.clear()
        state = CopyState.open(state_path, "duckdb:a", "duckdb:b")
        plan = plan_copy(source, state)
        assert plan.points == 0
        assert plan.left == {}
        assert copy_history(source, target, plan, state) == 0
        assert source.reads == ["census"]


def test_a_copy_window_and_new_points_after_a_finished_copy(tmp_path: Path) -> None:
    """--start/--end bound what is copied; points added to the source after a finished copy
    are what the next run copies, and only they."""
    source_path, target_path = tmp_path / "history.duckdb", tmp_path / "copy.duckdb"
    history(source_path)
    state_path = tmp_path / "copy.json"
    start, end = T0 + 10 * 288 * 5 * MINUTE, T0 + 20 * 288 * 5 * MINUTE  # days 10..20
    with Reads(source_path) as source, DuckDBStore(target_path) as target:
        state = CopyState.open(state_path, "duckdb:a", "duckdb:b")
        plan = plan_copy(source, state, start, end)
        assert plan.left == {("E-D01", "energy_import"): 2880, ("E-D01", "power"): 2880}
        copy_history(source, target, plan, state)
        got = target.read_raw("E-D01", "power", -(2**40), 2**53)
        assert got.ts_ms[0] == start
        assert got.ts_ms[-1] == end - 5 * MINUTE
        ts = T0 + (26_000 + np.arange(5)) * 5 * MINUTE
        source.write(ReadingBatch.for_series("E-D01", "power", ts, np.ones(5)))
        state = CopyState.open(state_path, "duckdb:a", "duckdb:b")
        plan = plan_copy(source, state)
        # after the window's end: what the window left, the five new points, and W-01
        assert plan.left == {
            ("E-D01", "energy_import"): 26_000 - 20 * 288,
            ("E-D01", "power"): 26_000 + 5 - 20 * 288,
            ("W-01", "volume"): 900,
        }


def test_a_state_file_of_another_copy_is_refused(tmp_path: Path) -> None:
    state_path = tmp_path / "copy.json"
    CopyState(state_path, "duckdb:a", "influx:http://x").save()
    with pytest.raises(ConfigError, match="not this one"):
        CopyState.open(state_path, "duckdb:b", "influx:http://x")


def test_bad_store_spec_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["store", "copy", "--from", "sqlite:x", "--to", "influx:http://127.0.0.1:1",
                 "--state", str(tmp_path / "s.json")])  # fmt: skip
    assert code == 2
    assert "expected duckdb:PATH or influx:URL" in capsys.readouterr().err


def test_influx_to_duckdb_reads_in_pages_and_resumes_exactly_once(
    tmp_path: Path, influxdb: InfluxServer, influx_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other direction: InfluxDB 1.6.7 read in CSV pages, interrupted and resumed."""
    monkeypatch.setattr(influx_bulk, "STATEMENTS_PER_REQUEST", 2)  # the census in 2 requests
    sizes = history(tmp_path / "history.duckdb")
    total = sum(sizes.values())
    config = InfluxConfig(url=influxdb.url, mode="v1", database=influx_db)
    state_path = tmp_path / "copy.json"
    with DuckDBStore(tmp_path / "history.duckdb") as original, InfluxStore(config) as source:
        for meter, quantity in sizes:
            part = original.read_raw(meter, quantity, -(2**40), 2**53)
            source.write(ReadingBatch.for_series(meter, quantity, part.ts_ms, part.value))
        with DuckDBStore(tmp_path / "copy.duckdb") as target:
            state = CopyState.open(state_path, "influx:a", "duckdb:b")
            plan = plan_copy(source, state)
            assert plan.left == dict(sorted(sizes.items()))
            with pytest.raises(StoreUnavailable):
                copy_history(
                    source,
                    Failing(target, fail_at=3),  # type: ignore[arg-type]
                    plan,
                    state,
                    batch_points=12_000,
                )
            state = CopyState.open(state_path, "influx:a", "duckdb:b")
            plan = plan_copy(source, state)
            assert plan.points == total - 24_000
            assert copy_history(source, target, plan, state, batch_points=12_000) == total - 24_000
            for meter, quantity in sizes:
                got = target.read_raw(meter, quantity, -(2**40), 2**53)
                want = original.read_raw(meter, quantity, -(2**40), 2**53)
                assert got.ts_ms.tolist() == want.ts_ms.tolist()
                assert got.value.tolist() == want.value.tolist()
            state = CopyState.open(state_path, "influx:a", "duckdb:b")
            assert plan_copy(source, state).left == {}

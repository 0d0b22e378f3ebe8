"""`epcmon store copy`: DuckDB history into a real InfluxDB 1.6.7, interrupted and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.config import InfluxConfig
from core.errors import ConfigError, StoreUnavailable
from core.readings import ReadingBatch
from epcmon.cli import main
from storage.base import Agg, Every
from storage.copy import CopyState, copy_history, plan_copy
from storage.duckdb_store import DuckDBStore
from storage.influx import InfluxStore
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


def test_copy_is_resumable_after_the_server_went_away(tmp_path: Path) -> None:
    source_path = tmp_path / "history.duckdb"
    sizes = history(source_path)
    server: InfluxServer = start_influxd(tmp_path / "influxd")
    try:
        server.query("CREATE DATABASE epcmon")
        state_path = tmp_path / "copy.json"
        spec_from, spec_to = f"duckdb:{source_path}", f"influx:{server.url}"
        config = InfluxConfig(url=server.url, mode="v1", database="epcmon", retries=0)

        # First run: the server stops after the second batch.
        batches = 0

        def stop_after_two(points: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 2:
                server.stop()

        with DuckDBStore(source_path) as source, InfluxStore(config) as destination:
            plan = plan_copy(source)
            assert plan.points == sum(sizes.values())
            state = CopyState.open(state_path, spec_from, spec_to)
            with pytest.raises(StoreUnavailable):
                copy_history(
                    source, destination, plan, state, batch_points=10_000, progress=stop_after_two
                )
        saved = json.loads(state_path.read_text())
        # Batches are cut per month: January, then February, of the first series.
        assert list(saved["copied"].values()) == [T0 + (31 + 28) * 288 * 5 * MINUTE - 5 * MINUTE]

        # Second run, through the command: it starts after what the first one copied.
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
        with InfluxStore(config) as check:
            assert influx_counts(check, list(sizes)) == sizes
            got = check.read_raw("W-01", "volume", 0, 2**53)
            assert got.value.tolist() == (np.arange(900) * 0.5).tolist()
            assert sorted(check.series_keys()) == sorted(sizes)

        # Third run: nothing left to copy.
        assert main(
            ["store", "copy", "--from", spec_from, "--to", spec_to, "--mode", "v1",
             "--database", "epcmon", "--state", str(state_path), "--no-progress"]
        ) == 0  # fmt: skip
    finally:
        server.stop()


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

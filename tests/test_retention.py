"""Retention and downsampling of the DuckDB store: raw points of instantaneous quantities are
rolled up into hourly and daily roll-ups and deleted after `[storage.retention] raw_days`;
counters keep their raw points (the M&V reads them); reads answer from the roll-ups where raw
points are gone, with the same numbers; a statement computed before and after is the same.

Finding (issue 17): the DuckDB store kept every raw point for ever and had no roll-ups.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.config import load_site
from core.config.storage import RetentionConfig, StorageConfig
from core.errors import StoreError
from core.health import Health
from core.readings import ReadingBatch, to_ms
from processing.contract import fit_baseline, statements
from processing.schedule import Recompute
from processing.statements import StatementStore
from processing.testing import synthetic_hourly, write_boundary
from storage.base import Agg, Every, Series
from storage.duckdb_store import DuckDBStore, StoreMaintenance

ROOT = Path(__file__).resolve().parents[1]
SHANGHAI = "Asia/Shanghai"
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def local_midnight(day: date, tz: str) -> int:
    return to_ms(datetime.combine(day, time(), ZoneInfo(tz)))


def same(a: Series, b: Series, *, exact: bool = False) -> None:
    assert a.ts_ms.tolist() == b.ts_ms.tolist()
    if exact:
        assert a.value.tolist() == b.value.tolist()
    else:
        np.testing.assert_allclose(a.value, b.value, rtol=1e-12, atol=1e-9)


def fill(store: DuckDBStore, start: int, days: int, seed: int = 0) -> None:
    """Power each minute, a counter each minute (one reset), temperature every 10 minutes."""
    rng = np.random.default_rng(seed)
    minutes = start + np.arange(days * 1440, dtype=np.int64) * MINUTE
    power = np.round(rng.normal(50.0, 12.0, len(minutes)), 3)
    energy = 1000.0 + np.cumsum(power) / 60.0
    energy[len(energy) // 2 :] -= energy[len(energy) // 2] - 3.0  # a meter swap: a reset
    temps = minutes[::10]
    store.write(
        ReadingBatch.concat(
            [
                ReadingBatch.for_series("m1", "power", minutes, power),
                ReadingBatch.for_series("m1", "energy_import", minutes, energy),
                ReadingBatch.for_series(
                    "wx", "outdoor_temperature", temps, rng.normal(8, 3, len(temps))
                ),
            ]
        )
    )


WIDTHS = [Every(1, "h"), Every(2, "h"), Every(1, "d"), Every(2, "d"), Every(1, "mo")]


def reads(store: DuckDBStore, start: int, end: int, tz: str) -> dict[tuple[str, str, str], Series]:
    out = {}
    for every in WIDTHS:
        for agg in Agg:
            for meter, q in (
                ("m1", "power"),
                ("wx", "outdoor_temperature"),
                ("m1", "energy_import"),
            ):
                out[(q, str(every), agg.value)] = store.aggregate(
                    meter, q, start, end, every, agg, tz
                )
        out[("consumption", str(every), "")] = store.consumption(
            "m1", "energy_import", start, end, every, tz
        )
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    with DuckDBStore(tmp_path / "store.duckdb") as opened:
        yield opened


@pytest.mark.parametrize("tz", [SHANGHAI, "Asia/Kolkata"])  # whole-hour and half-hour offsets
def test_reads_answer_the_same_from_the_rollups(store: DuckDBStore, tz: str) -> None:
    start = local_midnight(date(2026, 1, 28), tz)
    fill(store, start - 7 * HOUR, days=6)
    windows = [
        (start, start + 5 * DAY),  # retired and raw
        (start, start + 2 * DAY),  # retired only
        (start + 3 * DAY, start + 5 * DAY),  # raw only
        (start - DAY, start + 40 * DAY),  # beyond both ends
    ]
    before = {w: reads(store, *w, tz) for w in windows}
    power_raw = store.read_raw("m1", "power", 0, 2**53)

    boundary = local_midnight(date(2026, 1, 30), tz)
    done = store.retire(boundary + 5 * HOUR, tz)
    assert done.raw_from_ms == boundary  # the local midnight at or before
    assert done.points > 0
    assert done.series == 2

    for w in windows:
        after = reads(store, *w, tz)
        for key, series in before[w].items():
            same(after[key], series)
    # raw points: gone before the boundary, kept after it; the counter keeps all of its own
    kept = store.read_raw("m1", "power", 0, 2**53)
    assert kept.ts_ms.tolist() == power_raw.ts_ms[power_raw.ts_ms >= boundary].tolist()
    assert len(store.read_raw("m1", "energy_import", 0, 2**53)) == 6 * 1440


def test_hourly_and_daily_reads_of_whole_retired_buckets_are_exact(store: DuckDBStore) -> None:
    start = local_midnight(date(2026, 1, 28), SHANGHAI)
    fill(store, start, days=4)
    hourly = {
        a: store.aggregate("m1", "power", start, start + 4 * DAY, Every(1, "h"), a) for a in Agg
    }
    daily = {
        a: store.aggregate("m1", "power", start, start + 4 * DAY, Every(1, "d"), a, SHANGHAI)
        for a in Agg
    }
    store.retire(start + 3 * DAY, SHANGHAI)
    for a in Agg:
        same(
            store.aggregate("m1", "power", start, start + 4 * DAY, Every(1, "h"), a),
            hourly[a],
            exact=True,
        )
        # a day's sum adds hourly sums where the raw read added quarter-hour sums
        same(
            store.aggregate("m1", "power", start, start + 4 * DAY, Every(1, "d"), a, SHANGHAI),
            daily[a],
            exact=a not in (Agg.MEAN, Agg.SUM),
        )


def test_finer_buckets_over_a_retired_period_are_hours(store: DuckDBStore) -> None:
    start = local_midnight(date(2026, 1, 28), SHANGHAI)
    fill(store, start, days=2)
    hourly = store.aggregate("m1", "power", start, start + DAY, Every(1, "h"), Agg.MAX)
    store.retire(start + DAY, SHANGHAI)
    quarter = store.aggregate("m1", "power", start, start + 2 * DAY, Every(15, "m"), Agg.MAX)
    retired = quarter.ts_ms < start + DAY
    assert quarter.ts_ms[retired].tolist() == hourly.ts_ms.tolist()  # one bucket an hour
    assert quarter.value[retired].tolist() == hourly.value.tolist()
    assert np.count_nonzero(~retired) == 96  # quarter hours where raw points are kept


def test_a_statement_is_the_same_after_retention(tmp_path: Path) -> None:
    """The M&V: a contract's baseline and monthly statements computed before and after the raw
    temperatures are retired (the counters keep theirs) have the same figures and the same
    inputs digest, so the service's recompute finds nothing changed."""
    site = load_site(ROOT / "sites" / "luan-admin-center.toml")
    contract = site.contract("epc-2025-01")
    synthetic = synthetic_hourly(
        date(2024, 6, 28), date(2026, 2, 3), seed=5, calendar=site.work_calendar,
        retrofit=contract.reporting_start, reduction=0.10,
    )  # fmt: skip
    months = ["2025-11", "2025-12", "2026-01"]
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        write_boundary(store, contract.meters, "WX-ROOF", synthetic)
        # two more temperature readings an hour, so hourly means really average
        ts = synthetic.data.ts_ms
        for offset, delta in ((10, -0.4), (50, 0.7)):
            store.write(
                ReadingBatch.for_series(
                    "WX-ROOF",
                    "outdoor_temperature",
                    ts + offset * MINUTE,
                    synthetic.data.temperature + delta,
                )
            )
        baseline = fit_baseline(site, contract.id, store)
        before = statements(site, contract.id, store, months, baseline=baseline)
        with StatementStore(tmp_path / "statements.sqlite") as kept:
            recompute = Recompute(site, store, kept)
            first = recompute.run_once(date(2026, 2, 20))
            assert {a.what for a in first if a.month in months} == {"new"}

            done = store.retire(local_midnight(date(2026, 1, 15), SHANGHAI), SHANGHAI)
            assert done.series == 1  # the temperature; the four counters keep their points
            refit = fit_baseline(site, contract.id, store)
            after = statements(site, contract.id, store, months, baseline=baseline)
            again = recompute.run_once(date(2026, 2, 20))
        assert refit.model.to_dict() == baseline.model.to_dict()
        for b, a in zip(before, after, strict=True):
            assert a.numbers() == b.numbers()
            assert a.inputs_digest == b.inputs_digest
        assert {a.what for a in again if a.month in months} == {"unchanged"}


def test_late_points_in_a_retired_period_are_folded_into_the_rollups(store: DuckDBStore) -> None:
    start = local_midnight(date(2026, 1, 28), SHANGHAI)
    fill(store, start, days=3)
    store.retire(start + 2 * DAY, SHANGHAI)
    hour = start + 5 * HOUR
    before = {a: store.aggregate("m1", "power", hour, hour + HOUR, Every(1, "h"), a) for a in Agg}
    store.write(ReadingBatch.for_series("m1", "power", [hour + 30 * MINUTE + 1], [1000.0]))
    # not yet folded in: the roll-up answers as before
    same(store.aggregate("m1", "power", hour, hour + HOUR, Every(1, "h"), Agg.MAX), before[Agg.MAX])
    store.retire(start + 2 * DAY, SHANGHAI)
    assert (
        store.aggregate("m1", "power", hour, hour + HOUR, Every(1, "h"), Agg.MAX).value[0] == 1000.0
    )
    count = store.aggregate("m1", "power", hour, hour + HOUR, Every(1, "h"), Agg.COUNT).value[0]
    assert count == before[Agg.COUNT].value[0] + 1
    day = store.aggregate("m1", "power", start, start + DAY, Every(1, "d"), Agg.MAX, SHANGHAI)
    assert day.value.tolist() == [1000.0]
    assert len(store.read_raw("m1", "power", start, start + 2 * DAY)) == 0


def test_the_newest_point_survives_retention_and_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    start = local_midnight(date(2026, 1, 28), SHANGHAI)
    with DuckDBStore(path) as store:
        fill(store, start, days=2)
        newest = store.latest()
        store.retire(start + 3 * DAY, SHANGHAI)  # every raw point of power and temperature
        assert len(store.read_raw("m1", "power", 0, 2**53)) == 0
        assert store.latest() == newest
    with DuckDBStore(path) as reopened:
        assert reopened.latest() == newest
        assert reopened.series_keys() == sorted((r.meter_id, r.quantity) for r in newest)
        # the roll-ups and the retired boundary are in the file
        got = reopened.aggregate(
            "m1", "power", start, start + 2 * DAY, Every(1, "d"), Agg.COUNT, SHANGHAI
        )
        assert got.value.tolist() == [1440.0, 1440.0]


def test_retention_never_moves_back_and_keeps_one_time_zone(store: DuckDBStore) -> None:
    start = local_midnight(date(2026, 1, 28), SHANGHAI)
    fill(store, start, days=3)
    store.retire(start + 2 * DAY, SHANGHAI)
    assert store.retire(start + DAY, SHANGHAI).points == 0  # raw_days raised: nothing returns
    assert len(store.read_raw("m1", "power", start, start + 2 * DAY)) == 0
    with pytest.raises(StoreError, match="Asia/Shanghai"):
        store.retire(start + 3 * DAY, "Europe/Paris")


def test_an_in_memory_store_retires_too() -> None:
    start = local_midnight(date(2026, 1, 28), SHANGHAI)
    with DuckDBStore(":memory:") as store:
        fill(store, start, days=2)
        mean = store.aggregate(
            "m1", "power", start, start + 2 * DAY, Every(1, "d"), Agg.MEAN, SHANGHAI
        )
        store.retire(start + DAY, SHANGHAI)
        same(
            store.aggregate(
                "m1", "power", start, start + 2 * DAY, Every(1, "d"), Agg.MEAN, SHANGHAI
            ),
            mean,
        )


# -- the scheduled part of `epcmon run` ----------------------------------------------------


def test_retention_settings() -> None:
    default = RetentionConfig()
    assert default.raw_days == 400
    assert default.at == "03:30"
    with pytest.raises(ValueError, match="at"):
        RetentionConfig(at="25:00")
    storage = StorageConfig.model_validate({"retention": {"raw_days": 30, "at": "01:15"}})
    assert storage.retention.raw_days == 30
    assert storage.retention.at == "01:15"


def test_maintenance_retires_and_compacts(tmp_path: Path) -> None:
    start = local_midnight(date(2026, 1, 1), SHANGHAI)
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        fill(store, start, days=3)
        minutes = start + np.arange(3 * 1440, dtype=np.int64) * MINUTE
        for i in range(30):  # enough points for their deletion to free blocks of the file
            store.write(
                ReadingBatch.for_series(f"p{i}", "power", minutes, np.sin(minutes / 1e7 + i))
            )
        config = RetentionConfig(raw_days=1, compact_free_fraction=0.0)
        maintenance = StoreMaintenance(store, config, SHANGHAI)
        done = maintenance.run_once(start + 2 * DAY + 2 * HOUR)
        assert done.retired is not None
        assert done.retired.raw_from_ms == start + DAY
        assert done.compacted is not None
        assert done.compacted.bytes_after < done.compacted.bytes_before
        assert len(store.read_raw("m1", "power", 0, start + DAY)) == 0

        off = StoreMaintenance(
            store, RetentionConfig(raw_days=0, compact_free_fraction=1.0), SHANGHAI
        )
        nothing = off.run_once(start + 30 * DAY)
        assert nothing.retired is None
        assert nothing.compacted is None
        assert len(store.read_raw("m1", "power", start + DAY, start + 3 * DAY)) == 2 * 1440


async def test_maintenance_runs_daily_at_its_local_time(tmp_path: Path) -> None:
    start = local_midnight(date(2026, 1, 1), SHANGHAI)
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        fill(store, start, days=3)
        # the clock says 03:29:59.9 local: the pass is due a tenth of a second later
        due = datetime(2026, 1, 4, 3, 30, tzinfo=ZoneInfo(SHANGHAI)).timestamp()
        offset = due - 0.1 - datetime.now(UTC).timestamp()
        health = Health()
        maintenance = StoreMaintenance(
            store,
            RetentionConfig(raw_days=2),
            SHANGHAI,
            health,
            clock=lambda: datetime.now(UTC).timestamp() + offset,
        )
        assert maintenance.seconds_until_due() == pytest.approx(0.1, abs=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(maintenance.run(stop))
        deadline = asyncio.get_running_loop().time() + 20
        while maintenance.passes == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert maintenance.passes == 1
        # 2 days back from 2026-01-04 03:30 is 2026-01-02 03:30: raw points kept from its midnight
        assert len(store.read_raw("m1", "power", 0, start + DAY)) == 0
        assert len(store.read_raw("m1", "power", start + DAY, start + 2 * DAY)) == 1440
        assert maintenance.seconds_until_due() == pytest.approx(86_400, abs=1)  # tomorrow
        stop.set()
        await asyncio.wait_for(task, 5)
        assert health.snapshot().ok


async def test_a_failing_pass_is_reported_and_the_part_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    start = local_midnight(date(2026, 1, 1), SHANGHAI)
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        fill(store, start, days=3)
        store.retire(start + DAY, SHANGHAI)
        health = Health()
        # the store's roll-ups are in Shanghai time; a site moved to Paris cannot add to them
        maintenance = StoreMaintenance(
            store,
            RetentionConfig(raw_days=1),
            "Europe/Paris",
            health,
            clock=lambda: (start + 3 * DAY) / 1000,
        )
        with caplog.at_level(logging.WARNING):
            assert maintenance.run_pass() is None
            assert maintenance.run_pass() is None
        problems = [r for r in caplog.records if "Europe/Paris" in r.getMessage()]
        assert len(problems) == 1  # logged once, not once a pass
        assert "store maintenance" in health.snapshot().conditions


async def test_the_service_runs_the_maintenance_of_a_duckdb_store(tmp_path: Path) -> None:
    from epcmon.runtime import Service

    site = load_site(ROOT / "sites" / "luan-admin-center.toml")
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        service = Service(site, store, tmp_path, role="collector")
        try:
            assert "store-maintenance" in service.supervisor.names
        finally:
            service.close()

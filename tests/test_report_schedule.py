"""When `epcmon run` writes the monthly reports (`reports.schedule.MonthlyReports`), on a store
with a few months of the whole site: closed months once they settle, after waiting for
their final statements (at most `wait_s`), rewritten when a statement's new version or late
data change them, left alone otherwise; and which meters had data gaps in a month
(`processing.coverage`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from core.config import SiteConfig
from core.health import Health
from core.readings import ReadingBatch
from epcmon.sites import load
from processing.coverage import Gap, coverage, gaps
from processing.statements import StatementStore
from reports.build import files_for
from reports.schedule import MonthlyReports
from simulators.history import generate_history
from storage.duckdb_store import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
H = 3_600_000
T0 = 1_764_518_400_000  # 2025-12-01 00:00 in Shanghai


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """November and December 2025 of the whole site, hourly."""
    site = load(ROOT / "sites/luan-admin-center.toml")
    path = tmp_path_factory.mktemp("schedule") / "two-months.duckdb"
    readings = generate_history(
        site,
        datetime(2025, 10, 30, 16, tzinfo=UTC),
        datetime(2025, 12, 31, 16, tzinfo=UTC),
        interval="1h",
        seed=4,
    ).readings
    with DuckDBStore(path) as store:
        store.write(readings)
    return path


@pytest.fixture
def store(history: Path, tmp_path: Path) -> Iterator[DuckDBStore]:
    shutil.copy(history, tmp_path / "store.duckdb")
    with DuckDBStore(tmp_path / "store.duckdb") as s:
        yield s


def site_with(months: int = 2, settle_days: int = 3) -> SiteConfig:
    """The reference site whose contract reports from November 2025 on."""
    site = load(ROOT / "sites/luan-admin-center.toml")
    contract = site.contracts[0].model_copy(
        update={"reporting_start": date(2025, 11, 1), "baseline_end": date(2025, 11, 1)}
    )
    reports = site.reports.model_copy(update={"months": months, "settle_days": settle_days})
    return site.model_copy(update={"contracts": (contract,), "reports": reports})


def test_a_closed_month_waits_for_its_statement_then_is_written_and_kept(store, tmp_path):
    site = site_with(months=2)
    health = Health()
    with StatementStore(tmp_path / "statements.sqlite") as statements:
        reports = MonthlyReports(site, store, statements, tmp_path / "reports", health, wait_s=600)
        # 2 January 2026: December is still settling, November is due (and is its statement)
        assert reports.due_months(date(2026, 1, 2)) == ["2025-11", "2025-10"]
        assert reports.due_months(date(2026, 1, 4)) == ["2025-12", "2025-11"]
        today = date(2026, 1, 4)
        first = reports.run_once(today, now_s=1000.0)
        assert [(d.month, d.what) for d in first] == [
            ("2025-12", "waiting"),
            ("2025-11", "waiting"),
        ]
        assert not (tmp_path / "reports").exists()
        assert reports.pending_statements("2025-12", today) == ["epc-2025-01 electricity"]

        later = reports.run_once(today, now_s=1000.0 + 601)  # the recompute never wrote it
        assert [d.what for d in later] == ["written", "written"]
        files = files_for(site, "2025-12", tmp_path / "reports")
        assert files.xlsx.exists()
        assert files.pdf.exists()
        manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
        assert manifest["statements"] == [
            {"contract": "epc-2025-01", "utility": "electricity", "status": "missing", "version": 0}
        ]
        assert [d.what for d in reports.run_once(today, now_s=5000.0)] == ["unchanged"] * 2
        assert health.snapshot().ok


def test_a_report_is_written_once_its_statement_is_there_and_rewritten_for_a_new_version(
    store, tmp_path
):
    from processing.contract import Baseline, statement

    site = site_with(months=1)
    with StatementStore(tmp_path / "statements.sqlite") as statements:
        reports = MonthlyReports(site, store, statements, tmp_path / "reports", wait_s=3600)
        today = date(2026, 1, 5)
        assert [d.what for d in reports.run_once(today, now_s=0.0)] == ["waiting"]
        baseline = _baseline_from(site, store)
        statements.save_baseline(baseline)
        first = statement(site, "epc-2025-01", store, "2025-12", baseline=baseline)
        statements.save_statement(first)
        assert [d.what for d in reports.run_once(today, now_s=1.0)] == ["written"]
        files = files_for(site, "2025-12", tmp_path / "reports")
        # a one-month baseline fails CalTRACK's length: the statement, and the report, say so
        assert files.read_manifest()["statements"][0]["status"] == "unreliable"
        written = files.pdf.stat().st_mtime_ns
        assert [d.what for d in reports.run_once(today, now_s=2.0)] == ["unchanged"]
        assert files.pdf.stat().st_mtime_ns == written

        statements.save_statement(first)  # late data: a second version of December
        assert [d.what for d in reports.run_once(today, now_s=3.0)] == ["rewritten"]
        assert files.read_manifest()["statements"][0]["version"] == 2
        assert isinstance(baseline, Baseline)


def _baseline_from(site: SiteConfig, store: DuckDBStore):  # type: ignore[no-untyped-def]
    """A baseline fitted on November (the test's short history): enough to state December."""
    from processing.contract import fit_baseline

    contract = site.contracts[0].model_copy(
        update={"baseline_start": date(2025, 11, 1), "baseline_end": date(2025, 12, 1)}
    )
    short = site.model_copy(update={"contracts": (contract,)})
    return fit_baseline(short, contract.id, store)


def test_late_data_that_changes_the_month_rewrites_its_report(store, tmp_path):
    site = site_with(months=1)
    site = site.model_copy(update={"contracts": ()})  # no statement to wait for
    with StatementStore(tmp_path / "statements.sqlite") as statements:
        reports = MonthlyReports(site, store, statements, tmp_path / "reports")
        today = date(2026, 1, 10)
        assert [d.what for d in reports.run_once(today)] == ["written"]
        assert [d.what for d in reports.run_once(today)] == ["unchanged"]
        # a late correction on an incomer: 500 kWh more in December's last hour
        last = store.read_raw("E-TR1", "energy_import", T0, T0 + 31 * 24 * H)
        store.write(
            ReadingBatch.for_series(
                "E-TR1", "energy_import", last.ts_ms[-1:], last.value[-1:] + 500.0
            )
        )
        assert [d.what for d in reports.run_once(today)] == ["rewritten"]


def test_a_failing_month_is_reported_in_health_and_the_others_go_on(store, tmp_path):
    site = site_with(months=2).model_copy(update={"contracts": ()})
    health = Health()
    blocker = tmp_path / "reports"
    blocker.write_text("not a directory", encoding="utf-8")
    with StatementStore(tmp_path / "statements.sqlite") as statements:
        reports = MonthlyReports(site, store, statements, blocker, health)
        done = reports.run_once(date(2026, 1, 10))
        assert all(d.what.startswith("failed: ") for d in done)
        assert set(health.snapshot().problems()) == {"report 2025-12", "report 2025-11"}
        blocker.unlink()
        assert [d.what for d in reports.run_once(date(2026, 1, 10))] == ["written", "written"]
        assert health.snapshot().ok


def test_one_report_a_pass_when_asked_the_others_deferred(store, tmp_path):
    site = site_with(months=3).model_copy(update={"contracts": ()})
    with StatementStore(tmp_path / "statements.sqlite") as statements:
        reports = MonthlyReports(site, store, statements, tmp_path / "reports")
        today = date(2026, 1, 10)
        first = [d.what for d in reports.run_once(today, max_writes=1)]
        assert first == ["written", "deferred", "deferred"]
        assert [d.what for d in reports.run_once(today, max_writes=1)] == [
            "unchanged",
            "written",
            "deferred",
        ]


def test_a_month_without_data_gets_no_report(store, tmp_path):
    site = site_with(months=4).model_copy(update={"contracts": ()})
    with StatementStore(tmp_path / "statements.sqlite") as statements:
        reports = MonthlyReports(site, store, statements, tmp_path / "reports")
        done = {d.month: d.what for d in reports.run_once(date(2026, 1, 10))}
    assert done == {
        "2025-12": "written",
        "2025-11": "written",
        "2025-10": "written",  # its last day is in the store
        "2025-09": "no data",
    }


# -- data gaps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ([0, 1, 2, 3], ()),  # every hour
        ([0, 1, 3], ((2, 3),)),  # one hour missing
        ([2, 3], ((0, 2),)),  # from the start
        ([0, 1], ((2, 4),)),  # to the end: offline when the window closed
        ([], ((0, 4),)),  # silent
        ([0, 3], ((1, 3),)),
        ([1], ((0, 1), (2, 4))),
    ],
)
def test_gaps_are_the_runs_of_missing_hours(present, expected):
    found = gaps(np.array([T0 + h * H for h in present], dtype=np.int64), T0, T0 + 4 * H)
    assert found == tuple(Gap(T0 + a * H, T0 + b * H) for a, b in expected)


def test_coverage_finds_a_meters_outage_and_one_offline_at_the_months_end(store, tmp_path):
    site = load(ROOT / "sites/luan-admin-center.toml")
    start, end = T0, T0 + 31 * 24 * H
    before = {c.meter_id: c for c in coverage(site, store, start, end)}
    assert all(not c.gaps and c.share == 1.0 for c in before.values())
    assert before["WX-ROOF"].quantity == "outdoor_temperature"
    assert before["H-EV-M1"].quantity == "cooling_energy"  # no thermal_energy counter

    # a fresh store with two meters: one down for 30 hours mid-month, one gone on the 29th
    hours = np.arange(0, 31 * 24, dtype=np.int64)
    down = (hours >= 100) & (hours < 130)
    with DuckDBStore(tmp_path / "gaps.duckdb") as fresh:
        ts = T0 + hours * H
        fresh.write(
            ReadingBatch.for_series("E-D01", "energy_import", ts[~down], hours[~down] * 1.0)
        )
        gone = hours < 28 * 24
        fresh.write(ReadingBatch.for_series("E-D02", "energy_import", ts[gone], hours[gone] * 1.0))
        rows = {c.meter_id: c for c in coverage(site, fresh, start, end)}
    d01, d02 = rows["E-D01"], rows["E-D02"]
    assert d01.gaps == (Gap(T0 + 100 * H, T0 + 130 * H),)
    assert (d01.hours_with_data, d01.offline_at_end) == (31 * 24 - 30, False)
    assert d02.gaps == (Gap(T0 + 28 * 24 * H, end),)
    assert d02.offline_at_end
    assert d02.longest_gap is not None
    assert d02.longest_gap.hours == 72
    assert rows["E-D03"].silent
    assert rows["E-D03"].quantity is None

"""The contract pipeline on a store: baseline, savings, statements, recompute, schedule, CLI.

The reference site's contract (boundary E-TR1..E-TR4, weather WX-ROOF) over a synthetic
building written into a real DuckDB store as 15-minute kWh registers, with a 10 % retrofit
from the reporting start: the truth the computed savings are checked against.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from datetime import UTC, date
from pathlib import Path

import numpy as np
import pytest

from core.config import Contract, NonRoutineAdjustment, SiteConfig, load_site, parse_site
from core.errors import ConfigError, InsufficientData
from core.readings import ReadingBatch
from epcmon.cli import main
from processing.contract import (
    compute_savings,
    fit_baseline,
    recompute,
    savings_from_usage,
    statement,
    statement_from_usage,
)
from processing.schedule import Recompute
from processing.statements import StatementStore
from processing.testing import synthetic_hourly, write_boundary
from processing.usage import load_usage
from storage.duckdb_store import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
SITE_FILE = ROOT / "sites" / "luan-admin-center.toml"
START, END = date(2024, 6, 28), date(2026, 2, 3)
REPORT_END = date(2026, 2, 1)


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(SITE_FILE)


@pytest.fixture(scope="module")
def contract(site: SiteConfig) -> Contract:
    return site.contract("epc-2025-01")


@pytest.fixture(scope="module")
def synthetic(site: SiteConfig, contract: Contract):  # type: ignore[no-untyped-def]
    return synthetic_hourly(
        START,
        END,
        seed=21,
        calendar=site.work_calendar,
        retrofit=contract.reporting_start,
        reduction=0.10,
    )


@pytest.fixture(scope="module")
def store(synthetic, contract: Contract) -> Iterator[DuckDBStore]:  # type: ignore[no-untyped-def]
    with DuckDBStore(":memory:") as s:
        write_boundary(s, contract.meters, "WX-ROOF", synthetic, shares=(0.3, 0.3, 0.25, 0.15))
        yield s


def _truth(synthetic, start: date, end: date) -> float:  # type: ignore[no-untyped-def]
    d = synthetic.data.day
    sel = (d >= np.datetime64(start)) & (d < np.datetime64(end))
    return float(synthetic.true_savings[sel].sum())


def test_savings_against_the_truth(site, contract, store, synthetic) -> None:  # type: ignore[no-untyped-def]
    result = compute_savings(site, contract.id, store, end=REPORT_END)
    assert result.unit == "kWh"
    assert [m.label for m in result.months] == [f"2025-{m:02d}" for m in range(7, 13)] + ["2026-01"]
    truth = _truth(synthetic, contract.reporting_start, REPORT_END)
    assert abs(result.total.avoided - truth) < result.total.u90.u
    assert result.total.u68.u < result.total.u90.u
    within = sum(
        abs(m.avoided - _truth(synthetic, m.start, m.end)) < m.u90.u for m in result.months
    )
    assert within >= 6, [
        (m.label, m.avoided, _truth(synthetic, m.start, m.end), m.u90.u) for m in result.months
    ]
    assert sum(m.avoided for m in result.months) == pytest.approx(result.total.avoided)
    assert result.years[0].label == "contract year 1"
    baseline = result.baseline
    assert baseline.model.stats is not None
    assert baseline.model.stats.cvrmse < 0.1
    assert {f.code for f in baseline.findings} >= {"missing_days", "fit_limits"}
    assert all(f.severity.value != "error" for f in baseline.findings)


def test_statement_recomputes_from_its_json(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    baseline = fit_baseline(site, contract.id, store)
    stmt = statement(site, contract.id, store, "2026-01", baseline=baseline)
    assert stmt.month_savings.days == 31
    assert stmt.month_savings.days_used == 31
    assert stmt.year_to_date.start == contract.reporting_start
    with StatementStore(":memory:") as statements:
        statements.save_baseline(baseline)
        statements.save_statement(stmt)
        stored = statements.latest_statement_json(contract.id, "2026-01")
        assert stored is not None
        again = recompute(json.loads(json.dumps(stored)))
        assert again.numbers() == stmt.numbers()
        assert again.inputs_digest == stmt.inputs_digest
        restored = statements.latest_baseline(contract.id)
        assert restored is not None
        assert restored.model.to_dict() == baseline.model.to_dict()
    money = stmt.money["month"]
    assert sum(money.kwh.values()) == pytest.approx(stmt.month_savings.avoided)
    assert money.vendor_cny + money.owner_cny == pytest.approx(money.total_cny)
    assert money.vendor_cny == pytest.approx(0.8 * money.total_cny)
    assert money.kwh["sharp"] == 0 or stmt.month in ("2026-01",)  # winter: a sharp peak
    assert stmt.carbon_t["month"] == pytest.approx(stmt.month_savings.avoided / 1000 * 0.5703)
    g = stmt.guarantee
    assert g is not None
    assert g.contract_year == 1
    assert not g.year_complete
    assert g.pro_rata_kwh == pytest.approx(600_000 * 215 / 365)


def test_a_changed_input_changes_the_digest(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    baseline = fit_baseline(site, contract.id, store)
    stmt = statement(site, contract.id, store, "2025-12", baseline=baseline)
    stored = stmt.to_dict()
    stored["inputs"]["daily"]["actual"][-1] += 1000.0
    changed = recompute(stored)
    assert changed.inputs_digest != stmt.inputs_digest
    assert changed.month_savings.avoided == pytest.approx(stmt.month_savings.avoided - 1000.0)


def test_adjustments_add_to_the_baseline(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    baseline = fit_baseline(site, contract.id, store)
    adjusted = contract.model_copy(
        update={
            "adjustments": (
                NonRoutineAdjustment(
                    id="move-in",
                    start=date(2025, 12, 10),
                    end=date(2025, 12, 20),
                    amount_per_day=500.0,
                    description="a department moves in",
                    document="doc 1",
                ),
                NonRoutineAdjustment(
                    id="closure",
                    start=date(2025, 12, 1),
                    fraction=-0.01,
                    day_types=("workday",),
                    description="a floor closed",
                    document="doc 2",
                ),
            )
        }
    )
    usage = load_usage(
        store,
        meters=contract.meters,
        quantity="energy_import",
        weather_station="WX-ROOF",
        start=contract.reporting_start,
        end=date(2026, 1, 1),
        tz=site.site.timezone,
        day_type=site.work_calendar.day_type,
    )
    plain = statement_from_usage(contract, baseline, usage, "2025-12")
    with_adj = statement_from_usage(adjusted, baseline, usage, "2025-12")
    ds = savings_from_usage(
        adjusted, baseline, usage, start=date(2025, 12, 1), end=date(2026, 1, 1)
    ).daily
    expected = 10 * 500.0 - 0.01 * float(
        ds.baseline[usage.daily.between(date(2025, 12, 1), date(2026, 1, 1)).day_type == 0].sum()
    )
    assert with_adj.month_savings.adjustments == pytest.approx(expected)
    assert with_adj.month_savings.avoided == pytest.approx(plain.month_savings.avoided + expected)
    assert recompute(with_adj.to_dict()).numbers() == with_adj.numbers()


def test_gaps_and_resets_are_reported(site, contract, synthetic) -> None:  # type: ignore[no-untyped-def]
    with DuckDBStore(":memory:") as s:
        write_boundary(s, contract.meters, "WX-ROOF", synthetic)
        raw = s.read_raw("E-TR1", "energy_import", 0, 4_000_000_000_000)
        # a six-hour gap across midnight and a register reset in the reporting period
        t0 = int(np.datetime64("2025-11-05T13:00").astype("datetime64[ms]").astype(np.int64))
        gap = (raw.ts_ms > t0) & (raw.ts_ms < t0 + 6 * 3_600_000)
        kept_ts, kept_v = raw.ts_ms[~gap], raw.value[~gap].copy()
        t1 = int(np.datetime64("2025-11-20T02:00").astype("datetime64[ms]").astype(np.int64))
        kept_v[kept_ts >= t1] -= kept_v[kept_ts >= t1][0] - 1.0
        with DuckDBStore(":memory:") as s2:
            s2.write(ReadingBatch.for_series("E-TR1", "energy_import", kept_ts, kept_v))
            for meter in contract.meters[1:]:
                r = s.read_raw(meter, "energy_import", 0, 4_000_000_000_000)
                s2.write(ReadingBatch.for_series(meter, "energy_import", r.ts_ms, r.value))
            t = s.read_raw("WX-ROOF", "outdoor_temperature", 0, 4_000_000_000_000)
            s2.write(ReadingBatch.for_series("WX-ROOF", "outdoor_temperature", t.ts_ms, t.value))
            baseline = fit_baseline(site, contract.id, s2)
            stmt = statement(site, contract.id, s2, "2025-11", baseline=baseline)
    assert stmt.month_savings.days_estimated == 2  # the days on both sides of the gap's midnight
    # a day without its hourly shares (not every hour known) is spread like the baseline;
    # the record verifies after a strict JSON serialiser wrote that NaN row as null
    import orjson

    from processing.contract import verify

    record = stmt.to_dict()
    record["inputs"]["shares"][-3] = [None] * 4
    again = recompute(record)
    record = orjson.loads(orjson.dumps(again.to_dict()))
    assert record["inputs"]["shares"][-3] == [None] * 4
    assert verify(record) is None
    money = again.money["month"]
    assert sum(money.kwh.values()) == pytest.approx(again.month_savings.avoided)
    assert money.total_cny != stmt.money["month"].total_cny
    events = [f for f in stmt.findings if f.code == "counter_events"]
    assert events
    assert events[0].values["meter"] == "E-TR1"
    assert events[0].values["gap"] == 1
    assert events[0].values["reset"] == 1
    assert stmt.month_savings.actual > 0


def test_statement_before_reporting_is_refused(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InsufficientData, match="before the reporting period"):
        statement(site, contract.id, store, "2025-03")


def test_hourly_baseline_statement(site, contract, store, synthetic) -> None:  # type: ignore[no-untyped-def]
    baseline = fit_baseline(site, contract.id, store, model="hourly")
    assert baseline.model.KIND == "hourly-towt"
    stmt = statement(site, contract.id, store, "2025-10", baseline=baseline)
    truth = _truth(synthetic, date(2025, 7, 1), date(2025, 11, 1))
    assert abs(stmt.cumulative.avoided - truth) < stmt.cumulative.u90.u
    assert recompute(json.loads(json.dumps(stmt.to_dict()))).numbers() == stmt.numbers()


def test_normalised_savings(site, store) -> None:  # type: ignore[no-untyped-def]
    c = site.contract("epc-2025-01")
    normalised = c.model_copy(
        update={"statements": c.statements.model_copy(update={"normalised": True})}
    )
    baseline = fit_baseline(site, c.id, store)
    usage = load_usage(
        store,
        meters=c.meters,
        quantity="energy_import",
        weather_station="WX-ROOF",
        start=c.baseline_start,
        end=REPORT_END,
        tz=site.site.timezone,
        day_type=site.work_calendar.day_type,
    )
    # Too little reporting data for a reporting-period model: no normalised figure.
    stmt = statement_from_usage(normalised, baseline, usage, "2026-01", history=usage.daily)
    assert stmt.normalised is None


# -- the schedule ---------------------------------------------------------------------------


def test_recompute_schedule(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    with StatementStore(":memory:") as statements:
        job = Recompute(site, store, statements)
        assert job.due_months(contract.id, date(2025, 9, 3)) == ["2025-07"]
        assert job.due_months(contract.id, date(2025, 9, 4)) == ["2025-07", "2025-08"]
        assert job.open_months(contract.id, date(2025, 9, 3)) == ["2025-08", "2025-09"]
        first = job.run_once(date(2025, 10, 10))
        assert [(a.month, a.what) for a in first] == [
            ("", "baseline"),
            ("2025-07", "new"),
            ("2025-08", "new"),
            ("2025-09", "new"),
            ("2025-10", "provisional"),  # the running month, refreshed every pass
        ]
        again = job.run_once(date(2025, 10, 10))
        assert [a.what for a in again] == ["unchanged"] * 3 + ["provisional"]
        assert len(statements.history(contract.id)) == 3
        months = statements.months(contract.id)
        assert [(e.month, e.status, e.version) for e in months] == [
            ("2025-07", "final", 1),
            ("2025-08", "final", 1),
            ("2025-09", "final", 1),
            ("2025-10", "provisional", 0),
        ]
        # October closes and settles: its final statement replaces the provisional figures
        later = job.run_once(date(2025, 11, 4))
        assert ("2025-10", "new") in [(a.month, a.what) for a in later]
        assert statements.provisional_json(contract.id, "2025-10") is None
        assert statements.months(contract.id)[3].status == "final"


def test_recompute_skips_months_without_data(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    """The store's data ends 2026-02-03: later months get no statement (not a zero)."""
    with StatementStore(":memory:") as statements:
        actions = Recompute(site, store, statements).run_once(date(2026, 5, 20))
        by_month = {a.month: a.what for a in actions}
        assert by_month["2026-01"] == "new"
        assert by_month["2026-03"] == by_month["2026-04"] == by_month["2026-05"] == "no data"
        assert {e.month for e in statements.months(contract.id)} == {
            f"{y}-{m:02d}" for y, m in [(2025, 7), (2025, 8), (2025, 9), (2025, 10), (2025, 11),
                                        (2025, 12), (2026, 1), (2026, 2)]
        }  # fmt: skip


def test_statement_of_an_open_month_is_refused(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    """A month not over in the site's time zone: refused before anything is computed."""
    from processing.contract import _local_today

    this_month = _local_today(site).strftime("%Y-%m")
    with pytest.raises(InsufficientData, match="has not ended"):
        statement(site, contract.id, store, this_month)
    with pytest.raises(InsufficientData, match="has not ended"):
        statement(site, contract.id, store, "2099-01")
    with pytest.raises(InsufficientData, match="no data for 2026-04"):
        statement(site, contract.id, store, "2026-04")  # closed, but the store has no data


def test_recompute_notices_corrected_data(site, contract, synthetic) -> None:  # type: ignore[no-untyped-def]
    with DuckDBStore(":memory:") as s, StatementStore(":memory:") as statements:
        write_boundary(s, contract.meters, "WX-ROOF", synthetic)
        job = Recompute(site, s, statements)
        job.run_once(date(2025, 8, 10))
        # a corrected temperature reading arrives for July
        t = int(np.datetime64("2025-07-15T04:30").astype("datetime64[ms]").astype(np.int64))
        s.write(ReadingBatch.for_series("WX-ROOF", "outdoor_temperature", [t], [39.0]))
        actions = job.run_once(date(2025, 8, 10))
        assert [(a.month, a.what) for a in actions] == [
            ("2025-07", "updated"),  # a new version; the old one stays for the auditor
            ("2025-08", "provisional"),
        ]
        assert [e.version for e in statements.months(contract.id)] == [2, 0]


async def test_recompute_runs_until_stopped(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    with StatementStore(":memory:") as statements:
        job = Recompute(site, store, statements)
        stop = asyncio.Event()
        task = asyncio.create_task(job.run(stop, every_s=3600))
        for _ in range(400):
            await asyncio.sleep(0.05)
            if statements.latest_baseline(contract.id) is not None and statements.history(
                contract.id
            ):
                break
        stop.set()
        await asyncio.wait_for(task, 5)
        assert statements.history(contract.id)


# -- configuration -------------------------------------------------------------------------


def test_tariff_must_cover_every_month() -> None:
    import tomllib

    raw = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    raw["contracts"][0]["tariff"]["seasons"][0]["months"] = [7]
    with pytest.raises(ConfigError) as err:
        parse_site(raw, source="x.toml")
    assert "contract 'epc-2025-01'" in str(err.value)
    assert "tariff" in str(err.value)
    assert "months 1-12" in str(err.value)


def test_adjustment_needs_one_amount_and_a_document() -> None:
    import tomllib

    raw = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    raw["contracts"][0]["adjustments"] = [
        {
            "id": "a",
            "start": date(2026, 1, 1),
            "amount_per_day": 1.0,
            "fraction": 0.1,
            "description": "x",
            "document": "y",
        }
    ]
    with pytest.raises(ConfigError, match="exactly one of amount_per_day or fraction"):
        parse_site(raw, source="x.toml")
    raw["contracts"][0]["adjustments"] = [
        {"id": "a", "start": date(2026, 1, 1), "amount_per_day": 1.0, "description": "x"}
    ]
    with pytest.raises(ConfigError, match="document"):
        parse_site(raw, source="x.toml")


def test_weather_station_must_be_a_weather_meter() -> None:
    import tomllib

    raw = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    raw["contracts"][0]["weather_station"] = "E-TR1"
    with pytest.raises(ConfigError, match="weather_station"):
        parse_site(raw, source="x.toml")


def test_reference_contract_prices(contract: Contract) -> None:
    tariff = contract.tariff
    assert tariff is not None
    assert tariff.kind == "tou"
    table = tariff.price_table()
    assert (
        table[7][20] > table[7][10] > table[7][14] > table[7][3]
    )  # Aug: sharp > peak > flat > valley
    assert contract.vendor_share == 0.8
    assert contract.grid_emission_factor_t_per_mwh == 0.5703
    assert contract.guarantee is not None


# -- the command line ----------------------------------------------------------------------


def test_cli_fit_and_report(tmp_path: Path, contract: Contract, synthetic, capsys) -> None:  # type: ignore[no-untyped-def]
    text = SITE_FILE.read_text(encoding="utf-8").replace(
        'path = "data/luan-admin-center.duckdb"', f'path = "{tmp_path}/site.duckdb"'
    )
    site_file = tmp_path / "site.toml"
    site_file.write_text(text, encoding="utf-8")
    with DuckDBStore(tmp_path / "site.duckdb") as s:
        write_boundary(s, contract.meters, "WX-ROOF", synthetic)
    assert (
        main(
            [
                "baseline",
                "fit",
                "--contract",
                contract.id,
                "--site",
                str(site_file),
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "CV(RMSE)" in out
    assert "stored as baseline #1" in out
    assert json.loads((tmp_path / "m.json").read_text())["model"] == "daily-changepoint"
    code = main(
        [
            "savings", "report", "--contract", contract.id, "--month", "2025-12", "--site", str(site_file),
            "--csv", str(tmp_path / "s.csv"), "--plot", str(tmp_path / "s.png"),
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "2025-12" in out
    assert "contract year 1 to date" in out
    assert "guarantee" in out
    with (tmp_path / "s.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["period"] for r in rows] == ["2025-12", "contract year 1 to date", "cumulative"]
    assert float(rows[0]["avoided"]) > 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --json: stdout is the stored record alone, as `savings export` and the API give it
    code = main(
        ["savings", "report", "--contract", contract.id, "--month", "2025-12", "--site", str(site_file), "--json"]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["status"] == "final"
    assert doc["numbers"]["month"]["avoided"] == pytest.approx(float(rows[0]["avoided"]), rel=1e-3)
    assert "stored as statement" in captured.err
    assert (
        main(
            [
                "savings",
                "report",
                "--contract",
                "nope",
                "--month",
                "2025-12",
                "--site",
                str(site_file),
            ]
        )
        == 2  # a user error: one line, exit code 2
    )
    with pytest.raises(SystemExit):
        main(
            [
                "savings",
                "report",
                "--contract",
                contract.id,
                "--month",
                "12/2025",
                "--site",
                str(site_file),
            ]
        )
    assert "expected YYYY-MM" in capsys.readouterr().err


def test_a_water_boundary(site, contract, synthetic) -> None:  # type: ignore[no-untyped-def]
    import tomllib

    from processing.testing import counter_samples

    raw = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    raw["contracts"][0]["utilities"] = {"water": {"meters": ["W-MAIN"], "price_cny_per_m3": 4.30}}
    wet = parse_site(raw, source="wet.toml")
    water = synthetic.data.with_energy(synthetic.data.energy / 200.0)  # m³ per hour
    ts, values = counter_samples(water, start_value=5_000.0, every_s=3600)
    with DuckDBStore(":memory:") as s, StatementStore(":memory:") as statements:
        write_boundary(s, contract.meters, "WX-ROOF", synthetic)
        s.write(ReadingBatch.for_series("W-MAIN", "volume", ts, values))
        stmt = statement(wet, contract.id, s, "2025-11", utility="water")
        assert stmt.unit == "m3"
        assert stmt.month_savings.avoided > 0
        money = stmt.money["month"]
        assert money.total_cny == pytest.approx(stmt.month_savings.avoided * 4.30)
        assert stmt.carbon_t["month"] == 0.0
        assert stmt.guarantee is None  # the guarantee is in kWh
        assert recompute(stmt.to_dict()).numbers() == stmt.numbers()
        actions = Recompute(wet, s, statements).run_once(date(2025, 8, 10))
        assert {(a.utility, a.what) for a in actions} == {
            ("electricity", "baseline"),
            ("electricity", "new"),
            ("water", "baseline"),
            ("water", "new"),
            ("electricity", "provisional"),
            ("water", "provisional"),
        }


def test_a_series_of_statements_equals_each_alone(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    from processing.contract import statements

    baseline = fit_baseline(site, contract.id, store)
    series = statements(site, contract.id, store, ["2025-08", "2025-09"], baseline=baseline)
    alone = statement(site, contract.id, store, "2025-08", baseline=baseline)
    assert series[0].inputs_digest == alone.inputs_digest
    assert series[0].numbers() == alone.numbers()
    assert series[1].cumulative.days == 92


def test_temperature_gaps_are_filled_up_to_six_hours() -> None:
    from core.calendar import WorkCalendar
    from processing.usage import usage_from_samples

    start, end = date(2025, 3, 3), date(2025, 3, 5)
    t0 = int(np.datetime64("2025-03-02T16:00").astype("datetime64[ms]").astype(np.int64))
    hours = t0 + np.arange(-10, 60) * 3_600_000
    temps = np.linspace(5.0, 12.0, len(hours))
    keep = np.ones(len(hours), dtype=bool)
    keep[20:25] = False  # five hours: filled
    keep[40:48] = False  # eight hours: left missing
    counter_ts = t0 + np.arange(-4, 200) * 900_000
    usage = usage_from_samples(
        {"M": (counter_ts, np.arange(len(counter_ts)) * 2.0)},
        (hours[keep], temps[keep]),
        start=start,
        end=end,
        tz="Asia/Shanghai",
        day_type=WorkCalendar().day_type,
    )
    t = usage.hourly.temperature
    assert np.isfinite(t[10:15]).all()  # hours 20-24 of the input, 10 hours before the grid
    assert np.isnan(t[30:38]).all()
    assert usage.temperature_interpolated_hours == 5
    assert usage.daily.energy.tolist() == pytest.approx([192.0, 192.0])


def test_a_billing_baseline_from_monthly_readings(contract, synthetic) -> None:  # type: ignore[no-untyped-def]
    """`model = "billing"`: the boundary is read once a month (at each month's first local
    midnight), the billing model is fitted on the baseline year's twelve bills, and the
    statements count months against the truth, recompute from their record, and say how
    the money was priced (no hourly data: by the hours of each tariff period)."""
    import tomllib
    from zoneinfo import ZoneInfo

    from processing.testing import counter_samples

    raw = tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))
    raw["contracts"][0]["baseline"]["model"] = "billing"
    billing = parse_site(raw, source="billing.toml")
    data = synthetic.data
    ts, values = counter_samples(data, start_value=1_000.0, every_s=3600)
    local = [np.datetime64(t, "ms").astype(object).replace(tzinfo=UTC) for t in ts.tolist()]
    zone = ZoneInfo("Asia/Shanghai")
    month_start = np.array(
        [(d.astimezone(zone).day, d.astimezone(zone).hour) == (1, 0) for d in local]
    )
    assert month_start.sum() == 20  # 2024-07 .. 2026-02: one reading a month
    with DuckDBStore(":memory:") as s, StatementStore(":memory:") as statements:
        s.write(
            ReadingBatch.for_series(
                contract.meters[0], "energy_import", ts[month_start], values[month_start]
            )
        )
        for meter in contract.meters[1:]:  # the other incomers read zero: one meter carries it
            s.write(
                ReadingBatch.for_series(
                    meter, "energy_import", ts[month_start], np.zeros(month_start.sum())
                )
            )
        s.write(
            ReadingBatch.for_series(
                "WX-ROOF", "outdoor_temperature", data.ts_ms + 1_800_000, data.temperature
            )
        )
        baseline = fit_baseline(billing, contract.id, s)
        assert baseline.model.KIND == "billing-degree-day"
        assert baseline.model.stats is not None
        assert baseline.model.stats.n == 12
        assert not [f for f in baseline.findings if f.severity.value == "error"], baseline.findings
        months = ["2025-08", "2025-11", "2026-01"]
        from processing.contract import statements as many

        for stmt in many(billing, contract.id, s, months, baseline=baseline):
            p = stmt.month_savings
            assert p.u90.m == 1  # one bill
            truth = _truth(synthetic, p.start, p.end)
            assert abs(p.avoided - truth) < p.u90.u, (stmt.month, p.avoided, truth, p.u90.u)
            assert stmt.year_to_date.u90.m == {"2025-08": 2, "2025-11": 5, "2026-01": 7}[stmt.month]
            assert stmt.pricing.startswith("monthly readings")
            assert sum(stmt.money["month"].kwh.values()) == pytest.approx(p.avoided)
            assert recompute(json.loads(json.dumps(stmt.to_dict()))).numbers() == stmt.numbers()
            statements.save_statement(stmt)
        assert [e.status for e in statements.months(contract.id)] == ["final"] * 3


def test_a_baseline_stored_by_an_earlier_version_is_completed_once(site, contract, store) -> None:  # type: ignore[no-untyped-def]
    """An upgrade keeps the stored model (no refit) and adds what this version states its
    intervals and prices from: the held-out months and the hourly profile."""
    from dataclasses import replace

    from processing.baseline import upgraded

    fresh = fit_baseline(site, contract.id, store)
    old_model = type(fresh.model).from_dict({**fresh.model.to_dict(), "heldout": None})
    old = replace(fresh, model=old_model, profile=None)
    with StatementStore(":memory:") as statements:
        statements.save_baseline(old)
        actions = Recompute(site, store, statements).run_once(date(2025, 10, 10))
        assert actions[0].what == "baseline upgraded"
        stored = statements.latest_baseline(contract.id)
        assert stored is not None
        assert stored.profile is not None
        assert stored.model.heldout is not None  # type: ignore[attr-defined]
        assert stored.fitted_at == old.fitted_at  # the same fit, completed
        from processing.baseline import load

        days = load(site, contract, store, "electricity", old.start, old.end).daily
        assert np.allclose(stored.model.predict(days), old_model.predict(days), equal_nan=True)
        stmt = statements.latest_statement(contract.id, "2025-09")
        assert stmt is not None
        assert stmt.month_savings.uncertainty_method == "heldout-months"
        again = Recompute(site, store, statements).run_once(date(2025, 10, 10))
        assert "baseline upgraded" not in {a.what for a in again}
        assert upgraded(site, contract, store, stored) is None

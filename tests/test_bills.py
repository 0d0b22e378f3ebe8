"""Department bills on a simulated year of the reference site: every month, the bills plus the
unallocated remainder are what the transformer incomers and the water mains measured; the
API serves every department in one call, as JSON and as the same figures in CSV, to the
building's roles only; `epcmon bills` prints and exports them."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app, warm_caches
from api.keys import KeyStore, Role
from api.routes.bills import ResultCache
from core.config import SiteConfig
from epcmon.sites import load
from processing.bills import MonthBills, last_closed_month, month_bills, month_range
from processing.intensity import intensity
from processing.statements import StatementStore
from simulators.history import generate_history
from storage.base import Every
from storage.duckdb_store import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]
INCOMERS = ["E-TR1", "E-TR2", "E-TR3", "E-TR4"]
MAINS = ["W-MAIN", "W-EAST", "W-WEST", "W-CONF"]


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load(ROOT / "sites/luan-admin-center.toml")


@pytest.fixture(scope="module")
def year_file(site: SiteConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """December 2024 to December 2025 of the whole site, hourly (December 2024 gives January's
    first hour a reading before it)."""
    path = tmp_path_factory.mktemp("bills") / "year.duckdb"
    history = generate_history(
        site,
        datetime(2024, 11, 30, 16, tzinfo=UTC),
        datetime(2025, 12, 31, 16, tzinfo=UTC),
        interval="1h",
        seed=3,
    )
    with DuckDBStore(path) as store:
        store.write(history.readings)
    return path


@pytest.fixture(scope="module")
def store(year_file: Path) -> Iterator[DuckDBStore]:
    copy = year_file.with_name("open.duckdb")
    shutil.copy(year_file, copy)
    with DuckDBStore(copy) as s:
        yield s


@pytest.fixture(scope="module")
def year(site: SiteConfig, store: DuckDBStore) -> dict[str, MonthBills]:
    return {m: month_bills(site, store, m) for m in MONTHS}


def measured(site: SiteConfig, store: DuckDBStore, meters: list[str], month: str) -> float:
    """What the meters' counters advanced over the month: one monthly bucket each."""
    start, end, _ = month_range(site, month)
    quantity = "volume" if meters[0].startswith("W") else "energy_import"
    return sum(
        float(
            store.consumption(
                m, quantity, start, end, Every.parse("1mo"), site.site.timezone
            ).value.sum()
        )
        for m in meters
    )


def priced_by_the_hour(site: SiteConfig, store: DuckDBStore, month: str) -> float:
    """The incomers' hours priced one by one at the site tariff (independently of the bills)."""
    tariff = site.billing.tariff
    assert tariff is not None
    table = tariff.price_table()
    start, end, _ = month_range(site, month)
    cny = 0.0
    for m in INCOMERS:
        s = store.consumption(m, "energy_import", start, end, Every.parse("1h"), "Asia/Shanghai")
        for t, v in zip(s.ts_ms.tolist(), s.value.tolist(), strict=True):
            local = datetime.fromtimestamp(t / 1000, tz=site.site.tz)
            cny += v * table[local.month - 1][local.hour]
    return cny


@pytest.mark.parametrize("month", MONTHS)
def test_bills_plus_the_remainder_are_the_incomers_and_the_mains_every_month(
    site, store, year, month
):
    doc = year[month].to_dict()
    rows, left = doc["rows"], doc["unallocated"]
    assert len(rows) == 57
    assert {r["rank"] for r in rows} == set(range(1, 58))
    assert all(r["kwh"] > r["kwh_own"] > 0 and r["cny"] > 0 and r["water_m3"] > 0 for r in rows)
    incomers = measured(site, store, INCOMERS, month)
    assert incomers > 300_000
    # to the kWh: the rows are rounded to the Wh, so they may differ by 57 half-Wh at most
    assert sum(r["kwh"] for r in rows) + left["kwh"] == pytest.approx(incomers, abs=0.05)
    mains = measured(site, store, MAINS, month)
    assert sum(r["water_m3"] for r in rows) + left["water_m3"] == pytest.approx(mains, abs=0.05)
    # and to the fen, every hour priced at its own period
    cny = sum(r["cny_electricity"] for r in rows) + left["cny_electricity"]
    assert cny == pytest.approx(priced_by_the_hour(site, store, month), abs=0.5)
    check = doc["reconciliation"]
    assert check["electricity"]["difference"] == 0.0
    assert check["water"]["difference"] == 0.0
    assert check["electricity"]["cny"]["difference"] == 0.0
    # the remainder is what the site file leaves to the administration: the facade lighting
    # and the irrigation water, no more
    assert left["kwh"] == pytest.approx(measured(site, store, ["E-LT-OUT"], month), abs=0.002)
    assert left["water_m3"] == pytest.approx(measured(site, store, ["W-IOT-IRR"], month), abs=0.002)
    assert [i["id"] for i in left["electricity"]] == ["facade-lighting"]
    # every pool that shares is shared whole
    assert all(p["unallocated"] == 0 for p in doc["pools"] if p["rule"] != "none")


def test_summer_bills_carry_the_sharp_peak_and_winter_ones_none_in_shoulder_months(year):
    july = year["2025-07"].to_dict()["rows"][0]
    april = year["2025-04"].to_dict()["rows"][0]
    assert july["cny_by_period"]["sharp"] > 0
    assert july["kwh_by_period"]["sharp"] > 0
    assert april["kwh_by_period"]["sharp"] == 0
    assert april["cny_by_period"]["sharp"] == 0


class CountingStore:
    """The real store, counting the reads the bills make."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.reads: list[str] = []

    def consumption(self, meter_id: str, *args: object, **kwargs: object) -> object:
        self.reads.append(meter_id)
        return self.store.consumption(meter_id, *args, **kwargs)  # type: ignore[arg-type]


def test_one_store_read_per_meter_month(site, store):
    counting = CountingStore(store)
    month_bills(site, counting, "2025-03")  # type: ignore[arg-type]
    billed = [m.id for m in site.meters if m.kind.value in ("electricity", "water")]
    assert sorted(counting.reads) == sorted(billed)
    counting.reads.clear()
    intensity(site, counting, "2025-12")  # type: ignore[arg-type]  # 12 months + the YTD
    assert sorted(counting.reads) == sorted(billed)


def test_a_month_not_ended_is_provisional(site, store):
    running = month_bills(site, store, "2025-12", now=datetime(2025, 12, 20, tzinfo=UTC))
    assert running.status == "provisional"
    assert running.to_dict()["provisional"] is True


def test_intensity_over_the_year_is_the_incomers_over_the_floor_area_and_the_staff(
    site, store, year
):
    doc = intensity(site, store, "2025-12")
    assert doc["window"] == {
        "first": "2025-01",
        "last": "2025-12",
        "months": 12,
        "months_with_data": 12,
        "complete": True,
        "annualised": False,
    }
    kwh = sum(b.electricity.measured.total for b in year.values())
    water = sum(b.water.measured.total for b in year.values())
    s = doc["site"]
    assert s["kwh"] == pytest.approx(kwh, abs=0.001)
    assert s["kwh_per_m2"] == pytest.approx(kwh / 94_000, abs=0.001)
    assert s["kwh_per_person"] == pytest.approx(kwh / 3376, abs=0.001)
    assert s["water_m3_per_person"] == pytest.approx(water / 3376, abs=0.001)
    assert s["year_to_date"]["kwh"] == s["kwh"]
    # the buildings are what their departments are billed; with the remainder, the site
    buildings = sum(b["kwh"] for b in doc["buildings"])
    assert buildings + doc["unallocated"]["kwh"] == pytest.approx(kwh, abs=0.01)
    billed_main = sum(
        r["kwh"] for b in year.values() for r in b.to_dict()["rows"] if r["building"] == "main"
    )
    assert doc["buildings"][0]["kwh"] == pytest.approx(billed_main, abs=0.1)
    targets = {t["id"]: t for t in doc["targets"]}
    assert set(targets) == {"gbt51161", "quota-energy-per-person", "quota-water-per-person"}
    assert all(t["provisional"] for t in targets.values())
    assert targets["gbt51161"]["site"]["value"] == s["kwh_per_m2"]
    assert set(targets["gbt51161"]["buildings"]) == {"main", "east", "west", "conf"}
    assert "buildings" not in targets["quota-water-per-person"]


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(site, store, tmp_path_factory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("bills-api")
    keys = KeyStore(tmp / "keys.sqlite3")
    headers = {
        role: {"Authorization": f"Bearer {keys.create(Role(role))[1]}"}
        for role in ("viewer", "engineer")
    }
    headers["vendor"] = {
        "Authorization": f"Bearer {keys.create(Role.VENDOR, contracts=('epc-2025-01',))[1]}"
    }
    app = create_app(site, store, keys=keys, statements=StatementStore(tmp / "st.sqlite3"))
    with TestClient(app) as c:
        yield c, headers
    keys.close()


def test_one_call_returns_every_department_and_the_csv_is_the_same_figures(client, year):
    c, headers = client
    r = c.get("/api/v1/bills", params={"month": "2025-07"}, headers=headers["viewer"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc == {**year["2025-07"].to_dict(), "site": doc["site"]}
    assert doc["status"] == "final"
    assert len(doc["rows"]) == 57
    assert doc["site"]["intensity"]["through"] == "2025-07"
    r = c.get(
        "/api/v1/bills", params={"month": "2025-07", "format": "csv"}, headers=headers["engineer"]
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert len(table) == 58
    assert table[-1]["tenant"] == "unallocated"
    for line, row in zip(table, doc["rows"], strict=False):
        assert line["tenant"] == row["tenant"]
        assert int(line["rank"]) == row["rank"]
        for key in ("kwh_own", "kwh", "water_m3", "cny", "cny_electricity", "kwh_per_m2"):
            assert float(line[key]) == row[key], key
        for pool, kwh in row["kwh_apportioned"].items():
            assert float(line[f"kwh_{pool}"]) == kwh
        for period, cny in row["cny_by_period"].items():
            assert float(line[f"cny_{period}"]) == cny
    last, left = table[-1], doc["unallocated"]
    assert float(last["kwh"]) == left["kwh"]
    assert float(last["cny"]) == left["cny"]
    assert float(last["kwh_facade-lighting"]) == left["kwh"]
    # the CSV alone reconciles: its kWh column sums to the incomers
    total = sum(float(line["kwh"]) for line in table)
    assert total == pytest.approx(doc["reconciliation"]["electricity"]["measured"], abs=0.05)


def test_months_the_api_refuses(client):
    c, headers = client
    for month, status in (("2099-01", 400), ("1969-12", 400), ("2025-13", 400), ("2025-1", 422)):
        r = c.get("/api/v1/bills", params={"month": month}, headers=headers["viewer"])
        assert r.status_code == status, (month, r.text)
    r = c.get("/api/v1/bills", params={"month": "2099-01"}, headers=headers["viewer"])
    assert "has not started" in r.json()["detail"]
    for path in ("/api/v1/bills", "/api/v1/intensity"):
        r = c.get(path, params={"month": "2025-07"}, headers=headers["vendor"])
        assert r.status_code == 403


def test_the_service_warms_the_last_closed_months_bills(client, site):
    c, _headers = client
    warm_caches(c.app)  # type: ignore[arg-type]
    cache = c.app.state.bills_cache  # type: ignore[attr-defined]
    month = last_closed_month(site)
    assert ("bills-json", month) in cache
    assert ("intensity", month) in cache


def test_the_cache_serves_the_stale_result_while_it_refreshes_and_keeps_it_on_failure():
    cache = ResultCache(ttl_s=0.0)
    results = iter([1, 2])
    failures: list[str] = []

    def compute() -> int:
        value = next(results, None)
        if value is None:
            failures.append("the store went away")
            raise RuntimeError(failures[-1])
        return value

    assert cache.get("k", compute) == 1
    assert cache.get("k", compute) == 1  # stale: served at once, refreshed in the background
    deadline = time.monotonic() + 10
    while cache.get("k", compute) != 2:
        assert time.monotonic() < deadline, "never refreshed"
        time.sleep(0.01)
    while not failures:  # the next refresh fails ...
        assert time.monotonic() < deadline, "never refreshed again"
        time.sleep(0.01)
    assert cache.get("k", compute) == 2  # ... and the last good result stays


# -- the command -------------------------------------------------------------------------------


def epcmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epcmon.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def site_file(tmp: Path, store_path: Path) -> Path:
    text = (ROOT / "sites/luan-admin-center.toml").read_text(encoding="utf-8")
    text = text.replace('path = "data/luan-admin-center.duckdb"', f'path = "{store_path}"')
    path = tmp / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_epcmon_bills_prints_the_ranking_and_reconciliation_and_exports_csv(
    year_file, client, tmp_path
):
    c, headers = client
    out = tmp_path / "bills.csv"
    done = epcmon(
        "bills", "--month", "2025-07", "--site", str(site_file(tmp_path, year_file)), "--csv", str(out)
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "六安市行政中心 (luan-admin-center): department bills for 2025-07 (final)"
    )
    assert sum(1 for line in lines if " dept-" in line[:20]) == 57
    assert any(line.startswith("  electricity: E-TR1 + E-TR2 + E-TR3 + E-TR4 = ") for line in lines)
    assert "(difference 0.000)" in done.stdout
    assert "target gbt51161 (kwh_per_m2: constraint 70, guide 55) PROVISIONAL" in done.stdout
    api_csv = c.get(
        "/api/v1/bills", params={"month": "2025-07", "format": "csv"}, headers=headers["viewer"]
    ).text
    assert out.read_text(encoding="utf-8") == api_csv
    done = epcmon(
        "bills", "--month", "2025-07", "--site", str(site_file(tmp_path, year_file)), "--json"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)  # stdout is the JSON alone
    api = c.get("/api/v1/bills", params={"month": "2025-07"}, headers=headers["viewer"]).json()
    assert doc["bills"]["rows"] == api["rows"]
    assert doc["intensity"]["targets"]


def test_epcmon_bills_errors_are_one_line_with_exit_2(year_file, store, tmp_path):
    # the store is held open by this process (as by `epcmon run`): refused in one line
    held = site_file(tmp_path, year_file.with_name("open.duckdb"))
    done = epcmon("bills", "--month", "2025-07", "--site", str(held))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "store" in done.stderr
    done = epcmon("bills", "--month", "2099-01", "--site", str(held))
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "error: --month 2099-01: month 2099-01 has not started (in Asia/Shanghai)"
    )
    done = epcmon("bills", "--month", "July", "--site", str(held))
    assert done.returncode == 2
    assert "expected YYYY-MM" in done.stderr

"""The monthly energy report on a simulated year and a half of the reference site: the XLSX
opens with openpyxl and its figures and sums equal the API's for the same month; the PDF
renders with poppler (pdftoppm), embeds the CJK font and its Chinese extracts as text;
engineers and admins download it, viewers and vendors may not; `epcmon report --month`
writes both files and refuses a month not ended."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyStore, Role
from core.config import SiteConfig
from epcmon.sites import load
from processing.contract import fit_baseline, statement
from processing.statements import StatementStore
from simulators.history import generate_history
from storage.duckdb_store import DuckDBStore
from tests.conftest import require

openpyxl = pytest.importorskip("openpyxl")

ROOT = Path(__file__).resolve().parents[1]
MONTH = "2025-12"
CONTRACT = "epc-2025-01"


@dataclass
class World:
    site: SiteConfig
    store_path: Path
    store: DuckDBStore
    statements: StatementStore
    client: TestClient
    tokens: dict[str, str]
    reports: Path

    def get(self, path: str, role: str = "engineer", **params: Any) -> Any:
        r = self.client.get(path, params=params, headers=auth(self, role))
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        return r


def auth(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """July 2024 to December 2025 of the whole site, hourly: the contract's baseline year,
    its reporting months, and December 2024 for the year on year; December's statement."""
    tmp = tmp_path_factory.mktemp("report")
    site = load(ROOT / "sites/luan-admin-center.toml")
    history = generate_history(
        site,
        datetime(2024, 6, 27, 16, tzinfo=UTC),
        datetime(2025, 12, 31, 16, tzinfo=UTC),
        interval="1h",
        seed=3,
    )
    store_path = tmp / "history.duckdb"  # closed, for the command's own copy
    with DuckDBStore(store_path) as written:
        written.write(history.readings)
    shutil.copy(store_path, tmp / "site.duckdb")
    store = DuckDBStore(tmp / "site.duckdb")
    statements = StatementStore(tmp / "statements.sqlite")
    baseline = fit_baseline(site, CONTRACT, store)
    statements.save_baseline(baseline)
    statements.save_statement(statement(site, CONTRACT, store, MONTH, baseline=baseline))
    keys = KeyStore(tmp / "keys.sqlite3")
    tokens = {role: keys.create(Role(role))[1] for role in ("admin", "engineer", "viewer")}
    tokens["vendor"] = keys.create(Role.VENDOR, contracts=(CONTRACT,))[1]
    reports = tmp / "reports"
    app = create_app(site, store, keys=keys, statements=statements, reports_dir=reports)
    with TestClient(app) as client:
        yield World(site, store_path, store, statements, client, tokens, reports)
    statements.close()
    keys.close()
    store.close()


@pytest.fixture(scope="module")
def workbook(world: World) -> Any:
    r = world.get(f"/api/v1/reports/{MONTH}.xlsx")
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"luan-admin-center-energy-report-{MONTH}.xlsx" in r.headers["content-disposition"]
    return openpyxl.load_workbook(io.BytesIO(r.content), data_only=True)


@pytest.fixture(scope="module")
def pdf(world: World) -> bytes:
    r = world.get(f"/api/v1/reports/{MONTH}.pdf")
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    return bytes(r.content)


def table(book: Any, name: str) -> list[dict[str, Any]]:
    """The rows of a named table, keyed by the Chinese part of each column title."""
    sheet_name, ref = next(iter(book.defined_names[name].destinations))
    cells = list(book[sheet_name][ref])
    header = [str(c.value).split(" / ")[0] for c in cells[0]]
    return [dict(zip(header, (c.value for c in row), strict=True)) for row in cells[1:]]


def by_item(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(r["项目"]).split(" (")[0]: r for r in rows}


# -- the workbook against the API ---------------------------------------------------------------


def test_the_workbook_sheets_are_chinese_first(workbook):
    assert workbook.sheetnames == [
        "概览 Summary",
        "部门 Departments",
        "楼栋 Buildings",
        "能耗强度 Intensity",
        "节能效益 Savings",
        "数据质量 Data quality",
        "分摊明细 Apportionment",
    ]
    assert (
        workbook["概览 Summary"]["A1"].value
        == "六安市行政中心 2025-12 能耗月报 / Monthly energy report"
    )


def test_department_figures_and_sums_equal_the_bills_api(world, workbook):
    api = world.get("/api/v1/bills", month=MONTH).json()
    rows = table(workbook, "departments")
    departments, left = rows[:-1], rows[-1]
    assert len(departments) == 57
    by_name = {r["部门"]: r for r in departments}
    for r in api["rows"]:
        mine = by_name[r["name"]]
        assert (mine["排名"], mine["用电合计 kWh"], mine["电费 元"]) == (
            r["rank"],
            r["kwh"],
            r["cny_electricity"],
        )
        assert (mine["用水 m³"], mine["费用合计 元"], mine["kWh/m²"]) == (
            r["water_m3"],
            r["cny"],
            r["kwh_per_m2"],
        )
        assert mine["自有计量 kWh"] + mine["分摊 kWh"] == pytest.approx(r["kwh"], abs=1e-6)
    assert left["部门"].startswith("未分摊")
    assert left["用电合计 kWh"] == api["unallocated"]["kwh"]
    # the column sums are the incomers' and the mains', to rounding (57 rows of Wh)
    kwh = sum(r["用电合计 kWh"] for r in rows)
    assert kwh == pytest.approx(api["site"]["kwh"], abs=0.05)
    assert sum(r["用水 m³"] for r in rows) == pytest.approx(api["site"]["water_m3"], abs=0.05)
    assert sum(r["费用合计 元"] for r in rows) == pytest.approx(api["site"]["cny"], abs=0.05)
    (total,) = table_total(workbook, "departments")
    rec = api["reconciliation"]
    assert total[7] == rec["electricity"]["measured"] == api["site"]["kwh"]
    assert total[10] == rec["electricity"]["cny"]["measured"]


def table_total(book: Any, name: str) -> list[list[Any]]:
    sheet_name, ref = next(iter(book.defined_names[f"{name}_total"].destinations))
    return [[c.value for c in row] for row in book[sheet_name][ref]]


def test_last_years_figures_equal_the_api_for_that_month(world, workbook):
    now = world.get("/api/v1/bills", month=MONTH).json()
    before = world.get("/api/v1/bills", month="2024-12").json()
    summary = by_item(table(workbook, "summary"))
    kwh = summary["用电量"]
    assert (kwh["本月"], kwh["去年同期"]) == (now["site"]["kwh"], before["site"]["kwh"])
    assert kwh["同比"] == pytest.approx(now["site"]["kwh"] / before["site"]["kwh"] - 1)
    water = summary["用水量"]
    assert (water["本月"], water["去年同期"]) == (
        now["site"]["water_m3"],
        before["site"]["water_m3"],
    )
    last = {r["部门"]: r for r in table(workbook, "departments")}
    for r in before["rows"]:
        assert last[r["name"]]["去年同期 kWh"] == r["kwh"]


def test_year_to_date_and_intensity_equal_the_intensity_api(world, workbook):
    now = world.get("/api/v1/intensity", month=MONTH).json()
    before = world.get("/api/v1/intensity", month="2024-12").json()
    summary = by_item(table(workbook, "summary"))
    ytd = summary["年初至今用电量"]
    assert ytd["本月"] == now["site"]["year_to_date"]["kwh"]
    # last year's: the same roots summed month by month (to the rounding of 12 months)
    assert ytd["去年同期"] == pytest.approx(before["site"]["year_to_date"]["kwh"], abs=0.01)
    assert summary["近12个月单位面积用电"]["去年同期"] == pytest.approx(
        before["site"]["kwh_per_m2"], abs=0.001
    )
    assert now["site"]["year_to_date"]["kwh"] > 12 * 300_000  # the whole year of 2025
    assert summary["近12个月单位面积用电"]["本月"] == now["site"]["kwh_per_m2"]
    buildings = {r["楼栋"]: r for r in table(workbook, "buildings")}
    assert set(buildings) == {b["id"] for b in now["buildings"]}
    for b in now["buildings"]:
        assert buildings[b["id"]]["近12月 kWh/m²·a"] == b["kwh_per_m2"]
        assert buildings[b["id"]]["年初至今 kWh"] == b["year_to_date"]["kwh"]
    targets = {
        (r["指标"].split("（")[0], r["对象"].split(" ")[0]): r for r in table(workbook, "intensity")
    }
    for t in now["targets"]:
        if "site" in t:
            assert targets[(t["id"], "全场")]["实际值"] == t["site"]["value"]
        for b_id, v in t.get("buildings", {}).items():
            assert targets[(t["id"], b_id)]["实际值"] == v["value"]


def test_buildings_are_what_their_departments_were_billed(world, workbook):
    api = world.get("/api/v1/bills", month=MONTH).json()
    buildings = {r["楼栋"]: r for r in table(workbook, "buildings")}
    for b in world.site.buildings:
        billed = sum(r["kwh"] for r in api["rows"] if r["building"] == b.id)
        assert buildings[b.id]["本月用电 kWh"] == pytest.approx(billed, abs=1e-6)
    total = sum(r["本月用电 kWh"] for r in buildings.values())
    assert total + api["unallocated"]["kwh"] == pytest.approx(api["site"]["kwh"], abs=0.05)


def test_savings_and_guarantee_equal_the_statement_api(world, workbook):
    stmt = world.get(f"/api/v1/contracts/{CONTRACT}/statements/{MONTH}").json()
    (row,) = table(workbook, "savings")
    month, cumulative = stmt["numbers"]["month"], stmt["numbers"]["cumulative"]
    assert (row["合同"], row["状态"], row["版本"]) == (CONTRACT, "正式 final", 1)
    exact = pytest.approx  # a cell holds 15 significant digits, as Excel does
    assert row["节能量"] == exact(month["avoided"], rel=1e-13)
    assert row["±90 %"] == exact(month["u90"]["u"], rel=1e-13)
    assert row["节能效益 元"] == exact(month["money"]["total_cny"], rel=1e-13)
    assert row["累计节能量"] == exact(cumulative["avoided"], rel=1e-13)
    assert row["累计 ±90 %"] == exact(cumulative["u90"]["u"], rel=1e-13)
    assert month["avoided"] > 0
    (g,) = table(workbook, "guarantee")
    assert g["已实现 kWh"] == exact(stmt["numbers"]["guarantee"]["achieved_kwh"], rel=1e-13)
    assert g["保证节能量 kWh"] == stmt["numbers"]["guarantee"]["guaranteed_kwh"]


def test_the_apportionment_sheet_is_the_apis_csv(world, workbook):
    text = world.get("/api/v1/bills", month=MONTH, format="csv").text
    expected = list(csv.reader(io.StringIO(text)))
    sheet = workbook["分摊明细 Apportionment"]
    got = [[c.value for c in row] for row in sheet.iter_rows(min_row=2, max_row=len(expected) + 1)]
    assert got[0] == expected[0]
    for mine, theirs in zip(got[1:], expected[1:], strict=True):
        assert [_text(v) for v in mine] == [_text(v) for v in theirs]


def _text(value: Any) -> str:
    if value is None or value == "":
        return ""
    try:
        return f"{float(value):.6f}"
    except ValueError:
        return str(value)


def test_complete_data_has_no_gaps_and_no_meter_offline(workbook):
    assert table(workbook, "gaps") == []


# -- the PDF ----------------------------------------------------------------------------------


def test_the_pdf_embeds_the_cjk_font_and_its_chinese_extracts(world, pdf, tmp_path):
    fonts = require("pdffonts", "poppler-utils")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    listing = subprocess.run([fonts, str(path)], capture_output=True, text=True, check=True).stdout
    embedded = [line.split() for line in listing.splitlines()[2:]]
    assert embedded, listing
    # every font is our CJK subset, embedded (emb), subset (sub), with a Unicode map (uni)
    assert all("EpcmonSansSC" in f[0] and f[-5:-2] == ["yes", "yes", "yes"] for f in embedded)
    text = subprocess.run(
        [require("pdftotext", "poppler-utils"), "-layout", str(path), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    api = world.get("/api/v1/bills", month=MONTH).json()
    for title in ("六安市行政中心", "2025-12 能耗月报", "各部门用能与费用", "合同能源管理节能量"):
        assert title in text
    assert f"{api['site']['kwh']:,.1f}" in text  # the site's kWh, as the API has it
    assert all(r["name"] in text for r in api["rows"])  # every department, in Chinese


def test_the_pdf_renders_with_chinese_glyphs_not_boxes(world, pdf, tmp_path):
    """pdftoppm draws the report; the title's CJK characters, drawn by poppler from the
    bundled font, are four different shapes (a missing glyph is one same box, or nothing),
    and the font covers every character the report writes."""
    from fpdf import FPDF
    from PIL import Image

    from reports.content import collect
    from reports.fonts import FONT_FILE, missing
    from reports.pdf import texts_of
    from reports.sections import sections

    ppm = require("pdftoppm", "poppler-utils")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run([ppm, "-r", "40", "-png", str(path), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p*.png"))
    assert len(pages) >= 4
    assert all(Image.open(p).convert("L").getextrema()[0] < 100 for p in pages)  # ink on each

    probe = FPDF(unit="pt", format=(260, 60))
    probe.add_font("cjk", "", str(FONT_FILE))
    probe.add_page()
    probe.set_font("cjk", size=40)
    for i, ch in enumerate("能耗月报"):
        probe.text(10 + 60 * i, 45, ch)
    probe.output(str(tmp_path / "glyphs.pdf"))
    subprocess.run(
        [ppm, "-r", "72", "-png", str(tmp_path / "glyphs.pdf"), str(tmp_path / "g")], check=True
    )
    image = Image.open(next(tmp_path.glob("g*.png"))).convert("L")
    cells = [image.crop((8 + 60 * i, 0, 62 + 60 * i, 60)).tobytes() for i in range(4)]
    assert all(min(c) < 100 for c in cells)  # each one draws something
    assert len(set(cells)) == 4  # four different glyphs

    data = collect(world.site, world.store, world.statements, MONTH)
    assert missing(texts_of(data, sections(data))) == ""
    assert missing(["能耗\U0002a6a5"]) == "\U0002a6a5"  # a character outside GB 2312 is named


# -- who may download, and which months -------------------------------------------------------


def test_engineers_and_admins_download_it_viewers_and_vendors_may_not(world):
    for role in ("admin", "engineer"):
        assert (
            world.client.get(f"/api/v1/reports/{MONTH}.pdf", headers=auth(world, role)).status_code
            == 200
        )
    for role in ("viewer", "vendor"):
        for path in (
            f"/api/v1/reports/{MONTH}.xlsx",
            f"/api/v1/reports/{MONTH}.pdf",
            "/api/v1/reports",
        ):
            r = world.client.get(path, headers=auth(world, role))
            assert r.status_code == 403, (role, path)
            assert role in r.json()["detail"]
    assert world.client.get(f"/api/v1/reports/{MONTH}.pdf").status_code == 401


def test_months_not_ended_without_data_not_started_or_malformed_are_refused(world):
    this_month = datetime.now(world.site.site.tz).strftime("%Y-%m")
    h = auth(world, "engineer")
    r = world.client.get(f"/api/v1/reports/{this_month}.pdf", headers=h)
    assert (r.status_code, "has not ended" in r.json()["detail"]) == (422, True)
    empty = world.client.get("/api/v1/reports/2024-01.xlsx", headers=h)  # before the history
    assert (empty.status_code, empty.json()["detail"].startswith("no data for 2024-01")) == (
        422,
        True,
    )
    assert world.client.get("/api/v1/reports/2999-01.xlsx", headers=h).status_code == 400
    assert world.client.get("/api/v1/reports/2025-1.xlsx", headers=h).status_code == 400


def test_the_list_shows_the_stored_reports_and_a_download_is_written_once(world, pdf):
    listing = world.get("/api/v1/reports").json()
    (entry,) = [e for e in listing if e["month"] == MONTH]
    assert entry["pdf"] == f"/api/v1/reports/{MONTH}.pdf"
    assert entry["statements"] == [
        {"contract": CONTRACT, "utility": "electricity", "status": "final", "version": 1}
    ]
    stored = world.reports / f"luan-admin-center-energy-report-{MONTH}.pdf"
    written = stored.stat().st_mtime_ns
    world.get(f"/api/v1/reports/{MONTH}.pdf")
    assert stored.stat().st_mtime_ns == written  # current: served as stored, not rewritten


# -- the command ------------------------------------------------------------------------------


def epcmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epcmon.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_epcmon_report_writes_the_xlsx_and_pdf_and_refuses_an_open_month(world, tmp_path):
    text = (ROOT / "sites/luan-admin-center.toml").read_text(encoding="utf-8")
    copy = tmp_path / "site.duckdb"
    shutil.copy(world.store_path, copy)
    text = text.replace('path = "data/luan-admin-center.duckdb"', f'path = "{copy}"')
    site = tmp_path / "site.toml"
    site.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    done = epcmon("report", "--month", MONTH, "--site", str(site), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "energy report for 2025-12" in done.stdout
    xlsx = out / f"luan-admin-center-energy-report-{MONTH}.xlsx"
    assert xlsx.exists()
    assert (out / f"luan-admin-center-energy-report-{MONTH}.pdf").exists()
    api = world.get("/api/v1/bills", month=MONTH).json()
    rows = table(openpyxl.load_workbook(xlsx, data_only=True), "departments")
    assert sum(r["用电合计 kWh"] for r in rows) == pytest.approx(api["site"]["kwh"], abs=0.05)

    this_month = datetime.now(world.site.site.tz).strftime("%Y-%m")
    for month, says in ((this_month, "has not ended"), ("2999-01", "has not started")):
        refused = epcmon("report", "--month", month, "--site", str(site), "--out", str(out))
        assert refused.returncode == 2
        lines = [line for line in refused.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, refused.stderr
        assert says in lines[0]
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".pdf", ".xlsx"]


def test_a_character_outside_the_bundled_font_is_drawn_by_an_installed_one_or_named(
    world, tmp_path
):
    """堃 is not in GB 2312: an installed CJK font draws it (Debian's fonts-noto-cjk), or
    the cover and the log name it; never a silent box."""
    import copy
    import dataclasses
    import warnings

    from reports.content import collect
    from reports.fonts import fallback
    from reports.pdf import write_pdf

    data = collect(world.site, world.store, world.statements, MONTH)
    bills = copy.deepcopy(data.bills)
    bills["rows"][0]["name"] = "市堃园管理处"
    renamed = dataclasses.replace(data, bills=bills)
    path = tmp_path / "rare.pdf"
    installed = fallback(["堃"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        write_pdf(renamed, path)
    text = subprocess.run(
        [require("pdftotext", "poppler-utils"), str(path), "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if installed is not None:
        assert "市堃园管理处" in text
        assert "no font draws" not in text
        assert not [w for w in seen if "missing from font" in str(w.message)]
    else:  # a fresh machine without a CJK font: the report says what it cannot draw
        assert "no font draws: U+5803" in text

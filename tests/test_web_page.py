"""The built-in page in headless Chromium (Debian's), as each kind of user opens it: a viewer
and an engineer see the building and the contract, a vendor sees its contract and never gets a
403; the page fits a 390 px phone; zh and en; data gaps are drawn as gaps; the operations list
is paged; any meter kind is chartable; downloads work; `/docs` renders with the network cut;
the building's roles see a month's department bills (ranking, pools, remainder, reconciliation,
sorting, paging, the CSV) and the energy intensity against the targets, and a vendor never
asks for them; the devices nobody configured are listed for the building's roles.
Screenshots are kept in test-artifacts/.

One browser for the module, one small store (the API fixtures' two weeks, then six more days
with a 2.5-day outage of every meter).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from alarms.store import default_path
from bench.browser import browser, serve
from core.readings import ReadingBatch
from tests.alarm_fixtures import (
    BOUNDARY_ALARM,
    BUILDING_ALARM,
    CLEARED_ALARM,
    PART_ALARM,
    seed_alarms,
)
from tests.api_fixtures import DAYS, STATEMENT_MONTH, T0, ApiWorld, app_for, make_world
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
DAY_MS = 86_400_000
EXTRA_DAYS = 6
OUTAGE = (T0 + (DAYS + 1) * DAY_MS + DAY_MS // 2, T0 + (DAYS + 4) * DAY_MS)
"""No reading from any meter from local noon on the 2nd extra day to local midnight 2.5 days
later (T0 is local midnight in Shanghai)."""
BUILDING_CHARTS = ["chart-overview", "chart-meter"]
CONTRACT_CHARTS = ["chart-monthly", "chart-cumulative"]


def extend_with_outage(world: ApiWorld) -> None:
    """Six more days at 15 minutes for every electricity, water, thermal and weather meter,
    counters carrying on from where the fixture left them, and nothing stored in `OUTAGE`
    (the counters keep counting through it, as real meters do)."""
    site, store = world.site, world.store
    start = T0 + DAYS * DAY_MS
    ts = start + np.arange(EXTRA_DAYS * 96, dtype=np.int64) * 900_000
    keep = (ts < OUTAGE[0]) | (ts >= OUTAGE[1])
    hours = (ts // 3_600_000 + 8) % 24
    occupied = ((hours >= 8) & (hours < 18)).astype(float)
    last = {(r.meter_id, r.quantity): r.value for r in store.latest()}
    batches = []
    for i, m in enumerate(site.meters):
        base = 2.0 + (i % 7)
        series: dict[str, np.ndarray] = {}
        if m.kind.value == "electricity":
            power = base * (0.3 + 0.7 * occupied)
            series["power"] = power
            series["energy_import"] = last[(m.id, "energy_import")] + np.cumsum(power) / 4
        elif m.kind.value == "water":
            series["volume"] = last[(m.id, "volume")] + np.cumsum(0.2 + occupied) / 4
        elif m.kind.value == "thermal":
            heat = 50.0 * base * occupied
            series["thermal_power"] = heat
            series["thermal_energy"] = 10_000 + np.cumsum(heat) / 4
        elif m.kind.value == "weather":
            series["outdoor_temperature"] = 8 + 5 * occupied
        for quantity, values in series.items():
            batches.append(ReadingBatch.for_series(m.id, quantity, ts[keep], values[keep]))
    store.write(ReadingBatch.concat(batches))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    w = make_world(tmp_path_factory.mktemp("web"))
    extend_with_outage(w)
    seed_alarms(default_path(w.site, w.statements.path), T0 + (DAYS + EXTRA_DAYS) * DAY_MS)
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collector's data directory the app reads (dead letters, unconfigured devices)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def url(world: ApiWorld, data_dir: Path) -> Iterator[str]:
    with serve(app_for(world, data_dir=data_dir)) as base:
        yield base


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require("chromium", "chromium")
    pytest.importorskip("playwright", reason="playwright (a dev dependency) is not installed")
    with browser(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@dataclass
class Visit:
    page: Any
    statuses: list[tuple[int, str]] = field(default_factory=list)
    """Every response the page got: (status, path and query)."""
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught exceptions."""

    def api_paths(self) -> list[str]:
        return [p for _, p in self.statuses if p.startswith("/api/")]


def visit(
    chromium: Any,
    url: str,
    key: str | None,
    *,
    lang: str = "zh",
    width: int = 1400,
    bills_month: str | None = None,
) -> Visit:
    """Open the page with `key` already entered (None: the login), recording every response;
    `bills_month`: the month the bills show, as if chosen earlier in this tab."""
    page = chromium.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    v = Visit(page)
    page.on("console", lambda m: v.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: v.errors.append(str(e)))
    page.on(
        "response",
        lambda r: v.statuses.append((r.status, "/" + r.url.split("/", 3)[3])),
    )
    script = f"sessionStorage.setItem('epcmon.lang', {lang!r});"
    if key is not None:
        script += f"sessionStorage.setItem('epcmon.key', {key!r});"
    if bills_month is not None:
        script += f"sessionStorage.setItem('epcmon.billsMonth', {bills_month!r});"
    page.add_init_script(script)
    page.goto(url)
    if key is not None:
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return v


def chart_data(page: Any, chart: str) -> dict[str, Any]:
    data = page.evaluate(f"EpcChart.data({chart!r})")
    assert data is not None, f"{chart}: nothing drawn"
    return data  # type: ignore[no-any-return]


def no_horizontal_scroll(page: Any, width: int) -> None:
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide in a {width} px viewport"


# -- served files ------------------------------------------------------------------------------


def test_the_page_its_assets_and_docs_need_no_key(world: ApiWorld) -> None:
    from dashboards.web import ASSETS

    with TestClient(app_for(world)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for src in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
            assert src.removeprefix("static/") in ASSETS, src
        for name, kind in ASSETS.items():
            r = client.get(f"/static/{name}")
            assert r.status_code == 200, name
            assert r.headers["content-type"].startswith(kind), name
            immutable = "immutable" in r.headers["cache-control"]
            assert immutable == name.startswith("vendor/"), name  # versioned files only
        for bad in ("__init__.py", "..%2Findex.html", "vendor/uplot-1.6.32/LICENSE", "vendor/"):
            assert client.get(f"/static/{bad}").status_code == 404, bad
        assert client.get("/api/v1/site").status_code == 401  # the data still needs one

        docs = client.get("/docs")
        assert docs.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text) + re.findall(
            r"url: '([^']+)'", docs.text
        )
        assert urls
        assert all(u.startswith("/") and "//" not in u for u in urls), urls  # this server's
        assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_every_served_file_is_in_the_package_data() -> None:
    """An installed epcmon (not only a checkout) serves the page, its libraries and /docs."""
    import tomllib
    from pathlib import PurePosixPath

    from dashboards.web import ASSETS

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["dashboards"]
    for name in [*ASSETS, "index.html"]:
        assert any(PurePosixPath(f"web/{name}").match(g) for g in globs), name
    for licence in (ROOT / "dashboards/web/vendor").glob("*/*LICENSE*"):
        rel = licence.relative_to(ROOT / "dashboards").as_posix()
        assert any(PurePosixPath(rel).match(g) for g in globs), rel


def test_whoami_names_the_role_and_only_the_visible_contracts(world: ApiWorld) -> None:
    own, other = (c.id for c in world.site.contracts)
    with TestClient(app_for(world)) as client:
        assert client.get("/api/v1/whoami").status_code == 401
        for role in ("admin", "engineer", "viewer", "vendor"):
            token = world.tokens[role]
            r = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            body = r.json()
            assert body["role"] == role
            assert body["building"] is (role != "vendor")
            ids = [c["id"] for c in body["contracts"]]
            assert ids == ([own] if role == "vendor" else [own, other])
            assert token not in r.text
            assert token.split("_", 2)[2] not in r.text


# -- each role's view --------------------------------------------------------------------------


def test_login_then_the_viewer_sees_every_chart_in_zh_and_en(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    v = visit(chromium, url, None)
    page = v.page
    page.wait_for_selector("#login:not([hidden])")
    assert page.is_hidden("#main")
    assert page.text_content("label[for=key]") == "API 密钥"  # Chinese first
    page.fill("#key", world.tokens["viewer"])
    page.click("#login button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    for chart in BUILDING_CHARTS + CONTRACT_CHARTS:
        assert page.get_attribute(f"#{chart}", "data-drawn") == "1", chart
        assert page.locator(f"#{chart} canvas").count() == 1, f"{chart}: a message, no chart"
        assert page.locator(f"#{chart} .u-legend").count() == 1, f"{chart}: no legend"
    assert page.text_content("#site-name") == world.site.site.name
    assert page.text_content("#who") == "只读"
    # zoom: drag across the middle of a chart, double-click to see it all again
    over = page.locator("#chart-overview .u-over")
    box = over.bounding_box()
    assert box is not None
    full = chart_data(page, "chart-overview")["shown"]
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    page.mouse.up()
    lo, hi = chart_data(page, "chart-overview")["shown"]
    assert full[0] < lo < hi < full[1]
    assert (hi - lo) < (full[1] - full[0]) / 3
    assert page.locator("#chart-overview .tip:not([hidden])").count() == 1  # the tooltip
    over.dblclick()
    assert chart_data(page, "chart-overview")["shown"] == full
    assert page.locator("#buildings tbody tr").count() == 4  # the incomers
    assert page.is_visible("#s-bills")
    assert page.is_visible("#s-intensity")
    assert page.locator("#statements tbody tr").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-zh.png"), full_page=True)

    page.click("#lang")
    page.wait_for_function("document.querySelector('#s-overview h2').textContent === 'Overview'")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.text_content("#site-name") == world.site.site.name_en
    assert page.text_content("#s-statements h2") == "Statements"
    assert "final" in page.text_content("#statements tbody")
    page.screenshot(path=str(ARTIFACTS / "web-page-en.png"), full_page=True)
    assert {s for s, _ in v.statuses} == {200}, [s for s in v.statuses if s[0] != 200]
    assert v.errors == [], v.errors
    page.close()


def test_the_vendor_sees_its_contract_and_never_a_403(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    own = world.site.contracts[0]
    v = visit(chromium, url, world.tokens["vendor"])
    page = v.page
    bad = [s for s in v.statuses if s[0] != 200]
    assert bad == [], bad  # no 403 (nor anything else) anywhere
    assert v.errors == [], v.errors
    paths = v.api_paths()
    assert paths, "the page called no API"
    assert all(
        p.startswith(("/api/v1/whoami", f"/api/v1/contracts/{own.id}", "/api/v1/alarms?"))
        for p in paths
    ), paths  # nothing of the building, nothing of the other contract; its alarms
    # the alarms of its contract's boundary only (the API scopes them), never a button
    assert page.locator("#alarms tbody tr").count() == 1
    assert page.get_attribute("#alarms tbody tr", "data-alarm") == str(BOUNDARY_ALARM)
    assert page.locator("#alarms button.ack").count() == 0
    assert not [p for p in paths if p.startswith(("/api/v1/bills", "/api/v1/intensity"))]
    assert page.text_content("#who") == "节能服务公司"
    for section in ("#s-overview", "#s-meter", "#s-ops", "#s-bills", "#s-intensity", "#s-devices"):
        assert page.is_hidden(section), section
    assert page.locator("#contract-select option").all_text_contents() == [f"{own.id} {own.name}"]

    # savings by month with the 90 % band, the cumulative against the guarantee
    monthly = chart_data(page, "chart-monthly")
    avoided = monthly["series"][0]["values"]
    september = avoided[2]  # July, August, September 2025
    assert september is not None
    assert september > 0
    assert monthly["band"]["lo"][2] < september < monthly["band"]["hi"][2]
    assert None in avoided  # October and November have no data: gaps, not zero bars
    cumulative = chart_data(page, "chart-cumulative")
    assert [s["label"] for s in cumulative["series"]] == ["累计节能量", "保证节能量 (按天折算)"]
    guaranteed = cumulative["series"][1]["values"]
    assert guaranteed[0] == pytest.approx(600_000 * 31 / 365)  # July, pro rata by day

    # statements with their status, the guarantee from the newest one
    row = page.locator("#statements tbody tr").first
    cells = row.locator("td").all_text_contents()
    assert cells[0] == STATEMENT_MONTH
    assert cells[1] == "正式 · 第1版"
    assert "已实现" in page.text_content("#guarantee-status")
    assert "达到保证" in page.text_content("#guarantee-status")

    # the baseline's fit statistics and findings
    stats = page.text_content("#baseline-stats")
    assert "CV(RMSE)" in stats
    assert "daily-changepoint" in stats
    assert page.locator("#findings tbody tr").count() >= 2

    # downloads: the CSV, the JSON record, the plot, the monthly savings
    got = {}
    for label in ("CSV", "JSON", "PNG"):
        with page.expect_download() as info:
            row.get_by_role("button", name=label).click()
        got[label] = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename.startswith(f"{own.id}-{STATEMENT_MONTH}")
    assert got["CSV"].decode().startswith("period,")
    record = json.loads(got["JSON"])
    assert record["month"] == STATEMENT_MONTH
    assert record["model"]
    assert record["numbers"]
    assert got["PNG"][:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as info:
        page.click("#savings-csv")
    assert Path(info.value.path()).read_text().startswith("period,")
    assert {s for s, _ in v.statuses} == {200}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-vendor.png"), full_page=True)
    page.close()


def test_the_engineer_sees_the_building_and_the_contract(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    v = visit(chromium, url, world.tokens["engineer"], lang="en")
    page = v.page
    assert {s for s, _ in v.statuses} == {200}
    assert v.errors == [], v.errors
    assert page.text_content("#who") == "engineer"
    for chart in BUILDING_CHARTS + CONTRACT_CHARTS:
        assert page.locator(f"#{chart} canvas").count() == 1, chart
    options = page.locator("#contract-select option").all_text_contents()
    assert len(options) == 2  # the building's people see every contract
    page.close()


@pytest.mark.parametrize(("role", "lang"), [("engineer", "zh"), ("vendor", "en")])
def test_a_390px_phone_has_no_horizontal_scroll(
    world: ApiWorld, url: str, chromium: Any, role: str, lang: str
) -> None:
    v = visit(chromium, url, world.tokens[role], lang=lang, width=390, bills_month=BILLS_MONTH)
    page = v.page
    no_horizontal_scroll(page, 390)
    if role == "engineer":
        for box_id in (
            "s-bills",
            "s-intensity",
            "bills-scroll",
            "pools-scroll",
            "intensity-scroll",
        ):
            box = page.locator(f"#{box_id}").bounding_box()
            assert box is not None, box_id
            assert 0 <= box["x"] <= box["x"] + box["width"] <= 390, box_id
        # the ranking is wider than the phone: it scrolls inside its own box
        assert page.evaluate(
            "(e => e.scrollWidth > e.clientWidth)(document.getElementById('bills-scroll'))"
        )
        page.locator("#bills tbody tr[data-tenant] button.expand").first.click()
        page.wait_for_selector("#bills tr.detail")
        no_horizontal_scroll(page, 390)
    for chart in (BUILDING_CHARTS if role == "engineer" else []) + CONTRACT_CHARTS:
        box = page.locator(f"#{chart} canvas").bounding_box()
        assert box is not None, chart
        assert 0 <= box["x"] <= box["x"] + box["width"] <= 390, chart
    # the tooltip stays inside the phone's width too
    chart = page.locator("#chart-monthly .u-over")
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    page.wait_for_selector("#chart-monthly .tip:not([hidden])")
    no_horizontal_scroll(page, 390)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web-page-phone-{role}.png"), full_page=True)
    assert v.errors == [], v.errors
    page.close()


# -- department bills and energy intensity ----------------------------------------------------

BILLS_MONTH = "2025-12"
"""The fixture's month with every meter (local December 2025)."""
PERIODS_ZH = {"sharp": "尖峰", "peak": "高峰", "flat": "平段", "valley": "低谷"}
STATUS_ZH = {
    "above_constraint": "超过约束值",
    "above_guide": "高于引导值",
    "at_or_below_guide": "不高于引导值",
    "within_constraint": "未超过约束值",
    "no_data": "无数据",
}


def number(text: str | None) -> float:
    """A number as the page prints it (thousands separators; a unit may follow)."""
    assert text is not None
    return float(text.strip().split()[0].replace(",", "").replace("\u2212", "-"))


def shown_tenants(page: Any) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[no-any-return]
        "#bills tbody tr[data-tenant]", "rows => rows.map(r => r.dataset.tenant)"
    )


def key_header(world: ApiWorld, role: str = "engineer") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


def test_the_engineer_sees_every_departments_bill_and_the_reconciliation(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    from processing.bills import month_bills

    doc = month_bills(world.site, world.store, BILLS_MONTH).to_dict()
    rows = doc["rows"]
    departments = [t for t in world.site.tenants if t.kind == "department"]
    assert len(rows) == len(departments) == 57
    v = visit(chromium, url, world.tokens["engineer"], bills_month=BILLS_MONTH)
    page = v.page
    assert page.input_value("#bills-month") == BILLS_MONTH
    assert page.text_content("#s-bills h2") == "部门用能与费用分摊"
    assert page.text_content("#bills-status") == "正式"
    assert page.locator("#bills thead th").all_text_contents() == [
        "排名", "部门", "用电 kWh", "自有表计 kWh", "分摊 kWh", "电费 元",
        "kWh/m²", "kWh/人", "用水 m³", "合计 元",
    ]  # fmt: skip
    kpis = page.text_content("#bills-kpis")
    assert "57" in kpis
    assert f"{doc['site']['kwh']:,.0f}" in kpis

    # the ranking by kWh/m², 20 a page, saying how many are not shown
    assert shown_tenants(page) == [r["tenant"] for r in rows[:20]]
    assert page.text_content("#bills-info") == "显示 1–20 / 共 57 条，另有 37 条未显示"
    first = page.locator("#bills tbody tr[data-tenant]").first
    cells = first.locator("td").all_text_contents()
    r0 = rows[0]
    assert cells[0] == "1"
    assert r0["name"] in cells[1]
    assert number(cells[2]) == pytest.approx(r0["kwh"], abs=0.05)
    assert number(cells[3]) == pytest.approx(r0["kwh_own"], abs=0.05)
    assert number(cells[4]) == pytest.approx(sum(r0["kwh_apportioned"].values()), abs=0.05)
    assert number(cells[5]) == pytest.approx(r0["cny_electricity"], abs=0.005)
    assert number(cells[6]) == pytest.approx(r0["kwh_per_m2"], abs=0.005)
    assert number(cells[7]) == pytest.approx(r0["kwh_per_person"], abs=0.05)
    assert number(cells[8]) == pytest.approx(r0["water_m3"], abs=0.05)
    assert number(cells[9]) == pytest.approx(r0["cny"], abs=0.005)

    # CNY by time-of-use period: on hover (the cell's title) and in the expanded row
    title = first.locator("td").nth(5).get_attribute("title")
    assert title is not None
    for period, label in PERIODS_ZH.items():
        assert f"{label} {r0['cny_by_period'][period]:,.2f} 元" in title, title
    first.locator("button.expand").click()
    detail = page.locator("#bills tr.detail")
    assert detail.count() == 1
    periods = detail.locator("table.periods tbody tr")
    assert periods.count() == 4
    for i, period in enumerate(("sharp", "peak", "flat", "valley")):
        c = periods.nth(i).locator("td").all_text_contents()
        assert c[0] == PERIODS_ZH[period]
        assert number(c[1]) == pytest.approx(r0["kwh_by_period"][period], abs=0.05)
        assert number(c[2]) == pytest.approx(r0["cny_by_period"][period], abs=0.005)
    pools = {p["id"]: p["name"] for p in doc["pools"]}
    for pool in r0["kwh_apportioned"]:
        assert pools[pool] in detail.text_content()
    assert first.locator("button.expand").get_attribute("aria-expanded") == "true"

    # the pools, the unallocated remainder, departments + remainder = incomers
    assert page.locator("#pools tbody tr").count() == len(doc["pools"])
    remainder = page.text_content("#remainder")
    for item in doc["unallocated"]["electricity"] + doc["unallocated"]["water"]:
        assert pools.get(item["id"], item["id"]) in remainder
    for cls, value in (("kwh", "kwh"), ("m3", "water_m3"), ("cny-electricity", "cny_electricity")):
        shown = number(page.text_content(f"#remainder p .{cls}"))
        assert shown == pytest.approx(doc["unallocated"][value], abs=0.05), cls
    for utility in ("electricity", "water"):
        rec = doc["reconciliation"][utility]
        line = page.locator(f"#reconciliation [data-utility='{utility}']")

        def shown(cls: str, line: Any = line) -> float:
            return number(line.locator(f".{cls}").text_content())

        assert shown("own") == pytest.approx(rec["departments_own"], abs=0.05)
        assert shown("apportioned") == pytest.approx(rec["apportioned"], abs=0.05)
        assert shown("unallocated") == pytest.approx(rec["unallocated"], abs=0.05)
        assert shown("measured") == pytest.approx(rec["measured"], abs=0.05)
        assert shown("sum") == pytest.approx(rec["measured"], abs=0.05)
        assert shown("difference") == pytest.approx(0)
        assert line.locator(".ok").count() == 1
        assert line.locator(".cny-measured").count() == 1
        assert number(line.locator(".cny-measured").text_content()) == pytest.approx(
            rec["cny"]["measured"], abs=0.005
        )

    # the pager, then sorting by a column (the first page again), both ways
    page.click("#bills-pager button[data-page='1']")
    assert shown_tenants(page) == [r["tenant"] for r in rows[20:40]]
    assert page.text_content("#bills-info") == "显示 21–40 / 共 57 条，另有 37 条未显示"
    page.click("#bills thead button[data-sort='kwh']")
    by_kwh = sorted(rows, key=lambda r: (-r["kwh"], r["rank"]))
    assert shown_tenants(page) == [r["tenant"] for r in by_kwh[:20]]
    assert shown_tenants(page) != [r["tenant"] for r in rows[:20]]
    assert page.get_attribute("#bills th[data-key='kwh']", "aria-sort") == "descending"
    page.click("#bills thead button[data-sort='kwh']")
    assert shown_tenants(page) == [
        r["tenant"] for r in sorted(rows, key=lambda r: (r["kwh"], r["rank"]))[:20]
    ]
    assert page.get_attribute("#bills th[data-key='kwh']", "aria-sort") == "ascending"
    assert page.get_attribute("#bills th[data-key='rank']", "aria-sort") is None
    page.click("#bills thead button[data-sort='rank']")
    assert shown_tenants(page) == [r["tenant"] for r in rows[:20]]

    # the CSV is the API's
    with page.expect_download() as info:
        page.click("#bills-csv")
    assert info.value.suggested_filename == f"bills-{world.site.site.id}-{BILLS_MONTH}.csv"
    with TestClient(app_for(world)) as client:
        expected = client.get(
            "/api/v1/bills",
            params={"month": BILLS_MONTH, "format": "csv"},
            headers=key_header(world),
        )
    assert expected.status_code == 200
    assert Path(info.value.path()).read_text(encoding="utf-8") == expected.text
    assert {s for s, _ in v.statuses} == {200}, [s for s in v.statuses if s[0] != 200]
    assert v.errors == [], v.errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-bills.png"), full_page=True)
    page.close()


def test_the_bills_start_at_the_last_closed_month_and_mark_the_running_one(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    from processing.bills import last_closed_month, next_month, parse_month, previous_month

    before = last_closed_month(world.site)
    v = visit(chromium, url, world.tokens["engineer"], lang="en")
    page = v.page
    default = page.input_value("#bills-month")
    assert default in {before, last_closed_month(world.site)}  # the clock may turn a month
    assert "/api/v1/bills" in v.api_paths()  # no month chosen: the API's default
    assert f"/api/v1/intensity?month={default}" in v.api_paths()
    assert page.text_content("#s-bills h2") == "Department bills"
    assert page.text_content("#bills-status") == "final"
    headers = page.locator("#bills thead th").all_text_contents()
    assert headers[:3] == ["Rank", "Department", "Electricity kWh"]
    assert page.text_content("#bills-info") == "Showing 1–20 of 57, 37 more not shown"
    running = next_month(parse_month(default)).strftime("%Y-%m")
    options = page.locator("#bills-month option")
    assert options.first.get_attribute("value") == running
    assert options.first.text_content() == f"{running} (provisional)"
    assert options.nth(1).text_content() == default

    page.select_option("#bills-month", running)
    page.wait_for_selector(f"#s-bills[data-shown='{running}']")
    assert page.text_content("#bills-status").startswith("provisional")
    assert f"/api/v1/bills?month={running}" in v.api_paths()
    # the running month's intensity: the 12 months through the last closed one
    page.wait_for_selector(f"#s-intensity[data-shown='{default}']")
    assert page.is_disabled("#bills-next")
    page.click("#bills-prev")
    page.wait_for_selector(f"#s-bills[data-shown='{default}']")
    page.click("#bills-prev")
    earlier = previous_month(parse_month(default)).strftime("%Y-%m")
    page.wait_for_selector(f"#s-bills[data-shown='{earlier}']")
    assert page.input_value("#bills-month") == earlier
    assert page.text_content("#bills-status") == "final"
    assert {s for s, _ in v.statuses} == {200}, [s for s in v.statuses if s[0] != 200]
    assert v.errors == [], v.errors
    page.close()


def test_energy_intensity_against_the_standards_with_status_and_sources(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    from processing.intensity import intensity

    doc = intensity(world.site, world.store, BILLS_MONTH)
    v = visit(chromium, url, world.tokens["engineer"], bills_month=BILLS_MONTH)
    page = v.page
    assert page.text_content("#s-intensity h2") == "能耗强度与标准"
    window = page.text_content("#intensity-window")
    assert doc["window"]["first"] in window
    assert doc["window"]["last"] in window
    assert f"{doc['window']['months_with_data']} 个月" in window
    assert not doc["window"]["complete"]
    assert "不完整" in window
    assert doc["provisional"]
    assert page.is_visible("#intensity-provisional")
    rows = page.locator("#intensity tbody tr")
    assert rows.count() == 1 + len(doc["buildings"])
    site_cells = rows.first.locator("td").all_text_contents()
    assert site_cells[0] == "全场"
    assert number(site_cells[3]) == pytest.approx(doc["site"]["kwh_per_m2"], abs=0.05)
    assert number(site_cells[4]) == pytest.approx(doc["site"]["kwh_per_person"], abs=0.5)
    for i, b in enumerate(doc["buildings"], start=1):
        cells = rows.nth(i).locator("td").all_text_contents()
        assert cells[0] == b["name"]
        assert number(cells[3]) == pytest.approx(b["kwh_per_m2"], abs=0.05)
    assert len(doc["targets"]) >= 3  # GB/T 51161, the energy and water quotas
    for t in doc["targets"]:
        box = page.locator(f"#targets .target[data-id='{t['id']}']")
        assert box.count() == 1, t["id"]
        text = box.text_content()
        assert t["source"] in text
        assert box.locator(".provisional").count() == int(t["provisional"])
        for limit in ("constraint", "guide"):
            if t[limit] is not None:
                assert number(box.locator(f".{limit}").text_content()) == t[limit]
        scopes = {"site": t["site"]} if t.get("site") else {}
        scopes.update(t.get("buildings") or {})
        assert box.locator(".check").count() == len(scopes)
        for scope, check in scopes.items():
            row = box.locator(f".check[data-scope='{scope}']")
            assert f"status-{check['status']}" in (row.get_attribute("class") or "")
            assert STATUS_ZH[check["status"]] in row.text_content()
            assert number(row.locator(".value").text_content()) == pytest.approx(
                check["value"], abs=0.05
            )
    statuses = {c["status"] for t in doc["targets"] for c in [t.get("site") or {}] if c}
    assert "above_guide" in statuses  # the fixture's site: between guide and constraint

    page.click("#lang")
    page.wait_for_function(
        "document.querySelector('#s-intensity h2').textContent === 'Energy intensity'"
    )
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert "above the guide value" in page.text_content("#targets")
    assert page.locator("#intensity tbody tr").first.locator("td").first.text_content() == "Site"
    assert {s for s, _ in v.statuses} == {200}, [s for s in v.statuses if s[0] != 200]
    assert v.errors == [], v.errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-intensity-en.png"), full_page=True)
    page.close()


# -- what the charts draw ----------------------------------------------------------------------


def test_an_outage_is_drawn_as_a_gap_not_as_one_huge_bar(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    v = visit(chromium, url, world.tokens["viewer"])
    page = v.page
    data = chart_data(page, "chart-overview")
    days = [x * 1000 for x in data["x"]]
    whole, partial = (s["values"] for s in data["series"])
    outage_days = [i for i, d in enumerate(days) if OUTAGE[0] <= d and d + DAY_MS <= OUTAGE[1]]
    assert len(outage_days) == 2, outage_days
    for i in outage_days:  # the two days fully inside the outage: nothing drawn
        assert (whole[i], partial[i]) == (None, None), i
    before, after = outage_days[0] - 1, outage_days[-1] + 1
    assert whole[before] is None
    assert partial[before] is not None
    assert whole[after] is None
    assert partial[after] is not None
    normal = max(w for w in whole if w is not None)
    assert max(p for p in partial if p is not None) <= normal * 1.01  # no bar carries the outage
    assert whole[before - 1] == pytest.approx(normal, rel=0.01)
    assert whole[-1] is None
    assert partial[-1] is not None

    # the meter chart over the outage: power buckets there are nulls, drawn as a gap
    page.click("#ranges button[data-range='30']")
    page.wait_for_function(
        "EpcChart.data('chart-meter') && EpcChart.data('chart-meter').x.length === 720"
    )
    meter = chart_data(page, "chart-meter")
    points = list(zip(meter["x"], meter["series"][0]["values"], strict=True))
    inside = [y for x, y in points if OUTAGE[0] <= x * 1000 < OUTAGE[1] - 3_600_000]
    assert inside
    assert all(y is None for y in inside)
    assert any(y is not None for x, y in points if x * 1000 >= OUTAGE[1])
    assert v.errors == [], v.errors
    page.close()


@pytest.mark.parametrize(
    ("meter", "quantity", "kind"),
    [
        ("W-MAIN", "volume", "bars"),  # water: m³ per bucket from the counter
        ("WX-ROOF", "outdoor_temperature", "line"),  # weather
        (None, "thermal_power", "line"),  # thermal: the first BTU meter
        (None, "thermal_energy", "bars"),
    ],
)
def test_every_meter_kind_is_chartable(
    world: ApiWorld,
    url: str,
    chromium: Any,
    meter: str | None,
    quantity: str,
    kind: str,
) -> None:
    meter = meter or next(m.id for m in world.site.meters if m.kind.value == "thermal")
    v = visit(chromium, url, world.tokens["engineer"])
    page = v.page
    page.select_option("#meter-select", meter)
    page.select_option("#quantity-select", quantity)
    page.wait_for_function(
        f"document.getElementById('meter-title').textContent.indexOf('{meter} · {quantity}') === 0"
    )
    data = chart_data(page, "chart-meter")
    assert data["series"][0]["kind"] == kind
    values = [y for y in data["series"][0]["values"] if y is not None]
    assert len(values) >= 24
    assert max(values) > 0
    assert v.errors == [], v.errors
    page.close()


def test_the_operations_list_is_paged_and_says_how_many_are_hidden(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    v = visit(chromium, url, world.tokens["viewer"], lang="en")
    page = v.page
    n = len(world.site.meters)
    assert page.locator("#ops tbody tr").count() == 15
    assert page.text_content("#ops-info") == f"Showing 1–15 of {n}, {n - 15} more not shown"
    first = page.locator("#ops tbody tr td").first.text_content()
    page.click("#ops-pager button[data-page='1']")
    assert page.text_content("#ops-info") == f"Showing 16–30 of {n}, {n - 15} more not shown"
    assert page.locator("#ops tbody tr td").first.text_content() != first
    page.check("#offline-only")
    offline = page.locator("#ops tbody .stale").count()
    rows = page.locator("#ops tbody tr").count()
    assert offline == rows  # only offline meters listed now
    page.close()


def test_a_wrong_key_brings_the_login_back(url: str, chromium: Any) -> None:
    v = visit(chromium, url, None)
    page = v.page
    page.fill("#key", "epc_00000000_forged")
    page.click("#login button[type=submit]")
    page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
    assert page.text_content("#login-error") == "密钥无效或已撤销"
    assert page.is_hidden("#main")
    page.close()


def test_docs_render_with_the_network_cut(url: str, chromium: Any) -> None:
    page = chromium.new_page()
    blocked: list[str] = []

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert page.locator(".swagger-ui .opblock").count() >= 20  # every route
    assert "epcmon" in page.text_content(".swagger-ui .title")
    assert page.locator(".swagger-ui .opblock-summary-path[data-path='/api/v1/whoami']").count()
    assert blocked == [], blocked  # nothing asked for outside this machine
    assert errors == [], errors
    page.close()


def test_page_benchmark_quick_run() -> None:
    require("chromium", "chromium")
    pytest.importorskip("playwright", reason="playwright (a dev dependency) is not installed")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.page", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "page load to all charts drawn, warm" in done.stdout


def test_the_monthly_reports_are_listed_for_engineers_and_never_asked_by_viewers(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    """The service writes the reports; the page lists them with their downloads for the keys
    that may download them, and a viewer's or vendor's page never asks."""
    from reports.build import reports_dir, write_report

    out = reports_dir(world.site, world.statements.path)  # where the app looks
    write_report(world.site, world.store, world.statements, BILLS_MONTH, out)
    v = visit(chromium, url, world.tokens["engineer"], lang="en")
    page = v.page
    assert page.is_visible("#s-reports")
    rows = page.locator("#reports tbody tr").all_text_contents()
    assert len(rows) == 1
    assert rows[0].startswith(BILLS_MONTH)
    with page.expect_download() as pdf:
        page.locator("#reports tbody tr button", has_text="PDF").click()
    assert pdf.value.suggested_filename.endswith(f"{BILLS_MONTH}.pdf")
    assert Path(pdf.value.path()).read_bytes()[:5] == b"%PDF-"
    assert v.errors == [], v.errors
    page.close()
    for role in ("viewer", "vendor"):
        v = visit(chromium, url, world.tokens[role], lang="en")
        assert not v.page.is_visible("#s-reports")
        assert not [u for _, u in v.statuses if u.startswith("/api/v1/reports")], role
        v.page.close()


def test_the_devices_nobody_configured_are_listed_with_their_payload_and_a_suggestion(
    world: ApiWorld, url: str, chromium: Any, data_dir: Path
) -> None:
    """As Home Assistant lists discovered devices: what the collector noted
    (`storage.devices`) is shown to the building's roles, the payload and the suggested
    site-file entry folded; an empty list says so."""
    from storage.devices import DEVICES_FILE, Sighting, UnconfiguredDevices

    v = visit(chromium, url, world.tokens["viewer"], lang="en")
    assert v.page.is_visible("#devices-empty")
    assert v.page.text_content("#devices-empty") == "No message from a device nobody configured"
    v.page.close()
    long = json.dumps({"Time": "2026-03-01T08:00:00", "ENERGY": {"Power": 1, "pad": "x" * 300}})
    devices = UnconfiguredDevices(data_dir / DEVICES_FILE)
    devices.record(
        [
            Sighting(
                "tele/plug7/SENSOR", "", "", 4, T0, T0 + 60_000, long.encode(),
                "unknown meter: no meter is mapped to topic 'tele/plug7/SENSOR'",
                '[[meters]]\nid = "tele-plug7-SENSOR"\nkind = "electricity"\n',
            ),
            Sighting("gw/7/up", "E-7-3", "bus", 1, T0, T0, b"\xff\x00", "unknown meter: E-7-3"),
        ]
    )  # fmt: skip
    devices.close()
    v = visit(chromium, url, world.tokens["engineer"], lang="en")
    page = v.page
    assert page.is_hidden("#devices-empty")
    rows = page.locator("#devices tbody tr")
    assert rows.count() == 2
    plug = rows.nth(0).locator("td").all_text_contents()
    assert plug[0] == "tele/plug7/SENSOR"
    assert plug[1:3] == ["–", "4"]
    assert plug[5].startswith('{"Time": "2026-03-01T08:00:00"')
    snippet = rows.nth(0).locator("pre.snippet")
    assert not snippet.is_visible()  # folded until asked
    rows.nth(0).locator("td").nth(6).locator("summary").click()
    assert snippet.is_visible()
    assert 'id = "tele-plug7-SENSOR"' in rows.nth(0).locator("pre.snippet").inner_text()
    gateway = rows.nth(1).locator("td").all_text_contents()
    assert gateway[:3] == ["gw/7/up", "E-7-3 (bus)", "1"]
    assert gateway[5] == "base64: /wA="
    assert v.errors == [], v.errors
    assert {s for s, _ in v.statuses} == {200}
    page.close()


# -- alarms --------------------------------------------------------------------------------------


def test_the_engineer_sees_alarms_active_first_and_acknowledges_one(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    v = visit(chromium, url, world.tokens["engineer"])
    page = v.page
    assert page.text_content("#s-alarms h2") == "告警"
    rows = page.locator("#alarms tbody tr")
    shown = [rows.nth(i).get_attribute("data-alarm") for i in range(rows.count())]
    assert shown == [str(PART_ALARM), str(BUILDING_ALARM), str(BOUNDARY_ALARM)]  # critical first
    assert page.text_content("#alarms-summary") == "3 条告警未消除"
    first = rows.first.locator("td").all_text_contents()
    assert first[0] == "严重"
    assert "服务部件 mqtt 故障重启" in first[1]
    assert "未消除" in first[1]
    assert page.locator("#alarms button.ack").count() == 3

    # acknowledge the department's alarm: the button gives way to who and when
    row = page.locator(f"#alarms tr[data-alarm='{BUILDING_ALARM}']")
    with page.expect_response(lambda r: r.url.endswith(f"/alarms/{BUILDING_ALARM}/ack")) as ack:
        row.locator("button.ack").click()
    assert ack.value.status == 200
    page.wait_for_selector(f"#alarms tr[data-alarm='{BUILDING_ALARM}'] .acked")
    engineer = world.keys.authenticate(world.tokens["engineer"])
    assert engineer is not None
    assert f"key {engineer.key_id}" in row.locator(".acked").text_content()
    with TestClient(app_for(world)) as client:
        stored = client.get(f"/api/v1/alarms/{BUILDING_ALARM}", headers=key_header(world)).json()
    assert stored["acknowledged_by"] == f"key {engineer.key_id}"

    # with the cleared ones, and a row's history
    page.check("#alarms-history")
    page.wait_for_selector(f"#alarms tr[data-alarm='{CLEARED_ALARM}']")
    cleared = page.locator(f"#alarms tr[data-alarm='{CLEARED_ALARM}']")
    assert "已于" in cleared.text_content()
    assert cleared.locator("button.ack").count() == 0
    cleared.locator("button.expand").click()
    page.wait_for_selector(f"#alarms tr[data-alarm='{CLEARED_ALARM}'] .alarm-history li")
    events = cleared.locator(".alarm-history li").all_text_contents()
    assert len(events) == 2
    assert "产生" in events[0]
    assert "消除" in events[1]
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#s-alarms").screenshot(path=str(ARTIFACTS / "web-page-alarms.png"))

    page.click("#lang")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.text_content("#s-alarms h2") == "Alarms"
    assert page.locator("#alarms tbody tr").first.locator("td").first.text_content() == "critical"
    assert {s for s, _ in v.statuses} == {200}, [s for s in v.statuses if s[0] != 200]
    assert v.errors == [], v.errors
    page.close()


def test_a_viewer_sees_the_alarms_on_a_phone_but_never_an_acknowledge_button(
    world: ApiWorld, url: str, chromium: Any
) -> None:
    v = visit(chromium, url, world.tokens["viewer"], lang="en", width=390)
    page = v.page
    assert page.locator("#alarms tbody tr").count() >= 2
    assert page.locator("#alarms button.ack").count() == 0
    no_horizontal_scroll(page, 390)  # on a phone, the alarms fit its width
    box = page.locator("#s-alarms").bounding_box()
    assert box is not None
    assert 0 <= box["x"] <= box["x"] + box["width"] <= 390
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#s-alarms").screenshot(path=str(ARTIFACTS / "web-page-alarms-phone.png"))
    assert not [p for p in v.api_paths() if p.endswith("/ack")]
    assert v.errors == [], v.errors
    page.close()

"""Issue 18: the portfolio page (`/` of `epcmon run --site DIR`) in headless Chromium, as the
city's office, a county's office and a vendor open it: each sees the sites its key may see,
ranked, with the totals; a site's link opens that site's own page, which calls that site's
routes. Screenshots are kept in test-artifacts/ (and `python -m bench.browser` retakes the
README's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.browser import browser, serve
from tests.conftest import require
from tests.portfolio_fixtures import CITY, COUNTY, PortfolioWorld, make_portfolio_world

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[PortfolioWorld]:
    w = make_portfolio_world(tmp_path_factory.mktemp("web-portfolio"))
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def site_url(world) -> Iterator[str]:
    with serve(world.router) as url:
        yield url.rstrip("/")


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Iterator[Any]:
    require("chromium", "chromium")
    with browser(tmp_path_factory.mktemp("chromium")) as b:
        yield b


def _open(context: Any, url: str, key: str) -> tuple[Any, list[str]]:
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(f"sessionStorage.setItem('epcmon.key', {key!r});")
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page, errors


def test_the_city_office_sees_every_site_ranked_with_the_totals(world, site_url, context):
    page, errors = _open(context, site_url + "/", world.tokens["city"])
    rows = page.eval_on_selector_all("#sites tbody tr", "rs => rs.map(r => r.dataset.site)")
    assert sorted(rows) == sorted([CITY, COUNTY])
    assert page.inner_text("#portfolio-name") == "六安市"
    kpis = page.inner_text("#kpis")
    assert "kWh/m²" in kpis
    assert "±" in kpis
    headers = page.eval_on_selector_all("#sites thead th", "hs => hs.map(h => h.textContent)")
    assert "kWh/m²" in headers
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "portfolio-city.png"), full_page=True)
    page.close()
    assert errors == []


def test_a_county_office_sees_its_own_site_and_its_page(world, site_url, context):
    page, errors = _open(context, site_url + "/", world.tokens["county"])
    rows = page.eval_on_selector_all("#sites tbody tr", "rs => rs.map(r => r.dataset.site)")
    assert rows == [COUNTY]
    page.click(f"#sites tbody tr[data-site='{COUNTY}'] a")
    page.wait_for_url(f"**/sites/{COUNTY}/")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert "裕安区行政中心" in page.inner_text("#site-name")  # the site's own page and routes
    page.close()
    assert errors == []
    # a county key on the city's page is refused by the city's routes, never shown its data
    other = context.new_page()
    other.add_init_script(f"sessionStorage.setItem('epcmon.key', {world.tokens['county']!r});")
    statuses: list[int] = []
    other.on("response", lambda r: statuses.append(r.status) if "/api/v1/" in r.url else None)
    other.goto(f"{site_url}/sites/{CITY}/")
    other.wait_for_selector("#login:not([hidden]), body[data-ready='1']", timeout=30_000)
    assert 403 in statuses
    assert set(statuses) <= {401, 403}  # nothing of the city's was served to it
    other.close()


def test_a_vendor_sees_its_contract_and_no_building_figures(world, site_url, context):
    page, errors = _open(context, site_url + "/", world.tokens["vendor"])
    rows = page.eval_on_selector_all("#sites tbody tr", "rs => rs.map(r => r.dataset.site)")
    assert rows == [CITY]
    headers = page.eval_on_selector_all("#sites thead th", "hs => hs.map(h => h.textContent)")
    assert "kWh/m²" not in headers
    assert "kWh/m²" not in page.inner_text("#kpis")
    page.close()
    assert errors == []

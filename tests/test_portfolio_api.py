"""Issue 18: one deployment, many sites. The role matrix extended to sites: a county's key sees
its own site only, the city's key every site, a vendor its contracts wherever they are; the
same meter id at two sites is two meters; the portfolio's routes answer within each key's
scope."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient

from storage.scoped import SiteStore
from tests.portfolio_fixtures import CITY, COUNTY, PortfolioWorld, make_portfolio_world
from tests.test_api import ANY_KEY_ROUTES, READER_ROUTES


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_portfolio_world(tmp_path_factory.mktemp("portfolio"))
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def client(world):
    with TestClient(world.router) as c:
        yield c


def at(site: str, path: str) -> str:
    """A single site's route as the portfolio serves it."""
    if path.startswith("/api/v1/"):
        return f"/api/v1/sites/{site}/" + path[len("/api/v1/") :]
    return f"/sites/{site}{path}"


@pytest.mark.parametrize(("path", "params"), READER_ROUTES, ids=[p for p, _ in READER_ROUTES])
def test_site_matrix_building_routes(world: PortfolioWorld, client, path, params):
    for site in (CITY, COUNTY):
        assert client.get(at(site, path), params=params).status_code == 401  # no key
        for who in ("city", "admin"):  # the city's office: every site
            r = client.get(at(site, path), params=params, headers=world.auth(who))
            assert r.status_code == 200, (who, site, r.text[:200])
        for who in ("vendor", "vendor-both"):  # never building data, at any site
            r = client.get(at(site, path), params=params, headers=world.auth(who))
            assert r.status_code == 403, (who, site)
    for who in ("county", "county-viewer"):
        assert (
            client.get(at(COUNTY, path), params=params, headers=world.auth(who)).status_code == 200
        )
        r = client.get(at(CITY, path), params=params, headers=world.auth(who))
        assert r.status_code == 403, (who, r.text[:200])
        assert COUNTY in r.json()["detail"]


SITE_ANY_KEY_ROUTES = [(p, q) for p, q in ANY_KEY_ROUTES if "alarms/" not in p]
"""Routes every role may call, but a single alarm (its id is the single-site fixture's)."""


@pytest.mark.parametrize(
    ("path", "params"), SITE_ANY_KEY_ROUTES, ids=[p for p, _ in SITE_ANY_KEY_ROUTES]
)
def test_site_matrix_any_key_routes(world: PortfolioWorld, client, path, params):
    assert (
        client.get(at(COUNTY, path), params=params, headers=world.auth("county")).status_code == 200
    )
    assert (
        client.get(at(CITY, path), params=params, headers=world.auth("county")).status_code == 403
    )
    for who in ("city", "vendor"):
        assert client.get(at(CITY, path), params=params, headers=world.auth(who)).status_code == 200


def test_every_portfolio_route_is_in_this_matrix(world: PortfolioWorld, client):
    spec = world.router.openapi()
    paths = {p for p in spec["paths"] if p.startswith("/api/v1/")}
    assert paths == {
        "/api/v1/sites",
        "/api/v1/portfolio",
        "/api/v1/portfolio/report",
        "/api/v1/portfolio/info",
    }


def test_the_same_meter_id_at_two_sites_is_two_meters(world: PortfolioWorld, client):
    # the fixture wrote both sites' meters through their views: one store, two series each
    keys = world.store.series_keys()
    assert ("luan-admin-center/E-D01", "power") in keys
    assert ("county-b/E-D01", "power") in keys
    assert not any(m == "E-D01" for m, _ in keys)  # nothing unqualified
    from core.readings import Reading, ReadingBatch

    SiteStore(world.store, COUNTY).write(
        ReadingBatch.from_readings([Reading("E-D01", "power", 1_766_000_000_000, 123.5)])
    )
    city = client.get(at(CITY, "/api/v1/meters/E-D01/latest"), headers=world.auth("city")).json()
    county = client.get(
        at(COUNTY, "/api/v1/meters/E-D01/latest"), headers=world.auth("city")
    ).json()
    assert [r["value"] for r in county if r["quantity"] == "power"] == [123.5]
    assert 123.5 not in [r["value"] for r in city]


def test_sites_lists_what_each_key_may_see(world: PortfolioWorld, client):
    def ids(who: str) -> list[str]:
        r = client.get("/api/v1/sites", headers=world.auth(who))
        assert r.status_code == 200
        return [s["id"] for s in r.json()]

    assert ids("city") == [CITY, COUNTY]
    assert ids("county") == [COUNTY]
    assert ids("vendor") == [CITY]
    assert ids("vendor-both") == [CITY, COUNTY]
    vendor = client.get("/api/v1/sites", headers=world.auth("vendor")).json()[0]
    assert "meters" not in vendor
    assert "floor_area_m2" not in vendor
    assert vendor["contracts"] == [world.portfolio.sites[0].contracts[0].id]
    assert client.get("/api/v1/sites").status_code == 401


def test_unqualified_routes_go_to_the_keys_own_site(world: PortfolioWorld, client):
    county = client.get("/api/v1/site", headers=world.auth("county")).json()
    assert county["id"] == COUNTY
    assert client.get("/api/v1/site", headers=world.auth("city")).json()["id"] == CITY
    who = client.get("/api/v1/whoami", headers=world.auth("county")).json()
    assert who["sites"] == [COUNTY]
    # a vendor whose contracts are at one site lands there
    contracts = client.get("/api/v1/contracts", headers=world.auth("vendor")).json()
    assert [c["id"] for c in contracts] == [world.portfolio.sites[0].contracts[0].id]


def test_unknown_sites_are_404_and_pages_are_per_site(world: PortfolioWorld, client):
    assert client.get("/api/v1/sites/nowhere/site", headers=world.auth("city")).status_code == 404
    page = client.get(f"/sites/{COUNTY}", follow_redirects=False)
    assert page.status_code == 308
    assert page.headers["location"] == f"/sites/{COUNTY}/"
    html = client.get(f"/sites/{COUNTY}/").text
    assert 'src="static/page.js"' in html  # relative: it calls /sites/<site>/api/v1/...
    assert client.get(f"/sites/{COUNTY}/static/page.js").status_code == 200
    front = client.get("/").text
    assert "portfolio.js" in front
    assert client.get("/static/portfolio.js").status_code == 200
    assert client.get("/api/v1/portfolio/info").json()["id"] == "luan-city"


def test_portfolio_figures_are_scoped_like_the_sites(world: PortfolioWorld, client):
    window = {"first": "2025-12", "last": "2025-12"}
    city = client.get("/api/v1/portfolio", params=window, headers=world.auth("city")).json()
    assert [s["id"] for s in city["sites"]] == [CITY, COUNTY]
    by_id = {s["id"]: s for s in city["sites"]}
    assert city["totals"]["kwh"] == pytest.approx(by_id[CITY]["kwh"] + by_id[COUNTY]["kwh"])
    assert city["totals"]["kwh"] > 0
    area = by_id[CITY]["floor_area_m2"] + by_id[COUNTY]["floor_area_m2"]
    assert city["totals"]["kwh_per_m2"] == pytest.approx(city["totals"]["kwh"] / area)
    ranked = [r["site"] for r in city["ranking"]["by_intensity"]]
    values = [r["kwh_per_m2"] for r in city["ranking"]["by_intensity"]]
    assert sorted(ranked) == sorted([CITY, COUNTY])
    assert values == sorted(values)
    county = client.get("/api/v1/portfolio", params=window, headers=world.auth("county")).json()
    assert [s["id"] for s in county["sites"]] == [COUNTY]
    assert county["totals"]["kwh"] == pytest.approx(by_id[COUNTY]["kwh"])
    vendor = client.get("/api/v1/portfolio", params=window, headers=world.auth("vendor")).json()
    assert [s["id"] for s in vendor["sites"]] == [CITY]
    assert [c["id"] for c in vendor["sites"][0]["contracts"]] == [
        world.portfolio.sites[0].contracts[0].id
    ]
    assert "kwh" not in vendor["totals"]
    assert "by_intensity" not in vendor["ranking"]
    assert "kwh" not in vendor["sites"][0]
    text = client.get(
        "/api/v1/portfolio", params={**window, "format": "csv"}, headers=world.auth("county")
    ).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["site"] for r in rows} == {COUNTY, "total"}
    report = client.get(
        "/api/v1/portfolio/report", params={"month": "2025-12"}, headers=world.auth("city")
    ).json()
    assert report["month"]["window"] == {
        "first": "2025-12",
        "last": "2025-12",
        "contract_year": None,
    }
    assert report["twelve_months"]["window"]["first"] == "2025-01"
    bad = client.get(
        "/api/v1/portfolio",
        params={"first": "2026-01", "last": "2025-01"},
        headers=world.auth("city"),
    )
    assert bad.status_code == 400


def test_healthz_names_every_sites_parts(world: PortfolioWorld, client):
    body = client.get("/healthz").json()
    assert body["portfolio"] == "luan-city"
    assert body["sites"] == sorted([CITY, COUNTY])
    assert re.fullmatch(r"ok|degraded", body["status"])


def test_the_portfolio_report_workbook_holds_the_apis_figures(world: PortfolioWorld, client):
    openpyxl = pytest.importorskip("openpyxl")
    import io

    params = {"month": "2025-12", "format": "xlsx"}
    r = client.get("/api/v1/portfolio/report", params=params, headers=world.auth("city"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(r.content), data_only=True)
    assert book.sheetnames == ["各单位 Sites", "合同 Contracts"]
    rows = [row for row in book["各单位 Sites"].iter_rows(values_only=True) if row[1]]
    api = client.get(
        "/api/v1/portfolio",
        params={"first": "2025-12", "last": "2025-12"},
        headers=world.auth("city"),
    ).json()
    by_site: dict[str, tuple[object, ...]] = {}
    for row in rows:  # the month's table comes first
        by_site.setdefault(row[1], row)
    for s in api["sites"]:  # the month's table first: its kWh as the API's
        assert by_site[s["id"]][4] == pytest.approx(s["kwh"])
    total = by_site["合计 total"]
    assert total[4] == pytest.approx(api["totals"]["kwh"])
    county = client.get("/api/v1/portfolio/report", params=params, headers=world.auth("county"))
    sites = {
        row[1]
        for row in openpyxl.load_workbook(io.BytesIO(county.content))["各单位 Sites"].iter_rows(
            values_only=True
        )
    }
    assert CITY not in sites
    assert COUNTY in sites
    vendor = client.get("/api/v1/portfolio/report", params=params, headers=world.auth("vendor"))
    assert vendor.status_code == 403

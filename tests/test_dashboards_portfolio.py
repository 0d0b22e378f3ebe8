"""Issue 18, Grafana for a portfolio: `epcmon dashboards build|push --site DIR` makes every
site's dashboards (a `site` variable, meters as `<site>/<meter>`, Infinity through
`/api/v1/sites/$site`) and the portfolio overview; a site dashboard's InfluxQL, run on a real
InfluxDB 1.6.7 holding two sites' qualified meters, returns its own site's series and never
the other's; the overview's URLs answer from the real portfolio API with the fields its
panels select; push makes exactly these requests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

pytest.importorskip("grafana_foundation_sdk", reason="the `dashboards` extra is not installed")

from fastapi.testclient import TestClient

from core.config import Portfolio
from core.readings import ReadingBatch
from dashboards.grafana.build import build_all
from dashboards.grafana.client import GrafanaClient
from dashboards.grafana.members import uid_for
from dashboards.grafana.portfolio import build_portfolio
from dashboards.grafana.provisioning import render
from dashboards.grafana.push import push
from dashboards.grafana.sources import regex
from dashboards.grafana.targets import INFINITY_TYPE, INFLUX_TYPE
from epcmon.cli import main
from epcmon.sites import load, load_portfolio
from simulators.history import generate_history
from storage import open_store
from tests.conftest import InfluxServer
from tests.portfolio_fixtures import COUNTY, make_portfolio_world
from tests.test_dashboards import (
    END,
    START,
    VIEW,
    RecordingGrafana,
    department_panel,
    department_truth,
    targets,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "sites/luan-admin-center.toml"
A, B = "city-hall", "county-b"
HEAD = """[portfolio]
id = "test-city"
name = "测试市"
[storage]
{storage}
[api]
keys_path = "{data}/keys.sqlite3"
"""
DUCKDB = 'path = "{data}/city.duckdb"'
INFLUX = 'backend = "influx"\n[storage.influx]\nurl = "{url}"\nmode = "v1"\ndatabase = "{db}"'


def portfolio_dir(tmp_path: Path, storage: str) -> Path:
    """Two copies of the reference site (as tests/test_portfolio.py makes them): the same
    meter ids at both, so a query that leaks across sites shows."""
    directory = tmp_path / "city"
    directory.mkdir(parents=True)
    data = tmp_path / "data"
    (directory / "portfolio.toml").write_text(HEAD.format(storage=storage, data=data))
    text = REFERENCE.read_text(encoding="utf-8")
    for name, site_id, contract_id in (("a.toml", A, "epc-a"), ("b.toml", B, "epc-b")):
        (directory / name).write_text(
            text.replace('id = "luan-admin-center"', f'id = "{site_id}"', 1)
            .replace("epc-2025-01", contract_id)
            .replace('topic = "luan-admin-center/', f'topic = "{site_id}/'),
            encoding="utf-8",
        )
    return directory


@pytest.fixture
def duck_city(tmp_path: Path) -> Portfolio:
    return load_portfolio(portfolio_dir(tmp_path, DUCKDB.format(data=tmp_path / "data")), {})


def member_stems(dashboards: dict[str, Any], site_id: str) -> dict[str, dict[str, Any]]:
    return {k: d for k, d in dashboards.items() if k.startswith(f"{site_id}-")}


def variables(d: dict[str, Any]) -> list[dict[str, Any]]:
    return list(d.get("templating", {}).get("list", []))


def test_the_regex_escapes_the_site_separator_and_dots() -> None:
    assert regex(["E-TR1", "E-CH1"]) == "/^(E-CH1|E-TR1)$/"  # a lone site's, as before
    assert regex(["county-b/E-TR1", "a.b/E.1"]) == r"/^(a\.b\/E\.1|county-b\/E-TR1)$/"


def test_a_portfolio_builds_every_site_s_dashboards_and_its_overview(
    duck_city: Portfolio,
) -> None:
    dashboards = build_portfolio(duck_city)
    lone = build_all(load(REFERENCE))
    assert set(dashboards) == {"portfolio"} | {f"{s}-{stem}" for s in (A, B) for stem in lone}
    uids = [d["uid"] for d in dashboards.values()]
    titles = [d["title"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    assert all(len(u) <= 40 for u in uids)
    assert len(set(titles)) == len(titles)  # Grafana refuses two equal titles in a folder
    assert dashboards["portfolio"]["uid"] == "epcmon-portfolio"
    for site in (A, B):
        mine = member_stems(dashboards, site)
        for stem, d in mine.items():
            assert d["uid"] == f"epcmon-{stem}"
            assert f"site:{site}" in d["tags"]
            first = variables(d)[0]
            assert (first["name"], first["query"], first["hide"]) == ("site", site, 2), stem
            assert first["current"]["value"] == site
            assert {link["tags"][0] for link in d["links"]} == {"epcmon-portfolio", f"site:{site}"}
            for panel in d["panels"]:
                assert " / " in panel["title"], f"{stem}: {panel['title']!r} is not zh / en"
        found = [t for _, t in targets(mine, INFINITY_TYPE)]
        assert len(found) >= 25  # DuckDB: the meter panels read the API too
        for target in found:
            assert target["url"].startswith("/api/v1/sites/$site/"), target["url"]
    # the same panels as the lone site's, but for the URLs
    for stem, d in lone.items():
        n_lone = len(list(targets({stem: d}, INFINITY_TYPE)))
        assert len(list(targets({stem: dashboards[f"{A}-{stem}"]}, INFINITY_TYPE))) == n_lone
    table = next(p for p in dashboards["portfolio"]["panels"] if p["title"].startswith("各单位"))
    (override,) = table["fieldConfig"]["overrides"]
    assert override["matcher"] == {
        "id": "byName",
        "options": table["targets"][0]["columns"][0]["text"],
    }
    (link,) = override["properties"][0]["value"]
    for site in (A, B):  # the site id in the cell makes that site's overview uid
        uid = link["url"].replace("${__value.raw}", site).split("?")[0].removeprefix("/d/")
        assert uid == dashboards[f"{site}-overview"]["uid"]
    for name, target in targets({"portfolio": dashboards["portfolio"]}, INFINITY_TYPE):
        assert target["url"].startswith("/api/v1/portfolio?"), name
        assert "${__from:date:YYYY-MM}" in target["url"]
        assert "${__to:date:YYYY-MM}" in target["url"]


def test_long_site_ids_still_make_grafana_uids(duck_city: Portfolio) -> None:
    site = duck_city.site(A)
    site._store_scope = "x" * 64  # ids may be 64 characters; Grafana's uids 40
    uids = {uid_for(site, stem) for stem in ("overview", "meter", "savings", "operations")}
    assert len(uids) == 4
    assert all(len(u) <= 40 for u in uids)


def test_build_and_provisioning_for_a_portfolio_directory(tmp_path: Path) -> None:
    directory = portfolio_dir(tmp_path, DUCKDB.format(data=tmp_path / "data"))
    out = tmp_path / "out"
    (out / "dashboards").mkdir(parents=True)
    (out / "dashboards/overview.json").write_text("{}")  # a lone site's, left from before
    assert main(["dashboards", "build", "--site", str(directory), "--out", str(out)]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert written == sorted(render(load_portfolio(directory)))
    assert "dashboards/portfolio.json" in written
    assert "dashboards/overview.json" not in written
    sources = yaml.safe_load((out / "provisioning/datasources/epcmon.yaml").read_text())
    assert [s["type"] for s in sources["datasources"]] == [INFINITY_TYPE]  # a DuckDB store
    assert sources["datasources"][0]["url"] == "http://127.0.0.1:8000"  # portfolio.toml's [api]


# --- the overview against the real portfolio API ----------------------------------------------


def walk(data: Any, path: str) -> list[Any]:
    """A JSONata path (what Infinity's backend parser evaluates): through arrays it maps and
    flattens."""
    items = [data]
    for part in filter(None, path.split(".")):
        out: list[Any] = []
        for item in items:
            for one in item if isinstance(item, list) else [item]:
                assert isinstance(one, dict), f"{part!r}: not an object: {str(one)[:200]}"
                assert part in one, f"no {part!r} in {str(one)[:200]}"
                value = one[part]
                out += value if isinstance(value, list) else [value]
        items = out
    return items


@pytest.fixture(scope="module")
def portfolio_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    world = make_portfolio_world(tmp_path_factory.mktemp("dash-portfolio"))
    try:
        with TestClient(world.router) as client:
            yield world, client
    finally:
        world.store.close()
        world.keys.close()


def test_every_overview_url_answers_from_the_portfolio_api_with_its_fields(
    portfolio_api: Any,
) -> None:
    world, client = portfolio_api
    found = list(targets({"p": build_portfolio(world.portfolio)["portfolio"]}, INFINITY_TYPE))
    assert len(found) >= 6
    roots = set()
    for name, target in found:
        url = target["url"].replace("${__from:date:YYYY-MM}", "2025-09")
        url = url.replace("${__to:date:YYYY-MM}", "2025-12")
        assert "$" not in url, url
        r = client.get(url, headers=world.auth("city"))
        assert r.status_code == 200, f"{name}: {url}: {r.status_code} {r.text[:300]}"
        body = r.json()
        assert body["window"] == {"first": "2025-09", "last": "2025-12", "contract_year": None}
        rows = walk(body, target["root_selector"])
        assert rows, f"{name}: no rows at {target['root_selector']!r}"
        for column in target["columns"]:
            for row in rows:
                walk(row, column["selector"])
        roots.add(target["root_selector"])
        if target["root_selector"] == "sites":
            assert [row["id"] for row in rows] == [s.site.id for s in world.portfolio.sites]
        if target["root_selector"] == "sites.contracts":  # every site's contracts, flattened
            ids = [c.id for s in world.portfolio.sites for c in s.contracts]
            assert sorted(row["id"] for row in rows) == sorted(ids)
    assert {"totals", "sites", "sites.contracts", "ranking.by_intensity"} <= roots
    # a county's key sees its own site only, in the same panels
    r = client.get(found[0][1]["url"].split("?")[0], headers=world.auth("county"))
    assert [s["id"] for s in r.json()["sites"]] == ["county-b"]


def test_member_urls_answer_from_that_site_s_routes(portfolio_api: Any) -> None:
    """Through `/api/v1/sites/$site/...`: each site's routes, with what its panels select."""
    world, client = portfolio_api
    for site in world.portfolio.sites:
        mine = member_stems(build_portfolio(world.portfolio), site.site.id)
        checked = 0
        for name, target in targets(mine, INFINITY_TYPE):
            if "/contracts/" in target["url"] or "$meter" in target["url"]:
                continue  # their variables are the single-site test's (test_dashboards.py)
            url = (
                target["url"]
                .replace("$site", site.site.id)
                .replace("${__from:date:iso}", "2025-12-03T16:00:00Z")
                .replace("${__to:date:iso}", "2025-12-10T16:00:00Z")
                .replace("${__from}", "1764777600000")
                .replace("${__to}", "1765382400000")
                .replace("${__interval_ms}", "600000")
            )
            r = client.get(url, headers=world.auth("city"))
            assert r.status_code == 200, f"{name}: {url}: {r.status_code} {r.text[:300]}"
            rows = walk(r.json(), target["root_selector"])
            for column in target["columns"]:
                for row in rows:
                    walk(row, column["selector"])
            checked += 1
            if site.site.id != COUNTY:  # the county's key reads its own site's panels only
                assert client.get(url, headers=world.auth("county")).status_code == 403, url
        assert checked >= 10


# --- InfluxQL against a real InfluxDB 1.6.7 holding both sites -------------------------------


@pytest.fixture
def influx_city(influxdb: InfluxServer, influx_db: str, tmp_path: Path) -> Portfolio:
    storage = INFLUX.format(url=influxdb.url, db=influx_db)
    portfolio = load_portfolio(portfolio_dir(tmp_path, storage), {})
    for site, seed in ((portfolio.site(A), 3), (portfolio.site(B), 4)):  # two different days
        readings = generate_history(site, START, END, interval="15m", seed=seed).readings
        detail = generate_history(
            site, START, END, interval="15m", seed=seed, meters=["E-D01"], quantities="all"
        ).readings
        store = open_store(site.storage, site, spool=False, environ={})  # its view: A/E-D01
        try:
            store.write(ReadingBatch.concat([readings, detail]))
        finally:
            store.close()
    return portfolio


def concrete(query: str, site_id: str) -> str:
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in VIEW)
    return (
        query.replace("$timeFilter", f"time >= '{start}' AND time < '{end}'")
        .replace("$__interval", "15m")
        .replace("$meter", f"{site_id}/E-D01")
        .replace("$site", site_id)
    )


def test_a_site_dashboard_s_influxql_returns_its_own_site_s_series(
    influxdb: InfluxServer, influx_db: str, influx_city: Portfolio
) -> None:
    dashboards = build_portfolio(influx_city)
    assert not list(targets({"p": dashboards["portfolio"]}, INFLUX_TYPE))  # the API's figures
    listed: dict[str, set[str]] = {}
    for site_id, other in ((A, B), (B, A)):
        mine = member_stems(dashboards, site_id)
        queries = [(name, t["query"]) for name, t in targets(mine, INFLUX_TYPE)]
        for d in mine.values():
            for var in variables(d):
                if var.get("datasource", {}).get("type") == INFLUX_TYPE:
                    queries.append((f"variable {var['name']}", var["query"]))
        assert len(queries) >= 12
        for name, query in queries:
            assert "'$site'" in query or "'$meter'" in query, f"{name}: not kept to the site"
            assert other not in query, name
            result = influxdb.query(concrete(query, site_id), influx_db)["results"][0]  # type: ignore[index]
            assert "error" not in result, f"{name}: {result['error']}\n{query}"
            series = result.get("series", [])
            values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
            assert values, f"{name}: no data\n{concrete(query, site_id)}"
            for s in series:  # grouped by meter: every one of this site's
                meter = s.get("tags", {}).get("meter")
                assert meter is None or meter.startswith(f"{site_id}/"), f"{name}: {meter}"
            if name == "variable meter":
                shown = {row[1] for s in series for row in s["values"]}
                ids = {f"{site_id}/{m.id}" for m in influx_city.site(site_id).meters}
                assert f"{site_id}/E-D01" in shown
                assert shown <= ids, shown - ids
                listed[site_id] = {m.split("/", 1)[1] for m in shown}
    assert listed[A] == listed[B]  # the same meters at both sites, each listed once per site


def test_the_department_panel_of_a_member_sums_its_own_site(
    influxdb: InfluxServer, influx_db: str, influx_city: Portfolio
) -> None:
    """The two sites' readings differ (other seeds): a query mixing them would not match."""
    lo, hi = (int(t.timestamp() * 1000) for t in VIEW)
    for site_id, seed in ((A, 3), (B, 4)):
        site = influx_city.site(site_id)
        readings = generate_history(site, START, END, interval="15m", seed=seed).readings
        truth = department_truth(site, readings, lo, hi)
        (target,) = department_panel({"overview": build_all(site)["overview"]})["targets"]
        answer = influxdb.query(concrete(target["query"], site_id), influx_db)
        shown = {s["tags"]["tenant"]: s["values"][0][-1] for s in answer["results"][0]["series"]}  # type: ignore[index]
        assert set(shown) == set(truth)
        for tenant, kw in truth.items():
            assert shown[tenant] == pytest.approx(kw, rel=1e-9), (site_id, tenant)
        total = next(p for p in build_all(site)["overview"]["panels"] if "总负荷" in p["title"])
        answer = influxdb.query(concrete(total["targets"][0]["query"], site_id), influx_db)
        (row,) = answer["results"][0]["series"][0]["values"]  # type: ignore[index]
        incomers = [m.id for m in site.meters if m.end_use.value == "incomer"]
        keep = (readings.quantity == "power") & (readings.ts_ms >= lo) & (readings.ts_ms < hi)
        last = [readings.value[keep & (readings.meter_id == m)][-1] for m in incomers]
        assert row[-1] == pytest.approx(float(np.sum(last)), rel=1e-9), site_id


# --- push ----------------------------------------------------------------------------------


def test_push_a_portfolio_makes_exactly_these_requests(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path
) -> None:
    portfolio = load_portfolio(
        portfolio_dir(tmp_path, INFLUX.format(url=influxdb.url, db=influx_db)), {}
    )
    fake = RecordingGrafana()
    client = GrafanaClient("http://grafana.test", "glsa_test", transport=httpx.MockTransport(fake))
    kwargs = {"influx_url": "http://influx:8086", "api_url": "http://api:8000", "viewer_key": "k1"}
    urls = push(client, portfolio, **kwargs)
    uids = ["epcmon-portfolio"] + [
        f"epcmon-{s}-{stem}"
        for s in (A, B)
        for stem in ("overview", "meter", "savings", "operations")
    ]
    assert urls == [f"/d/{uid}/x" for uid in uids]
    assert [(m, p) for m, p, _ in fake.requests] == [
        ("GET", "/api/folders/epcmon"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/epcmon-influxdb"),
        ("POST", "/api/datasources"),
        ("GET", "/api/datasources/uid/epcmon-api"),
        ("POST", "/api/datasources"),
    ] + [("POST", "/api/dashboards/db")] * 9
    influx_ds = fake.requests[3][2]
    assert influx_ds["url"] == "http://influx:8086"
    assert influx_ds["jsonData"]["dbName"] == influx_db  # the portfolio's shared database
    assert fake.requests[5][2]["secureJsonData"] == {"httpHeaderValue1": "Bearer k1"}
    sent = [body["dashboard"] for _m, _p, body in fake.requests[6:]]
    assert [d["uid"] for d in sent] == uids
    assert sent == [{**d, "id": None} for d in build_portfolio(portfolio).values()]
    for _m, _p, body in fake.requests[6:]:
        assert body["folderUid"] == "epcmon"
        assert body["overwrite"] is True
    assert re.search(r"county-b\\\\/E-TR1", json.dumps(sent))  # escaped inside the regexes

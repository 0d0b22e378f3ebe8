"""Grafana as code: the committed files are what `build` makes (for the compose deployment,
with the addresses Grafana reaches there); every InfluxQL query of an InfluxDB site runs on a
real InfluxDB 1.6.7 filled with simulator history, honours the time range and returns data;
a DuckDB site's dashboards read everything from the API, and every Infinity URL answers from
the real API over a DuckDB store with the fields its panel selects, inside the dashboard's
time range; the department panel sums each department's top-most meters once; the push
client's exact requests."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

pytest.importorskip("grafana_foundation_sdk", reason="the `dashboards` extra is not installed")

from fastapi.testclient import TestClient

from core.config import InfluxConfig, SiteConfig
from core.readings import ReadingBatch
from dashboards.grafana.build import build_all
from dashboards.grafana.client import GrafanaClient
from dashboards.grafana.provisioning import render
from dashboards.grafana.push import push
from dashboards.grafana.targets import INFINITY_TYPE, INFLUX_TYPE
from epcmon.cli import main
from epcmon.sites import load
from processing.rollups import top_meters
from simulators.history import generate_history
from storage.influx import InfluxStore
from tests.api_fixtures import DAYS, STATEMENT_MONTH, T0, app_for, make_world
from tests.conftest import InfluxServer

ROOT = Path(__file__).resolve().parents[1]
SITE_FILE = ROOT / "sites/luan-admin-center.toml"
"""The reference site: the DuckDB store (the default)."""
DEPLOY_SITE = ROOT / "deploy/site.toml"
"""The compose deployment's site: InfluxDB 2.7, whose dashboards deploy/grafana/ ships."""
COMPOSE_ADDRESSES = ["--api-url", "http://api:8000", "--influx-url", "http://influxdb:8086"]
"""What Grafana reaches in compose: the services by name."""
DETAIL_METER = "E-D01"
"""The meter the meter-detail dashboard's `$meter` variable is set to in these tests."""


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load(SITE_FILE)


@pytest.fixture(scope="module")
def influx_site() -> SiteConfig:
    return load(DEPLOY_SITE)


def targets(dashboards: dict[str, dict[str, Any]], ds_type: str) -> Iterator[tuple[str, dict]]:
    for stem, d in dashboards.items():
        for panel in d["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == ds_type:
                    yield f"{stem}: {panel['title']} [{target['refId']}]", target


def test_committed_files_equal_what_build_makes_now(influx_site: SiteConfig) -> None:
    """deploy/grafana/ is `epcmon dashboards build --site deploy/site.toml` with the compose
    addresses (tests/test_deploy.py reads it as Grafana in compose would)."""
    urls = dict(zip(COMPOSE_ADDRESSES[::2], COMPOSE_ADDRESSES[1::2], strict=True))
    files = render(influx_site, api_url=urls["--api-url"], influx_url=urls["--influx-url"])
    for rel, text in files.items():
        path = ROOT / "deploy/grafana" / rel
        assert path.exists(), f"{rel} is not committed: run `epcmon dashboards build`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{rel} is stale: run `epcmon dashboards build --site deploy/site.toml "
            + " ".join(COMPOSE_ADDRESSES)
            + "`"
        )
    committed = {
        p.relative_to(ROOT / "deploy/grafana").as_posix()
        for p in (ROOT / "deploy/grafana").rglob("*.*")
    }
    assert committed == set(files), "deploy/grafana/ holds files the build does not make"


def test_build_command_writes_the_files(tmp_path: Path) -> None:
    assert main(["dashboards", "build", "--site", str(SITE_FILE), "--out", str(tmp_path)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == sorted(render(load(SITE_FILE)))
    for p in tmp_path.rglob("*.json"):
        assert json.loads(p.read_text())["uid"].startswith("epcmon-")


def test_build_writes_the_addresses_grafana_sees(tmp_path: Path) -> None:
    args = ["dashboards", "build", "--site", str(DEPLOY_SITE), "--out", str(tmp_path)]
    assert main([*args, *COMPOSE_ADDRESSES]) == 0
    sources = yaml.safe_load((tmp_path / "provisioning/datasources/epcmon.yaml").read_text())
    urls = {s["type"]: s["url"] for s in sources["datasources"]}
    assert urls == {INFLUX_TYPE: "http://influxdb:8086", INFINITY_TYPE: "http://api:8000"}
    api = next(s for s in sources["datasources"] if s["type"] == INFINITY_TYPE)
    assert api["jsonData"]["allowedHosts"] == ["http://api:8000"]
    # without them: the site file's addresses, a wildcard listen address made loopback
    assert main(args) == 0
    sources = yaml.safe_load((tmp_path / "provisioning/datasources/epcmon.yaml").read_text())
    urls = {s["type"]: s["url"] for s in sources["datasources"]}
    assert urls == {INFLUX_TYPE: "http://influxdb:8086", INFINITY_TYPE: "http://127.0.0.1:8000"}
    with pytest.raises(SystemExit):
        main([*args, "--api-url", "api:8000"])  # not an http(s) URL


def test_a_duckdb_site_reads_every_panel_from_the_api(site: SiteConfig) -> None:
    """The embedded store has no InfluxDB for Grafana to read: every target and variable of
    its dashboards goes to the API, and only the API's datasource is provisioned."""
    assert site.storage.backend == "duckdb"
    dashboards = build_all(site)
    assert not list(targets(dashboards, INFLUX_TYPE))
    for d in dashboards.values():
        for var in d.get("templating", {}).get("list", []):
            assert var.get("datasource", {}).get("type") != INFLUX_TYPE, var
    sources = yaml.safe_load(render(site)["provisioning/datasources/epcmon.yaml"])
    assert [s["type"] for s in sources["datasources"]] == [INFINITY_TYPE]
    assert sources["datasources"][0]["isDefault"] is True


SNAPSHOTS = {
    "/api/v1/operations/meters",  # which meters are offline now
    "/api/v1/operations/spool",  # the spool's depth now
    "/api/v1/operations/dead-letters?limit=100",  # the newest dead letters
    "/api/v1/contracts/$contract/statements",  # the statements written
    "/api/v1/contracts/$contract/statements/$month",  # the month the variable picks
    "/api/v1/contracts/$contract/baseline",  # the fitted model
    "/api/v1/contracts/$contract/savings?period=year",  # contract years, whole
}
"""Infinity URLs that are not series in time: every other one must carry the time range."""


@pytest.mark.parametrize("site_file", [SITE_FILE, DEPLOY_SITE], ids=["duckdb", "influx"])
def test_every_query_honours_the_dashboard_s_time_range(site_file: Path) -> None:
    dashboards = build_all(load(site_file))
    for name, target in targets(dashboards, INFLUX_TYPE):
        selects = target["query"].count("SELECT")
        assert target["query"].count("$timeFilter") >= selects, f"{name}: {target['query']}"
    for name, target in targets(dashboards, INFINITY_TYPE):
        url = target["url"]
        if url in SNAPSHOTS:
            continue
        ranged = ("${__from}" in url and "${__to}" in url) or (
            "${__from:date:iso}" in url and "${__to:date:iso}" in url
        )
        assert ranged, f"{name}: {url} ignores the dashboard's time range"


def test_dashboards_are_bilingual_and_every_panel_has_a_query(site: SiteConfig) -> None:
    for stem, d in build_all(site).items():
        for panel in d["panels"]:
            assert " / " in panel["title"], f"{stem}: {panel['title']!r} is not zh / en"
            if panel["type"] != "row":
                assert panel["targets"], f"{stem}: {panel['title']!r} has no query"


# --- InfluxQL against a real InfluxDB 1.6.7 ------------------------------------------------

START = datetime(2025, 7, 14, tzinfo=UTC)  # a summer working week: the chillers run
END = START + timedelta(days=2)
VIEW = (START + timedelta(hours=12), START + timedelta(hours=36))
"""The dashboard's time range in these tests: inside the data, so a query that ignores it
returns points outside."""


@pytest.fixture
def filled_influx(influxdb: InfluxServer, influx_db: str, influx_site: SiteConfig) -> str:
    core = generate_history(influx_site, START, END, interval="15m", seed=3).readings
    detail = generate_history(
        influx_site, START, END, interval="15m", seed=3, meters=[DETAIL_METER], quantities="all"
    ).readings
    config = InfluxConfig.model_validate({"url": influxdb.url, "mode": "v1", "database": influx_db})
    with InfluxStore(config, site=influx_site) as store:
        store.write(ReadingBatch.concat([core, detail]))
    return influx_db


def concrete(query: str) -> str:
    start, end = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in VIEW)
    return (
        query.replace("$timeFilter", f"time >= '{start}' AND time < '{end}'")
        .replace("$__interval", "15m")
        .replace("$meter", DETAIL_METER)
    )


def test_every_influxql_query_returns_data_inside_the_range(
    influxdb: InfluxServer, filled_influx: str, influx_site: SiteConfig
) -> None:
    dashboards = build_all(influx_site)
    queries = [(name, t["query"]) for name, t in targets(dashboards, INFLUX_TYPE)]
    for d in dashboards.values():
        for var in d.get("templating", {}).get("list", []):
            if var.get("datasource", {}).get("type") == INFLUX_TYPE:
                queries.append((f"variable {var['name']}", var["query"]))
    assert len(queries) >= 12
    lo, hi = (int(t.timestamp() * 1000) for t in VIEW)
    for name, query in queries:
        answer = influxdb.query(concrete(query) + "", filled_influx)
        result = answer["results"][0]  # type: ignore[index]
        assert "error" not in result, f"{name}: {result['error']}\n{query}"
        series = result.get("series", [])
        values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
        assert values, f"{name}: no data\n{concrete(query)}"
        if name.startswith("variable meter"):
            assert ["meter", DETAIL_METER] in series[0]["values"]
            continue
        ms = influxdb.query(concrete(query), filled_influx)  # times as RFC 3339: compare
        for s in ms["results"][0].get("series", []):  # type: ignore[index]
            for row in s["values"]:
                t = int(datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp() * 1000)
                assert lo <= t < hi, f"{name}: a point at {row[0]} outside the range\n{query}"


def department_truth(site: SiteConfig, readings: ReadingBatch, lo: int, hi: int) -> dict:
    """Each department's mean power over [lo, hi): its top-most electricity meters' means,
    summed (a plug below a department's sub-meter is inside it, not beside it)."""
    keep = (readings.quantity == "power") & (readings.ts_ms >= lo) & (readings.ts_ms < hi)
    means = {
        m: float(np.mean(readings.value[keep & (readings.meter_id == m)]))
        for m in set(readings.meter_id[keep].tolist())
    }
    out = {}
    for tenant in site.tenants:
        tops = top_meters(
            m for m in site.meters if m.tenant == tenant.id and m.kind.value == "electricity"
        )
        if tops:
            out[tenant.id] = float(sum(means[m.id] for m in tops))
    return out


def department_panel(dashboards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    panels = dashboards["overview"]["panels"]
    return next(p for p in panels if "各部门" in p["title"])


def test_the_department_panel_sums_a_department_s_top_meters_once(
    influxdb: InfluxServer, filled_influx: str, influx_site: SiteConfig
) -> None:
    readings = generate_history(influx_site, START, END, interval="15m", seed=3).readings
    lo, hi = (int(t.timestamp() * 1000) for t in VIEW)
    truth = department_truth(influx_site, readings, lo, hi)
    (target,) = department_panel(build_all(influx_site))["targets"]
    answer = influxdb.query(concrete(target["query"]), filled_influx)
    shown = {}
    for s in answer["results"][0]["series"]:  # type: ignore[index]
        (row,) = s["values"]
        shown[s["tags"]["tenant"]] = row[-1]
    assert set(shown) == set(truth)
    for tenant, kw in truth.items():
        assert shown[tenant] == pytest.approx(kw, rel=1e-9), tenant
    plugged = [
        m.tenant
        for m in influx_site.meters
        if m.parent and m.tenant and influx_site.meter(m.parent).tenant == m.tenant
    ]
    assert "dept-01" in plugged  # the case the issue found: a plug below dept-01's sub-meter


# --- Infinity URLs against the API over a DuckDB store ---------------------------------------

METER_VIEW = ("2025-12-03T16:00:00Z", "2025-12-10T16:00:00Z")
"""Seven local days inside the API world's meter data (local midnights in Shanghai)."""
CONTRACT_VIEW = ("2025-09-02T16:00:00Z", "2025-09-09T16:00:00Z")
"""Seven local days of the contract's reporting period."""
INTERVAL_MS = 600_000
"""Grafana's $__interval_ms for seven days on a panel about 1000 px wide."""


def select(data: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        assert isinstance(data, dict), f"{part!r}: not an object: {str(data)[:200]}"
        assert part in data, f"no {part!r} in {str(data)[:200]}"
        data = data[part]
    return data


def to_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def concrete_url(url: str, world_site: SiteConfig, view: tuple[str, str]) -> str:
    lo, hi = view
    return (
        url.replace("$contract", world_site.contracts[0].id)
        .replace("$month", STATEMENT_MONTH)
        .replace("$meter", DETAIL_METER)
        .replace("${__from:date:iso}", lo)
        .replace("${__to:date:iso}", hi)
        .replace("${__from}", str(to_ms(lo)))
        .replace("${__to}", str(to_ms(hi)))
        .replace("${__interval_ms}", str(INTERVAL_MS))
    )


@pytest.fixture(scope="module")
def api_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("dash-api")
    world = make_world(tmp)
    # what the shared world lacks and the panels read: delivered cooling, the detail meter's
    # voltage, current and power factor (15-minute points over the same days)
    ts = T0 + np.arange(DAYS * 96, dtype=np.int64) * 900_000
    extra = [
        ReadingBatch.for_series(m.id, "thermal_power", ts, np.full(len(ts), 300.0))
        for m in world.site.meters
        if m.kind.value == "thermal"
    ]
    for quantity, value in (("voltage_l1", 230.0), ("current_l1", 12.0), ("power_factor", 0.95)):
        extra.append(ReadingBatch.for_series(DETAIL_METER, quantity, ts, np.full(len(ts), value)))
    world.store.write(ReadingBatch.concat(extra))
    letter = {"received_ms": 1_764_518_400_000, "source": "mqtt", "reason": "bad json"}
    (tmp / "dead-letters.jsonl").write_text(json.dumps(letter | {"payload": "{"}) + "\n")
    try:
        with TestClient(app_for(world, data_dir=tmp)) as client:
            yield world, client
    finally:
        world.store.close()
        world.keys.close()


def test_every_infinity_url_answers_with_its_fields_inside_the_time_range(api_world: Any) -> None:
    world, client = api_world
    viewer = {"Authorization": f"Bearer {world.tokens['viewer']}"}
    found = list(targets(build_all(world.site), INFINITY_TYPE))
    assert len(found) >= 25  # the meter panels too: the DuckDB site reads them from the API
    for name, target in found:
        view = CONTRACT_VIEW if "/contracts/" in target["url"] else METER_VIEW
        url = concrete_url(target["url"], world.site, view)
        assert "$" not in url, f"{name}: unsubstituted variable in {url}"
        r = client.get(url, headers=viewer)
        assert r.status_code == 200, f"{name}: {url}: {r.status_code} {r.text[:300]}"
        rows = select(r.json(), target["root_selector"])
        rows = [rows] if isinstance(rows, dict) else rows
        assert rows, f"{name}: {url} returned no rows"
        for column in target["columns"]:
            for row in rows:
                select(row, column["selector"])
        if target["url"] in SNAPSHOTS:
            continue
        lo, hi = (to_ms(t) for t in view)
        for row in rows:
            if "time" in row:
                assert lo <= to_ms(row["time"]) < hi, f"{name}: {row} outside {view}"
            if "start" in row and "end" in row:  # a period: it overlaps the range
                assert to_ms(row["start"] + "T00:00:00+08:00") < hi, f"{name}: {row}"
                assert to_ms(row["end"] + "T00:00:00+08:00") > lo, f"{name}: {row}"
        if "savings" in target["url"] and "period=day" in target["url"]:
            assert len(rows) == 7, f"{name}: {len(rows)} days on a 7-day view"


def test_the_api_department_panel_sums_a_department_s_top_meters_once(api_world: Any) -> None:
    world, client = api_world
    (target,) = department_panel(build_all(world.site))["targets"]
    url = concrete_url(target["url"], world.site, METER_VIEW)
    rows = client.get(url, headers={"Authorization": f"Bearer {world.tokens['viewer']}"}).json()
    shown = {r["tenant"]: r["value"] for r in select(rows, target["root_selector"])}
    lo, hi = (to_ms(t) for t in METER_VIEW)
    for tenant in ("dept-01", "dept-02"):
        tops = top_meters(
            m for m in world.site.meters if m.tenant == tenant and m.kind.value == "electricity"
        )
        truth = sum(float(np.mean(world.store.read_raw(m.id, "power", lo, hi).value)) for m in tops)
        assert shown[tenant] == pytest.approx(truth, rel=1e-9), tenant


# --- the Grafana client ---------------------------------------------------------------------


class RecordingGrafana:
    """A fake Grafana that records every request and knows which uids already exist."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.folders: set[str] = set()
        self.datasources: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        assert request.headers["Authorization"] == "Bearer glsa_test"
        path = request.url.path
        if request.method == "GET" and (m := re.fullmatch(r"/api/folders/(.+)", path)):
            return httpx.Response(200 if m[1] in self.folders else 404, json={})
        if request.method == "POST" and path == "/api/folders":
            self.folders.add(body["uid"])
            return httpx.Response(200, json={"uid": body["uid"]})
        if request.method == "GET" and (m := re.fullmatch(r"/api/datasources/uid/(.+)", path)):
            return httpx.Response(200 if m[1] in self.datasources else 404, json={})
        if request.method in ("POST", "PUT") and path.startswith("/api/datasources"):
            self.datasources.add(body["uid"])
            return httpx.Response(200, json={})
        if request.method == "POST" and path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            return httpx.Response(200, json={"url": f"/d/{uid}/x", "status": "success"})
        return httpx.Response(500, json={"message": "unexpected"})


def test_push_makes_exactly_these_requests_and_is_idempotent(influx_site: SiteConfig) -> None:
    fake = RecordingGrafana()
    client = GrafanaClient("http://grafana.test", "glsa_test", transport=httpx.MockTransport(fake))
    kwargs = {
        "influx_url": "http://influx:8086",
        "api_url": "http://api:8000",
        "viewer_key": "k1",
        "influx_token": "tok",
    }
    urls = push(client, influx_site, **kwargs)
    assert urls == [f"/d/{d['uid']}/x" for d in build_all(influx_site).values()]
    first = [(m, p) for m, p, _ in fake.requests]
    assert (
        first
        == [
            ("GET", "/api/folders/epcmon"),
            ("POST", "/api/folders"),
            ("GET", "/api/datasources/uid/epcmon-influxdb"),
            ("POST", "/api/datasources"),
            ("GET", "/api/datasources/uid/epcmon-api"),
            ("POST", "/api/datasources"),
        ]
        + [("POST", "/api/dashboards/db")] * 4
    )
    influx_ds = fake.requests[3][2]
    assert influx_ds["url"] == "http://influx:8086"
    assert influx_ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert influx_ds["secureJsonData"] == {"httpHeaderValue1": "Token tok"}  # InfluxDB 2.x
    api_ds = fake.requests[5][2]
    assert api_ds["url"] == "http://api:8000"
    assert api_ds["secureJsonData"] == {"httpHeaderValue1": "Bearer k1"}
    dash = fake.requests[6][2]
    assert dash["overwrite"] is True
    assert dash["folderUid"] == "epcmon"
    assert dash["dashboard"]["id"] is None

    fake.requests.clear()
    push(client, influx_site, **kwargs)
    assert [(m, p) for m, p, _ in fake.requests][:6] == [
        ("GET", "/api/folders/epcmon"),
        ("GET", "/api/datasources/uid/epcmon-influxdb"),
        ("PUT", "/api/datasources/uid/epcmon-influxdb"),
        ("GET", "/api/datasources/uid/epcmon-api"),
        ("PUT", "/api/datasources/uid/epcmon-api"),
        ("POST", "/api/dashboards/db"),
    ]


def test_push_for_a_duckdb_site_makes_the_api_the_only_datasource(site: SiteConfig) -> None:
    fake = RecordingGrafana()
    client = GrafanaClient("http://grafana.test", "glsa_test", transport=httpx.MockTransport(fake))
    push(client, site, influx_url="http://unused:8086", api_url="http://api:8000", viewer_key="k1")
    assert [(m, p) for m, p, _ in fake.requests] == [
        ("GET", "/api/folders/epcmon"),
        ("POST", "/api/folders"),
        ("GET", "/api/datasources/uid/epcmon-api"),
        ("POST", "/api/datasources"),
    ] + [("POST", "/api/dashboards/db")] * 4
    api_ds = fake.requests[3][2]
    assert api_ds["isDefault"] is True
    assert api_ds["url"] == "http://api:8000"
    for _m, _p, body in fake.requests[4:]:
        assert '"epcmon-influxdb"' not in json.dumps(body)


def test_a_grafana_error_names_the_call(site: SiteConfig) -> None:
    from core.errors import GrafanaError

    transport = httpx.MockTransport(lambda r: httpx.Response(403, text="permission denied"))
    with (
        GrafanaClient("http://grafana.test", "t", transport=transport) as client,
        pytest.raises(GrafanaError, match=r"GET /api/folders/epcmon: HTTP 403: permission denied"),
    ):
        push(client, site, influx_url="u", api_url="a", viewer_key="k")


@pytest.mark.skipif(
    not (os.environ.get("GRAFANA_URL") and os.environ.get("GRAFANA_TOKEN")),
    reason="opt-in: set GRAFANA_URL and GRAFANA_TOKEN (a service-account token) to push to a real Grafana",
)
def test_push_to_a_real_grafana(site: SiteConfig) -> None:
    url, token = os.environ["GRAFANA_URL"], os.environ["GRAFANA_TOKEN"]
    with GrafanaClient(url, token) as client:
        assert client.health().get("database") == "ok"
        kwargs = {"influx_url": site.storage.influx.url, "api_url": "http://127.0.0.1:8000"}
        urls = push(client, site, viewer_key="not-a-real-key", **kwargs)
        assert len(urls) == len(build_all(site))
        r = httpx.get(
            f"{url}/api/dashboards/uid/epcmon-overview",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200

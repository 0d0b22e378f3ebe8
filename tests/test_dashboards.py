"""Grafana as code: the committed files are what `build` makes; every InfluxQL query runs on a
real InfluxDB 1.6.7 filled with simulator history and returns data; every Infinity URL answers
from the API with the fields its panel selects; the push client's exact requests."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

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
from simulators.history import generate_history
from storage.influx import InfluxStore
from tests.api_fixtures import STATEMENT_MONTH, app_for, make_world
from tests.conftest import InfluxServer

ROOT = Path(__file__).resolve().parents[1]
SITE_FILE = ROOT / "sites/luan-admin-center.toml"
DETAIL_METER = "E-D01"
"""The meter the meter-detail dashboard's `$meter` variable is set to in these tests."""


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load(SITE_FILE)


def targets(dashboards: dict[str, dict[str, Any]], ds_type: str) -> Iterator[tuple[str, dict]]:
    for stem, d in dashboards.items():
        for panel in d["panels"]:
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == ds_type:
                    yield f"{stem}: {panel['title']} [{target['refId']}]", target


def test_committed_files_equal_what_build_makes_now(site: SiteConfig) -> None:
    for rel, text in render(site).items():
        path = ROOT / "deploy/grafana" / rel
        assert path.exists(), f"{rel} is not committed: run `epcmon dashboards build`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{rel} is stale: run `epcmon dashboards build`"
        )


def test_build_command_writes_the_files(tmp_path: Path) -> None:
    assert main(["dashboards", "build", "--site", str(SITE_FILE), "--out", str(tmp_path)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == sorted(render(load(SITE_FILE)))
    for p in tmp_path.rglob("*.json"):
        assert json.loads(p.read_text())["uid"].startswith("epcmon-")


def test_dashboards_are_bilingual_and_every_panel_has_a_query(site: SiteConfig) -> None:
    for stem, d in build_all(site).items():
        for panel in d["panels"]:
            assert " / " in panel["title"], f"{stem}: {panel['title']!r} is not zh / en"
            if panel["type"] != "row":
                assert panel["targets"], f"{stem}: {panel['title']!r} has no query"


# --- InfluxQL against a real InfluxDB 1.6.7 ------------------------------------------------

START = datetime(2025, 7, 14, tzinfo=UTC)  # a summer working week: the chillers run
END = START + timedelta(days=2)


@pytest.fixture
def filled_influx(influxdb: InfluxServer, influx_db: str, site: SiteConfig) -> str:
    core = generate_history(site, START, END, interval="15m", seed=3).readings
    detail = generate_history(
        site, START, END, interval="15m", seed=3, meters=[DETAIL_METER], quantities="all"
    ).readings
    config = InfluxConfig.model_validate({"url": influxdb.url, "mode": "v1", "database": influx_db})
    with InfluxStore(config, site=site) as store:
        store.write(ReadingBatch.concat([core, detail]))
    return influx_db


def concrete(query: str) -> str:
    start, end = START.strftime("%Y-%m-%dT%H:%M:%SZ"), END.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        query.replace("$timeFilter", f"time >= '{start}' AND time < '{end}'")
        .replace("$__interval", "15m")
        .replace("$meter", DETAIL_METER)
    )


def test_every_influxql_query_returns_data(
    influxdb: InfluxServer, filled_influx: str, site: SiteConfig
) -> None:
    dashboards = build_all(site)
    queries = [(name, t["query"]) for name, t in targets(dashboards, INFLUX_TYPE)]
    for d in dashboards.values():
        for var in d.get("templating", {}).get("list", []):
            if var.get("datasource", {}).get("type") == INFLUX_TYPE:
                queries.append((f"variable {var['name']}", var["query"]))
    assert len(queries) >= 12
    for name, query in queries:
        answer = influxdb.query(concrete(query), filled_influx)
        result = answer["results"][0]  # type: ignore[index]
        assert "error" not in result, f"{name}: {result['error']}\n{query}"
        series = result.get("series", [])
        values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
        assert values, f"{name}: no data\n{concrete(query)}"
        if name.startswith("variable meter"):
            assert ["meter", DETAIL_METER] in series[0]["values"]


# --- Infinity URLs against the API ---------------------------------------------------------


def select(data: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        assert isinstance(data, dict), f"{part!r}: not an object: {str(data)[:200]}"
        assert part in data, f"no {part!r} in {str(data)[:200]}"
        data = data[part]
    return data


def test_every_infinity_url_answers_with_the_fields_its_panel_selects(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("dash-api")
    world = make_world(tmp)
    letter = {"received_ms": 1_764_518_400_000, "source": "mqtt", "reason": "bad json"}
    (tmp / "dead-letters.jsonl").write_text(json.dumps(letter | {"payload": "{"}) + "\n")
    try:
        with TestClient(app_for(world, data_dir=tmp)) as client:
            viewer = {"Authorization": f"Bearer {world.tokens['viewer']}"}
            found = list(targets(build_all(world.site), INFINITY_TYPE))
            assert len(found) >= 12
            for name, target in found:
                url = (
                    target["url"]
                    .replace("$contract", world.site.contracts[0].id)
                    .replace("$month", STATEMENT_MONTH)
                    .replace("${__from:date:iso}", "2025-12-01T00:00:00Z")
                    .replace("${__to:date:iso}", "2025-12-14T00:00:00Z")
                )
                assert "$" not in url, f"{name}: unsubstituted variable in {url}"
                r = client.get(url, headers=viewer)
                assert r.status_code == 200, f"{name}: {url}: {r.status_code} {r.text[:300]}"
                rows = select(r.json(), target["root_selector"])
                rows = [rows] if isinstance(rows, dict) else rows
                assert rows, f"{name}: {url} returned no rows"
                for column in target["columns"]:
                    for row in rows:
                        select(row, column["selector"])
    finally:
        world.store.close()
        world.keys.close()


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


def test_push_makes_exactly_these_requests_and_is_idempotent(site: SiteConfig) -> None:
    fake = RecordingGrafana()
    client = GrafanaClient("http://grafana.test", "glsa_test", transport=httpx.MockTransport(fake))
    kwargs = {"influx_url": "http://influx:8086", "api_url": "http://api:8000", "viewer_key": "k1"}
    urls = push(client, site, **kwargs)
    assert urls == [f"/d/{d['uid']}/x" for d in build_all(site).values()]
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
    api_ds = fake.requests[5][2]
    assert api_ds["url"] == "http://api:8000"
    assert api_ds["secureJsonData"] == {"httpHeaderValue1": "Bearer k1"}
    dash = fake.requests[6][2]
    assert dash["overwrite"] is True
    assert dash["folderUid"] == "epcmon"
    assert dash["dashboard"]["id"] is None

    fake.requests.clear()
    push(client, site, **kwargs)
    assert [(m, p) for m, p, _ in fake.requests][:6] == [
        ("GET", "/api/folders/epcmon"),
        ("GET", "/api/datasources/uid/epcmon-influxdb"),
        ("PUT", "/api/datasources/uid/epcmon-influxdb"),
        ("GET", "/api/datasources/uid/epcmon-api"),
        ("PUT", "/api/datasources/uid/epcmon-api"),
        ("POST", "/api/dashboards/db"),
    ]


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

"""The API over a real store: resources, access control, limits, errors, metrics."""

from __future__ import annotations

import logging
import os
import re

import pytest
from fastapi.testclient import TestClient

from alarms.store import default_path
from api.keys import Role
from core.health import Health
from tests.alarm_fixtures import (
    BOUNDARY_ALARM,
    BUILDING_ALARM,
    CLEARED_ALARM,
    PART_ALARM,
    seed_alarms,
)
from tests.api_fixtures import DAYS, T0, app_for, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("api"))
    seed_alarms(default_path(w.site, w.statements.path), T0 + DAYS * 86_400_000)
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def client(world):
    with TestClient(app_for(world)) as c:
        yield c


def auth(world, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


START, END = "2025-12-01T00:00:00Z", "2025-12-14T00:00:00Z"
MS = (1_764_547_200_000, 1_765_670_400_000)
"""START and END in epoch milliseconds (Grafana's `${__from}`, `${__to}`)."""

# (path, params) of every building-data route, with real ids
READER_ROUTES = [
    ("/api/v1/site", {}),
    ("/api/v1/buildings", {}),
    ("/api/v1/buildings/main", {}),
    ("/api/v1/tenants", {}),
    ("/api/v1/tenants/dept-01", {}),
    ("/api/v1/meters", {}),
    ("/api/v1/meters/E-D01", {}),
    ("/api/v1/meters/E-D01/latest", {}),
    (
        "/api/v1/meters/E-D01/series",
        {"quantity": "power", "start": START, "end": END, "every": "1h"},
    ),
    ("/api/v1/consumption/meters/E-D01", {"start": START, "end": END}),
    ("/api/v1/consumption/tenants/dept-01", {"start": START, "end": END}),
    ("/api/v1/consumption/buildings/main", {"start": START, "end": END, "every": "1mo"}),
    ("/api/v1/bills", {"month": "2025-12"}),
    ("/api/v1/bills", {"month": "2025-12", "format": "csv"}),
    ("/api/v1/intensity", {}),
    ("/api/v1/grafana/series", {"quantity": "power", "from": MS[0], "to": MS[1]}),
    ("/api/v1/grafana/latest", {"quantity": "power", "from": MS[0], "to": MS[1]}),
    ("/api/v1/grafana/tenants", {"from": MS[0], "to": MS[1]}),
    ("/api/v1/operations/meters", {}),
    ("/api/v1/operations/dead-letters", {}),
    ("/api/v1/operations/spool", {}),
    ("/api/v1/devices/unconfigured", {}),
    ("/metrics", {}),
]
AUTHOR_ROUTES = [
    ("/api/v1/reports", {}),
    ("/api/v1/reports/2025-12.xlsx", {}),
    ("/api/v1/reports/2025-12.pdf", {}),
]
"""The monthly report: admins and engineers only (viewer keys are dashboards' keys)."""
ANY_KEY_ROUTES = [
    ("/api/v1/whoami", {}),
    ("/api/v1/alarms", {}),
    ("/api/v1/alarms", {"state": "all", "since": "2025-12-01T00:00:00Z", "limit": 5}),
    (f"/api/v1/alarms/{BOUNDARY_ALARM}", {}),
]
"""Routes every role may call (vendors included): who the key is, no building data; alarms
(a vendor's scoped to its contracts' boundaries)."""
WRITE_ROUTES = [f"/api/v1/alarms/{PART_ALARM}/ack"]
"""POST routes: admins and engineers only."""


def test_every_route_is_listed_in_the_security_matrix(client):
    spec = client.get("/openapi.json").json()
    paths = {
        p
        for p in spec["paths"]
        if (p.startswith("/api/v1/") and "contracts" not in p) or p == "/metrics"
    }
    listed = {
        re.sub(r"/(main|dept-01|E-D01|2025-12|\d+)(?=/|\.|$)", lambda m: "/{x}", p)
        for p in [p for p, _ in READER_ROUTES + AUTHOR_ROUTES + ANY_KEY_ROUTES] + WRITE_ROUTES
    }
    normalised = {re.sub(r"\{[^}]+\}", "{x}", p) for p in paths}
    assert normalised <= listed, f"routes missing from the matrix: {normalised - listed}"


@pytest.mark.parametrize(("path", "params"), READER_ROUTES, ids=[p for p, _ in READER_ROUTES])
def test_security_matrix(world, client, path, params):
    assert client.get(path, params=params).status_code == 401  # no key
    assert (
        client.get(
            path, params=params, headers={"Authorization": "Bearer epc_00000000_forged"}
        ).status_code
        == 401
    )
    for role in ("admin", "engineer", "viewer"):
        r = client.get(path, params=params, headers=auth(world, role))
        assert r.status_code == 200, (role, r.text)
    r = client.get(path, params=params, headers=auth(world, "vendor"))
    assert r.status_code == 403  # no raw building data for the vendor
    assert "vendor" in r.json()["detail"]


@pytest.mark.parametrize(("path", "params"), AUTHOR_ROUTES, ids=[p for p, _ in AUTHOR_ROUTES])
def test_report_matrix(world, client, path, params):
    assert client.get(path, params=params).status_code == 401  # no key
    for role in ("admin", "engineer"):
        r = client.get(path, params=params, headers=auth(world, role))
        assert r.status_code == 200, (role, r.text[:300])
    for role in ("viewer", "vendor"):
        r = client.get(path, params=params, headers=auth(world, role))
        assert r.status_code == 403
        assert role in r.json()["detail"]


@pytest.mark.parametrize(("path", "params"), ANY_KEY_ROUTES, ids=[p for p, _ in ANY_KEY_ROUTES])
def test_any_key_matrix(world, client, path, params):
    assert client.get(path, params=params).status_code == 401  # no key
    forged = {"Authorization": "Bearer epc_00000000_forged"}
    assert client.get(path, params=params, headers=forged).status_code == 401
    for role in ("admin", "engineer", "viewer", "vendor"):
        r = client.get(path, params=params, headers=auth(world, role))
        assert r.status_code == 200, (role, r.text)
        assert world.tokens[role] not in r.text


def test_acknowledge_is_for_admin_and_engineer_keys_and_records_who(world, client):
    url = f"/api/v1/alarms/{PART_ALARM}/ack"
    assert client.post(url).status_code == 401  # no key
    forged = {"Authorization": "Bearer epc_00000000_forged"}
    assert client.post(url, headers=forged).status_code == 401
    for role in ("viewer", "vendor"):
        r = client.post(url, headers=auth(world, role))
        assert r.status_code == 403, role
        assert role in r.json()["detail"]
    assert (
        client.get(f"/api/v1/alarms/{PART_ALARM}", headers=auth(world, "admin")).json()[
            "acknowledged_by"
        ]
        is None
    )  # refused attempts changed nothing
    engineer = world.keys.authenticate(world.tokens["engineer"])
    r = client.post(url, headers=auth(world, "engineer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acknowledged_by"] == f"key {engineer.key_id}"
    assert body["acknowledged"].endswith("Z")
    assert body["state"] == "active"  # acknowledging does not clear it
    again = client.post(url, headers=auth(world, "admin"))  # the first acknowledgement stands
    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == f"key {engineer.key_id}"
    history = client.get(f"/api/v1/alarms/{PART_ALARM}", headers=auth(world, "viewer")).json()
    assert [e["kind"] for e in history["history"]] == ["raised", "acknowledged"]
    assert history["history"][1]["by"] == f"key {engineer.key_id}"
    assert client.post("/api/v1/alarms/999/ack", headers=auth(world, "admin")).status_code == 404
    assert world.tokens["engineer"] not in r.text


def test_alarms_are_listed_active_first_and_scoped_for_the_vendor(world, client):
    every = client.get("/api/v1/alarms", headers=auth(world, "engineer")).json()
    assert every["total"] == 3
    assert [a["id"] for a in every["alarms"]] == [PART_ALARM, BUILDING_ALARM, BOUNDARY_ALARM]
    first = every["alarms"][0]
    assert first["severity"] == "critical"
    assert first["category"] == "data"
    assert first["raised"].endswith("Z")
    vendor = client.get("/api/v1/alarms", params={"state": "all"}, headers=auth(world, "vendor"))
    assert [a["id"] for a in vendor.json()["alarms"]] == [BOUNDARY_ALARM]  # its boundary only
    assert vendor.json()["total"] == 1
    for hidden in (BUILDING_ALARM, PART_ALARM, 999):  # not its own, or none: the same 404
        r = client.get(f"/api/v1/alarms/{hidden}", headers=auth(world, "vendor"))
        assert r.status_code == 404
        assert r.json()["detail"] == f"no alarm {hidden}"
    cleared = client.get("/api/v1/alarms", params={"state": "cleared"},
                         headers=auth(world, "viewer")).json()  # fmt: skip
    assert [(a["id"], a["state"]) for a in cleared["alarms"]] == [(CLEARED_ALARM, "cleared")]
    assert cleared["alarms"][0]["cleared"].endswith("Z")
    paged = client.get("/api/v1/alarms", params={"limit": 1, "offset": 1},
                       headers=auth(world, "viewer")).json()  # fmt: skip
    assert [a["id"] for a in paged["alarms"]] == [BUILDING_ALARM]
    assert paged["total"] == 3
    assert client.get("/api/v1/alarms", params={"state": "bogus"},
                      headers=auth(world, "viewer")).status_code == 422  # fmt: skip


def test_cors_never_opens_the_acknowledge_route(world):
    site = world.site.model_copy(
        update={
            "api": world.site.api.model_copy(update={"cors_origins": ("https://grafana.example",)})
        }
    )
    from api.app import create_app

    app = create_app(site, world.store, keys=world.keys, statements=world.statements)
    with TestClient(app) as c:
        origin = {"Origin": "https://grafana.example"}
        get = c.options(
            "/api/v1/alarms", headers={**origin, "Access-Control-Request-Method": "GET"}
        )
        assert get.headers.get("access-control-allow-origin") == "https://grafana.example"
        post = c.options(
            f"/api/v1/alarms/{PART_ALARM}/ack",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        assert post.status_code == 400  # the preflight fails: a browser never sends the POST
        assert "POST" not in post.headers.get("access-control-allow-methods", "")


def test_revoked_key_is_refused(world, client):
    key_id, key = world.keys.create(Role.VIEWER)
    h = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/site", headers=h).status_code == 200
    world.keys.revoke(key_id)
    assert client.get("/api/v1/site", headers=h).status_code == 401


def test_x_api_key_header_works_too(world, client):
    assert (
        client.get("/api/v1/site", headers={"X-API-Key": world.tokens["viewer"]}).status_code == 200
    )


def test_site_buildings_tenants(world, client):
    h = auth(world, "viewer")
    site = client.get("/api/v1/site", headers=h).json()
    assert site["tenants"] == len(world.site.tenants)
    assert site["floor_area_m2"] == pytest.approx(
        sum(b.floor_area_m2 for b in world.site.buildings)
    )
    tenant = client.get("/api/v1/tenants/dept-01", headers=h).json()
    assert "E-D01" in tenant["meters"]
    assert client.get("/api/v1/tenants/nope", headers=h).status_code == 404


def test_series_raw_bucketed_and_csv(world, client):
    h = auth(world, "viewer")
    raw = client.get(
        "/api/v1/meters/E-D01/series",
        headers=h,
        params={"quantity": "power", "start": START, "end": "2025-12-02T00:00:00Z"},
    ).json()
    assert len(raw["points"]) == 96  # 15-minute data, one day
    assert raw["points"][0]["time"] == "2025-12-01T00:00:00Z"
    daily = client.get(
        "/api/v1/meters/E-D01/series",
        headers=h,
        params={"quantity": "power", "start": START, "end": END, "every": "1d", "agg": "max"},
    ).json()
    assert daily["points"][0]["time"].endswith("T16:00:00Z")  # local midnight, Asia/Shanghai
    csv = client.get(
        "/api/v1/meters/E-D01/series",
        headers=h,
        params={
            "quantity": "power",
            "start": START,
            "end": "2025-12-02T00:00:00Z",
            "format": "csv",
        },
    )
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == "time,meter,quantity,value,unit"
    assert len(lines) == 97


def test_latest_values(world, client):
    latest = client.get("/api/v1/meters/E-D01/latest", headers=auth(world, "viewer")).json()
    assert {r["quantity"] for r in latest} == {"power", "energy_import"}
    assert all(r["time"] == "2025-12-14T15:45:00Z" for r in latest)


def test_consumption_levels_add_up(world, client):
    h = auth(world, "engineer")
    params = {"start": START, "end": END, "every": "1d"}
    meter = client.get("/api/v1/consumption/meters/E-D01", headers=h, params=params).json()
    tenant = client.get("/api/v1/consumption/tenants/dept-01", headers=h, params=params).json()
    assert meter["total"] > 0
    assert tenant["meters"] == ["E-D01"]  # the department's plug below its sub-meter is not added
    assert tenant["total"] == pytest.approx(meter["total"])
    building = client.get("/api/v1/consumption/buildings/main", headers=h, params=params).json()
    assert building["total"] > tenant["total"]
    assert not any(
        m.startswith("E-TR") for m in building["meters"]
    )  # incomers feed several buildings


def test_limits_and_validation(world, client):
    h = auth(world, "viewer")
    too_many = client.get(
        "/api/v1/meters/E-D01/series",
        headers=h,
        params={"quantity": "power", "start": "2020-01-01T00:00:00Z", "end": END, "every": "1m"},
    )
    assert too_many.status_code == 400
    assert "every=" in too_many.json()["detail"]
    too_long = client.get(
        "/api/v1/meters/E-D01/series",
        headers=h,
        params={"quantity": "power", "start": "1990-01-01T00:00:00Z", "end": END, "every": "1d"},
    )
    assert too_long.status_code == 400
    assert "days" in too_long.json()["detail"]
    bad = client.get(
        "/api/v1/meters/E-D01/series", headers=h, params={"quantity": "power", "every": "5x"}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "every"]
    missing = client.get("/api/v1/meters/E-D01/series", headers=h)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["query", "quantity"]
    assert (
        client.get(
            "/api/v1/meters/E-D01/series", headers=h, params={"quantity": "speed"}
        ).status_code
        == 404
    )


def test_rate_limit_per_key(world):
    site = world.site.model_copy(
        update={"api": world.site.api.model_copy(update={"rate_limit_per_s": 0.5, "rate_burst": 3})}
    )
    from api.app import create_app

    with TestClient(create_app(site, world.store, keys=world.keys)) as c:
        codes = [c.get("/api/v1/site", headers=auth(world, "viewer")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/api/v1/site", headers=auth(world, "viewer"))
        assert int(r.headers["Retry-After"]) >= 1
        assert c.get("/api/v1/site", headers=auth(world, "engineer")).status_code == 200  # per key


def test_cors_is_closed_by_default(world, client):
    r = client.options(
        "/api/v1/site",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_healthz_needs_no_key_and_reveals_nothing(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "site": "luan-admin-center",
        "pid": os.getpid(),  # which process answered (several may serve one address)
        "store": "ok",
        "problems": {},
        "parts": {},
    }


def test_metrics_in_prometheus_format(world, client):
    client.get("/api/v1/site", headers=auth(world, "viewer"))
    text = client.get("/metrics", headers=auth(world, "viewer")).text
    assert 'epcmon_http_request_seconds_count{route="/api/v1/site",status="200"}' in text
    assert 'epcmon_alarms_active{rule="part_restarting",severity="critical"} 1.0' in text
    assert 'epcmon_alarms_active{rule="meter_offline",severity="warning"} 1.0' in text


def test_keys_never_appear_in_logs_or_responses(world, client, caplog):
    caplog.set_level(logging.DEBUG)
    for role, key in world.tokens.items():
        for path, params in READER_ROUTES[:6]:
            r = client.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
            assert key not in r.text, role
        assert key not in caplog.text
        assert key.encode() not in world.keys.path.read_bytes()  # stored hashed
    openapi = client.get("/openapi.json").text
    assert not any(key in openapi for key in world.tokens.values())


def test_openapi_documents_auth_and_examples(client):
    spec = client.get("/openapi.json").json()
    series = spec["paths"]["/api/v1/meters/{meter_id}/series"]["get"]
    assert {"401", "403", "404"} <= set(series["responses"])
    assert any(
        (p["name"] == "quantity" and p["schema"].get("examples")) or p.get("examples")
        for p in series["parameters"]
    )


def test_store_days_match_fixture():
    assert DAYS == 14
    assert T0 % 86_400_000 == 57_600_000  # 16:00 UTC


# -- contracts: what the vendor may see ------------------------------------------------------

MONTH = "2025-09"
CONTRACT_ROUTES = [
    ("/api/v1/contracts/{c}", {}),
    ("/api/v1/contracts/{c}/baseline", {}),
    ("/api/v1/contracts/{c}/savings", {"period": "month"}),
    ("/api/v1/contracts/{c}/savings", {"period": "day", "format": "csv"}),
    ("/api/v1/contracts/{c}/statements", {}),
    (f"/api/v1/contracts/{{c}}/statements/{MONTH}", {}),
    (f"/api/v1/contracts/{{c}}/statements/{MONTH}", {"format": "csv"}),
    (f"/api/v1/contracts/{{c}}/statements/{MONTH}/plot.png", {}),
    ("/api/v1/grafana/contracts/{c}/savings", {"from": 1_756_656_000_000, "to": 1_759_248_000_000}),
]


@pytest.mark.parametrize(
    ("path", "params"), CONTRACT_ROUTES, ids=[p + str(q) for p, q in CONTRACT_ROUTES]
)
def test_contract_matrix(world, client, path, params):
    own, other = world.site.contracts[0].id, world.site.contracts[1].id
    url = path.format(c=own)
    assert client.get(url, params=params).status_code == 401
    for role in ("admin", "engineer", "viewer", "vendor"):
        r = client.get(url, params=params, headers=auth(world, role))
        assert r.status_code == 200, (role, r.text[:300])
    # the vendor probing another vendor's contract, or one that does not exist: the same 404
    probe = client.get(path.format(c=other), params=params, headers=auth(world, "vendor"))
    missing = client.get(path.format(c="epc-nope"), params=params, headers=auth(world, "vendor"))
    assert probe.status_code == missing.status_code == 404
    assert probe.json()["detail"] == f"no contract {other!r}"
    assert other not in missing.text
    # the building's people see every contract
    assert client.get(
        path.format(c=other), params=params, headers=auth(world, "engineer")
    ).status_code in (200, 422, 404)


def test_contract_list_is_filtered_for_the_vendor(world, client):
    def ids(role):
        return [c["id"] for c in client.get("/api/v1/contracts", headers=auth(world, role)).json()]

    assert ids("viewer") == [c.id for c in world.site.contracts]
    assert ids("vendor") == [world.site.contracts[0].id]


def test_contract_savings_and_statement_agree(world, client):
    own = world.site.contracts[0].id
    h = auth(world, "vendor")
    months = client.get(
        f"/api/v1/contracts/{own}/savings", params={"period": "month"}, headers=h
    ).json()
    september = next(m for m in months if m["start"] == "2025-09-01")
    assert september["avoided"] > 0
    assert september["u90"] > september["u68"] > 0
    assert months[-1]["cumulative"] == pytest.approx(sum(m["avoided"] for m in months))
    stmt = client.get(f"/api/v1/contracts/{own}/statements/{MONTH}", headers=h).json()
    assert stmt["numbers"]["month"]["avoided"] == pytest.approx(september["avoided"], rel=1e-6)
    assert stmt["model"]  # the fitted model's JSON, for the auditor
    png = client.get(f"/api/v1/contracts/{own}/statements/{MONTH}/plot.png", headers=h)
    assert png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    missing = client.get(f"/api/v1/contracts/{own}/statements/2025-08", headers=h)
    assert missing.status_code == 404
    assert "the service writes it" in missing.json()["detail"]


def test_no_baseline_is_a_clear_422(world, client):
    other = world.site.contracts[1].id
    r = client.get(f"/api/v1/contracts/{other}/savings", headers=auth(world, "engineer"))
    assert r.status_code == 422
    assert "epcmon baseline fit" in r.json()["detail"]


def test_every_contract_route_is_in_the_matrix(client):
    spec = client.get("/openapi.json").json()
    paths = {
        re.sub(r"\{[^}]+\}", "{x}", p)
        for p in spec["paths"]
        if p.startswith(("/api/v1/contracts/", "/api/v1/grafana/contracts/"))
    }
    listed = {re.sub(r"\{c\}", "{x}", p).replace(MONTH, "{x}") for p, _ in CONTRACT_ROUTES}
    assert paths <= listed, paths - listed


@pytest.mark.parametrize(
    "ts",
    [
        [1722441600000 + i * 3_600_000 for i in range(50)],
        [-1500, 0, 1999, 86_400_000 * 20_000 + 123],
        [951782400000, 951868800000],  # 2000-02-29, 2000-03-01
    ],
)
def test_iso_times_match_numpy(ts):
    import numpy as np

    from api.common import iso_times

    arr = np.array(ts, dtype=np.int64)
    unit = "s" if not np.any(arr % 1000) else "ms"
    expected = [
        str(t) + "Z" for t in np.datetime_as_string(arr.astype("datetime64[ms]"), unit=unit)
    ]
    assert iso_times(arr) == expected


def test_series_cache_sees_new_data_at_once(world, client):
    from core.readings import ReadingBatch

    h = auth(world, "viewer")
    params = {"quantity": "power", "start": "2025-12-14T15:00:00Z", "end": "2025-12-15T16:00:00Z"}
    first = client.get("/api/v1/meters/E-D02/series", headers=h, params=params).json()["points"]
    again = client.get("/api/v1/meters/E-D02/series", headers=h, params=params).json()["points"]
    assert again == first  # served again (from the cache)
    new_ts = T0 + DAYS * 86_400_000 + 3_600_000  # after the newest point
    world.store.write(ReadingBatch.for_series("E-D02", "power", [new_ts], [42.0]))
    after = client.get("/api/v1/meters/E-D02/series", headers=h, params=params).json()["points"]
    assert len(after) == len(first) + 1
    assert after[-1]["value"] == 42.0


def test_savings_cache_serves_stale_while_it_refreshes(world):
    import time as _time

    from api.savings_cache import SavingsCache

    cache = SavingsCache()
    contract = world.site.contracts[0]
    baseline = cache.baseline(world.statements, contract.id, "electricity")
    first = cache.get(world.site, world.store, contract, "electricity", baseline)
    assert cache.get(world.site, world.store, contract, "electricity", baseline) is first  # fresh
    key = (contract.id, "electricity", baseline.fitted_at)
    cache._entries[key] = (_time.monotonic() - 3600, first)  # make it stale
    assert cache.get(world.site, world.store, contract, "electricity", baseline) is first  # at once
    with cache._key_locks[key]:  # the refresh holds this lock until it is done
        pass
    refreshed = cache._entries[key][1]
    assert refreshed is not first
    assert refreshed.total.avoided == pytest.approx(first.total.avoided)


def test_warm_caches_computes_the_savings(world):
    from api.app import warm_caches

    app = app_for(world)
    assert warm_caches(app) == 1  # the contract with a baseline; the other has none


def test_healthz_names_what_is_down_and_metrics_count_it(world):
    """A part down or the store degraded: 503 naming it; back: 200 (issue 12)."""
    health = Health()
    app = app_for(world, health=health)
    health.part_state("mqtt", "running")
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        health.part_state("mqtt", "restarting", "RecursionError: maximum recursion depth")
        health.degrade("store", "disk full; ingest paused")
        r = c.get("/healthz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "degraded"
        assert body["store"] == "degraded: disk full; ingest paused"
        assert body["problems"] == {
            "part mqtt": "restarting: RecursionError: maximum recursion depth",
            "store": "disk full; ingest paused",
        }
        assert body["parts"]["mqtt"] == {
            "state": "restarting",
            "restarts": 1,
            "last_error": "RecursionError: maximum recursion depth",
        }
        text = c.get("/metrics", headers=auth(world, "viewer")).text
        assert 'epcmon_part_restarts_total{part="mqtt"} 1.0' in text
        assert 'epcmon_part_up{part="mqtt"} 0.0' in text
        assert 'epcmon_degraded{condition="store"} 1.0' in text
        health.part_state("mqtt", "running")
        health.recover("store")
        assert c.get("/healthz").json()["status"] == "ok"

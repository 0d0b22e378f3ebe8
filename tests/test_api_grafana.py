"""/api/v1/grafana/*: what Grafana's Infinity datasource reads for a DuckDB site, over the real
API and a real DuckDB store: bucket widths from Grafana's interval (widened, never refused),
long rows sorted by time, sums by kind and in all, counts that show gaps as 0, the total load,
department means over top-most meters, contract savings cut to the range."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.routes.grafana import width_for
from storage.base import Agg, Every
from tests.api_fixtures import DAYS, T0, ApiWorld, app_for, make_world

DAY = 86_400_000


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    w = make_world(tmp_path_factory.mktemp("api-grafana"))
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def client(world: ApiWorld) -> Iterator[TestClient]:
    with TestClient(app_for(world)) as c:
        c.headers["Authorization"] = f"Bearer {world.tokens['viewer']}"
        yield c


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def get(client: TestClient, path: str, **params: Any) -> Any:
    r = client.get(f"/api/v1/grafana/{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_series_follow_grafana_s_interval_in_long_rows_sorted_by_time(client, world):
    lo, hi = T0 + DAY, T0 + 3 * DAY
    rows = get(
        client,
        "series",
        quantity="power",
        meter=["E-D01", "E-PLUG-D01"],
        **{"from": lo, "to": hi, "interval_ms": 3_600_000},
    )
    assert {r["series"] for r in rows} == {"E-D01", "E-PLUG-D01"}
    times = [ms(r["time"]) for r in rows]
    assert times == sorted(times)  # Infinity's long-to-wide needs them in time order
    assert all(lo <= t < hi for t in times)
    assert len(rows) == 2 * 48
    truth = world.store.aggregate("E-D01", "power", lo, lo + 3_600_000, Every.parse("1h"), Agg.MEAN)
    first = next(r for r in rows if r["series"] == "E-D01")
    assert first["value"] == pytest.approx(float(truth.value[0]))


def test_a_narrow_interval_on_a_wide_range_is_widened_not_refused(client, world):
    lo, hi = T0, T0 + DAYS * DAY
    rows = get(
        client,
        "series",
        quantity="power",
        meter="E-D01",
        **{"from": lo, "to": hi, "interval_ms": 1},
    )
    times = np.diff([ms(r["time"]) for r in rows])
    assert times.min() >= 10_000  # 10 s at least; 15-minute data: one row per point
    assert len(rows) == DAYS * 96
    # at most max_points buckets: 14 days in 100 are 6 h wide
    small = world.site.model_copy(
        update={"api": world.site.api.model_copy(update={"max_points": 100})}
    )
    assert width_for(small, lo, hi, 600_000) == Every.parse("6h")
    assert width_for(small, lo, hi, 86_400_000) == Every(1, "d")
    assert width_for(world.site, lo, hi, 90_000) == Every.parse("2m")  # whole widths


def test_sums_by_kind_and_in_all(client, world):
    lo, hi = T0 + DAY, T0 + 2 * DAY
    meters = ["E-D01", "E-PLUG-D01"]
    each = get(
        client,
        "series",
        quantity="power",
        meter=meters,
        **{"from": lo, "to": hi, "interval_ms": 3_600_000},
    )
    summed = get(
        client,
        "series",
        quantity="power",
        meter=meters,
        by="sum",
        **{"from": lo, "to": hi, "interval_ms": 3_600_000},
    )
    assert {r["series"] for r in summed} == {"sum"}
    by_time: dict[str, float] = {}
    for r in each:
        by_time[r["time"]] = by_time.get(r["time"], 0.0) + r["value"]
    assert {r["time"]: r["value"] for r in summed} == pytest.approx(by_time)
    kinds = get(
        client,
        "series",
        quantity="power",
        agg="count",
        by="kind",
        **{"from": lo, "to": hi, "interval_ms": 3_600_000},
    )
    electric = sum(1 for m in world.site.meters if m.kind.value == "electricity")
    assert {r["series"] for r in kinds} == {"electricity"}
    assert all(r["value"] == 4 * electric for r in kinds)  # four 15-minute points an hour


def test_a_count_shows_a_gap_as_zero(client, world):
    """Hours after the data ends: a count of 0 per hour, not missing rows."""
    lo, hi = T0 + DAYS * DAY - 2 * 3_600_000, T0 + DAYS * DAY + 3 * 3_600_000
    rows = get(
        client,
        "series",
        quantity="power",
        meter="E-D01",
        agg="count",
        **{"from": lo, "to": hi, "interval_ms": 3_600_000},
    )
    assert [r["value"] for r in rows] == [4, 4, 0, 0, 0]


def test_latest_sums_each_meter_s_last_value_in_the_range(client, world):
    lo, hi = T0 + DAY, T0 + DAY + 3_600_000 + 1
    meters = ["E-D01", "E-PLUG-D01"]
    (row,) = get(client, "latest", quantity="power", meter=meters, **{"from": lo, "to": hi})
    lasts = [world.store.read_raw(m, "power", lo, hi) for m in meters]
    assert row["value"] == pytest.approx(sum(float(s.value[-1]) for s in lasts))
    assert ms(row["time"]) == T0 + DAY + 3_600_000
    assert row["meters"] == meters
    empty = get(
        client, "latest", quantity="power", meter=meters, **{"from": T0 - 2 * DAY, "to": T0 - DAY}
    )
    assert empty == []


def test_tenants_sum_their_top_meters_means(client, world):
    lo, hi = T0 + DAY, T0 + 4 * DAY
    rows = {r["tenant"]: r for r in get(client, "tenants", **{"from": lo, "to": hi})}
    assert rows["dept-01"]["meters"] == ["E-D01"]  # its plug is below E-D01
    truth = float(np.mean(world.store.read_raw("E-D01", "power", lo, hi).value))
    assert rows["dept-01"]["value"] == pytest.approx(truth)


def test_contract_savings_are_cut_to_the_range(client, world):
    own = world.site.contracts[0].id
    path = f"contracts/{own}/savings"
    week = {"from": ms("2025-09-02T16:00:00Z"), "to": ms("2025-09-09T16:00:00Z")}
    days = get(client, path, period="day", **week)
    assert [d["period"] for d in days] == [f"2025-09-{d:02d}" for d in range(3, 10)]
    months = get(client, path, period="month", **week)
    assert [m["period"] for m in months] == ["2025-09"]
    everything = client.get(f"/api/v1/contracts/{own}/savings", params={"period": "month"}).json()
    september = next(m for m in everything if m["period"] == "2025-09")
    assert months[0]["cumulative"] == pytest.approx(september["cumulative"])  # from the start


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"from": 2, "to": 1}, "start must be before end"),
        ({"from": 0, "to": 10**13}, "exceeds"),
        ({"from": 0, "to": 1, "meter": "nope"}, "nope"),
        ({"from": 0, "to": 1, "quantity": "nope"}, "quantity"),
    ],
)
def test_bad_requests_say_what(client, params, detail):
    r = client.get("/api/v1/grafana/series", params={"quantity": "power"} | params)
    assert r.status_code in (400, 404), r.text
    assert detail in r.json()["detail"]

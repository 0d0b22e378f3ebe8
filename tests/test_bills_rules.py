"""Each apportionment rule on a small hand-made site where the answer is known, the bills
priced by the hour through a real store, and the site file's checks of the pools."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import MeterKind, SiteConfig, parse_site
from core.errors import ConfigError
from core.readings import ReadingBatch
from processing.apportion import Allocation, Prices, allocate
from processing.bills import MonthError, month_bills
from storage.duckdb_store import DuckDBStore

HOURS = 24


def _meter(
    ident: str, unit: int, building: str, *, kind: str = "electricity", **extra: Any
) -> dict[str, Any]:
    return {
        "id": ident,
        "kind": kind,
        "building": building,
        "modbus": {"gateway": "gw", "unit": unit, "profile": "eastron-sdm630"},
        **extra,
    }


def small_site(pools: list[dict[str, Any]] | None = None, **billing: Any) -> SiteConfig:
    """Two buildings; departments d1 (A, 100 m², 10 staff), d2 (A, 300 m², 30 staff), d3 (B,
    200 m², no staff); a common area in A; an incomer feeding everything, with a plug below
    d1's sub-meter; two water mains, one with a sub-meter."""
    data: dict[str, Any] = {
        "site": {"id": "small", "name": "小站", "latitude": 31.7, "longitude": 116.5},
        "buildings": [
            {"id": "A", "name": "甲楼", "floor_area_m2": 1000},
            {"id": "B", "name": "乙楼", "floor_area_m2": 500},
        ],
        "tenants": [
            {"id": "d1", "name": "一处", "building": "A", "floor_area_m2": 100, "staff": 10},
            {"id": "d2", "name": "二处", "building": "A", "floor_area_m2": 300, "staff": 30},
            {"id": "d3", "name": "三处", "building": "B", "floor_area_m2": 200, "staff": 0},
            {"id": "ca", "name": "公区", "building": "A", "floor_area_m2": 400, "kind": "common"},
        ],
        "gateways": [{"id": "gw", "host": "127.0.0.1"}],
        "meters": [
            _meter("TR", 1, "A", end_use="incomer"),
            _meter("M1", 2, "A", tenant="d1", parent="TR"),
            _meter("P1", 3, "A", tenant="d1", parent="M1", end_use="plug"),
            _meter("M2", 4, "A", tenant="d2", parent="TR"),
            _meter("M3", 5, "B", tenant="d3", parent="TR"),
            _meter("LA", 6, "A", tenant="ca", parent="TR", end_use="lighting"),
            _meter("LB", 7, "B", parent="TR", end_use="lift"),
            _meter("CH", 8, "A", parent="TR", end_use="chiller"),
            _meter("W1", 9, "A", kind="water", end_use="water_main"),
            _meter("W2", 10, "A", kind="water", parent="W1", end_use="domestic_water"),
            _meter("W3", 11, "B", kind="water", end_use="water_main"),
        ],
        "billing": {"pools": pools or [], **billing},
    }
    return parse_site(data, source="small.toml")


# what each meter measures per hour (kWh, m³): the incomer is what it feeds plus 1 kWh of losses
RATES = {"M1": 10.0, "P1": 2.0, "M2": 20.0, "M3": 5.0, "LA": 4.0, "LB": 3.0, "CH": 8.0}
RATES["TR"] = sum(v for k, v in RATES.items() if k != "P1") + 1.0
WATER = {"W1": 6.0, "W2": 2.0, "W3": 1.0}
# hours 0-7 valley at 0.3, 8-23 peak at 1.0
PRICES = Prices(
    ("peak", "valley"),
    np.array([1] * 8 + [0] * 16, dtype=np.int64),
    np.array([0.3] * 8 + [1.0] * 16),
)


def run(site: SiteConfig, kind: MeterKind = MeterKind.ELECTRICITY) -> Allocation:
    rates = RATES if kind is MeterKind.ELECTRICITY else WATER
    values = {m: np.full(HOURS, r) for m, r in rates.items()}
    return allocate(site, kind, values, PRICES)


def reconciles(a: Allocation) -> None:
    """Departments plus the remainder are what the incomer measured, in kWh and CNY."""
    billed = [a.billed(t) for t in a.departments]
    qty = sum(b.total for b in billed) + a.unallocated.total
    cny = sum(b.total_cny for b in billed) + a.unallocated.total_cny
    assert qty == pytest.approx(a.measured.total, abs=1e-9)
    assert cny == pytest.approx(a.measured.total_cny, abs=1e-9)
    assert a.unallocated.total >= -1e-9


def billed(a: Allocation, pool: str) -> dict[str, float]:
    return {
        t: round(a.apportioned(t).get(pool, a.own[t].scaled(0)).total, 9) for t in a.departments
    }


CHILLER = {"id": "plant", "end_uses": ["chiller"]}
PLANT_KWH = 8.0 * HOURS


def test_own_use_counts_a_plug_below_a_sub_meter_once_and_is_priced_by_the_hour():
    a = run(small_site())
    assert a.own["d1"].total == 10 * HOURS  # M1 measures the plug too: 8 + 2, not 12
    assert a.own_meters["d1"] == ("M1", "P1")
    # 8 valley hours at 0.3 and 16 peak hours at 1.0
    assert a.own["d1"].cny.tolist() == pytest.approx([10 * 16 * 1.0, 10 * 8 * 0.3])
    assert a.measured.total == RATES["TR"] * HOURS
    # no pools: everything not a department's is unallocated, meter by meter
    assert set(a.unpooled) == {"TR", "LA", "LB", "CH"}
    assert a.unpooled["TR"].total == 1.0 * HOURS  # the losses: the incomer minus what it feeds
    reconciles(a)


def test_floor_area():
    a = run(small_site([{**CHILLER, "rule": "floor_area"}]))
    assert billed(a, "plant") == pytest.approx(
        {"d1": PLANT_KWH / 6, "d2": PLANT_KWH / 2, "d3": PLANT_KWH / 3}
    )
    # the money follows the energy: each share of the pool's CNY by period
    plant_cny = 8.0 * (16 * 1.0 + 8 * 0.3)
    assert a.apportioned("d2")["plant"].total_cny == pytest.approx(plant_cny / 2)
    reconciles(a)


def test_headcount_gives_nothing_to_a_department_without_staff():
    a = run(small_site([{**CHILLER, "rule": "headcount"}]))
    assert billed(a, "plant") == pytest.approx(
        {"d1": PLANT_KWH / 4, "d2": PLANT_KWH * 3 / 4, "d3": 0.0}
    )
    reconciles(a)


def test_metered_share_follows_each_departments_own_use():
    a = run(small_site([{**CHILLER, "rule": "metered_share"}]))
    own = {"d1": 10.0, "d2": 20.0, "d3": 5.0}
    assert billed(a, "plant") == pytest.approx({t: PLANT_KWH * v / 35 for t, v in own.items()})
    reconciles(a)


def test_fixed_keys_leave_the_rest_unallocated_with_the_reason():
    a = run(small_site([{**CHILLER, "rule": "fixed", "keys": {"d1": 0.5, "d2": 0.3}}]))
    assert billed(a, "plant") == pytest.approx({"d1": 96.0, "d2": 57.6, "d3": 0.0})
    (part,) = a.parts
    assert part.unallocated.total == pytest.approx(PLANT_KWH * 0.2)
    assert "0.8" in part.reason
    reconciles(a)


def test_rule_none_keeps_the_pool_whole_in_the_remainder():
    a = run(small_site([{**CHILLER, "rule": "none"}]))
    assert billed(a, "plant") == {"d1": 0.0, "d2": 0.0, "d3": 0.0}
    assert a.parts[0].unallocated.total == PLANT_KWH
    assert a.parts[0].reason.startswith("rule none")
    reconciles(a)


def test_per_building_shares_each_buildings_part_among_its_own_departments():
    pool = {
        "id": "common",
        "end_uses": ["lighting", "lift"],
        "rule": "floor_area",
        "per_building": True,
    }
    a = run(small_site([pool]))
    # A's common lighting (4 kWh/h) to d1 and d2 by 100:300; B's lift (3 kWh/h) to d3 alone
    assert billed(a, "common") == pytest.approx({"d1": 24.0, "d2": 72.0, "d3": 72.0})
    assert [(p.building, p.meters) for p in a.parts] == [("A", ("LA",)), ("B", ("LB",))]
    reconciles(a)


def test_transformer_losses_as_a_pool():
    a = run(small_site([{"id": "losses", "end_uses": ["incomer"], "rule": "metered_share"}]))
    losses = 1.0 * HOURS
    assert sum(billed(a, "losses").values()) == pytest.approx(losses)
    assert billed(a, "losses")["d2"] == pytest.approx(losses * 20 / 35)
    assert "TR" not in a.unpooled
    reconciles(a)


def test_the_first_pool_that_selects_a_meter_takes_it():
    pools = [
        {"id": "by-name", "meters": ["CH"], "rule": "headcount"},
        {**CHILLER, "rule": "floor_area"},
        {"id": "commons", "tenants": ["ca"], "rule": "floor_area", "recipients": ["d3"]},
    ]
    a = run(small_site(pools))
    assert [p.pool.id for p in a.parts if p.meters] == ["by-name", "commons"]
    assert billed(a, "by-name")["d2"] == pytest.approx(PLANT_KWH * 3 / 4)
    assert billed(a, "commons") == {"d1": 0.0, "d2": 0.0, "d3": 4.0 * HOURS}  # recipients
    reconciles(a)


def test_recipients_with_nothing_to_weigh_leave_the_pool_unallocated():
    a = run(small_site([{**CHILLER, "rule": "headcount", "recipients": ["d3"]}]))
    assert a.parts[0].shares == {}
    assert a.parts[0].reason == "no recipient has any staff"
    assert a.unallocated.total == pytest.approx(PLANT_KWH + 24 + 4 * 24 + 3 * 24)
    reconciles(a)


def test_water_mains_and_their_sub_meters():
    pool = {
        "id": "domestic",
        "utility": "water",
        "end_uses": ["water_main", "domestic_water"],
        "rule": "headcount",
        "per_building": True,
    }
    a = run(small_site([pool]), MeterKind.WATER)
    assert a.roots == ("W1", "W3")
    # building A's 6 m³/h (W1, including W2) to d1 and d2 by 10:30; B's to d3, who has no staff
    assert billed(a, "domestic") == pytest.approx({"d1": 36.0, "d2": 108.0, "d3": 0.0})
    assert a.unallocated.total == pytest.approx(24.0)
    reconciles(a)


# -- through a real store, priced at the site tariff -------------------------------------------

TARIFF = {
    "kind": "tou",
    "water_price_cny_per_m3": 4.0,
    "seasons": [
        {
            "name": "all",
            "months": list(range(1, 13)),
            "windows": [{"period": "valley", "start": 0, "end": 8}],
            "prices": {"flat": 1.0, "valley": 0.3},
        }
    ],
}
MARCH = 1_740_758_400_000  # 2025-03-01T00:00+08:00


def write_counters(store: DuckDBStore, hourly: dict[str, np.ndarray], quantity: str) -> None:
    """A reading 1 s before the month and 1 s before each hour's end, so that the store's
    hourly buckets hold exactly each hour's energy."""
    ts = np.concatenate(
        [
            [MARCH - 1000],
            MARCH + np.arange(1, len(next(iter(hourly.values()))) + 1) * 3_600_000 - 1000,
        ]
    ).astype(np.int64)
    store.write(
        ReadingBatch.concat(
            [
                ReadingBatch.for_series(
                    m, quantity, ts, 1000.0 + np.concatenate([[0.0], np.cumsum(e)])
                )
                for m, e in hourly.items()
            ]
        )
    )


def test_month_bills_price_each_hour_at_its_period_through_the_store(tmp_path: Path):
    site = small_site(
        [
            {**CHILLER, "rule": "floor_area"},
            {"id": "rest", "buildings": ["A", "B"], "rule": "none"},
        ],
        tariff=TARIFF,
    )
    office = np.where((np.arange(HOURS) >= 8) & (np.arange(HOURS) < 18), 10.0, 2.0)
    hourly = {m: np.full(HOURS, r) for m, r in RATES.items()}
    hourly["M1"] = office
    hourly["TR"] = hourly["TR"] - RATES["M1"] + office
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        write_counters(store, hourly, "energy_import")
        write_counters(store, {m: np.full(HOURS, r) for m, r in WATER.items()}, "volume")
        bills = month_bills(site, store, "2025-03", now=datetime(2025, 4, 2, tzinfo=UTC))
        doc = bills.to_dict()
        with pytest.raises(MonthError, match="has not started"):
            month_bills(site, store, "2025-03", now=datetime(2025, 2, 28, 15, tzinfo=UTC))
        running = month_bills(site, store, "2025-03", now=datetime(2025, 3, 2, tzinfo=UTC))
    assert doc["status"] == "final"
    assert running.status == "provisional"
    assert doc["through"] == "2025-03-01T16:00:00Z"  # 24 hours of data
    d1 = next(r for r in doc["rows"] if r["tenant"] == "d1")
    assert d1["kwh_own"] == office.sum()
    own_cny = float((office * np.where(np.arange(HOURS) < 8, 0.3, 1.0)).sum())
    plant_cny = 8.0 * (8 * 0.3 + 16 * 1.0) / 6  # a sixth of the chiller, by floor area
    assert d1["cny_electricity"] == pytest.approx(own_cny + plant_cny, abs=0.005)
    assert d1["kwh_by_period"]["valley"] == pytest.approx(2.0 * 8 + 8.0 * 8 / 6, abs=0.001)
    assert [r["rank"] for r in doc["rows"]] == [1, 2, 3]
    check = doc["reconciliation"]["electricity"]
    assert check["measured"] == pytest.approx(hourly["TR"].sum())
    assert check["difference"] == 0.0
    assert check["cny"]["difference"] == 0.0
    water = doc["reconciliation"]["water"]
    assert water["measured"] == pytest.approx(7.0 * HOURS)  # W1 + W3; W2 is inside W1
    assert doc["unallocated"]["water_m3"] == pytest.approx(7.0 * HOURS)  # no water pool
    assert doc["unallocated"]["cny_water"] == pytest.approx(4.0 * 7.0 * HOURS)


# -- the site file's checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool", "key", "message"),
    [
        ({"id": "x", "rule": "floor_area"}, "meters", "needs a selector"),
        ({**CHILLER, "rule": "fixed"}, "keys", "needs keys"),
        ({**CHILLER, "rule": "fixed", "keys": {"d1": 0.7, "d2": 0.5}}, "keys", "sum to 1.2"),
        ({**CHILLER, "rule": "headcount", "keys": {"d1": 0.5}}, "keys", "belong to a fixed rule"),
        ({"id": "x", "meters": ["M1"], "rule": "floor_area"}, "meters.0", "billed to it"),
        (
            {"id": "x", "meters": ["W1"], "rule": "floor_area"},
            "meters.0",
            "water meter, not electricity",
        ),
        ({"id": "x", "meters": ["nope"], "rule": "floor_area"}, "meters.0", "no meter"),
        ({**CHILLER, "rule": "floor_area", "recipients": ["ca"]}, "recipients", "common area"),
        ({"id": "x", "end_uses": ["water_main"], "rule": "none"}, "end_uses", "not electricity"),
        ({"id": "x", "tenants": ["zz"], "rule": "none"}, "tenants.0", "no tenant"),
    ],
)
def test_a_bad_pool_names_the_file_the_pool_and_the_key(pool, key, message):
    with pytest.raises(ConfigError) as err:
        small_site([pool])
    assert err.value.file == "small.toml"
    assert err.value.key.endswith(key), err.value
    assert message in str(err.value)


def test_duplicate_pools_are_refused():
    with pytest.raises(ConfigError, match="duplicate pool"):
        small_site([{**CHILLER, "rule": "none"}, {**CHILLER, "rule": "none"}])

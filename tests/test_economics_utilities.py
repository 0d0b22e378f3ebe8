"""Contract utilities beside electricity: natural gas (m³, its kWh by calorific value, price,
emission factor) and delivered heat (BTU meters, statements in kWh or GJ), from one utility
table; the site file names each boundary and refuses what does not fit."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.config import KWH_PER_GJ, SiteConfig, parse_site
from core.errors import ConfigError
from core.readings import ReadingBatch
from processing.contract import recompute, statement
from processing.schedule import Recompute
from processing.statements import StatementStore
from processing.testing import counter_samples, synthetic_hourly, write_boundary
from storage.duckdb_store import DuckDBStore

SITE_FILE = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"
START, END = date(2024, 6, 28), date(2025, 10, 3)


def _raw() -> dict[str, Any]:
    return tomllib.loads(SITE_FILE.read_text(encoding="utf-8"))


def _with_utilities(utilities: dict[str, Any], extra_meters: list[dict[str, Any]]) -> SiteConfig:
    raw = _raw()
    raw["meters"].extend(extra_meters)
    raw["contracts"][0]["utilities"] = utilities
    return parse_site(raw, source="utilities.toml")


GAS_METER = {
    "id": "G-CANTEEN",
    "name": "食堂燃气表",
    "kind": "gas",
    "building": "main",
    "end_use": "mixed",
    "mqtt": {"topic": "luan-admin-center/gas/canteen", "format": "water-flat"},
}


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return _with_utilities(
        {
            "gas": {"meters": ["G-CANTEEN"], "price_cny_per_m3": 3.20},
            "thermal": {
                "meters": ["H-BTU1"],
                "unit": "GJ",
                "price_cny_per_unit": 60.0,
                "emission_factor_kg_per_unit": 110.0,
            },
        },
        [GAS_METER],
    )


@pytest.fixture(scope="module")
def synthetic(site: SiteConfig):  # type: ignore[no-untyped-def]
    return synthetic_hourly(
        START, END, seed=3, calendar=site.work_calendar,
        retrofit=site.contracts[0].reporting_start, reduction=0.10,
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(site: SiteConfig, synthetic):  # type: ignore[no-untyped-def]
    contract = site.contracts[0]
    with DuckDBStore(":memory:") as s:
        write_boundary(s, contract.meters, "WX-ROOF", synthetic)
        gas = synthetic.data.with_energy(synthetic.data.energy / 40.0)  # m³ per hour
        ts, values = counter_samples(gas, start_value=2_000.0, every_s=3600)
        s.write(ReadingBatch.for_series("G-CANTEEN", "volume", ts, values))
        heat = synthetic.data.with_energy(synthetic.data.energy * 2.5)  # kWh per hour
        ts, values = counter_samples(heat, start_value=50_000.0, every_s=3600)
        s.write(ReadingBatch.for_series("H-BTU1", "thermal_energy", ts, values))
        yield s


def test_gas_in_m3_with_its_kwh_price_and_carbon(site, store) -> None:  # type: ignore[no-untyped-def]
    stmt = statement(site, site.contracts[0].id, store, "2025-09", utility="gas")
    p = stmt.month_savings
    assert stmt.unit == "m3"
    assert p.avoided > 0
    assert stmt.money["month"].total_cny == pytest.approx(p.avoided * 3.20)
    assert stmt.money["month"].kwh == {"gas": pytest.approx(p.avoided)}
    assert stmt.energy_kwh["month"] == pytest.approx(p.avoided * 38.931 / 3.6)
    assert stmt.carbon_t["month"] == pytest.approx(p.avoided * 2.162 / 1000)
    assert stmt.guarantee is None  # the guarantee is on electricity
    assert stmt.pricing == "one price per m3"
    assert recompute(stmt.to_dict()).numbers() == stmt.numbers()


def test_heat_in_gj(site, store, synthetic) -> None:  # type: ignore[no-untyped-def]
    stmt = statement(site, site.contracts[0].id, store, "2025-09", utility="thermal")
    assert stmt.unit == "GJ"
    p = stmt.month_savings
    d = synthetic.data.day
    september = (d >= np.datetime64("2025-09-01")) & (d < np.datetime64("2025-10-01"))
    metered_kwh = float(synthetic.data.energy[september].sum() * 2.5)
    assert p.actual == pytest.approx(metered_kwh / KWH_PER_GJ, rel=1e-4)  # registers: 0.01 kWh
    assert stmt.money["month"].total_cny == pytest.approx(p.avoided * 60.0)
    assert stmt.energy_kwh["month"] == pytest.approx(p.avoided * KWH_PER_GJ)
    assert stmt.carbon_t["month"] == pytest.approx(p.avoided * 0.110)


def test_the_service_writes_every_boundary(site, store) -> None:  # type: ignore[no-untyped-def]
    with StatementStore(":memory:") as statements:
        actions = Recompute(site, store, statements).run_once(date(2025, 8, 10))
        assert {(a.utility, a.what) for a in actions} == {
            (u, w)
            for u in ("electricity", "gas", "thermal")
            for w in ("baseline", "new", "provisional")
        }
        assert [e.month for e in statements.months(site.contracts[0].id, "gas")] == [
            "2025-07",
            "2025-08",
        ]


# -- the site file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utilities", "meters", "key", "message"),
    [
        ({"gas": {"meters": ["W-MAIN"]}}, [], "utilities.gas.meters.0", "is a water meter"),
        ({"gas": {"meters": ["G-NONE"]}}, [], "utilities.gas.meters.0", "no meter 'G-NONE'"),
        (
            {"thermal": {"meters": ["H-BTU1"]}},
            [],
            "utilities.thermal.emission_factor_kg_per_unit",
            "required",
        ),
        ({"water": {"meters": ["W-MAIN"], "price": 1}}, [], "utilities.water.price", "unknown"),
    ],
)
def test_boundaries_are_checked(utilities, meters, key, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        _with_utilities(utilities, meters)
    assert err.value.key == key
    assert message in str(err.value)
    assert err.value.entity == "contract 'epc-2025-01'"


def test_an_adjustment_needs_its_boundary() -> None:
    raw = _raw()
    raw["contracts"][0]["adjustments"] = [
        {"id": "a", "utility": "gas", "start": date(2026, 1, 1), "amount_per_day": 1.0,
         "description": "x", "document": "y"}
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="no gas boundary") as err:
        parse_site(raw, source="x.toml")
    assert err.value.key == "adjustments.0.utility"


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("contracts", 0, "water_meters"), "water_meters"),
        (("contracts", 0, "tariff", "water_price_cny_per_m3"), "tariff.water_price_cny_per_m3"),
    ],
)
def test_the_old_water_keys_say_where_they_went(where, key) -> None:  # type: ignore[no-untyped-def]
    raw = _raw()
    node: Any = raw
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = ["W-MAIN"] if where[-1] == "water_meters" else 4.3
    with pytest.raises(ConfigError, match=r"moved: .*\[contracts.utilities.water\]") as err:
        parse_site(raw, source="x.toml")
    assert err.value.key == key


def test_one_utility_table() -> None:
    contract = _with_utilities(
        {"water": {"meters": ["W-MAIN"], "price_cny_per_m3": 4.3}}, []
    ).contracts[0]
    assert contract.utility_names() == ("electricity", "water")
    rows = {u: contract.terms(u) for u in contract.utility_names()}
    assert (rows["electricity"].unit, rows["electricity"].quantity) == ("kWh", "energy_import")
    assert rows["electricity"].time_of_use
    assert (rows["water"].unit, rows["water"].price, rows["water"].kwh_per_unit) == (
        "m3",
        4.3,
        None,
    )
    with pytest.raises(KeyError, match="no gas boundary"):
        contract.terms("gas")
    assert np.isclose(KWH_PER_GJ, 277.777_777_8)

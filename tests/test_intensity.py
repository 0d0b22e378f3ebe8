"""Energy-use intensity against the standards: the GB/T 51161 row the site file's class and
climate zone select, the site's own targets, and the figures over 12 closed months and the
year to date, on a small site whose answer is known."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from core.config import IntensityConfig, IntensityTarget, SiteConfig
from core.errors import ConfigError
from core.readings import ReadingBatch
from processing.bills import MonthError
from processing.intensity import intensity, status
from storage.base import local_midnight_ms
from storage.duckdb_store import DuckDBStore
from tests.test_bills_rules import small_site

NOW = datetime(2026, 1, 10, tzinfo=UTC)


def test_the_standard_row_follows_the_class_and_the_climate_zone():
    default = IntensityConfig().standard_target()
    assert (default.constraint, default.guide) == (70, 55)  # A类党政机关, 夏热冬冷
    assert default.provisional
    assert "GB/T 51161-2016" in default.source
    assert "A类党政机关办公建筑" in default.source
    assert "夏热冬冷" in default.source
    b = IntensityConfig(office_class="government_b", climate_zone="severe_cold_and_cold")
    assert (b.standard_target().constraint, b.standard_target().guide) == (70, 50)
    assert IntensityConfig(standard_eui=False).all_targets() == ()


@pytest.mark.parametrize(
    ("value", "constraint", "guide", "expected"),
    [
        (80.0, 70.0, 55.0, "above_constraint"),
        (70.0, 70.0, 55.0, "above_guide"),
        (55.0, 70.0, 55.0, "at_or_below_guide"),
        (20.0, 21.0, None, "within_constraint"),
        (60.0, None, 55.0, "above_guide"),
        (None, 70.0, 55.0, "no_data"),
    ],
)
def test_status_against_the_constraint_and_the_guide(value, constraint, guide, expected):
    target = IntensityTarget(
        id="t", metric="kwh_per_m2", constraint=constraint, guide=guide, source="s"
    )
    assert status(value, target) == expected


def test_targets_are_checked():
    with pytest.raises(ValueError, match="guide value must not exceed"):
        IntensityTarget(id="t", metric="kwh_per_m2", constraint=50, guide=60, source="s")
    with pytest.raises(ValueError, match="constraint value, a guide value or both"):
        IntensityTarget(id="t", metric="kwh_per_m2", source="s")
    with pytest.raises(ConfigError, match="reserved") as err:
        _site_with_targets([{"id": "gbt51161"}])
    assert (err.value.entity, err.value.key) == ("[intensity]", "targets")
    site = _site_with_targets([{"id": "quota"}])
    assert [t.id for t in site.intensity.all_targets()] == ["gbt51161", "quota"]


def _site_with_targets(targets: list[dict[str, object]]) -> SiteConfig:
    from core.config import parse_site

    data = small_site().model_dump(mode="json", exclude_none=True)
    data["intensity"] = {
        "targets": [
            {"metric": "kwh_per_person", "constraint": 1000.0, "source": "定额", **t}
            for t in targets
        ]
    }
    return parse_site(data, source="small.toml")


# per month: the incomer (A and B) 100 kWh per day-ish, as monthly totals
MONTHLY = {"M1": 300.0, "M2": 600.0, "M3": 150.0, "LA": 90.0, "LB": 60.0, "CH": 240.0}
MONTHLY["TR"] = sum(MONTHLY.values()) + 30.0
MONTHLY_WATER = {"W1": 60.0, "W2": 20.0, "W3": 10.0}


def write_months(store: DuckDBStore, months: list[date]) -> None:
    """A reading 1 s before each month's start and 1 s before its end."""
    zone = small_site().site.tz
    edges = [local_midnight_ms(m, zone) for m in months]
    last = months[-1]
    edges.append(
        local_midnight_ms(date(last.year + last.month // 12, last.month % 12 + 1, 1), zone)
    )
    ts = np.array(edges, dtype=np.int64) - 1000
    batches = []
    for rates, quantity in ((MONTHLY, "energy_import"), (MONTHLY_WATER, "volume")):
        for meter, per_month in rates.items():
            values = 1000.0 + per_month * np.arange(len(ts))
            batches.append(ReadingBatch.for_series(meter, quantity, ts, values))
    store.write(ReadingBatch.concat(batches))


def months(first: date, n: int) -> list[date]:
    out = [first]
    while len(out) < n:
        m = out[-1]
        out.append(date(m.year + m.month // 12, m.month % 12 + 1, 1))
    return out


def test_twelve_closed_months_and_the_year_to_date_against_the_targets(tmp_path: Path):
    pools = [
        {"id": "plant", "end_uses": ["chiller"], "rule": "floor_area"},
        {"id": "rest", "buildings": ["A", "B"], "rule": "none"},
    ]
    site = small_site(pools)
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        write_months(store, months(date(2024, 12, 1), 13))
        doc = intensity(site, store, now=NOW)
        with pytest.raises(MonthError, match="has not started"):
            intensity(site, store, "2026-02", now=NOW)
        partial = intensity(site, store, "2026-01", now=NOW)
    assert doc["through"] == "2025-12"
    assert doc["window"]["first"] == "2025-01"
    assert doc["window"]["months_with_data"] == 12
    assert doc["window"]["complete"] is True
    assert doc["provisional"] is True  # the GB/T row is provisional
    s = doc["site"]
    year_kwh = 12 * MONTHLY["TR"]
    assert s["kwh"] == pytest.approx(year_kwh)
    assert s["kwh_per_m2"] == pytest.approx(year_kwh / 1500, abs=0.001)
    assert s["kwh_per_person"] == pytest.approx(year_kwh / 40, abs=0.001)
    assert s["kgce_per_person"] == pytest.approx(year_kwh * 0.1229 / 40, abs=0.001)
    assert s["water_m3_per_person"] == pytest.approx(12 * 70.0 / 40, abs=0.001)
    assert s["year_to_date"]["kwh"] == pytest.approx(year_kwh)  # January to December
    # a building is what its departments are billed: own meters and their pool shares
    a, b = doc["buildings"]
    plant = 12 * 240.0
    assert a["kwh"] == pytest.approx(12 * (300 + 600) + plant * 4 / 6)
    assert b["kwh"] == pytest.approx(12 * 150 + plant * 2 / 6)
    assert a["kwh"] + b["kwh"] + doc["unallocated"]["kwh"] == pytest.approx(s["kwh"])
    assert b["kwh_per_person"] is None  # d3 has no staff
    (gbt,) = doc["targets"]
    assert gbt["site"] == {"value": s["kwh_per_m2"], "status": "at_or_below_guide"}
    assert set(gbt["buildings"]) == {"A", "B"}
    # the running month closes no window: January 2026 is partial and says so
    assert partial["window"]["complete"] is False
    assert partial["year_to_date"] == {"first": "2026-01", "last": "2026-01"}


def test_a_window_the_store_does_not_cover_is_marked_incomplete(tmp_path: Path):
    site = small_site()
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        write_months(store, months(date(2025, 6, 1), 7))
        doc = intensity(site, store, "2025-12", now=NOW)
    assert doc["window"]["months_with_data"] == 7
    assert doc["window"]["complete"] is False
    assert doc["window"]["annualised"] is False
    assert doc["site"]["kwh"] == pytest.approx(7 * MONTHLY["TR"])  # summed, not scaled up

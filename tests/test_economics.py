"""Money priced by the hour, and the guarantee held with its uncertainty.

The retrofit's savings (LED lighting, the chiller plant) sit in office hours, when energy is
dear. The simulators know the true savings hour by hour, so they know what the savings are
really worth: each true hourly kWh at its own tariff period's price. Measured on the
reference contract, seed 1, contract year 1 (2025-07 .. 2026-06), before this pricing:

- truth: 892,066 kWh worth 709,228 CNY (0.795 CNY/kWh);
- avoided kWh split by each day's consumption (the old method): 671,604 CNY (0.764), −5.3 %.

The money now follows baseline minus actual hour by hour (`processing/pricing.py`). The
statement's money also carries the avoided kWh's own error (the daily model's −1.4 % on this
seed, the intervals' business); the price per kWh is what the pricing decides, so it is
checked on its own too, for both models.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.config import Contract, Guarantee, SiteConfig, contract_weather_station, load_site
from processing import economics, pricing
from processing.contract import Statement, fit_baseline, statement
from processing.frames import HourlyData, hourly_frame
from processing.stats import Uncertainty
from simulators.history import generate_history
from storage.duckdb_store import DuckDBStore

SITE_FILE = Path(__file__).resolve().parents[1] / "sites" / "luan-admin-center.toml"
YEAR_START, YEAR_END = date(2025, 7, 1), date(2026, 7, 1)


@dataclass(frozen=True)
class Truth:
    kwh: float
    cny: float

    @property
    def price(self) -> float:
        return self.cny / self.kwh


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(SITE_FILE)


@pytest.fixture(scope="module")
def simulated(site: SiteConfig) -> Iterator[tuple[DuckDBStore, Truth]]:
    """Two years of the reference boundary, seed 1, and the contract year's true savings
    priced hour by hour."""
    c = site.contract("epc-2025-01")
    history = generate_history(
        site,
        datetime(2024, 7, 1, tzinfo=UTC),
        datetime(2026, 7, 2, tzinfo=UTC),
        interval="1h",
        seed=1,
        meters=[*c.meters, contract_weather_station(site, c)],
    )
    true = np.sum([history.true_savings_kwh[m] for m in c.meters], axis=0)
    zone = ZoneInfo(site.site.timezone)
    local = [datetime.fromtimestamp(int(t) / 1000, zone) for t in history.ts_ms]
    day = np.array([t.date() for t in local])
    sel = (day >= YEAR_START) & (day < YEAR_END)
    assert c.tariff is not None
    prices = np.array(c.tariff.price_table())
    hour_price = np.array([prices[t.month - 1, t.hour] for t in local])
    truth = Truth(float(true[sel].sum()), float((true * hour_price)[sel].sum()))
    with DuckDBStore(":memory:") as store:
        store.write(history.readings)
        yield store, truth


def _year(site: SiteConfig, store: DuckDBStore, model: str) -> Statement:
    baseline = fit_baseline(site, "epc-2025-01", store, model=model)  # type: ignore[arg-type]
    return statement(site, "epc-2025-01", store, "2026-06", baseline=baseline)


def test_the_contract_year_is_worth_what_the_hours_say(site, simulated) -> None:  # type: ignore[no-untyped-def]
    store, truth = simulated
    assert truth.kwh == pytest.approx(892_066, abs=1)  # the figures, reproduced
    assert truth.cny == pytest.approx(709_228, abs=1)
    stmt = _year(site, store, "daily")
    year = stmt.year_to_date
    assert (year.start, year.end) == (YEAR_START, YEAR_END)
    money = stmt.money["year_to_date"]
    # the old method, on the very same avoided kWh: split by each day's consumption
    ds_avoided = _avoided_by_day(stmt)
    legacy = economics.value_shares(
        ds_avoided,
        np.nan_to_num(stmt.inputs.shares, nan=0.0),
        economics.period_prices(stmt.inputs.daily.day, site.contract("epc-2025-01").tariff),  # type: ignore[arg-type]
        0.8,
    )
    assert legacy.total_cny / truth.cny - 1 == pytest.approx(-0.053, abs=0.002)
    assert abs(money.total_cny / truth.cny - 1) < 0.01, (money.total_cny, truth.cny)
    assert abs(money.average_price / truth.price - 1) < 0.01
    assert sum(money.kwh.values()) == pytest.approx(year.avoided, rel=1e-9)
    assert money.cny["peak"] > money.cny["flat"] > money.cny["valley"] > 0
    assert stmt.pricing.startswith("by the hour")


def test_the_hourly_model_prices_its_own_hours(site, simulated) -> None:  # type: ignore[no-untyped-def]
    store, truth = simulated
    stmt = _year(site, store, "hourly")
    money = stmt.money["year_to_date"]
    assert abs(money.average_price / truth.price - 1) < 0.01, (money.average_price, truth.price)
    assert sum(money.kwh.values()) == pytest.approx(stmt.year_to_date.avoided, rel=1e-9)


def _avoided_by_day(stmt: Statement) -> np.ndarray:
    """The statement's counted avoided energy per day, from its record."""
    from processing.models import model_from_dict
    from processing.savings import daily_savings

    model = model_from_dict(stmt.model)
    ds = daily_savings(model, stmt.inputs.daily, stmt.inputs.hourly, stmt.inputs.estimated)  # type: ignore[arg-type]
    return np.where(ds.used, ds.avoided, 0.0)


# -- the pricing, worked by hand ----------------------------------------------------------------


def _tariff(site: SiteConfig):  # type: ignore[no-untyped-def]
    tariff = site.contract("epc-2025-01").tariff
    assert tariff is not None
    return tariff


def test_a_day_saved_at_the_peak_is_priced_at_the_peak(site) -> None:  # type: ignore[no-untyped-def]
    """One October workday: the baseline uses 10 kWh in each office hour 9-12 and 16-18 and 1
    kWh at night; the retrofit halves the office hours. Avoided 25 kWh, all of it peak; the
    day's consumption is mostly peak too, but not all of it."""
    tariff = _tariff(site)
    days = np.array(["2025-10-13"], dtype="datetime64[D]")  # a Monday, shoulder season
    base = np.full(24, 1.0)
    office = [9, 10, 11, 16, 17]
    base[office] = 10.0
    actual = base.copy()
    actual[office] = 5.0
    ts = np.datetime64("2025-10-12T16:00", "ms").astype(np.int64) + np.arange(24) * 3_600_000
    from core.calendar import WorkCalendar

    hourly = hourly_frame(ts, "Asia/Shanghai", WorkCalendar().day_type, np.zeros(24), actual)
    assert hourly.hour.tolist() == list(range(24))
    shape, _ = pricing.hourly_shares(days, hourly, base, tariff)
    actual_shares = pricing.period_shares(days, hourly, tariff)
    kwh = pricing.avoided_by_period(
        np.array([base.sum()]), np.array([actual.sum()]), shape, actual_shares, np.array([True])
    )
    assert kwh[0].tolist() == pytest.approx([0.0, 25.0, 0.0, 0.0])  # sharp, peak, flat, valley
    money = economics.value(kwh, economics.period_prices(days, tariff), 0.8)
    assert money.total_cny == pytest.approx(25.0 * 1.000)
    old = economics.value_shares(
        np.array([25.0]), actual_shares, economics.period_prices(days, tariff), 0.8
    )
    assert old.total_cny < 0.9 * money.total_cny  # split by consumption: part of it at night


def test_profile_by_day_type_and_month_with_fallbacks() -> None:
    """The baseline profile: each (day type, month) from its complete days; a cell without
    any borrows the day type's all-year shape; an incomplete day is left out."""
    from core.calendar import WorkCalendar

    t0 = np.datetime64("2025-03-02T16:00", "ms").astype(np.int64)  # local 2025-03-03 00:00
    ts = t0 + np.arange(24 * 7) * 3_600_000
    hour = np.arange(len(ts)) % 24
    energy = np.where((hour >= 8) & (hour < 18), 3.0, 1.0)
    energy[24 * 6 + 5] = np.nan  # Sunday incomplete: left out
    hourly = hourly_frame(ts, "Asia/Shanghai", WorkCalendar().day_type, np.zeros(len(ts)), energy)
    profile = pricing.fit_profile(hourly)
    workday, weekend, march = 0, 1, 2
    assert profile.days[workday, march] == 5
    assert profile.days[weekend, march] == 1  # the Saturday only
    expected = np.where((np.arange(24) >= 8) & (np.arange(24) < 18), 3.0, 1.0) / 44.0
    assert profile.shape[workday, march] == pytest.approx(expected)
    assert profile.shape[workday, 6] == pytest.approx(expected)  # July: the day type's shape
    assert profile.shape[2, 6].sum() == pytest.approx(1.0)  # holidays: March's shape, then flat
    again = pricing.DayProfile.from_dict(profile.to_dict())
    assert np.array_equal(again.shape, profile.shape)


# -- the guarantee with its uncertainty ---------------------------------------------------------


def _contract(site: SiteConfig, basis: str) -> Contract:
    c = site.contract("epc-2025-01")
    return c.model_copy(update={"guarantee": Guarantee(kwh_per_year=600_000, basis=basis)})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("basis", "achieved", "u90", "short_point", "short_lower", "paid", "p_met"),
    [
        # a full year: 650,000 ± 100,000 (90 %, t = 1.645): met on the point, 50,000 short on
        # the lower bound; P(true >= 600,000) = Phi(50,000 / 60,790) = 0.795
        ("point", 650_000.0, 100_000.0, 0.0, 50_000.0, 0.0, 0.7946),
        ("lower_90", 650_000.0, 100_000.0, 0.0, 50_000.0, 50_000.0, 0.7946),
        ("lower_90", 550_000.0, 100_000.0, 50_000.0, 150_000.0, 150_000.0, 0.2054),
        ("point", 600_000.0, 100_000.0, 0.0, 100_000.0, 0.0, 0.5),
    ],
)
def test_guarantee_on_both_bases(
    site, basis, achieved, u90, short_point, short_lower, paid, p_met
) -> None:  # type: ignore[no-untyped-def]
    g = economics.guarantee_status(
        _contract(site, basis),
        year=1,
        year_start=YEAR_START,
        year_end=YEAR_END,
        through=YEAR_END,
        achieved_kwh=achieved,
        average_price=0.8,
        u90=Uncertainty(0.90, u90, u90 / achieved, 1.6449, 1.0, 365),
    )
    assert g is not None
    assert g.year_complete
    assert g.shortfall_point_kwh == pytest.approx(short_point)
    assert g.shortfall_lower_90_kwh == pytest.approx(short_lower)
    assert g.achieved_lower_90_kwh == pytest.approx(achieved - u90)
    assert g.shortfall_kwh == pytest.approx(paid)
    assert g.shortfall_cny == pytest.approx(paid * 0.8)
    assert g.basis == basis
    assert g.probability_met == pytest.approx(p_met, abs=1e-4)


def test_guarantee_without_an_interval(site) -> None:  # type: ignore[no-untyped-def]
    g = economics.guarantee_status(
        _contract(site, "lower_90"),
        year=1,
        year_start=YEAR_START,
        year_end=YEAR_END,
        through=date(2025, 7, 2),
        achieved_kwh=0.0,
        average_price=0.8,
        u90=Uncertainty(0.90, math.nan, math.nan, math.nan, math.nan, 0),
    )
    assert g is not None
    assert g.probability_met is None
    assert g.shortfall_lower_90_kwh is None
    assert g.basis.startswith("point (lower_90")  # said, not silently switched
    assert g.shortfall_kwh == pytest.approx(600_000 / 365)


def test_a_statement_shows_the_guarantee_on_both_bases(site, simulated) -> None:  # type: ignore[no-untyped-def]
    store, _ = simulated
    stmt = _year(site, store, "daily")
    g = stmt.guarantee
    assert g is not None
    assert g.basis == "point"  # the reference contract's
    ytd = stmt.year_to_date
    assert g.achieved_lower_90_kwh == pytest.approx(ytd.avoided - ytd.u90.u)
    assert g.shortfall_point_kwh == 0.0  # 879,629 avoided against 600,000
    assert g.probability_met is not None
    assert g.probability_met > 0.99


def test_shares_are_per_day_and_period(site) -> None:  # type: ignore[no-untyped-def]
    """Shapes of the pure helpers: (days, 4), rows summing to one."""
    tariff = _tariff(site)
    days = np.arange(np.datetime64("2025-01-01"), np.datetime64("2025-12-31"))
    shares = pricing.hours_shares(days, tariff)
    assert shares.shape == (len(days), 4)
    assert shares.sum(axis=1) == pytest.approx(np.ones(len(days)))
    empty = HourlyData(*(np.empty(0, dtype=t) for t in ("int64", "int64", "datetime64[D]", "int64", "float64", "float64")))  # fmt: skip
    fallback = np.full((len(days), 4), 0.25)
    assert np.array_equal(pricing.period_shares(days, empty, tariff, fallback), fallback)

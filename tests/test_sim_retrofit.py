"""The retrofit and its truth: from the contract's reporting start the measures act, the
counterfactual runs beside, and the savings are exactly the difference."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simulators.history import History, generate_history
from tests.sim_helpers import INCOMERS, model, site

REPORTING_START_MS = int(datetime(2025, 6, 30, 16, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def around_start() -> History:
    """June and July 2025, hourly: the month before the retrofit and the month after."""
    return generate_history(
        site(),
        datetime(2025, 5, 31, 16, tzinfo=UTC),
        datetime(2025, 7, 31, 16, tzinfo=UTC),
        interval="1h",
        model=model(),
    )


@pytest.fixture(scope="module")
def winter() -> History:
    return generate_history(
        site(),
        datetime(2026, 1, 5, 16, tzinfo=UTC),
        datetime(2026, 1, 19, 16, tzinfo=UTC),
        interval="1h",
        model=model(),
    )


def test_savings_are_zero_before_the_reporting_start(around_start: History):
    before = around_start.ts_ms < REPORTING_START_MS
    assert before.sum() == 30 * 24
    for meter, savings in around_start.true_savings_kwh.items():
        assert (savings[before] == 0).all(), meter
        np.testing.assert_array_equal(
            around_start.actual_kwh[meter][before], around_start.counterfactual_kwh[meter][before]
        )


def test_savings_are_the_counterfactual_minus_the_actual(around_start: History):
    for meter in around_start.true_savings_kwh:
        np.testing.assert_array_equal(
            around_start.true_savings_kwh[meter],
            around_start.counterfactual_kwh[meter] - around_start.actual_kwh[meter],
        )


def test_savings_are_positive_after_the_start_on_the_contract_boundary(around_start: History):
    after = around_start.ts_ms >= REPORTING_START_MS
    contract = site().contracts[0]
    assert sorted(contract.meters) == sorted(INCOMERS)
    saved = sum(around_start.true_savings_kwh[m] for m in contract.meters)
    daily = saved[after].reshape(-1, 24).sum(axis=1)
    assert (daily > 0).all()
    cf = sum(around_start.counterfactual_kwh[m] for m in contract.meters)[after].sum()
    assert 0.05 < saved[after].sum() / cf < 0.3


def test_lighting_loses_forty_percent(around_start: History):
    after = around_start.ts_ms >= REPORTING_START_MS
    for meter in ("E-LT-M1", "E-LT-OUT", "E-LT-C"):
        cf = around_start.counterfactual_kwh[meter][after]
        np.testing.assert_allclose(around_start.actual_kwh[meter][after], 0.6 * cf, rtol=1e-9)
    # a department's 照明插座 meter saves on its lamps only
    dept = around_start.true_savings_kwh["E-D01"][after].sum()
    assert 0.05 < dept / around_start.counterfactual_kwh["E-D01"][after].sum() < 0.4


def test_the_chiller_plant_saves_at_least_its_measure(around_start: History):
    after = around_start.ts_ms >= REPORTING_START_MS
    chillers = ("E-CH1", "E-CH2", "E-CH3")
    cf = sum(around_start.counterfactual_kwh[m] for m in chillers)[after].sum()
    saved = sum(around_start.true_savings_kwh[m] for m in chillers)[after].sum()
    # 13 % by the measure, and a little more: LED lamps give off less heat (interaction)
    assert 0.13 < saved / cf < 0.25


def test_in_winter_the_heat_pumps_make_up_for_the_lamps_heat(winter: History):
    heat_pumps = ("E-HP1", "E-HP2", "E-HP3")
    assert sum(winter.true_savings_kwh[m] for m in heat_pumps).sum() < 0
    assert sum(winter.true_savings_kwh[m] for m in INCOMERS).sum() > 0


def test_water_meters_save_nothing_but_the_towers_follow_the_heat(around_start: History):
    for meter in ("W-EAST", "W-WEST", "W-CONF", "W-M-HI"):
        assert not around_start.true_savings_kwh[meter].any(), meter

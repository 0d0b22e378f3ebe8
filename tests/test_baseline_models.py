"""Baseline models on the synthetic building: parameters recovered, JSON round trips, day
types that matter, and no savings where there was no retrofit."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest

from core.errors import InsufficientData
from processing import sufficiency
from processing.frames import DailyData, daily_from_hourly
from processing.models import (
    BillingModel,
    DailyChangePointModel,
    DailySettings,
    HourlySettings,
    HourlyTOWTModel,
    model_from_dict,
)
from processing.models.billing import BillingData, monthly_periods
from processing.models.hourly import month_weights
from processing.savings import daily_savings, summarise
from processing.stats import fit_stats
from processing.sufficiency import FIT_LIMITS, Severity
from processing.testing import Building, synthetic_daily, synthetic_hourly
from processing.uncertainty import held_out_months

BASELINE = (date(2024, 7, 1), date(2025, 7, 1))
NEXT_YEAR = (date(2025, 7, 1), date(2026, 7, 1))


def _json(model: object) -> dict:
    return json.loads(json.dumps(model.to_dict()))  # type: ignore[attr-defined]


def test_daily_model_recovers_the_building() -> None:
    b = Building(noise_cv=0.01)
    data = synthetic_daily(*BASELINE, seed=2, building=b).data
    model = DailyChangePointModel().fit(data)
    working, off = model.segments
    assert working.name == "working"
    assert working.form == "5P"
    assert working.heat_cp == pytest.approx(b.heat_cp, abs=1.0)
    assert working.cool_cp == pytest.approx(b.cool_cp, abs=1.0)
    assert working.heat_slope == pytest.approx(b.heat_slope[0], rel=0.1)
    assert working.cool_slope == pytest.approx(b.cool_slope[0], rel=0.1)
    assert working.intercepts[0] == pytest.approx(b.base[0], rel=0.03)
    assert working.intercepts[3] == pytest.approx(b.base[3], rel=0.05)  # make-up workdays
    assert off.intercepts[2] == pytest.approx(b.base[2], rel=0.05)  # statutory holidays
    assert set(off.day_types) == {1, 2}


@pytest.mark.parametrize("form", ["1P", "2P", "3PC", "3PH", "4P", "5P"])
def test_each_form_fits_and_has_signed_slopes(form: str) -> None:
    data = synthetic_daily(*BASELINE, seed=3).data
    model = DailyChangePointModel(DailySettings(forms=(form,))).fit(data)  # type: ignore[arg-type]
    for seg in model.segments:
        assert seg.form == form
        assert seg.heat_slope >= 0
        assert seg.cool_slope >= 0
        if seg.heat_cp is not None and seg.cool_cp is not None and form == "5P":
            assert seg.heat_cp < seg.cool_cp


def test_daily_model_needs_data() -> None:
    data = synthetic_daily(date(2025, 1, 1), date(2025, 1, 20)).data
    with pytest.raises(InsufficientData, match="valid days"):
        DailyChangePointModel().fit(data)


def test_daily_model_ignores_missing_days_without_dropping_rows() -> None:
    data = synthetic_daily(*BASELINE, seed=4).data
    energy = data.energy.copy()
    energy[::9] = np.nan
    holed = data.with_energy(energy)
    model = DailyChangePointModel().fit(holed)
    assert model.stats is not None
    assert model.stats.n == int(np.isfinite(energy).sum())
    assert np.isfinite(model.predict(holed)).all()  # predictions need only T and day type
    assert np.array_equal(holed.energy, energy, equal_nan=True)  # input untouched


@pytest.mark.parametrize("mode", ["calendar", "weekday", "none"])
def test_daily_model_survives_json(mode: str) -> None:
    data = synthetic_daily(*BASELINE, seed=5).data
    model = DailyChangePointModel(DailySettings(day_types=mode)).fit(data)  # type: ignore[arg-type]
    restored = model_from_dict(_json(model))
    other = synthetic_daily(*NEXT_YEAR, seed=6).data
    assert np.array_equal(restored.predict(other), model.predict(other))  # type: ignore[arg-type]
    assert restored.to_dict() == model.to_dict()


@pytest.mark.parametrize("mode", ["calendar", "weekday"])
def test_hourly_model_survives_json(mode: str) -> None:
    data = synthetic_hourly(date(2025, 1, 1), date(2025, 4, 1), seed=7).data
    model = HourlyTOWTModel(HourlySettings(day_types=mode)).fit(data)  # type: ignore[arg-type]
    restored = model_from_dict(_json(model))
    other = synthetic_hourly(date(2025, 4, 1), date(2025, 5, 1), seed=8).data
    assert np.array_equal(restored.predict(other), model.predict(other), equal_nan=True)  # type: ignore[arg-type]
    assert restored.to_dict() == model.to_dict()


@pytest.mark.parametrize("segmentation", ["single", "three_month_weighted"])
def test_hourly_segmented_model_and_its_held_out_months_survive_json(segmentation: str) -> None:
    data = synthetic_hourly(*BASELINE, seed=9).data
    model = HourlyTOWTModel(HourlySettings(segmentation=segmentation)).fit(data)  # type: ignore[arg-type]
    assert model.segmentation == segmentation
    assert len(model.monthly) == (12 if segmentation != "single" else 0)
    model.heldout = held_out_months(model, daily_from_hourly(data), data)
    assert len(model.heldout.months) == 12
    restored = model_from_dict(_json(model))
    other = synthetic_hourly(*NEXT_YEAR, seed=10).data
    assert np.array_equal(restored.predict(other), model.predict(other), equal_nan=True)  # type: ignore[arg-type]
    assert restored.to_dict() == model.to_dict()
    assert restored.heldout == model.heldout  # type: ignore[union-attr]


def test_hourly_model_stored_before_segmentation_still_loads() -> None:
    # A model stored before segmentation existed had no "segmentation"/"monthly" keys: it
    # was one single model and must still predict as one.
    data = synthetic_hourly(date(2025, 1, 1), date(2025, 4, 1), seed=7).data
    model = HourlyTOWTModel(HourlySettings(segmentation="single")).fit(data)
    old = _json(model)
    for key in ("segmentation", "monthly", "single_model_failures", "heldout", "p"):
        old.pop(key)
    old["settings"].pop("segmentation")
    old["version"] = 1
    restored = model_from_dict(old)
    assert isinstance(restored, HourlyTOWTModel)
    assert restored.segmentation == "single"
    assert np.array_equal(restored.predict(data), model.predict(data), equal_nan=True)


def test_three_month_weights_wrap_the_year() -> None:
    months = np.arange(1, 13)
    assert month_weights(months, 1).tolist() == [1, 0.5] + [0] * 9 + [0.5]
    assert month_weights(months, 7).tolist() == [0] * 5 + [0.5, 1, 0.5] + [0] * 4


def test_auto_segmentation_follows_the_single_model_test() -> None:
    """CalTRACK: the single all-year model is kept when at most 2 baseline months miss by more
    than 1 %; this synthetic building's month-to-month drift fails it, the monthly models pass."""
    data = synthetic_hourly(*BASELINE, seed=200).data
    single = HourlyTOWTModel(HourlySettings(segmentation="single")).fit(data)
    auto = HourlyTOWTModel().fit(data)
    assert len(auto.single_model_failures) > 2
    assert auto.single_model_failures == single.single_model_failures
    assert auto.segmentation == "three_month_weighted"
    months = [str(d)[:7] for d in data.day]
    bad_single = sufficiency.monthly_nmbe(months, data.energy, single.predict(data))
    bad_auto = sufficiency.monthly_nmbe(
        months,
        data.energy,
        auto.predict(data),
        segmentation=auto.segmentation,
        single_model_failures=auto.single_model_failures,
    )
    assert [f.severity for f in bad_single] == [Severity.ERROR]
    assert [f.code for f in bad_auto] == ["hourly_segmentation", "monthly_nmbe"]
    assert bad_auto[-1].severity is not Severity.ERROR


def test_billing_model_survives_json_and_sees_the_working_days() -> None:
    daily = synthetic_daily(date(2023, 1, 1), date(2025, 7, 1), seed=9).data
    bills = monthly_periods(daily)
    model = BillingModel().fit(bills)
    assert model.use_w  # the Spring Festival month needs the working-day share
    assert model.stats is not None
    assert model.stats.cvrmse < FIT_LIMITS["billing"][0]
    restored = model_from_dict(_json(model))
    assert np.array_equal(restored.predict(bills), model.predict(bills), equal_nan=True)  # type: ignore[arg-type]


def _out_of_sample_cvrmse(model: object, test: DailyData) -> float:
    predicted = model.predict(test)  # type: ignore[attr-defined]
    return fit_stats(test.energy, predicted, p=0).cvrmse


def test_day_types_matter_daily() -> None:
    """Holidays and make-up workdays: the calendar-typed model beats the weekday-only and the
    untyped one, in and out of sample."""
    train = synthetic_daily(*BASELINE, seed=10).data
    test = synthetic_daily(*NEXT_YEAR, seed=11).data
    fitted = {
        mode: DailyChangePointModel(DailySettings(day_types=mode)).fit(train)  # type: ignore[arg-type]
        for mode in ("calendar", "weekday", "none")
    }
    cv = {mode: m.stats.cvrmse for mode, m in fitted.items()}  # type: ignore[union-attr]
    oos = {mode: _out_of_sample_cvrmse(m, test) for mode, m in fitted.items()}
    assert cv["calendar"] < cv["weekday"] < cv["none"]
    assert oos["calendar"] < oos["weekday"] < oos["none"]
    assert cv["calendar"] < 0.5 * cv["weekday"]


def test_day_types_matter_hourly() -> None:
    train = synthetic_hourly(*BASELINE, seed=12).data
    cal = HourlyTOWTModel(HourlySettings(day_types="calendar")).fit(train)
    week = HourlyTOWTModel(HourlySettings(day_types="weekday")).fit(train)
    assert cal.stats is not None
    assert week.stats is not None
    assert cal.stats.cvrmse < week.stats.cvrmse
    assert cal.stats.cvrmse < FIT_LIMITS["hourly"][0]


def test_hourly_model_daily_sums_track_the_day() -> None:
    data = synthetic_hourly(*BASELINE, seed=13).data
    model = HourlyTOWTModel().fit(data)
    daily = daily_from_hourly(data)
    ds = daily_savings(model, daily, data, np.zeros(len(daily), dtype=bool))
    assert np.nanmax(np.abs(ds.avoided)) / np.nanmean(ds.actual) < 0.25


def test_no_intervention_daily() -> None:
    """A year fitted, the next predicted with no retrofit, on 20 synthetic buildings: every
    model meets the limits, and the 'savings' are zero within their 90 % uncertainty for at
    least 80 % of them (nominally 90 %: the G14 formula is an approximation; here 18 of 20)."""
    within = 0
    for seed in range(100, 120):
        data = synthetic_daily(BASELINE[0], NEXT_YEAR[1], seed=seed).data
        train, test = data.between(*BASELINE), data.between(*NEXT_YEAR)
        model = DailyChangePointModel().fit(train)
        assert model.stats is not None
        cv_max, nmbe_max, _ = FIT_LIMITS["daily"]
        assert model.stats.cvrmse < cv_max
        assert abs(model.stats.nmbe) < nmbe_max
        oos = fit_stats(test.energy, model.predict(test), p=0)
        assert oos.cvrmse < 0.10
        assert abs(oos.nmbe) < 0.02
        ds = daily_savings(model, test, None, np.zeros(len(test), dtype=bool))
        total = summarise(ds, model.stats, "daily", label="", start=NEXT_YEAR[0], end=NEXT_YEAR[1])
        assert abs(total.avoided) < 2.5 * total.u90.u
        within += abs(total.avoided) < total.u90.u
    assert within >= 16, within


def test_no_intervention_hourly() -> None:
    """The same with the hourly model (G14 hourly limits). Every one of these synthetic
    baselines fails CalTRACK's single-model test, so the three-month-weighted models are used.
    The stated interval (`heldout-months`) holds the next year's zero savings 15 of 15 times;
    the ASHRAE 14 hourly figure beside it, known to be optimistic for hourly models, 10 of 15."""
    within = ashrae_within = 0
    for seed in range(200, 215):
        data = synthetic_hourly(BASELINE[0], NEXT_YEAR[1], seed=seed).data
        train, test = data.between(*BASELINE), data.between(*NEXT_YEAR)
        model = HourlyTOWTModel().fit(train)
        assert model.stats is not None
        assert model.segmentation == "three_month_weighted"
        assert model.stats.cvrmse < FIT_LIMITS["hourly"][0]
        assert abs(model.stats.nmbe) < FIT_LIMITS["hourly"][1]
        model.heldout = held_out_months(model, daily_from_hourly(train), train)
        daily = daily_from_hourly(test)
        ds = daily_savings(model, daily, test, np.zeros(len(daily), dtype=bool))
        total = summarise(
            ds,
            model.stats,
            "hourly",
            label="",
            start=NEXT_YEAR[0],
            end=NEXT_YEAR[1],
            heldout=model.heldout,
        )
        assert total.uncertainty_method == "heldout-months"
        assert total.ashrae14_u90 is not None
        assert abs(total.avoided) < 2.5 * total.u90.u
        within += abs(total.avoided) < total.u90.u
        ashrae_within += abs(total.avoided) < total.ashrae14_u90.u
    assert within >= 13, within  # a calibrated 90 % interval: 13.5 of 15 expected
    assert ashrae_within <= within, (ashrae_within, within)


def test_a_retrofit_is_found_within_its_uncertainty() -> None:
    syn = synthetic_daily(
        BASELINE[0], NEXT_YEAR[1], seed=300, retrofit=NEXT_YEAR[0], reduction=0.08
    )
    train, test = syn.data.between(*BASELINE), syn.data.between(*NEXT_YEAR)
    model = DailyChangePointModel().fit(train)
    assert model.stats is not None
    ds = daily_savings(model, test, None, np.zeros(len(test), dtype=bool))
    total = summarise(ds, model.stats, "daily", label="year", start=NEXT_YEAR[0], end=NEXT_YEAR[1])
    sel = syn.data.day >= np.datetime64(NEXT_YEAR[0])
    truth = float(syn.true_savings[sel].sum())
    assert abs(total.avoided - truth) < total.u90.u
    assert total.u68.u < total.u90.u
    assert total.u90.fsu < 0.5


def test_normalised_savings_over_a_typical_year() -> None:
    from processing.savings import normalised_savings, typical_year

    syn = synthetic_daily(
        BASELINE[0], NEXT_YEAR[1], seed=400, retrofit=NEXT_YEAR[0], reduction=0.10
    )
    before = DailyChangePointModel().fit(syn.data.between(*BASELINE))
    after = DailyChangePointModel().fit(syn.data.between(*NEXT_YEAR))
    from core.calendar import WorkCalendar

    typical = typical_year(syn.data, 2025, WorkCalendar().day_type)
    assert len(typical) == 365
    assert np.isfinite(typical.temperature).all()
    saved = normalised_savings(before, after, typical)
    expected = 0.10 * float(before.predict(typical).sum())
    assert saved == pytest.approx(expected, rel=0.05)


def test_savings_from_monthly_bills() -> None:
    from processing.savings import billing_savings

    syn = synthetic_daily(
        date(2023, 7, 1), NEXT_YEAR[1], seed=500, retrofit=NEXT_YEAR[0], reduction=0.08
    )
    bills = monthly_periods(syn.data)
    months = bills.start >= np.datetime64(NEXT_YEAR[0])
    baseline_bills = BillingData(
        bills.start[~months], bills.end[~months], bills.energy[~months], syn.data
    )
    reporting_bills = BillingData(
        bills.start[months], bills.end[months], bills.energy[months], syn.data
    )
    model = BillingModel().fit(baseline_bills)
    total = billing_savings(model, reporting_bills)
    truth = float(syn.true_savings[syn.data.day >= np.datetime64(NEXT_YEAR[0])].sum())
    assert total.u90.m == 12
    assert abs(total.avoided - truth) < total.u90.u
    assert total.u90.fsu < 0.5

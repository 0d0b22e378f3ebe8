"""A statement's figures from its record's parts, and the record recomputed.

    evaluate(contract, model, inputs, month, utility) -> Figures   (pure)
    recompute(record)                                 -> Statement (from the record alone)
    verify(record)                                    -> None, or the first difference

`evaluate` is the one computation behind every statement: `contract.statement_from_usage`
runs it on the store's data, `recompute` on a record's own inputs, so both give the same
numbers. Savings per period (`savings.summarise`), money by the hour for electricity
(`pricing.py`, `economics.value`) or at one price for water, gas and heat, carbon by each
boundary's emission factor, the guarantee on both bases, normalised savings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from core.config import Contract, NonRoutineAdjustment, UtilityName
from core.errors import InsufficientData
from processing import economics, pricing
from processing.baseline import terms_of
from processing.frames import BoolArray, DailyData, FloatArray, HourlyData
from processing.models import (
    BaselineModel,
    BillingModel,
    DailyChangePointModel,
    HourlyTOWTModel,
    model_from_dict,
)
from processing.record import (
    METHOD,
    PRICING_BILLING,
    PRICING_HOURLY,
    PRICING_LEGACY,
    SOFTWARE,
    Statement,
    StatementInputs,
    contract_of,
    first_difference,
)
from processing.savings import (
    DailySavings,
    PeriodSavings,
    adjustment_per_day,
    contract_year_of,
    daily_savings,
    next_month,
    normalised_savings,
    summarise,
    uncertainty_basis,
)
from processing.sufficiency import Finding


def days_of(
    model: BaselineModel,
    daily: DailyData,
    hourly: HourlyData | None,
    estimated: BoolArray,
    adjustments: Sequence[NonRoutineAdjustment] = (),
) -> DailySavings:
    """The reporting days' baseline, adjustments and actual (`savings.daily_savings`); for a
    billing model, its prediction of each day, with one point per billing period (a calendar
    month, counted on its last day): the m of its uncertainty is the number of bills."""
    if not isinstance(model, BillingModel):
        return daily_savings(model, daily, hourly, estimated, adjustments)
    baseline = model.predict_days(daily)
    adjustment = adjustment_per_day(adjustments, daily.day, daily.day_type, baseline)
    month_end = (daily.day + 1).astype("datetime64[M]") != daily.day.astype("datetime64[M]")
    return DailySavings(
        daily.day, baseline, adjustment, daily.energy, np.asarray(estimated, dtype=bool),
        month_end.astype(np.int64),
    )  # fmt: skip


def parse_month(month: str) -> date:
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month {month!r}: expected YYYY-MM") from None
    return first


def month_end_of(contract: Contract, month: str) -> date:
    end = next_month(parse_month(month))
    if contract.reporting_end is not None:
        end = min(end, contract.reporting_end)
    if end <= contract.reporting_start:
        raise InsufficientData(
            f"{month} is before the reporting period ({contract.reporting_start})"
        )
    return end


@dataclass(frozen=True, slots=True)
class Figures:
    """A statement's figures, as `evaluate` computes them from a record's parts."""

    periods: dict[str, PeriodSavings]
    money: dict[str, economics.Money]
    carbon: dict[str, float]
    energy_kwh: dict[str, float]
    guarantee: economics.GuaranteeStatus | None
    normalised: float | None
    pricing: str


def _kwh_by_period(
    contract: Contract, model: BaselineModel, inputs: StatementInputs, ds: DailySavings
) -> FloatArray | None:
    """(days, 4) avoided kWh per tariff period, hour by hour (`pricing.py`); None for a
    record made before the hourly pricing (it has no baseline shape)."""
    assert contract.tariff is not None
    tariff, days = contract.tariff, inputs.daily.day
    if isinstance(model, HourlyTOWTModel):
        if inputs.hourly is None:
            raise ValueError("an hourly model's record needs its hourly inputs")
        predicted = model.predict(inputs.hourly)
        shares, complete = pricing.hourly_shares(days, inputs.hourly, predicted, tariff)
        base = np.where(complete[:, None], shares, pricing.hours_shares(days, tariff))
    elif inputs.profile is not None:
        base = pricing.profile_shares(inputs.profile, days, inputs.daily.day_type, tariff)
    else:
        return None
    actual = np.where(np.isfinite(inputs.shares), inputs.shares, base)
    return pricing.avoided_by_period(ds.adjusted_baseline, ds.actual, base, actual, ds.used)


def evaluate(
    contract: Contract,
    model: BaselineModel,
    inputs: StatementInputs,
    month: str,
    utility: str,
    *,
    method: str = METHOD,
) -> Figures:
    """The statement's figures from a model, the contract and the inputs (pure; shared by
    `statement` and `recompute`). `method`: the version a record was written by; one
    before `METHOD` is priced as it was then."""
    assert model.stats is not None
    terms = terms_of(contract, utility)
    first = parse_month(month)
    month_end = next_month(first)
    if contract.reporting_end is not None:
        month_end = min(month_end, contract.reporting_end)
    start = contract.reporting_start
    adjustments = [a for a in contract.adjustments if a.utility == utility]
    ds = days_of(model, inputs.daily, inputs.hourly, inputs.estimated, adjustments)
    gran = model.GRANULARITY
    basis = uncertainty_basis(model, contract.baseline.uncertainty_method)
    n, ys, _ = contract_year_of(start, max(first, start))
    periods = {
        "month": summarise(
            ds,
            model.stats,
            gran,
            label=month,
            start=max(first, start),
            end=month_end,
            heldout=basis,
        ),
        "year_to_date": summarise(
            ds,
            model.stats,
            gran,
            label=f"contract year {n} to date",
            start=ys,
            end=month_end,
            heldout=basis,
        ),
        "cumulative": summarise(
            ds, model.stats, gran, label="cumulative", start=start, end=month_end, heldout=basis
        ),
    }
    priced = terms.time_of_use and contract.tariff is not None
    current = method.startswith(METHOD)
    by_period = _kwh_by_period(contract, model, inputs, ds) if priced and current else None
    prices = economics.period_prices(ds.day, contract.tariff) if contract.tariff else None
    money: dict[str, economics.Money] = {}
    carbon: dict[str, float] = {}
    energy_kwh: dict[str, float] = {}
    for key, p in periods.items():
        sel = (ds.day >= np.datetime64(p.start)) & (ds.day < np.datetime64(p.end)) & ds.used
        if priced and prices is not None:
            if by_period is None:
                avoided = np.where(sel, ds.avoided, 0.0)
                money[key] = economics.value_shares(
                    avoided, inputs.shares, prices, contract.vendor_share
                )
            else:
                kwh = np.where(sel[:, None], by_period, 0.0)
                money[key] = economics.value(kwh, prices, contract.vendor_share)
        elif not terms.time_of_use:
            value = economics.flat_value(p.avoided, terms, contract.vendor_share)
            if value is not None:
                money[key] = value
        carbon[key] = economics.carbon_t(p.avoided, terms)
        if terms.kwh_per_unit is not None and terms.unit != "kWh":
            energy_kwh[key] = p.avoided * terms.kwh_per_unit
    guarantee = None
    if utility == "electricity" and contract.guarantee is not None:
        ytd = periods["year_to_date"]
        price = money["year_to_date"].average_price if "year_to_date" in money else 0.0
        guarantee = economics.guarantee_status(
            contract,
            year=n,
            year_start=ys,
            year_end=contract_year_of(start, ys)[2],
            through=month_end,
            achieved_kwh=ytd.avoided,
            average_price=price,
            u90=ytd.u90,
        )
    normalised = None
    if (
        contract.statements.normalised
        and inputs.typical_temperature is not None
        and isinstance(model, DailyChangePointModel)
    ):
        normalised = _normalised(model, inputs, month_end)
    if not terms.time_of_use:
        method = f"one price per {terms.unit}" if terms.price is not None else "no price"
    elif contract.tariff is None:
        method = "no tariff"
    elif isinstance(model, BillingModel):
        method = PRICING_BILLING
    else:
        method = PRICING_LEGACY if by_period is None else PRICING_HOURLY
    return Figures(periods, money, carbon, energy_kwh, guarantee, normalised, method)


def _normalised(
    model: DailyChangePointModel, inputs: StatementInputs, through: date
) -> float | None:
    """Normalised savings over a typical year: a reporting-period model fitted on the last
    365 reporting days before `through`; both models driven by those days' calendar with the
    typical temperature of each day of the year."""
    first = through - timedelta(days=365)
    sel = (inputs.daily.day >= np.datetime64(first)) & (inputs.daily.day < np.datetime64(through))
    daily = inputs.daily.take(sel)
    valid = daily.valid & ~inputs.estimated[sel]
    if len(daily) < 365 or valid.sum() < 300:
        return None
    reporting_model = DailyChangePointModel(model.settings).fit(
        daily.with_energy(np.where(valid, daily.energy, np.nan))
    )
    assert inputs.typical_temperature is not None
    doy = np.minimum((daily.day - daily.day.astype("datetime64[Y]")).astype(np.int64), 364)
    typical = DailyData(
        daily.day, inputs.typical_temperature[doy], daily.day_type, np.full(len(daily), np.nan)
    )
    return normalised_savings(model, reporting_model, typical)


def build_statement(
    contract_id: str,
    utility: UtilityName,
    unit: str,
    month: str,
    figures: Figures,
    *,
    findings: tuple[Finding, ...],
    model: dict[str, Any],
    contract: dict[str, Any],
    inputs: StatementInputs,
    created_at: str,
    calendar: str,
    software: str = SOFTWARE,
) -> Statement:
    periods = figures.periods
    return Statement(
        contract_id=contract_id,
        utility=utility,
        unit=unit,
        month=month,
        month_savings=periods["month"],
        year_to_date=periods["year_to_date"],
        cumulative=periods["cumulative"],
        money=figures.money,
        carbon_t=figures.carbon,
        guarantee=figures.guarantee,
        normalised=figures.normalised,
        findings=findings,
        model=model,
        contract=contract,
        inputs=inputs,
        inputs_digest=inputs.digest(),
        created_at=created_at,
        software=software,
        energy_kwh=figures.energy_kwh,
        pricing=figures.pricing,
        calendar=calendar,
    )


def recompute(stored: dict[str, Any]) -> Statement:
    """The statement recomputed from its record alone (model, contract, inputs)."""
    original = Statement.from_dict(stored)
    contract = contract_of(stored)
    model = model_from_dict(original.model)
    figures = evaluate(
        contract, model, original.inputs, original.month, original.utility,
        method=original.software,
    )  # fmt: skip
    return build_statement(
        original.contract_id,
        original.utility,
        original.unit,
        original.month,
        figures,
        findings=original.findings,
        model=original.model,
        contract=original.contract,
        inputs=original.inputs,
        created_at=original.created_at,
        calendar=original.calendar,
        software=original.software,
    )


def verify(record: dict[str, Any]) -> str | None:
    """Recompute a statement from its record alone and compare: None when every figure and
    the inputs digest agree, else the first difference (`record.first_difference`)."""
    again = recompute(record)
    if again.inputs_digest != record.get("inputs_digest"):
        return (
            f"inputs_digest: {record.get('inputs_digest')!r} in the file, the inputs in it "
            f"digest to {again.inputs_digest!r} (the inputs were changed)"
        )
    older = not str(record.get("software", "")).startswith(METHOD)
    return first_difference(
        {"numbers": record["numbers"]}, {"numbers": again.numbers()}, new_keys=older
    )


__all__ = [
    "Figures",
    "build_statement",
    "evaluate",
    "month_end_of",
    "parse_month",
    "recompute",
    "verify",
]

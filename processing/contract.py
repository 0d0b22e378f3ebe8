"""A contract's savings and monthly statements: what the vendor is paid from.

    fit_baseline(site, contract_id, store)            -> Baseline   (model + findings; baseline.py)
    compute_savings(site, contract_id, store, ...)    -> SavingsResult (per day, month, year, total)
    statement(site, contract_id, store, month, ...)   -> Statement  (one month, year to date,
                                                         cumulative; money by the hour, carbon,
                                                         the guarantee on both bases)
    recompute(record)                                 -> Statement  (from the record alone)
    verify(record)                                    -> None, or the first difference

A statement carries everything needed to recompute it without the store (`record.py`): the
fitted model's JSON, the contract as configured, and the reporting-period inputs. `recompute()`
runs the same pure evaluation on them and must give the same numbers; the inputs digest tells
whether the store's data still agree with what the statement used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from core.config import Contract, SiteConfig, UtilityName
from core.errors import InsufficientData
from processing import economics, pricing, sufficiency
from processing.baseline import (
    Baseline,
    fit_baseline,
    fit_baseline_from_usage,
    load,
    terms_of,
    uncovered,
)
from processing.frames import DAY_TYPES, DailyData, FloatArray, local_day_edges_ms
from processing.models import (
    ContractModel,
    DailyChangePointModel,
    HourlyTOWTModel,
    entry_of,
    model_from_dict,
)
from processing.pricing import fit_profile
from processing.record import (
    PRICING_HOURLY,
    PRICING_LEGACY,
    SOFTWARE,
    Statement,
    StatementInputs,
    first_difference,
)
from processing.savings import (
    DailySavings,
    PeriodSavings,
    contract_year_of,
    daily_savings,
    months_between,
    next_month,
    normalised_savings,
    summarise,
    typical_year,
)
from processing.sufficiency import Finding, Severity
from processing.usage import Usage
from storage.base import TimeSeriesStore

Utility = UtilityName  # the name other modules import from here

# -- savings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavingsResult:
    """Avoided energy of a contract's boundary per day, month, contract year and in total."""

    contract_id: str
    utility: UtilityName
    unit: str
    baseline: Baseline
    daily: DailySavings
    months: tuple[PeriodSavings, ...]
    years: tuple[PeriodSavings, ...]
    total: PeriodSavings
    findings: tuple[Finding, ...]


def _local_today(site: SiteConfig) -> date:
    return datetime.now(ZoneInfo(site.site.timezone)).date()


def _reporting_end(contract: Contract, end: date | None, today: date) -> date:
    limit = contract.reporting_end or today
    return min(end, limit) if end is not None else limit


def savings_from_usage(
    contract: Contract,
    baseline: Baseline,
    usage: Usage,
    *,
    start: date,
    end: date,
    uncovered_years: tuple[int, ...] = (),
) -> SavingsResult:
    """Savings over the reporting days start <= d < end of `usage` (pure)."""
    utility = baseline.utility
    model = baseline.model
    assert model.stats is not None
    daily = usage.daily.between(start, end)
    sel = (usage.daily.day >= np.datetime64(start)) & (usage.daily.day < np.datetime64(end))
    hourly = usage.hourly.between(start, end)
    adjustments = [a for a in contract.adjustments if a.utility == utility]
    ds = daily_savings(model, daily, hourly, usage.daily_estimated[sel], adjustments)
    gran = model.GRANULARITY
    months = tuple(
        summarise(ds, model.stats, gran, label=label, start=a, end=b)
        for label, a, b in months_between(start, end)
    )
    years = []
    n = 1
    y_start = contract.reporting_start
    while y_start < end:
        _, ys, ye = contract_year_of(contract.reporting_start, y_start)
        years.append(
            summarise(
                ds,
                model.stats,
                gran,
                label=f"contract year {n}",
                start=max(ys, start),
                end=min(ye, end),
            )
        )
        y_start, n = ye, n + 1
    total = summarise(ds, model.stats, gran, label="total", start=start, end=end)
    findings = list(sufficiency.counter_events(usage.events))
    findings += sufficiency.calendar_coverage(uncovered_years)
    findings += sufficiency.temperature_range(*baseline.temperature_range, daily)
    findings += sufficiency.savings_uncertainty(total.u68, total.u90, "total")
    return SavingsResult(
        contract_id=contract.id,
        utility=utility,
        unit=terms_of(contract, utility).unit,
        baseline=baseline,
        daily=ds,
        months=months,
        years=tuple(years),
        total=total,
        findings=tuple(findings),
    )


def compute_savings(
    site: SiteConfig,
    contract_id: str,
    store: TimeSeriesStore,
    *,
    utility: UtilityName = "electricity",
    start: date | None = None,
    end: date | None = None,
    baseline: Baseline | None = None,
) -> SavingsResult:
    """Avoided energy of the contract's boundary, read from the store.

    Fits the baseline unless one is given; the reporting days are start <= d < end, by
    default the contract's reporting period up to today (local) or its `reporting_end`.
    """
    contract = site.contract(contract_id)
    if baseline is None:
        baseline = fit_baseline(site, contract_id, store, utility=utility)
    first = max(start or contract.reporting_start, contract.reporting_start)
    last = _reporting_end(contract, end, _local_today(site))
    if last <= first:
        raise InsufficientData(f"no reporting days between {first} and {last}")
    usage = load(site, contract, store, utility, first, last)
    return savings_from_usage(
        contract,
        baseline,
        usage,
        start=first,
        end=last,
        uncovered_years=uncovered(site, first, last),
    )


# -- statements ------------------------------------------------------------------------------


def parse_month(month: str) -> date:
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month {month!r}: expected YYYY-MM") from None
    return first


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
    contract: Contract, model: ContractModel, inputs: StatementInputs, ds: DailySavings
) -> FloatArray | None:
    """(days, 4) avoided kWh per tariff period, hour by hour (`pricing.py`); None for a
    record made before the hourly pricing (it has no baseline shape)."""
    assert contract.tariff is not None
    tariff, days = contract.tariff, inputs.daily.day
    if entry_of(model).hourly_inputs:
        if inputs.hourly is None:
            raise ValueError("an hourly model's record needs its hourly inputs")
        predicted = model.predict(inputs.hourly)  # type: ignore[arg-type]
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
    model: ContractModel,
    inputs: StatementInputs,
    month: str,
    utility: str,
) -> Figures:
    """The statement's figures from a model, the contract and the inputs (pure; shared by
    `statement` and `recompute`)."""
    assert model.stats is not None
    terms = terms_of(contract, utility)
    first = parse_month(month)
    month_end = next_month(first)
    if contract.reporting_end is not None:
        month_end = min(month_end, contract.reporting_end)
    start = contract.reporting_start
    adjustments = [a for a in contract.adjustments if a.utility == utility]
    ds = daily_savings(model, inputs.daily, inputs.hourly, inputs.estimated, adjustments)
    gran = model.GRANULARITY
    n, ys, _ = contract_year_of(start, max(first, start))
    periods = {
        "month": summarise(
            ds, model.stats, gran, label=month, start=max(first, start), end=month_end
        ),
        "year_to_date": summarise(
            ds, model.stats, gran, label=f"contract year {n} to date", start=ys, end=month_end
        ),
        "cumulative": summarise(
            ds, model.stats, gran, label="cumulative", start=start, end=month_end
        ),
    }
    priced = terms.time_of_use and contract.tariff is not None
    by_period = _kwh_by_period(contract, model, inputs, ds) if priced else None
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


def statement_from_usage(
    contract: Contract,
    baseline: Baseline,
    usage: Usage,
    month: str,
    *,
    history: DailyData | None = None,
    findings: tuple[Finding, ...] = (),
    created_at: str | None = None,
    calendar: str = "",
) -> Statement:
    """The month's statement from the reporting usage (reporting start through the month)."""
    utility = baseline.utility
    first = parse_month(month)
    month_end = _month_end(contract, month)
    start = contract.reporting_start
    daily = usage.daily.between(start, month_end)
    sel = (usage.daily.day >= np.datetime64(start)) & (usage.daily.day < np.datetime64(month_end))
    hourly_all = usage.hourly.between(start, month_end)
    shares = np.zeros((len(daily), 4))
    if contract.tariff is not None and terms_of(contract, utility).time_of_use:
        # NaN rows: days without every hour; `evaluate` spreads them like the baseline
        shares = pricing.period_shares(
            daily.day, hourly_all, contract.tariff, np.full((len(daily), 4), np.nan)
        )
    typical = None
    if contract.statements.normalised and history is not None:
        typical = typical_year(history, 2001, lambda d: DAY_TYPES[0]).temperature  # a 365-day year
    hourly_model = entry_of(baseline.model).hourly_inputs
    inputs = StatementInputs(
        daily=daily,
        estimated=usage.daily_estimated[sel],
        shares=shares,
        hourly=hourly_all if hourly_model else None,
        typical_temperature=typical,
        profile=None if hourly_model else baseline.profile,
    )
    figures = evaluate(contract, baseline.model, inputs, month, utility)
    periods = figures.periods
    found = list(baseline.findings) + list(findings)
    found += sufficiency.temperature_range(
        *baseline.temperature_range, daily.between(first, month_end)
    )
    for key in ("month", "cumulative"):
        found += sufficiency.savings_uncertainty(
            periods[key].u68, periods[key].u90, periods[key].label
        )
    missing = periods["month"].days - periods["month"].days_used
    if missing:
        found.append(
            Finding(
                "reporting_days_missing",
                Severity.WARNING,
                "IPMVP: avoided energy only over days with both baseline and actual known",
                f"{missing} of {periods['month'].days} days of {month} could not be counted",
                {"missing": missing, "days": periods["month"].days},
            )
        )
    return _statement(
        contract.id,
        utility,
        terms_of(contract, utility).unit,
        month,
        figures,
        findings=tuple(found),
        model=baseline.model.to_dict(),
        contract=contract.model_dump(mode="json"),
        inputs=inputs,
        created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        calendar=calendar,
    )


def _statement(
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


def _month_end(contract: Contract, month: str) -> date:
    end = next_month(parse_month(month))
    if contract.reporting_end is not None:
        end = min(end, contract.reporting_end)
    if end <= contract.reporting_start:
        raise InsufficientData(
            f"{month} is before the reporting period ({contract.reporting_start})"
        )
    return end


def _with_profile(
    site: SiteConfig, contract: Contract, store: TimeSeriesStore, baseline: Baseline
) -> Baseline:
    """A daily baseline stored before baselines kept their hourly profile gets one from the
    baseline period's data (the model itself is not refitted)."""
    if baseline.profile is not None or entry_of(baseline.model).hourly_inputs:
        return baseline
    usage = load(site, contract, store, baseline.utility, baseline.start, baseline.end)
    profile = fit_profile(usage.hourly, usage.hourly_estimated)
    return Baseline(
        baseline.contract_id, baseline.utility, baseline.model, baseline.findings,
        baseline.start, baseline.end, baseline.temperature_range, baseline.inputs_digest,
        baseline.fitted_at, profile,
    )  # fmt: skip


def statements(
    site: SiteConfig,
    contract_id: str,
    store: TimeSeriesStore,
    months: Sequence[str],
    *,
    baseline: Baseline | None = None,
    utility: UtilityName = "electricity",
) -> list[Statement]:
    """The statements of several months (YYYY-MM) from one read of the store; each sees only
    the data up to its own month's end, so it equals `statement()` of that month."""
    contract = site.contract(contract_id)
    if baseline is None:
        baseline = fit_baseline(site, contract_id, store, utility=utility)
    ends = [_month_end(contract, m) for m in months]
    if not ends:
        return []
    baseline = _with_profile(site, contract, store, baseline)
    start = contract.reporting_start
    usage = load(site, contract, store, utility, start, max(ends))
    history = None
    if contract.statements.normalised:
        history = load(site, contract, store, utility, contract.baseline_start, max(ends)).daily
    tz = site.site.timezone
    calendar = site.work_calendar.describe()
    out = []
    for month, end in zip(months, ends, strict=True):
        end_ms = int(local_day_edges_ms(end, end, tz)[0])
        events = {
            meter: tuple(e for e in evs if e.start_ms < end_ms)
            for meter, evs in usage.events.items()
        }
        extra = sufficiency.counter_events(events) + sufficiency.calendar_coverage(
            uncovered(site, start, end)
        )
        out.append(
            statement_from_usage(
                contract,
                baseline,
                usage,
                month,
                history=None if history is None else history.between(contract.baseline_start, end),
                findings=tuple(extra),
                calendar=calendar,
            )
        )
    return out


def check_month_closed(site: SiteConfig, contract_id: str, month: str) -> None:
    """Refuse (`InsufficientData`) a month that is not a closed month of the reporting period:
    before it, or not over yet in the site's time zone. A statement of an open month would be
    a final-looking number for a month that is still being consumed."""
    contract = site.contract(contract_id)
    end = _month_end(contract, month)
    today = _local_today(site)
    if end > today:
        raise InsufficientData(
            f"{month} has not ended (today is {today} in {site.site.timezone}): its statement "
            f"can be written from {end}; `epcmon run` writes it by itself "
            f"{contract.statements.settle_days} days later"
        )


def check_has_data(stmt: Statement) -> None:
    """Refuse a statement with no reporting day counted: it would say 0 saved, not 'unknown'."""
    p = stmt.month_savings
    if p.days_used == 0:
        raise InsufficientData(
            f"no data for {stmt.month}: none of its {p.days} days has both the boundary's "
            "consumption and the baseline's drivers in the store"
        )


def statement(
    site: SiteConfig,
    contract_id: str,
    store: TimeSeriesStore,
    month: str,
    *,
    baseline: Baseline | None = None,
    utility: UtilityName = "electricity",
) -> Statement:
    """The monthly statement of `month` (YYYY-MM), read from the store. Refuses a month that
    has not ended and one without data (`InsufficientData`)."""
    check_month_closed(site, contract_id, month)
    stmt = statements(site, contract_id, store, [month], baseline=baseline, utility=utility)[0]
    check_has_data(stmt)
    return stmt


def recompute(stored: dict[str, Any]) -> Statement:
    """The statement recomputed from its record alone (model, contract, inputs)."""
    original = Statement.from_dict(stored)
    contract = Contract.model_validate(original.contract)
    model = model_from_dict(original.model)
    if not isinstance(model, DailyChangePointModel | HourlyTOWTModel):
        raise ValueError(f"{model.KIND} is not a contract baseline model")
    figures = evaluate(contract, model, original.inputs, original.month, original.utility)
    return _statement(
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
    return first_difference({"numbers": record["numbers"]}, {"numbers": again.numbers()})


__all__ = [
    "Baseline",
    "Figures",
    "SavingsResult",
    "Statement",
    "StatementInputs",
    "check_has_data",
    "check_month_closed",
    "compute_savings",
    "evaluate",
    "fit_baseline",
    "fit_baseline_from_usage",
    "parse_month",
    "recompute",
    "savings_from_usage",
    "statement",
    "statement_from_usage",
    "statements",
    "verify",
]

"""A contract's savings and monthly statements: what the vendor is paid from.

    fit_baseline(site, contract_id, store)            -> Baseline   (model + findings; baseline.py)
    compute_savings(site, contract_id, store, ...)    -> SavingsResult (per day, month, year, total)
    statement(site, contract_id, store, month, ...)   -> Statement  (one month, year to date,
                                                         cumulative; money by the hour, carbon,
                                                         the guarantee on both bases)
    recompute(record)                                 -> Statement  (the record alone: evaluate.py)
    verify(record)                                    -> None, or the first difference

A statement carries everything needed to recompute it without the store (`record.py`): the
fitted model's JSON, the contract as configured, and the reporting-period inputs. `recompute()`
runs the same pure evaluation (`evaluate.py`) on them and must give the same numbers; the
inputs digest tells whether the store's data still agree with what the statement used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from core.config import Contract, SiteConfig, UtilityName
from core.errors import InsufficientData
from processing import pricing, sufficiency
from processing.baseline import (
    Baseline,
    fit_baseline,
    fit_baseline_from_usage,
    load,
    terms_of,
    uncovered,
)
from processing.evaluate import (
    Figures,
    build_statement,
    days_of,
    evaluate,
    month_end_of,
    parse_month,
    recompute,
    verify,
)
from processing.frames import DAY_TYPES, DailyData, local_day_edges_ms
from processing.models import (
    entry_of,
)
from processing.pricing import fit_profile
from processing.record import Statement, StatementInputs
from processing.savings import (
    DailySavings,
    PeriodSavings,
    contract_year_of,
    months_between,
    summarise,
    typical_year,
    uncertainty_basis,
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
    ds = days_of(model, daily, hourly, usage.daily_estimated[sel], adjustments)
    gran = model.GRANULARITY
    basis = uncertainty_basis(model, contract.baseline.uncertainty_method)
    months = tuple(
        summarise(ds, model.stats, gran, label=label, start=a, end=b, heldout=basis)
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
                heldout=basis,
            )
        )
        y_start, n = ye, n + 1
    total = summarise(ds, model.stats, gran, label="total", start=start, end=end, heldout=basis)
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
    usage = load(site, contract, store, utility, first, last, model=entry_of(baseline.model).name)
    return savings_from_usage(
        contract,
        baseline,
        usage,
        start=first,
        end=last,
        uncovered_years=uncovered(site, first, last),
    )


# -- statements ------------------------------------------------------------------------------


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
    month_end = month_end_of(contract, month)
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
    return build_statement(
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


def _with_profile(
    site: SiteConfig, contract: Contract, store: TimeSeriesStore, baseline: Baseline
) -> Baseline:
    """A daily baseline stored before baselines kept their hourly profile gets one from the
    baseline period's data (the model itself is not refitted)."""
    if baseline.profile is not None or entry_of(baseline.model).hourly_inputs:
        return baseline
    usage = load(
        site, contract, store, baseline.utility, baseline.start, baseline.end,
        model=entry_of(baseline.model).name,
    )  # fmt: skip
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
    ends = [month_end_of(contract, m) for m in months]
    if not ends:
        return []
    baseline = _with_profile(site, contract, store, baseline)
    start = contract.reporting_start
    kind = entry_of(baseline.model).name
    usage = load(site, contract, store, utility, start, max(ends), model=kind)
    history = None
    if contract.statements.normalised:
        history = load(
            site, contract, store, utility, contract.baseline_start, max(ends), model=kind
        ).daily
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
    end = month_end_of(contract, month)
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

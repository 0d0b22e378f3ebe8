"""A contract's baseline, savings and monthly statements: what the vendor is paid from.

    fit_baseline(site, contract_id, store)            -> Baseline   (model + findings)
    compute_savings(site, contract_id, store, ...)    -> SavingsResult (per day, month, year, total)
    statement(site, contract_id, store, month, ...)   -> Statement  (one month, year to date,
                                                         cumulative; money, carbon, guarantee)
    recompute(statement_dict)                         -> Statement  (from the stored JSON only)

A statement carries everything needed to recompute it without the store: the fitted model's
JSON, the contract as configured, and the reporting-period inputs (per day: temperature, day
type, actual, whether interpolated, tariff-period shares; per hour for an hourly model).
`recompute()` runs the same pure evaluation on them and must give the same numbers; the inputs
digest tells whether the store's data still agree with what the statement used.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np

from core.config import Contract, SiteConfig, contract_weather_station
from core.errors import InsufficientData
from processing import economics, sufficiency
from processing.frames import (
    DAY_TYPES,
    BoolArray,
    DailyData,
    FloatArray,
    HourlyData,
    local_day_edges_ms,
)
from processing.models import (
    BaselineModel,
    DailyChangePointModel,
    DailySettings,
    HourlySettings,
    HourlyTOWTModel,
    model_from_dict,
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
    uncertainty_basis,
)
from processing.sufficiency import Finding, Severity
from processing.uncertainty import held_out_months
from processing.usage import QUANTITY_OF_UTILITY, Usage, load_usage
from storage.base import TimeSeriesStore

Utility = Literal["electricity", "water"]
UNIT = {"electricity": "kWh", "water": "m3"}
SOFTWARE = "epcmon-processing/1"


# -- baselines -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """A fitted baseline and what was found about its data."""

    contract_id: str
    utility: Utility
    model: BaselineModel
    findings: tuple[Finding, ...]
    start: date
    end: date
    temperature_range: tuple[float, float]
    inputs_digest: str
    fitted_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "utility": self.utility,
            "model": self.model.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "temperature_range": list(self.temperature_range),
            "inputs_digest": self.inputs_digest,
            "fitted_at": self.fitted_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        lo, hi = data["temperature_range"]
        return cls(
            contract_id=data["contract_id"],
            utility=data["utility"],
            model=model_from_dict(data["model"]),
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            start=date.fromisoformat(data["start"]),
            end=date.fromisoformat(data["end"]),
            temperature_range=(float(lo), float(hi)),
            inputs_digest=data["inputs_digest"],
            fitted_at=data["fitted_at"],
        )


def _meters(contract: Contract, utility: Utility) -> tuple[str, ...]:
    meters = contract.meters if utility == "electricity" else contract.water_meters
    if not meters:
        raise InsufficientData(f"contract {contract.id!r} has no {utility} boundary")
    return meters


def _load(
    site: SiteConfig,
    contract: Contract,
    store: TimeSeriesStore,
    utility: Utility,
    start: date,
    end: date,
) -> Usage:
    return load_usage(
        store,
        meters=_meters(contract, utility),
        quantity=QUANTITY_OF_UTILITY[utility],
        weather_station=contract_weather_station(site, contract),
        start=start,
        end=end,
        tz=site.site.timezone,
        day_type=site.work_calendar.day_type,
        max_gap_ms=contract.baseline.max_gap_minutes * 60_000,
    )


def fit_baseline_from_usage(
    contract: Contract,
    usage: Usage,
    *,
    utility: Utility = "electricity",
    model: Literal["daily", "hourly"] | None = None,
    day_types: Literal["calendar", "weekday", "none"] | None = None,
    uncovered_years: tuple[int, ...] = (),
    fitted_at: str | None = None,
) -> Baseline:
    """Fit the contract's baseline model on usage of its baseline period (pure)."""
    kind = model or contract.baseline.model
    modes = day_types or contract.baseline.day_types
    start, end = contract.baseline_start, contract.baseline_end
    daily = usage.daily.between(start, end)
    in_period = (usage.daily.day >= np.datetime64(start)) & (usage.daily.day < np.datetime64(end))
    d_est = usage.daily_estimated[in_period]
    findings = sufficiency.baseline_data(daily, start=start, end=end, estimated=d_est.tolist())
    findings += sufficiency.counter_events(usage.events)
    findings += sufficiency.calendar_coverage(uncovered_years)
    fit_daily = daily.with_energy(np.where(d_est, np.nan, daily.energy))
    fitted: BaselineModel
    fit_hourly: HourlyData | None = None
    if kind == "daily":
        fitted = DailyChangePointModel(
            DailySettings(day_types=modes, cap_n_eff=contract.baseline.cap_n_eff)
        ).fit(fit_daily)
        residuals = fit_daily.energy - fitted.predict(fit_daily)
        days = daily.day
        t = fit_daily.temperature[fit_daily.valid]
    else:
        hourly = usage.hourly.between(start, end)
        h_sel = (usage.hourly.day >= np.datetime64(start)) & (usage.hourly.day < np.datetime64(end))
        fit_hourly = hourly.with_energy(
            np.where(usage.hourly_estimated[h_sel], np.nan, hourly.energy)
        )
        fitted = HourlyTOWTModel(
            HourlySettings(
                day_types="weekday" if modes == "weekday" else "calendar",
                cap_n_eff=contract.baseline.cap_n_eff,
            )
        ).fit(fit_hourly)
        predicted = fitted.predict(fit_hourly)
        months = [str(d)[:7] for d in fit_hourly.day]
        findings += sufficiency.monthly_nmbe(
            months,
            fit_hourly.energy,
            predicted,
            segmentation=fitted.segmentation,
            single_model_failures=fitted.single_model_failures,
        )
        # outliers judged per day on the hourly model's daily sums
        day_pred = DailyData(daily.day, daily.temperature, daily.day_type, np.zeros(len(daily)))
        residuals = _daily_sums(fit_hourly, predicted, day_pred)
        days = daily.day
        t = fit_hourly.temperature[fit_hourly.valid]
    assert fitted.stats is not None
    fitted.heldout = held_out_months(fitted, fit_daily, fit_hourly)
    findings += sufficiency.fit_quality(fitted.stats, fitted.GRANULARITY)
    findings += sufficiency.outliers(days, residuals)
    return Baseline(
        contract_id=contract.id,
        utility=utility,
        model=fitted,
        findings=tuple(findings),
        start=start,
        end=end,
        temperature_range=(float(t.min()), float(t.max())) if len(t) else (math.nan, math.nan),
        inputs_digest=usage.digest(),
        fitted_at=fitted_at or datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _daily_sums(hourly: HourlyData, predicted: FloatArray, daily: DailyData) -> FloatArray:
    idx = np.searchsorted(daily.day, hourly.day)
    diff = hourly.energy - predicted
    ok = np.isfinite(diff)
    sums = np.bincount(idx[ok], weights=diff[ok], minlength=len(daily))
    bad = np.bincount(idx[~ok], minlength=len(daily))
    return np.where(bad == 0, sums, np.nan)


def _uncovered(site: SiteConfig, start: date, end: date) -> tuple[int, ...]:
    return tuple(site.work_calendar.uncovered_years(range(start.year, end.year + 1)))


def fit_baseline(
    site: SiteConfig,
    contract_id: str,
    store: TimeSeriesStore,
    *,
    utility: Utility = "electricity",
    model: Literal["daily", "hourly"] | None = None,
    day_types: Literal["calendar", "weekday", "none"] | None = None,
) -> Baseline:
    """Read the baseline period from the store and fit the contract's baseline model."""
    contract = site.contract(contract_id)
    usage = _load(site, contract, store, utility, contract.baseline_start, contract.baseline_end)
    return fit_baseline_from_usage(
        contract,
        usage,
        utility=utility,
        model=model,
        day_types=day_types,
        uncovered_years=_uncovered(site, contract.baseline_start, contract.baseline_end),
    )


# -- savings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavingsResult:
    """Avoided energy of a contract's boundary per day, month, contract year and in total."""

    contract_id: str
    utility: Utility
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
        unit=UNIT[utility],
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
    utility: Utility = "electricity",
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
    usage = _load(site, contract, store, utility, first, last)
    return savings_from_usage(
        contract,
        baseline,
        usage,
        start=first,
        end=last,
        uncovered_years=_uncovered(site, first, last),
    )


# -- statements ------------------------------------------------------------------------------


def _floats(a: FloatArray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in a.tolist()]


def _unfloats(values: list[float | None]) -> FloatArray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class StatementInputs:
    """The reporting-period data a statement was computed from (all it needs to recompute)."""

    daily: DailyData
    estimated: BoolArray
    shares: FloatArray  # (days, 4) tariff-period shares of each day's consumption
    hourly: HourlyData | None  # only for an hourly model
    typical_temperature: FloatArray | None = None  # 365 typical-year means, for normalised savings

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "daily": {
                "day": [str(x) for x in self.daily.day],
                "temperature": _floats(self.daily.temperature),
                "day_type": [DAY_TYPES[c].value for c in self.daily.day_type],
                "actual": _floats(self.daily.energy),
                "estimated": [bool(x) for x in self.estimated],
            },
            "shares": [[float(v) for v in row] for row in self.shares],
            "hourly": None,
            "typical_temperature": None
            if self.typical_temperature is None
            else _floats(self.typical_temperature),
        }
        if self.hourly is not None:
            h = self.hourly
            d["hourly"] = {
                "ts_ms": [int(x) for x in h.ts_ms],
                "hour_of_week": [int(x) for x in h.hour_of_week],
                "day": [str(x) for x in h.day],
                "day_type": [int(x) for x in h.day_type],
                "temperature": _floats(h.temperature),
                "actual": _floats(h.energy),
            }
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatementInputs:
        codes = {t.value: i for i, t in enumerate(DAY_TYPES)}
        dd = data["daily"]
        daily = DailyData(
            np.array(dd["day"], dtype="datetime64[D]"),
            _unfloats(dd["temperature"]),
            np.array([codes[t] for t in dd["day_type"]], dtype=np.int64),
            _unfloats(dd["actual"]),
        )
        hourly = None
        if data["hourly"] is not None:
            hd = data["hourly"]
            hourly = HourlyData(
                np.array(hd["ts_ms"], dtype=np.int64),
                np.array(hd["hour_of_week"], dtype=np.int64),
                np.array(hd["day"], dtype="datetime64[D]"),
                np.array(hd["day_type"], dtype=np.int64),
                _unfloats(hd["temperature"]),
                _unfloats(hd["actual"]),
            )
        typical = data.get("typical_temperature")
        return cls(
            daily,
            np.array(dd["estimated"], dtype=bool),
            np.array(data["shares"], dtype=np.float64).reshape(-1, 4),
            hourly,
            None if typical is None else _unfloats(typical),
        )

    def digest(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Statement:
    """One month's verified savings of one boundary of a contract, with its provenance."""

    contract_id: str
    utility: Utility
    unit: str
    month: str
    month_savings: PeriodSavings
    year_to_date: PeriodSavings
    cumulative: PeriodSavings
    money: dict[str, economics.Money]  # "month", "year_to_date", "cumulative"
    carbon_t: dict[str, float]
    guarantee: economics.GuaranteeStatus | None
    normalised: float | None
    findings: tuple[Finding, ...]
    model: dict[str, Any]
    contract: dict[str, Any]
    inputs: StatementInputs
    inputs_digest: str
    created_at: str
    software: str = SOFTWARE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def periods(self) -> tuple[tuple[str, PeriodSavings], ...]:
        return (
            ("month", self.month_savings),
            ("year_to_date", self.year_to_date),
            ("cumulative", self.cumulative),
        )

    def numbers(self) -> dict[str, Any]:
        """Every figure of the statement (what `recompute` must reproduce)."""
        out: dict[str, Any] = {}
        for key, p in self.periods:
            out[key] = p.to_dict()
            out[key]["carbon_t"] = self.carbon_t.get(key, 0.0)
            if key in self.money:
                out[key]["money"] = self.money[key].to_dict()
        out["guarantee"] = None if self.guarantee is None else self.guarantee.to_dict()
        out["normalised"] = self.normalised
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "utility": self.utility,
            "unit": self.unit,
            "month": self.month,
            "numbers": self.numbers(),
            "findings": [f.to_dict() for f in self.findings],
            "model": self.model,
            "contract": self.contract,
            "inputs": self.inputs.to_dict(),
            "inputs_digest": self.inputs_digest,
            "created_at": self.created_at,
            "software": self.software,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Statement:
        nums = data["numbers"]
        money = {
            k: economics.Money.from_dict(nums[k]["money"])
            for k in nums
            if isinstance(nums[k], dict) and "money" in nums[k]
        }
        return cls(
            contract_id=data["contract_id"],
            utility=data["utility"],
            unit=data["unit"],
            month=data["month"],
            month_savings=_period(nums["month"]),
            year_to_date=_period(nums["year_to_date"]),
            cumulative=_period(nums["cumulative"]),
            money=money,
            carbon_t={k: nums[k]["carbon_t"] for k in ("month", "year_to_date", "cumulative")},
            guarantee=None
            if nums["guarantee"] is None
            else economics.GuaranteeStatus.from_dict(nums["guarantee"]),
            normalised=nums["normalised"],
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            model=data["model"],
            contract=data["contract"],
            inputs=StatementInputs.from_dict(data["inputs"]),
            inputs_digest=data["inputs_digest"],
            created_at=data["created_at"],
            software=data["software"],
        )


def _period(d: dict[str, Any]) -> PeriodSavings:
    return PeriodSavings.from_dict({k: v for k, v in d.items() if k not in ("carbon_t", "money")})


def parse_month(month: str) -> date:
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"month {month!r}: expected YYYY-MM") from None
    return first


def evaluate(
    contract: Contract,
    model: BaselineModel,
    inputs: StatementInputs,
    month: str,
    utility: Utility,
) -> dict[str, Any]:
    """The statement's figures from a model, the contract and the inputs (pure; shared by
    `statement` and `recompute`)."""
    assert model.stats is not None
    first = parse_month(month)
    month_end = next_month(first)
    if contract.reporting_end is not None:
        month_end = min(month_end, contract.reporting_end)
    start = contract.reporting_start
    adjustments = [a for a in contract.adjustments if a.utility == utility]
    ds = daily_savings(model, inputs.daily, inputs.hourly, inputs.estimated, adjustments)
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
    money: dict[str, economics.Money] = {}
    carbon: dict[str, float] = {}
    for key, p in periods.items():
        sel = (ds.day >= np.datetime64(p.start)) & (ds.day < np.datetime64(p.end)) & ds.used
        avoided = np.where(sel, ds.avoided, 0.0)
        if contract.tariff is not None:
            if utility == "electricity":
                prices = economics.period_prices(ds.day, contract.tariff)
                money[key] = economics.value(avoided, inputs.shares, prices, contract.vendor_share)
            else:
                money[key] = economics.water_value(
                    p.avoided, contract.tariff, contract.vendor_share
                )
        carbon[key] = economics.carbon_t(p.avoided, contract) if utility == "electricity" else 0.0
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
        )
    normalised = None
    if (
        contract.statements.normalised
        and inputs.typical_temperature is not None
        and isinstance(model, DailyChangePointModel)
    ):
        normalised = _normalised(model, inputs, month_end)
    return {
        "periods": periods,
        "money": money,
        "carbon": carbon,
        "guarantee": guarantee,
        "normalised": normalised,
    }


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
) -> Statement:
    """The month's statement from the reporting usage (reporting start through the month)."""
    utility = baseline.utility
    first = parse_month(month)
    if next_month(first) <= contract.reporting_start:
        raise InsufficientData(
            f"{month} is before the reporting period ({contract.reporting_start})"
        )
    month_end = next_month(first)
    if contract.reporting_end is not None:
        month_end = min(month_end, contract.reporting_end)
    start = contract.reporting_start
    daily = usage.daily.between(start, month_end)
    sel = (usage.daily.day >= np.datetime64(start)) & (usage.daily.day < np.datetime64(month_end))
    hourly_all = usage.hourly.between(start, month_end)
    shares = (
        economics.period_shares(daily.day, hourly_all, contract.tariff)
        if contract.tariff is not None
        else np.zeros((len(daily), 4))
    )
    typical = None
    if contract.statements.normalised and history is not None:
        typical = typical_year(history, 2001, lambda d: DAY_TYPES[0]).temperature  # a 365-day year
    inputs = StatementInputs(
        daily=daily,
        estimated=usage.daily_estimated[sel],
        shares=shares,
        hourly=hourly_all if isinstance(baseline.model, HourlyTOWTModel) else None,
        typical_temperature=typical,
    )
    figures = evaluate(contract, baseline.model, inputs, month, utility)
    periods: dict[str, PeriodSavings] = figures["periods"]
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
    return Statement(
        contract_id=contract.id,
        utility=utility,
        unit=UNIT[utility],
        month=month,
        month_savings=periods["month"],
        year_to_date=periods["year_to_date"],
        cumulative=periods["cumulative"],
        money=figures["money"],
        carbon_t=figures["carbon"],
        guarantee=figures["guarantee"],
        normalised=figures["normalised"],
        findings=tuple(found),
        model=baseline.model.to_dict(),
        contract=contract.model_dump(mode="json"),
        inputs=inputs,
        inputs_digest=inputs.digest(),
        created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
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


def statements(
    site: SiteConfig,
    contract_id: str,
    store: TimeSeriesStore,
    months: Sequence[str],
    *,
    baseline: Baseline | None = None,
    utility: Utility = "electricity",
) -> list[Statement]:
    """The statements of several months (YYYY-MM) from one read of the store; each sees only
    the data up to its own month's end, so it equals `statement()` of that month."""
    contract = site.contract(contract_id)
    if baseline is None:
        baseline = fit_baseline(site, contract_id, store, utility=utility)
    ends = [_month_end(contract, m) for m in months]
    if not ends:
        return []
    start = contract.reporting_start
    usage = _load(site, contract, store, utility, start, max(ends))
    history = None
    if contract.statements.normalised:
        history = _load(site, contract, store, utility, contract.baseline_start, max(ends)).daily
    tz = site.site.timezone
    out = []
    for month, end in zip(months, ends, strict=True):
        end_ms = int(local_day_edges_ms(end, end, tz)[0])
        events = {
            meter: tuple(e for e in evs if e.start_ms < end_ms)
            for meter, evs in usage.events.items()
        }
        extra = sufficiency.counter_events(events) + sufficiency.calendar_coverage(
            _uncovered(site, start, end)
        )
        out.append(
            statement_from_usage(
                contract,
                baseline,
                usage,
                month,
                history=None if history is None else history.between(contract.baseline_start, end),
                findings=tuple(extra),
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
    utility: Utility = "electricity",
) -> Statement:
    """The monthly statement of `month` (YYYY-MM), read from the store. Refuses a month that
    has not ended and one without data (`InsufficientData`)."""
    check_month_closed(site, contract_id, month)
    stmt = statements(site, contract_id, store, [month], baseline=baseline, utility=utility)[0]
    check_has_data(stmt)
    return stmt


def recompute(stored: dict[str, Any]) -> Statement:
    """The statement recomputed from its stored JSON alone (model, contract, inputs)."""
    original = Statement.from_dict(stored)
    contract = Contract.model_validate(original.contract)
    model = model_from_dict(original.model)
    figures = evaluate(contract, model, original.inputs, original.month, original.utility)
    periods = figures["periods"]
    return Statement(
        contract_id=original.contract_id,
        utility=original.utility,
        unit=original.unit,
        month=original.month,
        month_savings=periods["month"],
        year_to_date=periods["year_to_date"],
        cumulative=periods["cumulative"],
        money=figures["money"],
        carbon_t=figures["carbon"],
        guarantee=figures["guarantee"],
        normalised=figures["normalised"],
        findings=original.findings,
        model=original.model,
        contract=original.contract,
        inputs=original.inputs,
        inputs_digest=original.inputs.digest(),
        created_at=original.created_at,
        software=original.software,
    )


__all__ = [
    "Baseline",
    "SavingsResult",
    "Statement",
    "StatementInputs",
    "check_has_data",
    "check_month_closed",
    "compute_savings",
    "evaluate",
    "fit_baseline",
    "fit_baseline_from_usage",
    "recompute",
    "savings_from_usage",
    "statement",
    "statement_from_usage",
    "statements",
]

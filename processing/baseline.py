"""A contract's baseline: the fitted model of one boundary, what was found about its data,
and the baseline period's hourly shape the statements price a daily model's savings by.

    fit_baseline(site, contract_id, store, utility="electricity")   -> Baseline
    fit_baseline_from_usage(contract, usage, ...)                   -> Baseline   (pure)

The model is the contract's choice among `processing.models.REGISTRY`; a boundary is any of
the contract's utilities (`Contract.terms`), read from the store in its statement unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np

from core.config import (
    MODEL_NAMES,
    Contract,
    ModelName,
    SiteConfig,
    UtilityName,
    UtilityTerms,
    contract_weather_station,
)
from core.errors import InsufficientData
from processing import sufficiency
from processing.frames import DailyData, FloatArray, HourlyData
from processing.models import (
    REGISTRY,
    BaselineModel,
    BillingModel,
    DailyChangePointModel,
    DailySettings,
    HourlySettings,
    HourlyTOWTModel,
    entry_of,
    model_from_dict,
)
from processing.models.billing import BillingSettings, monthly_periods
from processing.pricing import DayProfile, fit_profile
from processing.sufficiency import Finding
from processing.uncertainty import held_out_months
from processing.usage import Usage, load_usage
from storage.base import TimeSeriesStore

DayTypes = Literal["calendar", "weekday", "none"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A fitted baseline and what was found about its data."""

    contract_id: str
    utility: UtilityName
    model: BaselineModel
    findings: tuple[Finding, ...]
    start: date
    end: date
    temperature_range: tuple[float, float]
    inputs_digest: str
    fitted_at: str
    profile: DayProfile | None = None
    """The baseline period's hourly shape by day type and month (`pricing.py`): where in the
    day a daily model's baseline sits. None for an hourly model, which predicts the hours."""

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
            "profile": None if self.profile is None else self.profile.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        lo, hi = data["temperature_range"]
        model = model_from_dict(data["model"])
        profile = data.get("profile")
        return cls(
            contract_id=data["contract_id"],
            utility=data["utility"],
            model=model,
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            start=date.fromisoformat(data["start"]),
            end=date.fromisoformat(data["end"]),
            temperature_range=(float(lo), float(hi)),
            inputs_digest=data["inputs_digest"],
            fitted_at=data["fitted_at"],
            profile=None if profile is None else DayProfile.from_dict(profile),
        )


def terms_of(contract: Contract, utility: str) -> UtilityTerms:
    """The contract's boundary `utility` (`InsufficientData` when it has none)."""
    try:
        return contract.terms(utility)
    except KeyError:
        raise InsufficientData(f"contract {contract.id!r} has no {utility} boundary") from None


def scaled(usage: Usage, factor: float) -> Usage:
    """The usage in another unit (heat in GJ from the meters' kWh)."""
    if factor == 1.0:
        return usage
    return replace(
        usage,
        hourly=usage.hourly.with_energy(usage.hourly.energy * factor),
        daily=usage.daily.with_energy(usage.daily.energy * factor),
    )


def load(
    site: SiteConfig,
    contract: Contract,
    store: TimeSeriesStore,
    utility: str,
    start: date,
    end: date,
    *,
    model: ModelName | None = None,
) -> Usage:
    """The boundary's usage of the local days start <= d < end, in its statement unit, as
    the baseline `model` (default: the contract's) reads it: a billing model's monthly
    readings are its data, not gaps."""
    terms = terms_of(contract, utility)
    max_gap_ms = contract.baseline.max_gap_minutes * 60_000
    days = REGISTRY[model or contract.baseline.model].max_gap_days
    if days is not None:
        max_gap_ms = max(max_gap_ms, days * 86_400_000)
    usage = load_usage(
        store,
        meters=terms.meters,
        quantity=terms.quantity,
        weather_station=contract_weather_station(site, contract),
        start=start,
        end=end,
        tz=site.site.timezone,
        day_type=site.work_calendar.day_type,
        max_gap_ms=max_gap_ms,
    )
    return scaled(usage, terms.scale)


def uncovered(site: SiteConfig, start: date, end: date) -> tuple[int, ...]:
    return tuple(site.work_calendar.uncovered_years(range(start.year, end.year + 1)))


@dataclass(frozen=True, slots=True)
class _Fit:
    model: BaselineModel
    findings: list[Finding]
    day_residuals: FloatArray
    temperatures: FloatArray


def _fit_daily(contract: Contract, usage: Usage, daily: DailyData, modes: DayTypes) -> _Fit:
    in_period = np.isin(usage.daily.day, daily.day)
    fit_daily = daily.with_energy(np.where(usage.daily_estimated[in_period], np.nan, daily.energy))
    model = DailyChangePointModel(
        DailySettings(day_types=modes, cap_n_eff=contract.baseline.cap_n_eff)
    ).fit(fit_daily)
    residuals = fit_daily.energy - model.predict(fit_daily)
    model.heldout = held_out_months(model, fit_daily)
    return _Fit(model, [], residuals, fit_daily.temperature[fit_daily.valid])


def _fit_hourly(contract: Contract, usage: Usage, daily: DailyData, modes: DayTypes) -> _Fit:
    start, end = contract.baseline_start, contract.baseline_end
    hourly = usage.hourly.between(start, end)
    h_sel = (usage.hourly.day >= np.datetime64(start)) & (usage.hourly.day < np.datetime64(end))
    fit_hourly = hourly.with_energy(np.where(usage.hourly_estimated[h_sel], np.nan, hourly.energy))
    model = HourlyTOWTModel(
        HourlySettings(
            day_types="weekday" if modes == "weekday" else "calendar",
            cap_n_eff=contract.baseline.cap_n_eff,
        )
    ).fit(fit_hourly)
    predicted = model.predict(fit_hourly)
    months = [str(d)[:7] for d in fit_hourly.day]
    findings = sufficiency.monthly_nmbe(
        months,
        fit_hourly.energy,
        predicted,
        segmentation=model.segmentation,
        single_model_failures=model.single_model_failures,
    )
    in_period = np.isin(usage.daily.day, daily.day)
    fit_daily = daily.with_energy(np.where(usage.daily_estimated[in_period], np.nan, daily.energy))
    model.heldout = held_out_months(model, fit_daily, fit_hourly)
    # outliers judged per day on the hourly model's daily sums
    residuals = _daily_sums(fit_hourly, predicted, daily)
    return _Fit(model, findings, residuals, fit_hourly.temperature[fit_hourly.valid])


def _fit_billing(contract: Contract, usage: Usage, daily: DailyData, modes: DayTypes) -> _Fit:
    """Calendar months are the billing periods (readings at each month's first midnight)."""
    model = BillingModel(BillingSettings(cap_n_eff=contract.baseline.cap_n_eff)).fit(
        monthly_periods(daily)
    )
    no_days = np.full(len(daily), np.nan)  # bills have no daily residuals to judge
    return _Fit(model, [], no_days, daily.temperature[np.isfinite(daily.temperature)])


_FITTERS: dict[ModelName, Callable[[Contract, Usage, DailyData, DayTypes], _Fit]] = {
    "daily": _fit_daily,
    "hourly": _fit_hourly,
    "billing": _fit_billing,
}
if tuple(_FITTERS) != MODEL_NAMES or tuple(REGISTRY) != MODEL_NAMES:
    raise ImportError("every registered baseline model needs its fitter here")


def fit_baseline_from_usage(
    contract: Contract,
    usage: Usage,
    *,
    utility: UtilityName = "electricity",
    model: ModelName | None = None,
    day_types: DayTypes | None = None,
    uncovered_years: tuple[int, ...] = (),
    fitted_at: str | None = None,
) -> Baseline:
    """Fit the contract's baseline model on usage of its baseline period (pure)."""
    kind: ModelName = model or contract.baseline.model
    modes = day_types or contract.baseline.day_types
    start, end = contract.baseline_start, contract.baseline_end
    daily = usage.daily.between(start, end)
    in_period = (usage.daily.day >= np.datetime64(start)) & (usage.daily.day < np.datetime64(end))
    d_est = usage.daily_estimated[in_period]
    findings = sufficiency.baseline_data(daily, start=start, end=end, estimated=d_est.tolist())
    findings += sufficiency.counter_events(usage.events)
    findings += sufficiency.calendar_coverage(uncovered_years)
    fit = _FITTERS[kind](contract, usage, daily, modes)
    findings += fit.findings
    assert fit.model.stats is not None
    findings += sufficiency.fit_quality(fit.model.stats, fit.model.GRANULARITY)
    findings += sufficiency.outliers(daily.day, fit.day_residuals)
    profile = None
    if not REGISTRY[kind].hourly_inputs:
        h_sel = (usage.hourly.day >= np.datetime64(start)) & (usage.hourly.day < np.datetime64(end))
        profile = fit_profile(usage.hourly.take(h_sel), usage.hourly_estimated[h_sel])
    t = fit.temperatures
    return Baseline(
        contract_id=contract.id,
        utility=utility,
        model=fit.model,
        findings=tuple(findings),
        start=start,
        end=end,
        temperature_range=(float(t.min()), float(t.max())) if len(t) else (math.nan, math.nan),
        inputs_digest=usage.digest(),
        fitted_at=fitted_at or datetime.now(UTC).isoformat(timespec="seconds"),
        profile=profile,
    )


def _daily_sums(hourly: HourlyData, predicted: FloatArray, daily: DailyData) -> FloatArray:
    idx = np.searchsorted(daily.day, hourly.day)
    diff = hourly.energy - predicted
    ok = np.isfinite(diff)
    sums = np.bincount(idx[ok], weights=diff[ok], minlength=len(daily))
    bad = np.bincount(idx[~ok], minlength=len(daily))
    return np.where(bad == 0, sums, np.nan)


def fit_baseline(
    site: SiteConfig,
    contract_id: str,
    store: TimeSeriesStore,
    *,
    utility: UtilityName = "electricity",
    model: ModelName | None = None,
    day_types: DayTypes | None = None,
) -> Baseline:
    """Read the baseline period from the store and fit the contract's baseline model."""
    contract = site.contract(contract_id)
    usage = load(
        site, contract, store, utility, contract.baseline_start, contract.baseline_end,
        model=model,
    )  # fmt: skip
    return fit_baseline_from_usage(
        contract,
        usage,
        utility=utility,
        model=model,
        day_types=day_types,
        uncovered_years=uncovered(site, contract.baseline_start, contract.baseline_end),
    )


__all__ = [
    "Baseline",
    "DayTypes",
    "fit_baseline",
    "fit_baseline_from_usage",
    "load",
    "scaled",
    "terms_of",
    "uncovered",
]


def upgraded(
    site: SiteConfig, contract: Contract, store: TimeSeriesStore, baseline: Baseline
) -> Baseline | None:
    """A baseline stored by an earlier version, completed with what this one keeps beside the
    model: the baseline period's hourly profile (a daily model's savings are priced by it) and
    the held-out months its intervals are stated from. The model itself is not refitted, so
    its predictions stay those the old statements used. None when nothing is missing."""
    entry = entry_of(baseline.model)
    model = baseline.model
    wants_profile = baseline.profile is None and not entry.hourly_inputs
    wants_heldout = (
        isinstance(model, DailyChangePointModel | HourlyTOWTModel)
        and model.heldout is None
        and contract.baseline.uncertainty_method == "heldout-months"
    )
    if not wants_profile and not wants_heldout:
        return None
    usage = load(
        site, contract, store, baseline.utility, baseline.start, baseline.end, model=entry.name
    )
    profile = baseline.profile
    if wants_profile:
        profile = fit_profile(usage.hourly, usage.hourly_estimated)
    if wants_heldout:
        daily = usage.daily.between(baseline.start, baseline.end)
        in_period = np.isin(usage.daily.day, daily.day)
        fit_daily = daily.with_energy(
            np.where(usage.daily_estimated[in_period], np.nan, daily.energy)
        )
        fit_hourly = None
        if isinstance(model, HourlyTOWTModel):
            fit_hourly = usage.hourly.with_energy(
                np.where(usage.hourly_estimated, np.nan, usage.hourly.energy)
            )
        model = model_from_dict(model.to_dict())  # a copy: the stored object stays as it was
        assert isinstance(model, DailyChangePointModel | HourlyTOWTModel)
        model.heldout = held_out_months(model, fit_daily, fit_hourly)
    return replace(baseline, model=model, profile=profile)

"""Data sufficiency and model quality as named findings that carry their numbers.

A check reads its inputs and returns `Finding`s; it never changes the data nor drops a row.
Each finding names the clause it implements. Severities: `error` (the baseline or the
statement does not meet the method; the numbers are still computed and carry the finding),
`warning` (worth a look), `info` (for the record).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np

from processing.counters import CounterEvent, EventKind
from processing.frames import DailyData, FloatArray, HourlyData
from processing.stats import FitStats, Uncertainty, monthly_nmbe_values


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One named result of a check, with its numbers and the clause it implements."""

    code: str
    severity: Severity
    clause: str
    message: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "clause": self.clause,
            "message": self.message,
            "values": dict(self.values),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            data["code"],
            Severity(data["severity"]),
            data["clause"],
            data["message"],
            dict(data["values"]),
        )

    def __str__(self) -> str:
        return f"[{self.severity.value}] {self.code}: {self.message} ({self.clause})"


# Limits on a baseline model's fit, by granularity: (CV(RMSE), |NMBE|, source).
FIT_LIMITS: dict[str, tuple[float, float, str]] = {
    "hourly": (0.30, 0.10, "ASHRAE 14 §4.3.2.4 (hourly calibration limits)"),
    "daily": (0.25, 0.005, "LBNL/PG&E NMEC rulebook practice (CV(RMSE) < 25 %, |NMBE| < 0.5 %)"),
    "billing": (0.15, 0.05, "ASHRAE 14 §4.3.2.4 (monthly calibration limits)"),
}


def baseline_data(
    daily: DailyData,
    *,
    start: date,
    end: date,
    min_days: int = 365,
    max_missing: float = 0.10,
    estimated: Sequence[bool] | None = None,
) -> list[Finding]:
    """Length, missing days and temperature coverage of a daily baseline period."""
    findings: list[Finding] = []
    period_days = (end - start).days
    if period_days < min_days:
        findings.append(
            Finding(
                "baseline_length",
                Severity.ERROR,
                "CalTRACK 2.2 (a baseline of 365 days before the intervention)",
                f"the baseline period has {period_days} days, fewer than {min_days}",
                {"days": period_days, "required": min_days},
            )
        )
    n = len(daily)
    missing_energy = int((~np.isfinite(daily.energy)).sum()) + max(period_days - n, 0)
    missing_temp = int((~np.isfinite(daily.temperature)).sum()) + max(period_days - n, 0)
    unusable = int((~daily.valid).sum()) + max(period_days - n, 0)
    if estimated is not None:
        est = int(np.asarray(estimated, dtype=bool).sum())
        if est:
            findings.append(
                Finding(
                    "interpolated_days",
                    Severity.INFO,
                    "CalTRACK 2.2 (days valid for fitting); counters: see processing/counters.py",
                    f"{est} day(s) have a boundary interpolated across a counter gap and are not fitted",
                    {"days": est},
                )
            )
            unusable += est
    share = unusable / period_days if period_days else 1.0
    findings.append(
        Finding(
            "missing_days",
            Severity.ERROR if share > max_missing else Severity.INFO,
            "CalTRACK 2.2 (at most 10 % of baseline days missing)",
            f"{unusable} of {period_days} baseline days are not usable ({share:.1%}; "
            f"energy missing on {missing_energy}, temperature on {missing_temp})",
            {
                "unusable_days": unusable,
                "days": period_days,
                "share": round(share, 6),
                "limit": max_missing,
                "energy_missing": missing_energy,
                "temperature_missing": missing_temp,
            },
        )
    )
    t_share = missing_temp / period_days if period_days else 1.0
    if t_share > max_missing:
        findings.append(
            Finding(
                "temperature_coverage",
                Severity.ERROR,
                "CalTRACK 2.2 (daily temperature from ≥ 50 % of hours, gaps ≤ 6 h interpolated)",
                f"{missing_temp} of {period_days} days have no mean outdoor temperature",
                {"days_missing": missing_temp, "share": round(t_share, 6), "limit": max_missing},
            )
        )
    return findings


def fit_quality(stats: FitStats, granularity: str) -> list[Finding]:
    """The baseline model's fit against the limits for its granularity."""
    cv_max, nmbe_max, clause = FIT_LIMITS[granularity]
    ok = stats.cvrmse <= cv_max and abs(stats.nmbe) <= nmbe_max
    return [
        Finding(
            "fit_limits",
            Severity.INFO if ok else Severity.WARNING,
            clause,
            f"CV(RMSE) {stats.cvrmse:.1%} (limit {cv_max:.0%}), NMBE {stats.nmbe:+.2%} "
            f"(limit ±{nmbe_max:.1%}), R² {stats.r2:.3f}, n {stats.n}, p {stats.p}",
            {
                "cvrmse": stats.cvrmse,
                "nmbe": stats.nmbe,
                "r2": stats.r2,
                "adj_r2": stats.adj_r2,
                "cvrmse_limit": cv_max,
                "nmbe_limit": nmbe_max,
                "n": stats.n,
                "p": stats.p,
            },
        )
    ]


def outliers(
    days: Iterable[np.datetime64], residuals: FloatArray, *, threshold: float = 4.0
) -> list[Finding]:
    """Days whose residual exceeds `threshold` robust standard deviations: flagged, kept."""
    r = np.asarray(residuals, dtype=np.float64)
    ok = np.isfinite(r)
    if ok.sum() < 10:
        return []
    median = float(np.median(r[ok]))
    mad = float(np.median(np.abs(r[ok] - median))) * 1.4826
    if mad == 0:
        return []
    z = np.where(ok, np.abs(r - median) / mad, 0.0)
    idx = np.flatnonzero(z > threshold)
    if len(idx) == 0:
        return []
    day_list = list(days)
    listed = [str(day_list[i]) for i in idx[:20]]
    return [
        Finding(
            "outliers",
            Severity.WARNING,
            "CalTRACK 2.3 (data quality: extreme values are flagged for review, not removed)",
            f"{len(idx)} day(s) more than {threshold:g} robust standard deviations from the model: "
            + ", ".join(listed)
            + (" ..." if len(idx) > 20 else ""),
            {"count": len(idx), "threshold": threshold, "days": listed},
        )
    ]


def counter_events(events: Mapping[str, Sequence[CounterEvent]]) -> list[Finding]:
    """What the registers did: resets, roll-overs, glitches and gaps, per meter."""
    out: list[Finding] = []
    for meter, evs in sorted(events.items()):
        counts = {k.value: sum(1 for e in evs if e.kind is k) for k in EventKind}
        if not any(counts.values()):
            continue
        severe = counts["reset"] > 0 or counts["gap"] > 0
        gap_hours = sum((e.end_ms - e.start_ms) for e in evs if e.kind is EventKind.GAP) / 3.6e6
        out.append(
            Finding(
                "counter_events",
                Severity.WARNING if severe else Severity.INFO,
                "DESIGN: counters are the truth (resets, roll-overs and gaps handled explicitly)",
                f"meter {meter}: "
                + ", ".join(f"{v} {k}{'s' if v != 1 else ''}" for k, v in counts.items() if v)
                + (f" ({gap_hours:,.1f} h without samples)" if counts["gap"] else ""),
                {"meter": meter, **counts, "gap_hours": round(gap_hours, 3)},
            )
        )
    return out


def temperature_range(
    baseline_min: float, baseline_max: float, reporting: DailyData | HourlyData
) -> list[Finding]:
    """Reporting temperatures outside the range the baseline saw: the model extrapolates."""
    t = reporting.temperature[np.isfinite(reporting.temperature)]
    if len(t) == 0:
        return []
    outside = int(((t < baseline_min) | (t > baseline_max)).sum())
    if outside == 0:
        return []
    return [
        Finding(
            "temperature_range",
            Severity.INFO,
            "ASHRAE 14 §4.3.2 / IPMVP (models valid within the baseline's range of conditions)",
            f"{outside} reporting value(s) outside the baseline's {baseline_min:.1f}-{baseline_max:.1f} °C",
            {"outside": outside, "baseline_min": baseline_min, "baseline_max": baseline_max},
        )
    ]


def savings_uncertainty(u68: Uncertainty, u90: Uncertainty, label: str) -> list[Finding]:
    """FSU against G14 (< 50 % at 68 %) and NMEC practice (< 50 % at 90 %)."""
    out: list[Finding] = []
    for u, clause in (
        (u68, "ASHRAE 14 §4.2.11 / Annex B (savings > twice their uncertainty at 68 %)"),
        (u90, "LBNL/PG&E NMEC rulebook practice (FSU < 50 % at 90 %)"),
    ):
        if not np.isfinite(u.fsu) or u.fsu >= 0.5:
            out.append(
                Finding(
                    "fsu",
                    Severity.WARNING,
                    clause,
                    f"{label}: fractional savings uncertainty {u.fsu:.0%} at {u.confidence:.0%} "
                    "confidence is not below 50 %",
                    {"fsu": u.fsu, "confidence": u.confidence, "limit": 0.5, "period": label},
                )
            )
    return out


def monthly_nmbe(
    months: Sequence[str],
    observed: FloatArray,
    predicted: FloatArray,
    *,
    limit: float = 0.01,
    segmentation: str = "single",
    single_model_failures: Sequence[tuple[str, float]] = (),
) -> list[Finding]:
    """CalTRACK hourly: one all-year model is allowed when at most 2 baseline months have
    |NMBE| > 1 %; otherwise the model is segmented by month (three-month weighted). Judged on
    the model actually used (`predicted`): a *single* model with more than 2 failing months is
    an error (the baseline does not meet the method: its statements must say so, never a bare
    number); the monthly models' own months are reported (a warning past 2), CalTRACK sets no
    limit on them. When the single model failed and the monthly models were used instead, an
    `hourly_segmentation` finding says so."""
    bad = [(mo, v) for mo, v in monthly_nmbe_values(list(months), observed, predicted)]
    bad = [(mo, v) for mo, v in bad if abs(v) > limit]
    out: list[Finding] = []
    if segmentation != "single":
        out.append(
            Finding(
                "hourly_segmentation",
                Severity.INFO,
                "CalTRACK 2.0 hourly (three-month weighted monthly models when the single "
                "model fails)",
                f"the single all-year model failed the single-model test in "
                f"{len(single_model_failures)} baseline month(s): one model per calendar month "
                "is used, each fitted on its month (weight 1) and the two next to it (0.5)",
                {
                    "segmentation": segmentation,
                    "single_model_months": [mo for mo, _ in single_model_failures],
                    "single_model_nmbe": [v for _, v in single_model_failures],
                },
            )
        )
    failed = len(bad) > 2
    single = segmentation == "single"
    out.append(
        Finding(
            "monthly_nmbe",
            Severity.INFO if not failed else Severity.ERROR if single else Severity.WARNING,
            "CalTRACK 3.x hourly (a model when ≤ 2 baseline months have |NMBE| > 1 %)",
            f"{len(bad)} baseline month(s) with |NMBE| > {limit:.0%} with the "
            f"{segmentation.replace('_', '-')} model"
            + (": " + ", ".join(f"{mo} {v:+.1%}" for mo, v in bad) if bad else "")
            + (": the single model does not meet the method" if failed and single else ""),
            {
                "months": [mo for mo, _ in bad],
                "nmbe": [v for _, v in bad],
                "limit": limit,
                "segmentation": segmentation,
            },
        )
    )
    return out


def calendar_coverage(uncovered_years: Sequence[int]) -> list[Finding]:
    if not uncovered_years:
        return []
    return [
        Finding(
            "calendar_coverage",
            Severity.WARNING,
            "DESIGN: Chinese statutory holidays and make-up workdays decide day types",
            "no statutory holiday data for "
            + ", ".join(map(str, uncovered_years))
            + ": Monday-Friday taken as workdays; add [[calendar.overrides]] or upgrade chinesecalendar",
            {"years": list(uncovered_years)},
        )
    ]

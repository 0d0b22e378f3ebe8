"""Where in the day the avoided energy sits: avoided kWh by time-of-use period, day by day.

The money of a statement is the avoided energy priced at the hour it was avoided. The savings
of a retrofit do not follow the day's consumption (LED lighting and a chiller plant save in
office hours, when energy is dear, and nothing at night), so the avoided energy of a day is
not split by the day's consumption but computed hour by hour as baseline minus actual:

    avoided[d, period] = adjusted baseline[d] x baseline share[d, period]
                         - actual[d] x actual share[d, period]

summed over the hours of each tariff period (尖峰 sharp, 峰 peak, 平 flat, 谷 valley). The
rows add up to the day's avoided energy exactly as the statement counts it.

- *actual share*: the day's metered consumption in each period (from the hourly counters;
  a day whose hours are not all known falls back to the baseline share, so its avoided
  energy is spread like the baseline's);
- *baseline share*: for an hourly model, its own prediction hour by hour; for a daily
  model, which predicts days, the baseline period's mean hourly shape of the same day type
  in the same calendar month (`DayProfile`), fitted with the baseline and kept in the record.

Pure functions of arrays, the validated `Tariff` and the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import Tariff
from processing.frames import BoolArray, DayArray, FloatArray, HourlyData, IntArray

PERIODS = ("sharp", "peak", "flat", "valley")
"""Time-of-use periods, in the column order of every (days, 4) array here."""
PERIOD_NAMES_ZH = {"sharp": "尖峰", "peak": "峰", "flat": "平", "valley": "谷"}

MIN_PROFILE_DAYS = 1
"""Complete days a (day type, month) cell needs before its own shape is used."""


def month_index(days: DayArray) -> IntArray:
    """Calendar month 0-11 of each day."""
    return np.asarray(days.astype("datetime64[M]").astype(np.int64) % 12, dtype=np.int64)


def period_codes(tariff: Tariff) -> IntArray:
    """(12, 24): the index in `PERIODS` of each (month, local hour)."""
    return np.array(
        [[PERIODS.index(p) for p in row] for row in tariff.period_table()], dtype=np.int64
    )


def hours_shares(days: DayArray, tariff: Tariff) -> FloatArray:
    """(days, 4): the share of each day's hours in each period (a flat day)."""
    code = period_codes(tariff)[month_index(days)]
    return np.stack([(code == j).sum(axis=1) / 24.0 for j in range(4)], axis=1)


def _day_rows(days: DayArray, hourly: HourlyData) -> tuple[IntArray, BoolArray]:
    idx = np.searchsorted(days, hourly.day)
    inside = (idx < len(days)) & (days[np.clip(idx, 0, max(len(days) - 1, 0))] == hourly.day)
    return idx, inside


def hourly_shares(
    days: DayArray, hourly: HourlyData | None, values: FloatArray | None, tariff: Tariff
) -> tuple[FloatArray, BoolArray]:
    """(days, 4) shares of each day's `values` (one per hour of `hourly`) by period, and
    which days have every hour known (with a positive total); other rows are zero."""
    shares = np.zeros((len(days), 4))
    if hourly is None or values is None or len(hourly) == 0 or len(days) == 0:
        return shares, np.zeros(len(days), dtype=bool)
    idx, inside = _day_rows(days, hourly)
    h_code = period_codes(tariff)[month_index(hourly.day), hourly.hour]
    ok = inside & np.isfinite(values)
    sums = np.zeros((len(days), 4))
    np.add.at(sums, (idx[ok], h_code[ok]), values[ok])
    known = np.bincount(idx[ok], minlength=len(days))
    every = np.bincount(idx[inside], minlength=len(days))
    total = sums.sum(axis=1)
    complete = (known == every) & (every > 0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(complete[:, None], sums / total[:, None], 0.0)
    return shares, complete


def period_shares(
    days: DayArray, hourly: HourlyData | None, tariff: Tariff, fallback: FloatArray | None = None
) -> FloatArray:
    """(days, 4): the share of each day's metered consumption in each period; a day without
    every hour known gets its `fallback` row (default: the share of its hours)."""
    shares, complete = hourly_shares(
        days, hourly, None if hourly is None else hourly.energy, tariff
    )
    other = hours_shares(days, tariff) if fallback is None else fallback
    return np.where(complete[:, None], shares, other)


@dataclass(frozen=True, slots=True)
class DayProfile:
    """The baseline period's mean hourly shape by day type and calendar month: `shape[t, m, h]`
    is the share of a day-type-t day's energy in local hour h in month m (each row sums to 1).
    A cell without complete baseline days borrows the day type's all-year shape, then the
    month's shape of all day types, then a flat day; `days[t, m]` says how many days made it."""

    shape: FloatArray  # (4, 12, 24)
    days: IntArray  # (4, 12)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "mean hourly shape of complete baseline days, by day type and month",
            "shape": [[[float(v) for v in hours] for hours in month] for month in self.shape],
            "days": [[int(v) for v in row] for row in self.days],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayProfile:
        return cls(
            np.array(data["shape"], dtype=np.float64).reshape(4, 12, 24),
            np.array(data["days"], dtype=np.int64).reshape(4, 12),
        )


def fit_profile(hourly: HourlyData, estimated: BoolArray | None = None) -> DayProfile:
    """The profile of the complete days of `hourly` (every hour known, none estimated)."""
    energy = hourly.energy
    if estimated is not None:
        energy = np.where(estimated, np.nan, energy)
    days, inverse = np.unique(hourly.day, return_inverse=True)
    n = len(days)
    hours = np.bincount(inverse, minlength=n)
    known = np.bincount(inverse, weights=np.isfinite(energy).astype(float), minlength=n)
    complete_day = (known == hours) & (hours >= 23)
    use = complete_day[inverse]
    t = hourly.day_type[use]
    m = month_index(hourly.day[use])
    h = hourly.hour[use]
    e = energy[use]
    sums = np.zeros((4, 12, 24))
    np.add.at(sums, (t, m, h), e)
    first_rows = np.unique(inverse[use], return_index=True)[1]
    counts = np.zeros((4, 12), dtype=np.int64)
    np.add.at(counts, (t[first_rows], m[first_rows]), 1)
    shape = np.full((4, 12, 24), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        cell = sums / sums.sum(axis=2, keepdims=True)
        by_type = sums.sum(axis=1) / sums.sum(axis=(1, 2))[:, None]  # (4, 24)
        by_month = sums.sum(axis=0) / sums.sum(axis=(0, 2))[:, None]  # (12, 24)
    for ti in range(4):
        for mi in range(12):
            for candidate, enough in (
                (cell[ti, mi], counts[ti, mi] >= MIN_PROFILE_DAYS),
                (by_type[ti], counts[ti].sum() >= MIN_PROFILE_DAYS),
                (by_month[mi], counts[:, mi].sum() >= MIN_PROFILE_DAYS),
            ):
                if enough and np.isfinite(candidate).all():
                    shape[ti, mi] = candidate
                    break
            else:
                shape[ti, mi] = 1.0 / 24
    return DayProfile(shape, counts)


def profile_shares(
    profile: DayProfile, days: DayArray, day_types: IntArray, tariff: Tariff
) -> FloatArray:
    """(days, 4): the profile's share of each day in each period (its day type and month)."""
    code = period_codes(tariff)  # (12, 24)
    by_period = np.zeros((4, 12, 4))
    for j in range(4):
        by_period[:, :, j] = (profile.shape * (code == j)[None, :, :]).sum(axis=2)
    return np.asarray(by_period[day_types, month_index(days)], dtype=np.float64)


def avoided_by_period(
    adjusted_baseline: FloatArray,
    actual: FloatArray,
    baseline_shares: FloatArray,
    actual_shares: FloatArray,
    used: BoolArray,
) -> FloatArray:
    """(days, 4): avoided energy of each day in each period; zero on days not counted."""
    a = adjusted_baseline[:, None] * baseline_shares - actual[:, None] * actual_shares
    return np.where(used[:, None], a, 0.0)


__all__ = [
    "PERIODS",
    "PERIOD_NAMES_ZH",
    "DayProfile",
    "avoided_by_period",
    "fit_profile",
    "hourly_shares",
    "hours_shares",
    "month_index",
    "period_codes",
    "period_shares",
    "profile_shares",
]

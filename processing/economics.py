"""What avoided energy is worth: tariffs, the vendor's share, guarantees, carbon.

Time-of-use: the avoided kWh of a day are split over the tariff's periods in proportion to
the day's *actual* consumption in each period (from the hourly counters; a day without hourly
data is split by the number of hours in each period), then priced at each period's price for
that month. Pure functions of arrays and the validated `Tariff`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np

from core.config import Contract, Tariff
from processing.frames import DayArray, FloatArray, HourlyData

PERIODS = ("sharp", "peak", "flat", "valley")


def period_shares(days: DayArray, hourly: HourlyData | None, tariff: Tariff) -> FloatArray:
    """(days, 4): the share of each day's consumption in sharp/peak/flat/valley."""
    table = tariff.period_table()
    month = (days.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
    code = np.array([[PERIODS.index(p) for p in row] for row in table], dtype=np.int64)  # (12, 24)
    by_hours = np.zeros((len(days), 4))
    for j in range(4):
        by_hours[:, j] = (code[month] == j).sum(axis=1) / 24.0
    if hourly is None or len(hourly) == 0:
        return by_hours
    idx = np.searchsorted(days, hourly.day)
    inside = (idx < len(days)) & (days[np.clip(idx, 0, len(days) - 1)] == hourly.day)
    h_month = (hourly.day.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
    h_code = code[h_month, hourly.hour]
    e = hourly.energy
    ok = inside & np.isfinite(e)
    sums = np.zeros((len(days), 4))
    np.add.at(sums, (idx[ok], h_code[ok]), e[ok])
    hours_known = np.bincount(idx[ok], minlength=len(days))
    hours_all = np.bincount(idx[inside], minlength=len(days))
    total = sums.sum(axis=1)
    complete = (hours_known == hours_all) & (hours_all > 0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = sums / total[:, None]
    return np.where(complete[:, None], shares, by_hours)


def period_prices(days: DayArray, tariff: Tariff) -> FloatArray:
    """(days, 4): each period's price (CNY/kWh) in each day's month (0 where unused)."""
    table = tariff.price_table()
    periods = tariff.period_table()
    month = (days.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
    by_month = np.zeros((12, 4))
    for m in range(12):
        for hour, p in enumerate(periods[m]):
            by_month[m, PERIODS.index(p)] = table[m][hour]
    return by_month[month]


@dataclass(frozen=True, slots=True)
class Money:
    """Avoided energy by tariff period, its value, and who gets it."""

    kwh: dict[str, float]
    cny: dict[str, float]
    total_cny: float
    vendor_cny: float
    owner_cny: float

    @property
    def average_price(self) -> float:
        kwh = sum(self.kwh.values())
        return self.total_cny / kwh if kwh else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Money:
        return cls(**data)


def value(
    avoided: FloatArray, shares: FloatArray, prices: FloatArray, vendor_share: float
) -> Money:
    """Price per-day avoided energy split by period shares; `avoided` NaN days count zero."""
    a = np.nan_to_num(avoided)[:, None] * shares
    kwh = a.sum(axis=0)
    cny = (a * prices).sum(axis=0)
    total = float(cny.sum())
    return Money(
        kwh={p: float(kwh[i]) for i, p in enumerate(PERIODS)},
        cny={p: float(cny[i]) for i, p in enumerate(PERIODS)},
        total_cny=total,
        vendor_cny=total * vendor_share,
        owner_cny=total * (1.0 - vendor_share),
    )


def water_value(avoided_m3: float, tariff: Tariff, vendor_share: float) -> Money:
    total = avoided_m3 * tariff.water_price_cny_per_m3
    return Money(
        {"water": avoided_m3},
        {"water": total},
        total,
        total * vendor_share,
        total * (1 - vendor_share),
    )


def carbon_t(avoided_kwh: float, contract: Contract) -> float:
    """tCO2 avoided: MWh x the configured grid emission factor."""
    return avoided_kwh / 1000.0 * contract.grid_emission_factor_t_per_mwh


@dataclass(frozen=True, slots=True)
class GuaranteeStatus:
    """Where the contract year stands against the guaranteed savings."""

    contract_year: int
    year_start: date
    year_end: date
    guaranteed_kwh: float
    pro_rata_kwh: float  # the guarantee prorated to the days elapsed
    achieved_kwh: float
    shortfall_kwh: float  # against the pro-rata figure; final when the year is complete
    year_complete: bool
    shortfall_price: float
    shortfall_cny: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["year_start"], d["year_end"] = self.year_start.isoformat(), self.year_end.isoformat()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuaranteeStatus:
        return cls(
            **{
                **data,
                "year_start": date.fromisoformat(data["year_start"]),
                "year_end": date.fromisoformat(data["year_end"]),
            }
        )


def guarantee_status(
    contract: Contract,
    *,
    year: int,
    year_start: date,
    year_end: date,
    through: date,
    achieved_kwh: float,
    average_price: float,
) -> GuaranteeStatus | None:
    """The guarantee's standing on the days year_start <= d < through."""
    g = contract.guarantee
    if g is None:
        return None
    elapsed = (min(through, year_end) - year_start).days
    length = (year_end - year_start).days
    pro_rata = g.kwh_per_year * elapsed / length
    shortfall = max(pro_rata - achieved_kwh, 0.0)
    price = g.shortfall_price_cny_per_kwh or average_price
    return GuaranteeStatus(
        contract_year=year,
        year_start=year_start,
        year_end=year_end,
        guaranteed_kwh=g.kwh_per_year,
        pro_rata_kwh=pro_rata,
        achieved_kwh=achieved_kwh,
        shortfall_kwh=shortfall,
        year_complete=through >= year_end,
        shortfall_price=price,
        shortfall_cny=shortfall * price,
    )

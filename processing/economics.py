"""What avoided energy is worth: tariffs, the vendor's share, guarantees, carbon.

Electricity: the avoided kWh of each day in each time-of-use period (`pricing.py`: hour by
hour, baseline minus actual) priced at that period's price in that month. Water, gas and
delivered heat: one price per unit. Pure functions of arrays and the validated contract.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np

from core.config import Contract, Tariff, UtilityTerms
from processing.frames import DayArray, FloatArray
from processing.pricing import PERIODS, month_index

__all__ = [
    "PERIODS",
    "GuaranteeStatus",
    "Money",
    "carbon_t",
    "flat_value",
    "guarantee_status",
    "period_prices",
    "value",
    "value_shares",
]
from processing.stats import Uncertainty


def period_prices(days: DayArray, tariff: Tariff) -> FloatArray:
    """(days, 4): each period's price (CNY/kWh) in each day's month (0 where unused)."""
    table = tariff.price_table()
    periods = tariff.period_table()
    by_month = np.zeros((12, 4))
    for m in range(12):
        for hour, p in enumerate(periods[m]):
            by_month[m, PERIODS.index(p)] = table[m][hour]
    return np.asarray(by_month[month_index(days)], dtype=np.float64)


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


def value(kwh_by_period: FloatArray, prices: FloatArray, vendor_share: float) -> Money:
    """Price the (days, 4) avoided kWh by period at the (days, 4) period prices."""
    kwh = kwh_by_period.sum(axis=0)
    cny = (kwh_by_period * prices).sum(axis=0)
    total = float(cny.sum())
    return Money(
        kwh={p: float(kwh[i]) for i, p in enumerate(PERIODS)},
        cny={p: float(cny[i]) for i, p in enumerate(PERIODS)},
        total_cny=total,
        vendor_cny=total * vendor_share,
        owner_cny=total * (1.0 - vendor_share),
    )


def value_shares(
    avoided: FloatArray, shares: FloatArray, prices: FloatArray, vendor_share: float
) -> Money:
    """Records before epcmon-processing/2: each day's avoided kWh split by the day's
    consumption shares (`avoided` NaN days count zero); kept so that they still recompute."""
    return value(np.nan_to_num(avoided)[:, None] * shares, prices, vendor_share)


def flat_value(avoided: float, terms: UtilityTerms, vendor_share: float) -> Money | None:
    """A single-price boundary (water, gas, heat): avoided units x the price; None unpriced."""
    if terms.price is None:
        return None
    total = avoided * terms.price
    return Money(
        {terms.utility: avoided},
        {terms.utility: total},
        total,
        total * vendor_share,
        total * (1 - vendor_share),
    )


def carbon_t(avoided: float, terms: UtilityTerms) -> float:
    """tCO2 avoided: units x the boundary's emission factor (kg per unit)."""
    return avoided / 1000.0 * terms.emission_kg_per_unit


@dataclass(frozen=True, slots=True)
class GuaranteeStatus:
    """Where the contract year stands against the guaranteed savings."""

    contract_year: int
    year_start: date
    year_end: date
    guaranteed_kwh: float
    pro_rata_kwh: float  # the guarantee prorated to the days elapsed
    achieved_kwh: float
    shortfall_kwh: float
    """On the contract's basis, against the pro-rata figure; final when the year is complete."""
    year_complete: bool
    shortfall_price: float
    shortfall_cny: float
    basis: str = "point"
    """What the contract holds against the guarantee: `point` or `lower_90`."""
    achieved_lower_90_kwh: float | None = None
    """The lower bound of the achieved savings' 90 % interval (point - U90)."""
    shortfall_point_kwh: float | None = None
    shortfall_lower_90_kwh: float | None = None
    probability_met: float | None = None
    """P(true savings >= the pro-rata guarantee), from the normal approximation the 90 %
    interval uses (sigma = U90 / its quantile); None when the interval is unknown."""

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
    u90: Uncertainty | None = None,
) -> GuaranteeStatus | None:
    """The guarantee's standing on the days year_start <= d < through: the shortfall on the
    point estimate and on the lower 90 % bound (`u90`: the year to date's interval), the one
    the contract's basis names priced, and the probability that the guarantee was met."""
    g = contract.guarantee
    if g is None:
        return None
    elapsed = (min(through, year_end) - year_start).days
    length = (year_end - year_start).days
    pro_rata = g.kwh_per_year * elapsed / length
    short_point = max(pro_rata - achieved_kwh, 0.0)
    known = u90 is not None and math.isfinite(u90.u) and math.isfinite(u90.t) and u90.t > 0
    lower = achieved_kwh - u90.u if known and u90 is not None else None
    short_lower = None if lower is None else max(pro_rata - lower, 0.0)
    probability = None
    if known and u90 is not None:
        sigma = u90.u / u90.t
        z = (
            (achieved_kwh - pro_rata) / sigma
            if sigma > 0
            else math.copysign(math.inf, achieved_kwh - pro_rata)
        )
        probability = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    basis: str = g.basis
    if basis == "lower_90" and short_lower is None:  # no day counted yet: nothing to bound
        basis = "point (lower_90: the savings have no interval yet)"
    shortfall = short_lower if short_lower is not None and g.basis == "lower_90" else short_point
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
        basis=basis,
        achieved_lower_90_kwh=lower,
        shortfall_point_kwh=short_point,
        shortfall_lower_90_kwh=short_lower,
        probability_met=probability,
    )

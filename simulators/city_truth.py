"""Ground truth for a portfolio: each contract's true avoided energy over a period.

    true_savings(site, "epc-2025-01", date(2025, 7, 1), date(2026, 7, 1))   # kWh
    city_truth(sites)          # one row per contract: its first contract year, by default

The truth is the simulator's own: the counterfactual world (no measure ever installed) minus
the actual one, summed over the contract's boundary meters, from the same `SiteModel` the
history comes from (`simulators.history.true_savings`, the `true_savings_kwh` of a history),
with the site's `[simulation] seed` as `epcmon simulate history` uses it. Sites are
independent, so a portfolio's truth is the sum of its contracts'.

A site's counterfactual removes all of its measures at once: with two contracts on one site,
each one's truth would include the other's measures where they reach its meters (the
generated city has at most one contract per site).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from core.config import Contract, SiteConfig
from simulators.history import true_savings as meter_truth
from simulators.model import SiteModel
from simulators.roles import local_midnight_ms


def _ms(site: SiteConfig, moment: date | datetime) -> int:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r}: a time needs its UTC offset")
        return int(moment.timestamp() * 1000)
    return local_midnight_ms(site, moment)


def contract_year(contract: Contract, year: int = 1) -> tuple[date, date]:
    """[start, end) of the contract's `year`-th year from its reporting start (local days)."""
    start = contract.reporting_start
    return (
        start.replace(year=start.year + year - 1),
        start.replace(year=start.year + year),
    )


def model_of(site: SiteConfig) -> SiteModel:
    """The model `epcmon simulate history` plays the site with (its own seed, no faults)."""
    return SiteModel(site, site.simulation.seed)


def true_savings(
    site: SiteConfig,
    contract: Contract | str,
    start: date | datetime,
    end: date | datetime,
    *,
    model: SiteModel | None = None,
) -> float:
    """The contract's true avoided energy, kWh, over [start, end) (a date is its local
    midnight; quarter-hour aligned): counterfactual - actual on its boundary meters."""
    c = site.contract(contract) if isinstance(contract, str) else contract
    cf, act = meter_truth(model or model_of(site), _ms(site, start), _ms(site, end), list(c.meters))
    return float(cf.sum() - act.sum())


@dataclass(frozen=True)
class TruthRow:
    site: str
    contract: str
    vendor: str
    start: date
    end: date
    counterfactual_kwh: float
    actual_kwh: float

    @property
    def savings_kwh(self) -> float:
        return self.counterfactual_kwh - self.actual_kwh

    def row(self) -> dict[str, object]:
        return {
            "site": self.site,
            "contract": self.contract,
            "vendor": self.vendor,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "counterfactual_kwh": round(self.counterfactual_kwh, 1),
            "actual_kwh": round(self.actual_kwh, 1),
            "true_savings_kwh": round(self.savings_kwh, 1),
        }


Period = Callable[[Contract], tuple[date, date]]


def city_truth(sites: Sequence[SiteConfig], period: Period = contract_year) -> list[TruthRow]:
    """One row per contract of every site: its truth over `period(contract)` (default: its
    first contract year)."""
    rows = []
    for site in sites:
        if not site.contracts:
            continue
        model = model_of(site)
        for c in site.contracts:
            a, b = period(c)
            cf, act = meter_truth(model, _ms(site, a), _ms(site, b), list(c.meters))
            rows.append(
                TruthRow(site.site.id, c.id, c.vendor, a, b, float(cf.sum()), float(act.sum()))
            )
    return rows

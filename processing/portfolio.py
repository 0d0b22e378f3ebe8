"""A portfolio's figures: every site's consumption, intensity and avoided energy, their totals,
and rankings of the sites.

- **Energy and intensity** of a site are what its roots measure (the transformer incomers,
  the water mains: `processing.monthly`) over the window's local months, per m² of its
  buildings' gross floor area; the portfolio's intensity is its total over its total area.
- **Avoided energy** of a contract over a window comes from its savings (IPMVP, the same
  `SavingsResult` the contract's statements and page show): the days of the window summed,
  and the window's uncertainty stated as the contract states it (`processing.savings.
  summarise`), never the sum of monthly intervals. A contract year is the contract's own.
- **Combining uncertainty**: the sites' (and a site's contracts') savings come from separate
  baselines fitted to separate meters, so their errors are independent: the portfolio's
  absolute uncertainty at a confidence level is the root sum of squares of theirs
  (ASHRAE Guideline 14 and IPMVP's rule for independent components). Adding the intervals
  instead would overstate it.

Pure given its inputs: the callers (API, CLI, report) hand in each site's store view and
savings, so every view reads the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from core.config import Contract, SiteConfig, UtilityName
from processing.bills import next_month
from processing.contract import SavingsResult
from processing.monthly import site_months
from processing.savings import PeriodSavings, summarise, uncertainty_basis
from processing.statements import MonthEntry
from storage.base import TimeSeriesStore

SavingsOf = Callable[[SiteConfig, Contract, UtilityName], SavingsResult | None]
"""A contract's savings over its reporting period so far (None: no baseline or no data yet)."""
MonthsOf = Callable[[SiteConfig, Contract, UtilityName], list[MonthEntry]]
"""A contract's months with their statement status (`StatementStore.months`)."""


def rss(values: Iterable[float]) -> float:
    """Root sum of squares: the uncertainty of a sum of independent estimates."""
    return math.sqrt(sum(v * v for v in values))


@dataclass(frozen=True, slots=True)
class Window:
    """What the figures cover: the local months `first`..`last` (both included), or each
    contract's contract year `year` (1 = the first) for its avoided energy."""

    first: date
    last: date
    year: int | None = None

    @property
    def end(self) -> date:
        """The day after the window (exclusive)."""
        return next_month(self.last)


@dataclass(frozen=True, slots=True)
class StatementStatus:
    """A contract's months by the status of their newest figures."""

    final: int = 0
    provisional: int = 0
    unreliable: int = 0
    last_final: str | None = None

    @classmethod
    def of(cls, months: Sequence[MonthEntry]) -> StatementStatus:
        final = [m.month for m in months if m.status == "final"]
        return cls(
            final=len(final),
            provisional=sum(1 for m in months if m.status == "provisional"),
            unreliable=sum(1 for m in months if m.status.startswith("unreliable")),
            last_final=max(final) if final else None,
        )


@dataclass(frozen=True, slots=True)
class ContractFigures:
    site_id: str
    contract_id: str
    name: str
    vendor: str
    utility: str
    unit: str
    start: date | None
    end: date | None
    """The days summed (start <= d < end); None: the contract has no reporting days there."""
    adjusted_baseline: float
    actual: float
    avoided: float
    u90: float
    """Absolute 90 % uncertainty of `avoided` (its unit)."""
    status: StatementStatus
    note: str = ""


@dataclass(frozen=True, slots=True)
class SiteFigures:
    site_id: str
    name: str
    floor_area_m2: float
    staff: int
    kwh: float
    water_m3: float
    contracts: tuple[ContractFigures, ...]

    @property
    def kwh_per_m2(self) -> float | None:
        return self.kwh / self.floor_area_m2 if self.floor_area_m2 > 0 else None

    @property
    def avoided_kwh(self) -> float:
        return sum(c.avoided for c in self.contracts if c.unit == "kWh")

    @property
    def u90_kwh(self) -> float:
        return rss(c.u90 for c in self.contracts if c.unit == "kWh")

    @property
    def adjusted_baseline_kwh(self) -> float:
        return sum(c.adjusted_baseline for c in self.contracts if c.unit == "kWh")


@dataclass(frozen=True)
class PortfolioFigures:
    window: Window
    sites: tuple[SiteFigures, ...]
    by_intensity: tuple[str, ...] = field(default=())
    """Site ids, lowest kWh/m² first (sites without floor area or data last)."""
    by_savings: tuple[str, ...] = field(default=())
    """Site ids, most avoided kWh first (sites without a contract last)."""

    @property
    def kwh(self) -> float:
        return sum(s.kwh for s in self.sites)

    @property
    def water_m3(self) -> float:
        return sum(s.water_m3 for s in self.sites)

    @property
    def floor_area_m2(self) -> float:
        return sum(s.floor_area_m2 for s in self.sites)

    @property
    def kwh_per_m2(self) -> float | None:
        area = self.floor_area_m2
        return self.kwh / area if area > 0 else None

    @property
    def avoided_kwh(self) -> float:
        return sum(s.avoided_kwh for s in self.sites)

    @property
    def u90_kwh(self) -> float:
        """Every kWh contract's uncertainty combined (independent: root sum of squares)."""
        return rss(c.u90 for s in self.sites for c in s.contracts if c.unit == "kWh")

    @property
    def adjusted_baseline_kwh(self) -> float:
        return sum(s.adjusted_baseline_kwh for s in self.sites)


def contract_period(
    contract: Contract, result: SavingsResult, window: Window
) -> PeriodSavings | None:
    """The contract's avoided energy over the window: its contract year `window.year`, or
    the window's days within its reporting period so far; None when it has none there."""
    if window.year is not None:
        return result.years[window.year - 1] if 0 < window.year <= len(result.years) else None
    start = max(window.first, result.total.start)
    end = min(window.end, result.total.end)
    if end <= start:
        return None
    model = result.baseline.model
    assert model.stats is not None  # a fitted baseline's model has its statistics
    return summarise(
        result.daily,
        model.stats,
        model.GRANULARITY,
        label=f"{start.isoformat()}..{end.isoformat()}",
        start=start,
        end=end,
        heldout=uncertainty_basis(model, contract.baseline.uncertainty_method),
    )


def contract_figures(
    site: SiteConfig,
    contract: Contract,
    utility: UtilityName,
    window: Window,
    savings_of: SavingsOf,
    months_of: MonthsOf,
) -> ContractFigures:
    status = StatementStatus.of(months_of(site, contract, utility))
    result = savings_of(site, contract, utility)
    period = contract_period(contract, result, window) if result is not None else None
    if result is None or period is None:
        return ContractFigures(
            site.site.id,
            contract.id,
            contract.name,
            contract.vendor,
            utility,
            result.unit if result is not None else "",
            None,
            None,
            0.0,
            0.0,
            0.0,
            0.0,
            status,
            note="no baseline or no reporting days in the window"
            if result is None
            else "no reporting days in the window",
        )
    return ContractFigures(
        site.site.id,
        contract.id,
        contract.name,
        contract.vendor,
        utility,
        result.unit,
        period.start,
        period.end,
        period.adjusted_baseline,
        period.actual,
        period.avoided,
        period.u90.u,
        status,
    )


def site_energy(site: SiteConfig, store: TimeSeriesStore, window: Window) -> tuple[float, float]:
    """(kWh, m³) the site's roots measured over the window's local months."""
    months = site_months(site, store, window.first, window.last)
    return sum(m.kwh for m in months), sum(m.water_m3 for m in months)


def site_figures(
    site: SiteConfig,
    energy: tuple[float, float],
    window: Window,
    savings_of: SavingsOf,
    months_of: MonthsOf,
    contracts: Callable[[Contract], bool] = lambda _c: True,
) -> SiteFigures:
    """One site over the window, its `energy` from `site_energy`; only the contracts
    `contracts` lets through (a vendor's)."""
    figures = tuple(
        contract_figures(site, c, u, window, savings_of, months_of)
        for c in site.contracts
        if contracts(c)
        for u in c.utility_names()
    )
    return SiteFigures(
        site_id=site.site.id,
        name=site.site.name,
        floor_area_m2=sum(b.floor_area_m2 for b in site.buildings),
        staff=sum(t.staff for t in site.tenants),
        kwh=energy[0],
        water_m3=energy[1],
        contracts=figures,
    )


def portfolio_figures(window: Window, sites: Sequence[SiteFigures]) -> PortfolioFigures:
    """The sites' figures with their rankings (ties by site id)."""

    def intensity_key(s: SiteFigures) -> tuple[bool, float, str]:
        value = s.kwh_per_m2
        return (value is None or s.kwh <= 0, value or 0.0, s.site_id)

    def savings_key(s: SiteFigures) -> tuple[bool, float, str]:
        return (not s.contracts, -s.avoided_kwh, s.site_id)

    return PortfolioFigures(
        window=window,
        sites=tuple(sites),
        by_intensity=tuple(s.site_id for s in sorted(sites, key=intensity_key)),
        by_savings=tuple(s.site_id for s in sorted(sites, key=savings_key)),
    )

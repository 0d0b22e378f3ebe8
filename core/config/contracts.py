"""Energy-performance contracts: boundary, periods, measures, tariffs, guarantee, adjustments."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from core.calendar import DayType
from core.config.base import EntityId, FieldError, _Model
from core.config.places import EndUse


class Measure(_Model):
    """An energy-conservation measure of a contract: `[[contracts.measures]]`."""

    id: EntityId
    """ASCII id."""
    description: str = ""
    """What was done."""
    end_use: EndUse
    """The end use it acts on."""
    reduction: float = Field(gt=0, lt=1)
    """Fraction of the end use's energy the measure removes (LED lighting: 0.40)."""


TouPeriodName = Literal["sharp", "peak", "flat", "valley"]


class TouWindow(_Model):
    """Local hours of one time-of-use period: an entry of `windows`."""

    period: TouPeriodName
    """`sharp` (尖峰), `peak` (高峰), `flat` (平段) or `valley` (低谷)."""
    start: int = Field(ge=0, le=23)
    """First local hour of the window (0-23)."""
    end: int = Field(ge=1, le=24)
    """Hour the window ends (exclusive, 1-24)."""

    @model_validator(mode="after")
    def _ordered(self) -> TouWindow:
        if self.end <= self.start:
            raise FieldError("end", f"window {self.start}-{self.end}: end must come after start")
        return self


class TariffSeason(_Model):
    """Time-of-use periods and prices for some months: `[[contracts.tariff.seasons]]`."""

    name: str = Field(min_length=1)
    """E.g. `summer` (the months with a sharp peak)."""
    months: tuple[int, ...] = Field(min_length=1)
    """Calendar months (1-12) the season covers."""
    windows: tuple[TouWindow, ...] = ()
    """Hours of the non-flat periods; every hour not in a window is `flat`."""
    prices: dict[TouPeriodName, float] = Field(min_length=1)
    """Energy price by period, CNY/kWh (must include `flat` and every windowed period)."""

    @model_validator(mode="after")
    def _consistent(self) -> TariffSeason:
        if any(not 1 <= m <= 12 for m in self.months):
            raise FieldError("months", f"{list(self.months)}: expected 1-12")
        hours: dict[int, str] = {}
        for w in self.windows:
            for h in range(w.start, w.end):
                if h in hours:
                    raise FieldError("windows", f"hour {h} is both {hours[h]} and {w.period}")
                hours[h] = w.period
        needed = {w.period for w in self.windows} | ({"flat"} if len(hours) < 24 else set())
        missing = sorted(needed - set(self.prices))
        if missing:
            raise FieldError("prices", f"no price for period(s) {', '.join(missing)}")
        if any(price < 0 for price in self.prices.values()):
            raise FieldError("prices", "prices must not be negative")
        return self

    def period_of_hour(self) -> tuple[str, ...]:
        """The period of each local hour 0-23."""
        out = ["flat"] * 24
        for w in self.windows:
            out[w.start : w.end] = [w.period] * (w.end - w.start)
        return tuple(out)


class Tariff(_Model):
    """What energy and water cost: `[contracts.tariff]`."""

    kind: Literal["flat", "tou"] = "flat"
    """`flat`: one price; `tou`: time-of-use periods by season."""
    flat_price_cny_per_kwh: float = Field(default=0.0, ge=0)
    """The price of a `flat` tariff, CNY/kWh."""
    seasons: tuple[TariffSeason, ...] = ()
    """`tou`: seasons covering each month exactly once."""
    water_price_cny_per_m3: float = Field(default=0.0, ge=0)
    """Water and sewage price, CNY/m³ (for a water boundary)."""

    @model_validator(mode="after")
    def _complete(self) -> Tariff:
        if self.kind == "flat" and self.seasons:
            raise FieldError("seasons", "a flat tariff has no seasons (set kind = 'tou')")
        if self.kind == "tou":
            covered = [m for season in self.seasons for m in season.months]
            if sorted(covered) != list(range(1, 13)):
                raise FieldError(
                    "seasons",
                    f"the seasons must cover months 1-12 exactly once, they cover {sorted(covered)}",
                )
        return self

    def price_table(self) -> tuple[tuple[float, ...], ...]:
        """CNY/kWh for each (month 1-12, local hour 0-23), as rows month-1."""
        if self.kind == "flat":
            return tuple((self.flat_price_cny_per_kwh,) * 24 for _ in range(12))
        rows: list[tuple[float, ...]] = [()] * 12
        for season in self.seasons:
            row = tuple(season.prices[p] for p in season.period_of_hour())  # type: ignore[index]
            for m in season.months:
                rows[m - 1] = row
        return tuple(rows)

    def period_table(self) -> tuple[tuple[str, ...], ...]:
        """The period name of each (month, hour); `flat` throughout for a flat tariff."""
        if self.kind == "flat":
            return tuple(("flat",) * 24 for _ in range(12))
        rows: list[tuple[str, ...]] = [()] * 12
        for season in self.seasons:
            for m in season.months:
                rows[m - 1] = season.period_of_hour()
        return tuple(rows)


class Guarantee(_Model):
    """Guaranteed savings (节能量保证): `[contracts.guarantee]`."""

    kwh_per_year: float = Field(gt=0)
    """Avoided electricity the vendor guarantees per contract year, kWh."""
    shortfall_price_cny_per_kwh: float = Field(default=0.0, ge=0)
    """What the vendor pays per kWh short at the year's end; 0: the year's average tariff."""


class NonRoutineAdjustment(_Model):
    """A dated, documented change to the baseline: `[[contracts.adjustments]]`."""

    id: EntityId
    """ASCII id."""
    utility: Literal["electricity", "water"] = "electricity"
    """Which boundary it adjusts."""
    start: date
    """First local day it applies."""
    end: date | None = None
    """Day after the last it applies; open-ended if absent."""
    amount_per_day: float | None = None
    """kWh (or m³) added to the baseline per applicable day; negative removes."""
    fraction: float | None = Field(default=None, gt=-1, lt=10)
    """Instead: a fraction of the baseline added (0.03 = +3 %)."""
    day_types: tuple[DayType, ...] = ()
    """Only on these day types (empty: every day)."""
    description: str = Field(min_length=1)
    """What changed, e.g. a department moving in."""
    document: str = Field(min_length=1)
    """The document that records it (letter, approval number), for the auditor."""

    @model_validator(mode="after")
    def _one_amount(self) -> NonRoutineAdjustment:
        if (self.amount_per_day is None) == (self.fraction is None):
            raise ValueError("give exactly one of amount_per_day or fraction")
        if self.end is not None and self.end <= self.start:
            raise FieldError("end", "end must come after start")
        return self


class BaselineSettings(_Model):
    """How the contract's baseline is modelled: `[contracts.baseline]`."""

    model: Literal["daily", "hourly"] = "daily"
    """`daily`: change-point models by day type; `hourly`: time-of-week-and-temperature."""
    day_types: Literal["calendar", "weekday", "none"] = "calendar"
    """`calendar`: workdays, weekends, statutory holidays and make-up workdays; `weekday`:
    Monday-Friday against the weekend only (as the open-source anchors); `none`."""
    cap_n_eff: bool = True
    """Cap the autocorrelation-corrected n' at n (conservative when residuals alternate)."""
    uncertainty_method: Literal["heldout-months", "ashrae14"] = "heldout-months"
    """The stated 68 %/90 % intervals: `heldout-months` (ASHRAE 14 on daily residuals plus the
    baseline's leave-one-month-out deviations, calibrated for months) or `ashrae14` (Annex B
    as written). The ASHRAE 14 figure is kept beside in every statement either way."""
    max_gap_minutes: int = Field(default=65, ge=1)
    """Counter samples further apart are a gap: buckets interpolated across it are marked."""


class StatementSettings(_Model):
    """Monthly statements: `[contracts.statements]`."""

    settle_days: int = Field(default=3, ge=0, le=28)
    """Days after a month ends before its statement is computed (late data settles)."""
    normalised: bool = False
    """Also report normalised savings over a typical year (needs a year of reporting data)."""


class Contract(_Model):
    """An energy-performance contract (合同能源管理): `[[contracts]]`."""

    id: EntityId
    """ASCII id."""
    name: str = Field(min_length=1)
    """Contract title."""
    vendor: str = Field(min_length=1)
    """The energy-service company."""
    meters: tuple[EntityId, ...] = Field(min_length=1)
    """The measurement boundary: the meters whose sum the savings are computed on."""
    baseline_start: date
    """First day of the baseline period."""
    baseline_end: date
    """Day after the baseline period."""
    reporting_start: date
    """First day of the reporting period (the retrofit is in place)."""
    reporting_end: date | None = None
    """Day after the reporting period; open-ended if absent."""
    measures: tuple[Measure, ...] = ()
    """The measures installed."""
    weather_station: EntityId | None = None
    """The weather meter whose outdoor temperature drives the baseline; absent: the site's
    only weather meter."""
    water_meters: tuple[EntityId, ...] = ()
    """A water boundary (m³), modelled and priced like the electricity one; optional."""
    baseline: BaselineSettings = BaselineSettings()
    """How the baseline is modelled."""
    tariff: Tariff | None = None
    """Prices that turn avoided kWh and m³ into CNY; absent: statements carry no money."""
    vendor_share: float = Field(default=1.0, ge=0, le=1)
    """Shared savings: the vendor's share of the cost savings (0.7 = 70 %)."""
    guarantee: Guarantee | None = None
    """Guaranteed savings, if the contract has them."""
    grid_emission_factor_t_per_mwh: float = Field(default=0.5703, ge=0)
    """tCO2 per MWh avoided (China's 2022 national grid average, MEE: 0.5703)."""
    adjustments: tuple[NonRoutineAdjustment, ...] = ()
    """Non-routine adjustments to the baseline, dated and documented."""
    statements: StatementSettings = StatementSettings()
    """Monthly statement settings."""

    @model_validator(mode="after")
    def _periods_in_order(self) -> Contract:
        if self.baseline_end <= self.baseline_start:
            raise FieldError("baseline_end", "must come after baseline_start")
        if self.reporting_start < self.baseline_end:
            raise FieldError(
                "reporting_start",
                f"{self.reporting_start} is inside the baseline period (ends {self.baseline_end}): "
                "the periods must not overlap",
            )
        if self.reporting_end is not None and self.reporting_end <= self.reporting_start:
            raise FieldError("reporting_end", "must come after reporting_start")
        return self

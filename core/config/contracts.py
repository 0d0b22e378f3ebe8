"""Energy-performance contracts: boundaries, periods, measures, tariffs, guarantee, adjustments.

A contract's boundaries are utilities: electricity (`meters`, priced by `[contracts.tariff]`)
and, optionally, water, natural gas and delivered thermal energy (`[contracts.utilities.*]`),
each with its price and emission factor. `Contract.terms(utility)` resolves any of them into
one `UtilityTerms` row, so the savings core has one table to read instead of a chain of cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from core.calendar import DayType
from core.config.base import EntityId, FieldError, _Model
from core.config.places import EndUse, MeterKind

UtilityName = Literal["electricity", "water", "gas", "thermal"]
"""The utilities a contract boundary can be."""
UTILITY_NAMES: tuple[UtilityName, ...] = get_args(UtilityName)

ModelName = Literal["daily", "hourly", "billing"]
"""The baseline models a contract may choose: the keys of `processing.models.REGISTRY`
(declared here because the site file is validated in `core`, which imports nothing of ours;
the registry checks at import that it holds exactly these)."""
MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)

KWH_PER_GJ = 1e9 / 3.6e6
"""1 GJ = 277.78 kWh."""


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
    """What electricity costs, by the hour: `[contracts.tariff]` (and `[billing.tariff]`)."""

    kind: Literal["flat", "tou"] = "flat"
    """`flat`: one price; `tou`: time-of-use periods by season."""
    flat_price_cny_per_kwh: float = Field(default=0.0, ge=0)
    """The price of a `flat` tariff, CNY/kWh."""
    seasons: tuple[TariffSeason, ...] = ()
    """`tou`: seasons covering each month exactly once."""
    water_price_cny_per_m3: float = Field(default=0.0, ge=0)
    """Water and sewage price, CNY/m³, of the department bills (`[billing.tariff]`); a
    contract's water boundary has its price in `[contracts.utilities.water]`."""

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


class WaterBoundary(_Model):
    """A water boundary (m³): `[contracts.utilities.water]`."""

    meters: tuple[EntityId, ...] = Field(min_length=1)
    """Water meters (`volume` counters) whose sum the savings are computed on."""
    price_cny_per_m3: float | None = Field(default=None, ge=0)
    """Water and sewage price, CNY/m³; absent: statements carry no money."""
    emission_factor_kg_per_m3: float = Field(default=0.0, ge=0)
    """kgCO2 per m³ avoided (supply and treatment; 0 leaves water out of the carbon figure)."""


class GasBoundary(_Model):
    """A natural-gas boundary (m³): `[contracts.utilities.gas]`."""

    meters: tuple[EntityId, ...] = Field(min_length=1)
    """Gas meters (`volume` counters, m³ at reference conditions) summed for the savings."""
    price_cny_per_m3: float | None = Field(default=None, ge=0)
    """Gas price, CNY/m³; absent: statements carry no money."""
    calorific_value_mj_per_m3: float = Field(default=38.931, gt=0)
    """Net calorific value, MJ/m³, turning m³ into kWh (GB/T 2589-2020's 38.931 for natural
    gas; use the supplier's figure when the contract names one)."""
    emission_factor_kg_per_m3: float = Field(default=2.162, ge=0)
    """kgCO2 per m³ burnt (China's provincial inventory guideline: 21.622 t per 10⁴ m³)."""


class ThermalBoundary(_Model):
    """Delivered heat or cooling (BTU meters): `[contracts.utilities.thermal]`."""

    meters: tuple[EntityId, ...] = Field(min_length=1)
    """Thermal (BTU) meters summed for the savings."""
    quantity: Literal["thermal_energy", "heating_energy", "cooling_energy"] = "thermal_energy"
    """The counter read: all delivered energy, or its heating or cooling part."""
    unit: Literal["kWh", "GJ"] = "kWh"
    """The unit of the statements, the price and the emission factor (the meters' kWh are
    converted: 1 GJ = 277.78 kWh)."""
    price_cny_per_unit: float | None = Field(default=None, ge=0)
    """Price per `unit` (CNY/kWh or CNY/GJ); absent: statements carry no money."""
    emission_factor_kg_per_unit: float = Field(ge=0)
    """kgCO2 per `unit` delivered, from the supplier (no default: it depends on the plant;
    China's default for purchased heat is 110 kg/GJ)."""


class Utilities(_Model):
    """A contract's boundaries besides electricity: `[contracts.utilities]`."""

    water: WaterBoundary | None = None
    """Water (m³)."""
    gas: GasBoundary | None = None
    """Natural gas (m³, with its kWh equivalent)."""
    thermal: ThermalBoundary | None = None
    """Delivered heating or cooling (kWh or GJ)."""


@dataclass(frozen=True, slots=True)
class UtilityTerms:
    """One boundary of a contract, resolved: what to read, in which unit, and what it is worth."""

    utility: UtilityName
    meter_kind: MeterKind
    meters: tuple[str, ...]
    quantity: str
    """The counter quantity read from the store (canonical unit: kWh or m³)."""
    unit: str
    """The unit of the statements: `kWh`, `m3` or `GJ`."""
    scale: float
    """Multiply the store's canonical value by this to get `unit`."""
    price: float | None
    """CNY per `unit` for a single-price utility; None for electricity (its tariff) or no price."""
    emission_kg_per_unit: float
    kwh_per_unit: float | None
    """Energy equivalent of one `unit` (gas: its calorific value); None for water."""
    time_of_use: bool
    """Priced by the hour through the contract's tariff (electricity)."""


class Guarantee(_Model):
    """Guaranteed savings (节能量保证): `[contracts.guarantee]`."""

    kwh_per_year: float = Field(gt=0)
    """Avoided electricity the vendor guarantees per contract year, kWh."""
    shortfall_price_cny_per_kwh: float = Field(default=0.0, ge=0)
    """What the vendor pays per kWh short at the year's end; 0: the year's average tariff."""
    basis: Literal["point", "lower_90"] = "point"
    """What is held against the guarantee: the `point` estimate of the avoided energy, or
    `lower_90`, the lower bound of its 90 % interval (the vendor is paid only for what is
    saved with 95 % confidence). Statements show the shortfall on both and the probability
    that the guarantee was met."""


class NonRoutineAdjustment(_Model):
    """A dated, documented change to the baseline: `[[contracts.adjustments]]`."""

    id: EntityId
    """ASCII id."""
    utility: UtilityName = "electricity"
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

    model: ModelName = "daily"
    """`daily`: change-point models by day type; `hourly`: time-of-week-and-temperature;
    `billing`: degree-day model of monthly bills, for a boundary read once a month (counter
    readings at each month's first local midnight: calendar months are the billing periods)."""
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
    utilities: Utilities = Utilities()
    """Boundaries besides electricity (water, gas, delivered heat), each modelled, priced and
    counted in carbon like the electricity one."""
    baseline: BaselineSettings = BaselineSettings()
    """How the baseline is modelled."""
    tariff: Tariff | None = None
    """Electricity prices that turn avoided kWh into CNY; absent: statements carry no money
    (the other utilities' prices are in `[contracts.utilities]`)."""
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

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "water_meters" in data:
            raise FieldError(
                "water_meters",
                "moved: write the water boundary as [contracts.utilities.water] "
                "meters = [...] (with price_cny_per_m3)",
            )
        return data

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
        if self.tariff is not None and self.tariff.water_price_cny_per_m3:
            raise FieldError(
                "tariff.water_price_cny_per_m3",
                "moved: a contract's water price is `price_cny_per_m3` of "
                "[contracts.utilities.water]",
            )
        return self

    def utility_names(self) -> tuple[UtilityName, ...]:
        """The boundaries this contract has: electricity, then any of water, gas, thermal."""
        u = self.utilities
        others = (("water", u.water), ("gas", u.gas), ("thermal", u.thermal))
        names: list[UtilityName] = ["electricity"]
        names += [name for name, boundary in others if boundary is not None]  # type: ignore[misc]
        return tuple(names)

    def terms(self, utility: str) -> UtilityTerms:
        """The boundary `utility`, resolved; `KeyError` names a boundary it does not have."""
        u = self.utilities
        if utility == "electricity":
            return UtilityTerms(
                "electricity", MeterKind.ELECTRICITY, self.meters, "energy_import", "kWh", 1.0,
                None, self.grid_emission_factor_t_per_mwh, 1.0, True,
            )  # fmt: skip
        if utility == "water" and u.water is not None:
            w = u.water
            return UtilityTerms(
                "water", MeterKind.WATER, w.meters, "volume", "m3", 1.0,
                w.price_cny_per_m3, w.emission_factor_kg_per_m3, None, False,
            )  # fmt: skip
        if utility == "gas" and u.gas is not None:
            g = u.gas
            return UtilityTerms(
                "gas", MeterKind.GAS, g.meters, "volume", "m3", 1.0, g.price_cny_per_m3,
                g.emission_factor_kg_per_m3, g.calorific_value_mj_per_m3 / 3.6, False,
            )  # fmt: skip
        if utility == "thermal" and u.thermal is not None:
            t = u.thermal
            per_unit = KWH_PER_GJ if t.unit == "GJ" else 1.0
            return UtilityTerms(
                "thermal", MeterKind.THERMAL, t.meters, t.quantity, t.unit, 1.0 / per_unit,
                t.price_cny_per_unit, t.emission_factor_kg_per_unit, per_unit, False,
            )  # fmt: skip
        raise KeyError(f"contract {self.id!r} has no {utility} boundary")

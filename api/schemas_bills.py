"""Response schemas of the bills and intensity routes (documentation: the routes serve the
same shape, serialised straight from `processing.bills` and `processing.intensity`)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BillRowOut(BaseModel):
    rank: int = Field(description="by kWh/m², 1 = the most per m²")
    tenant: str
    name: str
    name_en: str
    building: str
    floor_area_m2: float
    staff: int
    meters: list[str] = Field(description="the department's own meters")
    kwh_own: float = Field(description="its own meters, plugs below them not counted twice")
    kwh_apportioned: dict[str, float] = Field(description="pool id -> kWh it is billed")
    kwh: float
    kwh_by_period: dict[str, float] = Field(description="sharp, peak, flat, valley")
    cny_by_period: dict[str, float] | None = Field(description="null without a site tariff")
    cny_electricity: float | None
    water_m3_own: float
    water_m3_apportioned: dict[str, float]
    water_m3: float
    cny_water: float | None
    cny: float | None
    kwh_per_m2: float
    kwh_per_person: float | None
    water_m3_per_person: float | None


class PoolOut(BaseModel):
    id: str
    name: str
    utility: str
    rule: str
    building: str | None = Field(description="a per-building pool's building")
    meters: list[str]
    unit: str
    quantity: float
    cny: float | None
    allocated: float
    unallocated: float
    recipients: int
    reason: str = Field(description="why part of it stays unallocated")


class RemainderItemOut(BaseModel):
    source: str = Field(description="pool or meter")
    id: str
    building: str | None
    quantity: float
    cny: float | None
    reason: str


class RemainderOut(BaseModel):
    kwh: float
    kwh_by_period: dict[str, float]
    cny_by_period: dict[str, float] | None
    cny_electricity: float | None
    water_m3: float
    cny_water: float | None
    cny: float | None
    electricity: list[RemainderItemOut]
    water: list[RemainderItemOut]


class MoneyCheckOut(BaseModel):
    measured: float
    departments: float
    unallocated: float
    difference: float


class UtilityCheckOut(BaseModel):
    unit: str
    meters: list[str] = Field(description="the incomers (electricity), the mains (water)")
    measured: float
    departments_own: float
    apportioned: float
    unallocated: float
    difference: float = Field(description="measured - (own + apportioned + unallocated)")
    cny: MoneyCheckOut | None


class ReconciliationOut(BaseModel):
    electricity: UtilityCheckOut
    water: UtilityCheckOut


class TargetCheckOut(BaseModel):
    value: float | None
    status: str = Field(
        description="above_constraint, above_guide, at_or_below_guide, within_constraint, no_data"
    )


class TargetOut(BaseModel):
    id: str
    metric: str
    constraint: float | None
    guide: float | None
    applies_to: str
    source: str
    provisional: bool
    site: TargetCheckOut | None = None
    buildings: dict[str, TargetCheckOut] | None = None


class FiguresOut(BaseModel):
    kwh: float
    water_m3: float
    kwh_per_m2: float
    kwh_per_person: float | None
    kgce_per_m2: float
    kgce_per_person: float | None
    water_m3_per_person: float | None
    water_m3_per_m2: float


class IntensityBlockOut(FiguresOut):
    floor_area_m2: float
    staff: int
    year_to_date: FiguresOut


class BuildingIntensityOut(IntensityBlockOut):
    id: str
    name: str
    name_en: str


class WindowOut(BaseModel):
    first: str
    last: str
    months: int
    months_with_data: int
    complete: bool
    annualised: bool


class IntensityOut(BaseModel):
    through: str = Field(description="the window's last month, YYYY-MM")
    window: WindowOut
    year_to_date: dict[str, str]
    provisional: bool = Field(description="the window is incomplete or a target is unverified")
    site: IntensityBlockOut
    buildings: list[BuildingIntensityOut]
    unallocated: dict[str, float]
    targets: list[TargetOut]
    kgce_per_kwh: float


class BillsSiteOut(BaseModel):
    id: str
    name: str
    floor_area_m2: float
    staff: int
    kwh: float
    water_m3: float
    cny: float | None
    kwh_per_m2: float
    kwh_per_person: float | None
    intensity: IntensityOut | None = Field(description="12 months through the bills' month")


class BillsOut(BaseModel):
    month: str
    status: str = Field(description="final, or provisional for a month not ended")
    provisional: bool
    start: str
    end: str
    through: str | None = Field(description="end of the last hour with data")
    priced: bool
    periods: list[str]
    rank_by: str
    site: BillsSiteOut
    rows: list[BillRowOut]
    pools: list[PoolOut]
    unallocated: RemainderOut
    reconciliation: ReconciliationOut

"""Response schemas: flat rows, ISO-8601 UTC times, float values (what Grafana's Infinity
datasource reads directly)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class MeterOut(BaseModel):
    id: str
    name: str
    kind: str
    building: str
    tenant: str | None
    parent: str | None
    end_use: str
    protocol: str
    poll_interval_s: int
    quantities: list[str] = Field(description="quantities the store holds for this meter")


class Point(BaseModel):
    time: str = Field(examples=["2026-11-30T08:00:00Z"])
    value: float


class SeriesOut(BaseModel):
    meter: str
    quantity: str
    unit: str
    start: str
    end: str
    every: str | None = Field(description="bucket width; null for raw points")
    agg: str | None
    points: list[Point]


class ErrorOut(BaseModel):
    detail: str


class LatestOut(BaseModel):
    meter: str
    quantity: str
    unit: str
    time: str
    value: float


class SiteOut(BaseModel):
    id: str
    name: str
    name_en: str
    timezone: str
    latitude: float
    longitude: float
    floor_area_m2: float
    buildings: int
    tenants: int
    meters: int


class BuildingOut(BaseModel):
    id: str
    name: str
    name_en: str
    floor_area_m2: float
    floors: int


class TenantOut(BaseModel):
    id: str
    name: str
    name_en: str
    building: str
    floor_area_m2: float
    staff: int
    kind: str
    meters: list[str]


class ConsumptionRow(BaseModel):
    time: str = Field(examples=["2026-11-01T16:00:00Z"])
    value: float
    unit: str


class ConsumptionOut(BaseModel):
    level: str = Field(description="meter, tenant or building")
    id: str
    quantity: str
    unit: str
    every: str
    meters: list[str] = Field(description="the meters summed")
    total: float
    rows: list[ConsumptionRow]


class MeterStatusOut(BaseModel):
    meter: str
    kind: str
    protocol: str
    last_seen: str | None
    age_s: float | None
    expected_interval_s: int
    stale: bool


class DeadLetterOut(BaseModel):
    time: str
    source: str
    reason: str
    payload: str | None


class SpoolOut(BaseModel):
    backend: str
    spooled_batches: int


class PartOut(BaseModel):
    state: str
    """starting, running, restarting (down, restarting after a backoff), stopped, failed."""
    restarts: int
    last_error: str | None = None


class HealthOut(BaseModel):
    status: str
    """`ok`, or `degraded` (with HTTP 503) while anything in `problems`."""
    site: str
    pid: int
    """The answering process's id (several web processes may serve one address)."""
    store: str
    """`ok`, `degraded: <why>` while writes fail (ingest paused), or `unavailable: ...`."""
    problems: dict[str, str] = {}
    """What is wrong now: a part down and its last error, a degraded condition."""
    parts: dict[str, PartOut] = {}
    """Every supervised part of this process."""


# -- contracts: terms, baseline, savings, statements (the full record) -----------------------
# Numbers that can be non-finite (an uncertainty with no day counted, an FSU with nothing
# saved) are null in JSON, hence `float | None`.


class ContractSummaryOut(BaseModel):
    id: str
    name: str
    vendor: str
    reporting_start: str
    utilities: list[str] = Field(description="the boundaries: electricity, water, gas, thermal")


class UncertaintyOut(BaseModel):
    confidence: float
    u: float | None = Field(description="± avoided energy at this confidence, in the unit")
    fsu: float | None = Field(description="fractional savings uncertainty, U / avoided")
    t: float | None
    k: float | None
    m: int


class MoneyOut(BaseModel):
    kwh: dict[str, float] = Field(
        description="avoided energy by tariff period (sharp 尖峰, peak 峰, flat 平, valley 谷), "
        "or by utility for a single-price boundary"
    )
    cny: dict[str, float] = Field(description="its value by period, CNY")
    total_cny: float
    vendor_cny: float
    owner_cny: float


class PeriodOut(BaseModel):
    label: str
    start: str
    end: str = Field(description="exclusive")
    days: int
    days_used: int
    days_estimated: int
    baseline: float
    adjustments: float
    adjusted_baseline: float
    actual: float
    avoided: float
    u68: UncertaintyOut
    u90: UncertaintyOut
    carbon_t: float
    money: MoneyOut | None = None
    energy_kwh: float | None = Field(
        default=None, description="kWh equivalent of the avoided gas (m³) or heat (GJ)"
    )


class GuaranteeOut(BaseModel):
    contract_year: int
    year_start: str
    year_end: str
    guaranteed_kwh: float
    pro_rata_kwh: float
    achieved_kwh: float
    shortfall_kwh: float = Field(description="on the contract's basis")
    year_complete: bool
    shortfall_price: float
    shortfall_cny: float
    basis: str = Field(description="point, or lower_90 (the lower bound of the 90 % interval)")
    achieved_lower_90_kwh: float | None = None
    shortfall_point_kwh: float | None = None
    shortfall_lower_90_kwh: float | None = None
    probability_met: float | None = Field(
        default=None, description="P(true savings ≥ the pro-rata guarantee), normal approximation"
    )


class NumbersOut(BaseModel):
    month: PeriodOut
    year_to_date: PeriodOut
    cumulative: PeriodOut
    guarantee: GuaranteeOut | None
    normalised: float | None


class FindingOut(BaseModel):
    code: str
    severity: str = Field(description="error (a criterion failed), warning or info")
    clause: str
    message: str
    values: dict[str, Any]


class DailyInputsOut(BaseModel):
    day: list[str]
    temperature: list[float | None]
    day_type: list[str]
    actual: list[float | None]
    estimated: list[bool]


class HourlyInputsOut(BaseModel):
    ts_ms: list[int]
    hour_of_week: list[int]
    day: list[str]
    day_type: list[int]
    temperature: list[float | None]
    actual: list[float | None]


class ProfileOut(BaseModel):
    method: str
    shape: list[list[list[float]]] = Field(description="[day type][month][hour] shares")
    days: list[list[int]]


class InputsOut(BaseModel):
    daily: DailyInputsOut
    shares: list[list[float | None]] = Field(
        description="per day, the metered consumption's sharp/peak/flat/valley shares"
    )
    hourly: HourlyInputsOut | None
    typical_temperature: list[float | None] | None
    profile: ProfileOut | None = None


class StatementOut(BaseModel):
    """The full record: everything `epcmon savings verify` needs to recompute it."""

    contract_id: str
    utility: str
    unit: str
    month: str
    status: str = Field(description="final, provisional, or unreliable: <finding>")
    numbers: NumbersOut
    findings: list[FindingOut]
    model: dict[str, Any] = Field(description="the fitted baseline model's JSON")
    contract: dict[str, Any] = Field(description="the contract as configured")
    inputs: InputsOut
    inputs_digest: str
    created_at: str
    software: str
    pricing: str = Field(description="how the avoided energy was priced")
    calendar: str = Field(description="where the day types came from")


class StatementEntryOut(BaseModel):
    month: str
    status: str = Field(description="final, provisional, or unreliable: <finding>")
    version: int = Field(description="final statements written for the month (0: provisional)")
    created_at: str
    inputs_digest: str
    avoided: float


class BaselineOut(BaseModel):
    contract_id: str
    utility: str
    model: dict[str, Any]
    findings: list[FindingOut]
    start: str
    end: str
    temperature_range: list[float | None]
    inputs_digest: str
    fitted_at: str
    profile: ProfileOut | None = None


class SavingsRowOut(BaseModel):
    """A day (`estimated`) or a month, contract year or total (`start` .. `u90`, `cumulative`)."""

    period: str
    baseline: float
    actual: float
    avoided: float
    unit: str
    estimated: bool | None = None
    start: str | None = None
    end: str | None = None
    days: int | None = None
    days_used: int | None = None
    u68: float | None = None
    u90: float | None = None
    fsu68: float | None = None
    fsu90: float | None = None
    cumulative: float | None = None

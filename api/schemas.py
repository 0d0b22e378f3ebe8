"""Response schemas: flat rows, ISO-8601 UTC times, float values (what Grafana's Infinity
datasource reads directly)."""

from __future__ import annotations

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
    store: str
    """`ok`, `degraded: <why>` while writes fail (ingest paused), or `unavailable: ...`."""
    problems: dict[str, str] = {}
    """What is wrong now: a part down and its last error, a degraded condition."""
    parts: dict[str, PartOut] = {}
    """Every supervised part of this process."""

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

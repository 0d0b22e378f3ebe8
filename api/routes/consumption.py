"""Consumption per meter, tenant (department) and building, from the counters.

The sums are `processing.rollups`' (the bills and the report read the same): a tenant's or
building's consumption is the sum of its top-most meters of the kind asked for (a plug below
a department's sub-meter is not counted twice); incomers feed several buildings, so a
building's figure is the sum of its sub-meters, without transformer losses.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.common import Format, csv_response, iso_times, json_response, time_range
from api.deps import Reader, SiteDep, StoreDep
from api.errors import BadRequest
from api.routes.meters import ERRORS
from api.schemas import ConsumptionOut
from core.config import Meter, MeterKind, SiteConfig
from processing.rollups import (
    COUNTER,
    UNIT,
    building_meters,
    summed_consumption,
    tenant_meters,
)
from storage.base import Every, TimeSeriesStore

router = APIRouter(prefix="/api/v1/consumption", tags=["consumption"])

Kind = Literal["electricity", "water", "thermal"]
EveryParam = Annotated[
    str, Query(pattern=r"^(1h|1d|1mo)$", description="1h, 1d or 1mo (local time)")
]


def _sum(
    site: SiteConfig,
    store: TimeSeriesStore,
    meters: list[Meter],
    start_ms: int,
    end_ms: int,
    every: Every,
) -> tuple[np.ndarray, np.ndarray]:
    if (end_ms - start_ms) // every.approx_ms > site.api.max_points:
        raise BadRequest(f"too many {every} buckets: ask for a wider every= or a shorter range")
    return summed_consumption(site, store, meters, start_ms, end_ms, every)


def _answer(
    level: str,
    ident: str,
    kind: MeterKind,
    every: str,
    meters: list[Meter],
    ts: np.ndarray,
    values: np.ndarray,
    fmt: Format,
) -> ConsumptionOut | Response:
    unit = UNIT[kind]
    times = iso_times(ts)
    if fmt == "csv":
        return csv_response(
            ["time", "value", "unit"],
            zip(times, values.tolist(), [unit] * len(times), strict=True),
            f"{level}-{ident}-{kind.value}.csv",
        )
    return json_response(
        {
            "level": level,
            "id": ident,
            "quantity": COUNTER[kind],
            "unit": unit,
            "every": every,
            "meters": [m.id for m in meters],
            "total": float(values.sum()),
            "rows": [
                {"time": t, "value": v, "unit": unit}
                for t, v in zip(times, values.tolist(), strict=True)
            ],
        }
    )


StartQ = Annotated[datetime | None, Query(description="ISO-8601; default: end - 7 days")]
EndQ = Annotated[datetime | None, Query(description="ISO-8601; default: now")]


@router.get("/meters/{meter_id}", response_model=ConsumptionOut, responses=ERRORS)
def meter_consumption(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    meter_id: str,
    every: EveryParam = "1d",
    start: StartQ = None,
    end: EndQ = None,
    format: Format = "json",
) -> ConsumptionOut | Response:
    meter = site.meter(meter_id)
    if meter.kind not in COUNTER:
        raise BadRequest(f"meter {meter.id} ({meter.kind.value}) has no consumption counter")
    _s, _e, start_ms, end_ms = time_range(site, start, end, timedelta(days=7))
    ts, values = _sum(site, store, [meter], start_ms, end_ms, Every.parse(every))
    return _answer("meter", meter.id, meter.kind, every, [meter], ts, values, format)


@router.get("/tenants/{tenant_id}", response_model=ConsumptionOut, responses=ERRORS)
def tenant_consumption(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    tenant_id: str,
    kind: Kind = "electricity",
    every: EveryParam = "1d",
    start: StartQ = None,
    end: EndQ = None,
    format: Format = "json",
) -> ConsumptionOut | Response:
    k = MeterKind(kind)
    meters = tenant_meters(site, tenant_id, k)
    _s, _e, start_ms, end_ms = time_range(site, start, end, timedelta(days=7))
    ts, values = _sum(site, store, meters, start_ms, end_ms, Every.parse(every))
    return _answer("tenant", tenant_id, k, every, meters, ts, values, format)


@router.get("/buildings/{building_id}", response_model=ConsumptionOut, responses=ERRORS)
def building_consumption(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    building_id: str,
    kind: Kind = "electricity",
    every: EveryParam = "1d",
    start: StartQ = None,
    end: EndQ = None,
    format: Format = "json",
) -> ConsumptionOut | Response:
    k = MeterKind(kind)
    meters = building_meters(site, building_id, k)
    _s, _e, start_ms, end_ms = time_range(site, start, end, timedelta(days=7))
    ts, values = _sum(site, store, meters, start_ms, end_ms, Every.parse(every))
    return _answer("building", building_id, k, every, meters, ts, values, format)

"""Meters: list, detail, latest values, series."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.cache import ResponseCache
from api.common import (
    Format,
    csv_response,
    iso,
    iso_times,
    json_bytes_response,
    json_response,
    time_range,
)
from api.deps import Reader, SiteDep, StoreDep
from api.errors import BadRequest
from api.schemas import ErrorOut, LatestOut, MeterOut, SeriesOut
from core.config import Meter
from core.errors import NotFound
from core.quantities import QUANTITIES
from storage.base import Agg, Every

router = APIRouter(prefix="/api/v1/meters", tags=["meters"])

ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


def meter_out(m: Meter, quantities: list[str]) -> MeterOut:
    return MeterOut(
        id=m.id,
        name=m.name,
        kind=m.kind.value,
        building=m.building,
        tenant=m.tenant,
        parent=m.parent,
        end_use=m.end_use.value,
        protocol=m.protocol,
        poll_interval_s=m.poll_interval_s,
        quantities=sorted(quantities),
    )


@router.get("", response_model=list[MeterOut], responses=ERRORS)
def list_meters(_who: Reader, site: SiteDep, store: StoreDep) -> list[MeterOut]:
    held: dict[str, list[str]] = {}
    for meter_id, quantity in store.series_keys():
        held.setdefault(meter_id, []).append(quantity)
    return [meter_out(m, held.get(m.id, [])) for m in site.meters]


@router.get("/{meter_id}", response_model=MeterOut, responses=ERRORS)
def meter_detail(_who: Reader, site: SiteDep, store: StoreDep, meter_id: str) -> MeterOut:
    meter = site.meter(meter_id)
    return meter_out(meter, [q for m, q in store.series_keys() if m == meter.id])


@router.get("/{meter_id}/latest", response_model=list[LatestOut], responses=ERRORS)
def meter_latest(_who: Reader, site: SiteDep, store: StoreDep, meter_id: str) -> list[LatestOut]:
    meter = site.meter(meter_id)
    readings = sorted(store.latest([meter.id]), key=lambda r: r.quantity)
    return [
        LatestOut(
            meter=r.meter_id,
            quantity=r.quantity,
            unit=QUANTITIES[r.quantity].unit.value if r.quantity in QUANTITIES else "",
            time=iso(r.time),
            value=r.value,
        )
        for r in readings
    ]


@router.get("/{meter_id}/series", response_model=SeriesOut, responses=ERRORS)
def meter_series(
    _who: Reader,
    request: Request,
    site: SiteDep,
    store: StoreDep,
    meter_id: str,
    quantity: Annotated[
        str, Query(description="e.g. power, energy_import, outdoor_temperature", examples=["power"])
    ],
    start: Annotated[datetime | None, Query(description="ISO-8601; default: end - 24 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO-8601; default: now")] = None,
    every: Annotated[
        str | None,
        Query(
            pattern=r"^\d{1,6}(s|m|h|d|mo)$",
            description="bucket width; omit for raw points",
            examples=["1h"],
        ),
    ] = None,
    agg: Annotated[Agg, Query()] = Agg.MEAN,
    format: Annotated[Format, Query(description="json, or csv for a file")] = "json",
) -> SeriesOut | Response:
    meter = site.meter(meter_id)
    if quantity not in QUANTITIES:
        raise NotFound(f"no quantity {quantity!r}")
    start_dt, end_dt, start_ms, end_ms = time_range(site, start, end, timedelta(hours=24))
    cache: ResponseCache = request.app.state.response_cache
    newest = max((r.ts_ms for r in store.latest([meter.id]) if r.quantity == quantity), default=0)
    cache_key = (meter.id, quantity, start_ms, end_ms, every, agg.value, format, newest)
    if format == "json" and (body := cache.get(cache_key)) is not None:
        return json_bytes_response(body)
    max_points = site.api.max_points
    if every is None:
        series = store.read_raw(meter.id, quantity, start_ms, end_ms)
        if len(series) > max_points:
            raise BadRequest(
                f"{len(series)} raw points exceed the limit of {max_points}: ask for buckets "
                "with every= (e.g. every=1h&agg=mean) or a shorter range"
            )
    else:
        try:
            width = Every.parse(every)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        buckets = (end_ms - start_ms) // width.approx_ms
        if buckets > max_points:
            raise BadRequest(
                f"about {buckets} buckets of {every} exceed the limit of {max_points}: "
                "ask for a wider every= or a shorter range"
            )
        series = store.aggregate(
            meter.id, quantity, start_ms, end_ms, width, agg, site.site.timezone
        )
    times = iso_times(series.ts_ms)
    values = series.value.tolist()
    unit = QUANTITIES[quantity].unit.value
    if format == "csv":
        return csv_response(
            ["time", "meter", "quantity", "value", "unit"],
            ((t, meter.id, quantity, v, unit) for t, v in zip(times, values, strict=True)),
            f"{meter.id}-{quantity}.csv",
        )
    response = json_response(
        {
            "meter": meter.id,
            "quantity": quantity,
            "unit": unit,
            "start": iso(start_dt),
            "end": iso(end_dt),
            "every": every,
            "agg": agg.value if every else None,
            "points": [{"time": t, "value": v} for t, v in zip(times, values, strict=True)],
        }
    )
    cache.put(cache_key, bytes(response.body))
    return response

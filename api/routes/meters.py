"""Meters: list, detail, latest values, series."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import fast
from api.cache import Flights, ResponseCache
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
from core.config import Meter, SiteConfig
from core.errors import NotFound
from core.quantities import QUANTITIES
from storage.base import Agg, Every, TimeSeriesStore

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
async def meter_latest(_who: Reader, request: Request, meter_id: str) -> Response:
    """The newest value of each quantity of the meter (from the store's memory when it is
    the embedded store: no query, no thread-pool hop)."""
    state = request.app.state
    meter = state.site.meter(meter_id)
    readings = sorted(await fast.latest(state.store, [meter.id]), key=lambda r: r.quantity)
    return json_response(
        [
            {
                "meter": r.meter_id,
                "quantity": r.quantity,
                "unit": QUANTITIES[r.quantity].unit.value if r.quantity in QUANTITIES else "",
                "time": iso(r.time),
                "value": r.value,
            }
            for r in readings
        ]
    )


@router.get("/{meter_id}/series", response_model=SeriesOut, responses=ERRORS)
async def meter_series(
    _who: Reader,
    request: Request,
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
) -> Response:
    """A series, raw or in buckets. A repeated JSON question (a dashboard refreshing) is
    answered from the response cache on the event loop while the series' newest point is
    unchanged; the store is queried in the thread pool only on a miss."""
    state = request.app.state
    site: SiteConfig = state.site
    store: TimeSeriesStore = state.store
    meter = site.meter(meter_id)
    if quantity not in QUANTITIES:
        raise NotFound(f"no quantity {quantity!r}")
    start_dt, end_dt, start_ms, end_ms = time_range(site, start, end, timedelta(hours=24))
    cache: ResponseCache = state.response_cache
    newest = max(
        (r.ts_ms for r in await fast.latest(store, [meter.id]) if r.quantity == quantity),
        default=0,
    )
    cache_key = (meter.id, quantity, start_ms, end_ms, every, agg.value, format, newest)
    if every is not None:
        try:
            width: Every | None = Every.parse(every)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    else:
        width = None
    query = SeriesQuery(meter.id, quantity, start_dt, end_dt, start_ms, end_ms, every, width, agg)
    if format == "csv":
        return await fast.blocking(lambda: series_response(site, store, query, format))

    async def compute() -> bytes:
        response = await fast.blocking(lambda: series_response(site, store, query, format))
        body = bytes(response.body)
        cache.put(cache_key, body)
        return body

    flights: Flights = state.flights
    hit = cache.peek(cache_key)
    if hit is None:
        return json_bytes_response(await flights.run(cache_key, compute))
    body, fresh = hit
    if not fresh:  # expired: this one more time, while one refresh runs
        flights.start(cache_key, compute)
    return json_bytes_response(body)


@dataclass(frozen=True)
class SeriesQuery:
    meter_id: str
    quantity: str
    start: datetime
    end: datetime
    start_ms: int
    end_ms: int
    every: str | None
    width: Every | None
    agg: Agg


def series_response(
    site: SiteConfig, store: TimeSeriesStore, q: SeriesQuery, format: Format
) -> Response:
    """The series' body (JSON or CSV): blocking, run in the thread pool."""
    max_points = site.api.max_points
    if q.width is None:
        series = store.read_raw(q.meter_id, q.quantity, q.start_ms, q.end_ms)
        if len(series) > max_points:
            raise BadRequest(
                f"{len(series)} raw points exceed the limit of {max_points}: ask for buckets "
                "with every= (e.g. every=1h&agg=mean) or a shorter range"
            )
    else:
        buckets = (q.end_ms - q.start_ms) // q.width.approx_ms
        if buckets > max_points:
            raise BadRequest(
                f"about {buckets} buckets of {q.every} exceed the limit of {max_points}: "
                "ask for a wider every= or a shorter range"
            )
        series = store.aggregate(
            q.meter_id, q.quantity, q.start_ms, q.end_ms, q.width, q.agg, site.site.timezone
        )
    times = iso_times(series.ts_ms)
    values = series.value.tolist()
    unit = QUANTITIES[q.quantity].unit.value
    if format == "csv":  # a file: not cached
        return csv_response(
            ["time", "meter", "quantity", "value", "unit"],
            ((t, q.meter_id, q.quantity, v, unit) for t, v in zip(times, values, strict=True)),
            f"{q.meter_id}-{q.quantity}.csv",
        )
    return json_response(
        {
            "meter": q.meter_id,
            "quantity": q.quantity,
            "unit": unit,
            "start": iso(q.start),
            "end": iso(q.end),
            "every": q.every,
            "agg": q.agg.value if q.every else None,
            "points": [{"time": t, "value": v} for t, v in zip(times, values, strict=True)],
        }
    )

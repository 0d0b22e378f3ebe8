"""Meters: the list, and one meter's series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Query, Request

from api.deps import SiteDep, StoreDep
from api.errors import BadRequest
from api.schemas import ErrorOut, MeterOut, Point, SeriesOut
from core.errors import NotFound
from core.quantities import QUANTITIES
from core.readings import to_ms
from storage.base import Agg, Every

router = APIRouter(prefix="/api/v1/meters", tags=["meters"])


def iso_times(ts_ms: npt.NDArray[np.int64]) -> list[str]:
    stamps: npt.NDArray[np.datetime64] = ts_ms.astype("datetime64[ms]")
    text = np.datetime_as_string(stamps, unit="s" if not np.any(ts_ms % 1000) else "ms")
    return [str(t) + "Z" for t in text]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get("", response_model=list[MeterOut])
def list_meters(site: SiteDep, store: StoreDep) -> list[MeterOut]:
    held: dict[str, list[str]] = {}
    for meter_id, quantity in store.series_keys():
        held.setdefault(meter_id, []).append(quantity)
    return [
        MeterOut(
            id=m.id,
            name=m.name,
            kind=m.kind.value,
            building=m.building,
            tenant=m.tenant,
            end_use=m.end_use.value,
            protocol=m.protocol,
            poll_interval_s=m.poll_interval_s,
            quantities=sorted(held.get(m.id, [])),
        )
        for m in site.meters
    ]


def _aware(value: datetime | None, default: datetime) -> datetime:
    if value is None:
        return default
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get(
    "/{meter_id}/series",
    response_model=SeriesOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
def meter_series(
    request: Request,
    site: SiteDep,
    store: StoreDep,
    meter_id: str,
    quantity: Annotated[str, Query(description="e.g. power, energy_import, outdoor_temperature")],
    start: Annotated[datetime | None, Query(description="ISO-8601; default: end - 24 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO-8601; default: now")] = None,
    every: Annotated[
        str | None,
        Query(pattern=r"^\d+(s|m|h|d|mo)$", description="bucket width; omit for raw points"),
    ] = None,
    agg: Annotated[Agg, Query()] = Agg.MEAN,
) -> SeriesOut:
    meter = site.meter(meter_id)
    if quantity not in QUANTITIES:
        raise NotFound(f"no quantity {quantity!r}")
    end_dt = _aware(end, datetime.now(UTC))
    start_dt = _aware(start, end_dt - timedelta(hours=24))
    if start_dt >= end_dt:
        raise BadRequest("start must be before end")
    start_ms, end_ms = to_ms(start_dt), to_ms(end_dt)
    max_points: int = site.api.max_points
    if every is None:
        series = store.read_raw(meter.id, quantity, start_ms, end_ms)
        if len(series) > max_points:
            raise BadRequest(
                f"{len(series)} raw points exceed the limit of {max_points}: ask for buckets "
                f"with every= (e.g. every=1h&agg=mean) or a shorter range"
            )
    else:
        width = Every.parse(every)
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
    return SeriesOut(
        meter=meter.id,
        quantity=quantity,
        unit=QUANTITIES[quantity].unit.value,
        start=iso(start_dt),
        end=iso(end_dt),
        every=every,
        agg=agg.value if every else None,
        points=[
            Point(time=t, value=float(v)) for t, v in zip(times, series.value.tolist(), strict=True)
        ],
    )

"""What several routes share: time ranges, ISO times, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
import orjson
from fastapi.responses import Response

from api.errors import BadRequest
from core.config import SiteConfig
from core.readings import to_ms

Format = Literal["json", "csv"]


def iso_times(ts_ms: npt.NDArray[np.int64]) -> list[str]:
    stamps: npt.NDArray[np.datetime64] = ts_ms.astype("datetime64[ms]")
    text = np.datetime_as_string(stamps, unit="s" if not np.any(ts_ms % 1000) else "ms")
    return [str(t) + "Z" for t in text]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def time_range(
    site: SiteConfig, start: datetime | None, end: datetime | None, default: timedelta
) -> tuple[datetime, datetime, int, int]:
    """Aware start/end (naive means UTC), checked against the site's limits."""
    end_dt = end if end is None or end.tzinfo else end.replace(tzinfo=UTC)
    end_dt = end_dt or datetime.now(UTC)
    start_dt = start if start is None or start.tzinfo else start.replace(tzinfo=UTC)
    start_dt = start_dt or end_dt - default
    if start_dt >= end_dt:
        raise BadRequest("start must be before end")
    if end_dt - start_dt > timedelta(days=site.api.max_range_days):
        raise BadRequest(f"the range exceeds {site.api.max_range_days} days: ask for a shorter one")
    return start_dt, end_dt, to_ms(start_dt), to_ms(end_dt)


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[object]], filename: str
) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def json_response(payload: object) -> Response:
    """Serialise with orjson, skipping FastAPI's response-model pass: series of thousands of
    points are the API's hot path, and their shape is already fixed by the route."""
    return Response(orjson.dumps(payload), media_type="application/json")

"""Grafana's reads, in the shapes its Infinity datasource wants, over any store.

The embedded DuckDB store has no InfluxDB for Grafana to query, so the generated dashboards of
a DuckDB site read their meter panels here (`dashboards/grafana/api_source.py`). Times are
Grafana's own: `from` and `to` in epoch milliseconds (`${__from}`, `${__to}`) and the bucket
width it would use, `interval_ms` (`${__interval_ms}`), rounded up to a whole width and widened
until the range fits in `api.max_points` buckets: a zoomed-out panel gets coarser buckets,
never an error. Series come as long rows (`time`, `series`, `value`) sorted by time, which
Infinity's `timeseries` format turns wide, one series per `series` value.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.common import iso_times, json_response, time_range
from api.deps import AnyKey, Reader, SiteDep, StoreDep
from api.errors import BadRequest
from api.routes.contracts import baseline_of, savings_rows, visible_contract
from api.routes.meters import ERRORS
from core.config import Meter, MeterKind, SiteConfig
from core.errors import NotFound
from core.quantities import QUANTITIES
from core.readings import from_ms
from processing.rollups import tenant_meters
from storage.base import Agg, Every, TimeSeriesStore, local_midnight_ms, time_zone

router = APIRouter(prefix="/api/v1/grafana", tags=["grafana"])

WIDTHS = tuple(
    Every.parse(w)
    for w in (
        *("10s", "30s", "1m", "2m", "5m", "10m", "15m", "30m"),
        *("1h", "2h", "3h", "6h", "12h", "1d", "7d"),
    )
)
"""The bucket widths a panel may get, narrowest first (days follow local time)."""

FromQ = Annotated[int, Query(alias="from", description="epoch ms: Grafana's `${__from}`")]
ToQ = Annotated[int, Query(alias="to", description="epoch ms: Grafana's `${__to}`")]
IntervalQ = Annotated[
    int | None,
    Query(ge=1, description="Grafana's `${__interval_ms}`; default: the range / 1000"),
]
MetersQ = Annotated[
    list[str] | None, Query(description="meter ids; default: every meter holding the quantity")
]


def _range(site: SiteConfig, from_: int, to: int) -> tuple[int, int]:
    """[from, to) checked like every range of the API (order, `api.max_range_days`)."""
    _s, _e, lo, hi = time_range(site, _moment(from_), _moment(to), timedelta(0))
    return lo, hi


def _moment(ms: int) -> datetime:
    try:
        return from_ms(ms)
    except (OverflowError, ValueError, OSError):
        raise BadRequest(f"{ms}: not a time in epoch milliseconds") from None


def width_for(site: SiteConfig, lo: int, hi: int, interval_ms: int | None) -> Every:
    """The narrowest width at least `interval_ms` that keeps [lo, hi) within max_points."""
    wanted = interval_ms or max(1, (hi - lo) // 1000)
    for every in WIDTHS:
        if every.approx_ms >= wanted and (hi - lo) // every.approx_ms < site.api.max_points:
            return every
    raise BadRequest("the range holds too many buckets even a week wide: ask for a shorter one")


def bucket_starts(every: Every, lo: int, hi: int, tz: str) -> list[int]:
    """Every bucket from the one holding `lo` up to `hi`."""
    first = every.floor(lo, tz)
    if not every.is_calendar:
        return list(range(first, hi, every.approx_ms))
    zone = time_zone(tz)
    day = datetime.fromtimestamp(first / 1000, tz=zone).date()
    out = []
    while (start := local_midnight_ms(day, zone)) < hi:
        out.append(start)
        day = date.fromordinal(day.toordinal() + every.count)
    return out


def _meters(
    site: SiteConfig, store: TimeSeriesStore, quantity: str, ids: list[str] | None
) -> list[Meter]:
    if quantity not in QUANTITIES:
        raise NotFound(f"no quantity {quantity!r}")
    if ids:
        return [site.meter(i) for i in dict.fromkeys(ids)]
    held = {m for m, q in store.series_keys() if q == quantity}
    return [m for m in site.meters if m.id in held]


@router.get("/series", responses=ERRORS)
def series(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    quantity: Annotated[str, Query(examples=["power"])],
    from_: FromQ,
    to: ToQ,
    meter: MetersQ = None,
    interval_ms: IntervalQ = None,
    agg: Agg = Agg.MEAN,
    by: Annotated[
        Literal["meter", "kind", "sum"],
        Query(description="a series per meter, per kind of meter (summed), or their sum"),
    ] = "meter",
) -> Response:
    """Rows `{time, series, value}`: `agg` of each meter per bucket, by meter or summed by
    kind or in all; a count is 0 in a bucket without readings (a gap shows)."""
    lo, hi = _range(site, from_, to)
    every = width_for(site, lo, hi, interval_ms)
    tz = site.site.timezone
    grid = np.array(bucket_starts(every, lo, hi, tz), dtype=np.int64)
    sums: dict[str, np.ndarray] = {}
    seen: dict[str, np.ndarray] = {}
    for m in _meters(site, store, quantity, meter):
        name = {"meter": m.id, "kind": m.kind.value, "sum": "sum"}[by]
        if name not in sums:
            sums[name] = np.zeros(len(grid))
            seen[name] = np.full(len(grid), agg is Agg.COUNT)  # a count is 0 where none came
        s = store.aggregate(m.id, quantity, lo, hi, every, agg, tz)
        at = np.searchsorted(grid, s.ts_ms)
        ok = (at < len(grid)) & (grid[np.minimum(at, len(grid) - 1)] == s.ts_ms)
        np.add.at(sums[name], at[ok], s.value[ok])
        seen[name][at[ok]] = True
    times = iso_times(grid)
    names = sorted(sums)
    return json_response(
        [
            {"time": times[i], "series": name, "value": float(sums[name][i])}
            for i in range(len(grid))
            for name in names
            if seen[name][i]
        ]
    )


@router.get("/latest", responses=ERRORS)
def latest(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    quantity: Annotated[str, Query(examples=["power"])],
    from_: FromQ,
    to: ToQ,
    meter: MetersQ = None,
) -> Response:
    """One row `{time, value, meters}`: the sum of each meter's last value in the range (the
    total load now), at the newest of those times; no row when none has a value."""
    lo, hi = _range(site, from_, to)
    total, newest, used = 0.0, None, []
    for m in _meters(site, store, quantity, meter):
        last = _last(site, store, m.id, quantity, lo, hi)
        if last is not None:
            total += last[1]
            newest = max(newest or last[0], last[0])
            used.append(m.id)
    if newest is None:
        return json_response([])
    (when,) = iso_times(np.array([newest], dtype=np.int64))
    return json_response([{"time": when, "value": total, "meters": used}])


def _last(
    site: SiteConfig, store: TimeSeriesStore, meter_id: str, quantity: str, lo: int, hi: int
) -> tuple[int, float] | None:
    days = store.aggregate(meter_id, quantity, lo, hi, Every(1, "d"), Agg.LAST, site.site.timezone)
    if not len(days):
        return None
    raw = store.read_raw(meter_id, quantity, max(lo, int(days.ts_ms[-1])), hi)
    if not len(raw):
        return None
    return int(raw.ts_ms[-1]), float(raw.value[-1])


@router.get("/tenants", responses=ERRORS)
def tenants(
    _who: Reader,
    site: SiteDep,
    store: StoreDep,
    from_: FromQ,
    to: ToQ,
    quantity: Annotated[str, Query(examples=["power"])] = "power",
    kind: Literal["electricity", "water", "thermal"] = "electricity",
) -> Response:
    """Rows `{tenant, name, meters, value}`: each department's mean `quantity` over the range,
    the sum of its top-most meters' means (a plug below its sub-meter is inside it)."""
    lo, hi = _range(site, from_, to)
    if quantity not in QUANTITIES:
        raise NotFound(f"no quantity {quantity!r}")
    tz = site.site.timezone
    whole = Every(max(1, (hi - lo) // 86_400_000 + 2), "d")  # at most two buckets
    rows = []
    for tenant in site.tenants:
        tops = tenant_meters(site, tenant.id, MeterKind(kind))
        means = []
        for m in tops:
            sums = store.aggregate(m.id, quantity, lo, hi, whole, Agg.SUM, tz)
            counts = store.aggregate(m.id, quantity, lo, hi, whole, Agg.COUNT, tz)
            if counts.value.sum() > 0:
                means.append(float(sums.value.sum() / counts.value.sum()))
        if means:
            rows.append(
                {
                    "tenant": tenant.id,
                    "name": tenant.name,
                    "meters": [m.id for m in tops],
                    "value": sum(means),
                }
            )
    return json_response(rows)


@router.get("/contracts/{contract_id}/savings", responses=ERRORS)
def contract_savings(
    who: AnyKey,
    request: Request,
    site: SiteDep,
    store: StoreDep,
    contract_id: str,
    from_: FromQ,
    to: ToQ,
    period: Literal["day", "month"] = "day",
    utility: Literal["electricity", "water", "thermal"] = "electricity",
) -> Response:
    """`/api/v1/contracts/{id}/savings` rows whose day or month overlaps the range (the
    running `cumulative` still counts from the contract's start)."""
    lo, hi = _range(site, from_, to)
    contract = visible_contract(site, who, contract_id)
    baseline = baseline_of(request, contract, utility)
    result = request.app.state.savings_cache.get(site, store, contract, utility, baseline)
    zone = time_zone(site.site.timezone)

    def overlaps(start: date, end: date) -> bool:
        return local_midnight_ms(start, zone) < hi and local_midnight_ms(end, zone) > lo

    rows = []
    for row in savings_rows(result, period):
        if period == "day":
            day = date.fromisoformat(row["period"])
            keep = overlaps(day, day + timedelta(days=1))
        else:
            keep = overlaps(date.fromisoformat(row["start"]), date.fromisoformat(row["end"]))
        if keep:
            rows.append(row)
    return json_response(rows)

"""Department bills and energy-use intensity: building data, so admins, engineers and viewers
may ask; a vendor key is a 403.

One call returns every department's bill for a month; the figures are `processing.bills`'
(the CLI and the report read the same). A month not ended is served `provisional`, a month
not started is a 400. Results are cached and refreshed in the background every `CACHE_S`: a
month's bills read every meter once (~0.2 s on the reference site), the intensity every meter
over 12 months (~0.5 s); the service computes the last closed month's at start.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.common import Format, json_bytes_response
from api.deps import Reader, SiteDep, StoreDep
from api.errors import BadRequest
from api.routes.meters import ERRORS
from api.schemas_bills import BillsOut, IntensityOut
from core.config import SiteConfig
from processing.bills import MonthBills, MonthError, last_closed_month, month_bills, previous_month
from processing.bills import parse_month as _parse_month
from processing.intensity import intensity
from storage.base import TimeSeriesStore

router = APIRouter(prefix="/api/v1", tags=["bills"])
log = logging.getLogger("epcmon.api")

CACHE_S = 60.0
"""A month's bills and the intensity are recomputed at most once a minute."""
MonthQ = Annotated[
    str | None,
    Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (local); default: the last closed month"),
]


class ResultCache:
    """Results by key, refreshed at most every `ttl_s`: a stale result is served at once while
    a worker thread recomputes it (stale-while-revalidate), so only the first request for a
    key waits; one computation at a time per key, so a page and a report asking at once
    compute it once."""

    def __init__(self, ttl_s: float = CACHE_S, max_entries: int = 64) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
            hit = self._entries.get(key)
        if hit is not None:
            if time.monotonic() - hit[0] >= self.ttl_s and key_lock.acquire(blocking=False):
                threading.Thread(
                    target=self._refresh, args=(key, key_lock, compute), daemon=True
                ).start()
            return hit[1]
        with key_lock:  # nothing cached yet: one computation, the others wait for it
            with self._lock:
                hit = self._entries.get(key)
            if hit is not None:
                return hit[1]
            return self._compute(key, compute)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def _compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        value = compute()
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            while len(self._entries) > self.max_entries:
                oldest = min(self._entries, key=lambda k: self._entries[k][0])
                del self._entries[oldest]
        return value

    def _refresh(self, key: Hashable, key_lock: threading.Lock, compute: Callable[[], Any]) -> None:
        try:
            self._compute(key, compute)
        except Exception:  # the stale result stays; the next request tries again
            log.exception("refreshing %s failed", key)
        finally:
            key_lock.release()


def warm(cache: ResultCache, site: SiteConfig, store: TimeSeriesStore) -> None:
    """Compute the last closed month's bills and the intensity through it (at start, off the
    request path, as the savings are)."""
    month = last_closed_month(site)
    cache.get(("bills-json", month), lambda: _json(cache, site, store, month))


def _cache(request: Request) -> ResultCache:
    cache: ResultCache = request.app.state.bills_cache
    return cache


def _intensity(cache: ResultCache, site: SiteConfig, store: TimeSeriesStore, through: str) -> Any:
    return cache.get(("intensity", through), lambda: intensity(site, store, through))


def _bills(cache: ResultCache, site: SiteConfig, store: TimeSeriesStore, month: str) -> MonthBills:
    bills: MonthBills = cache.get(("bills", month), lambda: month_bills(site, store, month))
    return bills


@router.get("/bills", response_model=BillsOut, responses=ERRORS)
def get_bills(
    _who: Reader,
    request: Request,
    site: SiteDep,
    store: StoreDep,
    month: MonthQ = None,
    format: Format = "json",
) -> Response:
    """Every department's bill for a month: own kWh, kWh apportioned by pool, CNY by
    time-of-use period, water m³ and CNY, kWh/m², kWh/person, rank; the pools, the
    unallocated remainder and the reconciliation with the incomers and the water mains; the
    site's energy-use intensity over the 12 months through this one (or through the last
    closed month, for a month not ended). `format=csv`: the rows and an `unallocated` row."""
    cache = _cache(request)
    chosen = month or last_closed_month(site)
    try:
        if format == "csv":
            text: str = cache.get(("bills-csv", chosen), lambda: _csv(cache, site, store, chosen))
            return Response(
                text,
                media_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="bills-{site.site.id}-{chosen}.csv"'
                },
            )
        body: bytes = cache.get(("bills-json", chosen), lambda: _json(cache, site, store, chosen))
    except MonthError as exc:
        raise BadRequest(str(exc)) from None
    return json_bytes_response(body)


def _json(cache: ResultCache, site: SiteConfig, store: TimeSeriesStore, month: str) -> bytes:
    bills = _bills(cache, site, store, month)
    through = month
    if bills.status == "provisional":
        through = previous_month(_parse_month(month)).strftime("%Y-%m")
    doc = bills.to_dict()
    doc["site"]["intensity"] = _intensity(cache, site, store, through)
    return orjson.dumps(doc)


def _csv(cache: ResultCache, site: SiteConfig, store: TimeSeriesStore, month: str) -> str:
    header, rows = _bills(cache, site, store, month).csv()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@router.get("/intensity", response_model=IntensityOut, responses=ERRORS)
def get_intensity(
    _who: Reader, request: Request, site: SiteDep, store: StoreDep, month: MonthQ = None
) -> Response:
    """Site and building energy-use intensity (kWh/m²·a, kWh/person·a, kgce, water
    m³/person·a) over the 12 months through `month` (default: the last closed month) and its
    year to date, against the site file's targets (GB/T 51161-2016's constraint and guide
    values, the 公共机构 quotas), each with its source and whether it is provisional."""
    try:
        doc = _intensity(_cache(request), site, store, month or last_closed_month(site))
    except MonthError as exc:
        raise BadRequest(str(exc)) from None
    return json_bytes_response(orjson.dumps(doc))

"""Energy-use intensity against the standards: the site's and each building's kWh/m²·a,
kWh/person·a and water m³/person·a over the last 12 closed months, and the year to date,
compared with the site file's targets (GB/T 51161-2016's constraint and guide values, the
公共机构 quotas).

The site's figures are what its roots measure (the transformer incomers, the water mains)
over its buildings' gross floor area and every tenant's staff. A building's figures are what
its departments are billed (their own meters plus their shares of the pools, as
`processing.apportion` shares them out month by month), over the building's gross floor area
and its tenants' staff; the unallocated remainder belongs to the site only. One store read
per meter (hourly buckets, summed per local month) covers both windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np

from core.config import IntensityTarget, MeterKind, SiteConfig
from processing.apportion import Prices, allocate
from processing.bills import (
    MonthError,
    last_closed_month,
    month_range,
    next_month,
    parse_month,
    previous_month,
)
from processing.rollups import consumption_grid
from storage.base import Every, TimeSeriesStore, local_midnight_ms

HOUR = Every.parse("1h")
WINDOW = 12


@dataclass(frozen=True)
class Totals:
    """kWh and m³ over some months, for the site or a building."""

    kwh: float
    water_m3: float


def _months_back(last: date, n: int) -> list[date]:
    out = [last]
    while len(out) < n:
        out.append(previous_month(out[-1]))
    return out[::-1]


def _figures(
    totals: Totals, area: float, staff: int, kgce_per_kwh: float
) -> dict[str, float | None]:
    def per(v: float) -> float | None:
        return round(v / staff, 3) if staff else None

    return {
        "kwh": round(totals.kwh, 3),
        "water_m3": round(totals.water_m3, 3),
        "kwh_per_m2": round(totals.kwh / area, 3),
        "kwh_per_person": per(totals.kwh),
        "kgce_per_m2": round(totals.kwh * kgce_per_kwh / area, 3),
        "kgce_per_person": per(totals.kwh * kgce_per_kwh),
        "water_m3_per_person": per(totals.water_m3),
        "water_m3_per_m2": round(totals.water_m3 / area, 4),
    }


def status(value: float | None, target: IntensityTarget) -> str:
    """Where a figure stands: above the constraint value, above the guide value (within the
    constraint), at or below the guide value, or within the constraint (no guide given)."""
    if value is None:
        return "no_data"
    if target.constraint is not None and value > target.constraint:
        return "above_constraint"
    if target.guide is not None:
        return "above_guide" if value > target.guide else "at_or_below_guide"
    return "within_constraint"


def intensity(
    site: SiteConfig,
    store: TimeSeriesStore,
    through: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Intensity over the 12 months ending with `through` (default: the last closed month)
    and over its year to date. A window the store does not fully cover says so
    (`months_with_data`, `complete`): its figures are sums over the months there are, not
    scaled up to a year."""
    last = parse_month(through or last_closed_month(site, now))
    _start, _end, state = month_range(site, last.strftime("%Y-%m"), now)
    window = _months_back(last, WINDOW)
    zone = site.site.tz  # the year to date lies inside the 12 months
    start_ms = max(local_midnight_ms(window[0], zone), 0)
    end_ms = local_midnight_ms(next_month(last), zone)
    meters = [m for m in site.meters if m.kind in (MeterKind.ELECTRICITY, MeterKind.WATER)]
    # hourly buckets summed per local month: the store's plain hourly roll-up is about twice
    # as fast as its calendar-month one, and gives the same totals
    grid = consumption_grid(site, store, meters, start_ms, end_ms, HOUR)
    hour_labels = [
        datetime.fromtimestamp(t / 1000, tz=zone).strftime("%Y-%m") for t in grid.ts_ms.tolist()
    ]
    labels = sorted(set(hour_labels))
    index = np.searchsorted(labels, hour_labels)
    monthly = {
        m: np.bincount(index, weights=v, minlength=len(labels)).astype(np.float64)
        for m, v in grid.values.items()
    }
    building_ids = [b.id for b in site.buildings]
    tenants = {t.id: t for t in site.tenants}
    per_month: dict[str, dict[str, Totals]] = {}
    for i, label in enumerate(labels):
        column = {m: v[i : i + 1] for m, v in monthly.items()}
        e = allocate(site, MeterKind.ELECTRICITY, column, Prices.unpriced(1))
        w = allocate(site, MeterKind.WATER, column, Prices.unpriced(1))
        month: dict[str, Totals] = {"site": Totals(e.measured.total, w.measured.total)}
        for b_id in building_ids:
            deps = [t for t in e.departments if tenants[t].building == b_id]
            month[b_id] = Totals(
                sum(e.billed(t).total for t in deps), sum(w.billed(t).total for t in deps)
            )
        month["unallocated"] = Totals(e.unallocated.total, w.unallocated.total)
        per_month[label] = month

    def summed(months: list[date], key: str) -> Totals:
        found = [per_month.get(m.strftime("%Y-%m")) for m in months]
        chosen = [month[key] for month in found if month is not None]
        return Totals(sum(t.kwh for t in chosen), sum(t.water_m3 for t in chosen))

    ytd = _months_back(last, last.month)
    with_data = [m for m in window if summed([m], "site").kwh > 0]
    k = site.intensity.kgce_per_kwh
    area = sum(b.floor_area_m2 for b in site.buildings)
    staff = sum(t.staff for t in site.tenants)

    def block(key: str, b_area: float, b_staff: int) -> dict[str, Any]:
        return {
            **_figures(summed(window, key), b_area, b_staff, k),
            "year_to_date": _figures(summed(ytd, key), b_area, b_staff, k),
        }

    site_block = {"floor_area_m2": area, "staff": staff, **block("site", area, staff)}
    building_blocks = []
    for b in site.buildings:
        b_staff = sum(t.staff for t in site.tenants if t.building == b.id)
        building_blocks.append(
            {
                "id": b.id,
                "name": b.name,
                "name_en": b.name_en,
                "floor_area_m2": b.floor_area_m2,
                "staff": b_staff,
                **block(b.id, b.floor_area_m2, b_staff),
            }
        )
    left = summed(window, "unallocated")
    targets = []
    for target in site.intensity.all_targets():
        entry: dict[str, Any] = {
            "id": target.id,
            "metric": target.metric,
            "constraint": target.constraint,
            "guide": target.guide,
            "applies_to": target.applies_to,
            "source": target.source,
            "provisional": target.provisional,
        }
        if target.applies_to in ("site", "both"):
            value = site_block[target.metric]
            entry["site"] = {"value": value, "status": status(value, target)}
        if target.applies_to in ("buildings", "both"):
            entry["buildings"] = {
                b["id"]: {"value": b[target.metric], "status": status(b[target.metric], target)}
                for b in building_blocks
            }
        targets.append(entry)
    complete = len(with_data) == WINDOW and state == "final"
    return {
        "through": last.strftime("%Y-%m"),
        "window": {
            "first": window[0].strftime("%Y-%m"),
            "last": last.strftime("%Y-%m"),
            "months": WINDOW,
            "months_with_data": len(with_data),
            "complete": complete,
            "annualised": False,
        },
        "year_to_date": {"first": ytd[0].strftime("%Y-%m"), "last": last.strftime("%Y-%m")},
        "provisional": not complete or any(t.provisional for t in site.intensity.all_targets()),
        "site": site_block,
        "buildings": building_blocks,
        "unallocated": {"kwh": round(left.kwh, 3), "water_m3": round(left.water_m3, 3)},
        "targets": targets,
        "kgce_per_kwh": k,
    }


__all__ = ["MonthError", "intensity", "status"]

"""The site's consumption per local month: what its roots (the transformer incomers, the water
mains) measured, month by month, for the report's year-on-year figures and its chart.

    site_months(site, store, date(2025, 1, 1), date(2025, 12, 1))   # {"2025-01": (kWh, m³), ...}

The same hourly buckets summed per local month as `processing.intensity`, so a month here is
the month's `site.kwh` and `site.water_m3` of `processing.bills` (to rounding). One store read
per root meter covers the whole span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from core.config import MeterKind, SiteConfig
from processing.bills import next_month
from processing.rollups import consumption_grid, roots
from storage.base import Every, TimeSeriesStore, local_midnight_ms

HOUR = Every.parse("1h")


@dataclass(frozen=True, slots=True)
class SiteMonth:
    """One local month of the site: kWh and m³ its roots measured (0: no data)."""

    month: str
    kwh: float
    water_m3: float


def month_labels(first: date, last: date) -> list[str]:
    """YYYY-MM of every month from `first` to `last`, both included."""
    out, day = [], first.replace(day=1)
    while day <= last:
        out.append(day.strftime("%Y-%m"))
        day = next_month(day)
    return out


def site_months(
    site: SiteConfig, store: TimeSeriesStore, first: date, last: date
) -> list[SiteMonth]:
    """Every month from `first` to `last` (both included), oldest first."""
    labels = month_labels(first, last)
    zone = site.site.tz
    start = max(local_midnight_ms(first.replace(day=1), zone), 0)
    end = local_midnight_ms(next_month(last.replace(day=1)), zone)
    totals = {label: [0.0, 0.0] for label in labels}
    for column, kind in enumerate((MeterKind.ELECTRICITY, MeterKind.WATER)):
        grid = consumption_grid(site, store, roots(site, kind), start, end, HOUR)
        if not len(grid.ts_ms):
            continue
        summed = np.sum(list(grid.values.values()), axis=0)
        hour_labels = [
            datetime.fromtimestamp(t / 1000, tz=zone).strftime("%Y-%m") for t in grid.ts_ms.tolist()
        ]
        for label, value in zip(hour_labels, summed.tolist(), strict=True):
            if label in totals:
                totals[label][column] += value
    return [
        SiteMonth(label, round(k, 3) + 0.0, round(w, 3) + 0.0) for label, (k, w) in totals.items()
    ]


__all__ = ["SiteMonth", "month_labels", "site_months"]

"""Consumption per meter, tenant (department) and building, from the counters; and the meter
tree the bills share out.

A tenant's or building's consumption is the sum of its top-most meters of the kind asked
for: meters whose parent is not itself among them (a plug below a department's sub-meter is
not counted twice). Transformer incomers feed several buildings, so a building's figure is
the sum of its sub-meters, without transformer losses. The API, the bills and the report
read these same sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.config import EndUse, Meter, MeterKind, SiteConfig
from core.errors import NotFound
from storage.base import Every, TimeSeriesStore

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

COUNTER = {
    MeterKind.ELECTRICITY: "energy_import",
    MeterKind.WATER: "volume",
    MeterKind.THERMAL: "thermal_energy",
}
"""The cumulative register each kind of meter is billed and summed by."""
UNIT = {MeterKind.ELECTRICITY: "kWh", MeterKind.WATER: "m3", MeterKind.THERMAL: "kWh"}


def top_meters(meters: Iterable[Meter]) -> list[Meter]:
    """The meters whose parent is not among them."""
    listed = list(meters)
    ids = {m.id for m in listed}
    return [m for m in listed if m.parent not in ids]


def tenant_meters(site: SiteConfig, tenant_id: str, kind: MeterKind) -> list[Meter]:
    if tenant_id not in {t.id for t in site.tenants}:
        raise NotFound(f"no tenant {tenant_id!r}")
    return top_meters(m for m in site.meters if m.tenant == tenant_id and m.kind is kind)


def building_meters(site: SiteConfig, building_id: str, kind: MeterKind) -> list[Meter]:
    if building_id not in {b.id for b in site.buildings}:
        raise NotFound(f"no building {building_id!r}")
    return top_meters(
        m
        for m in site.meters
        if m.building == building_id and m.kind is kind and m.end_use is not EndUse.INCOMER
    )


def summed_consumption(
    site: SiteConfig,
    store: TimeSeriesStore,
    meters: Iterable[Meter],
    start_ms: int,
    end_ms: int,
    every: Every,
) -> tuple[I64, F64]:
    """Bucket start times and the meters' summed consumption (buckets any meter has)."""
    totals: dict[int, float] = {}
    for m in meters:
        s = store.consumption(m.id, COUNTER[m.kind], start_ms, end_ms, every, site.site.timezone)
        for t, v in zip(s.ts_ms.tolist(), s.value.tolist(), strict=True):
            totals[t] = totals.get(t, 0.0) + v
    ts = np.array(sorted(totals), dtype=np.int64)
    return ts, np.array([totals[t] for t in ts.tolist()], dtype=np.float64)


@dataclass(frozen=True)
class Grid:
    """Each meter's consumption on one grid of buckets: `values[meter_id][i]` is the meter's
    consumption in the bucket starting at `ts_ms[i]` (0 where it has none)."""

    ts_ms: I64
    values: Mapping[str, F64]


def consumption_grid(
    site: SiteConfig,
    store: TimeSeriesStore,
    meters: Iterable[Meter],
    start_ms: int,
    end_ms: int,
    every: Every,
) -> Grid:
    """One store read per meter over [start, end): each meter's consumption per bucket,
    aligned on the union of the buckets any meter has."""
    series = {
        m.id: store.consumption(m.id, COUNTER[m.kind], start_ms, end_ms, every, site.site.timezone)
        for m in meters
    }
    parts = [s.ts_ms for s in series.values() if len(s)]
    ts = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    ts = ts[(ts >= every.floor(start_ms, site.site.timezone)) & (ts < end_ms)]
    values: dict[str, F64] = {}
    for meter_id, s in series.items():
        row = np.zeros(len(ts))
        at = np.searchsorted(ts, s.ts_ms)
        keep = at < len(ts)
        keep[keep] = ts[at[keep]] == s.ts_ms[keep]  # buckets outside [start, end) are dropped
        row[at[keep]] = s.value[keep]
        values[meter_id] = row
    return Grid(ts.astype(np.int64), values)


def children_of(site: SiteConfig, kind: MeterKind) -> dict[str, list[str]]:
    """Each meter of `kind` and the meters of the same kind directly below it."""
    out: dict[str, list[str]] = {m.id: [] for m in site.meters if m.kind is kind}
    for m in site.meters:
        if m.kind is kind and m.parent in out:
            out[m.parent].append(m.id)
    return out


def roots(site: SiteConfig, kind: MeterKind) -> list[Meter]:
    """The top of the tree: meters of `kind` with no parent of the same kind (the transformer
    incomers, the water mains). Everything below them is inside what they measure."""
    same = {m.id for m in site.meters if m.kind is kind}
    return [m for m in site.meters if m.kind is kind and m.parent not in same]


def exclusive(values: Mapping[str, F64], children: Mapping[str, list[str]]) -> dict[str, F64]:
    """Each meter's own use: what it measures minus what the meters directly below it measure
    (an incomer's is its transformer losses and unmetered feeders). Summed over every meter
    of a tree, these equal what its root measures, bucket by bucket."""
    return {
        m: values[m] - np.sum([values[c] for c in children.get(m, [])], axis=0)
        if children.get(m)
        else values[m].copy()
        for m in values
    }

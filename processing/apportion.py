"""Sharing out a month of electricity or water: each department's own use, the pools no
department meters alone, and the unallocated remainder. Pure functions of arrays and the
validated site.

The rules, in order:

1. Every meter's *own* use is what it measures minus what the meters directly below it (its
   `parent` children of the same kind) measure, bucket by bucket. An incomer's own use is
   its transformer losses and whatever it feeds without a sub-meter; a water main's, what
   its building draws beyond its sub-meters. Summed over a tree, the meters' own uses equal
   what its root measures, so nothing is counted twice and nothing is lost.
2. A meter of a department (`tenant` of kind `department`) is billed to that department.
3. Any other meter's own use goes to the first pool of its utility (in the site file's order)
   whose selectors all match it; a meter no pool selects stays in the unallocated remainder
   under its own id.
4. A pool is shared among its recipients (every department, or those it names; with
   `per_building`, each building's part among the recipients in that building) in proportion
   to their floor area, their headcount, or their own metered use that month, or by fixed
   fractions. What the rule gives nobody (rule `none`, fixed fractions under 1, recipients
   with no area, staff or use) stays in the unallocated remainder, with the reason.

Money follows energy: each bucket is priced at its own tariff period's price, a pool's cost by
period is shared with the same fractions as its energy, so departments plus the remainder
add up to what the incomers measure, in kWh and in CNY, period by period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.config import Meter, MeterKind, Pool, SiteConfig, Tenant
from processing.rollups import children_of, exclusive, roots

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Prices:
    """Each bucket's tariff period (an index into `periods`) and its price per kWh or m³."""

    periods: tuple[str, ...]
    code: I64
    price: F64
    priced: bool = True

    @classmethod
    def unpriced(cls, n: int, period: str = "all") -> Prices:
        return cls((period,), np.zeros(n, dtype=np.int64), np.zeros(n), priced=False)

    @classmethod
    def flat(cls, n: int, price: float, period: str) -> Prices:
        return cls((period,), np.zeros(n, dtype=np.int64), np.full(n, float(price)))


@dataclass(frozen=True)
class Amount:
    """A quantity (kWh or m³) and its cost, by tariff period."""

    qty: F64
    cny: F64

    @classmethod
    def zero(cls, periods: int) -> Amount:
        return cls(np.zeros(periods), np.zeros(periods))

    @classmethod
    def of(cls, series: F64, prices: Prices) -> Amount:
        n = len(prices.periods)
        return cls(
            np.bincount(prices.code, weights=series, minlength=n).astype(np.float64),
            np.bincount(prices.code, weights=series * prices.price, minlength=n).astype(np.float64),
        )

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.qty + other.qty, self.cny + other.cny)

    def scaled(self, share: float) -> Amount:
        return Amount(self.qty * share, self.cny * share)

    @property
    def total(self) -> float:
        return float(self.qty.sum())

    @property
    def total_cny(self) -> float:
        return float(self.cny.sum())


def total(amounts: Sequence[Amount], periods: int) -> Amount:
    out = Amount.zero(periods)
    for a in amounts:
        out = out + a
    return out


@dataclass(frozen=True)
class PoolPart:
    """A pool (or, with `per_building`, one building's part of it) and how it was shared."""

    pool: Pool
    building: str | None
    meters: tuple[str, ...]
    amount: Amount
    shares: Mapping[str, float]
    """Department id -> fraction of this part it is billed."""
    reason: str
    """Why part of it stays unallocated ('' when all of it is shared)."""

    @property
    def shared(self) -> float:
        return float(sum(self.shares.values()))

    @property
    def allocated(self) -> Amount:
        return self.amount.scaled(self.shared)

    @property
    def unallocated(self) -> Amount:
        return self.amount.scaled(1.0 - self.shared)


@dataclass(frozen=True)
class Allocation:
    """One utility's month: what the roots measured and where every unit of it went."""

    kind: MeterKind
    prices: Prices
    roots: tuple[str, ...]
    measured: Amount
    """What the roots (incomers, water mains) measured."""
    own: Mapping[str, Amount]
    """Every department's own metered use (zero without a meter)."""
    own_meters: Mapping[str, tuple[str, ...]]
    parts: tuple[PoolPart, ...]
    unpooled: Mapping[str, Amount]
    """Meters of no department that no pool selects: unallocated, by meter."""
    departments: tuple[str, ...] = field(default=())

    @property
    def periods(self) -> tuple[str, ...]:
        return self.prices.periods

    def apportioned(self, tenant_id: str) -> dict[str, Amount]:
        """Pool id -> what the department is billed of it (per-building parts summed)."""
        out: dict[str, Amount] = {}
        for part in self.parts:
            share = part.shares.get(tenant_id, 0.0)
            if share:
                prev = out.get(part.pool.id, Amount.zero(len(self.periods)))
                out[part.pool.id] = prev + part.amount.scaled(share)
        return out

    def billed(self, tenant_id: str) -> Amount:
        n = len(self.periods)
        return self.own[tenant_id] + total(list(self.apportioned(tenant_id).values()), n)

    @property
    def unallocated(self) -> Amount:
        n = len(self.periods)
        return total([p.unallocated for p in self.parts] + list(self.unpooled.values()), n)

    @property
    def own_total(self) -> Amount:
        return total(list(self.own.values()), len(self.periods))

    @property
    def apportioned_total(self) -> Amount:
        return total([p.allocated for p in self.parts], len(self.periods))


def _matches(pool: Pool, meter: Meter) -> bool:
    return (
        pool.kind is meter.kind
        and (not pool.meters or meter.id in pool.meters)
        and (not pool.end_uses or meter.end_use in pool.end_uses)
        and (not pool.tenants or meter.tenant in pool.tenants)
        and (not pool.buildings or meter.building in pool.buildings)
    )


_WEIGHT_NAME = {"floor_area": "floor area", "headcount": "staff", "metered_share": "metered use"}


def shares(
    pool: Pool, recipients: Sequence[Tenant], own: Mapping[str, Amount]
) -> tuple[dict[str, float], str]:
    """The fraction of a pool (part) each recipient is billed, and why any is left over."""
    if pool.rule == "none":
        return {}, "rule none: borne by no department"
    if pool.rule == "fixed":
        keys = {t: f for t, f in pool.keys.items() if f > 0}
        left = 1.0 - sum(keys.values())
        return keys, (f"fixed keys share {1 - left:.4g} of it" if left > 1e-12 else "")
    if pool.rule == "floor_area":
        weights = {t.id: t.floor_area_m2 for t in recipients}
    elif pool.rule == "headcount":
        weights = {t.id: float(t.staff) for t in recipients}
    else:  # metered_share
        weights = {t.id: max(own[t.id].total, 0.0) for t in recipients}
    total_weight = sum(weights.values())
    if not recipients:
        return {}, "no department to share it"
    if total_weight <= 0:
        return {}, f"no recipient has any {_WEIGHT_NAME[pool.rule]}"
    return {t: w / total_weight for t, w in weights.items() if w > 0}, ""


def allocate(
    site: SiteConfig, kind: MeterKind, values: Mapping[str, F64], prices: Prices
) -> Allocation:
    """Share out one month of `kind` (`values`: every meter of that kind, one array per
    meter on the buckets `prices` describes)."""
    n = len(prices.periods)
    tenants = {t.id: t for t in site.tenants}
    departments = [t for t in site.tenants if t.kind == "department"]
    meters = [m for m in site.meters if m.kind is kind]
    length = len(prices.code)
    series = {m.id: values.get(m.id, np.zeros(length)) for m in meters}
    own_use = exclusive(series, children_of(site, kind))
    own: dict[str, Amount] = {t.id: Amount.zero(n) for t in departments}
    own_meters: dict[str, list[str]] = {t.id: [] for t in departments}
    pooled: dict[str, list[Meter]] = {p.id: [] for p in site.billing.pools}
    unpooled: dict[str, Amount] = {}
    for m in meters:
        tenant = tenants.get(m.tenant or "")
        amount = Amount.of(own_use[m.id], prices)
        if tenant is not None and tenant.kind == "department":
            own[tenant.id] = own[tenant.id] + amount
            own_meters[tenant.id].append(m.id)
            continue
        pool = next((p for p in site.billing.pools if _matches(p, m)), None)
        if pool is None:
            unpooled[m.id] = amount
        else:
            pooled[pool.id].append(m)
    parts: list[PoolPart] = []
    for pool in site.billing.pools:
        members = pooled[pool.id]
        if pool.kind is not kind:
            continue
        recipients = [t for t in departments if not pool.recipients or t.id in pool.recipients]
        groups: list[tuple[str | None, list[Meter]]] = (
            [(b.id, [m for m in members if m.building == b.id]) for b in site.buildings]
            if pool.per_building
            else [(None, members)]
        )
        for building, group in groups:
            if pool.per_building and not group:
                continue
            local = [t for t in recipients if building is None or t.building == building]
            fractions, reason = shares(pool, local, own)
            amount = total([Amount.of(own_use[m.id], prices) for m in group], n)
            parts.append(
                PoolPart(pool, building, tuple(m.id for m in group), amount, fractions, reason)
            )
    top = roots(site, kind)
    measured = total([Amount.of(series[m.id], prices) for m in top], n)
    return Allocation(
        kind=kind,
        prices=prices,
        roots=tuple(m.id for m in top),
        measured=measured,
        own=own,
        own_meters={t: tuple(ms) for t, ms in own_meters.items()},
        parts=tuple(parts),
        unpooled=unpooled,
        departments=tuple(t.id for t in departments),
    )

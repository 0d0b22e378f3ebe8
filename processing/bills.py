"""Department bills (分户计量与费用分摊): one month, every department, electricity and water,
priced at the site's tariff hour by hour, with the pools shared out and the unallocated
remainder, reconciled with the incomers and the water mains.

    bills = month_bills(site, store, "2026-01")   # one store read per meter
    bills.to_dict()                               # the API's JSON
    header, rows = bills.csv()                    # the same rows, flat

How the month is cut: local midnight of its first day to local midnight of the next month's
(the site's time zone). An hour's consumption is the counter's increase over the hour as the
store's `consumption()` gives it (the last reading in the hour against the last one before),
so with minute or 15-minute readings each hour is priced within one reading interval of its
true span. How it is shared out: `processing.apportion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np

from core.config import MeterKind, SiteConfig
from core.readings import STORABLE_FROM_MS
from processing.apportion import Allocation, Amount, Prices, allocate, total
from processing.economics import PERIODS
from processing.rollups import UNIT, consumption_grid
from storage.base import Every, TimeSeriesStore, local_midnight_ms

HOUR = Every.parse("1h")
Status = Literal["final", "provisional"]


class MonthError(ValueError):
    """A month that cannot be billed: malformed, not started, before the storable range."""


def parse_month(month: str) -> date:
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise MonthError(f"month {month!r}: expected YYYY-MM, e.g. 2026-01") from None
    return first


def next_month(first: date) -> date:
    return date(first.year + (first.month == 12), first.month % 12 + 1, 1)


def previous_month(first: date) -> date:
    return date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)


def month_range(
    site: SiteConfig, month: str, now: datetime | None = None
) -> tuple[int, int, Status]:
    """UTC ms of the month's start and end (local midnights), and whether it has ended.
    Raises `MonthError` for a month that has not started or lies before 1970."""
    first = parse_month(month)
    zone = site.site.tz
    start = local_midnight_ms(first, zone)
    if start < STORABLE_FROM_MS:
        raise MonthError(f"month {month}: no data can be stored before 1970")
    now_ms = int((now or datetime.now(UTC)).timestamp() * 1000)
    if now_ms < start:
        raise MonthError(f"month {month} has not started (in {site.site.timezone})")
    end = local_midnight_ms(next_month(first), zone)
    return start, end, "final" if now_ms >= end else "provisional"


def last_closed_month(site: SiteConfig, now: datetime | None = None) -> str:
    today = (now or datetime.now(UTC)).astimezone(site.site.tz).date()
    return previous_month(today.replace(day=1)).strftime("%Y-%m")


def tariff_prices(site: SiteConfig, ts_ms: np.ndarray) -> Prices:
    """Each hour's time-of-use period and price from the site's tariff (local month and hour)."""
    tariff = site.billing.tariff
    if tariff is None:
        return Prices(
            PERIODS, np.full(len(ts_ms), PERIODS.index("flat")), np.zeros(len(ts_ms)), False
        )
    zone = site.site.tz
    local = [datetime.fromtimestamp(t / 1000, tz=zone) for t in ts_ms.tolist()]
    periods, prices = tariff.period_table(), tariff.price_table()
    code = np.array([PERIODS.index(periods[d.month - 1][d.hour]) for d in local], dtype=np.int64)
    price = np.array([prices[d.month - 1][d.hour] for d in local], dtype=np.float64)
    return Prices(PERIODS, code, price)


def water_prices(site: SiteConfig, n: int) -> Prices:
    tariff = site.billing.tariff
    if tariff is None:
        return Prices.unpriced(n, "water")
    return Prices.flat(n, tariff.water_price_cny_per_m3, "water")


@dataclass(frozen=True)
class MonthBills:
    """A month's bills: the electricity and water allocations and what they were read from."""

    site: SiteConfig
    month: str
    start_ms: int
    end_ms: int
    status: Status
    through_ms: int | None
    """End of the last hour any meter has data for (None: no data in the month)."""
    electricity: Allocation
    water: Allocation

    @property
    def priced(self) -> bool:
        return self.electricity.prices.priced

    def rows(self) -> list[dict[str, Any]]:
        """One row per department, ranked by kWh/m² (1 = the most per m²)."""
        e, w = self.electricity, self.water
        tenants = {t.id: t for t in self.site.tenants}
        rows: list[dict[str, Any]] = []
        for tid in e.departments:
            t = tenants[tid]
            e_shares, w_shares = e.apportioned(tid), w.apportioned(tid)
            billed = e.own[tid] + total(list(e_shares.values()), len(e.periods))
            water = w.own[tid] + total(list(w_shares.values()), len(w.periods))
            kwh, m3 = billed.total, water.total
            rows.append(
                {
                    "tenant": tid,
                    "name": t.name,
                    "name_en": t.name_en,
                    "building": t.building,
                    "floor_area_m2": t.floor_area_m2,
                    "staff": t.staff,
                    "meters": list(e.own_meters[tid]) + list(w.own_meters[tid]),
                    "kwh_own": _q(e.own[tid].total),
                    "kwh_apportioned": {p: _q(a.total) for p, a in e_shares.items()},
                    "kwh": _q(kwh),
                    "kwh_by_period": _by_period(e, billed.qty, _q),
                    "cny_by_period": _by_period(e, billed.cny, _m) if self.priced else None,
                    "cny_electricity": _m(billed.total_cny) if self.priced else None,
                    "water_m3_own": _q(w.own[tid].total),
                    "water_m3_apportioned": {p: _q(a.total) for p, a in w_shares.items()},
                    "water_m3": _q(m3),
                    "cny_water": _m(water.total_cny) if self.priced else None,
                    "cny": _m(billed.total_cny + water.total_cny) if self.priced else None,
                    "kwh_per_m2": _q(kwh / t.floor_area_m2),
                    "kwh_per_person": _q(kwh / t.staff) if t.staff else None,
                    "water_m3_per_person": _q(m3 / t.staff) if t.staff else None,
                }
            )
        rows.sort(key=lambda r: (-r["kwh_per_m2"], r["tenant"]))
        for i, row in enumerate(rows, 1):
            row["rank"] = i
        return rows

    def unallocated(self) -> dict[str, Any]:
        e, w = self.electricity, self.water
        ue, uw = e.unallocated, w.unallocated
        return {
            "kwh": _q(ue.total),
            "kwh_by_period": _by_period(e, ue.qty, _q),
            "cny_by_period": _by_period(e, ue.cny, _m) if self.priced else None,
            "cny_electricity": _m(ue.total_cny) if self.priced else None,
            "water_m3": _q(uw.total),
            "cny_water": _m(uw.total_cny) if self.priced else None,
            "cny": _m(ue.total_cny + uw.total_cny) if self.priced else None,
            "electricity": _remainder_items(self.site, e, self.priced),
            "water": _remainder_items(self.site, w, self.priced),
        }

    def pools(self) -> list[dict[str, Any]]:
        out = []
        for alloc in (self.electricity, self.water):
            for part in alloc.parts:
                out.append(
                    {
                        "id": part.pool.id,
                        "name": part.pool.name,
                        "utility": part.pool.utility,
                        "rule": part.pool.rule,
                        "building": part.building,
                        "meters": list(part.meters),
                        "unit": UNIT[alloc.kind],
                        "quantity": _q(part.amount.total),
                        "cny": _m(part.amount.total_cny) if self.priced else None,
                        "allocated": _q(part.allocated.total),
                        "unallocated": _q(part.unallocated.total),
                        "recipients": len(part.shares),
                        "reason": part.reason,
                    }
                )
        return out

    def reconciliation(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, alloc in (("electricity", self.electricity), ("water", self.water)):
            own, shared, left = alloc.own_total, alloc.apportioned_total, alloc.unallocated
            measured = alloc.measured
            out[name] = {
                "unit": UNIT[alloc.kind],
                "meters": list(alloc.roots),
                "measured": _q(measured.total),
                "departments_own": _q(own.total),
                "apportioned": _q(shared.total),
                "unallocated": _q(left.total),
                "difference": round(measured.total - own.total - shared.total - left.total, 6),
                "cny": {
                    "measured": _m(measured.total_cny),
                    "departments": _m(own.total_cny + shared.total_cny),
                    "unallocated": _m(left.total_cny),
                    "difference": round(
                        measured.total_cny - own.total_cny - shared.total_cny - left.total_cny, 6
                    ),
                }
                if self.priced
                else None,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        e, w = self.electricity, self.water
        site = self.site
        area = sum(b.floor_area_m2 for b in site.buildings)
        staff = sum(t.staff for t in site.tenants)
        return {
            "month": self.month,
            "status": self.status,
            "provisional": self.status == "provisional",
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "through": _iso(self.through_ms) if self.through_ms is not None else None,
            "priced": self.priced,
            "periods": list(e.periods),
            "rank_by": "kwh_per_m2",
            "site": {
                "id": site.site.id,
                "name": site.site.name,
                "floor_area_m2": area,
                "staff": staff,
                "kwh": _q(e.measured.total),
                "water_m3": _q(w.measured.total),
                "cny": _m(e.measured.total_cny + w.measured.total_cny) if self.priced else None,
                "kwh_per_m2": _q(e.measured.total / area),
                "kwh_per_person": _q(e.measured.total / staff) if staff else None,
            },
            "rows": self.rows(),
            "pools": self.pools(),
            "unallocated": self.unallocated(),
            "reconciliation": self.reconciliation(),
        }

    def csv(self) -> tuple[list[str], list[list[object]]]:
        """The department rows and a last `unallocated` row, flat: every pool a column, so
        each column sums to the pool's total and `kwh` sums to the incomers."""
        doc_rows = self.rows()
        left = self.unallocated()
        e_pools = list(dict.fromkeys(p.pool.id for p in self.electricity.parts))
        w_pools = list(dict.fromkeys(p.pool.id for p in self.water.parts))
        periods = list(self.electricity.periods)
        header = (
            ["rank", "tenant", "name", "building", "floor_area_m2", "staff", "kwh_own"]
            + [f"kwh_{p}" for p in e_pools]
            + ["kwh"]
            + [f"kwh_{p}" for p in periods]
            + [f"cny_{p}" for p in periods]
            + ["cny_electricity", "water_m3_own"]
            + [f"water_m3_{p}" for p in w_pools]
            + [
                "water_m3",
                "cny_water",
                "cny",
                "kwh_per_m2",
                "kwh_per_person",
                "water_m3_per_person",
            ]
        )
        out: list[list[object]] = []
        for r in doc_rows:
            out.append(
                [r["rank"], r["tenant"], r["name"], r["building"], r["floor_area_m2"], r["staff"]]
                + [r["kwh_own"]]
                + [r["kwh_apportioned"].get(p, 0.0) for p in e_pools]
                + [r["kwh"]]
                + [r["kwh_by_period"][p] for p in periods]
                + [_blank(r["cny_by_period"] and r["cny_by_period"][p]) for p in periods]
                + [_blank(r["cny_electricity"]), r["water_m3_own"]]
                + [r["water_m3_apportioned"].get(p, 0.0) for p in w_pools]
                + [r["water_m3"], _blank(r["cny_water"]), _blank(r["cny"]), r["kwh_per_m2"]]
                + [_blank(r["kwh_per_person"]), _blank(r["water_m3_per_person"])]
            )
        by_pool = _unallocated_by_pool(self.electricity), _unallocated_by_pool(self.water)
        out.append(
            ["", "unallocated", "未分摊 / unallocated", "", "", ""]
            + [_q(sum(a.total for a in self.electricity.unpooled.values()))]
            + [by_pool[0].get(p, 0.0) for p in e_pools]
            + [left["kwh"]]
            + [left["kwh_by_period"][p] for p in periods]
            + [_blank(left["cny_by_period"] and left["cny_by_period"][p]) for p in periods]
            + [_blank(left["cny_electricity"])]
            + [_q(sum(a.total for a in self.water.unpooled.values()))]
            + [by_pool[1].get(p, 0.0) for p in w_pools]
            + [left["water_m3"], _blank(left["cny_water"]), _blank(left["cny"]), "", "", ""]
        )
        return header, out


def month_bills(
    site: SiteConfig, store: TimeSeriesStore, month: str, *, now: datetime | None = None
) -> MonthBills:
    """Read the month (one hourly `consumption` read per electricity and water meter) and
    share it out. A month not ended is `provisional`; one not started is a `MonthError`."""
    start, end, status = month_range(site, month, now)
    meters = [m for m in site.meters if m.kind in (MeterKind.ELECTRICITY, MeterKind.WATER)]
    grid = consumption_grid(site, store, meters, start, end, HOUR)
    through = int(grid.ts_ms[-1]) + HOUR.approx_ms if len(grid.ts_ms) else None
    electricity = allocate(
        site, MeterKind.ELECTRICITY, grid.values, tariff_prices(site, grid.ts_ms)
    )
    water = allocate(site, MeterKind.WATER, grid.values, water_prices(site, len(grid.ts_ms)))
    return MonthBills(site, month, start, end, status, through, electricity, water)


def _q(value: float) -> float:
    """kWh and m³ to the Wh and the litre."""
    return round(float(value), 3) + 0.0


def _m(value: float) -> float:
    """CNY to the fen."""
    return round(float(value), 2) + 0.0


def _blank(value: object) -> object:
    return "" if value is None else value


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _by_period(alloc: Allocation, values: np.ndarray, fmt: Any) -> dict[str, float]:
    return {p: fmt(v) for p, v in zip(alloc.periods, values.tolist(), strict=True)}


def _unallocated_by_pool(alloc: Allocation) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in alloc.parts:
        out[part.pool.id] = out.get(part.pool.id, 0.0) + part.unallocated.total
    return {p: _q(v) for p, v in out.items()}


def _remainder_items(site: SiteConfig, alloc: Allocation, priced: bool) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for part in alloc.parts:
        left: Amount = part.unallocated
        if part.shared < 1.0 - 1e-12 and part.amount.total != 0:
            items.append(
                {
                    "source": "pool",
                    "id": part.pool.id,
                    "building": part.building,
                    "quantity": _q(left.total),
                    "cny": _m(left.total_cny) if priced else None,
                    "reason": part.reason,
                }
            )
    for meter_id, amount in alloc.unpooled.items():
        items.append(
            {
                "source": "meter",
                "id": meter_id,
                "building": site.meters_by_id[meter_id].building,
                "quantity": _q(amount.total),
                "cny": _m(amount.total_cny) if priced else None,
                "reason": "no pool selects it"
                if meter_id not in alloc.roots
                else "no pool selects what it measures beyond its sub-meters (losses)",
            }
        )
    return items

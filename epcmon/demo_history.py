"""The demo's past: simulated history back-filled into its store, and the simulator's truth.

A newcomer should see the main job within a minute: the contract's monthly statements. They
need a baseline year and closed reporting months, so before the live meters start, the demo
writes the simulated site's hourly history of its meters from before the contract's baseline
period up to now (two years and more, in seconds), and keeps the true savings by local month
to print beside the statements the service computes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from core.config import SiteConfig
from processing.bills import month_bills
from processing.statements import StatementStore
from simulators.history import iter_history
from storage.base import TimeSeriesStore

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Backfill:
    readings: int
    seconds: float
    start: datetime
    end: datetime
    truth_by_month: dict[str, dict[str, float]]
    """Contract id -> local month (YYYY-MM) -> true avoided kWh of its boundary."""


def history_start(site: SiteConfig, today: date) -> date:
    """A few days before the earliest baseline period (counters need a reading before the
    first day), and at least two years back."""
    starts = [c.baseline_start for c in site.contracts] + [today - timedelta(days=730)]
    return min(starts) - timedelta(days=3)


def backfill(
    site: SiteConfig,
    meter_ids: list[str],
    store: TimeSeriesStore,
    now_ms: int,
    *,
    progress: Callable[[str], None],
) -> Backfill:
    """Write the hourly history of the meters `meter_ids` of the whole simulated `site` (the
    model the live meters play, so the counters continue where the history ends) up to the
    last full hour before `now_ms`."""
    tz = site.site.tz
    today = datetime.fromtimestamp(now_ms / 1000, tz).date()
    start = datetime.combine(history_start(site, today), datetime.min.time(), tz)
    end = datetime.fromtimestamp(now_ms // HOUR_MS * HOUR_MS / 1000, UTC)
    boundary = {c.id: c.meters for c in site.contracts}
    truth: dict[str, dict[str, float]] = {c: defaultdict(float) for c in boundary}
    t0 = time.perf_counter()
    readings = 0
    for part in iter_history(
        site,
        start,
        end,
        interval="1h",
        seed=site.simulation.seed,
        meters=meter_ids,
    ):
        store.write(part.readings)
        readings += len(part.readings)
        months = np.array(
            [datetime.fromtimestamp(t / 1000, tz).strftime("%Y-%m") for t in part.ts_ms.tolist()]
        )
        for contract, meters in boundary.items():
            saved = np.sum([part.true_savings_kwh[m] for m in meters], axis=0)
            for month in np.unique(months):
                truth[contract][str(month)] += float(saved[months == month].sum())
    seconds = time.perf_counter() - t0
    progress(
        f"history back-filled: {readings:,} readings of {len(meter_ids)} meters, "
        f"{start:%Y-%m-%d} to {end.astimezone(tz):%Y-%m-%d %H:%M}, hourly, in {seconds:.1f} s"
    )
    return Backfill(readings, seconds, start, end, {c: dict(m) for c, m in truth.items()})


def statements_beside_truth(
    site: SiteConfig, statements: StatementStore, filled: Backfill, *, last: int = 6
) -> list[str]:
    """Lines comparing the newest final statements with the simulator's true savings."""
    lines: list[str] = []
    for contract in site.contracts:
        truth = filled.truth_by_month.get(contract.id, {})
        final = [e for e in statements.months(contract.id) if e.status == "final"]
        if not final:
            lines.append(f"contract {contract.id}: no statement yet")
            continue
        lines.append(
            f"contract {contract.id} ({contract.vendor}): monthly statements written by the "
            "service, beside the simulator's truth"
        )
        lines.append(f"  {'month':<8}{'avoided kWh':>14}{'±90 %':>10}{'truth kWh':>12}  inside")
        for entry in final[-last:]:
            stmt = statements.latest_statement(contract.id, entry.month)
            if stmt is None:
                continue
            p = stmt.month_savings
            true = truth.get(entry.month, float("nan"))
            inside = "yes" if abs(p.avoided - true) <= p.u90.u else "no"
            lines.append(
                f"  {entry.month:<8}{p.avoided:>14,.0f}{p.u90.u:>10,.0f}{true:>12,.0f}  {inside}"
            )
    return lines


def bills_summary(site: SiteConfig, store: TimeSeriesStore, now_ms: int) -> list[str]:
    """The last closed month's department bills, as the facility office sees them first."""
    today = datetime.fromtimestamp(now_ms / 1000, site.site.tz).date()
    month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    bills = month_bills(site, store, month)
    rows = bills.rows()
    if not rows:
        return []
    kwh = sum(r["kwh"] for r in rows)
    top = sorted(rows, key=lambda r: r["rank"])[:3]
    return [
        f"department bills {month}: {len(rows)} departments, {kwh:,.0f} kWh billed "
        f"(own use and their shares of common areas, plant and losses); most per m²: "
        + "; ".join(f"{r['name']} {r['kwh_per_m2']:.1f} kWh/m²" for r in top)
    ]

"""The monthly reports that `epcmon run` writes by itself: a supervised part.

Every `reports.every_s` it looks at the last `reports.months` closed months whose
`reports.settle_days` have passed, and for each:

- skips a month the store has nothing of (and no statement for);
- leaves a current report alone (its fingerprint, `reports.build`, is unchanged);
- waits while a contract boundary is due the month's final statement and the recompute has
  not written it yet, for at most `wait_s` (one `schedule.recompute_every_s` by default:
  the recompute runs at start and then on that period, so a statement that has not come by
  then is not coming soon); after that the report is written without it and rewritten
  when it arrives;
- otherwise writes the report (a new one, or a new version when the statements or the data
  changed).

A month that fails is logged once per distinct reason and raised in `Health` (`report
<month>`) until it is written; the other months go on.

    reports = MonthlyReports(site, store, statements, reports_dir(site), health)
    await reports.run(stop_event)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from core.config import SiteConfig
from core.health import Health
from processing.bills import next_month, previous_month
from processing.monthly import SiteMonth, site_months
from processing.schedule import Recompute
from processing.statements import StatementStore
from reports.build import (
    files_for,
    fingerprint,
    statement_state,
    stored_fingerprint,
    write_report,
)
from storage.base import TimeSeriesStore

log = logging.getLogger("epcmon.reports")

WRITES = ("written", "rewritten")
PAUSE_S = 2.0
"""Between two reports written one after the other by the service."""


@dataclass(frozen=True, slots=True)
class Done:
    """What one pass did for one month: `written`, `rewritten`, `unchanged`, `waiting`,
    `no data`, `deferred` (to the next pass), or `failed: ...`."""

    month: str
    what: str


class MonthlyReports:
    """Keeps the closed months' reports written and current (module doc)."""

    def __init__(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        statements: StatementStore,
        out_dir: Path,
        health: Health | None = None,
        *,
        wait_s: float | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.statements = statements
        self.out_dir = out_dir
        self.health = health or Health()
        self.wait_s = float(site.schedule.recompute_every_s if wait_s is None else wait_s)
        self._recompute = Recompute(site, store, statements, self.health)  # its rules only
        self._waiting: dict[str, float] = {}
        self._said: dict[str, str] = {}

    def due_months(self, today: date) -> list[str]:
        """The closed months the service keeps a report for on `today`, newest first."""
        settle = timedelta(days=self.site.reports.settle_days)
        month = previous_month(today.replace(day=1))
        if next_month(month) + settle > today:  # the month just closed is still settling
            month = previous_month(month)
        out: list[str] = []
        while len(out) < self.site.reports.months and month.year >= 1970:
            out.append(month.strftime("%Y-%m"))
            month = previous_month(month)
        return out

    def pending_statements(self, month: str, today: date) -> list[str]:
        """The boundaries due a final statement of `month` that the recompute has not stored."""
        out = []
        for c in self.site.contracts:
            if c.baseline_end > today or month not in self._recompute.due_months(c.id, today):
                continue
            for utility in c.utility_names():
                if self.statements.latest_statement_json(c.id, month, utility) is None:
                    out.append(f"{c.id} {utility}")
        return out

    def run_once(
        self, today: date | None = None, now_s: float | None = None, *, max_writes: int = 0
    ) -> list[Done]:
        """One pass over the due months, newest first; with `max_writes`, the months after
        that many reports were written are `deferred` to the next pass."""
        today = today or datetime.now(self.site.site.tz).date()
        now_s = time.monotonic() if now_s is None else now_s
        months = self.due_months(today)
        if not months:
            return []
        first, last = (datetime.strptime(m, "%Y-%m").date() for m in (months[-1], months[0]))
        totals = {t.month: t for t in site_months(self.site, self.store, first, last)}
        done: list[Done] = []
        for month in months:
            if max_writes and sum(d.what in WRITES for d in done) >= max_writes:
                done.append(Done(month, "deferred"))
                continue
            try:
                what = self._month(month, totals[month], today, now_s)
            except Exception as exc:  # this month only: visible in /healthz until it is written
                what = f"failed: {type(exc).__name__}: {exc}"
                if self._said.get(month) != what:
                    self._said[month] = what
                    log.exception("report %s could not be written", month)
                self.health.degrade(f"report {month}", what)
            else:
                if self._said.pop(month, None) is not None:
                    log.info("report %s written again after a failure", month)
                self.health.recover(f"report {month}")
            done.append(Done(month, what))
        return done

    def _month(self, month: str, totals: SiteMonth, today: date, now_s: float) -> str:
        files = files_for(self.site, month, self.out_dir)
        stamp = fingerprint(self.site, self.statements, month, totals)
        stored = stored_fingerprint(files)
        if stored == stamp:
            return "unchanged"
        has_statements = bool(statement_state(self.site, self.statements, month))
        if totals.kwh == 0 and totals.water_m3 == 0 and not has_statements:
            return "no data"
        pending = self.pending_statements(month, today)
        if pending:
            since = self._waiting.setdefault(month, now_s)
            if now_s - since < self.wait_s:
                return "waiting"
            log.warning(
                "report %s: written without the final statement of %s (not stored after %.0f s)",
                month, ", ".join(pending), now_s - since,
            )  # fmt: skip
        self._waiting.pop(month, None)
        write_report(self.site, self.store, self.statements, month, self.out_dir)
        what = "written" if stored is None else "rewritten"
        log.info("monthly report %s %s in %s", month, what, self.out_dir)
        return what

    async def run(self, stop: asyncio.Event, every_s: float | None = None) -> None:
        """Run `run_once` now and every `every_s` (default `reports.every_s`) until `stop`."""
        every = float(self.site.reports.every_s if every_s is None else every_s)
        while not stop.is_set():
            # one report per pass, the next pass soon after: a dozen months written at start
            # share the machine with the API and the recompute instead of holding it
            done = await asyncio.to_thread(self.run_once, max_writes=1)
            more = any(d.what == "deferred" for d in done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=PAUSE_S if more else every)


__all__ = ["Done", "MonthlyReports"]

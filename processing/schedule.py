"""The scheduled recompute that `epcmon run` drives.

`Recompute(site, store, statements).run_once(today)` brings every contract's statements up to
date: it fits and stores the baseline if none is stored, then for every month of the reporting
period that ended at least `statements.settle_days` days ago it computes the statement, and
stores it when none is stored yet or when the data it depends on changed since (a different
inputs digest: late or corrected readings). `run(stop, every_s)` repeats that until `stop` is
set, in a worker thread so the event loop keeps serving.

    recompute = Recompute(site, store, StatementStore(site.storage.statements_file))
    await recompute.run(stop_event, every_s=3600)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.config import SiteConfig
from core.errors import EpcmonError, InsufficientData
from processing.contract import Utility, fit_baseline
from processing.contract import statements as compute_statements
from processing.savings import months_between
from processing.statements import StatementStore
from storage.base import TimeSeriesStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Action:
    """What one pass did for one (contract, utility, month)."""

    contract_id: str
    utility: str
    month: str
    what: str  # "baseline", "new", "updated", "unchanged", "failed: ..."


class Recompute:
    """Keeps baselines and monthly statements current for every contract of a site."""

    def __init__(
        self, site: SiteConfig, store: TimeSeriesStore, statements: StatementStore
    ) -> None:
        self.site = site
        self.store = store
        self.statements = statements

    def _today(self) -> date:
        return datetime.now(ZoneInfo(self.site.site.timezone)).date()

    def due_months(self, contract_id: str, today: date) -> list[str]:
        """Months of the reporting period whose statement can be computed on `today`."""
        contract = self.site.contract(contract_id)
        settle = timedelta(days=contract.statements.settle_days)
        end = contract.reporting_end or today
        return [
            label
            for label, _, last in months_between(contract.reporting_start, end)
            if last + settle <= today
        ]

    def run_once(self, today: date | None = None) -> list[Action]:
        today = today or self._today()
        actions: list[Action] = []
        for contract in self.site.contracts:
            utilities: list[Utility] = ["electricity"]
            if contract.water_meters:
                utilities.append("water")
            for utility in utilities:
                actions += self._contract(contract.id, utility, today)
        return actions

    def _contract(self, contract_id: str, utility: Utility, today: date) -> list[Action]:
        actions: list[Action] = []
        contract = self.site.contract(contract_id)
        if contract.baseline_end > today:
            return actions
        baseline = self.statements.latest_baseline(contract_id, utility)
        if baseline is None:
            try:
                baseline = fit_baseline(self.site, contract_id, self.store, utility=utility)
            except EpcmonError as exc:
                log.warning("contract %s (%s): baseline not fitted: %s", contract_id, utility, exc)
                return [Action(contract_id, utility, "", f"failed: {exc}")]
            self.statements.save_baseline(baseline)
            actions.append(Action(contract_id, utility, "", "baseline"))
        due = self.due_months(contract_id, today)
        try:
            fresh_all = compute_statements(
                self.site, contract_id, self.store, due, baseline=baseline, utility=utility
            )
        except EpcmonError as exc:
            log.warning("contract %s (%s): no statements: %s", contract_id, utility, exc)
            return [*actions, Action(contract_id, utility, "", f"failed: {exc}")]
        for month, fresh in zip(due, fresh_all, strict=True):
            stored = self.statements.latest_statement_json(contract_id, month, utility)
            if stored is not None and stored["inputs_digest"] == fresh.inputs_digest:
                actions.append(Action(contract_id, utility, month, "unchanged"))
                continue
            self.statements.save_statement(fresh)
            what = "new" if stored is None else "updated"
            log.info(
                "contract %s %s (%s): statement %s, avoided %.0f %s",
                contract_id,
                month,
                utility,
                what,
                fresh.month_savings.avoided,
                fresh.unit,
            )
            actions.append(Action(contract_id, utility, month, what))
        return actions

    async def run(self, stop: asyncio.Event, every_s: float = 3600.0) -> None:
        """Run `run_once` now and every `every_s` seconds until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except InsufficientData as exc:  # expected until a year of data is there
                log.warning("scheduled recompute: %s", exc)
            except Exception:  # keep the schedule alive; the next pass tries again
                log.exception("scheduled recompute failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except TimeoutError:
                continue

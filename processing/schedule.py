"""The scheduled recompute that `epcmon run` drives: statements written by the service.

`Recompute(site, store, statements).run_once(today)` brings every contract's figures up to
date, for each boundary (electricity, and water, gas or heat when the contract has them):

- it fits and stores the baseline once the baseline period is over, if none is stored;
- every month of the reporting period that ended at least `statements.settle_days` days ago
  gets its **final** statement, stored when none is stored yet or when the data it depends on
  changed since (a different inputs digest: late or corrected readings), as a new version;
- the running month, and a closed month still settling, get **provisional** figures, replaced
  on every pass (`StatementStore.save_provisional`);
- a month with no data gets nothing (a statement saying 0 saved would be a lie).

`run(stop, every_s)` repeats that until `stop` is set, in a worker thread so the event loop
keeps serving. A contract whose pass fails is reported once in `Health` (`recompute <id>`)
and logged once per distinct reason; the others go on.

    recompute = Recompute(site, store, StatementStore(site.storage.statements_file), health)
    await recompute.run(stop_event, every_s=3600)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.config import SiteConfig
from core.errors import EpcmonError
from core.health import Health
from processing.baseline import upgraded
from processing.contract import Baseline, Statement, Utility, fit_baseline
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
    what: str  # "baseline", "new", "updated", "unchanged", "provisional", "no data", "failed: ..."


class Recompute:
    """Keeps baselines, monthly statements and the running month's figures current."""

    def __init__(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        statements: StatementStore,
        health: Health | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.statements = statements
        self.health = health or Health()
        self._said: dict[tuple[str, str], str] = {}
        """The last problem logged per (contract, utility): each is logged once, not hourly."""

    def _today(self) -> date:
        return datetime.now(ZoneInfo(self.site.site.timezone)).date()

    def due_months(self, contract_id: str, today: date) -> list[str]:
        """Months of the reporting period whose final statement can be written on `today`."""
        contract = self.site.contract(contract_id)
        settle = timedelta(days=contract.statements.settle_days)
        end = contract.reporting_end or today
        return [
            label
            for label, _, last in months_between(contract.reporting_start, end)
            if last + settle <= today
        ]

    def open_months(self, contract_id: str, today: date) -> list[str]:
        """Months of the reporting period begun by `today` whose statement is not due yet."""
        contract = self.site.contract(contract_id)
        end = min(contract.reporting_end or date.max, today + timedelta(days=1))
        if end <= contract.reporting_start:
            return []
        due = set(self.due_months(contract_id, today))
        return [m for m, _, _ in months_between(contract.reporting_start, end) if m not in due]

    def run_once(self, today: date | None = None) -> list[Action]:
        today = today or self._today()
        actions: list[Action] = []
        for contract in self.site.contracts:
            for utility in contract.utility_names():
                try:
                    done = self._contract(contract.id, utility, today)
                except EpcmonError as exc:  # not enough data yet, and the like: expected
                    done = [Action(contract.id, utility, "", f"failed: {exc}")]
                    self._problem(contract.id, utility, str(exc), expected=True)
                except Exception as exc:  # a fault: visible in /healthz until a pass succeeds
                    done = [Action(contract.id, utility, "", f"failed: {exc!r}")]
                    self._problem(contract.id, utility, f"{type(exc).__name__}: {exc}")
                else:
                    self._solved(contract.id, utility)
                actions += done
        return actions

    def _problem(
        self, contract_id: str, utility: str, reason: str, *, expected: bool = False
    ) -> None:
        key = (contract_id, utility)
        if self._said.get(key) != reason:
            self._said[key] = reason
            if expected:
                log.warning("contract %s (%s): %s", contract_id, utility, reason)
            else:
                log.exception("contract %s (%s): recompute failed", contract_id, utility)
        if not expected:
            self.health.degrade(f"recompute {contract_id} {utility}", reason)

    def _solved(self, contract_id: str, utility: str) -> None:
        if self._said.pop((contract_id, utility), None) is not None:
            log.info("contract %s (%s): statements up to date again", contract_id, utility)
        self.health.recover(f"recompute {contract_id} {utility}")

    def _baseline(self, contract_id: str, utility: Utility) -> tuple[Baseline, list[Action]]:
        baseline = self.statements.latest_baseline(contract_id, utility)
        if baseline is not None:
            contract = self.site.contract(contract_id)
            better = upgraded(self.site, contract, self.store, baseline)
            if better is None:
                return baseline, []
            # stored by an earlier version: the same model, with its profile and held-out months
            self.statements.save_baseline(better)
            log.info(
                "contract %s (%s): stored baseline completed (hourly profile, held-out months; "
                "the model is not refitted)",
                contract_id,
                utility,
            )
            return better, [Action(contract_id, utility, "", "baseline upgraded")]
        baseline = fit_baseline(self.site, contract_id, self.store, utility=utility)
        self.statements.save_baseline(baseline)
        log.info("contract %s (%s): baseline fitted and stored", contract_id, utility)
        return baseline, [Action(contract_id, utility, "", "baseline")]

    def _contract(self, contract_id: str, utility: Utility, today: date) -> list[Action]:
        contract = self.site.contract(contract_id)
        if contract.baseline_end > today:
            return []
        baseline, actions = self._baseline(contract_id, utility)
        due = self.due_months(contract_id, today)
        pending = self.open_months(contract_id, today)
        months = due + pending
        if not months:
            return actions
        fresh_all = compute_statements(
            self.site, contract_id, self.store, months, baseline=baseline, utility=utility
        )
        for fresh in fresh_all:
            final = fresh.month in due
            if fresh.month_savings.days_used == 0:
                actions.append(Action(contract_id, utility, fresh.month, "no data"))
                continue
            what = self._save_final(fresh) if final else self._save_provisional(fresh)
            actions.append(Action(contract_id, utility, fresh.month, what))
        return actions

    def _save_final(self, fresh: Statement) -> str:
        stored = self.statements.latest_statement_json(
            fresh.contract_id, fresh.month, fresh.utility
        )
        if stored is not None and stored["inputs_digest"] == fresh.inputs_digest:
            return "unchanged"
        self.statements.save_statement(fresh)
        self.statements.drop_provisional(fresh.contract_id, fresh.month, fresh.utility)
        what = "new" if stored is None else "updated"
        log.info(
            "contract %s %s (%s): statement %s, avoided %.0f %s",
            fresh.contract_id,
            fresh.month,
            fresh.utility,
            what,
            fresh.month_savings.avoided,
            fresh.unit,
        )
        return what

    def _save_provisional(self, fresh: Statement) -> str:
        self.statements.save_provisional(fresh)
        return "provisional"

    async def run(self, stop: asyncio.Event, every_s: float = 3600.0) -> None:
        """Run `run_once` now and every `every_s` seconds until `stop` is set."""
        while not stop.is_set():
            actions = await asyncio.to_thread(self.run_once)
            changed = [
                a for a in actions if a.what in ("baseline", "baseline upgraded", "new", "updated")
            ]
            if changed:
                log.info("scheduled recompute: %d statements or baselines written", len(changed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)

"""The contracts' savings, computed off the request path and kept: dashboards poll the same
question, and one computation takes seconds over a year of data."""

from __future__ import annotations

import logging
import threading
import time

from core.config import Contract, SiteConfig, UtilityName
from core.errors import InsufficientData
from processing.contract import Baseline, SavingsResult, compute_savings
from processing.statements import StatementStore
from storage.base import TimeSeriesStore

log = logging.getLogger("epcmon.api")

Utility = UtilityName
CACHE_S = 60.0
"""Savings are recomputed at most once a minute per contract and utility (dashboards poll)."""


class SavingsCache:
    """Savings per (contract, utility, baseline), recomputed at most every `CACHE_S`; one
    computation at a time per key, so fifty dashboards asking at once compute it once.

    The stored baselines are kept while the statements file is unchanged
    (`StatementStore.version`): a baseline the recompute fits, in this process or in the
    worker process beside it, is served from the next request on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._entries: dict[tuple[str, str, str], tuple[float, SavingsResult]] = {}
        self._baselines: dict[tuple[str, str], tuple[float, Baseline | None]] = {}
        self._statements_version: tuple[int, int] | None = None

    def _check(self, statements: StatementStore) -> None:
        """Forget the baselines read when the statements file has changed since."""
        version = statements.version()
        with self._lock:
            if version != self._statements_version:
                self._statements_version = version
                self._baselines.clear()

    def cached_baseline(
        self, statements: StatementStore, contract_id: str, utility: str
    ) -> tuple[Baseline | None] | None:
        """The stored baseline if read less than `CACHE_S` ago and unchanged since, as a
        1-tuple (its value may be None: none fitted); None when it must be read
        (`baseline`, in a worker thread)."""
        self._check(statements)
        with self._lock:
            hit = self._baselines.get((contract_id, utility))
        if hit is not None and time.monotonic() - hit[0] < CACHE_S:
            return (hit[1],)
        return None

    def baseline(
        self, statements: StatementStore, contract_id: str, utility: str
    ) -> Baseline | None:
        """The stored baseline, re-read when the file changed or `CACHE_S` passed (parsing
        its JSON per request cost more than the request)."""
        self._check(statements)
        key = (contract_id, utility)
        with self._lock:
            hit = self._baselines.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                return hit[1]
        baseline = statements.latest_baseline(contract_id, utility)
        if baseline is not None:  # none yet: asked again next time (the recompute fits one)
            with self._lock:
                self._baselines[key] = (time.monotonic(), baseline)
        return baseline

    def get(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        contract: Contract,
        utility: Utility,
        baseline: Baseline,
    ) -> SavingsResult:
        """The cached result; a stale one is returned at once while a worker thread refreshes
        it (stale-while-revalidate), so only the very first request waits for the computation."""
        return self.get_stamped(site, store, contract, utility, baseline)[1]

    def cached(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        contract: Contract,
        utility: Utility,
        baseline: Baseline,
    ) -> tuple[float, SavingsResult] | None:
        """(when it was computed, the result) without waiting, a stale one starting its
        refresh as `get` does; None when nothing is cached yet (then `get_stamped` computes
        it, in a worker thread)."""
        key = (contract.id, utility, baseline.fitted_at)
        with self._lock:
            hit = self._entries.get(key)
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if (
            hit is not None
            and time.monotonic() - hit[0] >= CACHE_S
            and key_lock.acquire(blocking=False)
        ):
            threading.Thread(
                target=self._refresh,
                args=(key, key_lock, site, store, contract, utility, baseline),
                daemon=True,
            ).start()
        return hit

    def get_stamped(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        contract: Contract,
        utility: Utility,
        baseline: Baseline,
    ) -> tuple[float, SavingsResult]:
        """`get`, with the time the result was computed (a version for serialised bodies)."""
        hit = self.cached(site, store, contract, utility, baseline)
        if hit is not None:
            return hit
        key = (contract.id, utility, baseline.fitted_at)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # nothing cached yet: one computation, the others wait for it
            with self._lock:
                hit = self._entries.get(key)
            if hit is not None:
                return hit
            self._compute(key, site, store, contract, utility, baseline)
            with self._lock:
                return self._entries[key]

    def _compute(
        self,
        key: tuple[str, str, str],
        site: SiteConfig,
        store: TimeSeriesStore,
        contract: Contract,
        utility: Utility,
        baseline: Baseline,
    ) -> SavingsResult:
        result = compute_savings(site, contract.id, store, utility=utility, baseline=baseline)
        with self._lock:
            self._entries[key] = (time.monotonic(), result)
        return result

    def _refresh(
        self,
        key: tuple[str, str, str],
        key_lock: threading.Lock,
        site: SiteConfig,
        store: TimeSeriesStore,
        contract: Contract,
        utility: Utility,
        baseline: Baseline,
    ) -> None:
        try:
            self._compute(key, site, store, contract, utility, baseline)
        except Exception:  # the stale result stays; the next request tries again
            log.exception("refreshing the savings of %s failed", contract.id)
        finally:
            key_lock.release()

    def warm(self, site: SiteConfig, store: TimeSeriesStore, statements: StatementStore) -> int:
        """Compute every contract's savings that has a baseline (at start, off the request
        path); return how many were computed."""
        done = 0
        for contract in site.contracts:
            for utility in contract.utility_names():
                baseline = self.baseline(statements, contract.id, utility)
                if baseline is None:
                    continue
                try:
                    self.get(site, store, contract, utility, baseline)
                    done += 1
                except InsufficientData as exc:
                    log.info("no savings to warm for %s (%s): %s", contract.id, utility, exc)
        return done

"""The DuckDB store's daily maintenance, a supervised part of `epcmon run`: once a day at
`[storage.retention] at` (the site's local time), raw points older than `raw_days` are rolled
up and deleted, then the file is compacted when enough of it is free."""

from __future__ import annotations

import asyncio
import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.config.storage import RetentionConfig
from core.errors import EpcmonError
from core.health import Health
from storage.duckdb_store.compact import Compacted
from storage.duckdb_store.rollups import Retired
from storage.duckdb_store.store import DuckDBStore

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
PART = "store maintenance"


@dataclass(frozen=True)
class Pass:
    """What one maintenance pass did (None: that step was off or not worth it)."""

    retired: Retired | None
    compacted: Compacted | None


class StoreMaintenance:
    """Retention then compaction of one DuckDB store, daily at its local time.

    `run(stop)` is the supervised part; `run_once(now_ms)` is one pass (errors raised);
    `run_pass()` is one pass now whose store errors are held in `/healthz` (and logged once)
    as the condition "store maintenance" until a pass succeeds; other errors are raised to
    the supervisor."""

    def __init__(
        self,
        store: DuckDBStore,
        config: RetentionConfig,
        tz: str,
        health: Health | None = None,
        *,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.tz = tz
        self.health = health or Health()
        self.clock = clock
        self.passes = 0
        """Passes finished (failed ones included)."""

    def _next_due(self, after: float) -> float:
        """The first `at` local time strictly after `after` (epoch seconds)."""
        zone = ZoneInfo(self.tz)
        now = datetime.fromtimestamp(after, zone)
        hour, minute = (int(part) for part in self.config.at.split(":"))
        due = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if due <= now:
            due = datetime.combine(now.date() + timedelta(days=1), due.timetz())
        return due.timestamp()

    def seconds_until_due(self) -> float:
        """Seconds until the next `at` local time (today's if still ahead, else tomorrow's)."""
        now = self.clock()
        return self._next_due(now) - now

    def run_once(self, now_ms: int) -> Pass:
        retired = None
        if self.config.raw_days > 0:
            retired = self.store.retire(now_ms - self.config.raw_days * DAY_MS, self.tz)
        compacted = None
        if self.config.compact_free_fraction < 1.0:
            compacted = self.store.compact(self.config.compact_free_fraction)
        return Pass(retired, compacted)

    def run_pass(self) -> Pass | None:
        try:
            done = self.run_once(int(self.clock() * 1000))
        except EpcmonError as exc:
            self.health.degrade(PART, str(exc))  # logs it when it starts or changes
            return None
        finally:
            self.passes += 1
        self.health.recover(PART)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        done_for = 0.0  # the due time of the last pass: a timer firing early runs it once
        while not stop.is_set():
            due = self._next_due(max(self.clock(), done_for))
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - self.clock()))
            except TimeoutError:
                await asyncio.to_thread(self.run_pass)
                done_for = due

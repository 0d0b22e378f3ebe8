"""`SpoolingStore`: a `TimeSeriesStore` that spools the writes its inner store cannot take.

Writes go to the store while the spool is empty; a `StoreError` from the store (after its own
retries) spools the batch instead, and while batches are spooled, new ones queue behind them
so that a later value of a key never lands before an earlier one. `BadReadings` (data no
store may hold) is never spooled: it goes back to the writer. Reads go to the store as they
are: spooled points are not visible until replayed. Logs once when the store goes down and
once when the spool is drained, and raises the health condition `spool` in between.

Replay (`drain_step`) takes the oldest spooled batches up to `drain_points` readings,
coalesces them into one write (the later of two readings of a key wins, as in the spool's
order) and removes them only once the store took them: ~100 k points per write instead of
one write per spooled batch, so a backlog drains far faster than ingest fills it. A batch
the store refuses as `BadReadings` (e.g. spooled by an older version, or an InfluxDB refusing
points beyond its retention policy) is moved to the spool's `rejected` table with the reason,
kept for inspection, and the queue moves on: it cannot block the spool forever.

Without a `SpoolDrain` running, each write first replays one chunk (at most once per
`replay_interval_s` while the store fails), so a spool still drains where nobody runs one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

from core.errors import BadReadings, StoreError
from core.health import Health
from core.readings import ReadingBatch, check_storable
from storage.base import ReadsFromInner, TimeSeriesStore
from storage.spool.fifo import Spool, Spooled

log = logging.getLogger(__name__)

DRAIN_POINTS = 100_000
"""Default for the most readings one replay write carries (`[storage.spool] drain_points`)."""


@dataclass(frozen=True, slots=True)
class DrainStep:
    """What one replay step did."""

    batches: int = 0
    """Spooled batches written to the store (and removed from the spool)."""
    points: int = 0
    """Readings in them."""
    rejected: int = 0
    """Batches the store refused as bad data (moved to `rejected`)."""
    failed: StoreError | None = None
    """The store's error when it could not take the chunk (the rest stays spooled)."""


class SpoolingStore(ReadsFromInner):
    """A `TimeSeriesStore` that spools the writes its inner store cannot take (module doc)."""

    def __init__(
        self,
        inner: TimeSeriesStore,
        spool: Spool,
        *,
        replay_interval_s: float = 5.0,
        drain_points: int = DRAIN_POINTS,
        health: Health | None = None,
    ) -> None:
        self.inner = inner
        self.spool = spool
        self.replay_interval_s = replay_interval_s
        self.drain_points = drain_points
        self.health = health if health is not None else Health()
        self.spooled_batches = 0
        """Batches spooled since start (a counter for metrics)."""
        self.replayed_batches = 0
        """Batches replayed into the store since start."""
        self.replayed_points = 0
        """Readings replayed into the store since start."""
        self.rejected_batches = 0
        """Spooled batches the store refused as bad data since start."""
        self.drains_attached = 0
        """`SpoolDrain`s running: while one runs, writes leave the replay to it."""
        self._lock = threading.Lock()
        """Held by a write from its look at the spool to its push or direct write, so
        that no write reaches the store directly while an earlier one is being spooled."""
        self._drain_lock = threading.Lock()
        """One replay step at a time."""

        self._state_lock = threading.Lock()
        self._down = spool.depth > 0
        self._last_failure = float("-inf")
        if self._down:
            self.health.degrade(
                "spool", f"{spool.depth} batches waiting in spool {spool.path} from an earlier run"
            )

    def __repr__(self) -> str:
        return f"SpoolingStore({self.inner!r}, spool={str(self.spool.path)!r})"

    def write(self, batch: ReadingBatch) -> int:
        """Write `batch`, or spool it; return the points written or spooled.

        Raises `BadReadings` (never spooled) for data no store may hold, `SpoolFull` when
        the store is unavailable and the spool at its bound, `StoreError` when the spool's
        own file cannot take the batch."""
        if len(batch) == 0:
            return 0
        check_storable(batch)
        with self._lock:
            if self.spool.depth and not self.drains_attached and self.may_try():
                self.drain_step()
            if self.spool.depth:
                return self._push(batch)
            try:
                return self.inner.write(batch)
            except StoreError as exc:
                self._failed(exc)
                return self._push(batch)

    def replay(self) -> int:
        """Replay spooled batches, oldest first, until the spool is empty or the store
        fails again; return the number replayed (not waiting for `replay_interval_s`)."""
        replayed = 0
        while self.spool.depth:
            step = self.drain_step()
            replayed += step.batches
            if step.failed is not None or not (step.batches or step.rejected):
                break
        return replayed

    def may_try(self) -> bool:
        """Whether the store may be tried again: `replay_interval_s` since it last failed."""
        return self.retry_in() <= 0

    def retry_in(self) -> float:
        """Seconds until the store may be tried again (0 or less: now)."""
        with self._state_lock:
            return self._last_failure + self.replay_interval_s - time.monotonic()

    def drain_step(self) -> DrainStep:
        """Replay one chunk: the oldest spooled batches up to `drain_points` readings in one
        write. Blocking (run it in a worker thread); writes go on into the spool meanwhile."""
        with self._drain_lock:
            taken = self.spool.take(self.drain_points)
            self.rejected_batches += taken.unreadable
            if not taken:
                if self.spool.depth == 0:
                    self._drained()
                return DrainStep(rejected=taken.unreadable)
            chunk = taken.chunk()
            try:
                self.inner.write(chunk)
            except BadReadings:
                step = self._one_by_one(taken.items())
            except StoreError as exc:
                self._failed(exc)
                return DrainStep(failed=exc)
            else:
                self.spool.pop_range(taken.ids[0], taken.ids[-1])
                step = DrainStep(batches=len(taken), points=len(chunk))
            if taken.unreadable:
                step = replace(step, rejected=step.rejected + taken.unreadable)
            self.replayed_batches += step.batches
            self.replayed_points += step.points
            if step.failed is None and self.spool.depth == 0:
                self._drained()
            return step

    def _one_by_one(self, taken: list[Spooled]) -> DrainStep:
        """A chunk the store refused as bad data: find the refused batches, keep the rest."""
        batches = points = rejected = 0
        for spooled in taken:
            try:
                self.inner.write(spooled.batch)
            except BadReadings as exc:
                self.spool.reject(spooled.id, str(exc))
                rejected += 1
                self.rejected_batches += 1
                log.error(
                    "spooled batch %d (%d readings) refused by the store and set aside in "
                    "%s (table rejected): %s",
                    spooled.id,
                    len(spooled.batch),
                    self.spool.path,
                    exc,
                )
                continue
            except StoreError as exc:
                self._failed(exc)
                return DrainStep(batches, points, rejected, failed=exc)
            self.spool.pop(spooled.id)
            batches += 1
            points += len(spooled.batch)
        return DrainStep(batches, points, rejected)

    def _push(self, batch: ReadingBatch) -> int:
        self.spool.push(batch)
        self.spooled_batches += 1
        return len(batch)

    def _detail(self, why: str) -> str:
        return f"store write failed, spooling to {self.spool.path}: {why}"

    def _failed(self, exc: StoreError) -> None:
        """The store refused a write: spool from now on (`health` logs the first time)."""
        with self._state_lock:
            self._last_failure = time.monotonic()
            self._down = True
        self.health.degrade("spool", self._detail(str(exc)))

    def _drained(self) -> None:
        with self._state_lock:
            was_down = self._down
            self._down = False
        if was_down:
            self.health.recover("spool", f"store reachable again, spool {self.spool.path} drained")

    def close(self) -> None:
        self.inner.close()
        self.spool.close()

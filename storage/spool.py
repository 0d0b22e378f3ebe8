"""The durable spool: batches a store could not take, kept on disk and replayed in order.

    spool = Spool("data/spool.sqlite3", max_bytes=1 << 30)
    store = SpoolingStore(InfluxStore(...), spool, health=health)
    store.write(batch)      # written, or spooled when the store is unavailable; never lost
    await SpoolDrain(store).run(stop)   # the part that empties the spool, on its own timer
    store.replay()          # or by hand: spooled batches, oldest first, into the store
    spool.depth, spool.bytes, spool.rejected   # for metrics and alarms

`Spool` is a FIFO queue of `ReadingBatch`es in one SQLite file (WAL, `synchronous=FULL`: a
batch that `push()` accepted survives a crash or a power cut). Each batch is one row, its
columns serialised as one Arrow IPC stream (meter ids and quantities dictionary-encoded,
zstd-compressed): about 3 bytes per reading of minute data. The spool is bounded by the bytes
it holds; a batch that would pass the bound raises `SpoolFull`, an alarm, never a silent drop.
The collectors treat it like any store error: the MQTT subscriber does not acknowledge, the
broker keeps the messages.

`SpoolingStore` implements `TimeSeriesStore` around any store. Writes go to the store while
the spool is empty; a `StoreError` from the store (after its own retries) spools the batch
instead, and while batches are spooled, new ones queue behind them so that a later value of a
key never lands before an earlier one. `BadReadings` (data no store may hold) is never
spooled: it goes back to the writer. Reads go to the store as they are: spooled points are
not visible until replayed. Logs once when the store goes down and once when the spool is
drained, and raises the health condition `spool` in between.

Replay (`drain_step`) takes the oldest spooled batches up to `drain_points` readings,
coalesces them into one write (the later of two readings of a key wins, as in the spool's
order) and removes them only once the store took them: ~100 k points per write instead of
one write per spooled batch, so a backlog drains far faster than ingest fills it. A batch
the store refuses as `BadReadings` (e.g. spooled by an older version, or an InfluxDB refusing
points beyond its retention policy) is moved to the spool's `rejected` table with the reason,
kept for inspection, and the queue moves on: it cannot block the spool forever.

`SpoolDrain` is the long-running part that replays: as soon as batches wait and the store
was last tried `replay_interval_s` ago or more, in a worker thread, chunk after chunk, while
writes keep going into the spool behind it (a write then waits only for the spool's own
insert). Without a `SpoolDrain` running, each write first replays one chunk (at most once per
`replay_interval_s` while the store fails), so a spool still drains where nobody runs one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import pyarrow as pa

from core.errors import BadReadings, ConfigError, SpoolFull, StoreError
from core.health import Health
from core.readings import Reading, ReadingBatch, check_storable
from storage.base import Agg, Every, Series, TimeSeriesStore

log = logging.getLogger(__name__)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        spooled_ms INTEGER NOT NULL,
        points INTEGER NOT NULL,
        payload BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS rejected (
        id INTEGER PRIMARY KEY,
        spooled_ms INTEGER NOT NULL,
        rejected_ms INTEGER NOT NULL,
        points INTEGER NOT NULL,
        reason TEXT NOT NULL,
        payload BLOB NOT NULL
    )
    """,
)
DRAIN_POINTS = 100_000
"""Default for the most readings one replay write carries (`[storage.spool] drain_points`)."""
# One thread per stream: the spool's rows are small, and Arrow's thread pool costs more than
# it saves on them (measured here: ~3x slower per row with it).
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd", use_threads=False)
_IPC_READ = pa.ipc.IpcReadOptions(use_threads=False)
_SCHEMA_ARROW = pa.schema(
    [
        ("meter_id", pa.dictionary(pa.int32(), pa.string())),
        ("quantity", pa.dictionary(pa.int32(), pa.string())),
        ("ts_ms", pa.int64()),
        ("value", pa.float64()),
    ]
)


def serialise(batch: ReadingBatch) -> bytes:
    """A batch as one Arrow IPC stream (the spool's row format)."""
    table = pa.table(
        {
            "meter_id": pa.array(batch.meter_id, type=pa.string()).dictionary_encode(),
            "quantity": pa.array(batch.quantity, type=pa.string()).dictionary_encode(),
            "ts_ms": pa.array(batch.ts_ms, type=pa.int64()),
            "value": pa.array(batch.value, type=pa.float64()),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _read_table(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload, options=_IPC_READ).read_all()


def _batch_of(table: pa.Table) -> ReadingBatch:
    return ReadingBatch(
        meter_id=np.asarray(table.column("meter_id").cast(pa.string()).to_numpy(), dtype=object),
        quantity=np.asarray(table.column("quantity").cast(pa.string()).to_numpy(), dtype=object),
        ts_ms=np.asarray(table.column("ts_ms").to_numpy(), dtype=np.int64),
        value=np.asarray(table.column("value").to_numpy(), dtype=np.float64),
    )


def deserialise(payload: bytes) -> ReadingBatch:
    return _batch_of(_read_table(payload))


@dataclass(frozen=True, slots=True)
class Spooled:
    """A batch in the spool: its id (for `pop`), when it was spooled, and the batch."""

    id: int
    spooled_ms: int
    batch: ReadingBatch


@dataclass(frozen=True, slots=True)
class Taken:
    """The oldest spooled batches, read together (still in the spool), oldest first."""

    ids: tuple[int, ...]
    spooled_ms: tuple[int, ...]
    tables: tuple[pa.Table, ...]
    unreadable: int = 0
    """Rows that could not be read back, moved to `rejected` instead."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def points(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def chunk(self) -> ReadingBatch:
        """All of them as one batch, in spool order (converted once, not batch by batch)."""
        return _batch_of(pa.concat_tables(self.tables))

    def items(self) -> list[Spooled]:
        """Each batch on its own."""
        return [
            Spooled(i, ms, _batch_of(t))
            for i, ms, t in zip(self.ids, self.spooled_ms, self.tables, strict=True)
        ]


class Spool:
    """A durable FIFO of `ReadingBatch`es in one SQLite file, bounded by `max_bytes`.

    Thread-safe; one process owns the file. A path that cannot hold a spool (its directory
    cannot be created or written, a directory, a file that is not a spool) is a
    `ConfigError` naming `[storage.spool]` `path`.
    """

    def __init__(self, path: str | Path, max_bytes: int = 1 << 30) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = self._open()
        try:
            depth, size = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM batches"
            ).fetchone()
            (rejected,) = self._db.execute("SELECT count(*) FROM rejected").fetchone()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from exc
        self._depth = int(depth)
        self._bytes = int(size)
        self._rejected = int(rejected)

    def _unusable(self, exc: BaseException) -> ConfigError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in reason:
            reason += " (move the file away: it is not a spool, or a damaged one)"
        return ConfigError(
            f"cannot use {self.path} as the spool: {reason}",
            entity="[storage.spool]",
            key="path",
        )

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Asked of the file system first: its errors say why (read-only, a directory,
            # no permission) where SQLite says only "unable to open database file".
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            os.close(fd)
        except OSError as exc:
            raise self._unusable(exc) from exc
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                db.execute(statement)
        except sqlite3.Error as exc:
            db.close()
            raise self._unusable(exc) from exc
        return db

    @property
    def depth(self) -> int:
        """Batches waiting."""
        return self._depth

    @property
    def bytes(self) -> int:
        """Payload bytes waiting (what `max_bytes` bounds)."""
        return self._bytes

    @property
    def rejected(self) -> int:
        """Batches the store refused as bad data, kept in the `rejected` table."""
        return self._rejected

    def push(self, batch: ReadingBatch) -> int:
        """Append a batch durably; return its id. Raises `SpoolFull` past `max_bytes`, and
        `StoreError` when the spool's own file cannot take it (its disk is full)."""
        payload = serialise(batch)
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.path} is full: {self._depth} batches, {self._bytes:,} bytes "
                    f"of {self.max_bytes:,}; a batch of {len(batch)} readings "
                    f"({len(payload):,} bytes) was not taken"
                )
            try:
                cursor = self._db.execute(
                    "INSERT INTO batches (spooled_ms, points, payload) VALUES (?, ?, ?)",
                    (int(time.time() * 1000), len(batch), payload),
                )
            except sqlite3.Error as exc:
                raise StoreError(
                    f"spool {self.path} could not take a batch of {len(batch)} readings: {exc}"
                ) from exc
            self._depth += 1
            self._bytes += len(payload)
            return int(cursor.lastrowid or 0)

    def peek(self) -> Spooled | None:
        """The oldest batch, left in the spool; None when it is empty."""
        taken = self.take(1).items()
        return taken[0] if taken else None

    def take(self, max_points: int) -> Taken:
        """The oldest batches, left in the spool, in order: as many as fit in `max_points`
        readings (always at least one). A batch that cannot be read back is moved to
        `rejected` and left out."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT id, spooled_ms, points, payload FROM batches ORDER BY id"
            )
            rows: list[tuple[int, int, bytes]] = []
            points = 0
            try:
                while points < max_points or not rows:
                    row = cursor.fetchone()
                    if row is None:
                        break
                    rows.append((int(row[0]), int(row[1]), row[3]))
                    points += int(row[2])
            finally:
                cursor.close()
        ids: list[int] = []
        times: list[int] = []
        tables: list[pa.Table] = []
        unreadable = 0
        for batch_id, spooled_ms, payload in rows:
            try:
                table = _read_table(payload)
                if table.schema != _SCHEMA_ARROW:
                    raise ValueError(f"unexpected columns {table.schema.names}")
            except (pa.ArrowException, ValueError, OSError) as exc:  # a damaged row
                self.reject(batch_id, f"unreadable spool row: {exc}")
                log.error(
                    "spooled batch %d cannot be read back (%s): set aside in %s (table rejected)",
                    batch_id,
                    exc,
                    self.path,
                )
                unreadable += 1
                continue
            ids.append(batch_id)
            times.append(spooled_ms)
            tables.append(table)
        return Taken(tuple(ids), tuple(times), tuple(tables), unreadable)

    def pop(self, batch_id: int) -> None:
        """Remove a batch once it is stored."""
        self.pop_range(batch_id, batch_id)

    def pop_range(self, first_id: int, last_id: int) -> None:
        """Remove the batches with first_id <= id <= last_id (taken together, stored)."""
        with self._lock:
            rows = self._db.execute(
                "DELETE FROM batches WHERE id BETWEEN ? AND ? RETURNING length(payload)",
                (first_id, last_id),
            ).fetchall()
            self._depth -= len(rows)
            self._bytes -= sum(int(r[0]) for r in rows)

    def reject(self, batch_id: int, reason: str) -> None:
        """Move a batch the store refused (or that cannot be read) to `rejected`."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                moved = self._db.execute(
                    "INSERT INTO rejected (id, spooled_ms, rejected_ms, points, reason, payload) "
                    "SELECT id, spooled_ms, ?, points, ?, payload FROM batches WHERE id = ?",
                    (int(time.time() * 1000), reason, batch_id),
                ).rowcount
                size = self._db.execute(
                    "DELETE FROM batches WHERE id = ? RETURNING length(payload)", (batch_id,)
                ).fetchall()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._rejected += moved
            self._depth -= len(size)
            self._bytes -= sum(int(r[0]) for r in size)

    def rejected_batches(self) -> list[tuple[Spooled, str]]:
        """The rejected batches with their reasons, oldest first (for inspection)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, spooled_ms, reason, payload FROM rejected ORDER BY id"
            ).fetchall()
        out: list[tuple[Spooled, str]] = []
        for batch_id, spooled_ms, reason, payload in rows:
            with contextlib.suppress(pa.ArrowException, ValueError, OSError):
                out.append((Spooled(int(batch_id), int(spooled_ms), deserialise(payload)), reason))
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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


class SpoolingStore:
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

    # -- everything else is the inner store's ---------------------------------------------

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        return self.inner.read_raw(meter_id, quantity, start_ms, end_ms)

    def aggregate(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        agg: Agg,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.aggregate(meter_id, quantity, start_ms, end_ms, every, agg, tz)

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        return self.inner.consumption(meter_id, quantity, start_ms, end_ms, every, tz)

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        return self.inner.latest(meter_ids)

    def series_keys(self) -> list[tuple[str, str]]:
        return self.inner.series_keys()

    def close(self) -> None:
        self.inner.close()
        self.spool.close()


class SpoolDrain:
    """The part that empties the spool on its own timer (supervisor name `spool-drain`).

    Replays as soon as batches wait and the store may be tried (`replay_interval_s` after
    its last failure), chunk after chunk in a worker thread, independent of new writes;
    looks at the spool every `idle_s` while it is empty. A `StoreError` is the store being
    down (the `spool` health condition says so; tried again later); anything else ends
    `run()` with that error, and `run()` may be called again.
    """

    def __init__(self, store: SpoolingStore, *, idle_s: float = 1.0) -> None:
        self.store = store
        self.idle_s = idle_s

    async def run(self, stop: asyncio.Event) -> None:
        store = self.store
        store.drains_attached += 1
        try:
            while not stop.is_set():
                if store.spool.depth and store.may_try():
                    step = await asyncio.to_thread(store.drain_step)
                    if step.failed is None and (step.batches or step.rejected):
                        continue  # more may wait: no pause between chunks
                wait = self.idle_s
                if store.spool.depth:
                    wait = min(wait, max(store.retry_in(), 0.01))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            store.drains_attached -= 1

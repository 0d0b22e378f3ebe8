"""The durable spool: batches a store could not take, kept on disk and replayed in order.

    spool = Spool("data/spool.sqlite3", max_bytes=1 << 30)
    store = SpoolingStore(InfluxStore(...), spool)
    store.write(batch)      # written, or spooled when the store is unavailable; never lost
    store.replay()          # spooled batches, oldest first, into the store (also tried on writes)
    spool.depth, spool.bytes   # for metrics and alarms

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
key never lands before an earlier one. Every write first tries to replay the spool (at most
once per `replay_interval_s`, so an unreachable store does not slow every write down by its
retries). Reads go to the store as they are: spooled points are not visible until replayed.
Logs once when the store goes down and once when the spool is drained.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import pyarrow as pa

from core.errors import SpoolFull, StoreError
from core.readings import Reading, ReadingBatch
from storage.base import Agg, Every, Series, TimeSeriesStore

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spooled_ms INTEGER NOT NULL,
    points INTEGER NOT NULL,
    payload BLOB NOT NULL
)
"""
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


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


def deserialise(payload: bytes) -> ReadingBatch:
    table = pa.ipc.open_stream(payload).read_all()
    return ReadingBatch(
        meter_id=np.asarray(table.column("meter_id").cast(pa.string()).to_numpy(), dtype=object),
        quantity=np.asarray(table.column("quantity").cast(pa.string()).to_numpy(), dtype=object),
        ts_ms=np.asarray(table.column("ts_ms").to_numpy(), dtype=np.int64),
        value=np.asarray(table.column("value").to_numpy(), dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class Spooled:
    """A batch in the spool: its id (for `pop`), when it was spooled, and the batch."""

    id: int
    spooled_ms: int
    batch: ReadingBatch


class Spool:
    """A durable FIFO of `ReadingBatch`es in one SQLite file, bounded by `max_bytes`.

    Thread-safe; one process owns the file.
    """

    def __init__(self, path: str | Path, max_bytes: int = 1 << 30) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        depth, size = self._db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0) FROM batches"
        ).fetchone()
        self._depth = int(depth)
        self._bytes = int(size)

    @property
    def depth(self) -> int:
        """Batches waiting."""
        return self._depth

    @property
    def bytes(self) -> int:
        """Payload bytes waiting (what `max_bytes` bounds)."""
        return self._bytes

    def push(self, batch: ReadingBatch) -> int:
        """Append a batch durably; return its id. Raises `SpoolFull` past `max_bytes`."""
        payload = serialise(batch)
        with self._lock:
            if self._bytes + len(payload) > self.max_bytes:
                raise SpoolFull(
                    f"spool {self.path} is full: {self._depth} batches, {self._bytes:,} bytes "
                    f"of {self.max_bytes:,}; a batch of {len(batch)} readings "
                    f"({len(payload):,} bytes) was not taken"
                )
            cursor = self._db.execute(
                "INSERT INTO batches (spooled_ms, points, payload) VALUES (?, ?, ?)",
                (int(time.time() * 1000), len(batch), payload),
            )
            self._depth += 1
            self._bytes += len(payload)
            return int(cursor.lastrowid or 0)

    def peek(self) -> Spooled | None:
        """The oldest batch, left in the spool; None when it is empty."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, spooled_ms, payload FROM batches ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return Spooled(int(row[0]), int(row[1]), deserialise(row[2]))

    def pop(self, batch_id: int) -> None:
        """Remove a batch once it is stored."""
        with self._lock:
            row = self._db.execute(
                "DELETE FROM batches WHERE id = ? RETURNING length(payload)", (batch_id,)
            ).fetchone()
            if row is not None:
                self._depth -= 1
                self._bytes -= int(row[0])

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


class SpoolingStore:
    """A `TimeSeriesStore` that spools the writes its inner store cannot take (module doc)."""

    def __init__(
        self, inner: TimeSeriesStore, spool: Spool, *, replay_interval_s: float = 5.0
    ) -> None:
        self.inner = inner
        self.spool = spool
        self.replay_interval_s = replay_interval_s
        self.spooled_batches = 0
        """Batches spooled since start (a counter for metrics)."""
        self.replayed_batches = 0
        """Batches replayed into the store since start."""
        self._lock = threading.Lock()
        self._down = spool.depth > 0
        self._last_failure = float("-inf")

    def __repr__(self) -> str:
        return f"SpoolingStore({self.inner!r}, spool={str(self.spool.path)!r})"

    def write(self, batch: ReadingBatch) -> int:
        """Write `batch`, or spool it; return the points written or spooled.

        Raises only `SpoolFull` (the store is unavailable and the spool at its bound)."""
        if len(batch) == 0:
            return 0
        with self._lock:
            if self.spool.depth and self._may_try():
                self._replay()
            if self.spool.depth:
                return self._push(batch)
            try:
                return self.inner.write(batch)
            except StoreError as exc:
                self._failed(exc)
                return self._push(batch)

    def replay(self) -> int:
        """Replay spooled batches, oldest first, until the spool is empty or the store
        fails again; return the number replayed."""
        with self._lock:
            return self._replay()

    def _may_try(self) -> bool:
        return time.monotonic() - self._last_failure >= self.replay_interval_s

    def _push(self, batch: ReadingBatch) -> int:
        self.spool.push(batch)
        self.spooled_batches += 1
        return len(batch)

    def _failed(self, exc: StoreError) -> None:
        self._last_failure = time.monotonic()
        if not self._down:
            self._down = True
            log.error("store write failed, spooling to %s: %s", self.spool.path, exc)

    def _replay(self) -> int:
        replayed = 0
        while (head := self.spool.peek()) is not None:
            try:
                self.inner.write(head.batch)
            except StoreError as exc:
                self._failed(exc)
                break
            self.spool.pop(head.id)
            replayed += 1
            self.replayed_batches += 1
        if self._down and self.spool.depth == 0:
            self._down = False
            log.warning("store reachable again: spool %s drained", self.spool.path)
        return replayed

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

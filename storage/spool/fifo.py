"""`Spool`: a durable FIFO queue of `ReadingBatch`es in one SQLite file.

WAL, `synchronous=FULL`: a batch that `push()` accepted survives a crash or a power cut. Each
batch is one row in the format of `storage.spool.rows`. The spool is bounded by the bytes it
holds; a batch that would pass the bound raises `SpoolFull`, an alarm, never a silent drop.
A batch the store refuses as bad data, or that cannot be read back, is moved to the
`rejected` table with its reason and kept for inspection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import pyarrow as pa

from core.errors import ConfigError, SpoolFull, StoreError
from core.readings import ReadingBatch
from storage.spool.rows import SCHEMA_ARROW, batch_of, deserialise, read_table, serialise

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
        return batch_of(pa.concat_tables(self.tables))

    def items(self) -> list[Spooled]:
        """Each batch on its own."""
        return [
            Spooled(i, ms, batch_of(t))
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
                table = read_table(payload)
                if table.schema != SCHEMA_ARROW:
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

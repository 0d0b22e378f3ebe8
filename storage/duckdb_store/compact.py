"""Compaction of a DuckDB store: give back the space of deleted and rewritten points.

DuckDB reuses free blocks but never shrinks its file: measured with DuckDB 2.0, a day of
readings written again (the idempotent path deletes the stored points and appends the new
ones) grew a 1.06 MB file to 1.85 MB, and neither `CHECKPOINT` nor `VACUUM` changed that.
A copy into a fresh file does (1.32 MB for the same rows, sorted by series and time). So:

1. the store starts a journal of the batches written from now on;
2. the tables are copied into `<path>.compact`, ATTACHed to the store's connection, in one
   transaction (a snapshot: writes and reads carry on beside it);
3. under the write lock, with reads held at the gate for that moment only, the journal is
   replayed into the copy (delete the keys, insert the points: idempotent whether a batch
   made it into the snapshot or not), the series are copied again, the copy is detached
   (checkpointed), the connection closed (should closing leave the old file's WAL, its
   checkpoint failed: the compaction is abandoned, a WAL is never deleted), the copy renamed
   over the file, and the file reopened.

The store is never changed in place: killed at any step before the rename, the old file is
whole and the next compaction removes the leftover copy. The rename is atomic (same
directory). The copy needs room for the data: it is skipped (logged) when the disk has less.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.errors import StoreError
from storage.duckdb_store.files import connect, first_line

if TYPE_CHECKING:
    from storage.duckdb_store.store import DuckDBStore

log = logging.getLogger(__name__)

_FRESH = "epcmon_fresh"
_TABLES = {
    "series": "series_id",
    "readings": "series_id, ts",
    "rollups": "series_id, ts",
    "retention": "raw_from",
}
"""Every table of the store, and the order its rows are copied in."""


@dataclass(frozen=True)
class Compacted:
    """What one compaction did."""

    bytes_before: int
    bytes_after: int
    replayed: int
    """Batches written during the copy and replayed into it."""
    seconds: float


def file_bytes(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def blocks(store: DuckDBStore) -> tuple[int, int, int]:
    """(block size, blocks, free blocks) of the file, after a checkpoint: until one, recent
    changes are in the WAL and the blocks do not show them."""
    with store._write_lock:
        store._check_open()
        store._reopen()
        try:
            cursor = store._cursor()
            cursor.execute("CHECKPOINT").fetchall()
            row = cursor.execute(
                "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()"
            ).fetchall()
        except duckdb.Error as exc:
            raise StoreError(
                f"DuckDB store {store._path}: checkpoint failed: {first_line(exc)}"
            ) from exc
    block, total, free = (int(v) for v in row[0]) if row else (0, 0, 0)
    return block, total, free


def free_fraction(store: DuckDBStore) -> float:
    _block, total, free = blocks(store)
    return free / total if total else 0.0


def journal_entry(
    sid: npt.NDArray[np.int32], ts: npt.NDArray[np.int64], value: npt.NDArray[np.float64]
) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array(sid, type=pa.int32()),
            "ts": pa.array(ts * 1000, type=pa.timestamp("us")),
            "value": pa.array(value, type=pa.float64()),
        }
    )


def _remove(fresh: Path) -> None:
    for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def compact(
    store: DuckDBStore, min_free_fraction: float, disk_free: Callable[[Path], int]
) -> Compacted | None:
    path = Path(store._path)
    fresh = path.with_name(path.name + ".compact")
    _remove(fresh)  # a copy cut short before
    block, total, free = blocks(store)
    if total == 0 or free / total < min_free_fraction:
        return None
    needed = (total - free) * block
    if disk_free(path.parent) < needed * 1.1:
        log.warning(
            "compaction of DuckDB store %s skipped: it needs about %d MB free on its disk "
            "for the copy", path, needed // 1_000_000 + 1,
        )  # fmt: skip
        return None
    started = time.monotonic()
    before = file_bytes(path)
    connect(str(fresh)).close()  # the schema, as a new store has it
    with store._write_lock:
        store._journal = []
    try:
        _copy(store, fresh)
        with store._gate.alone(), store._write_lock:
            journal, store._journal = store._journal or [], None
            _finish(store, fresh, journal)
    except BaseException:
        with store._write_lock:
            store._journal = None
        with contextlib.suppress(duckdb.Error, StoreError), store._reading() as cursor:
            cursor.execute(f"DETACH DATABASE IF EXISTS {_FRESH}")
        _remove(fresh)
        raise
    done = Compacted(before, file_bytes(path), len(journal), time.monotonic() - started)
    log.info(
        "DuckDB store %s compacted: %.1f MB -> %.1f MB in %.1f s",
        path, done.bytes_before / 1e6, done.bytes_after / 1e6, done.seconds,
    )  # fmt: skip
    return done


def _copy(store: DuckDBStore, fresh: Path) -> None:
    """Every table into the fresh file, from one snapshot, sorted by series and time."""
    with store._reading() as cursor:
        try:
            cursor.execute(f"ATTACH '{_quoted(fresh)}' AS {_FRESH}")
            cursor.execute("BEGIN TRANSACTION")
            try:
                for table, order in _TABLES.items():
                    cursor.execute(
                        f"INSERT INTO {_FRESH}.{table} SELECT * FROM {table} ORDER BY {order}"
                    )
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cursor.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            raise StoreError(
                f"compaction of DuckDB store {store._path} failed copying: {first_line(exc)}"
            ) from exc


def _finish(store: DuckDBStore, fresh: Path, journal: list[pa.Table]) -> None:
    """Replay, detach, swap, reopen. Needs the gate alone and the write lock."""
    path = Path(store._path)
    cursor = store._cursor()
    try:
        cursor.execute("BEGIN TRANSACTION")
        try:
            cursor.execute(f"DELETE FROM {_FRESH}.series")
            cursor.execute(f"INSERT INTO {_FRESH}.series SELECT * FROM series ORDER BY series_id")
            for batch in journal:
                cursor.register("_epcmon_replay", batch)
                try:
                    cursor.execute(
                        f"DELETE FROM {_FRESH}.readings AS r USING _epcmon_replay AS o "
                        "WHERE r.series_id = o.series_id AND r.ts = o.ts"
                    )
                    cursor.execute(f"INSERT INTO {_FRESH}.readings SELECT * FROM _epcmon_replay")
                finally:
                    cursor.unregister("_epcmon_replay")
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute(f"DETACH DATABASE {_FRESH}")  # checkpoints the copy: no WAL left
    except duckdb.Error as exc:
        raise StoreError(
            f"compaction of DuckDB store {store._path} failed replaying: {first_line(exc)}"
        ) from exc
    store._drop_connection()  # closing checkpoints the old file: its WAL is gone too
    if path.with_name(path.name + ".wal").exists():
        # The checkpoint failed (a full disk?): the WAL holds data of the old file, and would
        # be replayed onto the new one. Keep the old file as it is.
        store._reopen(swapped=True)
        raise StoreError(
            f"compaction of DuckDB store {path} abandoned: closing it left its WAL "
            "(the checkpoint failed); the store is unchanged"
        )
    os.replace(fresh, path)
    with contextlib.suppress(OSError):  # make the rename durable where the platform can
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    store._reopen(swapped=True)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")

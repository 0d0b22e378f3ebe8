"""The connection of a DuckDB store: one per store, one cursor per thread, dropped when DuckDB
invalidates the database (a fatal error, e.g. a checkpoint on a full disk) and reopened by
the next read or write.

`DuckDBFile` owns the file and that connection; `DuckDBStore` builds on it and keeps, in
`_load_state()`, what it remembers of the file (read at open and again after every reopen:
a commit DuckDB reported as failed may have reached the file).

Threads: DuckDB cursors are connections to the same database and may run concurrently;
writes are serialised by `_write_lock`; `_meta_lock` guards the cursor list, the
connection's generation and the store's memory, and is held only briefly. Reads pass
`_gate` (shared) for the length of their query; a compaction swapping the file holds it
alone for the moment of the swap, so reads wait for it rather than fail.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import duckdb

from core.errors import StoreError, StoreUnavailable
from storage.duckdb_store.files import (
    claim_file,
    connect,
    first_line,
    open_failure,
    release_file,
)

log = logging.getLogger(__name__)


class Gate:
    """Many readers, or one holder alone (a file swap): a reader waits while it is held."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._held = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._held)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._held)
            self._held = True
            self._cond.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()


class DuckDBFile(ABC):
    """One DuckDB file (or `":memory:"`) opened by this process, and its connection."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._file_key: str | None = None
        if self._path != ":memory:":
            self._file_key = claim_file(path)
        try:
            con = connect(self._path)
        except BaseException:
            self._release_file()
            raise
        self._con: duckdb.DuckDBPyConnection | None = con
        self._write_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._gate = Gate()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._generation = 0
        """Bumped when the connection is replaced: cursors of older generations are closed."""
        self._closed = False
        self.reopened = 0
        """How often the connection was replaced after DuckDB invalidated the database."""
        try:
            self._load_state(con)
        except duckdb.Error as exc:
            con.close()
            self._release_file()
            raise StoreUnavailable(open_failure(self._path, exc)) from exc

    @abstractmethod
    def _load_state(self, con: duckdb.DuckDBPyConnection) -> None:
        """Read what the store remembers of the file (at open, and after a reopen)."""

    # -- dropping and reopening ----------------------------------------------------------

    def _drop_connection(self) -> None:
        """Close the connection and every cursor on it (DuckDB frees an invalidated database
        only when nothing refers to it any more). Needs _write_lock."""
        with self._meta_lock:
            self._generation += 1
            cursors, self._cursors = self._cursors, []
            con, self._con = self._con, None
        for cursor in cursors:
            with contextlib.suppress(duckdb.Error):
                cursor.close()
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()

    def _reopen(self, *, swapped: bool = False) -> duckdb.DuckDBPyConnection:
        """A working connection, reconnecting if the last one was dropped. Needs _write_lock.
        Raises StoreUnavailable while the file cannot be opened (e.g. replaying its WAL
        needs disk space that is not there yet). `swapped`: the file was replaced by its
        compacted copy, not lost to an error."""
        if self._con is not None:
            return self._con
        con = connect(self._path)
        try:
            self._load_state(con)
        except duckdb.Error as exc:
            con.close()
            raise StoreUnavailable(
                f"DuckDB store {self._path} reopened but could not be read: {exc}"
            ) from exc
        with self._meta_lock:
            self._con = con
        if not swapped:
            self.reopened += 1
            log.info("DuckDB store %s reopened after a fatal error", self._path)
        return con

    def _invalidated(self, exc: duckdb.Error) -> None:
        """DuckDB said the database must be restarted: drop the connection (the next use
        reopens it)."""
        log.debug("DuckDB store %s invalidated: %s", self._path, first_line(exc))
        with self._write_lock:
            self._drop_connection()

    # -- closing -------------------------------------------------------------------------

    def _release_file(self) -> None:
        if self._file_key is not None:
            release_file(self._file_key)
            self._file_key = None

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._drop_connection()
            self._release_file()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"DuckDB store {self._path} is closed")

    # -- cursors -------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the current connection (reopened if it was dropped)."""
        local = self._local
        cursor: duckdb.DuckDBPyConnection | None = getattr(local, "cursor", None)
        self._check_open()
        if cursor is not None and local.generation == self._generation:
            return cursor
        if self._con is None:
            with self._write_lock:
                self._check_open()
                self._reopen()
        with self._meta_lock:
            self._check_open()
            if self._con is None:
                raise StoreUnavailable(f"DuckDB store {self._path} is being reopened")
            cursor = self._con.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            self._cursors.append(cursor)
            local.cursor, local.generation = cursor, self._generation
        return cursor

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for a query; a database DuckDB invalidated is `StoreUnavailable` (and is
        reopened by the next write or read), not a crash of the caller."""
        generation = self._generation
        try:
            # the gate is left before an error is handled: `_invalidated` takes _write_lock,
            # which a swap waiting for the gate holds
            with self._gate.shared():
                cursor = self._cursor()
                generation = self._generation
                yield cursor
        except duckdb.FatalException as exc:
            self._invalidated(exc)
            raise StoreUnavailable(
                f"DuckDB store {self._path} failed and is being reopened: {first_line(exc)}"
            ) from exc
        except duckdb.ConnectionException as exc:
            if generation == self._generation:
                raise
            # the cursor was closed under this query because the database is being reopened
            raise StoreUnavailable(
                f"DuckDB store {self._path} is being reopened: {first_line(exc)}"
            ) from exc

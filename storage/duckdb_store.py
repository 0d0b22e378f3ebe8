"""The embedded time-series store: one DuckDB file, owned by one process.

Layout: `series(series_id, meter_id, quantity)` names each (meter, quantity) once, and
`readings(series_id, ts, value)` holds the points, with `ts` a naive TIMESTAMP in UTC.

`readings` has no primary key on purpose. Measured on the machine this was written for,
`INSERT OR REPLACE` against a (series_id, ts) key ran at ~0.5 M points/s, falling to
~0.28 M points/s at 5 M rows, while plain appends of Arrow tables run at several M points/s.
Idempotency on (meter, quantity, ts), last write wins, is kept by the store instead:

- it remembers the newest timestamp of every series (loaded at open with one query);
- rows of a batch newer than that are pure appends, the usual case for live meter data;
- rows at or before it (a redelivery, a correction, a backfill) first delete any stored
  point with the same key, in the same transaction as the insert.

That memory is only right while this object is the only writer, so one process owns the
file (DuckDB's file lock refuses a second process; this module refuses a second store on the
same file inside one process, where DuckDB itself would share the database silently).

Each batch is inserted sorted by (series, ts). Rows of one series then lie in runs that
DuckDB's per-segment statistics can skip, which makes a one-series roll-up scan a fraction
of the table instead of all of it.

Threads: one DuckDB connection, one cursor per thread (DuckDB cursors are connections to
the same database and may run concurrently); writes are serialised by a lock, and the
series and newest-timestamp maps are guarded by another, held only briefly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.errors import StoreError, StoreUnavailable
from core.readings import (
    STORABLE_FROM_MS,
    STORABLE_UNTIL_MS,
    Reading,
    ReadingBatch,
    check_storable,
)
from storage.base import Agg, Every, Series, increase_per_bucket
from storage.columns import factorize_pairs, series_time_order

log = logging.getLogger(__name__)

_CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS series (
        series_id INTEGER PRIMARY KEY,
        meter_id VARCHAR NOT NULL,
        quantity VARCHAR NOT NULL,
        UNIQUE (meter_id, quantity)
    )
    """,
    "CREATE TABLE IF NOT EXISTS readings (series_id INTEGER, ts TIMESTAMP, value DOUBLE)",
)

# Aggregates over raw points.
_AGG_SQL: dict[Agg, str] = {
    Agg.MEAN: "avg(value)",
    Agg.MIN: "min(value)",
    Agg.MAX: "max(value)",
    Agg.SUM: "sum(value)",
    Agg.COUNT: "count(value)::DOUBLE",
    Agg.FIRST: "arg_min(value, ts)",
    Agg.LAST: "arg_max(value, ts)",
}

# The same aggregates in two stages: partial results per UTC quarter hour, then combined per
# local day or month. (columns of the first stage, combination in the second stage)
_AGG_TWO_STAGE: dict[Agg, tuple[str, str]] = {
    Agg.MEAN: ("sum(value) AS a, count(value) AS c", "sum(a) / sum(c)"),
    Agg.MIN: ("min(value) AS a", "min(a)"),
    Agg.MAX: ("max(value) AS a", "max(a)"),
    Agg.SUM: ("sum(value) AS a", "sum(a)"),
    Agg.COUNT: ("count(value) AS a", "sum(a)::DOUBLE"),
    Agg.FIRST: ("arg_min(value, ts) AS a, min(ts) AS t", "arg_min(a, t)"),
    Agg.LAST: ("arg_max(value, ts) AS a, max(ts) AS t", "arg_max(a, t)"),
}

_SQL_UNIT = {"s": "seconds", "m": "minutes", "h": "hours"}

# Converting every point to local time (ICU) costs more than the rest of a day roll-up, so
# calendar buckets first aggregate per UTC quarter hour and convert only those. That is exact
# when every local midnight falls on a UTC quarter hour, i.e. when every UTC offset in play is
# a multiple of 15 minutes: true of every IANA zone since 1980 (checked against the tz database
# in 5-day steps, 1980-2040); before that (e.g. Liberia's -0:44:30 until 1972) points are
# converted one by one.
_PRE_BUCKET_MS = 15 * 60_000
_PRE_BUCKET_SINCE_MS = 315_532_800_000  # 1980-01-01T00:00Z

# Stores open in this process, by resolved path: DuckDB hands a second connect() to the same
# file the same database, which would give two writers two different newest-ts maps.
_OPEN_FILES: set[str] = set()
_OPEN_FILES_LOCK = threading.Lock()


class DuckDBStore:
    """A `TimeSeriesStore` in one DuckDB file (or `":memory:"`), owned by one process."""

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._file_key: str | None = None
        if self._path != ":memory:":
            file = Path(path).expanduser().resolve()
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot create the directory of DuckDB store {file}: {exc.strerror or exc}; "
                    "choose a path in a directory epcmon can write"
                ) from exc
            _check_header(file)
            with _OPEN_FILES_LOCK:
                if str(file) in _OPEN_FILES:
                    raise StoreUnavailable(
                        f"DuckDB store {file} is already open in this process; "
                        "share the one DuckDBStore instead of opening the file twice"
                    )
                _OPEN_FILES.add(str(file))
            self._file_key = str(file)
        try:
            con = self._connect()
        except BaseException:
            self._release_file()
            raise
        self._con: duckdb.DuckDBPyConnection | None = con
        self._write_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._generation = 0
        """Bumped when the connection is replaced: cursors of older generations are closed."""
        self._closed = False
        self._time_zones: frozenset[str] | None = None
        # Guarded by _meta_lock; changed only by a writer holding _write_lock.
        self._sid_by_key: dict[tuple[str, str], int] = {}
        self._key_by_sid: dict[int, tuple[str, str]] = {}
        self._max_ts: dict[int, int] = {}
        self._last_value: dict[int, float] = {}
        """The value at `_max_ts` of each series: `latest()` answers from memory."""
        self.reopened = 0
        """How often the connection was replaced after DuckDB invalidated the database."""
        try:
            self._load_state(con)
        except duckdb.Error as exc:
            con.close()
            self._release_file()
            raise StoreUnavailable(_open_failure(self._path, exc)) from exc

    # -- opening and closing -------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            # Never fetch extensions from the network: a foreign file (a SQLite database)
            # would otherwise make DuckDB download a scanner for it.
            con = duckdb.connect(self._path, config=_CONNECT_CONFIG)
        except duckdb.Error as exc:
            raise StoreUnavailable(_open_failure(self._path, exc)) from exc
        try:
            con.execute("SET TimeZone = 'UTC'")
            for statement in _SCHEMA:
                con.execute(statement)
        except duckdb.Error as exc:
            con.close()
            raise StoreUnavailable(_open_failure(self._path, exc)) from exc
        except BaseException:
            con.close()
            raise
        return con

    def _load_state(self, con: duckdb.DuckDBPyConnection) -> None:
        """The series and the newest point of each, from the file (at open, and after a
        reopen: a commit DuckDB reported as failed may have reached the file)."""
        rows = con.execute("SELECT series_id, meter_id, quantity FROM series").fetchall()
        newest = con.execute(
            "SELECT series_id, epoch_ms(max(ts)), arg_max(value, ts) FROM readings GROUP BY series_id"
        ).fetchall()
        with self._meta_lock:
            self._sid_by_key = {(m, q): sid for sid, m, q in rows}
            self._key_by_sid = {sid: (m, q) for sid, m, q in rows}
            self._max_ts = {sid: ts_ms for sid, ts_ms, _v in newest}
            self._last_value = {sid: value for sid, _t, value in newest}

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

    def _reopen(self) -> duckdb.DuckDBPyConnection:
        """A working connection, reconnecting if the last one was dropped. Needs _write_lock.
        Raises StoreUnavailable while the file cannot be opened (e.g. replaying its WAL
        needs disk space that is not there yet)."""
        if self._con is not None:
            return self._con
        con = self._connect()
        try:
            self._load_state(con)
        except duckdb.Error as exc:
            con.close()
            raise StoreUnavailable(
                f"DuckDB store {self._path} reopened but could not be read: {exc}"
            ) from exc
        with self._meta_lock:
            self._con = con
        self.reopened += 1
        log.info("DuckDB store %s reopened after a fatal error", self._path)
        return con

    def _release_file(self) -> None:
        if self._file_key is not None:
            with _OPEN_FILES_LOCK:
                _OPEN_FILES.discard(self._file_key)
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

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"DuckDB store {self._path} is closed")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for a query; a database DuckDB invalidated is `StoreUnavailable` (and is
        reopened by the next write or read), not a crash of the caller."""
        cursor = self._cursor()
        generation = self._generation
        try:
            yield cursor
        except duckdb.FatalException as exc:
            self._invalidated(exc)
            raise StoreUnavailable(
                f"DuckDB store {self._path} failed and is being reopened: {_first_line(exc)}"
            ) from exc
        except duckdb.ConnectionException as exc:
            if generation == self._generation:
                raise
            # the cursor was closed under this query because the database is being reopened
            raise StoreUnavailable(
                f"DuckDB store {self._path} is being reopened: {_first_line(exc)}"
            ) from exc

    def _invalidated(self, exc: duckdb.Error) -> None:
        """DuckDB said the database must be restarted: drop the connection (the next use
        reopens it)."""
        log.debug("DuckDB store %s invalidated: %s", self._path, _first_line(exc))
        with self._write_lock:
            self._drop_connection()

    # -- writing -----------------------------------------------------------------------

    def write(self, batch: ReadingBatch) -> int:
        """Store a batch; return the number of points written (distinct keys in the batch).

        Two readings of the batch with the same key: the later one in the batch wins.
        Raises `BadReadings` (nothing written) for a time outside the storable range, and
        `StoreError` for any failure of the database or its disk (full, I/O error): then
        nothing of the batch is visible, the newest-point memory is unchanged, and the same
        write may be tried again (after DuckDB invalidated the database, the next write
        reopens it first).
        """
        if len(batch) == 0:
            return 0
        check_storable(batch)
        with self._write_lock:
            self._check_open()
            try:
                self._reopen()
            except StoreUnavailable as exc:
                raise StoreUnavailable(
                    f"writing {len(batch)} points to DuckDB store {self._path} failed: {exc}"
                ) from exc
            cursor = self._cursor()
            pairs, pair_keys = factorize_pairs(batch.meter_id, batch.quantity)
            # Only writers change the maps, and this writer holds _write_lock: read freely.
            pair_sid = np.empty(len(pair_keys), dtype=np.int64)
            pair_max = np.empty(len(pair_keys), dtype=np.int64)
            new_series: list[tuple[int, str, str]] = []
            next_sid = max(self._key_by_sid, default=0) + 1
            for i, key in enumerate(pair_keys):
                known = self._sid_by_key.get(key)
                if known is None:
                    known = next_sid
                    next_sid += 1
                    new_series.append((known, key[0], key[1]))
                pair_sid[i] = known
                pair_max[i] = self._max_ts.get(known, np.iinfo(np.int64).min)

            order = series_time_order(pairs, batch.ts_ms)
            pairs = pairs[order]
            sid = pair_sid[pairs]
            ts = np.asarray(batch.ts_ms, dtype=np.int64)[order]
            value = np.asarray(batch.value, dtype=np.float64)[order]
            overlap = ts <= pair_max[pairs]
            try:
                self._transaction(cursor, new_series, sid, ts, value, overlap)
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.FatalException) or _is_invalidated(exc):
                    # The commit may or may not have reached the file: the reopen reloads
                    # the newest points from it, so a retry rewrites rather than duplicates.
                    # Raised as a StoreError: the writer reports it (once per outage).
                    log.debug("DuckDB store %s invalidated: %s", self._path, _first_line(exc))
                    self._drop_connection()
                raise StoreError(
                    f"writing {len(ts)} points to DuckDB store {self._path} failed: "
                    f"{_first_line(exc)}"
                ) from exc

            # Rows are grouped by series, time-ordered: the last row of each run is its newest.
            last = np.flatnonzero(np.append(pairs[1:] != pairs[:-1], True))
            with self._meta_lock:
                for s, meter_id, quantity in new_series:
                    self._sid_by_key[(meter_id, quantity)] = s
                    self._key_by_sid[s] = (meter_id, quantity)
                for s, t, v in zip(
                    sid[last].tolist(), ts[last].tolist(), value[last].tolist(), strict=True
                ):
                    if s not in self._max_ts or t >= self._max_ts[s]:
                        self._max_ts[s] = t
                        self._last_value[s] = v
            return len(ts)

    def _transaction(
        self,
        cursor: duckdb.DuckDBPyConnection,
        new_series: list[tuple[int, str, str]],
        sid: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
        overlap: npt.NDArray[np.bool_],
    ) -> None:
        """One transaction: new series, the points they replace deleted, the points added.
        On any failure it is rolled back if DuckDB still has it (a failed COMMIT has already
        ended it; an invalidated database refuses the ROLLBACK too): the first error is the
        one raised."""
        table = pa.table(
            {
                "series_id": pa.array(sid, type=pa.int32()),
                "ts": pa.array(ts * 1000, type=pa.timestamp("us")),
                "value": pa.array(value, type=pa.float64()),
            }
        )
        # Registered outside the transaction: unregistering inside an aborted one fails
        # and would hide the error that aborted it.
        cursor.register("_epcmon_batch", table)
        try:
            cursor.execute("BEGIN TRANSACTION")
            try:
                if new_series:
                    cursor.executemany(
                        "INSERT INTO series (series_id, meter_id, quantity) VALUES (?, ?, ?)",
                        new_series,
                    )
                if overlap.any():
                    self._delete_existing(cursor, sid[overlap], ts[overlap])
                cursor.execute(
                    "INSERT INTO readings SELECT series_id, ts, value FROM _epcmon_batch"
                )
                cursor.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    cursor.execute("ROLLBACK")
                raise
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.unregister("_epcmon_batch")

    @staticmethod
    def _delete_existing(
        cursor: duckdb.DuckDBPyConnection,
        sid: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
    ) -> None:
        overlap = pa.table(
            {
                "series_id": pa.array(sid, type=pa.int32()),
                "ts": pa.array(ts * 1000, type=pa.timestamp("us")),
            }
        )
        cursor.register("_epcmon_overlap", overlap)
        try:
            # The BETWEEN lets zone maps skip row groups outside the rewritten span.
            cursor.execute(
                f"""
                DELETE FROM readings USING _epcmon_overlap AS o
                WHERE readings.series_id = o.series_id AND readings.ts = o.ts
                  AND readings.ts BETWEEN {_sql_ts(int(ts.min()))} AND {_sql_ts(int(ts.max()))}
                """
            )
        finally:
            with contextlib.suppress(duckdb.Error):  # would hide the DELETE's own error
                cursor.unregister("_epcmon_overlap")

    # -- reading -----------------------------------------------------------------------

    def _series_id(self, meter_id: str, quantity: str) -> int | None:
        with self._meta_lock:
            return self._sid_by_key.get((meter_id, quantity))

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        """Points with start <= ts < end, in time order; unknown series read as empty."""
        self._check_open()
        start_ms, end_ms = _clamp(start_ms, end_ms)
        sid = self._series_id(meter_id, quantity)
        if sid is None or end_ms <= start_ms:
            return Series.empty()
        with self._reading() as cursor:
            result = cursor.sql(
                f"""
                SELECT ts, value FROM readings
                WHERE series_id = {sid} AND ts >= {_sql_ts(start_ms)} AND ts < {_sql_ts(end_ms)}
                ORDER BY ts
                """
            ).to_arrow_table()
        return Series(
            _arrow_ts_ms(result.column("ts")),
            np.asarray(result.column("value").to_numpy(), dtype=np.float64),
        )

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
        """One value per non-empty bucket in [start, end), at the bucket's start (UTC ms).

        Seconds, minutes and hours are multiples of the width since the Unix epoch; days and
        months start at local midnight in `tz`, so a day in a DST change lasts 23 or 25 hours.
        """
        agg = Agg(agg)
        self._check_open()
        if every.is_calendar:
            self._check_time_zone(tz)
        start_ms, end_ms = _clamp(start_ms, end_ms)
        sid = self._series_id(meter_id, quantity)
        if sid is None or end_ms <= start_ms:
            return Series.empty()
        where = f"series_id = {sid} AND ts >= {_sql_ts(start_ms)} AND ts < {_sql_ts(end_ms)}"
        params: dict[str, Any] = {}
        if not every.is_calendar:
            width = f"INTERVAL '{every.count} {_SQL_UNIT[every.unit]}'"
            query = f"""
                SELECT epoch_ms(b) AS t, v FROM (
                    SELECT time_bucket({width}, ts, TIMESTAMP '1970-01-01') AS b,
                           {_AGG_SQL[agg]} AS v
                    FROM readings WHERE {where} GROUP BY b
                ) ORDER BY t
            """
        elif start_ms >= _PRE_BUCKET_SINCE_MS:
            partial, combine = _AGG_TWO_STAGE[agg]
            query = f"""
                WITH pre AS (
                    SELECT time_bucket(INTERVAL '15 minutes', ts, TIMESTAMP '1970-01-01') AS pb,
                           {partial}
                    FROM readings WHERE {where} GROUP BY pb
                )
                SELECT epoch_ms(timezone($tz, b)) AS t, v FROM (
                    SELECT {_local_bucket(every, "pb")} AS b, {combine} AS v FROM pre GROUP BY b
                ) ORDER BY t
            """
            params["tz"] = tz
        else:
            query = f"""
                SELECT epoch_ms(timezone($tz, b)) AS t, v FROM (
                    SELECT {_local_bucket(every, "ts")} AS b, {_AGG_SQL[agg]} AS v
                    FROM readings WHERE {where} GROUP BY b
                ) ORDER BY t
            """
            params["tz"] = tz
        with self._reading() as cursor:
            result = cursor.execute(query, params).fetchnumpy()
        return Series(
            np.asarray(result["t"], dtype=np.int64),
            np.asarray(result["v"], dtype=np.float64),
        )

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        """A counter's increase per bucket (see `storage.base`): the last value of every
        bucket from the one before `start`'s, then their differences."""
        if end_ms <= start_ms:
            return Series.empty()
        first = every.floor(start_ms, tz)
        lasts = self.aggregate(
            meter_id, quantity, every.previous(first, tz), end_ms, every, Agg.LAST, tz
        )
        return increase_per_bucket(lasts, first)

    def _check_time_zone(self, tz: str) -> None:
        zones = self._time_zones
        if zones is None:
            with self._reading() as cursor:
                rows = cursor.execute("SELECT name FROM pg_timezone_names()").fetchall()
            zones = self._time_zones = frozenset(name for (name,) in rows)
        if tz not in zones:
            raise ValueError(
                f"unknown time zone {tz!r} (expected an IANA name like 'Asia/Shanghai')"
            )

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        """The newest point of every (meter, quantity), optionally for some meters only.

        Answered from memory: this store is the only writer of its file, so the newest
        timestamp and value it saw written (or loaded at open) are the newest stored."""
        self._check_open()
        wanted = None if meter_ids is None else set(meter_ids)
        with self._meta_lock:
            readings = [
                Reading(key[0], key[1], self._max_ts[sid], self._last_value[sid])
                for sid, key in self._key_by_sid.items()
                if (wanted is None or key[0] in wanted) and sid in self._max_ts
            ]
        readings.sort(key=lambda r: (r.meter_id, r.quantity))
        return readings

    def series_keys(self) -> list[tuple[str, str]]:
        """Every (meter, quantity) the store holds, sorted."""
        self._check_open()
        with self._meta_lock:
            return sorted(self._sid_by_key)


# -- pure helpers ------------------------------------------------------------------------

_DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file."""

_WHAT_TO_DO = (
    "restore it from a backup, or move it away and let epcmon create an empty store "
    "(`epcmon store copy` can fill it from another store)"
)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _is_invalidated(exc: duckdb.Error) -> bool:
    return "invalidated" in str(exc)


def _check_header(file: Path) -> None:
    """Refuse a file that is not a DuckDB database before DuckDB sees it (DuckDB would try
    to load a reader extension for a SQLite file, or fail with a message that hides the
    file's name)."""
    if file.is_dir():
        raise StoreUnavailable(
            f"DuckDB store {file} is a directory; point [storage] path at a file"
        )
    try:
        with file.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return  # a new store
    except OSError as exc:
        raise StoreUnavailable(f"cannot read DuckDB store {file}: {exc.strerror or exc}") from exc
    if head[8:12] == _DUCKDB_MAGIC:
        return
    if not head:
        what = "is empty (0 bytes: a store whose creation was interrupted?)"
    elif head.startswith(b"SQLite format 3"):
        what = "is a SQLite database, not a DuckDB store"
    else:
        what = "is not a DuckDB database"
    raise StoreUnavailable(f"DuckDB store {file} {what}; {_WHAT_TO_DO}")


def _open_failure(path: str, exc: duckdb.Error) -> str:
    """One line saying why DuckDB could not open `path`, and what to do."""
    said = _first_line(exc)
    if "could not set lock" in said.lower() or "conflicting lock" in said.lower():
        return (
            f"cannot open DuckDB store {path}: the file is locked; another epcmon process "
            f"probably owns it ({said})"
        )
    if isinstance(exc, duckdb.IOException) and "No space left" in said:
        return f"cannot open DuckDB store {path}: its disk is full ({said})"
    return f"DuckDB store {path} is corrupt or unreadable ({said}); {_WHAT_TO_DO}"


def _clamp(start_ms: int, end_ms: int) -> tuple[int, int]:
    """A read range cut to the storable range: nothing lies outside it, and a bound far
    outside it would not convert to a TIMESTAMP."""
    return max(int(start_ms), STORABLE_FROM_MS), min(int(end_ms), STORABLE_UNTIL_MS)


def _sql_ts(ms: int) -> str:
    """A TIMESTAMP literal from epoch ms; DuckDB folds it into a constant for zone maps."""
    return f"epoch_ms({int(ms)}::BIGINT)"


def _local_bucket(every: Every, column: str) -> str:
    """SQL for the local-time start of the day/month bucket holding UTC TIMESTAMP `column`."""
    local = f"timezone($tz, timezone('UTC', {column}))"
    if every.unit == "mo":
        return f"date_trunc('month', {local})"
    return f"time_bucket(INTERVAL '{every.count} days', {local}, TIMESTAMP '1970-01-01')"


def _arrow_ts_ms(column: Any) -> npt.NDArray[np.int64]:
    """Epoch ms from an Arrow timestamp[us] column (zero-copy when it is one chunk)."""
    micros = np.asarray(column.to_numpy()).view(np.int64)
    return micros // 1000

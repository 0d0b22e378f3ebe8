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

import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.errors import StoreError, StoreUnavailable
from core.readings import Reading, ReadingBatch
from storage.base import Agg, Every, Series, increase_per_bucket
from storage.columns import factorize_pairs, series_time_order

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
            file.parent.mkdir(parents=True, exist_ok=True)
            with _OPEN_FILES_LOCK:
                if str(file) in _OPEN_FILES:
                    raise StoreUnavailable(
                        f"DuckDB store {file} is already open in this process; "
                        "share the one DuckDBStore instead of opening the file twice"
                    )
                _OPEN_FILES.add(str(file))
            self._file_key = str(file)
        try:
            self._con = self._connect()
        except BaseException:
            self._release_file()
            raise
        self._write_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._closed = False
        self._time_zones: frozenset[str] | None = None
        # Guarded by _meta_lock; changed only by a writer holding _write_lock.
        self._sid_by_key: dict[tuple[str, str], int] = {}
        self._key_by_sid: dict[int, tuple[str, str]] = {}
        self._max_ts: dict[int, int] = {}
        self._last_value: dict[int, float] = {}
        """The value at `_max_ts` of each series: `latest()` answers from memory."""
        self._load_state()

    # -- opening and closing -------------------------------------------------------------

    def _connect(self) -> duckdb.DuckDBPyConnection:
        try:
            con = duckdb.connect(self._path)
        except duckdb.IOException as exc:
            raise StoreUnavailable(
                f"cannot open DuckDB store {self._path}: the file is locked or unreadable; "
                f"another epcmon process probably owns it ({exc})"
            ) from exc
        try:
            con.execute("SET TimeZone = 'UTC'")
            for statement in _SCHEMA:
                con.execute(statement)
        except BaseException:
            con.close()
            raise
        return con

    def _load_state(self) -> None:
        rows = self._con.execute("SELECT series_id, meter_id, quantity FROM series").fetchall()
        for sid, meter_id, quantity in rows:
            self._sid_by_key[(meter_id, quantity)] = sid
            self._key_by_sid[sid] = (meter_id, quantity)
        newest = self._con.execute(
            "SELECT series_id, epoch_ms(max(ts)), arg_max(value, ts) FROM readings GROUP BY series_id"
        ).fetchall()
        self._max_ts = {sid: ts_ms for sid, ts_ms, _v in newest}
        self._last_value = {sid: value for sid, _t, value in newest}

    def _release_file(self) -> None:
        if self._file_key is not None:
            with _OPEN_FILES_LOCK:
                _OPEN_FILES.discard(self._file_key)
            self._file_key = None

    def close(self) -> None:
        with self._write_lock, self._meta_lock:
            if self._closed:
                return
            self._closed = True
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
            self._con.close()
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
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._meta_lock:
                self._check_open()
                cursor = self._con.cursor()
                cursor.execute("SET TimeZone = 'UTC'")
                self._cursors.append(cursor)
            self._local.cursor = cursor
        else:
            self._check_open()
        return cursor

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"DuckDB store {self._path} is closed")

    # -- writing -----------------------------------------------------------------------

    def write(self, batch: ReadingBatch) -> int:
        """Store a batch; return the number of points written (distinct keys in the batch).

        Two readings of the batch with the same key: the later one in the batch wins.
        """
        if len(batch) == 0:
            return 0
        with self._write_lock:
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

            table = pa.table(
                {
                    "series_id": pa.array(sid, type=pa.int32()),
                    "ts": pa.array(ts * 1000, type=pa.timestamp("us")),
                    "value": pa.array(value, type=pa.float64()),
                }
            )
            cursor.execute("BEGIN TRANSACTION")
            try:
                if new_series:
                    cursor.executemany(
                        "INSERT INTO series (series_id, meter_id, quantity) VALUES (?, ?, ?)",
                        new_series,
                    )
                if overlap.any():
                    self._delete_existing(cursor, sid[overlap], ts[overlap])
                cursor.register("_epcmon_batch", table)
                try:
                    cursor.execute(
                        "INSERT INTO readings SELECT series_id, ts, value FROM _epcmon_batch"
                    )
                finally:
                    cursor.unregister("_epcmon_batch")
                cursor.execute("COMMIT")
            except duckdb.Error as exc:
                cursor.execute("ROLLBACK")
                raise StoreError(
                    f"writing {len(ts)} points to DuckDB store {self._path} failed: {exc}"
                ) from exc
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

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
            cursor.unregister("_epcmon_overlap")

    # -- reading -----------------------------------------------------------------------

    def _series_id(self, meter_id: str, quantity: str) -> int | None:
        with self._meta_lock:
            return self._sid_by_key.get((meter_id, quantity))

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        """Points with start <= ts < end, in time order; unknown series read as empty."""
        cursor = self._cursor()
        sid = self._series_id(meter_id, quantity)
        if sid is None or end_ms <= start_ms:
            return Series.empty()
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
        cursor = self._cursor()
        if every.is_calendar:
            self._check_time_zone(cursor, tz)
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

    def _check_time_zone(self, cursor: duckdb.DuckDBPyConnection, tz: str) -> None:
        zones = self._time_zones
        if zones is None:
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

"""The embedded time-series store: `DuckDBStore`, one DuckDB file owned by one process.

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
file (DuckDB's file lock refuses a second process; `storage.duckdb_store.files` refuses a
second store on the same file inside one process, where DuckDB itself would share the
database silently).

Each batch is inserted sorted by (series, ts). Rows of one series then lie in runs that
DuckDB's per-segment statistics can skip, which makes a one-series roll-up scan a fraction
of the table instead of all of it.

Threads: see `storage.duckdb_store.connection`; the series and newest-timestamp maps are
changed only by a writer holding `_write_lock`, under `_meta_lock`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from core.errors import StoreError, StoreUnavailable
from core.readings import Reading, ReadingBatch, check_storable
from storage.base import Agg, Every, Series, increase_per_bucket
from storage.columns import factorize_pairs, group_by_series
from storage.duckdb_store import bulk, compact, retention
from storage.duckdb_store.compact import Compacted
from storage.duckdb_store.connection import DuckDBFile
from storage.duckdb_store.files import first_line, is_invalidated
from storage.duckdb_store.rollups import Retired, retires, rolled_aggregate_query
from storage.duckdb_store.sql import aggregate_query, arrow_ts_ms, clamp, sql_ts

log = logging.getLogger(__name__)


class DuckDBStore(DuckDBFile):
    """A `TimeSeriesStore` in one DuckDB file (or `":memory:"`), owned by one process."""

    def __init__(self, path: str | Path) -> None:
        self._time_zones: frozenset[str] | None = None
        # Guarded by _meta_lock; changed only by a writer holding _write_lock.
        self._sid_by_key: dict[tuple[str, str], int] = {}
        self._key_by_sid: dict[int, tuple[str, str]] = {}
        self._max_ts: dict[int, int] = {}
        self._last_value: dict[int, float] = {}
        """The value at `_max_ts` of each series: `latest()` answers from memory."""
        self._rollup_tz: str | None = None
        self._raw_from: int | None = None
        """Raw points of retired series before this (UTC ms) are gone: reads there answer
        from the roll-ups (see `storage.duckdb_store.rollups`)."""
        self._journal: list[pa.Table] | None = None
        """Batches written while a compaction copies the file, to replay into the copy."""
        self._maintenance_lock = threading.Lock()
        """One retention or compaction at a time."""
        super().__init__(path)

    def _load_state(self, con: duckdb.DuckDBPyConnection) -> None:
        """The series and the newest point of each, from the file (at open, and after a
        reopen: a commit DuckDB reported as failed may have reached the file)."""
        rows = con.execute("SELECT series_id, meter_id, quantity FROM series").fetchall()
        # the newest point of a series whose raw points are all retired is its roll-ups' last
        newest = con.execute(
            """
            SELECT series_id, epoch_ms(max(ts)), arg_max(value, ts) FROM (
                SELECT series_id, ts, value FROM readings
                UNION ALL SELECT series_id, last_ts, last_v FROM rollups
            ) GROUP BY series_id
            """
        ).fetchall()
        retained = con.execute("SELECT tz, epoch_ms(raw_from) FROM retention").fetchall()
        with self._meta_lock:
            self._rollup_tz, self._raw_from = retained[0] if retained else (None, None)
            self._sid_by_key = {(m, q): sid for sid, m, q in rows}
            self._key_by_sid = {sid: (m, q) for sid, m, q in rows}
            self._max_ts = {sid: ts_ms for sid, ts_ms, _v in newest}
            self._last_value = {sid: value for sid, _t, value in newest}

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
            pair_sid = np.empty(len(pair_keys), dtype=np.int32)
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

            # Grouped by series, time-ordered: each series is one run of rows.
            order, pairs, ts = group_by_series(pairs, np.asarray(batch.ts_ms, dtype=np.int64))
            value = np.asarray(batch.value, dtype=np.float64)
            if order is not None:
                value = value[order]
            last = np.flatnonzero(np.append(pairs[1:] != pairs[:-1], True))
            run_pairs = pairs[last]
            runs = np.diff(last, prepend=-1)
            sid = np.repeat(pair_sid[run_pairs], runs)
            # A run overlaps what is stored only if its first (oldest) row does.
            first_ts = ts[last - runs + 1]
            if bool((first_ts <= pair_max[run_pairs]).any()):
                overlap = ts <= pair_max[pairs]
            else:
                overlap = None  # the usual batch: newer than everything stored, pure appends
            try:
                self._transaction(cursor, new_series, sid, ts, value, overlap)
            except duckdb.Error as exc:
                if isinstance(exc, duckdb.FatalException) or is_invalidated(exc):
                    # The commit may or may not have reached the file: the reopen reloads
                    # the newest points from it, so a retry rewrites rather than duplicates.
                    # Raised as a StoreError: the writer reports it (once per outage).
                    log.debug("DuckDB store %s invalidated: %s", self._path, first_line(exc))
                    self._drop_connection()
                raise StoreError(
                    f"writing {len(ts)} points to DuckDB store {self._path} failed: "
                    f"{first_line(exc)}"
                ) from exc
            if self._journal is not None:  # copies: the batch's arrays are the caller's
                self._journal.append(compact.journal_entry(sid, ts.copy(), value.copy()))

            # The last row of each run is its series' newest.
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
        sid: npt.NDArray[np.int32],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
        overlap: npt.NDArray[np.bool_] | None,
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
        if not new_series and overlap is None:
            # The usual batch, newer than everything stored: one statement, its own
            # transaction (~10 % less than BEGIN, a registered view, INSERT and COMMIT).
            cursor.from_arrow(table).insert_into("readings")
            return
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
                if overlap is not None and overlap.any():
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
        sid: npt.NDArray[np.int32],
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
                  AND readings.ts BETWEEN {sql_ts(int(ts.min()))} AND {sql_ts(int(ts.max()))}
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
        start_ms, end_ms = clamp(start_ms, end_ms)
        sid = self._series_id(meter_id, quantity)
        if sid is None or end_ms <= start_ms:
            return Series.empty()
        with self._reading() as cursor:
            result = cursor.sql(
                f"""
                SELECT ts, value FROM readings
                WHERE series_id = {sid} AND ts >= {sql_ts(start_ms)} AND ts < {sql_ts(end_ms)}
                ORDER BY ts
                """
            ).to_arrow_table()
        return Series(
            arrow_ts_ms(result.column("ts")),
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
        start_ms, end_ms = clamp(start_ms, end_ms)
        sid = self._series_id(meter_id, quantity)
        if sid is None or end_ms <= start_ms:
            return Series.empty()
        raw_from = self._raw_from
        if raw_from is not None and start_ms < raw_from and retires(quantity):
            query = rolled_aggregate_query(sid, start_ms, end_ms, raw_from, every, agg)
            params = {"tz": tz} if every.is_calendar else {}
        else:
            query, params = aggregate_query(sid, start_ms, end_ms, every, agg, tz)
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

    # -- bulk reads (`epcmon store copy`) ----------------------------------------------

    def census(
        self, start_ms: int, end_ms: int, after: Mapping[tuple[str, str], int]
    ) -> dict[tuple[str, str], int]:
        """Points per series in [start, end) newer than the series' mark in `after`."""
        return bulk.census(self, start_ms, end_ms, after)

    def read_after(
        self,
        left: Mapping[tuple[str, str], int],
        after: Mapping[tuple[str, str], int],
        start_ms: int,
        end_ms: int,
        rows: int,
    ) -> Iterator[ReadingBatch]:
        """Those points (`left`: from `census`) in batches of about `rows`, grouped by
        series in the order of `left`, time-ordered within each."""
        return bulk.read_after(self, left, after, start_ms, end_ms, rows)

    # -- retention and compaction -----------------------------------------------------

    def retire(self, boundary_ms: int, tz: str) -> Retired:
        """Fold the raw points of non-counter series before the local midnight (in `tz`) at
        or before `boundary_ms` into hourly roll-ups and delete them; reads of that period
        answer from the roll-ups from then on. The boundary never moves back; the roll-ups
        stay in the first `tz` (another one is a `StoreError`)."""
        self._check_open()
        with self._maintenance_lock:
            return retention.retire(self, boundary_ms, tz)

    def free_fraction(self) -> float:
        """The fraction of the file's blocks that are free (deleted or rewritten data DuckDB
        keeps, and does not give back to the disk by itself), after a checkpoint."""
        if self._path == ":memory:":
            return 0.0
        return compact.free_fraction(self)

    def compact(
        self,
        min_free_fraction: float = 0.0,
        disk_free: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free,
    ) -> Compacted | None:
        """Copy the file into a fresh one and swap them, when at least `min_free_fraction` of
        it is free; None when skipped (in memory, not worth it, or no room on the disk for
        the copy). Writes and reads carry on meanwhile (see `storage.duckdb_store.compact`)."""
        self._check_open()
        if self._path == ":memory:":
            return None
        with self._maintenance_lock:
            return compact.compact(self, min_free_fraction, disk_free)

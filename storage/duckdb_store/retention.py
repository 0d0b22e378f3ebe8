"""One retention pass over a DuckDB store: raw points of retired series before a local
midnight folded into roll-ups (`storage.duckdb_store.rollups`) and deleted, in one
transaction under the store's write lock."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from core.errors import StoreError
from storage.duckdb_store.files import first_line
from storage.duckdb_store.rollups import (
    MERGE_ROLLUPS,
    Retired,
    fold_query,
    local_midnight_at_or_before,
    retires,
    ts_sql,
)

if TYPE_CHECKING:
    from storage.duckdb_store.store import DuckDBStore

log = logging.getLogger(__name__)


def retire(store: DuckDBStore, boundary_ms: int, tz: str) -> Retired:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise StoreError(
            f"retention of DuckDB store {store._path}: unknown time zone {tz!r}"
        ) from exc
    if store._rollup_tz is not None and store._rollup_tz != tz:
        raise StoreError(
            f"DuckDB store {store._path} keeps its roll-ups in {store._rollup_tz} local days; "
            f"it cannot retire raw points by {tz} days (set the site's timezone back to "
            f"{store._rollup_tz}, or copy the store into a new one with `epcmon store copy`)"
        )
    raw_from = local_midnight_at_or_before(boundary_ms, tz)
    if store._raw_from is not None:
        raw_from = max(raw_from, store._raw_from)  # never moves back: the points are gone
    with store._write_lock:
        store._check_open()
        store._reopen()
        with store._meta_lock:
            sids = sorted(sid for sid, (_m, q) in store._key_by_sid.items() if retires(q))
        cursor = store._cursor()
        try:
            points, series = _fold(cursor, sids, raw_from, tz)
        except duckdb.Error as exc:
            raise StoreError(
                f"retention of DuckDB store {store._path} failed: {first_line(exc)}"
            ) from exc
        with store._meta_lock:
            store._rollup_tz, store._raw_from = tz, raw_from
    if points:
        log.info(
            "DuckDB store %s: %d raw points of %d series before %s rolled up and deleted",
            store._path, points, series, raw_from,
        )  # fmt: skip
    return Retired(raw_from, points, series)


def _fold(
    cursor: duckdb.DuckDBPyConnection, sids: list[int], raw_from: int, tz: str
) -> tuple[int, int]:
    cursor.execute("BEGIN TRANSACTION")
    try:
        points = series = 0
        if sids:
            cursor.execute(
                f"CREATE TEMP TABLE _epcmon_new AS {fold_query(sids, raw_from)}", {"tz": tz}
            )
            row = cursor.execute(
                "SELECT coalesce(sum(n), 0), count(DISTINCT series_id) FROM _epcmon_new"
            ).fetchall()
            points, series = int(row[0][0]), int(row[0][1])
            if points:
                cursor.execute(f"CREATE TEMP TABLE _epcmon_merged AS {MERGE_ROLLUPS}")
                cursor.execute(
                    "DELETE FROM rollups AS r USING _epcmon_new AS n "
                    "WHERE r.series_id = n.series_id AND r.ts = n.ts"
                )
                cursor.execute(
                    "INSERT INTO rollups SELECT * FROM _epcmon_merged ORDER BY series_id, ts"
                )
                in_sids = ", ".join(str(s) for s in sids)
                cursor.execute(
                    f"DELETE FROM readings WHERE series_id IN ({in_sids}) "
                    f"AND ts < {ts_sql(raw_from)}"
                )
        cursor.execute("DELETE FROM retention")
        cursor.execute(f"INSERT INTO retention VALUES ($tz, {ts_sql(raw_from)})", {"tz": tz})
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise
    finally:
        for table in ("_epcmon_new", "_epcmon_merged"):
            with contextlib.suppress(duckdb.Error):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
    return points, series

"""Bulk reads of a DuckDB store for `epcmon store copy`: how many points are left to copy per
series (one query), and those points in large chunks ordered by series and time.

Both take `after`, the newest timestamp already copied of each series (a copy's checkpoint),
as an Arrow table joined in the query, so a resume reads only what is left: a copy with
nothing left costs one aggregate query, not a scan per series and month. Points are returned
as columns (no Python object per point): the meter and quantity columns repeat one string
object per series, which the destination's column encoding compares by identity.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

from core.readings import ReadingBatch
from storage.duckdb_store.sql import arrow_ts_ms, clamp, sql_ts

if TYPE_CHECKING:
    from storage.duckdb_store.store import DuckDBStore

Key = tuple[str, str]

GROUP_POINTS = 4_000_000
"""Points read (and sorted by DuckDB) per query at most, unless one series holds more: the
memory a chunked read holds at once."""


def _marks(store: DuckDBStore, after: Mapping[Key, int]) -> pa.Table:
    """(series_id, after) of the series with a checkpoint; newest copied point, as a TIMESTAMP."""
    sids, marks = [], []
    for key, ts_ms in after.items():
        sid = store._series_id(*key)
        if sid is not None:
            sids.append(sid)
            marks.append(int(ts_ms) * 1000)
    return pa.table(
        {
            "series_id": pa.array(sids, type=pa.int32()),
            "after": pa.array(marks, type=pa.timestamp("us")),
        }
    )


def census(
    store: DuckDBStore, start_ms: int, end_ms: int, after: Mapping[Key, int]
) -> dict[Key, int]:
    """Points left per series in [start, end) after each series' mark (series with none
    left are absent)."""
    store._check_open()
    start_ms, end_ms = clamp(start_ms, end_ms)
    if end_ms <= start_ms:
        return {}
    marks = _marks(store, after)
    query = f"""
        SELECT r.series_id, count(*)
        FROM readings AS r LEFT JOIN _epcmon_marks AS m ON r.series_id = m.series_id
        WHERE r.ts >= {sql_ts(start_ms)} AND r.ts < {sql_ts(end_ms)}
          AND (m.after IS NULL OR r.ts > m.after)
        GROUP BY r.series_id
    """
    with store._reading() as cursor:
        cursor.register("_epcmon_marks", marks)
        try:
            rows = cursor.execute(query).fetchall()
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.unregister("_epcmon_marks")
    with store._meta_lock:
        keys = dict(store._key_by_sid)
    return {keys[sid]: int(n) for sid, n in rows if sid in keys}


def read_after(
    store: DuckDBStore,
    left: Mapping[Key, int],
    after: Mapping[Key, int],
    start_ms: int,
    end_ms: int,
    rows: int,
) -> Iterator[ReadingBatch]:
    """The points of the series of `left` (points left per series, from `census`) in
    [start, end) after each series' mark, in batches of about `rows` points, grouped by
    series (in the order of `left`) and in time order within each."""
    start_ms, end_ms = clamp(start_ms, end_ms)
    group: list[Key] = []
    points = 0
    for key, n in left.items():
        if group and points + n > max(GROUP_POINTS, rows):
            yield from _read_group(store, group, after, start_ms, end_ms, rows)
            group, points = [], 0
        group.append(key)
        points += n
    if group:
        yield from _read_group(store, group, after, start_ms, end_ms, rows)


def _read_group(
    store: DuckDBStore,
    group: list[Key],
    after: Mapping[Key, int],
    start_ms: int,
    end_ms: int,
    rows: int,
) -> Iterator[ReadingBatch]:
    sids = {store._series_id(*key): key for key in group}
    sids.pop(None, None)
    if not sids:
        return
    order = {sid: index for index, sid in enumerate(sids)}
    wanted = pa.table(
        {
            "series_id": pa.array(list(sids), type=pa.int32()),
            "rank": pa.array(list(order.values()), type=pa.int32()),
        }
    )
    marks = _marks(store, {key: after[key] for key in group if key in after})
    query = f"""
        SELECT w.rank, r.ts, r.value
        FROM readings AS r
        JOIN _epcmon_wanted AS w ON r.series_id = w.series_id
        LEFT JOIN _epcmon_marks AS m ON r.series_id = m.series_id
        WHERE r.ts >= {sql_ts(start_ms)} AND r.ts < {sql_ts(end_ms)}
          AND (m.after IS NULL OR r.ts > m.after)
        ORDER BY w.rank, r.ts
    """
    with store._reading() as cursor:
        cursor.register("_epcmon_marks", marks)
        cursor.register("_epcmon_wanted", wanted)
        try:
            table = cursor.sql(query).to_arrow_table()
        finally:
            for name in ("_epcmon_marks", "_epcmon_wanted"):
                with contextlib.suppress(duckdb.Error):
                    cursor.unregister(name)
    rank = np.asarray(table.column("rank").to_numpy(), dtype=np.int64)
    ts = arrow_ts_ms(table.column("ts"))
    value = np.asarray(table.column("value").to_numpy(), dtype=np.float64)
    keys = list(sids.values())
    meters = np.empty(len(keys), dtype=object)
    quantities = np.empty(len(keys), dtype=object)
    for index, (meter, quantity) in enumerate(keys):
        meters[index], quantities[index] = meter, quantity
    for first in range(0, len(ts), rows):
        part = rank[first : first + rows]
        yield ReadingBatch(
            meter_id=meters[part],
            quantity=quantities[part],
            ts_ms=ts[first : first + rows],
            value=value[first : first + rows],
        )

"""Bulk reads of an InfluxDB store for `epcmon store copy`: the points left to copy per series
(one request of one `count()` statement per series), and those points series by series in
pages of `rows`, asked for as CSV (`Accept: text/csv`, InfluxDB 1.x and the v1 API of 2.x)
and parsed by Arrow: no Python object per point, where the JSON answers of `read_raw` make
several.

Pages follow the time of the last point read (`time > t ORDER BY time LIMIT rows`), so a
server's `max-row-limit` cutting a page short only makes it smaller: a series is read until
the census' count of it is reached or a page comes back empty.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from core.errors import StoreError
from core.readings import ReadingBatch
from storage.influx import influxql as q
from storage.influx.schema import FIELD

if TYPE_CHECKING:
    from storage.influx.store import InfluxStore

Key = tuple[str, str]

STATEMENTS_PER_REQUEST = 200
"""`count()` statements per census request: they travel in the URL (~150 bytes each)."""


def _window(key: Key, start_ms: int, end_ms: int, after: Mapping[Key, int]) -> str:
    meter_id, quantity = key
    where = q.where(meter_id, start_ms, end_ms)
    if key in after:
        where += f" AND time > {q.clamp_ms(after[key])}ms"
    return f"FROM {q.ident(quantity)} WHERE {where}"


def census(
    store: InfluxStore, start_ms: int, end_ms: int, after: Mapping[Key, int]
) -> dict[Key, int]:
    """Points per series in [start, end) after each series' mark (series with none left are
    absent)."""
    keys = store.series_keys()
    if not keys or end_ms <= start_ms:
        return {}
    left = {}
    for first in range(0, len(keys), STATEMENTS_PER_REQUEST):
        some = keys[first : first + STATEMENTS_PER_REQUEST]
        statements = [
            f"SELECT count({q.ident(FIELD)}) {_window(key, start_ms, end_ms, after)}"
            for key in some
        ]
        for key, tables in zip(some, store._tables(*statements), strict=True):
            n = sum(int(row[1] or 0) for table in tables for row in table.values)
            if n:
                left[key] = n
    return left


def read_after(
    store: InfluxStore,
    left: Mapping[Key, int],
    after: Mapping[Key, int],
    start_ms: int,
    end_ms: int,
    rows: int,
) -> Iterator[ReadingBatch]:
    """The points of the series of `left` in [start, end) after each series' mark, series by
    series in the order of `left`, in time order, in batches of at most `rows`."""
    for key, expected in left.items():
        marks = dict(after)
        read = 0
        while read < expected:
            statement = (
                f"SELECT {q.ident(FIELD)} {_window(key, start_ms, end_ms, marks)} "
                f"ORDER BY time ASC LIMIT {int(rows)}"
            )
            ts, value = _points(store._query.query_csv(statement))
            if not len(ts):
                break
            marks[key] = int(ts[-1])
            read += len(ts)
            yield ReadingBatch.for_series(key[0], key[1], ts, value)


def _points(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(time, value) columns of a CSV answer (`name,tags,time,value`), one point per time:
    a meter whose tags changed has two series in a measurement, merged by time here."""
    if not body.strip():
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    try:
        table = pa_csv.read_csv(
            io.BytesIO(body),
            convert_options=pa_csv.ConvertOptions(
                include_columns=["time", FIELD],
                column_types={"time": pa.int64(), FIELD: pa.float64()},
            ),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise StoreError(f"InfluxDB answered a CSV query with {body[:200]!r}: {exc}") from exc
    ts = np.asarray(table.column("time").to_numpy(), dtype=np.int64)
    value = np.asarray(table.column(FIELD).to_numpy(), dtype=np.float64)
    keep = np.append(ts[1:] != ts[:-1], True)
    if not keep.all():
        ts, value = ts[keep], value[keep]
    return ts, value

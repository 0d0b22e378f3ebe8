"""Retention of the DuckDB store: the roll-ups that outlive retired raw points, and the reads
that answer from them. Pure: SQL strings, times and quantity names in, strings out.

What is retired: raw points of quantities that are not counters (power, voltages,
temperatures, ...) older than `raw_from`, a local midnight of the site. Counters keep every raw
point: the M&V derives consumption from them, and a counter's last value per bucket is all a
roll-up of it would keep anyway.

A roll-up row covers one *piece*: a UTC hour, split in two where a local midnight of the
store's time zone falls inside it (zones with half-hour offsets, e.g. Asia/Kolkata). A piece
therefore lies inside one bucket of every width a read asks for: N hours since the epoch,
local days and months (in the store's zone). Each row keeps count, sum, min, max, first and
last (with their times), from which every `Agg` of any coarser bucket is exact: hourly and
daily figures read the same after retention as before (sums and means up to the order of
floating-point additions). Finer buckets (minutes) over a retired period come back one per
piece, at the piece's start.

A point written into a retired period after its retirement (a late backfill) is kept raw and
ignored by reads until the next retention pass folds it into its piece's roll-up (a
correction of a retired point is folded in as one more point: the old one is gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from core.quantities import QUANTITIES
from storage.base import Agg, Every

_SQL_UNIT = {"s": "seconds", "m": "minutes", "h": "hours"}


@dataclass(frozen=True)
class Retired:
    """What one retention pass did."""

    raw_from_ms: int
    """Raw points of retired series before this local midnight are gone (UTC ms)."""
    points: int
    """Raw points folded into roll-ups and deleted."""
    series: int
    """Series they belonged to."""


def retires(quantity: str) -> bool:
    """Whether raw points of `quantity` are retired: known quantities that are not counters
    (an unknown one keeps its points: it might be a counter)."""
    spec = QUANTITIES.get(quantity)
    return spec is not None and not spec.counter


def local_midnight_at_or_before(ms: int, tz: str) -> int:
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(ms / 1000, zone).date()
    return int(datetime.combine(day, time(), zone).astimezone(UTC).timestamp() * 1000)


def ts_sql(ms: int) -> str:
    return f"epoch_ms({int(ms)}::BIGINT)"


def _utc_of_local_midnight(column: str) -> str:
    """The UTC TIMESTAMP of the local midnight (in $tz) starting the day of UTC `column`."""
    local = f"timezone($tz, timezone('UTC', {column}))"
    return f"timezone('UTC', timezone($tz, date_trunc('day', {local})))"


def fold_query(sids: list[int], raw_from_ms: int) -> str:
    """Roll-up rows of the raw points of `sids` before `raw_from` (parameter $tz): one per
    series and piece. Each point's piece is found through its quarter hour (every local
    midnight since 1980 falls on a UTC quarter hour), so only quarter hours meet ICU. Sums
    are `fsum`, as in raw reads (`storage.duckdb_store.sql`): an hour's mean reads the same
    from its roll-up as from its points, to the last bit (the M&V's inputs digest holds)."""
    where = f"series_id IN ({', '.join(str(s) for s in sids)}) AND ts < {ts_sql(raw_from_ms)}"
    return f"""
        WITH pts AS (
            SELECT series_id, ts, value,
                   time_bucket(INTERVAL '15 minutes', ts, TIMESTAMP '1970-01-01') AS qb
            FROM readings WHERE {where}
        ),
        pieces AS (
            SELECT qb, greatest(
                time_bucket(INTERVAL '1 hour', qb, TIMESTAMP '1970-01-01'),
                {_utc_of_local_midnight("qb")}
            ) AS piece
            FROM (SELECT DISTINCT qb FROM pts)
        )
        SELECT series_id, piece AS ts, count(value) AS n, fsum(value) AS total,
               min(value) AS lo, max(value) AS hi,
               arg_min(value, ts) AS first_v, min(ts) AS first_ts,
               arg_max(value, ts) AS last_v, max(ts) AS last_ts
        FROM pts JOIN pieces USING (qb)
        GROUP BY series_id, piece
    """


MERGE_ROLLUPS = """
    SELECT series_id, ts, sum(n) AS n, fsum(total) AS total, min(lo) AS lo, max(hi) AS hi,
           arg_min(first_v, first_ts) AS first_v, min(first_ts) AS first_ts,
           arg_max(last_v, last_ts) AS last_v, max(last_ts) AS last_ts
    FROM (
        SELECT r.* FROM rollups AS r SEMI JOIN _epcmon_new AS n USING (series_id, ts)
        UNION ALL
        SELECT * FROM _epcmon_new
    )
    GROUP BY series_id, ts
"""
"""Rows of `_epcmon_new` combined with the stored rows of the same pieces (late points)."""

_COMBINE: dict[Agg, str] = {
    Agg.MEAN: "fsum(total) / sum(n)",
    Agg.MIN: "min(lo)",
    Agg.MAX: "max(hi)",
    Agg.SUM: "fsum(total)",
    Agg.COUNT: "sum(n)::DOUBLE",
    Agg.FIRST: "arg_min(first_v, first_ts)",
    Agg.LAST: "arg_max(last_v, last_ts)",
}


def _bucket(every: Every, column: str) -> str:
    if not every.is_calendar:
        width = f"INTERVAL '{every.count} {_SQL_UNIT[every.unit]}'"
        return f"time_bucket({width}, {column}, TIMESTAMP '1970-01-01')"
    local = f"timezone($tz, timezone('UTC', {column}))"
    if every.unit == "mo":
        return f"date_trunc('month', {local})"
    return f"time_bucket(INTERVAL '{every.count} days', {local}, TIMESTAMP '1970-01-01')"


def rolled_aggregate_query(
    sid: int, start_ms: int, end_ms: int, raw_from_ms: int, every: Every, agg: Agg
) -> str:
    """One value of `agg` per non-empty bucket in [start, end) of a retired series: roll-ups
    before `raw_from`, raw points from it on (parameter $tz for calendar widths), as columns
    `t` (the bucket's start, UTC ms) and `v`."""
    rolled_end = min(end_ms, raw_from_ms)
    raw_start = max(start_ms, raw_from_ms)
    # raw points pre-bucketed so that a bucket's raw part is one row like a roll-up's
    pre = (
        "time_bucket(INTERVAL '15 minutes', ts, TIMESTAMP '1970-01-01')"
        if every.is_calendar
        else _bucket(every, "ts")
    )
    out = "epoch_ms(timezone($tz, b))" if every.is_calendar else "epoch_ms(b)"
    return f"""
        WITH parts AS (
            SELECT ts AS pt, n, total, lo, hi, first_v, first_ts, last_v, last_ts
            FROM rollups
            WHERE series_id = {sid} AND ts >= {ts_sql(start_ms)} AND ts < {ts_sql(rolled_end)}
            UNION ALL
            SELECT {pre} AS pt, count(value), fsum(value), min(value), max(value),
                   arg_min(value, ts), min(ts), arg_max(value, ts), max(ts)
            FROM readings
            WHERE series_id = {sid} AND ts >= {ts_sql(raw_start)} AND ts < {ts_sql(end_ms)}
            GROUP BY pt
        )
        SELECT {out} AS t, v FROM (
            SELECT {_bucket(every, "pt")} AS b, {_COMBINE[agg]} AS v FROM parts GROUP BY b
        ) ORDER BY t
    """

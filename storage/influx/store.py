"""`InfluxStore`: the `TimeSeriesStore` contract on an InfluxDB server (1.x, 2.x, 3.x).

Writes: our line-protocol encoder (`lineproto`), bodies of at most `batch_lines` lines,
posted by the mode's write target (`transport`), retried with exponential backoff on
connection errors and HTTP ≥ 429; when the retries run out the write raises
`StoreUnavailable` and the `SpoolingStore` in front of this store keeps the batch.
Idempotency is InfluxDB's own: a point with the series and timestamp of a stored one
replaces its field value.

Reads: InfluxQL over `/query`. Day buckets start at local midnight: with `tz()` where the
server supports it, else one statement per span of constant UTC offset, each grouping by
`time(1d, <offset>)`. Months (which InfluxQL cannot group by) and multi-day buckets are
combined here from per-day partial aggregates. Counter consumption uses
`non_negative_difference(last("value"))`, the window starting one bucket early (see
`storage.base` for the rule).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Self
from zoneinfo import ZoneInfo

import numpy as np

from core.config import InfluxConfig, SiteConfig
from core.errors import BadReadings, StoreError, StoreUnavailable
from core.readings import Reading, ReadingBatch, check_storable
from storage.base import Agg, Every, Series, increase_per_bucket, local_midnight_ms, time_zone
from storage.influx import bulk
from storage.influx import influxql as q
from storage.influx.lineproto import encode
from storage.influx.schema import FIELD, meter_tags, tags_of
from storage.influx.transport import QueryClient, Retryable, V1WriteTarget, V2WriteTarget

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
EPOCH_DAY = date(1970, 1, 1)
_MAX_RETRY_AFTER_S = 60.0

# The per-day partial aggregates each aggregate is combined from.
_PARTS: dict[Agg, tuple[str, ...]] = {
    Agg.MEAN: ("sum", "count"),
    Agg.SUM: ("sum",),
    Agg.COUNT: ("count",),
    Agg.MIN: ("min",),
    Agg.MAX: ("max",),
    Agg.FIRST: ("first",),
    Agg.LAST: ("last",),
}


class InfluxStore:
    """A `TimeSeriesStore` on InfluxDB. Secrets are passed in (from the environment by
    `storage.open_store`), kept in the clients' headers only, and never logged or shown."""

    def __init__(
        self,
        config: InfluxConfig,
        *,
        token: str | None = None,
        password: str | None = None,
        site: SiteConfig | None = None,
        sites: Sequence[SiteConfig] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`site`: the one site whose meters it stores; `sites`: a portfolio's, whose meters
        it stores as `<site>/<meter>` (tags from their files either way)."""
        self.config = config
        self._sleep = sleep
        self._known_tags = meter_tags(site, sites)
        self._site_id = site.site.id if site is not None else None
        self._tags: dict[str, dict[str, str]] = {}
        self._tags_lock = threading.Lock()
        self._prefixes: dict[tuple[str, str], str] = {}
        """Escaped line-protocol prefix of each series written (dict updates are atomic)."""
        self.skipped_nonfinite = 0
        """Readings left out because InfluxDB cannot hold NaN or infinity."""
        c = config
        if c.mode == "v1":
            self._target: V1WriteTarget | V2WriteTarget = V1WriteTarget(
                c.url,
                database=c.database,
                retention_policy=c.retention_policy,
                precision=c.precision,
                username=c.username,
                password=password,
                gzip=c.gzip,
                timeout_s=c.timeout_s,
            )
        else:
            bucket = c.bucket or (
                f"{c.database}/{c.retention_policy}" if c.retention_policy else c.database
            )
            self._target = V2WriteTarget(
                c.url,
                org=c.org,
                bucket=bucket,
                precision=c.precision,
                token=token,
                gzip=c.gzip,
                timeout_s=c.timeout_s,
            )
        self._query = QueryClient(
            c.url,
            mode=c.mode,
            database=c.database,
            retention_policy=c.retention_policy,
            username=c.username,
            password=password,
            token=token,
            timeout_s=c.timeout_s,
        )
        self._closed = False

    def __repr__(self) -> str:
        c = self.config
        where = c.database if c.mode == "v1" else (c.bucket or c.database)
        return f"InfluxStore({c.url!r}, mode={c.mode!r}, database={where!r})"

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._target.close()
            self._query.close()

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
            raise StoreError(f"{self!r} is closed")

    # -- writing -------------------------------------------------------------------------

    def _tags_for(self, meter_id: str) -> dict[str, str]:
        with self._tags_lock:
            tags = self._tags.get(meter_id)
            if tags is None:
                tags = self._tags[meter_id] = tags_of(meter_id, self._known_tags, self._site_id)
            return tags

    def write(self, batch: ReadingBatch) -> int:
        """Store a batch; return the points written (distinct keys, NaN/inf left out).

        Raises `StoreUnavailable` when the server cannot take it after the retries (the
        spool's cue), `BadReadings` for readings it cannot hold (a time outside the storable
        range, a name line protocol cannot carry, points the server refuses: HTTP 400).
        """
        self._check_open()
        check_storable(batch)
        try:
            lines = encode(batch, self._tags_for, self.config.precision, self._prefixes)
        except ValueError as exc:
            raise BadReadings(f"{self!r} cannot hold these readings: {exc}") from exc
        if lines.skipped:
            self.skipped_nonfinite += lines.skipped
            log.warning(
                "%d readings with NaN or infinite values not written (InfluxDB cannot hold them)",
                lines.skipped,
            )
        for body in lines.chunks(self.config.batch_lines):
            self._post(body)
        return lines.points

    def _post(self, body: bytes) -> None:
        delay = self.config.retry_backoff_s
        for attempt in range(self.config.retries + 1):
            try:
                self._target.post(body)
                return
            except Retryable as exc:
                if attempt == self.config.retries:
                    raise StoreUnavailable(
                        f"{exc} (after {attempt + 1} attempts); the batch must be spooled"
                    ) from exc
                wait = exc.retry_after_s if exc.retry_after_s is not None else delay
                log.debug("write failed (%s), retrying in %.2f s", exc, wait)
                self._sleep(min(wait, _MAX_RETRY_AFTER_S))
                delay *= 2

    # -- reading -------------------------------------------------------------------------

    def _tables(self, *statements: str) -> list[list[q.Table]]:
        self._check_open()
        answers = q.statement_tables(self._query.query(";".join(statements)), len(statements))
        if any(t.name == "databases" and t.columns == ["name"] for ts in answers for t in ts):
            # VictoriaMetrics answers every /query with a database list (for Grafana's
            # datasource check): it takes our writes but runs no InfluxQL
            raise StoreError(
                f"{self.config.url} answers InfluxQL queries with a database list: it does "
                "not run them (VictoriaMetrics takes writes only; read from InfluxDB)"
            )
        return answers

    def read_raw(self, meter_id: str, quantity: str, start_ms: int, end_ms: int) -> Series:
        """Points with start <= ts < end, in time order; unknown series read as empty."""
        if end_ms <= start_ms:
            self._check_open()
            return Series.empty()
        (tables,) = self._tables(q.raw(meter_id, quantity, start_ms, end_ms))
        series = q.series_of(tables)
        if len(series) > 1:
            # One timestamp in two series of the meter (its tags changed): keep one point.
            keep = np.append(series.ts_ms[1:] != series.ts_ms[:-1], True)
            if not keep.all():
                series = Series(series.ts_ms[keep], series.value[keep])
        return series

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
        """One value per non-empty bucket in [start, end), at the bucket's start (UTC ms)."""
        agg = Agg(agg)
        if every.is_calendar:
            time_zone(tz)  # an unknown zone is refused before anything is asked
        if end_ms <= start_ms:
            self._check_open()
            return Series.empty()
        if not every.is_calendar:
            statement = q.grouped(
                [q.call(agg.value)],
                meter_id,
                quantity,
                start_ms,
                end_ms,
                f"time({q.duration(every)})",
            )
            (tables,) = self._tables(statement)
            return q.series_of(tables)
        days, parts = self._day_partials(meter_id, quantity, start_ms, end_ms, tz, _PARTS[agg])
        return _combine(days, parts, agg, every, tz)

    def consumption(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        every: Every,
        tz: str = "UTC",
    ) -> Series:
        """A counter's increase per bucket (see `storage.base`), from
        `non_negative_difference(last("value"))` over a window one bucket longer."""
        if every.is_calendar:
            time_zone(tz)
        if end_ms <= start_ms:
            self._check_open()
            return Series.empty()
        first = every.floor(start_ms, tz)
        window = every.previous(first, tz)
        if every.is_calendar and not (
            every.unit == "d" and every.count == 1 and self.config.tz_clause
        ):
            days, parts = self._day_partials(meter_id, quantity, window, end_ms, tz, ("last",))
            return increase_per_bucket(_combine(days, parts, Agg.LAST, every, tz), first)
        # InfluxDB 1.x and 2.x look one bucket before the WHERE range for the first
        # difference by themselves, and 3.x may not; so the first bucket's difference is
        # taken here from the last value of the bucket before it, asked for explicitly.
        nnd = f"non_negative_difference(last({q.ident(FIELD)})) AS {q.ident('increase')}"
        per_bucket, before = self._tables(
            q.grouped(
                [nnd, q.call("last", alias="last")],
                meter_id,
                quantity,
                first,
                end_ms,
                f"time({q.duration(every)})",
                tz if every.is_calendar else None,
            ),
            f"SELECT last({q.ident(FIELD)}) FROM {q.ident(quantity)} "
            f"WHERE {q.where(meter_id, window, first)}",
        )
        previous = before[0].values[0][1] if before and before[0].values else None
        ts: list[int] = []
        value: list[float] = []
        for table in per_bucket:
            rows = zip(
                table.column("time"), table.column("increase"), table.column("last"), strict=True
            )
            for index, (t, increase, last) in enumerate(rows):
                if last is None or t < first:
                    continue
                if index == 0:
                    if previous is None:
                        continue
                    increase = last - previous if last >= previous else None
                if increase is None:  # a decrease: a reset or a roll-over, counted from zero
                    increase = last
                ts.append(int(t))
                value.append(float(increase))
        return Series(np.asarray(ts, dtype=np.int64), np.asarray(value, dtype=np.float64))

    def _day_partials(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        tz: str,
        parts: tuple[str, ...],
    ) -> tuple[list[int], dict[str, list[float]]]:
        """Per local day (its midnight, UTC ms, in time order): the partial aggregates
        `parts` of the points in [start, end)."""
        if self.config.tz_clause:
            selections = [q.call(part, alias=part) for part in parts]
            statement = q.grouped(
                selections,
                meter_id,
                quantity,
                start_ms,
                end_ms,
                "time(1d)",
                tz,
            )
            (tables,) = self._tables(statement)
            return _rows(tables, parts, lambda t: t)
        return self._day_partials_by_offset(meter_id, quantity, start_ms, end_ms, tz, parts)

    def _day_partials_by_offset(
        self,
        meter_id: str,
        quantity: str,
        start_ms: int,
        end_ms: int,
        tz: str,
        parts: tuple[str, ...],
    ) -> tuple[list[int], dict[str, list[float]]]:
        """Without `tz()`: one statement per span of constant UTC offset, grouping by
        `time(1d, <offset>)` so buckets start at that span's local midnight."""
        # Only the span the series really covers needs splitting by offset.
        first, last = self._tables(
            f"SELECT first({q.ident('value')}) FROM {q.ident(quantity)} "
            f"WHERE {q.where(meter_id, start_ms, end_ms)}",
            f"SELECT last({q.ident('value')}) FROM {q.ident(quantity)} "
            f"WHERE {q.where(meter_id, start_ms, end_ms)}",
        )
        if not first or not last:
            return [], {part: [] for part in parts}
        low = int(first[0].values[0][0])
        high = int(last[0].values[0][0]) + 1
        zone = time_zone(tz)
        spans = list(_offset_spans(low, high, zone))
        selections = [q.call(part, alias=part) for part in parts]
        statements = [
            q.grouped(
                selections,
                meter_id,
                quantity,
                span_start,
                span_end,
                f"time(1d, {(-offset_ms) % DAY_MS}ms)",
            )
            for span_start, span_end, offset_ms in spans
        ]
        days: list[int] = []
        merged: dict[str, list[float]] = {part: [] for part in parts}
        for (_, _, offset_ms), tables in zip(spans, self._tables(*statements), strict=True):

            def midnight(t: int, offset_ms: int = offset_ms) -> int:
                local_day = EPOCH_DAY + timedelta(days=(t + offset_ms) // DAY_MS)
                return local_midnight_ms(local_day, zone)

            span_days, span_parts = _rows(tables, parts, midnight)
            for index, day in enumerate(span_days):
                if days and days[-1] == day:  # a day cut by an offset change: merge
                    for part in parts:
                        merged[part][-1] = _merge(part, merged[part][-1], span_parts[part][index])
                else:
                    days.append(day)
                    for part in parts:
                        merged[part].append(span_parts[part][index])
        return days, merged

    def latest(self, meter_ids: list[str] | None = None) -> list[Reading]:
        """The newest point of every (meter, quantity), optionally for some meters only."""
        if meter_ids is not None and not meter_ids:
            self._check_open()
            return []
        (tables,) = self._tables(q.latest(meter_ids))
        readings = [
            Reading(table.tags["meter"], table.name, int(row[0]), float(row[1]))
            for table in tables
            if table.tags.get("meter")
            for row in table.values
            if row[1] is not None
        ]
        readings.sort(key=lambda r: (r.meter_id, r.quantity))
        return readings

    def series_keys(self) -> list[tuple[str, str]]:
        """Every (meter, quantity) the database holds, sorted."""
        (tables,) = self._tables(q.SERIES_KEYS)
        return sorted({(str(row[1]), table.name) for table in tables for row in table.values})

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
        """Those points (`left`: from `census`), series by series in the order of `left`,
        time-ordered, in batches of at most `rows` (CSV answers parsed by Arrow)."""
        return bulk.read_after(self, left, after, start_ms, end_ms, rows)


# -- combining per-day partials ----------------------------------------------------------


def _rows(
    tables: list[q.Table], parts: tuple[str, ...], day_of: Callable[[int], int]
) -> tuple[list[int], dict[str, list[float]]]:
    days: list[int] = []
    values: dict[str, list[float]] = {part: [] for part in parts}
    for table in tables:
        columns = [table.columns.index(part) for part in parts]
        for row in table.values:
            if row[columns[0]] is None:
                continue
            days.append(day_of(int(row[0])))
            for part, column in zip(parts, columns, strict=True):
                values[part].append(float(row[column]))
    return days, values


def _merge(part: str, earlier: float, later: float) -> float:
    if part in ("sum", "count"):
        return earlier + later
    if part == "min":
        return min(earlier, later)
    if part == "max":
        return max(earlier, later)
    return earlier if part == "first" else later


def _combine(
    days: list[int], parts: Mapping[str, list[float]], agg: Agg, every: Every, tz: str
) -> Series:
    """Buckets of `every` from per-day partials (days in time order)."""
    if not days:
        return Series.empty()
    names = list(parts)
    starts: list[int] = []
    combined: dict[str, list[float]] = {name: [] for name in names}
    for index, day in enumerate(days):
        bucket = day if every.unit == "d" and every.count == 1 else every.floor(day, tz)
        if starts and starts[-1] == bucket:
            for name in names:
                combined[name][-1] = _merge(name, combined[name][-1], parts[name][index])
        else:
            starts.append(bucket)
            for name in names:
                combined[name].append(parts[name][index])
    if agg is Agg.MEAN:
        value = np.asarray(combined["sum"]) / np.asarray(combined["count"])
    else:
        value = np.asarray(combined[_PARTS[agg][0]], dtype=np.float64)
    return Series(np.asarray(starts, dtype=np.int64), np.asarray(value, dtype=np.float64))


def _offset_spans(start_ms: int, end_ms: int, zone: ZoneInfo) -> Iterator[tuple[int, int, int]]:
    """Spans [a, b) of constant UTC offset covering [start, end), with that offset in ms.

    Probes once a day and bisects to the millisecond where the offset changes (no zone
    changes its offset twice within a day).
    """

    def offset(t: int) -> int:
        shift = datetime.fromtimestamp(t / 1000, tz=zone).utcoffset() or timedelta(0)
        return int(shift.total_seconds() * 1000)

    span_start, current, t = start_ms, offset(start_ms), start_ms
    while True:
        probe = min(t + DAY_MS, end_ms - 1)
        if probe <= t:
            break
        if offset(probe) == current:
            t = probe
            continue
        low, high = t, probe
        while high - low > 1:
            middle = (low + high) // 2
            if offset(middle) == current:
                low = middle
            else:
                high = middle
        yield span_start, high, current
        span_start, current, t = high, offset(high), high
    yield span_start, end_ms, current

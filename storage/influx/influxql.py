"""InfluxQL statements and the parsing of `/query` answers (pure, no I/O).

Times are bound as epoch milliseconds (`time >= 1772323200000ms`) and answers asked for with
`epoch=ms`. Identifiers are double-quoted and string literals single-quoted, each with its
escapes, so a meter id or quantity can never change the statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import StoreError
from storage.base import Every, Series
from storage.influx.schema import FIELD

# InfluxDB's time range is int64 nanoseconds; ms bounds outside it are clamped.
MIN_MS = -9_223_372_036_854
MAX_MS = 9_223_372_036_853


def ident(name: str) -> str:
    """A double-quoted identifier (measurement, tag key, field)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(text: str) -> str:
    """A single-quoted string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def clamp_ms(ms: int) -> int:
    return min(max(int(ms), MIN_MS), MAX_MS)


def where(meter_id: str, start_ms: int, end_ms: int) -> str:
    """The WHERE clause of one meter's points with start <= time < end."""
    return (
        f"{ident('meter')} = {literal(meter_id)} "
        f"AND time >= {clamp_ms(start_ms)}ms AND time < {clamp_ms(end_ms)}ms"
    )


def duration(every: Every) -> str:
    """A fixed bucket width as an InfluxQL duration (`90s`, `15m`, `1h`, `1d`)."""
    if every.unit == "mo":
        raise ValueError("months have no fixed InfluxQL duration")
    return f"{every.count}{every.unit}"


def raw(meter_id: str, quantity: str, start_ms: int, end_ms: int) -> str:
    return f"SELECT {ident(FIELD)} FROM {ident(quantity)} WHERE {where(meter_id, start_ms, end_ms)}"


def grouped(
    selections: Sequence[str],
    meter_id: str,
    quantity: str,
    start_ms: int,
    end_ms: int,
    group_by: str,
    tz: str | None = None,
) -> str:
    """`SELECT <selections> ... GROUP BY <group_by> fill(none) [tz(<tz>)]`: non-empty
    buckets only, in local time when `tz` is given."""
    return (
        f"SELECT {', '.join(selections)} FROM {ident(quantity)} "
        f"WHERE {where(meter_id, start_ms, end_ms)} GROUP BY {group_by} fill(none)"
        + (f" tz({literal(tz)})" if tz else "")
    )


def call(function: str, *, alias: str = "") -> str:
    """`function("value")`, e.g. `mean("value") AS "mean"`."""
    text = f"{function}({ident(FIELD)})"
    return f"{text} AS {ident(alias)}" if alias else text


def latest(meter_ids: Sequence[str] | None) -> str:
    meters = ""
    if meter_ids is not None:
        meters = " AND (" + " OR ".join(f"{ident('meter')} = {literal(m)}" for m in meter_ids) + ")"
    return (
        f"SELECT last({ident(FIELD)}) FROM /.*/ "
        f"WHERE time >= {MIN_MS}ms AND time <= {MAX_MS}ms{meters} GROUP BY {ident('meter')}"
    )


SERIES_KEYS = f"SHOW TAG VALUES FROM /.*/ WITH KEY = {ident('meter')}"


# -- answers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """One series of an answer: its measurement, tags, column names and rows."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.values]


def statement_tables(answers: list[Any], statements: int) -> list[list[Table]]:
    """The tables of each statement of a `/query` answer (the JSON documents of a chunked
    answer, a series cut into chunks joined again); an error inside it is a StoreError that
    quotes the server."""
    out: list[list[Table]] = [[] for _ in range(statements)]
    for answer in answers:
        if not isinstance(answer, dict):
            raise StoreError(
                f"InfluxDB answered something that is not a query result: {answer!r:.200}"
            )
        if "error" in answer:
            raise StoreError(f"InfluxDB refused the query: {answer['error']}")
        for result in answer.get("results", []):
            index = int(result.get("statement_id", 0))
            if "error" in result:
                raise StoreError(f"InfluxDB refused the query: {result['error']}")
            if index >= statements:
                continue
            tables = out[index]
            for s in result.get("series") or []:
                table = Table(
                    name=str(s.get("name", "")),
                    tags=dict(s.get("tags") or {}),
                    columns=list(s.get("columns", [])),
                    values=list(s.get("values") or []),
                )
                last = tables[-1] if tables else None
                if last is not None and (last.name, last.tags, last.columns) == (
                    table.name,
                    table.tags,
                    table.columns,
                ):
                    last.values.extend(table.values)  # the next chunk of the same series
                else:
                    tables.append(table)
    return out


def series_of(tables: list[Table], column: str | None = None) -> Series:
    """Time and one value column (the first after time by default) of a statement's
    tables, rows without a value left out, in time order."""
    if not tables:
        return Series.empty()
    ts: list[int] = []
    value: list[float] = []
    for table in tables:
        index = 1 if column is None else table.columns.index(column)
        for row in table.values:
            if row[index] is not None:
                ts.append(int(row[0]))
                value.append(float(row[index]))
    series = Series(np.asarray(ts, dtype=np.int64), np.asarray(value, dtype=np.float64))
    if len(tables) > 1:
        order = np.argsort(series.ts_ms, kind="stable")
        series = Series(series.ts_ms[order], series.value[order])
    return series

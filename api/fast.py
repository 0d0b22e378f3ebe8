"""The hot routes' path: answer on the event loop when the answer is in memory, and go to
the thread pool only for what blocks (a DuckDB query, any InfluxDB request).

`def` routes cost a thread-pool hop per request (~9-22 % of the event loop's time in the
py-spy profiles of bench.api), and a blocking call in an `async def` route stalls every
other request: so the hot routes are `async def` and call the store through these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from core.readings import Reading
from storage.base import TimeSeriesStore
from storage.duckdb_store import DuckDBStore
from storage.scoped import SiteStore

T = TypeVar("T")


def in_memory(store: TimeSeriesStore) -> bool:
    """True when `latest` and `series_keys` never block: the DuckDB store answers them from
    memory (it is the only writer of its file), also seen through a portfolio site's view;
    InfluxDB answers them with a query."""
    if isinstance(store, SiteStore):
        return in_memory(store.inner)
    return isinstance(store, DuckDBStore)


async def blocking(call: Callable[[], T]) -> T:
    """`call()` in the thread pool (a query, a computation)."""
    return await run_in_threadpool(call)


async def latest(store: TimeSeriesStore, meter_ids: list[str]) -> list[Reading]:
    if in_memory(store):
        return store.latest(meter_ids)
    return await run_in_threadpool(store.latest, meter_ids)


async def series_keys(store: TimeSeriesStore) -> list[tuple[str, str]]:
    if in_memory(store):
        return store.series_keys()
    return await run_in_threadpool(store.series_keys)

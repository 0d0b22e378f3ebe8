"""A small LRU of serialised responses, for the questions dashboards ask again and again.

Grafana panels refresh the same query every few seconds; a year of hourly points is ~300 kB
of JSON that took ~40 ms to build. An entry is keyed by the request and the series' newest
timestamp, so new data makes a new entry at once; it also expires after `ttl_s`, which bounds
how long a backfill of old data can go unseen.

`Flights` makes concurrent misses of one key one computation: fifty dashboards asking the
same question as its entry expires wait for one query instead of queueing fifty in the
thread pool (bench.api's series p99 was that herd, every `ttl_s`). An expired entry is
served once more while its refresh runs (`peek`), so no request waits for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable


class ResponseCache:
    def __init__(self, max_entries: int = 256, ttl_s: float = 10.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or now - hit[0] > self.ttl_s:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return hit[1]

    def peek(self, key: Hashable) -> tuple[bytes, bool] | None:
        """(body, fresh): an expired entry too (fresh False), until it is replaced or evicted."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return hit[1], now - hit[0] <= self.ttl_s

    def put(self, key: Hashable, body: bytes) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class Flights:
    """One running computation per key on the event loop; the askers all await it."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[bytes]] = {}
        self.waiting = 0
        """Requests awaiting a computation now."""

    def start(self, key: Hashable, compute: Callable[[], Awaitable[bytes]]) -> asyncio.Task[bytes]:
        """The key's running computation, or a new one; it runs to its end even when the
        request that started it goes away (the others still wait for it)."""
        task = self._running.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(compute())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def run(self, key: Hashable, compute: Callable[[], Awaitable[bytes]]) -> bytes:
        self.waiting += 1
        try:
            return await asyncio.shield(self.start(key, compute))
        finally:
            self.waiting -= 1

    def _finished(self, key: Hashable, task: asyncio.Task[bytes]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved here: a refresh nobody awaited must not warn

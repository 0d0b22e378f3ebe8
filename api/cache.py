"""A small LRU of serialised responses, for the questions dashboards ask again and again.

Grafana panels refresh the same query every few seconds; a year of hourly points is ~300 kB
of JSON that took ~40 ms to build. An entry is keyed by the request and the series' newest
timestamp, so new data makes a new entry at once; it also expires after `ttl_s`, which bounds
how long a backfill of old data can go unseen.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable


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

    def put(self, key: Hashable, body: bytes) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), body)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

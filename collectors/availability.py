"""Which meters answer: log once when one goes down, once when it comes back.

Also the collectors' counters, which the API's `/metrics` exposes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger("epcmon.availability")


@dataclass
class MeterState:
    up: bool = False
    last_seen_ms: int = 0
    last_error: str = ""
    seen: bool = False


class Availability:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meters: dict[str, MeterState] = {}
        self.counters: Counter[str] = Counter()

    def ok(self, meter_id: str, now_ms: int) -> None:
        with self._lock:
            state = self._meters.setdefault(meter_id, MeterState())
            if state.seen and not state.up:
                log.info("meter %s is back (after: %s)", meter_id, state.last_error)
            state.up, state.seen, state.last_seen_ms, state.last_error = True, True, now_ms, ""

    def failed(self, meter_id: str, reason: str) -> None:
        with self._lock:
            state = self._meters.setdefault(meter_id, MeterState())
            if state.up or not state.seen:
                log.warning("meter %s is down: %s", meter_id, reason)
            state.up, state.seen, state.last_error = False, True, reason

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def snapshot(self) -> dict[str, MeterState]:
        with self._lock:
            return {
                k: MeterState(v.up, v.last_seen_ms, v.last_error, v.seen)
                for k, v in self._meters.items()
            }

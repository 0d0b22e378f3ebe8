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

    def ok(self, meter_id: str, now_ms: int, *, quiet: bool = False) -> str | None:
        """The meter answered. Returns the error it had when this brings it back (logged
        unless `quiet`: a caller reporting many meters at once logs them together)."""
        with self._lock:
            state = self._meters.setdefault(meter_id, MeterState())
            back = state.last_error if state.seen and not state.up else None
            state.up, state.seen, state.last_seen_ms, state.last_error = True, True, now_ms, ""
        if back is not None and not quiet:
            log.info("meter %s is back (after: %s)", meter_id, back)
        return back

    def failed(self, meter_id: str, reason: str, *, quiet: bool = False) -> bool:
        """The meter did not answer; True when this takes it down (logged unless `quiet`)."""
        with self._lock:
            state = self._meters.setdefault(meter_id, MeterState())
            down = state.up or not state.seen
            state.up, state.seen, state.last_error = False, True, reason
        if down and not quiet:
            log.warning("meter %s is down: %s", meter_id, reason)
        return down

    def log_changes(self, down: dict[str, list[str]], back: list[str], where: str) -> None:
        """One line per reason for meters that went down together, one for those back (a
        gateway going away takes its 20 meters with it: one line, not 20)."""
        for reason, meters in down.items():
            if len(meters) == 1:
                log.warning("meter %s is down: %s", meters[0], reason)
            else:
                log.warning(
                    "%d meters of %s are down: %s (%s)", len(meters), where, reason, _ids(meters)
                )
        if len(back) == 1:
            log.info("meter %s is back", back[0])
        elif back:
            log.info("%d meters of %s are back (%s)", len(back), where, _ids(back))

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def snapshot(self) -> dict[str, MeterState]:
        with self._lock:
            return {
                k: MeterState(v.up, v.last_seen_ms, v.last_error, v.seen)
                for k, v in self._meters.items()
            }


def _ids(meters: list[str], shown: int = 8) -> str:
    more = len(meters) - shown
    return ", ".join(meters[:shown]) + (f" and {more} more" if more > 0 else "")

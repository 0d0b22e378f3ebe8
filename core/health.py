"""What is wrong with the running service right now, by name: `/healthz` reads it.

Two kinds of entries, both keyed by a short name:

- **parts**: the long-running pieces the supervisor runs (`modbus:gw-1`, `mqtt`, `api`,
  `recompute`, `spool-drain`): running, or down with the error that ended them and how
  often they were restarted;
- **conditions**: states a part reports while it keeps running, e.g. `store` while the store
  refuses writes (ingest paused), cleared when it accepts them again.

Each transition is logged once (down, then back), never once per failure, so a store that
stays full for an hour writes two lines, not thousands. Thread-safe: collectors report from
worker threads, the API reads from its own.

    health = Health()
    health.degrade("store", "disk full: ingest paused")   # logs once
    health.recover("store")                                 # logs once
    health.ok  -> bool; health.snapshot() -> HealthSnapshot
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

log = logging.getLogger("epcmon.health")

PartState = Literal["starting", "running", "restarting", "stopped", "failed"]


@dataclass(frozen=True, slots=True)
class Condition:
    """Something degraded, since when (UTC epoch ms), and what the part that saw it said."""

    since_ms: int
    detail: str


@dataclass(frozen=True, slots=True)
class Part:
    """One supervised part: its state, how often it was restarted, its last error."""

    state: PartState = "starting"
    restarts: int = 0
    last_error: str = ""
    last_error_ms: int = 0
    down_since_ms: int = 0


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    parts: Mapping[str, Part] = field(default_factory=dict)
    conditions: Mapping[str, Condition] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No part down and no condition raised."""
        return not self.conditions and all(
            p.state in ("starting", "running", "stopped") for p in self.parts.values()
        )

    def problems(self) -> dict[str, str]:
        """Name -> what is wrong, for every part down and every condition."""
        out = {
            f"part {name}": f"{p.state}: {p.last_error}"
            for name, p in self.parts.items()
            if p.state in ("restarting", "failed")
        }
        out.update({name: c.detail for name, c in self.conditions.items()})
        return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class Health:
    """The service's parts and conditions (module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, Part] = {}
        self._conditions: dict[str, Condition] = {}
        self.transitions = 0
        """How many times something went down or came back (for tests and metrics)."""

    # -- conditions ----------------------------------------------------------------------

    def degrade(self, name: str, detail: str) -> None:
        """Raise (or update the detail of) condition `name`; logged when it is new."""
        with self._lock:
            current = self._conditions.get(name)
            if current is not None:
                if current.detail != detail:
                    self._conditions[name] = replace(current, detail=detail)
                return
            self._conditions[name] = Condition(_now_ms(), detail)
            self.transitions += 1
        log.error("degraded: %s: %s", name, detail)

    def recover(self, name: str, note: str = "") -> None:
        """Clear condition `name`; logged when it was raised."""
        with self._lock:
            current = self._conditions.pop(name, None)
            if current is None:
                return
            self.transitions += 1
        took = (_now_ms() - current.since_ms) / 1000
        log.warning("recovered: %s after %.0f s%s", name, took, f" ({note})" if note else "")

    def is_degraded(self, name: str) -> bool:
        with self._lock:
            return name in self._conditions

    # -- parts ---------------------------------------------------------------------------

    def part_state(self, name: str, state: PartState, error: str = "") -> None:
        """Record a part's new state; `restarting`/`failed` carry the error that ended it."""
        with self._lock:
            part = self._parts.get(name, Part())
            now = _now_ms()
            if state in ("restarting", "failed"):
                part = replace(
                    part,
                    state=state,
                    restarts=part.restarts + (state == "restarting"),
                    last_error=error,
                    last_error_ms=now,
                    down_since_ms=part.down_since_ms or now,
                )
            else:
                part = replace(part, state=state, down_since_ms=0)
            if part.state != self._parts.get(name, Part()).state:
                self.transitions += 1
            self._parts[name] = part

    def forget_part(self, name: str) -> None:
        """A part removed from the service (a gateway taken out of the site file)."""
        with self._lock:
            self._parts.pop(name, None)

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return HealthSnapshot(dict(self._parts), dict(self._conditions))

    @property
    def ok(self) -> bool:
        return self.snapshot().ok

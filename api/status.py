"""What the API knows of the collectors running beside it (same process), if any."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from api import fast
from core.health import Health
from storage.base import TimeSeriesStore


class MeterState(Protocol):
    up: bool
    last_seen_ms: int


class CollectorStatus(Protocol):
    """Implemented by the collectors' availability tracker; the API only reads it."""

    @property
    def counters(self) -> Mapping[str, int]: ...

    def snapshot(self) -> Mapping[str, MeterState]: ...


@dataclass
class OpsContext:
    status: CollectorStatus | None = None
    health: Health | None = None
    dead_letters_path: str = "data/dead-letters.jsonl"
    devices_path: str = "data/devices.sqlite3"
    """The collector's list of unconfigured MQTT devices (`storage.devices`)."""
    spool_depth: object = field(default=None)
    """A zero-argument callable giving the spool depth, when the store has a spool."""
    spool_store: object = field(default=None)
    """The `SpoolingStore`, when the store has a spool (its replay counters reach /metrics)."""
    alarms_active: Callable[[], Mapping[tuple[str, str], int]] | None = None
    """(rule, severity) -> how many alarms are active."""


async def probe_store(store: TimeSeriesStore) -> str:
    """`ok`, or what the store raised (its type only: `/healthz` takes no key)."""
    try:
        await fast.series_keys(store)
    except Exception as exc:  # whatever the store does, /healthz answers and names it
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def health_body(
    health: Health, store_state: str, who: dict[str, object]
) -> tuple[bool, dict[str, object]]:
    """`/healthz`'s verdict and body: its status, `who` answers (site or portfolio, the
    process id), the store's state (a `store` condition overrides it), the problems, every
    part with its state; in this order (the site's `HealthOut`)."""
    snapshot = health.snapshot()
    if snapshot.conditions.get("store") is not None:
        store_state = "degraded: " + snapshot.conditions["store"].detail
    problems = snapshot.problems()
    ok = store_state == "ok" and not problems
    return ok, {
        "status": "ok" if ok else "degraded",
        **who,
        "store": store_state,
        "problems": problems,
        "parts": {
            name: {"state": p.state, "restarts": p.restarts, "last_error": p.last_error or None}
            for name, p in snapshot.parts.items()
        },
    }

"""What the API knows of the collectors running beside it (same process), if any."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from core.health import Health


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

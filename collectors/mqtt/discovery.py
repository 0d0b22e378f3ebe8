"""Devices nobody configured: the subscriber notes each message from one, and the notes go to
the list an installer reads (`storage.devices`, `GET /api/v1/devices/unconfigured`).

A device is a topic no meter claims (on a route's pattern, or under an `[mqtt] discover`
filter), or a meter a gateway's message names that is not configured (`E-GW1-7`). Notes are
summed in memory (count, first and last seen, the last payload) and written at most once a
second, with a suggested site-file snippet (`collectors.mqtt.suggest`), from a worker thread.
Bounded: at most `MAX_PENDING` devices are held between two writes (the rest are counted,
`mqtt_discovery_dropped`); the store keeps at most `[mqtt] max_unconfigured_devices`.

The list is a convenience: when it cannot be written, ingest goes on (the messages are dead
letters anyway); the failure is logged once, counted (`mqtt_discovery_failures`) and the
notes kept for the next try.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass

from collectors.availability import Availability
from collectors.mqtt.bounded import PayloadLimits
from collectors.mqtt.routing import Unrouted
from collectors.mqtt.suggest import suggest
from core.config import SiteConfig
from storage.devices import Sighting, UnconfiguredDevices

log = logging.getLogger("epcmon.mqtt")

MAX_PENDING = 1_000
"""Devices noted between two writes; a flood of random topics beyond is counted, not held."""


@dataclass
class _Note:
    where: Unrouted
    count: int
    first_ms: int
    last_ms: int
    payload: bytes
    reason: str


class Discovery:
    """Notes unconfigured devices (`saw`, on the loop) and writes them (`flush`, blocking:
    from a worker thread). Without a store it only counts them."""

    def __init__(
        self,
        site: SiteConfig,
        limits: PayloadLimits,
        store: UnconfiguredDevices | None,
        availability: Availability,
        *,
        every_s: float = 1.0,
    ) -> None:
        self.site = site
        self.limits = limits
        self.store = store
        self.availability = availability
        self.every_s = every_s
        self._pending: dict[tuple[str, str], _Note] = {}
        self._lock = threading.Lock()
        self._last_flush = 0.0
        self._failing = False
        self._suggest_failed = False

    def saw(self, where: Unrouted, payload: bytes, received_ms: int, reason: str) -> None:
        """One message from the device `where` (a topic, and the meter id a route gives)."""
        self.availability.count("mqtt_unconfigured_messages")
        key = (where.topic, where.meter_id)
        with self._lock:
            note = self._pending.get(key)
            if note is not None:
                note.count += 1
                note.last_ms = max(note.last_ms, received_ms)
                note.payload, note.reason = payload, reason
                return
            if len(self._pending) >= MAX_PENDING:
                self.availability.count("mqtt_discovery_dropped")
                return
            self._pending[key] = _Note(where, 1, received_ms, received_ms, payload, reason)

    def due(self) -> bool:
        """Whether there is something to write and the last write is `every_s` old."""
        return bool(self._pending) and time.monotonic() - self._last_flush >= self.every_s

    def flush(self) -> None:
        """Write the notes (blocking). Never raises: a failure is logged once and counted,
        and the notes are kept for the next try."""
        with self._lock:
            notes, self._pending = self._pending, {}
        self._last_flush = time.monotonic()
        if not notes or self.store is None:
            return
        sightings = [
            Sighting(
                topic=n.where.topic,
                meter=n.where.meter_id,
                route=n.where.route,
                count=n.count,
                first_ms=n.first_ms,
                last_ms=n.last_ms,
                payload=n.payload,
                reason=n.reason,
                suggestion=self._suggest(n),
            )
            for n in notes.values()
        ]
        try:
            self.store.record(sightings)
        except (sqlite3.Error, OSError) as exc:
            self.availability.count("mqtt_discovery_failures")
            with self._lock:  # put them back, merged with the notes taken since
                for key, note in notes.items():
                    newer = self._pending.get(key)
                    if newer is not None:
                        newer.count += note.count
                        newer.first_ms = min(newer.first_ms, note.first_ms)
                    elif len(self._pending) < MAX_PENDING:
                        self._pending[key] = note
            if not self._failing:
                self._failing = True
                log.warning("the list of unconfigured devices cannot be written: %s", exc)
            return
        if self._failing:
            self._failing = False
            log.warning("the list of unconfigured devices is written again")

    def _suggest(self, note: _Note) -> str:
        try:
            return suggest(self.site, note.where, note.payload, self.limits)
        except Exception:  # a bug in a guess must not cost the listing
            if not self._suggest_failed:
                self._suggest_failed = True
                log.warning("no suggestion for %s", note.where.topic, exc_info=True)
            return ""

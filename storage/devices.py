"""Unconfigured devices: what arrives from devices no meter of the site file claims.

The MQTT collector records each such device (a topic, or a meter a gateway's message names
that is not configured) with how often and when it was seen, its last payload (cut at
`max_payload_bytes`) and a suggested site-file snippet; the API lists them
(`GET /api/v1/devices/unconfigured`) so that an installer can adopt them, as Home Assistant
lists discovered devices. Their messages are also dead letters (`unknown meter`): this list
is the summary an installer reads, the dead letters the evidence.

One small SQLite file (WAL, so the API process can read while a collector writes), bounded:
at most `max_devices` rows, the ones seen longest ago dropped first, so a flood of random
topics cannot grow it. Several collector processes (shards) may write the same file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.config import MqttConfig

DEVICES_FILE = "devices.sqlite3"
"""Its name in the data directory, beside `dead-letters.jsonl`."""
SHOWN_PAYLOAD_BYTES = 4096
"""Payload bytes kept per device: enough to recognise a device and configure it."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS unconfigured (
    topic TEXT NOT NULL,
    meter TEXT NOT NULL,         -- the meter id a route would give ('' when none would)
    route TEXT NOT NULL,         -- the route whose pattern the topic matches ('' when none)
    count INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,       -- the last payload, cut at max_payload_bytes
    payload_bytes INTEGER NOT NULL,
    reason TEXT NOT NULL,
    suggestion TEXT NOT NULL,    -- a site-file snippet that would configure it ('' if none)
    PRIMARY KEY (topic, meter)
);
CREATE INDEX IF NOT EXISTS unconfigured_last ON unconfigured (last_ms);
"""


@dataclass(frozen=True, slots=True)
class Sighting:
    """Messages from one unconfigured device: `count` of them between `first_ms` and
    `last_ms`, the last one's payload and why it was not used."""

    topic: str
    meter: str
    route: str
    count: int
    first_ms: int
    last_ms: int
    payload: bytes
    reason: str
    suggestion: str = ""
    payload_bytes: int = -1
    """The last payload's full size (-1: `len(payload)`, it was not cut)."""


class UnconfiguredDevices:
    """The collector's side: records sightings (thread-safe; call from a worker thread)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_devices: int | None = None,
        max_payload_bytes: int = SHOWN_PAYLOAD_BYTES,
    ) -> None:
        self.path = Path(path)
        self.max_devices = max_devices or MqttConfig().max_unconfigured_devices
        self.max_payload_bytes = max_payload_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost last second is seen again
        self._db.executescript(_SCHEMA)

    @classmethod
    def for_mqtt(cls, path: str | Path, mqtt: MqttConfig) -> UnconfiguredDevices:
        """Bounded as the site file's `[mqtt] max_unconfigured_devices` says."""
        return cls(path, max_devices=mqtt.max_unconfigured_devices)

    def record(self, sightings: Sequence[Sighting]) -> None:
        """Add `sightings` (counts add up, the newest payload wins) in one transaction, then
        drop the devices seen longest ago beyond `max_devices`. Raises `sqlite3.Error` or
        `OSError` when the file cannot be written."""
        if not sightings:
            return
        rows = [
            (
                s.topic,
                s.meter,
                s.route,
                s.count,
                s.first_ms,
                s.last_ms,
                s.payload[: self.max_payload_bytes],
                len(s.payload) if s.payload_bytes < 0 else s.payload_bytes,
                s.reason,
                s.suggestion,
            )
            for s in sightings
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    """
                    INSERT INTO unconfigured VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (topic, meter) DO UPDATE SET
                        count = count + excluded.count,
                        first_ms = min(first_ms, excluded.first_ms),
                        route = excluded.route,
                        payload = CASE WHEN excluded.last_ms >= last_ms
                                       THEN excluded.payload ELSE payload END,
                        payload_bytes = CASE WHEN excluded.last_ms >= last_ms
                                             THEN excluded.payload_bytes ELSE payload_bytes END,
                        reason = CASE WHEN excluded.last_ms >= last_ms
                                      THEN excluded.reason ELSE reason END,
                        suggestion = CASE WHEN excluded.last_ms >= last_ms
                                          THEN excluded.suggestion ELSE suggestion END,
                        last_ms = max(last_ms, excluded.last_ms)
                    """,
                    rows,
                )
                self._db.execute(
                    """
                    DELETE FROM unconfigured WHERE rowid IN (
                        SELECT rowid FROM unconfigured ORDER BY last_ms DESC LIMIT -1 OFFSET ?
                    )
                    """,
                    (self.max_devices,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def list(self, limit: int = 1000) -> list[Sighting]:
        with self._lock:
            return _select(self._db, limit)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_unconfigured(path: str | Path, limit: int = 1000) -> list[Sighting]:
    """The devices recorded in the file at `path`, the most recently seen first; none when
    there is no file yet (for readers without an `UnconfiguredDevices`, such as the API: it
    opens the file read-only and never creates it)."""
    path = Path(path)
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        return _select(db, limit)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # created, not yet written
            return []
        raise
    finally:
        db.close()


def _select(db: sqlite3.Connection, limit: int) -> list[Sighting]:
    rows = db.execute(
        """
        SELECT topic, meter, route, count, first_ms, last_ms, payload, reason, suggestion,
               payload_bytes
        FROM unconfigured ORDER BY last_ms DESC, topic, meter LIMIT ?
        """,
        (limit,),
    ).fetchall()
    return [Sighting(*row) for row in rows]

"""Where collected readings go: the store, off the event loop.

One writer serves the Modbus pollers and the MQTT subscriber. A write the store (and its
spool, if it has one) cannot take raises `StoreError` to the caller, which holds the data
back (MQTT: no acknowledgement, the broker keeps the messages) or counts it as not stored
(Modbus); meanwhile the health condition `store` says ingest is paused, raised and logged
once per outage, cleared by the next write that succeeds.
"""

from __future__ import annotations

import asyncio

from collectors.availability import Availability
from core.errors import BadReadings, StoreError
from core.health import Health
from core.readings import ReadingBatch
from storage.base import TimeSeriesStore


class StoreWriter:
    """Writes batches in a worker thread so the pollers and the subscriber keep running;
    one write at a time, in arrival order.

    Counters (in `availability`): `readings_stored`, `store_write_failures` (batches the
    store refused, however often), `readings_refused` (readings of batches refused as bad
    data, `BadReadings`, which is re-raised too: the caller decides what to do with them).
    """

    def __init__(
        self, store: TimeSeriesStore, availability: Availability, health: Health | None = None
    ) -> None:
        self._store = store
        self._availability = availability
        self.health = health if health is not None else Health()
        self._lock = asyncio.Lock()

    async def __call__(self, batch: ReadingBatch) -> None:
        async with self._lock:
            try:
                written = await asyncio.to_thread(self._store.write, batch)
            except StoreError as exc:
                self._availability.count("store_write_failures")
                self.health.degrade("store", f"{exc}; ingest paused")
                raise
            except BadReadings:
                self._availability.count("readings_refused", len(batch))
                raise
        self.health.recover("store")
        self._availability.count("readings_stored", written)

    @property
    def spool_depth(self) -> int:
        """Batches waiting in the spool (0 for a store without one)."""
        spool = getattr(self._store, "spool", None)
        depth = getattr(spool, "depth", 0)
        return int(depth)

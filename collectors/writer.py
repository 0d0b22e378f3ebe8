"""Where collected readings go: the store, off the event loop."""

from __future__ import annotations

import asyncio

from collectors.availability import Availability
from core.readings import ReadingBatch
from storage.base import TimeSeriesStore


class StoreWriter:
    """Writes batches in a worker thread so the pollers and the subscriber keep running;
    one write at a time, in arrival order."""

    def __init__(self, store: TimeSeriesStore, availability: Availability) -> None:
        self._store = store
        self._availability = availability
        self._lock = asyncio.Lock()

    async def __call__(self, batch: ReadingBatch) -> None:
        async with self._lock:
            written = await asyncio.to_thread(self._store.write, batch)
        self._availability.count("readings_stored", written)

    @property
    def spool_depth(self) -> int:
        """Batches waiting in the spool (0 for a store without one)."""
        spool = getattr(self._store, "spool", None)
        depth = getattr(spool, "depth", 0)
        return int(depth)

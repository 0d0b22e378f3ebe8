"""`SpoolDrain`: the long-running part that empties the spool, on its own timer.

It replays as soon as batches wait and the store was last tried `replay_interval_s` ago or
more, in a worker thread, chunk after chunk, while writes keep going into the spool behind it
(a write then waits only for the spool's own insert).
"""

from __future__ import annotations

import asyncio
import contextlib

from storage.spool.store import SpoolingStore


class SpoolDrain:
    """The part that empties the spool on its own timer (supervisor name `spool-drain`).

    Replays as soon as batches wait and the store may be tried (`replay_interval_s` after
    its last failure), chunk after chunk in a worker thread, independent of new writes;
    looks at the spool every `idle_s` while it is empty. A `StoreError` is the store being
    down (the `spool` health condition says so; tried again later); anything else ends
    `run()` with that error, and `run()` may be called again.
    """

    def __init__(self, store: SpoolingStore, *, idle_s: float = 1.0) -> None:
        self.store = store
        self.idle_s = idle_s

    async def run(self, stop: asyncio.Event) -> None:
        store = self.store
        store.drains_attached += 1
        try:
            while not stop.is_set():
                if store.spool.depth and store.may_try():
                    step = await asyncio.to_thread(store.drain_step)
                    if step.failed is None and (step.batches or step.rejected):
                        continue  # more may wait: no pause between chunks
                wait = self.idle_s
                if store.spool.depth:
                    wait = min(wait, max(store.retry_in(), 0.01))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            store.drains_attached -= 1

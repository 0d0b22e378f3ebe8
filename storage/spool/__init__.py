"""The durable spool: batches a store could not take, kept on disk and replayed in order.

    spool = Spool("data/spool.sqlite3", max_bytes=1 << 30)
    store = SpoolingStore(InfluxStore(...), spool, health=health)
    store.write(batch)      # written, or spooled when the store is unavailable; never lost
    await SpoolDrain(store).run(stop)   # the part that empties the spool, on its own timer
    store.replay()          # or by hand: spooled batches, oldest first, into the store
    spool.depth, spool.bytes, spool.rejected   # for metrics and alarms

A full spool raises `SpoolFull`, an alarm, never a silent drop. The collectors treat it like
any store error: the MQTT subscriber does not acknowledge, the broker keeps the messages.

The package, one job a module:

| module | holds |
|---|---|
| `fifo` | `Spool`: the FIFO of batches in one SQLite file, bounded by its bytes, with its `rejected` table |
| `rows` | the row format: a batch as one compressed Arrow IPC stream (`serialise`, `deserialise`) |
| `store` | `SpoolingStore`: writes to the store or to the spool, in order; one replay step (`drain_step`) |
| `drain` | `SpoolDrain`: the supervised part that replays on its own timer |
"""

from storage.spool.drain import SpoolDrain
from storage.spool.fifo import Spool, Spooled, Taken
from storage.spool.rows import deserialise, serialise
from storage.spool.store import DRAIN_POINTS, DrainStep, SpoolingStore

__all__ = [
    "DRAIN_POINTS",
    "DrainStep",
    "Spool",
    "SpoolDrain",
    "Spooled",
    "SpoolingStore",
    "Taken",
    "deserialise",
    "serialise",
]

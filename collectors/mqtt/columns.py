"""A batch's readings as four growing columns, not one object per reading. Pure.

The subscriber parses a batch of messages straight into one `Columns`; each message owns a
span of it (`start`, `stop`). The store gets the whole batch as one `ReadingBatch` when every
message's readings are to be written (the usual case), or the spans still pending (after a
message was refused), or one message's span (writing message by message).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from collectors.mqtt.payload import Record
from core.readings import ReadingBatch


class Columns:
    """Readings appended column by column; `add` returns the new span's end."""

    __slots__ = ("meter_id", "quantity", "ts_ms", "value")

    def __init__(self) -> None:
        self.meter_id: list[str] = []
        self.quantity: list[str] = []
        self.ts_ms: list[int] = []
        self.value: list[float] = []

    def __len__(self) -> int:
        return len(self.ts_ms)

    def add(self, meter_id: str, record: Record) -> int:
        """Append `record`'s values, all of `meter_id`."""
        for quantity, value in record.values:
            self.meter_id.append(meter_id)
            self.quantity.append(quantity)
            self.ts_ms.append(record.ts_ms)
            self.value.append(value)
        return len(self.ts_ms)

    def batch(self, spans: Sequence[tuple[int, int]]) -> ReadingBatch:
        """The readings of `spans` (disjoint, in order) as one `ReadingBatch`."""
        if sum(stop - start for start, stop in spans) == len(self.ts_ms):
            return _batch(self.meter_id, self.quantity, self.ts_ms, self.value)
        return _batch(
            [m for a, b in spans for m in self.meter_id[a:b]],
            [q for a, b in spans for q in self.quantity[a:b]],
            [t for a, b in spans for t in self.ts_ms[a:b]],
            [v for a, b in spans for v in self.value[a:b]],
        )


def _batch(
    meter_id: list[str], quantity: list[str], ts_ms: list[int], value: list[float]
) -> ReadingBatch:
    return ReadingBatch(
        meter_id=np.array(meter_id, dtype=object),
        quantity=np.array(quantity, dtype=object),
        ts_ms=np.array(ts_ms, dtype=np.int64),
        value=np.array(value, dtype=np.float64),
    )

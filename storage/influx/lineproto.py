"""Line protocol from `ReadingBatch`es, built column-wise (pure, no I/O).

The per-point work is done by Arrow in C++: each series' prefix (measurement and tags,
escaped once per series) is a dictionary entry, values and timestamps are cast to strings,
and the lines are joined element-wise into one buffer. Measured here: ~0.5 µs per line,
against ~2.5 µs for the same lines formatted point by point in Python, where `repr(float)`
alone costs more than the server takes to parse the line.

Values are always written as floats: Arrow writes the shortest text that reads back as the
same double (`1`, `0.1`, `1e+16`), and a number without the `i` suffix is a float in line
protocol. NaN and infinities cannot be stored in InfluxDB: they are left out and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from core.readings import ReadingBatch
from storage.columns import factorize_pairs, group_by_series
from storage.influx.schema import FIELD

Precision = Literal["ms", "s"]

_FORBIDDEN = ("\n", "\r", "\\")


def _check_name(text: str, what: str) -> None:
    if not text:
        raise ValueError(f"{what} must not be empty")
    for char in _FORBIDDEN:
        if char in text:
            raise ValueError(f"{what} {text!r} contains {char!r}, which line protocol cannot carry")


def escape_measurement(name: str) -> str:
    """A measurement name: commas and spaces escaped; never starting with `#` (a comment)."""
    _check_name(name, "measurement")
    if name.startswith("#"):
        raise ValueError(f"measurement {name!r} would read as a line-protocol comment")
    return name.replace(",", r"\,").replace(" ", r"\ ")


def escape_tag(text: str, what: str = "tag") -> str:
    """A tag key or value (or field key): commas, equals signs and spaces escaped."""
    _check_name(text, what)
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def series_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,k=v,... value=`: everything of a line before the value."""
    tagset = "".join(
        f",{escape_tag(key, 'tag key')}={escape_tag(value, f'tag {key}')}"
        for key, value in tags.items()
    )
    return f"{escape_measurement(measurement)}{tagset} {FIELD}="


@dataclass(frozen=True, slots=True)
class Lines:
    """Encoded points: one buffer of `\\n`-terminated lines and where each line starts."""

    data: bytes
    starts: npt.NDArray[np.int64]  # len(points) + 1 offsets into data
    skipped: int  # NaN or infinite values left out

    @property
    def points(self) -> int:
        return len(self.starts) - 1

    def chunks(self, lines: int) -> Iterator[bytes]:
        """Bodies of at most `lines` lines each, cut at line ends."""
        view = memoryview(self.data)
        for first in range(0, self.points, lines):
            last = min(first + lines, self.points)
            yield bytes(view[self.starts[first] : self.starts[last]])


def encode(
    batch: ReadingBatch,
    tags_for: Callable[[str], Mapping[str, str]],
    precision: Precision = "ms",
    prefixes: MutableMapping[tuple[str, str], str] | None = None,
) -> Lines:
    """Line protocol for `batch`, one line per distinct (meter, quantity, ts), the last
    reading of a key in the batch winning; grouped by series and in time order.

    `tags_for(meter_id)` gives a meter's tags. With `precision="s"`, a timestamp that is not
    a whole second is refused (ValueError) rather than silently merged with its neighbour.
    `prefixes`, when given, caches each series' escaped prefix across calls (a store's
    series and their tags do not change while it runs).
    """
    if len(batch) == 0:
        return Lines(b"", np.zeros(1, dtype=np.int64), 0)
    pairs, keys = factorize_pairs(batch.meter_id, batch.quantity)
    order, pairs, ts = group_by_series(pairs, np.asarray(batch.ts_ms, dtype=np.int64))
    value = np.asarray(batch.value, dtype=np.float64)
    if order is not None:
        value = value[order]
    finite = np.isfinite(value)
    skipped = int(len(value) - np.count_nonzero(finite))
    if skipped:
        value, ts, pairs = value[finite], ts[finite], pairs[finite]
    if precision == "s":
        if np.any(ts % 1000):
            bad = int(ts[np.flatnonzero(ts % 1000)[0]])
            raise ValueError(
                f"timestamp {bad} ms is not a whole second: precision 's' cannot hold it "
                "(use precision 'ms')"
            )
        ts = ts // 1000
    elif precision != "ms":
        raise ValueError(f"precision {precision!r}: expected 'ms' or 's'")
    if len(value) == 0:
        return Lines(b"", np.zeros(1, dtype=np.int64), skipped)
    if prefixes is None:
        texts = [series_prefix(quantity, tags_for(meter)) for meter, quantity in keys]
    else:
        texts = []
        for key in keys:
            text = prefixes.get(key)
            if text is None:
                text = prefixes[key] = series_prefix(key[1], tags_for(key[0]))
            texts.append(text)
    prefix = pa.DictionaryArray.from_arrays(pa.array(pairs, type=pa.int32()), pa.array(texts))
    lines = pc.binary_join_element_wise(
        prefix.cast(pa.large_string()),
        pc.cast(pa.array(value), pa.large_string()),
        pa.scalar(" ", pa.large_string()),
        pc.cast(pa.array(ts), pa.large_string()),
        pa.scalar("\n", pa.large_string()),
        pa.scalar("", pa.large_string()),
    )
    _, offsets, data = lines.buffers()
    starts = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    base = int(starts[0])
    body = memoryview(data)[base : int(starts[-1])].tobytes()
    return Lines(body, starts - base, skipped)

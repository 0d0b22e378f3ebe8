"""Column helpers shared by the store backends: series codes and write order of a batch.

Pure functions over `ReadingBatch` columns; no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

_SAMPLE = 4096
"""Rows whose distinct objects are looked at first: a batch's meter ids usually repeat a few
string objects (the site file's) throughout."""
_MAX_DISTINCT_OBJECTS = 1024
"""More distinct objects than this in the sample: the strings are hashed by Arrow instead."""


class _Addresses:
    """The object pointers of an object array, as an unsigned integer array over its memory
    (the array interface keeps `column` alive as long as the view)."""

    def __init__(self, column: npt.NDArray[np.object_]) -> None:
        self.column = column
        self.__array_interface__ = {
            "data": (column.ctypes.data, True),
            "shape": column.shape,
            "typestr": np.dtype(np.uintp).str,
            "version": 3,
        }


def codes(column: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Integer codes of a string column and the distinct strings they index, in the order
    they first appear.

    By object identity first: a batch usually holds a few string objects repeated (the meter
    ids of the site file, the one quantity object of `ReadingBatch.for_series`; `np.full`, by
    contrast, makes a string per element), so the pointers are compared as integers
    (~0.4 ms per 100k rows), and only the distinct objects are read as strings (equal strings
    in different objects get one code). A column of many distinct objects (a string made per
    reading) is hashed by Arrow (~8-15 ms per 100k rows here; np.unique sorts Python strings,
    ~75 ms).
    """
    if column.dtype != object or column.ndim != 1:
        raise ValueError(
            f"meter ids and quantities must be an object array of strings, not {column.dtype}"
        )
    column = np.ascontiguousarray(column)
    addresses: npt.NDArray[np.uintp] = np.asarray(_Addresses(column))
    if len(column) and bool((addresses == addresses[0]).all()):
        return np.zeros(len(column), dtype=np.int64), [_string(column[0])]
    objects, first = np.unique(addresses[:_SAMPLE], return_index=True)
    if len(objects) <= _MAX_DISTINCT_OBJECTS:
        found = np.searchsorted(objects, addresses)
        np.minimum(found, len(objects) - 1, out=found)
        if not bool((objects[found] == addresses).all()):  # an object the sample missed
            objects, first, found = np.unique(addresses, return_index=True, return_inverse=True)
        if len(objects) <= _MAX_DISTINCT_OBJECTS:
            strings: dict[str, int] = {}
            object_code = np.empty(len(objects), dtype=np.int64)
            for index in np.argsort(first, kind="stable").tolist():
                text = _string(column[first[index]])
                object_code[index] = strings.setdefault(text, len(strings))
            return object_code[found], list(strings)
    return _arrow_codes(column)


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"meter ids and quantities must be strings, not {value!r}")
    return str(value)


def _arrow_codes(column: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.int64], list[str]]:
    first = column[0]
    # One value throughout in many objects needs no hashing; the cheap look at the last
    # element spares the full comparison of a mixed column.
    if isinstance(first, str) and column[-1] == first and bool((column == first).all()):
        return np.zeros(len(column), dtype=np.int64), [str(first)]
    try:
        encoded = pa.array(column, type=pa.string()).dictionary_encode()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"meter ids and quantities must be strings: {exc}") from exc
    if encoded.null_count:
        raise ValueError("meter ids and quantities must be strings, not None")
    indices = np.asarray(encoded.indices.to_numpy(), dtype=np.int64)
    return indices, [str(s) for s in encoded.dictionary.to_pylist()]


def factorize_pairs(
    meter_id: npt.NDArray[np.object_], quantity: npt.NDArray[np.object_]
) -> tuple[npt.NDArray[np.int64], list[tuple[str, str]]]:
    """Codes of the (meter, quantity) pair of each row, and the pairs they index."""
    meter_codes, meters = codes(meter_id)
    quantity_codes, quantities = codes(quantity)
    if len(quantities) == 1:  # the usual batch: every code of a column occurs in it
        return meter_codes, [(meter, quantities[0]) for meter in meters]
    if len(meters) == 1:
        return quantity_codes, [(meters[0], q) for q in quantities]
    combined = meter_codes * len(quantities) + quantity_codes
    present = np.flatnonzero(np.bincount(combined, minlength=len(meters) * len(quantities)))
    lookup = np.full(len(meters) * len(quantities), -1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    pairs = [
        (meters[p // len(quantities)], quantities[p % len(quantities)]) for p in present.tolist()
    ]
    return lookup[combined], pairs


def series_time_order(
    pairs: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]
) -> npt.NDArray[np.intp]:
    """Row order that groups rows by series and orders each series by time.

    Of rows with the same (series, ts), only the one that came last in the batch is kept.
    """
    order = group_by_series(pairs, ts)[0]
    return np.arange(len(pairs), dtype=np.intp) if order is None else order


def group_by_series(
    pairs: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp] | None, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """`series_time_order`, and the pairs and times in that order; the order is None when
    the rows are in it already (one series in time order: a copy's chunk), sparing the
    gathers."""
    if len(pairs) == 0:
        return None, pairs, ts
    if bool((pairs[1:] >= pairs[:-1]).all()):
        same_series = pairs[1:] == pairs[:-1]
        if bool(((ts[1:] > ts[:-1]) | ~same_series).all()):
            return None, pairs, ts
    # Fast path, the usual batch: a stable (radix) sort on the small series codes, then a
    # check that time already increases strictly within every series.
    count = int(pairs.max()) + 1
    small = pairs.astype(np.uint8 if count <= 1 << 8 else np.uint16) if count <= 1 << 16 else pairs
    order = np.argsort(small, kind="stable")
    # the codes in that order, written run by run rather than gathered
    runs = np.bincount(pairs, minlength=count)
    grouped_pairs = np.repeat(np.arange(count, dtype=pairs.dtype), runs)
    grouped_ts = ts[order]
    rising = grouped_ts[1:] > grouped_ts[:-1]
    starts = np.cumsum(runs)[:-1]  # where each series after the first starts
    rising[starts[(starts > 0) & (starts < len(ts))] - 1] = True  # its time may start anywhere
    if bool(rising.all()):
        return order, grouped_pairs, grouped_ts
    # Out of order or repeated keys: sort on both (lexsort is stable, so the last of equal
    # keys stays last) and drop every row followed by one with the same key.
    order = np.asarray(np.lexsort((ts, pairs)), dtype=np.intp)
    grouped_pairs, grouped_ts = pairs[order], ts[order]
    repeated = (grouped_pairs[1:] == grouped_pairs[:-1]) & (grouped_ts[1:] == grouped_ts[:-1])
    kept: npt.NDArray[np.intp] = order[np.append(~repeated, True)]
    return kept, pairs[kept], ts[kept]

"""Column helpers shared by the store backends: series codes and write order of a batch.

Pure functions over `ReadingBatch` columns; no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa


def codes(column: npt.NDArray[np.object_]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Integer codes of a string column and the distinct strings they index.

    Hash-based through Arrow: np.unique sorts Python strings, ~75 ms per 100k rows here,
    against ~10 ms for Arrow's conversion and dictionary encoding.
    """
    first = column[0]
    # One value throughout (a quantity column, a one-meter batch) needs no hashing; the
    # cheap look at the last element spares the full comparison of a mixed column.
    if isinstance(first, str) and column[-1] == first and bool((column == first).all()):
        return np.zeros(len(column), dtype=np.int64), [first]
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
    # Fast path, the usual batch: a stable (radix) sort on the small series codes, then a
    # check that time already increases strictly within every series.
    small = pairs.astype(np.uint16) if int(pairs.max()) < (1 << 16) else pairs
    order = np.argsort(small, kind="stable")
    grouped_pairs, grouped_ts = pairs[order], ts[order]
    same_series = grouped_pairs[1:] == grouped_pairs[:-1]
    if ((grouped_ts[1:] > grouped_ts[:-1]) | ~same_series).all():
        return order
    # Out of order or repeated keys: sort on both (lexsort is stable, so the last of equal
    # keys stays last) and drop every row followed by one with the same key.
    order = np.asarray(np.lexsort((ts, pairs)), dtype=np.intp)
    grouped_pairs, grouped_ts = pairs[order], ts[order]
    repeated = (grouped_pairs[1:] == grouped_pairs[:-1]) & (grouped_ts[1:] == grouped_ts[:-1])
    kept: npt.NDArray[np.intp] = order[np.append(~repeated, True)]
    return kept

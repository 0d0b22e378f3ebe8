"""The stores' column helpers: string codes by object identity (and by value where objects
differ), and the series-and-time order of a batch, against a plain reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.columns import codes, factorize_pairs, group_by_series, series_time_order


def objects(*texts: str) -> npt.NDArray[np.object_]:
    column = np.empty(len(texts), dtype=object)
    column[:] = list(texts)
    return column


def fresh(text: str) -> str:
    """An equal string in a new object."""
    return "".join(list(text))


def test_equal_strings_in_different_objects_get_one_code() -> None:
    a, b = "meter-1", "meter-2"
    column = objects(a, b, fresh(a), b, fresh(b), a)
    assert column[0] is not column[2]
    got, strings = codes(column)
    assert strings == ["meter-1", "meter-2"]  # in the order they first appear
    assert got.tolist() == [0, 1, 0, 1, 1, 0]


def test_an_object_first_seen_after_the_sample_is_coded() -> None:
    column = np.empty(10_000, dtype=object)
    column.fill("a")
    column[9_000:] = "b"  # not in the first 4,096 rows
    column[9_999] = fresh("a")
    got, strings = codes(column)
    assert strings == ["a", "b"]
    assert got[:9_000].tolist() == [0] * 9_000
    assert got[9_000:9_999].tolist() == [1] * 999
    assert got[9_999] == 0


def test_many_distinct_objects_are_hashed_by_value() -> None:
    column = np.array([fresh(f"m{i % 7}") for i in range(5_000)], dtype=object)
    got, strings = codes(column)
    assert strings == [f"m{i}" for i in range(7)]
    assert got.tolist() == [i % 7 for i in range(5_000)]
    same = np.array([fresh("q") for _ in range(5_000)], dtype=object)
    assert codes(same)[1] == ["q"]
    assert not codes(same)[0].any()


@pytest.mark.parametrize(
    "column",
    [
        np.array(["a", None], dtype=object),
        np.array([1, 2], dtype=object),
        np.array(["a", 3] * 3_000, dtype=object),
        np.array(["a", "b"]),  # not an object array
    ],
    ids=["None", "ints", "many with an int", "unicode dtype"],
)
def test_non_strings_are_refused(column: npt.NDArray[np.object_]) -> None:
    with pytest.raises(ValueError, match="must be"):
        codes(column)


def test_pairs_of_a_batch() -> None:
    meter = objects("m1", "m2", "m1", "m2", "m1")
    quantity = objects("p", "p", "e", "p", "p")
    got, pairs = factorize_pairs(meter, quantity)
    assert [pairs[i] for i in got.tolist()] == list(zip(meter, quantity, strict=True))
    one_quantity = objects("p", "p", "p")
    got, pairs = factorize_pairs(objects("b", "a", "b"), one_quantity)
    assert [pairs[i] for i in got.tolist()] == [("b", "p"), ("a", "p"), ("b", "p")]


def reference_order(pairs: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]) -> list[int]:
    """Sorted by (series, time), the last row of a repeated key kept."""
    last = {(int(p), int(t)): i for i, (p, t) in enumerate(zip(pairs, ts, strict=True))}
    return [last[key] for key in sorted(last)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 300), st.integers(-5, 5)), min_size=1, max_size=60),
    st.booleans(),
)
def test_series_time_order_matches_the_reference(
    rows: list[tuple[int, int]], sorted_rows: bool
) -> None:
    if sorted_rows:
        rows = sorted(set(rows))
    pairs = np.array([p for p, _ in rows], dtype=np.int64)
    ts = np.array([t for _, t in rows], dtype=np.int64)
    want = reference_order(pairs, ts)
    assert series_time_order(pairs, ts).tolist() == want
    order, grouped_pairs, grouped_ts = group_by_series(pairs, ts)
    assert (list(range(len(rows))) if order is None else order.tolist()) == want
    assert grouped_pairs.tolist() == pairs[want].tolist()
    assert grouped_ts.tolist() == ts[want].tolist()

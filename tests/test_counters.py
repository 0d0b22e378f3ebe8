"""Consumption from cumulative registers: rows of worked examples (samples in, buckets out)."""

from __future__ import annotations

import numpy as np
import pytest

from processing.counters import EventKind, bucket_consumption

H = 3_600_000
Q = H // 4


def _steady(hours: int = 6, kwh_per_quarter: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(0, hours * H + 1, Q, dtype=np.int64)
    return ts, 1000.0 + np.arange(len(ts)) * kwh_per_quarter


EDGES = np.arange(0, 6 * H + 1, H, dtype=np.int64)


def test_steady_register() -> None:
    ts, v = _steady()
    c = bucket_consumption(ts, v, EDGES)
    assert c.value.tolist() == [10.0] * 6
    assert not c.estimated.any()
    assert c.events == ()


def test_boundaries_between_samples_are_interpolated() -> None:
    ts, v = _steady()
    shifted = ts + Q // 2  # samples at :07:30, :22:30, ...
    c = bucket_consumption(shifted, v, EDGES)
    assert np.isnan(c.value[0])  # no sample before the first edge
    assert c.value[1:].tolist() == pytest.approx([10.0] * 5)


def test_a_spike_is_dropped_not_counted() -> None:
    ts, v = _steady()
    v = v.copy()
    v[5] = 99_999.0
    c = bucket_consumption(ts, v, EDGES)
    assert c.value.sum() == pytest.approx(60.0)
    assert [e.kind for e in c.events] == [EventKind.GLITCH]


def test_rollover_is_taken_modulo_the_register() -> None:
    ts, _ = _steady()
    modulus = 100_000.0
    v = (99_990.0 + np.arange(len(ts)) * 2.5) % modulus
    c = bucket_consumption(ts, v, EDGES, rollover=modulus)
    assert c.value.tolist() == pytest.approx([10.0] * 6)
    assert [e.kind for e in c.events] == [EventKind.ROLLOVER]


def test_reset_counts_from_zero_and_is_never_negative() -> None:
    ts, v = _steady()
    v = v.copy()
    v[10:] = np.arange(len(v) - 10) * 2.5 + 2.5  # a new register starting near zero
    c = bucket_consumption(ts, v, EDGES)
    assert (c.value >= 0).all()
    assert c.value.sum() == pytest.approx(60.0)
    (event,) = c.events
    assert event.kind is EventKind.RESET
    assert event.consumption == pytest.approx(2.5)


def test_float32_rounding_a_hair_back_is_neither_a_reset_nor_consumption() -> None:
    # regression: the demo's history wrote 397,208.14 kWh, the live meter's float32 register
    # then read 397,208.125 for an hour of the night; taken as a reset, the whole register
    # (397 MWh) was credited to one interval and a counter_reset alarm raised
    ts = np.arange(0, 16 * 900_000, 900_000, dtype=np.int64)
    v = np.full(len(ts), 397_208.14)
    v[4:12] = np.float32(397_208.14)  # 397,208.125: a plateau, not a one-sample glitch
    v[12:] = 397_208.14 + np.arange(1, len(ts) - 11) * 2.0
    c = bucket_consumption(ts, v, ts[[0, 8, 15]])
    assert c.events == ()
    assert c.value.tolist() == pytest.approx([0.0, v[15] - 397_208.14])


def test_a_reset_of_a_small_register_is_still_a_reset() -> None:
    ts = np.arange(0, 6 * 900_000, 900_000, dtype=np.int64)
    v = np.array([0.40, 0.45, 0.50, 0.0, 0.05, 0.10])  # cleared at 0.5 kWh: no jitter
    c = bucket_consumption(ts, v, ts[[0, 5]])
    assert [e.kind for e in c.events] == [EventKind.RESET]
    assert c.value.sum() == pytest.approx(0.10 + 0.10)


def test_a_reset_without_modulus_is_not_mistaken_for_a_rollover() -> None:
    ts, v = _steady()
    v = v.copy()
    v[12:] = v[12:] - v[12] + 0.5  # cleared to ~0
    c = bucket_consumption(ts, v, EDGES, rollover=None)
    assert [e.kind for e in c.events] == [EventKind.RESET]


def test_a_gap_is_spread_flagged_and_keeps_the_energy() -> None:
    ts, v = _steady()
    keep = np.ones(len(ts), dtype=bool)
    keep[9:17] = False  # 02:15 .. 04:00 missing: last sample 02:00, next 04:15
    c = bucket_consumption(ts[keep], v[keep], EDGES, max_gap_ms=65 * 60_000)
    assert c.value.sum() == pytest.approx(60.0)  # nothing lost
    assert c.estimated.tolist() == [False, False, True, True, True, False]
    (gap,) = c.events
    assert gap.kind is EventKind.GAP
    assert gap.consumption == pytest.approx(22.5)
    assert not c.usable[2:5].any()


def test_a_short_gap_is_not_flagged() -> None:
    ts, v = _steady()
    keep = np.ones(len(ts), dtype=bool)
    keep[5:7] = False  # 45 minutes without a sample
    c = bucket_consumption(ts[keep], v[keep], EDGES, max_gap_ms=65 * 60_000)
    assert not c.estimated.any()
    assert c.value.tolist() == pytest.approx([10.0] * 6)


def test_no_samples_no_numbers() -> None:
    c = bucket_consumption(np.array([], dtype=np.int64), np.array([]), EDGES)
    assert np.isnan(c.value).all()


def test_input_is_not_modified() -> None:
    ts, v = _steady()
    v[3] = 1e9
    before = v.copy()
    bucket_consumption(ts, v, EDGES)
    assert np.array_equal(v, before)

"""The `TimeSeriesStore` contract, one suite for every backend: each test runs against the
embedded DuckDB store (a file in tmp_path) and InfluxDB 1.6.7 in v1 mode (a database of its
own on the session's server), and both answer the same questions identically, rounding of
float sums aside. Calendar tests also run InfluxDB without `tz()` (fixed offsets per span).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.config import InfluxConfig
from core.readings import Reading, ReadingBatch, to_ms
from storage.base import Agg, Every, Series, TimeSeriesStore
from storage.duckdb_store import DuckDBStore
from storage.influx import InfluxStore

HOUR = 3_600_000
T0 = to_ms(datetime(2026, 3, 1, tzinfo=UTC))
RTOL = 1e-9  # float sums may add up in another order on the server

BACKENDS = ["duckdb", "influx"]
CALENDAR_BACKENDS = ["duckdb", "influx", "influx-offsets"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_ms(datetime(year, month, day, hour, minute, tzinfo=UTC))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    kind: str = request.param
    if kind == "duckdb":
        with DuckDBStore(tmp_path / "store.duckdb") as duck:
            yield duck
        return
    server = request.getfixturevalue("influxdb")
    database = request.getfixturevalue("influx_db")
    config = InfluxConfig(
        url=server.url, mode="v1", database=database, tz_clause=kind != "influx-offsets"
    )
    with InfluxStore(config) as influx:
        yield influx


def count(store: TimeSeriesStore, meter: str = "m1", quantity: str = "p") -> int:
    return len(store.read_raw(meter, quantity, 0, 2**53))


def values_by_ts(
    store: TimeSeriesStore, meter: str = "m1", quantity: str = "p"
) -> dict[int, float]:
    got = store.read_raw(meter, quantity, 0, 2**53)
    return dict(zip(got.ts_ms.tolist(), got.value.tolist(), strict=True))


# -- writing and reading back ----------------------------------------------------------


def test_is_a_time_series_store(store: TimeSeriesStore) -> None:
    assert isinstance(store, TimeSeriesStore)


def test_round_trip_returns_values_in_time_order(store: TimeSeriesStore) -> None:
    batch = ReadingBatch.from_readings(
        [
            Reading("m1", "p", T0 + 3000, 3.0),
            Reading("m2", "p", T0 + 1000, 21.0),
            Reading("m1", "p", T0 + 1000, 1.0),
            Reading("m1", "e", T0 + 1000, 100.0),
            Reading("m1", "p", T0 + 2000, 2.0),
        ]
    )
    assert store.write(batch) == 5

    got = store.read_raw("m1", "p", T0, T0 + 10_000)
    assert got.ts_ms.dtype == np.int64
    assert got.value.dtype == np.float64
    assert got.ts_ms.tolist() == [T0 + 1000, T0 + 2000, T0 + 3000]
    assert got.value.tolist() == [1.0, 2.0, 3.0]
    assert store.read_raw("m2", "p", T0, T0 + 10_000).value.tolist() == [21.0]
    assert store.read_raw("m1", "e", T0, T0 + 10_000).value.tolist() == [100.0]


def test_read_raw_range_is_start_inclusive_end_exclusive(store: TimeSeriesStore) -> None:
    store.write(ReadingBatch.for_series("m1", "p", [T0, T0 + 1, T0 + 2], [0.0, 1.0, 2.0]))
    assert store.read_raw("m1", "p", T0 + 1, T0 + 2).ts_ms.tolist() == [T0 + 1]
    assert len(store.read_raw("m1", "p", T0 + 2, T0 + 2)) == 0
    nothing = store.read_raw("m1", "p", T0 + 10, T0 + 20)  # a known series, no points there
    assert len(nothing) == 0
    assert nothing.ts_ms.dtype == np.int64


def test_unknown_series_read_as_empty(store: TimeSeriesStore) -> None:
    store.write(ReadingBatch.for_series("m1", "p", [T0], [1.0]))
    for meter, quantity in [("nope", "p"), ("m1", "nope")]:
        raw = store.read_raw(meter, quantity, 0, 2**53)
        assert len(raw) == 0
        assert raw.ts_ms.dtype == np.int64
        assert raw.value.dtype == np.float64
        assert len(store.aggregate(meter, quantity, 0, 2**53, Every.parse("1h"), Agg.MEAN)) == 0
    assert store.latest(["nope"]) == []


def test_empty_batch_writes_nothing(store: TimeSeriesStore) -> None:
    assert store.write(ReadingBatch.empty()) == 0
    assert store.series_keys() == []
    assert store.latest() == []


def test_rewriting_a_batch_leaves_the_same_points(store: TimeSeriesStore) -> None:
    batch = ReadingBatch.for_series("m1", "p", T0 + np.arange(100) * 1000, np.arange(100.0))
    store.write(batch)
    assert store.write(batch) == 100
    assert count(store) == 100
    assert values_by_ts(store) == {T0 + i * 1000: float(i) for i in range(100)}


def test_rewrite_with_new_values_keeps_one_point_with_the_new_value(store: TimeSeriesStore) -> None:
    ts = T0 + np.arange(10) * 1000
    store.write(ReadingBatch.for_series("m1", "p", ts, np.zeros(10)))
    store.write(ReadingBatch.for_series("m2", "p", ts, np.zeros(10)))
    # Half corrections of stored points, half new points after them.
    store.write(ReadingBatch.for_series("m1", "p", ts + 5000, np.ones(10)))

    got = values_by_ts(store)
    assert len(got) == 15
    assert got == {T0 + i * 1000: (0.0 if i < 5 else 1.0) for i in range(15)}
    assert values_by_ts(store, "m2") == {int(t): 0.0 for t in ts}


def test_duplicates_inside_a_batch_keep_the_last(store: TimeSeriesStore) -> None:
    batch = ReadingBatch.from_readings(
        [
            Reading("m1", "p", T0 + 1000, 1.0),
            Reading("m2", "p", T0 + 1000, 7.0),
            Reading("m1", "p", T0 + 2000, 2.0),
            Reading("m1", "p", T0 + 1000, 3.0),
            Reading("m1", "p", T0 + 1000, 4.0),
        ]
    )
    assert store.write(batch) == 3
    assert values_by_ts(store) == {T0 + 1000: 4.0, T0 + 2000: 2.0}
    assert values_by_ts(store, "m2") == {T0 + 1000: 7.0}
    # And against a stored point too.
    store.write(ReadingBatch.for_series("m1", "p", [T0 + 2000, T0 + 2000], [5.0, 6.0]))
    assert values_by_ts(store) == {T0 + 1000: 4.0, T0 + 2000: 6.0}


def test_out_of_order_backfill_older_than_the_newest_point(store: TimeSeriesStore) -> None:
    store.write(ReadingBatch.for_series("m1", "p", T0 + np.arange(10, 20) * 1000, np.ones(10)))
    # Older than everything stored, shuffled, one of them twice.
    older = np.array([5, 1, 3, 2, 4, 3]) * 1000 + T0
    store.write(ReadingBatch.for_series("m1", "p", older, [5.0, 1.0, 9.0, 2.0, 4.0, 3.0]))
    got = store.read_raw("m1", "p", 0, 2**53)
    assert got.ts_ms.tolist() == [T0 + i * 1000 for i in [1, 2, 3, 4, 5, *range(10, 20)]]
    assert got.value.tolist()[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]
    # A gap filled in the middle, then the same backfill again.
    middle = ReadingBatch.for_series("m1", "p", T0 + np.arange(6, 10) * 1000, np.full(4, 6.0))
    store.write(middle)
    store.write(middle)
    assert count(store) == 19
    assert store.latest() == [Reading("m1", "p", T0 + 19_000, 1.0)]


# -- aggregation -------------------------------------------------------------------------


def numpy_buckets(
    ts: np.ndarray, value: np.ndarray, bucket: np.ndarray, agg: Agg
) -> tuple[list[int], list[float]]:
    """The oracle: group by `bucket` (start ms of each point's bucket) with plain numpy."""
    starts, out = [], []
    for start in np.unique(bucket):
        inside = bucket == start
        t, v = ts[inside], value[inside]
        result = {
            Agg.MEAN: v.mean(),
            Agg.MIN: v.min(),
            Agg.MAX: v.max(),
            Agg.SUM: v.sum(),
            Agg.COUNT: float(len(v)),
            Agg.FIRST: v[np.argmin(t)],
            Agg.LAST: v[np.argmax(t)],
        }[agg]
        starts.append(int(start))
        out.append(float(result))
    return starts, out


@pytest.fixture
def irregular(store: TimeSeriesStore) -> tuple[np.ndarray, np.ndarray]:
    """Three days of irregular points of m1/p, written shuffled in two batches."""
    rng = np.random.default_rng(7)
    ts = np.unique(T0 + rng.integers(0, 3 * 24 * HOUR, 2000))
    value = rng.normal(50.0, 10.0, len(ts))
    shuffled = rng.permutation(len(ts))
    half = len(ts) // 2
    for part in (shuffled[:half], shuffled[half:]):
        store.write(ReadingBatch.for_series("m1", "p", ts[part], value[part]))
    store.write(ReadingBatch.for_series("m2", "p", ts, value + 1000))  # must not leak in
    return ts, value


@pytest.mark.parametrize("width", ["1h", "15m", "7h", "90s"])
def test_fixed_buckets_match_numpy(
    store: TimeSeriesStore, irregular: tuple[np.ndarray, np.ndarray], width: str
) -> None:
    ts, value = irregular
    every = Every.parse(width)
    start, end = T0 + HOUR // 2, T0 + 2 * 24 * HOUR + 123  # cuts through buckets
    inside = (ts >= start) & (ts < end)
    bucket = ts[inside] // every.approx_ms * every.approx_ms
    for agg in Agg:
        want_ts, want = numpy_buckets(ts[inside], value[inside], bucket, agg)

        got = store.aggregate("m1", "p", start, end, every, agg)

        assert got.ts_ms.tolist() == want_ts, agg
        np.testing.assert_allclose(got.value, want, rtol=RTOL, err_msg=str(agg))


def local_day_start(ts_ms: int, tz: ZoneInfo, days: int = 1) -> int:
    """UTC ms of local midnight starting the `days`-day bucket (counted from 1970-01-01)."""
    local = datetime.fromtimestamp(ts_ms / 1000, tz=tz).date()
    ordinal = (local - date(1970, 1, 1)).days // days * days
    first = date.fromordinal(date(1970, 1, 1).toordinal() + ordinal)
    return to_ms(datetime(first.year, first.month, first.day, tzinfo=tz))


def local_month_start(ts_ms: int, tz: ZoneInfo) -> int:
    local = datetime.fromtimestamp(ts_ms / 1000, tz=tz)
    return to_ms(datetime(local.year, local.month, 1, tzinfo=tz))


@pytest.mark.parametrize(
    ("tz", "start"),
    [
        ("Asia/Shanghai", utc(2025, 12, 20)),
        ("Europe/Berlin", utc(2026, 3, 20)),  # across the spring change
        ("Europe/Berlin", utc(2026, 10, 15)),  # across the autumn change
        ("America/New_York", utc(2026, 10, 25)),
        ("Asia/Kathmandu", utc(2026, 1, 1)),  # +05:45
        ("Australia/Lord_Howe", utc(2026, 3, 25)),  # DST shift of 30 minutes
        ("Africa/Monrovia", utc(1971, 12, 1)),  # -00:44:30 until 1972: no pre-bucketing
    ],
)
@pytest.mark.parametrize("width", ["1d", "2d", "1mo"])
@pytest.mark.parametrize("store", CALENDAR_BACKENDS, indirect=True)
def test_calendar_buckets_match_zoneinfo(
    store: TimeSeriesStore, tz: str, start: int, width: str
) -> None:
    rng = np.random.default_rng(11)
    ts = np.unique(start + rng.integers(0, 75 * 24 * HOUR, 3000))
    value = rng.normal(10.0, 3.0, len(ts))
    store.write(ReadingBatch.for_series("m1", "p", ts, value))
    every = Every.parse(width)
    zone = ZoneInfo(tz)
    if every.unit == "mo":
        bucket = np.array([local_month_start(int(t), zone) for t in ts])
    else:
        bucket = np.array([local_day_start(int(t), zone, every.count) for t in ts])
    for agg in Agg:
        want_ts, want = numpy_buckets(ts, value, bucket, agg)

        got = store.aggregate("m1", "p", start, start + 75 * 24 * HOUR, every, agg, tz=tz)

        assert got.ts_ms.tolist() == want_ts, agg
        np.testing.assert_allclose(got.value, want, rtol=RTOL, err_msg=str(agg))


def test_shanghai_days_start_at_16_utc(store: TimeSeriesStore) -> None:
    store.write(
        ReadingBatch.for_series(
            "m1", "p", [utc(2026, 3, 1, 15, 30), utc(2026, 3, 1, 16, 30)], [1, 2]
        )
    )
    got = store.aggregate(
        "m1", "p", utc(2026, 2, 1), utc(2026, 4, 1), Every.parse("1d"), Agg.SUM, "Asia/Shanghai"
    )
    assert got.ts_ms.tolist() == [utc(2026, 2, 28, 16), utc(2026, 3, 1, 16)]
    assert got.value.tolist() == [1.0, 2.0]


def test_berlin_spring_dst_day_lasts_23_hours(store: TimeSeriesStore) -> None:
    hours = utc(2026, 3, 27, 23) + np.arange(24 + 23 + 24) * HOUR
    store.write(ReadingBatch.for_series("m1", "p", hours, np.ones(len(hours))))
    got = store.aggregate(
        "m1", "p", hours[0], hours[-1] + HOUR, Every.parse("1d"), Agg.COUNT, "Europe/Berlin"
    )
    # Local midnights: 28 March (CET, +1), 29 March (CET), 30 March (CEST, +2).
    assert got.ts_ms.tolist() == [utc(2026, 3, 27, 23), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)]
    assert got.value.tolist() == [24.0, 23.0, 24.0]
    assert got.ts_ms[2] - got.ts_ms[1] == 23 * HOUR


def test_shanghai_months(store: TimeSeriesStore) -> None:
    ts = [utc(2026, 1, 31, 15, 59), utc(2026, 1, 31, 16), utc(2026, 2, 27), utc(2026, 2, 28, 16)]
    store.write(ReadingBatch.for_series("m1", "p", ts, [1, 2, 3, 4]))
    got = store.aggregate(
        "m1", "p", utc(2026, 1, 1), utc(2026, 6, 1), Every.parse("1mo"), Agg.SUM, "Asia/Shanghai"
    )
    assert got.ts_ms.tolist() == [
        utc(2025, 12, 31, 16),
        utc(2026, 1, 31, 16),
        utc(2026, 2, 28, 16),
    ]
    assert got.value.tolist() == [1.0, 5.0, 4.0]


def test_points_belong_to_the_range_by_their_own_timestamp(store: TimeSeriesStore) -> None:
    ts = [utc(2026, 3, 1, 16), utc(2026, 3, 1, 20), utc(2026, 3, 2, 10)]
    store.write(ReadingBatch.for_series("m1", "p", ts, [1, 2, 4]))
    # The range starts inside the Shanghai day that began at 16:00Z.
    got = store.aggregate(
        "m1", "p", utc(2026, 3, 1, 18), utc(2026, 3, 3), Every.parse("1d"), Agg.SUM, "Asia/Shanghai"
    )
    assert got.ts_ms.tolist() == [utc(2026, 3, 1, 16)]
    assert got.value.tolist() == [6.0]


def test_unknown_time_zone_is_refused(store: TimeSeriesStore) -> None:
    store.write(ReadingBatch.for_series("m1", "p", [T0], [1.0]))
    with pytest.raises(ValueError, match="Mars/Olympus"):
        store.aggregate("m1", "p", 0, 2**53, Every.parse("1d"), Agg.SUM, "Mars/Olympus")


@pytest.mark.parametrize(("count", "unit"), [(0, "h"), (2, "mo"), (1, "w")])
def test_invalid_bucket_widths_cannot_be_built(count: int, unit: str) -> None:
    with pytest.raises(ValueError, match="bucket"):
        Every(count, unit)


# -- latest and keys -----------------------------------------------------------------


def test_latest_is_the_newest_point_of_every_series(store: TimeSeriesStore) -> None:
    store.write(
        ReadingBatch.from_readings(
            [
                Reading("m1", "p", T0 + 2000, 2.0),
                Reading("m1", "p", T0 + 3000, 3.0),
                Reading("m1", "e", T0 + 1000, 10.0),
                Reading("m2", "p", T0 + 5000, 5.0),
                Reading("m3", "p", T0 - 10 * HOUR, 9.0),
            ]
        )
    )
    store.write(ReadingBatch.for_series("m1", "p", [T0 + 1000], [1.0]))  # older: no change
    assert store.latest() == [
        Reading("m1", "e", T0 + 1000, 10.0),
        Reading("m1", "p", T0 + 3000, 3.0),
        Reading("m2", "p", T0 + 5000, 5.0),
        Reading("m3", "p", T0 - 10 * HOUR, 9.0),
    ]
    assert store.latest(["m2", "m3", "nope"]) == [
        Reading("m2", "p", T0 + 5000, 5.0),
        Reading("m3", "p", T0 - 10 * HOUR, 9.0),
    ]
    assert store.latest([]) == []
    store.write(ReadingBatch.for_series("m1", "p", [T0 + 3000], [33.0]))  # corrected newest
    assert store.latest(["m1"])[1] == Reading("m1", "p", T0 + 3000, 33.0)


def test_series_keys_are_sorted(store: TimeSeriesStore) -> None:
    store.write(
        ReadingBatch.from_readings(
            [Reading("m2", "p", T0, 1.0), Reading("m1", "p", T0, 1.0), Reading("m1", "e", T0, 1.0)]
        )
    )
    assert store.series_keys() == [("m1", "e"), ("m1", "p"), ("m2", "p")]


# -- the file: persistence, ownership ------------------------------------------------


def test_series_is_the_store_result_type(store: TimeSeriesStore) -> None:
    store.write(ReadingBatch.for_series("m1", "p", [T0], [1.0]))
    assert isinstance(store.read_raw("m1", "p", 0, 2**53), Series)


# -- consumption from counters -------------------------------------------------------


def test_consumption_worked_example(store: TimeSeriesStore) -> None:
    at = {  # a kWh register read at odd times: a reset to 2 in hour 3, nothing in hour 4
        utc(2026, 3, 1, 0, 30): 100.0,
        utc(2026, 3, 1, 1, 30): 103.0,
        utc(2026, 3, 1, 2, 30): 106.0,
        utc(2026, 3, 1, 3, 10): 2.0,
        utc(2026, 3, 1, 3, 50): 4.0,
        utc(2026, 3, 1, 5, 20): 10.0,
    }
    store.write(ReadingBatch.for_series("m1", "energy_import", list(at), list(at.values())))
    hourly = Every.parse("1h")

    got = store.consumption("m1", "energy_import", utc(2026, 3, 1, 1), utc(2026, 3, 1, 6), hourly)

    # 01:00 and 02:00 rise by 3 from the hour before (the window starts at 00:00); 03:00 is
    # a reset and counts the new value, 4; 05:00 takes the increase over the silent hour 04.
    assert got.ts_ms.tolist() == [utc(2026, 3, 1, h) for h in (1, 2, 3, 5)]
    assert got.value.tolist() == [3.0, 3.0, 4.0, 6.0]
    # A start inside a bucket takes the whole bucket.
    late = store.consumption(
        "m1", "energy_import", utc(2026, 3, 1, 2, 45), utc(2026, 3, 1, 6), hourly
    )
    assert late.ts_ms.tolist() == [utc(2026, 3, 1, h) for h in (2, 3, 5)]
    assert late.value.tolist() == [3.0, 4.0, 6.0]
    # No reading in the bucket before the first: nothing to subtract from.
    assert (
        len(store.consumption("m1", "energy_import", utc(2026, 3, 1, 5), T0 + 9 * HOUR, hourly))
        == 0
    )
    # The end is exclusive, and an unknown or empty range is empty.
    short = store.consumption("m1", "energy_import", utc(2026, 3, 1, 1), utc(2026, 3, 1, 3), hourly)
    assert short.value.tolist() == [3.0, 3.0]
    assert len(store.consumption("nope", "energy_import", 0, 2**53, hourly)) == 0
    assert len(store.consumption("m1", "energy_import", T0, T0, hourly)) == 0


def oracle_consumption(
    ts: np.ndarray,
    value: np.ndarray,
    start: int,
    end: int,
    bucket_of: object,
) -> tuple[list[int], list[float]]:
    """The rule of `storage.base`, the slow way: every bucket's last value from the bucket
    before the first on, then differences, a decrease counting the new value."""
    assert callable(bucket_of)
    first = bucket_of(start)
    window = bucket_of(first - 1)
    lasts: dict[int, float] = {}
    for t, v in sorted(zip(ts.tolist(), value.tolist(), strict=True)):
        if window <= t < end:
            lasts[bucket_of(t)] = v
    buckets = sorted(lasts)
    out_ts, out = [], []
    for before, bucket in itertools.pairwise(buckets):
        if bucket >= first:
            step = lasts[bucket] - lasts[before]
            out_ts.append(bucket)
            out.append(lasts[bucket] if step < 0 else step)
    return out_ts, out


@pytest.mark.parametrize(
    ("width", "tz", "start"),
    [
        ("15m", "UTC", T0),
        ("1h", "UTC", T0 + 7 * 60_000),  # starts inside a bucket
        ("1d", "Asia/Shanghai", utc(2026, 3, 3, 16)),
        ("1d", "Europe/Berlin", utc(2026, 3, 25)),  # across the spring change
        ("2d", "Europe/Berlin", utc(2026, 3, 20, 5)),
        ("1mo", "Asia/Shanghai", utc(2026, 1, 10)),
    ],
)
@pytest.mark.parametrize("store", CALENDAR_BACKENDS, indirect=True)
def test_consumption_matches_the_rule(
    store: TimeSeriesStore, width: str, tz: str, start: int
) -> None:
    rng = np.random.default_rng(5)
    every = Every.parse(width)
    span = {"m": 3, "h": 3, "d": 80, "mo": 400}[every.unit] * 24 * HOUR
    ts = np.unique(start - span // 4 + rng.integers(0, span, 1500))
    ts = ts[(ts < start + span // 8) | (ts > start + span // 6)]  # a gap in the readings
    steps = rng.exponential(0.8, len(ts))
    value = 5_000.0 + np.cumsum(steps)
    value[len(ts) // 2 :] -= value[len(ts) // 2] - 1.5  # a meter swap: the register restarts
    store.write(ReadingBatch.for_series("m1", "energy_import", ts, value))
    end = start + span // 2 + 12_345
    zone = ZoneInfo(tz)
    if every.unit == "mo":

        def bucket_of(t: int) -> int:
            return local_month_start(t, zone)
    elif every.unit == "d":

        def bucket_of(t: int) -> int:
            return local_day_start(t, zone, every.count)
    else:

        def bucket_of(t: int) -> int:
            return t // every.approx_ms * every.approx_ms

    want_ts, want = oracle_consumption(ts, value, start, end, bucket_of)

    got = store.consumption("m1", "energy_import", start, end, every, tz)

    assert len(want) > 3
    assert got.ts_ms.tolist() == want_ts
    np.testing.assert_allclose(got.value, want, rtol=RTOL)
    assert (got.value >= 0).all()


def test_consumption_refuses_an_unknown_time_zone(store: TimeSeriesStore) -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        store.consumption("m1", "e", 0, 2**53, Every.parse("1d"), "Mars/Olympus")

"""Store faults on real parts: a full file system (a tmpfs this test mounts), timestamps no
store can hold, corrupt store files, unusable spool paths.

The full-disk tests mount a small tmpfs (we run as root); where mounting is refused they
skip saying why, and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyStore, Role
from collectors.availability import Availability
from collectors.writer import StoreWriter
from core.config import InfluxConfig, StorageConfig
from core.errors import BadReadings, ConfigError, SpoolFull, StoreError, StoreUnavailable
from core.health import Health
from core.readings import STORABLE_FROM_MS, STORABLE_UNTIL_MS, ReadingBatch, storable
from epcmon.sites import load
from storage import open_store
from storage.duckdb_store import DuckDBStore
from storage.influx import InfluxStore
from storage.spool import Spool, SpoolingStore
from tests.conftest import IN_CI, InfluxServer

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_772_323_200_000  # 2026-03-01T00:00Z


# -- a real, small, full file system ---------------------------------------------------------


class SmallFs:
    """A tmpfs of a few MB mounted for one test, and a ballast file that fills it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ballast = root / "ballast"

    def fill(self, leave: int = 0) -> None:
        """Fill the file system, then give back `leave` bytes."""
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            block = b"\0" * 65536
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(block) == 1:
                        break
                    block = block[: len(block) // 2]
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
        finally:
            os.close(fd)

    def free(self) -> None:
        self.ballast.unlink()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFs]:
    where = tmp_path / "fs"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "epcmon-test", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield SmallFs(where)
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def minutes(index: int, n: int, meters: int = 2) -> ReadingBatch:
    """Block `index` of `n` one-second points per meter, meters interleaved."""
    ts = np.repeat(T0 + (index * n + np.arange(n)) * 1000, meters)
    names = np.array([f"E-{i:02d}" for i in range(meters)], dtype=object)
    return ReadingBatch(
        meter_id=np.tile(names, n),
        quantity=np.full(len(ts), "power", dtype=object),
        ts_ms=ts,
        value=np.arange(len(ts), dtype=np.float64) + index * 0.5,
    )


def stored_exactly(path: Path, acknowledged: list[ReadingBatch]) -> None:
    """Every acknowledged reading is in the file with its value, and nothing twice."""
    expected = ReadingBatch.concat(acknowledged)
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT series_id, ts FROM readings "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()
        assert dupes == (0,)
        rows = con.execute(
            "SELECT meter_id, epoch_ms(ts), value FROM readings JOIN series USING (series_id)"
        ).fetchall()
    got = {(m, t): v for m, t, v in rows}
    want = {
        (str(m), int(t)): float(v)
        for m, t, v in zip(expected.meter_id, expected.ts_ms, expected.value, strict=True)
    }
    assert len(got) == len(rows)
    assert got == want


def test_a_full_disk_is_a_store_error_and_writes_resume_when_space_is_freed(
    small_fs: SmallFs,
) -> None:
    path = small_fs.root / "store.duckdb"
    acknowledged: list[ReadingBatch] = []
    store = DuckDBStore(path)
    first = minutes(0, 5_000)
    store.write(first)
    acknowledged.append(first)
    before = store.latest()

    small_fs.fill()
    refused = minutes(1, 5_000)
    for _ in range(3):  # every try fails the same clean way, however often it is retried
        with pytest.raises(StoreError, match="No space left on device"):
            store.write(refused)
    assert store.latest() == before  # memory is not updated for a failed write
    assert len(store.read_raw("E-00", "power", 0, 2**53)) == 5_000

    small_fs.free()
    store.write(refused)  # the writer's retry
    acknowledged.append(refused)
    later = minutes(2, 5_000)
    store.write(later)
    acknowledged.append(later)
    assert store.latest()[0].ts_ms == int(later.ts_ms.max())
    store.close()
    stored_exactly(path, acknowledged)


def test_a_checkpoint_failing_on_a_full_disk_does_not_end_the_store(small_fs: SmallFs) -> None:
    """Small writes grow DuckDB's WAL until a commit checkpoints it; on a full disk that
    checkpoint fails and DuckDB invalidates the whole database. The store reopens it."""
    path = small_fs.root / "store.duckdb"
    acknowledged: list[ReadingBatch] = []
    store = DuckDBStore(path)
    first = minutes(0, 20_000)
    store.write(first)
    acknowledged.append(first)
    small_fs.fill(leave=18_000_000)  # room for the WAL to reach its checkpoint, not for that
    index = 1
    failed: ReadingBatch | None = None
    while failed is None and index < 200:
        batch = minutes(index, 20_000)
        try:
            store.write(batch)
        except StoreError:
            failed = batch
        else:
            acknowledged.append(batch)
        index += 1
    assert failed is not None, "the file system never filled up"
    with pytest.raises(StoreError):
        store.write(failed)
    # reads answer from what was committed, or say the store is unavailable: never crash
    with contextlib.suppress(StoreUnavailable):
        assert len(store.read_raw("E-01", "power", 0, 2**53)) >= 20_000

    small_fs.free()
    store.write(failed)
    assert store.reopened >= 1  # DuckDB invalidated the database; the store opened it again
    acknowledged.append(failed)
    after = minutes(index, 20_000)
    store.write(after)
    acknowledged.append(after)
    points = sum(len(b) for b in acknowledged) // 2
    assert len(store.read_raw("E-01", "power", 0, 2**53)) == points
    assert [r.ts_ms for r in store.latest()] == [int(after.ts_ms.max())] * 2
    store.close()
    stored_exactly(path, acknowledged)


def test_the_store_writer_pauses_ingest_and_says_so_until_the_disk_has_room(
    small_fs: SmallFs,
) -> None:
    health = Health()
    availability = Availability()
    store = DuckDBStore(small_fs.root / "store.duckdb")
    writer = StoreWriter(store, availability, health=health)

    async def scenario() -> None:
        await writer(minutes(0, 100))
        small_fs.fill()
        for index in (1, 2, 3):
            with pytest.raises(StoreError):
                await writer(minutes(index, 100))
        assert health.is_degraded("store")
        detail = health.snapshot().conditions["store"].detail
        assert "No space left on device" in detail
        assert detail.endswith("ingest paused")
        assert health.transitions == 1  # one outage, one transition, however many failures
        small_fs.free()
        await writer(minutes(1, 100))
        assert not health.is_degraded("store")

    asyncio.run(scenario())
    assert availability.counters["store_write_failures"] == 3
    assert availability.counters["readings_stored"] == 400
    store.close()


# -- timestamps no store can hold --------------------------------------------------------------


def test_the_storable_range_is_one_definition() -> None:
    assert STORABLE_FROM_MS == 0
    assert STORABLE_UNTIL_MS == 7_258_118_400_000  # 2200-01-01T00:00Z
    assert storable([0, T0, STORABLE_UNTIL_MS - 1]).all()
    assert not storable([-1, STORABLE_UNTIL_MS, 10**17, 2**62]).any()


HOSTILE_TIMES = [10**17, 2**62, -1, -2_208_988_800_000, 32_503_680_000_000, STORABLE_UNTIL_MS]
"""1e17 ms (year 248,073: overflowed `ts * 1000`), 2^62, before 1970, 1900, 3000, 2200."""


@pytest.mark.parametrize("bad", HOSTILE_TIMES)
def test_duckdb_refuses_times_it_cannot_hold_as_bad_data(tmp_path: Path, bad: int) -> None:
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        store.write(ReadingBatch.for_series("E-01", "power", [T0], [1.0]))
        batch = ReadingBatch.for_series("E-01", "power", [T0 + 1000, bad], [2.0, 3.0])
        with pytest.raises(BadReadings, match="outside the storable range") as refused:
            store.write(batch)
        assert not isinstance(refused.value, StoreError)  # not "retry later"
        assert refused.value.rows == (1,)
        assert "E-01 power" in str(refused.value)
        assert [(r.ts_ms, r.value) for r in store.latest()] == [(T0, 1.0)]
        assert store.read_raw("E-01", "power", 0, 2**62).ts_ms.tolist() == [T0]


def test_a_refused_time_cannot_make_the_api_answer_500(tmp_path: Path) -> None:
    site = load(ROOT / "sites/luan-admin-center.toml")
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _, token = keys.create(Role.VIEWER)
    with DuckDBStore(tmp_path / "store.duckdb") as store:
        store.write(ReadingBatch.for_series("E-D01", "power", [T0], [4.0]))
        with pytest.raises(BadReadings):
            store.write(ReadingBatch.for_series("E-D01", "power", [10**17], [5.0]))
        app = create_app(site, store, keys=keys, data_dir=tmp_path)
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get(
                "/api/v1/meters/E-D01/latest", headers={"Authorization": f"Bearer {token}"}
            )
    keys.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["time"] == "2026-03-01T00:00:00Z"


def test_the_spooling_store_refuses_bad_times_and_spools_nothing(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "store.duckdb") as duck:
        store = SpoolingStore(duck, Spool(tmp_path / "spool.sqlite3"))
        with pytest.raises(BadReadings):
            store.write(ReadingBatch.for_series("E-01", "power", [10**17], [1.0]))
        assert store.spool.depth == 0
        store.spool.close()


# -- files that are not what they should be ----------------------------------------------------


def corrupt_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.duckdb"
    with duckdb.connect(str(good)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS a FROM range(100000)")
    data = good.read_bytes()
    files = {
        "random bytes": os.urandom(20_000),
        "a text file": b"hello\n",
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "flipped blocks": data[:5000] + os.urandom(4000) + data[9000:],
    }
    out = {}
    for name, content in files.items():
        path = tmp_path / f"{name.replace(' ', '-')}.duckdb"
        path.write_bytes(content)
        out[name] = path
    lite = tmp_path / "sqlite.duckdb"
    with sqlite3.connect(lite) as con:
        con.execute("CREATE TABLE a (b)")
    con.close()
    out["a SQLite file"] = lite
    (tmp_path / "dir.duckdb").mkdir()
    out["a directory"] = tmp_path / "dir.duckdb"
    return out


def test_a_corrupt_or_foreign_store_file_is_one_clear_error(tmp_path: Path) -> None:
    for name, path in corrupt_files(tmp_path).items():
        with pytest.raises(StoreUnavailable) as refused:
            DuckDBStore(path)
        message = str(refused.value)
        assert str(path) in message, name
        assert "\n" not in message, name
        assert "backup" in message or "directory" in message, (name, message)
        # and the file can be opened again once it is replaced (nothing left registered)
        path.unlink() if path.is_file() else path.rmdir()
        DuckDBStore(path).close()


def test_an_unusable_directory_for_the_store_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreUnavailable, match="a-file"):
        DuckDBStore(tmp_path / "a-file" / "store.duckdb")


SPOOL_SITE = """
[site]
id = "t"
name = "测试"
latitude = 31.7
longitude = 116.5

[[buildings]]
id = "main"
name = "主楼"
floor_area_m2 = 1000
"""


@pytest.mark.parametrize("how", ["parent is a file", "path is a directory", "not a spool"])
def test_an_unusable_spool_path_names_the_file_and_the_key(tmp_path: Path, how: str) -> None:
    (tmp_path / "a-file").write_text("x")
    spool_path = {
        "parent is a file": tmp_path / "a-file" / "spool.sqlite3",
        "path is a directory": tmp_path,
        "not a spool": tmp_path / "garbage.sqlite3",
    }[how]
    if how == "not a spool":
        spool_path.write_bytes(os.urandom(8192))
    config = StorageConfig.model_validate({"backend": "influx", "spool": {"path": str(spool_path)}})
    site_file = tmp_path / "site.toml"
    site_file.write_text(SPOOL_SITE, encoding="utf-8")
    site = load(site_file)
    with pytest.raises(ConfigError) as refused:
        open_store(config, site, environ={"EPCMON_INFLUX_TOKEN": "t"})
    message = str(refused.value)
    assert str(site_file) in message
    assert "[storage.spool]" in message
    assert "path" in message
    assert str(spool_path) in message
    assert "\n" not in message


def test_a_read_only_spool_file_system_is_a_config_error(small_fs: SmallFs) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs.root)], check=True)
    with pytest.raises(ConfigError, match=r"\[storage.spool\]: path: .*Read-only"):
        Spool(small_fs.root / "spool.sqlite3")


# -- InfluxDB: times it cannot hold, points it refuses ----------------------------------------


def influx_config(server: InfluxServer, database: str) -> InfluxConfig:
    return InfluxConfig(
        url=server.url, mode="v1", database=database, retries=0, retry_backoff_s=0.0
    )


def influx_count(server: InfluxServer, database: str) -> int:
    answer = server.query('SELECT count("value") FROM "power"', database)
    series = answer["results"][0].get("series")  # type: ignore[index]
    return int(series[0]["values"][0][1]) if series else 0


@pytest.mark.parametrize("bad", [10**17, -1, STORABLE_UNTIL_MS])
def test_influx_refuses_times_it_cannot_hold_before_asking_the_server(
    influxdb: InfluxServer, influx_db: str, bad: int
) -> None:
    with (
        InfluxStore(influx_config(influxdb, influx_db)) as store,
        pytest.raises(BadReadings, match="outside the storable range"),
    ):
        store.write(ReadingBatch.for_series("E-01", "power", [T0, bad], [1.0, 2.0]))
    assert influx_count(influxdb, influx_db) == 0


def test_points_the_server_refuses_are_bad_readings_and_never_spooled(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    database = f"rp_{uuid.uuid4().hex[:8]}"
    influxdb.query(f'CREATE DATABASE "{database}" WITH DURATION 1h')
    try:
        inner = InfluxStore(influx_config(influxdb, database))
        store = SpoolingStore(inner, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0)
        old = ReadingBatch.for_series("E-01", "power", [T0], [1.0])  # beyond the 1 h policy
        with pytest.raises(BadReadings, match="retention policy") as refused:
            store.write(old)
        assert not isinstance(refused.value, StoreError)
        assert store.spool.depth == 0
        store.close()
    finally:
        influxdb.query(f'DROP DATABASE "{database}"')


def test_a_spooled_batch_the_server_refuses_is_set_aside_and_the_rest_drains(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    """Spooled while the database was missing (HTTP 404): an old batch the retention policy
    refuses must not block the ones queued behind it."""
    database = f"rp_{uuid.uuid4().hex[:8]}"
    health = Health()
    inner = InfluxStore(influx_config(influxdb, database))
    store = SpoolingStore(
        inner, Spool(tmp_path / "spool.sqlite3"), replay_interval_s=0, health=health
    )
    now = int(time.time() * 1000) // 1000 * 1000
    recent = [
        ReadingBatch.for_series("E-01", "power", now - 60_000 * (10 - i) + np.arange(3), [i] * 3)
        for i in range(4)
    ]
    store.write(recent[0])
    store.write(ReadingBatch.for_series("E-02", "power", [T0, T0 + 1], [7.0, 8.0]))  # old
    for batch in recent[1:]:
        store.write(batch)
    assert store.spool.depth == 5
    assert health.is_degraded("spool")
    influxdb.query(f'CREATE DATABASE "{database}" WITH DURATION 1h')
    try:
        assert store.replay() == 4
        assert store.spool.depth == 0
        assert store.spool.rejected == 1
        assert store.rejected_batches == 1
        ((kept, reason),) = store.spool.rejected_batches()
        assert kept.batch.meter_id.tolist() == ["E-02", "E-02"]
        assert "retention policy" in reason
        assert influx_count(influxdb, database) == 12
        assert not health.is_degraded("spool")
        store.close()
    finally:
        influxdb.query(f'DROP DATABASE "{database}"')


def test_the_store_writer_spools_while_it_can_and_pauses_when_the_spool_is_full(
    small_fs: SmallFs, tmp_path: Path
) -> None:
    """One shared Health: the store on a full disk, the spool elsewhere. Writes are spooled
    (`spool` degraded, ingest not paused) until the spool is full (`store`: ingest paused);
    bad data is refused and counted, never spooled."""
    health = Health()
    availability = Availability()
    duck = DuckDBStore(small_fs.root / "store.duckdb")
    store = SpoolingStore(
        duck,
        Spool(tmp_path / "spool.sqlite3", max_bytes=1 << 20),
        replay_interval_s=0,
        health=health,
    )
    writer = StoreWriter(store, availability, health=health)
    rng = np.random.default_rng(1)

    def noisy(index: int) -> ReadingBatch:  # incompressible values: the spool fills up
        batch = minutes(index, 5_000)
        return ReadingBatch(batch.meter_id, batch.quantity, batch.ts_ms, rng.random(len(batch)))

    async def scenario() -> None:
        await writer(minutes(0, 100))
        small_fs.fill()
        await writer(minutes(1, 100))  # spooled: no error, ingest goes on
        assert store.spool.depth == 1
        assert health.is_degraded("spool")
        assert not health.is_degraded("store")
        with pytest.raises(BadReadings):
            await writer(ReadingBatch.for_series("E-00", "power", [10**17], [1.0]))
        assert store.spool.depth == 1
        index = 2
        refused: BaseException | None = None
        while refused is None and index < 100:
            try:
                await writer(noisy(index))
            except SpoolFull as exc:
                refused = exc
            index += 1
        assert refused is not None, "the spool never filled up"
        assert health.is_degraded("store")
        assert health.snapshot().conditions["store"].detail.endswith("ingest paused")
        small_fs.free()
        spooled = store.spool.depth
        await writer(minutes(index, 100))  # one chunk is replayed first, this one queues
        assert not health.is_degraded("store")
        assert store.spool.depth < spooled
        assert health.is_degraded("spool")
        await asyncio.to_thread(store.replay)
        assert store.spool.depth == 0
        assert not health.is_degraded("spool")

    asyncio.run(scenario())
    assert availability.counters["readings_refused"] == 1
    assert availability.counters["store_write_failures"] == 1
    store.close()

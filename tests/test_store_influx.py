"""What is particular to InfluxDB: the line-protocol encoder, the schema's tags, auth per
server version, retries, the exact requests (a recording fake, for 2.x and 3.x, which cannot
run here), the v2 write path into a real VictoriaMetrics, and outages of a real InfluxDB 1.6.7
with the spool. The contract every store honours is in test_store_contract.py."""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from core.config import InfluxConfig, SiteConfig, load_site
from core.errors import BadReadings, StoreError, StoreUnavailable
from core.readings import Reading, ReadingBatch
from storage.base import Agg, Every
from storage.influx import InfluxStore
from storage.influx.lineproto import encode, escape_measurement, escape_tag
from storage.spool import Spool, SpoolingStore
from tests.conftest import InfluxServer, VictoriaMetrics, free_port, start_influxd

REPO = Path(__file__).resolve().parents[1]
T0 = 1_772_323_200_000  # 2026-03-01T00:00Z
SECRET = "s3cr3t-T0ken-never-shown"


def meter_only(meter_id: str) -> dict[str, str]:
    return {"meter": meter_id}


# -- line protocol, the pure part ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),  # no `i` suffix: still a float field
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e16, "1e+16"),
        (1e-7, "1e-7"),
        (123456.789, "123456.789"),
        (0.1 + 0.2, "0.30000000000000004"),  # the shortest text that reads back exactly
    ],
)
def test_values_are_floats_written_exactly(value: float, text: str) -> None:
    lines = encode(ReadingBatch.for_series("E-01", "power", [T0], [value]), meter_only)
    assert lines.data == f"power,meter=E-01 value={text} {T0}\n".encode()
    assert float(text) == value


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("E-01", "E-01"), ("a b", r"a\ b"), ("a,b", r"a\,b"), ("k=v", r"k\=v"), ("中文", "中文")],
)
def test_tags_are_escaped(raw: str, escaped: str) -> None:
    assert escape_tag(raw) == escaped


def test_measurements_are_escaped_and_never_comments() -> None:
    assert escape_measurement("a b,c=d") == r"a\ b\,c=d"
    with pytest.raises(ValueError, match="comment"):
        escape_measurement("#power")


@pytest.mark.parametrize("bad", ["", "a\nb", "a\\", "x\rb"])
def test_names_line_protocol_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        escape_tag(bad)


def test_a_batch_is_grouped_by_series_deduplicated_and_time_ordered() -> None:
    batch = ReadingBatch.from_readings(
        [
            Reading("E-02", "power", T0 + 2000, 2.0),
            Reading("E-01", "power", T0 + 1000, 1.0),
            Reading("E-02", "power", T0 + 1000, 7.0),
            Reading("E-01", "power", T0 + 1000, 3.0),  # the same key again: the last wins
        ]
    )
    lines = encode(batch, meter_only)
    assert lines.data.decode().splitlines() == [  # series in order of first appearance
        f"power,meter=E-02 value=7 {T0 + 1000}",
        f"power,meter=E-02 value=2 {T0 + 2000}",
        f"power,meter=E-01 value=3 {T0 + 1000}",
    ]
    assert lines.points == 3
    assert [c.decode() for c in lines.chunks(2)] == [
        f"power,meter=E-02 value=7 {T0 + 1000}\npower,meter=E-02 value=2 {T0 + 2000}\n",
        f"power,meter=E-01 value=3 {T0 + 1000}\n",
    ]


def test_non_finite_values_are_left_out_and_counted() -> None:
    batch = ReadingBatch.for_series("E-01", "power", [1000, 2000, 3000], [np.nan, 1.0, np.inf])
    lines = encode(batch, meter_only)
    assert lines.data == b"power,meter=E-01 value=1 2000\n"
    assert lines.skipped == 2


def test_second_precision_refuses_milliseconds() -> None:
    whole = ReadingBatch.for_series("E-01", "power", [T0, T0 + 60_000], [1.0, 2.0])
    assert encode(whole, meter_only, "s").data.decode().split()[-1] == str((T0 + 60_000) // 1000)
    with pytest.raises(ValueError, match="not a whole second"):
        encode(ReadingBatch.for_series("E-01", "power", [T0 + 1], [1.0]), meter_only, "s")


def test_empty_batch_is_no_lines() -> None:
    assert encode(ReadingBatch.empty(), meter_only).points == 0


# -- the schema on a real server -------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_site(REPO / "sites/luan-admin-center.toml")


def v1(server: InfluxServer, database: str, **overrides: object) -> InfluxConfig:
    return InfluxConfig.model_validate(
        {"url": server.url, "mode": "v1", "database": database, **overrides}
    )


def test_points_carry_the_site_files_tags(
    influxdb: InfluxServer, influx_db: str, site: SiteConfig
) -> None:
    tenant_meter = next(m for m in site.meters if m.tenant is not None)
    plain_meter = next(m for m in site.meters if m.tenant is None)
    with InfluxStore(v1(influxdb, influx_db), site=site) as store:
        store.write(
            ReadingBatch.from_readings(
                [
                    Reading(tenant_meter.id, "power", T0, 1.0),
                    Reading(plain_meter.id, "power", T0, 2.0),
                    Reading("NOT-IN-SITE", "power", T0, 3.0),
                ]
            )
        )
        assert store.read_raw(tenant_meter.id, "power", 0, 2**53).value.tolist() == [1.0]
    answer = influxdb.query('SHOW SERIES FROM "power"', influx_db)
    keys = sorted(row[0] for row in answer["results"][0]["series"][0]["values"])  # type: ignore[index]
    assert keys == sorted(
        [
            f"power,building={tenant_meter.building},kind={tenant_meter.kind.value},"
            f"meter={tenant_meter.id},site={site.site.id},tenant={tenant_meter.tenant}",
            f"power,building={plain_meter.building},kind={plain_meter.kind.value},"
            f"meter={plain_meter.id},site={site.site.id}",
            f"power,meter=NOT-IN-SITE,site={site.site.id}",
        ]
    )
    fields = influxdb.query('SHOW FIELD KEYS FROM "power"', influx_db)
    assert fields["results"][0]["series"][0]["values"] == [["value", "float"]]  # type: ignore[index]


@pytest.mark.parametrize("meter", ["a b,c=d", "o'brien", 'quote"d', "中文表"])
def test_awkward_names_round_trip(influxdb: InfluxServer, influx_db: str, meter: str) -> None:
    with InfluxStore(v1(influxdb, influx_db)) as store:
        store.write(ReadingBatch.for_series(meter, "water temp", [T0, T0 + 1000], [1.0, 2.0]))
        assert store.read_raw(meter, "water temp", 0, 2**53).value.tolist() == [1.0, 2.0]
        assert store.series_keys() == [(meter, "water temp")]
        assert store.latest([meter]) == [Reading(meter, "water temp", T0 + 1000, 2.0)]
        hourly = store.aggregate(meter, "water temp", 0, 2**53, Every.parse("1h"), Agg.SUM)
        assert hourly.value.tolist() == [3.0]


def test_second_precision_on_a_real_server(influxdb: InfluxServer, influx_db: str) -> None:
    with InfluxStore(v1(influxdb, influx_db, precision="s")) as store:
        store.write(ReadingBatch.for_series("E-01", "power", [T0, T0 + 60_000], [1.0, 2.0]))
        got = store.read_raw("E-01", "power", 0, 2**53)
        assert got.ts_ms.tolist() == [T0, T0 + 60_000]


def test_nan_is_not_written_and_is_counted(
    influxdb: InfluxServer, influx_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    with InfluxStore(v1(influxdb, influx_db)) as store:
        written = store.write(ReadingBatch.for_series("E-01", "power", [T0, T0 + 1], [np.nan, 1]))
        assert written == 1
        assert store.skipped_nonfinite == 1
        assert "NaN" in caplog.text
        assert store.read_raw("E-01", "power", 0, 2**53).value.tolist() == [1.0]


def test_large_batches_are_split_into_requests(influxdb: InfluxServer, influx_db: str) -> None:
    ts = T0 + np.arange(25_000) * 1000
    with InfluxStore(v1(influxdb, influx_db, batch_lines=10_000)) as store:
        assert store.write(ReadingBatch.for_series("E-01", "power", ts, np.arange(25_000.0))) == (
            25_000
        )
        total = store.aggregate("E-01", "power", 0, 2**53, Every.parse("1d"), Agg.COUNT)
        assert total.value.sum() == 25_000
        # Read back in chunks of 10,000 rows, joined again.
        assert store.read_raw("E-01", "power", 0, 2**53).value.tolist() == list(range(25_000))


def test_a_missing_database_is_unavailable_not_lost(influxdb: InfluxServer) -> None:
    with (
        InfluxStore(v1(influxdb, "no_such_db_here")) as store,
        pytest.raises(StoreUnavailable, match="404"),
    ):
        store.write(ReadingBatch.for_series("E-01", "power", [T0], [1.0]))


def test_a_closed_store_says_so(influxdb: InfluxServer, influx_db: str) -> None:
    store = InfluxStore(v1(influxdb, influx_db))
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.read_raw("E-01", "power", 0, 1)


# -- 1.x authentication, secrets ---------------------------------------------------------


def test_v1_user_and_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = start_influxd(tmp_path, auth=True)
    try:
        server.query(f"CREATE USER admin WITH PASSWORD '{SECRET}' WITH ALL PRIVILEGES")
        auth = httpx.BasicAuth("admin", SECRET)
        httpx.post(f"{server.url}/query", params={"q": "CREATE DATABASE epcmon"}, auth=auth)
        caplog.clear()  # the set-up above names the password; what follows must not
        config = v1(server, "epcmon", username="admin")
        with InfluxStore(config, password=SECRET) as store:
            store.write(ReadingBatch.for_series("E-01", "power", [T0], [1.0]))
            assert store.read_raw("E-01", "power", 0, 2**53).value.tolist() == [1.0]
            assert SECRET not in repr(store)
        with InfluxStore(config, password="wrong") as refused:
            with pytest.raises(StoreUnavailable, match="401"):
                refused.write(ReadingBatch.for_series("E-01", "power", [T0], [1.0]))
            with pytest.raises(StoreUnavailable, match="401"):
                refused.read_raw("E-01", "power", 0, 2**53)
        assert SECRET not in caplog.text
    finally:
        server.stop()


# -- exact requests, against a recording fake ---------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Fake:
    """A loopback HTTP server that records every request and answers from a script."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    query_answer: bytes = b'{"results":[{"statement_id":0}]}'


@pytest.fixture
def fake() -> Iterator[Fake]:
    port = free_port()
    state = Fake(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append(
                Recorded(
                    self.command,
                    url.path,
                    dict(urllib.parse.parse_qsl(url.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
            )
            if state.script:
                status, headers, body = state.script.pop(0)
            elif url.path == "/query":
                status, headers, body = (
                    200,
                    {"Content-Type": "application/json"},
                    (state.query_answer),
                )
            else:
                status, headers, body = 204, {}, b""
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


ONE = ReadingBatch.for_series("E-01", "power", [T0], [1.5])
ONE_LINE = f"power,meter=E-01 value=1.5 {T0}\n".encode()


def test_v2_write_request_is_exact(fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = InfluxConfig(url=fake.url, mode="v2", org="city-org", bucket="energy", gzip=True)
    with InfluxStore(config, token=SECRET) as store:
        assert store.write(ONE) == 1
        assert SECRET not in repr(store)
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/api/v2/write")
    assert request.params == {"org": "city-org", "bucket": "energy", "precision": "ms"}
    assert request.headers["authorization"] == f"Token {SECRET}"
    assert request.headers["content-encoding"] == "gzip"
    assert gzip.decompress(request.body) == ONE_LINE
    assert SECRET not in caplog.text


def test_v2_bucket_defaults_to_database_and_retention_policy(fake: Fake) -> None:
    config = InfluxConfig(url=fake.url, mode="v2", database="epcmon", retention_policy="raw")
    with InfluxStore(config, token=SECRET) as store:
        store.write(ReadingBatch.for_series("E-01", "power", [T0], [1.5]))
    assert fake.requests[0].params["bucket"] == "epcmon/raw"
    assert "content-encoding" not in fake.requests[0].headers
    assert fake.requests[0].body == ONE_LINE


def test_v1_write_request_is_exact(fake: Fake) -> None:
    config = InfluxConfig(
        url=fake.url, mode="v1", database="epcmon", retention_policy="raw", username="u"
    )
    with InfluxStore(config, password=SECRET) as store:
        store.write(ONE)
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", "/write")
    assert request.params == {"db": "epcmon", "rp": "raw", "precision": "ms"}
    assert (
        request.headers["authorization"]
        == "Basic " + __import__("base64").b64encode(f"u:{SECRET}".encode()).decode()
    )
    assert request.body == ONE_LINE
    assert SECRET not in str(request.params)  # never in a URL


@pytest.mark.parametrize(("mode", "scheme"), [("v2", "Token"), ("v3", "Bearer")])
def test_read_requests_per_version(fake: Fake, mode: str, scheme: str) -> None:
    def chunk(rows: list[list[float]], partial: bool) -> str:
        series = {"name": "power", "columns": ["time", "value"], "values": rows}
        if partial:
            series["partial"] = True
        return json.dumps({"results": [{"statement_id": 0, "series": [series]}]})

    # A chunked answer: one series cut in two documents, one per line.
    fake.query_answer = (
        chunk([[T0, 2.5]], partial=True) + "\n" + chunk([[T0 + 500, 3.5]], partial=False) + "\n"
    ).encode()
    config = InfluxConfig.model_validate({"url": fake.url, "mode": mode, "database": "site"})
    with InfluxStore(config, token=SECRET) as store:
        got = store.read_raw("E-01", "power", T0, T0 + 1000)
    assert got.value.tolist() == [2.5, 3.5]
    assert got.ts_ms.tolist() == [T0, T0 + 500]
    (request,) = fake.requests
    assert (request.method, request.path) == ("GET", "/query")
    assert request.headers["authorization"] == f"{scheme} {SECRET}"
    assert request.params["db"] == "site"
    assert request.params["epoch"] == "ms"
    assert request.params["chunked"] == "true"
    assert request.params["q"] == (
        f'SELECT "value" FROM "power" WHERE "meter" = \'E-01\' '
        f"AND time >= {T0}ms AND time < {T0 + 1000}ms"
    )


def test_retries_with_backoff_then_succeeds(fake: Fake) -> None:
    fake.script = [
        (503, {}, b'{"error":"overloaded"}'),
        (429, {"Retry-After": "7"}, b""),
    ]
    slept: list[float] = []
    config = InfluxConfig(url=fake.url, mode="v2", bucket="b", retries=3, retry_backoff_s=0.25)
    with InfluxStore(config, token=SECRET, sleep=slept.append) as store:
        assert store.write(ONE) == 1
    assert len(fake.requests) == 3
    assert slept == [0.25, 7.0]  # our backoff, then the server's Retry-After


def test_retries_run_out_into_unavailable(fake: Fake) -> None:
    fake.script = [(500, {}, b"")] * 3
    slept: list[float] = []
    config = InfluxConfig(url=fake.url, mode="v1", retries=2, retry_backoff_s=0.5)
    with InfluxStore(config, sleep=slept.append) as store, pytest.raises(StoreUnavailable):
        store.write(ONE)
    assert slept == [0.5, 1.0]
    assert len(fake.requests) == 3


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_refused_points_are_bad_readings_and_not_retried(fake: Fake, mode: str) -> None:
    fake.script = [(400, {}, b'{"error":"field type conflict"}')]
    config = InfluxConfig.model_validate({"url": fake.url, "mode": mode, "bucket": "b"})
    with InfluxStore(config, sleep=lambda s: None) as store:
        with pytest.raises(BadReadings, match="field type conflict") as refused:
            store.write(ONE)
        assert not isinstance(refused.value, StoreError)  # not spooled: trying again cannot help
    assert len(fake.requests) == 1


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_no_server_is_unavailable_after_the_retries(mode: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = InfluxConfig.model_validate({"url": url, "mode": mode, "bucket": "b", "retries": 1})
    slept: list[float] = []
    with InfluxStore(config, sleep=slept.append) as store:
        with pytest.raises(StoreUnavailable, match="2 attempts"):
            store.write(ONE)
        with pytest.raises(StoreUnavailable):
            store.latest()
    assert len(slept) == 1


# -- the v2 write path into a real VictoriaMetrics ---------------------------------------


def vm_export(vm: VictoriaMetrics, match: str) -> list[dict[str, object]]:
    answer = httpx.post(f"{vm.url}/api/v1/export", data={"match[]": match}, timeout=10)
    answer.raise_for_status()
    return [json.loads(line) for line in answer.text.splitlines() if line.strip()]


def test_v2_writes_through_influxdb_client_reach_victoria_metrics(
    victoria_metrics: VictoriaMetrics, site: SiteConfig
) -> None:
    meter = next(m for m in site.meters if m.tenant is not None)
    quantity = f"power_{os.getpid()}_{time.monotonic_ns()}"  # unique per run
    ts = T0 - 400 * 86_400_000 + np.arange(2000) * 60_000  # back-dated over a year
    value = np.round(np.random.default_rng(3).normal(40.0, 8.0, 2000), 3)
    config = InfluxConfig(
        url=victoria_metrics.url, mode="v2", org="org", bucket="epcmon", gzip=True, batch_lines=700
    )
    with InfluxStore(config, token=SECRET, site=site) as store:
        assert store.write(ReadingBatch.for_series(meter.id, quantity, ts, value)) == 2000

    # New points take a second or more to be searchable; a flush makes them so at once.
    httpx.get(f"{victoria_metrics.url}/internal/force_flush", timeout=10).raise_for_status()
    deadline = time.monotonic() + 15
    while True:
        exported = vm_export(victoria_metrics, f'{{__name__="{quantity}_value"}}')
        if sum(len(e["timestamps"]) for e in exported) >= 2000 or time.monotonic() > deadline:  # type: ignore[arg-type]
            break
        time.sleep(0.25)
    (series,) = exported
    assert series["metric"] == {
        "__name__": f"{quantity}_value",
        "building": meter.building,
        "kind": meter.kind.value,
        "meter": meter.id,
        "site": site.site.id,
        "tenant": meter.tenant,
    }
    assert series["timestamps"] == ts.tolist()
    assert series["values"] == value.tolist()


# -- outages of a real InfluxDB, with the spool ---------------------------------------------


def test_server_stopped_mid_stream_loses_nothing(tmp_path: Path) -> None:
    server = start_influxd(tmp_path / "influxd")
    try:
        server.query("CREATE DATABASE epcmon")
        config = v1(server, "epcmon", retries=1, retry_backoff_s=0.05, timeout_s=2)
        spool = Spool(tmp_path / "spool.sqlite3")
        store = SpoolingStore(InfluxStore(config), spool, replay_interval_s=0.2)
        meters = np.array([f"E-{i:02d}" for i in range(20)], dtype=object)
        batches = 60
        stopped = threading.Event()

        def batch(index: int) -> ReadingBatch:
            ts = np.repeat(T0 + (index * 5 + np.arange(5)) * 60_000, len(meters))
            return ReadingBatch(
                np.tile(meters, 5),
                np.full(len(ts), "power", dtype=object),
                ts,
                np.arange(len(ts), dtype=np.float64) + index,
            )

        def writer() -> None:
            for index in range(batches):
                if index == 15:
                    stopped.wait(10)  # the server goes away while we write
                store.write(batch(index))
                time.sleep(0.01)

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.1)
        server.stop()
        stopped.set()
        time.sleep(1.0)
        assert spool.depth > 0  # writes went on, into the spool
        server.start()  # same port, same data directory
        thread.join(timeout=60)
        store.replay()

        assert spool.depth == 0
        assert store.spooled_batches > 0
        for meter in ("E-00", "E-19"):
            got = store.read_raw(meter, "power", 0, 2**53)
            assert got.ts_ms.tolist() == (T0 + np.arange(batches * 5) * 60_000).tolist()
        count = store.aggregate("E-07", "power", 0, 2**53, Every.parse("1mo"), Agg.COUNT)
        assert count.value.sum() == batches * 5  # each point exactly once
        store.close()
    finally:
        server.stop()


# -- opt-in: real InfluxDB 2.x / 3.x ---------------------------------------------------------


@pytest.mark.parametrize(("mode", "prefix"), [("v2", "INFLUX2"), ("v3", "INFLUX3")])
def test_real_influxdb_2_and_3(mode: str, prefix: str) -> None:
    url, token = os.environ.get(f"{prefix}_URL"), os.environ.get(f"{prefix}_TOKEN")
    if not url or not token:
        pytest.skip(
            f"opt-in: set {prefix}_URL and {prefix}_TOKEN (and {prefix}_ORG, "
            f"{prefix}_BUCKET, {prefix}_DATABASE as needed) to test against InfluxDB {mode[1]}.x"
        )
    database = os.environ.get(f"{prefix}_DATABASE", "epcmon")
    config = InfluxConfig.model_validate(
        {
            "url": url,
            "mode": mode,
            "org": os.environ.get(f"{prefix}_ORG", ""),
            "bucket": os.environ.get(f"{prefix}_BUCKET", database),
            "database": database,
        }
    )
    meter = f"OPT-IN-{os.getpid()}-{time.time_ns()}"
    ts = T0 + np.arange(120) * 60_000
    with InfluxStore(config, token=token) as store:
        store.write(ReadingBatch.for_series(meter, "energy_import", ts, 100.0 + np.arange(120)))
        store.write(ReadingBatch.for_series(meter, "energy_import", ts[:5], 100.0 + np.arange(5)))
        deadline = time.monotonic() + 10
        while len(store.read_raw(meter, "energy_import", 0, 2**53)) < 120:
            assert time.monotonic() < deadline, "points did not become readable"
            time.sleep(0.5)
        assert (
            store.read_raw(meter, "energy_import", 0, 2**53).value.tolist()
            == (100.0 + np.arange(120)).tolist()
        )
        hourly = store.consumption(
            meter, "energy_import", T0 + 3_600_000, T0 + 7_200_000, Every.parse("1h")
        )
        assert hourly.value.tolist() == [60.0]
        days = store.aggregate(
            meter, "energy_import", 0, 2**53, Every.parse("1d"), Agg.COUNT, "Asia/Shanghai"
        )
        assert days.value.tolist() == [120.0]
        assert (meter, "energy_import") in store.series_keys()


def test_cached_prefixes_give_the_same_lines() -> None:
    batch = ReadingBatch.from_readings(
        [Reading("E 1", "power", T0, 1.0), Reading("E,2", "energy_import", T0, 2.5)]
    )
    cache: dict[tuple[str, str], str] = {}
    first = encode(batch, meter_only, prefixes=cache)
    assert first.data == encode(batch, meter_only).data
    assert cache == {
        ("E 1", "power"): r"power,meter=E\ 1 value=",
        ("E,2", "energy_import"): r"energy_import,meter=E\,2 value=",
    }
    assert encode(batch, lambda meter: {"meter": "never asked"}, prefixes=cache).data == first.data

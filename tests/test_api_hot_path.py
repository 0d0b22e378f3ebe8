"""The API's hot path (issue 16): the routes dashboards poll answer on the event loop from
memory or cache, with the same bodies FastAPI's response-model pass produced, the same
documentation, and the same refusals.

Speed itself is measured by `python -m bench.api`, not asserted here; what is asserted is
the behaviour the speed must not cost: bodies byte for byte, keys refused the moment they
are revoked (by this process or another), the OpenAPI document, and that these routes never
wait for a worker thread (a busy thread pool does not hold them up).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from api.app import create_app
from api.cache import ResponseCache
from api.keys import KeyStore, Role
from api.schemas import HealthOut, LatestOut, SavingsRowOut, SeriesOut
from core.health import Health
from storage.base import ReadsFromInner
from tests.api_fixtures import app_for, make_world

SERIES = {
    "quantity": "power",
    "start": "2025-12-01T00:00:00Z",
    "end": "2025-12-14T00:00:00Z",
    "every": "1h",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = make_world(tmp_path_factory.mktemp("hot"))
    yield w
    w.store.close()
    w.keys.close()


@pytest.fixture(scope="module")
def client(world):
    with TestClient(app_for(world)) as c:
        yield c


def viewer(world) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens['viewer']}"}


def as_fastapi_serialised(model: Any, body: bytes) -> bytes:
    """What FastAPI's response-model pass makes of this content: pydantic validates it and
    dumps it to JSON bytes (FastAPI >= 0.13x serialises with `TypeAdapter.dump_json`)."""
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    return adapter.dump_json(adapter.validate_json(body))


@pytest.mark.parametrize(
    ("path", "params", "model"),
    [
        ("/api/v1/meters/E-D01/latest", {}, list[LatestOut]),
        ("/api/v1/meters/E-D01/series", SERIES, SeriesOut),
        ("/api/v1/meters/E-D01/series", {**SERIES, "every": None}, SeriesOut),
    ],
    ids=["latest", "series-1h", "series-raw"],
)
def test_bodies_are_what_the_response_model_makes(world, client, path, params, model):
    """/latest went through FastAPI's response-model pass before; now its body is built by
    hand: byte for byte the same. The series has been orjson for longer: the same check."""
    params = {k: v for k, v in params.items() if v is not None}
    first = client.get(path, params=params, headers=viewer(world))
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/json"
    assert first.json(), "an empty body proves nothing"
    assert first.content == as_fastapi_serialised(model, first.content)
    again = client.get(path, params=params, headers=viewer(world))  # from the cache
    assert again.content == first.content


@pytest.mark.parametrize("period", ["day", "month", "year", "total"])
def test_savings_bodies_keep_their_documented_rows(world, client, period):
    """Savings rows were orjson before this change too (their key order is the statement's,
    not the schema's): each row is a valid `SavingsRowOut`, and the cached body is the body."""
    url = f"/api/v1/contracts/{world.site.contracts[0].id}/savings"
    first = client.get(url, params={"period": period}, headers=viewer(world))
    assert first.status_code == 200, first.text
    rows = TypeAdapter(list[SavingsRowOut]).validate_json(first.content)
    assert rows
    assert all(row.unit == "kWh" for row in rows)
    if period == "month":
        running = 0.0
        for row, raw in zip(rows, first.json(), strict=True):
            running += row.avoided
            assert raw["cumulative"] == pytest.approx(running)
    again = client.get(url, params={"period": period}, headers=viewer(world))
    assert again.content == first.content


def test_healthz_body_is_its_model_in_both_states(world):
    health = Health()
    health.part_state("mqtt", "running")
    with TestClient(app_for(world, health=health)) as c:
        ok = c.get("/healthz")
        assert ok.status_code == 200
        assert ok.content == as_fastapi_serialised(HealthOut, ok.content)
        assert ok.json()["parts"] == {
            "mqtt": {"state": "running", "restarts": 0, "last_error": None}
        }
        health.part_state("mqtt", "restarting", "ConnectionRefusedError")
        down = c.get("/healthz")
        assert down.status_code == 503
        assert down.content == as_fastapi_serialised(HealthOut, down.content)
        assert down.json()["parts"]["mqtt"]["last_error"] == "ConnectionRefusedError"


def test_a_key_revoked_by_another_process_is_refused_at_once(world, client):
    """The API remembers authenticated keys; `epcmon keys revoke` runs in another process
    (another SQLite connection), and its revocation must still count on the next request."""
    key_id, key = world.keys.create(Role.VIEWER, name="soon revoked")
    h = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/meters/E-D01/latest", headers=h).status_code == 200
    assert client.get("/api/v1/meters/E-D01/latest", headers=h).status_code == 200  # remembered
    other = KeyStore(world.keys.path)  # what the CLI opens
    try:
        other.revoke(key_id)
    finally:
        other.close()
    r = client.get("/api/v1/meters/E-D01/latest", headers=h)
    assert r.status_code == 401
    assert r.json()["detail"] == "unknown or revoked API key"


def test_a_forged_key_with_a_real_id_is_refused_after_the_real_one_was_seen(world, client):
    key_id, key = world.keys.create(Role.ADMIN)
    assert client.get("/api/v1/site", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    forged = f"epc_{key_id}_{'A' * 43}"
    r = client.get("/api/v1/site", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_openapi_documents_the_hot_routes_models_and_the_bearer_scheme(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"

    def ok_schema(path: str) -> dict[str, Any]:
        get = spec["paths"][path]["get"]
        schema: dict[str, Any] = get["responses"]["200"]["content"]["application/json"]["schema"]
        return schema

    latest = ok_schema("/api/v1/meters/{meter_id}/latest")
    assert latest["type"] == "array"
    assert latest["items"]["$ref"].endswith("/LatestOut")
    assert ok_schema("/api/v1/meters/{meter_id}/series")["$ref"].endswith("/SeriesOut")
    assert ok_schema("/healthz")["$ref"].endswith("/HealthOut")
    savings = ok_schema("/api/v1/contracts/{contract_id}/savings")
    assert savings["items"]["$ref"].endswith("/SavingsRowOut")
    for path, item in spec["paths"].items():
        for operation in item.values():
            if path.startswith("/api/v1/"):
                assert operation.get("security") == [{"bearer": []}], path
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_hot_routes_answer_while_the_thread_pool_is_busy(world):
    """/latest, /healthz and cache hits of /series and /savings run on the event loop: with
    every worker thread taken they still answer (a `def` route, or a query on a cache hit,
    would wait for a thread and time out here)."""
    contract = world.site.contracts[0].id
    hot = [
        ("/api/v1/meters/E-D01/latest", {}),
        ("/api/v1/meters/E-D01/series", SERIES),
        (f"/api/v1/contracts/{contract}/savings", {"period": "month"}),
        ("/healthz", {}),
    ]
    with TestClient(app_for(world)) as c:
        for path, params in hot:  # fill the caches (a miss may use the thread pool)
            assert c.get(path, params=params, headers=viewer(world)).status_code == 200
        assert c.portal is not None
        portal = c.portal
        release = threading.Event()

        async def shrink(tokens: int) -> None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = tokens

        async def borrowed() -> float:
            return anyio.to_thread.current_default_thread_limiter().borrowed_tokens

        portal.call(shrink, 1)
        portal.start_task_soon(anyio.to_thread.run_sync, release.wait)  # takes the only thread
        deadline = time.monotonic() + 10
        while portal.call(borrowed) < 1:
            assert time.monotonic() < deadline, "the blocker never got its thread"
            time.sleep(0.01)  # poll until the blocking call holds the token
        try:
            for path, params in hot:
                answers: list[int] = []
                asker = threading.Thread(
                    target=lambda p=path, q=params, a=answers: a.append(
                        c.get(p, params=q, headers=viewer(world)).status_code
                    ),
                    daemon=True,
                )
                asker.start()
                asker.join(10)
                assert answers == [200], f"{path} waited for a worker thread"
        finally:
            release.set()
            portal.call(shrink, 40)


class GatedStore(ReadsFromInner):
    """The world's store, whose bucketed reads wait for `gate` and are counted: a store that
    is not the embedded one, so every read goes through the thread pool."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.aggregates = 0
        self._count = threading.Lock()

    def aggregate(self, *args: Any, **kwargs: Any) -> Any:
        with self._count:
            self.aggregates += 1
        assert self.gate.wait(10), "the test never opened the gate"
        return self.inner.aggregate(*args, **kwargs)

    def write(self, batch: Any) -> int:
        raise AssertionError("the API never writes")

    def close(self) -> None:
        pass


def app_for_store(world, store):  # type: ignore[no-untyped-def]
    return create_app(world.site, store, keys=world.keys, statements=world.statements)


def test_concurrent_misses_of_one_series_query_the_store_once(world):
    """Fifty dashboards asking as an entry expires: one query, every one gets its body; an
    expired entry is served while one refresh runs."""
    store = GatedStore(world.store)
    app = app_for_store(world, store)
    app.state.response_cache = ResponseCache(ttl_s=3600)
    with TestClient(app) as c:
        bodies: list[bytes] = []

        def ask() -> None:
            bodies.append(
                c.get("/api/v1/meters/E-D01/series", params=SERIES, headers=viewer(world)).content
            )

        askers = [threading.Thread(target=ask, daemon=True) for _ in range(8)]
        for t in askers:
            t.start()
        deadline = time.monotonic() + 10
        while app.state.flights.waiting < 8:  # all eight wait; the store is at its gate
            assert time.monotonic() < deadline, f"{app.state.flights.waiting} of 8 waiting"
            time.sleep(0.01)
        store.gate.set()
        for t in askers:
            t.join(10)
        assert len(bodies) == 8
        assert len(set(bodies)) == 1
        assert store.aggregates == 1

        app.state.response_cache.ttl_s = 0.0  # every entry expired from now on
        store.gate.clear()
        stale = c.get("/api/v1/meters/E-D01/series", params=SERIES, headers=viewer(world))
        assert stale.content == bodies[0]  # served at once, the refresh waits at the gate
        deadline = time.monotonic() + 10
        while store.aggregates < 2:
            assert time.monotonic() < deadline, "no refresh started"
            time.sleep(0.01)
        store.gate.set()

"""What a web process (`epcmon run --role web`) serves of what another process writes: the
worker fits baselines and writes statements and alarms into SQLite files every process
opens. Each process has its own connections and its own in-memory caches, so a cache over
those files must notice another process's commit (SQLite's `PRAGMA data_version`) and its
own process's writes alike.

Regression: the API kept a contract's baseline for 60 s (`SavingsCache.baseline`): after the
worker fitted it, the web processes went on answering "no baseline fitted yet", and after a
refit served the superseded model, for up to a minute each (no two alike)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alarms.model import Alarm, Category, Severity, Transition
from alarms.store import AlarmStore
from api.app import create_app
from processing.contract import fit_baseline
from processing.statements import StatementStore
from tests.api_fixtures import ApiWorld, make_world

CONTRACT = "epc-2025-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ApiWorld:
    return make_world(tmp_path_factory.mktemp("shared"))


def _client(world: ApiWorld, statements: StatementStore, alarms: AlarmStore) -> TestClient:
    app = create_app(world.site, world.store, keys=world.keys, statements=statements, alarms=alarms)
    return TestClient(app, headers={"Authorization": f"Bearer {world.tokens['admin']}"})


@pytest.mark.parametrize("writer", ["another process", "this process"])
def test_a_baseline_the_worker_fits_is_served_at_once(
    world: ApiWorld, tmp_path: Path, writer: str
) -> None:
    path = tmp_path / "statements.sqlite3"
    web = StatementStore(path)
    # another process: its own connection to the file; this process (`--role api`/`all`):
    # the recompute writes through the connection the API reads
    worker = StatementStore(path) if writer == "another process" else web
    alarms = AlarmStore(tmp_path / "alarms.sqlite3")
    with _client(world, web, alarms) as client:
        url = f"/api/v1/contracts/{CONTRACT}/baseline"
        assert client.get(url).status_code == 422  # none fitted yet (and the answer cached)
        fitted = fit_baseline(world.site, CONTRACT, world.store)
        worker.save_baseline(fitted)
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        assert answer.json()["fitted_at"] == fitted.fitted_at
        savings = client.get(f"/api/v1/contracts/{CONTRACT}/savings?period=total")
        assert savings.status_code == 200, savings.text

        refit = replace(fitted, fitted_at="2099-01-01T00:00:00+00:00")
        worker.save_baseline(refit)
        assert client.get(url).json()["fitted_at"] == refit.fitted_at
    for s in {web, worker}:
        s.close()
    alarms.close()


def test_statements_and_alarms_another_process_writes_are_served_at_once(
    world: ApiWorld, tmp_path: Path
) -> None:
    path = tmp_path / "statements.sqlite3"
    web, worker = StatementStore(path), StatementStore(path)
    web_alarms = AlarmStore(tmp_path / "alarms.sqlite3")
    worker_alarms = AlarmStore(tmp_path / "alarms.sqlite3")
    month = world.statements.months(CONTRACT)[0]
    record = world.statements.latest_statement(CONTRACT, month.month)
    assert record is not None
    with _client(world, web, web_alarms) as client:
        url = f"/api/v1/contracts/{CONTRACT}/statements"
        assert client.get(url).json() == []
        worker.save_statement(record)
        assert [m["month"] for m in client.get(url).json()] == [month.month]

        assert client.get("/api/v1/alarms").json()["total"] == 0
        alarm = Alarm(
            id=worker_alarms.next_id(), rule="meter_offline", subject="E-TR1", state="active",
            severity=Severity.WARNING, category=Category.DATA, message="offline",
            raised_ms=1, updated_ms=1, meters=("E-TR1",),
        )  # fmt: skip
        worker_alarms.record([Transition("raised", alarm, 1)])
        listed = client.get("/api/v1/alarms").json()
        assert [a["subject"] for a in listed["alarms"]] == ["E-TR1"]
    for s in (web, worker):
        s.close()
    for a in (web_alarms, worker_alarms):
        a.close()

"""What each `epcmon run --role` runs (`role_parts`), and `[api] reuse_port`: several
processes listening on one port, which without it is a one-line configuration error."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from api.keys import KeyStore, Role
from core.errors import ConfigError
from epcmon.api_server import ApiServer
from epcmon.runtime import ROLES, Service, role_parts
from epcmon.sites import load
from storage.duckdb_store import DuckDBStore

SITE = """
[site]
id = "roles"
name = "角色"
latitude = 31.7
longitude = 116.5

[storage]
path = "{dir}/store.duckdb"
statements_path = "{dir}/statements.sqlite3"

[api]
port = 0
worker_metrics_port = 0
keys_path = "{dir}/keys.sqlite3"

[reports]
enabled = true

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[[meters]]
id = "E-1"
kind = "electricity"
building = "b"
[meters.mqtt]
topic = "roles/e1"
format = "flat"

[payload_formats.flat]
timestamp = "/ts"
timestamp_format = "epoch_ms"
fields = [{{ pointer = "/e", quantity = "energy_import", unit = "kWh" }}]
"""
JOBS = {"recompute", "reports", "alarms", "store-maintenance"}


def test_the_roles_split_the_parts_and_api_keeps_its_meaning() -> None:
    parts = {role: role_parts(role) for role in ROLES}
    assert parts["api"] == role_parts("all").__class__(collectors=False, jobs=True, web=True)
    assert (parts["web"].web, parts["web"].jobs, parts["web"].collectors) == (True, False, False)
    assert (parts["worker"].web, parts["worker"].jobs) == (False, True)
    assert not parts["worker"].collectors
    assert parts["all"] == role_parts("all").__class__(collectors=True, jobs=True, web=True)


@pytest.mark.parametrize(
    ("role", "runs", "serves"),
    [
        ("web", {"api"}, "api"),
        ("worker", JOBS | {"metrics"}, "metrics"),
        ("api", JOBS | {"api"}, "api"),
    ],
)
async def test_a_process_runs_its_roles_parts(
    tmp_path: Path, role: str, runs: set[str], serves: str
) -> None:
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE.format(dir=tmp_path))
    site = load(site_file)
    _, key = KeyStore(site.api.keys_path).create(Role.VIEWER)
    store = DuckDBStore(site.storage.path)
    service = Service(site, store, tmp_path, role=role)  # type: ignore[arg-type]
    stop = asyncio.Event()
    try:
        port = await service.start()
        running = asyncio.create_task(service.run(stop))
        assert set(service.supervisor.names) == runs
        assert (service.app is not None) == (serves == "api")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert metrics.status_code == 200
            health = await client.get("/healthz")
            assert health.status_code == (200 if serves == "api" else 404)
        stop.set()
        await running
    finally:
        service.close()
        store.close()


def test_reuse_port_lets_several_processes_listen_on_one_port() -> None:
    first = ApiServer.listen("127.0.0.1", 0, reuse_port=True)
    for sock in first:
        sock.listen()
    port = first[0].getsockname()[1]
    try:
        second = ApiServer.listen("127.0.0.1", port, reuse_port=True)
        for sock in second:
            sock.listen()
            sock.close()
        with pytest.raises(ConfigError, match="already in use") as refused:
            ApiServer.listen("127.0.0.1", port)  # without it: the port is taken
        assert refused.value.key == "port"
    finally:
        for sock in first:
            sock.close()
    assert socket.SO_REUSEPORT

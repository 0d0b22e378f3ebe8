"""A collector-only process (`epcmon collect`, `run --role collector`) serves `/metrics` on
its own port, loopback by default, behind the API's keys: its collector counters, meter
states, parts and conditions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from api.keys import KeyStore, Role
from collectors.profiles import get_profile
from core.health import Health
from epcmon.runtime import Service
from epcmon.sites import load
from simulators.modbus_server import SimulatedGateway, SimulatedUnit
from storage.duckdb_store import DuckDBStore

SITE = """
[site]
id = "cm"
name = "采集"
latitude = 31.7
longitude = 116.5

[storage]
path = "{dir}/store.duckdb"

[api]
metrics_port = 0
keys_path = "{dir}/keys.sqlite3"

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[[gateways]]
id = "gw"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5

[[meters]]
id = "E-1"
kind = "electricity"
building = "b"
poll_interval_s = 1
[meters.modbus]
gateway = "gw"
unit = 3
profile = "eastron-sdm630"
quantities = ["power"]
"""


async def test_a_collector_only_process_serves_metrics_behind_the_keys(tmp_path: Path) -> None:
    gateway = SimulatedGateway(
        [SimulatedUnit(3, get_profile("eastron-sdm630"), lambda _now: {"power": 4.0})],
        clock=lambda: int(time.time() * 1000),
    )
    port = await gateway.start()
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(dir=tmp_path, port=port), "utf-8")
    site = load(path)
    keys = KeyStore(tmp_path / "keys.sqlite3")
    _id, viewer = keys.create(Role.VIEWER, name="prometheus")
    _id, vendor = keys.create(Role.VENDOR, contracts=("c",), name="esco")
    keys.close()
    store = DuckDBStore(tmp_path / "store.duckdb")
    service = Service(site, store, tmp_path, role="collector", health=Health())
    stop = asyncio.Event()
    try:
        metrics_port = await service.start()
        assert metrics_port
        task = asyncio.create_task(service.run(stop))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as client:
            assert (await client.get("/metrics")).status_code == 401
            refused = await client.get("/metrics", headers={"Authorization": f"Bearer {vendor}"})
            assert refused.status_code == 403
            assert (await client.get("/api/v1/meters")).status_code == 404  # /metrics alone
            text = ""
            deadline = time.monotonic() + 20
            while 'epcmon_meter_up{meter="E-1"} 1.0' not in text:
                assert time.monotonic() < deadline, text
                reply = await client.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})
                assert reply.status_code == 200
                text = reply.text
                await asyncio.sleep(0.1)
        assert 'epcmon_part_up{part="modbus gw"} 1.0' in text
        assert 'epcmon_part_up{part="metrics"} 1.0' in text
        assert 'epcmon_collector_events_total{event="modbus_requests"}' in text
        assert "epcmon_http_request_seconds" in text
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        stop.set()
        service.close()
        store.close()
        await gateway.stop()


def test_the_deployment_scrapes_every_collector_where_it_listens() -> None:
    import tomllib

    import yaml

    deploy = Path(__file__).resolve().parents[1] / "deploy"
    site = tomllib.loads((deploy / "site.toml").read_text("utf-8"))
    services = yaml.safe_load((deploy / "compose.yaml").read_text("utf-8"))["services"]
    scrape = yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text("utf-8"))
    jobs = {j["job_name"]: j for j in scrape["scrape_configs"]}
    targets = jobs["epcmon-collectors"]["static_configs"][0]["targets"]
    published = []
    for name, service in sorted(services.items()):
        command = service.get("command", [])
        if "collector" not in command:
            continue
        shard = int(command[command.index("--shard") + 1].split("/")[0])
        port = site["api"]["metrics_port"] + shard - 1
        assert f"127.0.0.1:{port}:{port}" in service["ports"], name
        assert any(v.startswith("keys:") for v in service["volumes"]), name  # the API's keys
        published.append(f"127.0.0.1:{port}")
    assert sorted(targets) == published
    assert len(published) == 2
    assert "/var/lib/epcmon/keys/" in site["api"]["keys_path"]
    assert any(v == "keys:/var/lib/epcmon/keys" for v in services["api"]["volumes"])

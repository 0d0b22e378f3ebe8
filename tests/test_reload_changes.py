"""What a reload applies and what it says needs a restart (pure), and that a removed or
changed gateway's poller is stopped or replaced while the others keep theirs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from core.health import Health
from epcmon.reload import changes, read_site, restart_line
from epcmon.runtime import Service
from epcmon.sites import load
from storage.duckdb_store import DuckDBStore

BASE = """
[site]
id = "rc"
name = "重载"
latitude = 31.7
longitude = 116.5

[storage]
path = "{dir}/store.duckdb"

[api]
port = {api_port}
keys_path = "{dir}/keys.sqlite3"

[[buildings]]
id = "b"
name = "楼"
floor_area_m2 = 1000

[[gateways]]
id = "gw-a"
host = "127.0.0.1"
port = 1502
timeout_s = 0.2

[[gateways]]
id = "gw-b"
host = "127.0.0.1"
port = {port_b}
timeout_s = 0.2

[[meters]]
id = "E-A"
kind = "electricity"
building = "b"
[meters.modbus]
gateway = "gw-a"
unit = 1
profile = "eastron-sdm630"

[[meters]]
id = "E-B"
kind = "electricity"
building = "b"
[meters.modbus]
gateway = "gw-b"
unit = 1
profile = "eastron-sdm630"
"""


def _site(tmp_path: Path, name: str, *, api_port: int = 8080, port_b: int = 1503) -> Path:
    path = tmp_path / name
    path.write_text(BASE.format(dir=tmp_path, api_port=api_port, port_b=port_b), "utf-8")
    return path


def test_changes_name_what_is_applied_and_what_needs_a_restart(tmp_path: Path) -> None:
    old = load(_site(tmp_path, "a.toml"))
    new = load(_site(tmp_path, "b.toml", api_port=9090, port_b=1504))
    found = changes(old, new)
    assert found.gateways_changed == ["gw-b"]
    assert found.gateways_added == found.gateways_removed == []
    assert found.meters_added == found.meters_changed == []
    assert found.needs_restart == ["api"]
    assert found.summary() == "changed gateways gw-b"
    assert restart_line(found.needs_restart) == (
        "reload: [api] changed: not applied until epcmon restarts (read once at start)"
    )
    assert changes(old, load(_site(tmp_path, "c.toml"))).empty


def test_a_bad_file_is_one_line_and_nothing(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.ERROR, logger="epcmon.run")
    bad = tmp_path / "bad.toml"
    bad.write_text("[site\n", "utf-8")
    assert read_site(bad) is None
    assert read_site(tmp_path / "missing.toml") is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert all("\n" not in line and "keeping the running configuration" in line for line in lines)
    assert "bad.toml" in lines[0]
    assert "missing.toml" in lines[1]


async def test_reload_replaces_and_removes_pollers_and_keeps_the_others(tmp_path: Path) -> None:
    site = load(_site(tmp_path, "a.toml"))
    store = DuckDBStore(tmp_path / "store.duckdb")
    service = Service(site, store, tmp_path, role="collector", health=Health())
    assert service.collectors is not None
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        before = {p.gateway.id: p for p in service.collectors.pollers}
        await service.reload(load(_site(tmp_path, "b.toml", port_b=1504)))
        after = {p.gateway.id: p for p in service.collectors.pollers}
        assert after["gw-a"] is before["gw-a"]  # untouched
        assert after["gw-b"] is not before["gw-b"]
        assert after["gw-b"].gateway.port == 1504
        assert service.supervisor.names == ["modbus gw-a", "store-maintenance", "modbus gw-b"]
        text = (tmp_path / "b.toml").read_text("utf-8")
        cut = text.index('[[meters]]\nid = "E-B"')
        (tmp_path / "d.toml").write_text(text[:cut], "utf-8")  # gw-b keeps no meter
        await service.reload(load(tmp_path / "d.toml"))
        assert [p.gateway.id for p in service.collectors.pollers] == ["gw-a"]
        assert service.supervisor.names == ["modbus gw-a", "store-maintenance"]
        assert "modbus gw-b" not in service.health.snapshot().parts
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        service.close()
        store.close()

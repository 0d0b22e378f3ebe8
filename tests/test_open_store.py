"""`[storage]` in the site file and `storage.open_store`: backends, secrets from the
environment only, never shown."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from core.config import StorageConfig, parse_site
from core.errors import ConfigError
from core.readings import ReadingBatch
from epcmon.sites import load
from storage import open_store
from storage.duckdb_store import DuckDBStore
from storage.influx import InfluxStore
from storage.spool import SpoolingStore
from tests.conftest import InfluxServer

SECRET = "pa55-w0rd-in-the-environment"
SITE = """
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


def site_with(storage: str) -> str:
    return SITE + "\n" + storage


def test_influx_backend_from_the_site_file(tmp_path: Path) -> None:
    site = parse_site(
        tomllib.loads(
            site_with(
                f"""
[storage]
backend = "influx"
[storage.influx]
url = "https://influx.example.internal:8086"
mode = "v1"
database = "luan"
username = "epcmon"
[storage.spool]
path = "{tmp_path}/spool.sqlite3"
max_bytes = 10_000_000
"""
            )
        )
    )
    assert site.storage.backend == "influx"
    assert site.storage.influx.database == "luan"
    assert site.storage.influx.precision == "ms"
    assert site.storage.spool.max_bytes == 10_000_000


@pytest.mark.parametrize("key", ["token", "password"])
def test_secrets_in_the_file_are_refused_without_echoing_them(key: str) -> None:
    text = site_with(f'[storage.influx]\n{key} = "{SECRET}"\n')
    with pytest.raises(ConfigError, match=f"EPCMON_INFLUX_{key.upper()}") as refused:
        parse_site(tomllib.loads(text), source="site.toml")
    assert SECRET not in str(refused.value)
    assert "site.toml" in str(refused.value)


def test_bad_influx_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"\[storage\]: influx.mode"):
        parse_site(tomllib.loads(site_with('[storage.influx]\nmode = "v4"\n')))
    with pytest.raises(ConfigError, match=r"influx.url"):
        parse_site(tomllib.loads(site_with('[storage.influx]\nurl = "influx:8086"\n')))


def test_duckdb_is_the_default(tmp_path: Path) -> None:
    store = open_store(StorageConfig(path=str(tmp_path / "x.duckdb")))
    assert isinstance(store, DuckDBStore)
    store.close()


def test_influx_store_with_spool_and_secrets_from_the_environment(
    influxdb: InfluxServer, influx_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = StorageConfig.model_validate(
        {
            "backend": "influx",
            "influx": {"url": influxdb.url, "mode": "v1", "database": influx_db, "username": "u"},
            "spool": {"path": str(tmp_path / "spool.sqlite3")},
        }
    )
    store = open_store(config, environ={"EPCMON_INFLUX_PASSWORD": SECRET})
    assert isinstance(store, SpoolingStore)
    assert isinstance(store.inner, InfluxStore)
    # auth is off on this server: the password is sent, and must show nowhere
    store.write(ReadingBatch.for_series("E-01", "power", [1_000], [1.0]))
    assert store.read_raw("E-01", "power", 0, 2**53).value.tolist() == [1.0]
    for shown in (repr(store), str(store), repr(store.inner), repr(config), caplog.text):
        assert SECRET not in shown
    store.close()
    unspooled = open_store(config, spool=False, environ={})
    assert isinstance(unspooled, InfluxStore)
    assert "EPCMON_INFLUX_PASSWORD is not set" in caplog.text
    unspooled.close()


def test_the_environment_overrides_the_site_file(tmp_path: Path) -> None:
    site_file = tmp_path / "site.toml"
    site_file.write_text(
        site_with('[storage]\nbackend = "influx"\n[storage.influx]\nurl = "http://a:8086"\n'),
        encoding="utf-8",
    )
    site = load(
        site_file, environ={"EPCMON_INFLUX_URL": "http://b:8086", "EPCMON_INFLUX_GZIP": "true"}
    )
    assert site.storage.influx.url == "http://b:8086"
    assert site.storage.influx.gzip is True
    assert site.source == str(site_file)
    assert load(site_file, environ={}).storage.influx.url == "http://a:8086"
    with pytest.raises(
        ConfigError, match=r"environment: EPCMON_INFLUX_MODE: storage\.influx\.mode"
    ):
        load(site_file, environ={"EPCMON_INFLUX_MODE": "v9"})

"""Issue 18: a portfolio directory, the shared store's site views, site-scoped keys, and the
portfolio's arithmetic (totals, root sum of squares, rankings)."""

from __future__ import annotations

import math
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from api.keys import KeyStore, Role
from core.errors import ConfigError
from core.readings import Reading, ReadingBatch
from epcmon.sites import load, load_portfolio
from processing.portfolio import (
    ContractFigures,
    SiteFigures,
    StatementStatus,
    Window,
    portfolio_figures,
    rss,
)
from processing.statements import MonthEntry
from storage.base import Agg, Every
from storage.duckdb_store import DuckDBStore
from storage.scoped import SiteStore, qualified, split

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "sites" / "luan-admin-center.toml"
HEAD = """[portfolio]
id = "test-city"
name = "测试市"
[storage]
path = "{data}/city.duckdb"
[api]
keys_path = "{data}/keys.sqlite3"
"""


def _portfolio_dir(tmp_path: Path, *copies: tuple[str, str, str]) -> Path:
    """A portfolio of copies of the reference site: (file name, site id, contract id)."""
    directory = tmp_path / "city"
    directory.mkdir(parents=True)
    (directory / "portfolio.toml").write_text(HEAD.format(data=tmp_path / "data"))
    text = REFERENCE.read_text(encoding="utf-8")
    for name, site_id, contract_id in copies:
        (directory / name).write_text(
            text.replace('id = "luan-admin-center"', f'id = "{site_id}"', 1)
            .replace("epc-2025-01", contract_id)
            .replace('topic = "luan-admin-center/', f'topic = "{site_id}/'),
            encoding="utf-8",
        )
    return directory


def test_a_directory_is_a_portfolio_of_its_site_files(tmp_path):
    d = _portfolio_dir(tmp_path, ("a.toml", "city-hall", "epc-a"), ("b.toml", "county-b", "epc-b"))
    p = load_portfolio(d)
    assert p.info.id == "test-city"
    assert [s.site.id for s in p.sites] == ["city-hall", "county-b"]
    assert p.meters == 2 * len(load(REFERENCE).meters)
    for site in p.sites:  # the shared store and API; statements, alarms, reports per site
        assert site.storage.path == f"{tmp_path}/data/city.duckdb"
        assert site.api.keys_path == f"{tmp_path}/data/keys.sqlite3"
        assert site.storage.statements_file == (
            f"{tmp_path}/data/sites/{site.site.id}/statements.sqlite"
        )
        assert site.store_scope == site.site.id
    # one of its files on its own is the same site, on the portfolio's store
    alone = load(d / "b.toml")
    assert alone.store_scope == "county-b"
    assert alone.storage.statements_file == p.site("county-b").storage.statements_file
    assert load(REFERENCE).store_scope == ""


def test_sites_on_one_broker_keep_their_topics_apart(tmp_path):
    d = _portfolio_dir(tmp_path, ("a.toml", "x", "epc-a"))
    text = (d / "a.toml").read_text(encoding="utf-8")
    (d / "b.toml").write_text(
        text.replace('id = "x"', 'id = "y"', 1).replace("epc-a", "epc-b"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="is also a topic of site 'x'") as err:
        load_portfolio(d)
    assert err.value.key == "mqtt.topic"
    assert err.value.file == str(d / "b.toml")


@pytest.mark.parametrize(
    ("copies", "message"),
    [
        ((("a.toml", "x", "epc-a"), ("b.toml", "x", "epc-b")), "site id 'x' is also the id of"),
        ((("a.toml", "x", "epc-a"), ("b.toml", "y", "epc-a")), "contract id 'epc-a' is also"),
    ],
)
def test_ids_are_unique_across_the_portfolio(tmp_path, copies, message):
    d = _portfolio_dir(tmp_path, *copies)
    with pytest.raises(ConfigError, match=message) as err:
        load_portfolio(d)
    assert err.value.file == str(d / "b.toml")


def test_a_portfolio_needs_its_head_file_and_a_site(tmp_path):
    with pytest.raises(ConfigError, match=r"needs portfolio\.toml"):
        load_portfolio(tmp_path)
    (tmp_path / "portfolio.toml").write_text(HEAD.format(data=tmp_path))
    with pytest.raises(ConfigError, match="no site files"):
        load_portfolio(tmp_path)
    (tmp_path / "portfolio.toml").write_text('[portfolio]\nid = "bad id"\nname = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_portfolio(tmp_path)
    assert err.value.file == str(tmp_path / "portfolio.toml")
    assert "id" in str(err.value)


def test_cli_user_errors_are_one_line_and_exit_2(tmp_path):
    d = _portfolio_dir(tmp_path, ("a.toml", "x", "epc-a"), ("b.toml", "x", "epc-b"))
    for argv in (
        ["check-config", str(d)],
        ["keys", "--site", str(d), "list"],
        ["run", "--site", str(d)],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "epcmon.cli", *argv], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 2, (argv, r.stderr)
        assert "Traceback" not in r.stderr
        assert "site id 'x' is also the id of" in r.stderr
    ok = _portfolio_dir(tmp_path / "ok", ("a.toml", "x", "epc-a"))
    r = subprocess.run(
        [sys.executable, "-m", "epcmon.cli", "keys", "--site", str(ok), "create", "--role",
         "engineer", "--scope-site", "nope"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "--scope-site: no site 'nope'" in r.stderr


def test_site_views_of_one_store_never_see_each_other(tmp_path):
    store = DuckDBStore(tmp_path / "s.duckdb")
    a, b = SiteStore(store, "a"), SiteStore(store, "b")
    ts = 1_767_225_600_000 + np.arange(8, dtype=np.int64) * 900_000
    a.write(ReadingBatch.for_series("E-1", "energy_import", ts, np.arange(8.0)))
    b.write(ReadingBatch.for_series("E-1", "energy_import", ts, 100 + 2 * np.arange(8.0)))
    b.write(ReadingBatch.for_series("E-2", "power", ts[:1], [5.0]))
    assert sorted(store.series_keys()) == [
        ("a/E-1", "energy_import"),
        ("b/E-1", "energy_import"),
        ("b/E-2", "power"),
    ]
    assert a.series_keys() == [("E-1", "energy_import")]
    assert sorted(b.series_keys()) == [("E-1", "energy_import"), ("E-2", "power")]
    assert [r.value for r in a.latest()] == [7.0]
    assert {(r.meter_id, r.value) for r in b.latest()} == {("E-1", 114.0), ("E-2", 5.0)}
    assert b.latest(["E-1"]) == [Reading("E-1", "energy_import", int(ts[-1]), 114.0)]
    assert a.read_raw("E-1", "energy_import", 0, 2**62).value.tolist() == list(np.arange(8.0))
    hour = Every.parse("1h")
    assert a.consumption("E-1", "energy_import", int(ts[0]), int(ts[-1]) + 1, hour).value.sum() > 0
    assert (
        b.aggregate("E-1", "energy_import", int(ts[0]), int(ts[-1]) + 1, hour, Agg.MAX).value.max()
        == 114.0
    )
    assert a.read_raw("E-2", "power", 0, 2**62).value.tolist() == []  # b's meter, not a's
    a.close()  # a view leaves the shared store open
    assert len(store.series_keys()) == 3
    store.close()
    assert qualified("a", "E-1") == "a/E-1"
    assert split("a/E-1") == ("a", "E-1")
    assert split("E-1") == ("", "E-1")


def test_keys_scoped_to_sites(tmp_path):
    keys = KeyStore(tmp_path / "k.sqlite3")
    _, county = keys.create(Role.ENGINEER, sites=("county-b",), name="county")
    _, city = keys.create(Role.VIEWER)
    county_p, city_p = keys.authenticate(county), keys.authenticate(city)
    assert county_p is not None
    assert city_p is not None
    assert county_p.sites == frozenset({"county-b"})
    assert county_p.may_see_site("county-b")
    assert not county_p.may_see_site("city-hall")
    assert city_p.may_see_site("city-hall")
    assert [k.sites for k in keys.list()] == [("county-b",), ()]
    with pytest.raises(ConfigError, match="vendor key is bound to its contracts"):
        keys.create(Role.VENDOR, contracts=("epc-a",), sites=("county-b",))
    keys.close()


def test_a_keys_file_from_before_portfolios_still_works(tmp_path):
    path = tmp_path / "old.sqlite3"
    keys = KeyStore(path)
    _, key = keys.create(Role.ENGINEER)
    keys.close()
    db = sqlite3.connect(path)  # the table as it was: no sites column
    db.executescript(
        "CREATE TABLE t AS SELECT key_id, digest, role, contracts, name, created_ms, revoked_ms"
        " FROM api_keys; DROP TABLE api_keys; ALTER TABLE t RENAME TO api_keys;"
    )
    db.close()
    keys = KeyStore(path)
    principal = keys.authenticate(key)
    assert principal is not None
    assert principal.sites == frozenset()  # an old key sees every site
    keys.create(Role.VIEWER, sites=("x",))
    assert [k.sites for k in keys.list()] == [(), ("x",)]
    keys.close()


def _contract(site: str, avoided: float, u90: float, unit: str = "kWh") -> ContractFigures:
    return ContractFigures(
        site, f"{site}-c", "c", "v", "electricity", unit, date(2025, 1, 1), date(2026, 1, 1),
        avoided * 10, avoided * 9, avoided, u90, StatementStatus(final=12),
    )  # fmt: skip


def _site(site: str, kwh: float, area: float, *contracts: ContractFigures) -> SiteFigures:
    return SiteFigures(site, site, area, 10, kwh, 1.0, tuple(contracts))


def test_the_portfolios_uncertainty_is_the_root_sum_of_squares():
    assert rss([3.0, 4.0]) == 5.0
    assert rss([]) == 0.0
    sites = [
        _site("a", 1000.0, 10.0, _contract("a", 100.0, 30.0), _contract("a", 50.0, 40.0)),
        _site("b", 4000.0, 20.0, _contract("b", 300.0, 120.0)),
        _site("c", 500.0, 0.0),  # no floor area, no contract
        _site("d", 900.0, 30.0, _contract("d", 7.0, 2.0, unit="m³")),  # water: not in kWh
    ]
    figures = portfolio_figures(Window(date(2025, 1, 1), date(2025, 12, 1)), sites)
    assert figures.avoided_kwh == 450.0
    assert figures.u90_kwh == pytest.approx(math.sqrt(30**2 + 40**2 + 120**2))
    assert figures.u90_kwh < 30 + 40 + 120  # adding intervals would overstate it
    assert sites[0].u90_kwh == 50.0
    assert figures.kwh == 6400.0
    assert figures.kwh_per_m2 == pytest.approx(6400.0 / 60.0)
    assert figures.by_intensity == ("d", "a", "b", "c")  # 30, 100, 200 kWh/m²; c has no area
    assert figures.by_savings == ("b", "a", "d", "c")
    assert figures.window.end == date(2026, 1, 1)


def test_statement_status_counts_the_months():
    months = [
        MonthEntry("2025-07", "final", 1, "", "", 1.0),
        MonthEntry("2025-08", "final", 2, "", "", 1.0),
        MonthEntry("2025-09", "unreliable: cv(rmse)", 1, "", "", 1.0),
        MonthEntry("2025-10", "provisional", 0, "", "", 1.0),
    ]
    assert StatementStatus.of(months) == StatementStatus(2, 1, 1, "2025-08")


def test_copies_of_a_portfolio_directory_keep_working(tmp_path):
    # a directory moved elsewhere (a backup restored) is read the same way
    d = _portfolio_dir(tmp_path, ("a.toml", "x", "epc-a"))
    moved = shutil.copytree(d, tmp_path / "moved")
    assert [s.site.id for s in load_portfolio(moved).sites] == ["x"]


async def test_a_shard_of_a_portfolio_takes_whole_sites(tmp_path):
    from epcmon.collecting import Shard
    from epcmon.portfolio_runtime import PortfolioService

    d = _portfolio_dir(
        tmp_path, *((f"{s}.toml", s, f"epc-{s}") for s in ("a", "b", "c", "d", "e", "f"))
    )
    portfolio = load_portfolio(d)
    store = DuckDBStore(tmp_path / "s.duckdb")
    owned: list[set[str]] = []
    for i in (1, 2):
        service = PortfolioService(
            portfolio, store, tmp_path / f"c{i}", role="collector", shard=Shard(i, 2)
        )
        owned.append(set(service.sites))
        for sid, site_service in service.sites.items():  # the whole site: every gateway
            assert site_service.collectors is not None
            assert len(site_service.collectors.pollers) == len(portfolio.site(sid).gateways)
        service.close()
    assert owned[0] | owned[1] == {"a", "b", "c", "d", "e", "f"}
    assert not owned[0] & owned[1]
    assert owned[0]
    assert owned[1]
    # with the API and jobs too, every site is served; only its own shard's are collected
    every = PortfolioService(portfolio, store, tmp_path / "all", role="all", shard=Shard(1, 2))
    assert set(every.sites) == {"a", "b", "c", "d", "e", "f"}
    collected = {sid for sid, s in every.sites.items() if s.collectors is not None}
    assert collected == owned[0]
    every.close()
    store.close()


def test_a_collector_that_would_pass_select_s_limit_refuses_to_start():
    from types import SimpleNamespace

    from epcmon.collecting import Shard
    from epcmon.portfolio_runtime import check_descriptors

    def services(n: int) -> list[object]:
        return [SimpleNamespace(collectors=SimpleNamespace(subscriber=object())) for _ in range(n)]

    check_descriptors(services(10), Shard())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"would open 400 MQTT connections") as err:
        check_descriptors(services(400), Shard())  # type: ignore[arg-type]
    assert err.value.key == "--shard"
    need = int(re.search(r"at least (\d+) collector processes", str(err.value)).group(1))
    assert 2 <= need <= 3  # 400 clients of 3 descriptors each: two or three processes


async def test_sighup_rereads_every_site_file_and_a_bad_one_changes_nothing(tmp_path, caplog):
    from epcmon.portfolio_runtime import PortfolioService

    d = _portfolio_dir(tmp_path, ("a.toml", "a", "epc-a"), ("b.toml", "b", "epc-b"))
    store = DuckDBStore(tmp_path / "s.duckdb")
    service = PortfolioService(load_portfolio(d), store, tmp_path / "data", role="api")
    assert service.app is not None
    b = d / "b.toml"
    text = b.read_text(encoding="utf-8")
    b.write_text(
        text.replace('name = "六安市行政中心"', 'name = "裕安区行政中心"', 1), encoding="utf-8"
    )
    await service.reload_file(d)
    assert service.sites["b"].site.site.name == "裕安区行政中心"
    assert service.app.state.site_apps["b"].state.site.site.name == "裕安区行政中心"
    assert service.sites["a"].site.site.name == "六安市行政中心"
    b.write_text(text.replace('id = "b"', 'id = "a"', 1), encoding="utf-8")  # a duplicate id
    await service.reload_file(d)
    assert "reload failed" in caplog.text
    assert service.sites["b"].site.site.name == "裕安区行政中心"  # the running one stays
    service.close()
    store.close()

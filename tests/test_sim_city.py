"""The simulated city: generated site files, their physics, the truth, and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
from collections import Counter
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

from collectors.mqtt.payload import parse_payload
from collectors.mqtt.routing import TopicRouter
from core.config import SiteConfig
from epcmon import cli
from epcmon.sites import load
from simulators.city import City, generate_city
from simulators.city_truth import city_truth, contract_year, model_of, true_savings
from simulators.history import generate_history
from simulators.payloads import render_payload
from simulators.roles import local_midnight_ms
from simulators.site import SimulatedSite
from simulators.toml_text import Inline, dumps
from storage.duckdb_store import DuckDBStore
from storage.scoped import SiteStore, split
from tests.sim_helpers import ROOT, SITE_FILE

REFERENCE = SITE_FILE.read_text(encoding="utf-8")


def epcmon(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epcmon.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@cache
def city(sites: int = 20, seed: int = 0) -> City:
    return generate_city(sites, seed, reference_text=REFERENCE)


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> tuple[SiteConfig, ...]:
    """The first 20 sites (the reference, the seven centers, every kind of the tail), loaded."""
    tmp = tmp_path_factory.mktemp("city")
    for name, text in city().files().items():
        (tmp / name).write_text(text, encoding="utf-8")
    return tuple(load(tmp / s.filename) for s in city().sites)


# ------------------------------------------------------------------ the TOML emitter


def test_toml_text_reads_back_as_written():
    doc = {
        "site": {"id": "x", "name": '六安 "quoted" \\ back\nslash\t', "lat": 31.5, "n": 3},
        "flags": [True, False],
        "when": date(2025, 7, 1),
        "at": datetime(2025, 7, 1, 8, tzinfo=UTC),
        "mqtt": {"url": "", "routes": {"power": {"pattern": "a/{m}", "meter": "{m}"}}},
        "formats": {"f": {"fields": [Inline(pointer="/a", unit="kWh"), Inline(pointer="/b")]}},
        "long": list(range(60)),
        "meters": [
            {"id": "E-1", "mqtt": Inline(route="power"), "odd key": 1},
            {"id": "E-2", "inner": [{"x": 1}, {"x": 2}], "table": {"k": "v"}},
        ],
    }
    text = dumps(doc, header="a header\nof two lines")
    assert text.startswith("# a header\n# of two lines\n")
    assert "long = [\n  0,\n" in text  # a long array is written one element a line
    back = tomllib.loads(text)
    assert back == {
        **doc,
        "formats": {"f": {"fields": [dict(x) for x in doc["formats"]["f"]["fields"]]}},
    }


@pytest.mark.parametrize("bad", [math.nan, math.inf, datetime(2025, 1, 1), {1, 2}])
def test_toml_text_refuses_what_toml_cannot_hold(bad: object):
    with pytest.raises((ValueError, TypeError)):
        dumps({"x": bad})


# ------------------------------------------------------------------ the generator


def test_the_same_seed_gives_the_same_city_and_another_seed_another():
    assert generate_city(12, 0, reference_text=REFERENCE).files() == city(12, 0).files()
    other = generate_city(12, 1, reference_text=REFERENCE).files()
    files = city(12, 0).files()
    # the reference site as it is, with a seed of its own drawn from the city's
    for text in (other["luan-admin-center.toml"], files["luan-admin-center.toml"]):
        assert text.startswith(REFERENCE.rstrip("\n"))
        assert "[simulation]\nseed = " in text[len(REFERENCE) :]
    assert other["portfolio.toml"] == files["portfolio.toml"]
    changed = [n for n in files if n.endswith(".toml") and other[n] != files[n]]
    assert len(changed) == 12  # every site: its seed; every generated site: sizes, draws
    # a smaller city is a prefix of a larger one
    larger = city(20, 0).files()
    assert all(larger[name] == text for name, text in files.items())


def test_every_site_loads_with_ids_unique_across_the_portfolio(sites: tuple[SiteConfig, ...]):
    assert [s.site.id for s in sites] == [s.id for s in city().sites]
    assert len({s.site.id for s in sites}) == 20
    contracts = [c.id for s in sites for c in s.contracts]
    assert len(contracts) == len(set(contracts)) >= 8
    assert Counter(s.kind for s in city().sites) == {
        "reference": 1, "center": 7, "school": 4, "clinic": 4, "township": 3, "library": 1,
    }  # fmt: skip
    portfolio = tomllib.loads(city().portfolio_text)
    assert portfolio["portfolio"]["id"] == "luan-city"
    assert portfolio["storage"]["path"] == "data/luan-city.duckdb"
    for s, planned in zip(sites, city().sites, strict=True):
        assert len(s.meters) == planned.meters
        if s.site.id == "luan-admin-center":
            continue
        assert s.simulation.seed != 0
        for m in s.meters:  # every meter publishes on its site's route
            assert m.mqtt is not None
            assert m.mqtt.route
            assert s.topic_of(m).startswith(f"city/{s.site.id}/")
        assert len({s.topic_of(m) for m in s.meters}) == len(s.meters)
    assert len({s.simulation.seed for s in sites}) == 20


def test_check_config_accepts_every_generated_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "city"
    done = epcmon("simulate", "city", "--out", str(out), "--sites", "10")
    assert done.returncode == 0, done.stderr
    assert city(10).totals.line() in done.stdout
    files = sorted(out.glob("*.toml"))
    assert len(files) == 11
    for f in files:  # in this process: eleven interpreters would take seconds
        if f.name != "portfolio.toml":
            assert cli.main(["check-config", str(f), "--json"]) == 0, f.name
            assert json.loads(capsys.readouterr().out)["ok"] is True


def test_centers_differ_in_size_plant_vendor_and_retrofit_date(sites: tuple[SiteConfig, ...]):
    centers = sites[1:8]
    areas = [sum(b.floor_area_m2 for b in s.buildings) for s in centers]
    departments = [sum(t.kind == "department" for t in s.tenants) for s in centers]
    assert len(set(areas)) == 7
    assert 6_000 <= min(areas) < max(areas) <= 40_000
    assert len(set(departments)) == 7
    assert 8 <= min(departments) < max(departments) <= 35
    assert {len(s.buildings) for s in centers} == {1, 2, 3}
    ends = Counter(m.end_use.value for s in centers for m in s.meters)
    assert min(ends["chiller"], ends["cooling_tower"], ends["heating"]) > 0
    starts = [s.contracts[0].reporting_start for s in centers]
    assert len(set(starts)) == 7
    for s in sites:
        for c in s.contracts:
            assert date(2024, 9, 1) <= c.reporting_start <= date(2025, 10, 1)
            assert c.baseline_end == c.reporting_start
            assert (c.reporting_start - c.baseline_start).days in (365, 366)
            assert contract_year(c)[1] <= date(2026, 11, 1)  # a full year closed by 2026-11
            assert local_midnight_ms(s, c.baseline_start) >= local_midnight_ms(
                s, s.simulation.epoch
            )
    vendors = Counter(s.contracts[0].vendor for s in sites[:8])
    assert 3 <= len(vendors) <= 4
    assert max(vendors.values()) >= 2


def test_200_sites_reach_20000_meters():
    big = generate_city(200, 0, reference_text=REFERENCE)
    t = big.totals
    assert t.sites == len({s.id for s in big.sites}) == 200
    assert t.meters >= 20_000
    # the counts are the files' own
    for s in big.sites[::40]:
        assert len(tomllib.loads(s.text)["meters"]) == s.meters


def test_the_simulated_sites_are_plausible_and_their_retrofits_save(sites: tuple[SiteConfig, ...]):
    """Loads per m2 of an office building, and each contract's first year saving 5-25 %."""
    for s in sites[1:]:
        model = model_of(s)
        area = sum(b.floor_area_m2 for b in s.buildings)
        incomers = [model.spec.index[m.id] for m in s.meters if m.end_use.value == "incomer"]
        q = local_midnight_ms(s, date(2025, 7, 21)) // 900_000
        kw = model.evaluate(q, 96 * 7).actual[:, incomers].sum(axis=1)
        assert 5.0 < kw.mean() / area * 1000 < 30.0, s.site.id  # W/m2
        for row in city_truth([s]):
            assert 0.05 < row.savings_kwh / row.counterfactual_kwh < 0.25, row
            kwh_m2 = row.counterfactual_kwh / area
            assert 50 < kwh_m2 < 200, (s.site.id, kwh_m2)  # kWh/m2 a year


# ------------------------------------------------------------------ the truth


def test_the_reference_sites_truth_is_the_single_site_truth():
    site = load(SITE_FILE)
    c = site.contract("epc-2025-01")
    start = datetime(2025, 6, 29, 16, tzinfo=UTC)  # two days before the retrofit and two after
    end = datetime(2025, 7, 3, 16, tzinfo=UTC)
    model = model_of(site)
    history = generate_history(site, start, end, interval="1h", model=model)
    expected = float(np.sum([history.true_savings_kwh[m].sum() for m in c.meters]))
    assert expected > 0
    assert true_savings(site, c, start, end, model=model) == pytest.approx(expected, rel=1e-9)
    assert true_savings(site, "epc-2025-01", date(2025, 6, 30), date(2025, 7, 4)) == pytest.approx(
        expected, rel=1e-9
    )
    assert true_savings(site, c, date(2025, 5, 1), date(2025, 6, 1)) == 0.0  # before the retrofit


# ------------------------------------------------------------------ the CLI


def test_simulate_city_refuses_in_one_line(tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("x")
    (tmp_path / "file").write_text("x")
    cases = [
        (("--out", str(tmp_path / "full")), "not empty (--force"),
        (("--out", str(tmp_path / "file")), "exists and is not a directory"),
        (("--out", str(tmp_path / "new"), "--sites", "0"), "--sites"),
        (
            ("--out", str(tmp_path / "new"), "--reference", str(tmp_path / "none.toml")),
            "--reference",
        ),
    ]
    for args, words in cases:
        done = epcmon("simulate", "city", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert words in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    forced = epcmon("simulate", "city", "--out", str(tmp_path / "full"), "--sites", "2", "--force")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        "jinan-center.toml", "luan-admin-center.toml", "old.txt", "portfolio.toml",
    ]  # fmt: skip


def test_a_portfolios_history_lands_with_site_qualified_ids(tmp_path: Path):
    out = tmp_path / "city"
    assert epcmon("simulate", "city", "--out", str(out), "--sites", "2").returncode == 0
    store_path = tmp_path / "city.duckdb"
    truth = tmp_path / "truth.csv"
    done = epcmon(
        "simulate", "history", "--site", str(out), "--from", "2025-07-01", "--to", "2025-07-02",
        "--interval", "1h", "--no-progress", "--out", str(store_path), "--truth", str(truth),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "at 2 sites" in done.stdout
    assert "epc-2025-01 true savings" in done.stdout
    with DuckDBStore(store_path) as store:
        keys = store.series_keys()
        by_site = Counter(split(m)[0] for m, _ in keys)
        assert set(by_site) == {"luan-admin-center", "jinan-center"}
        assert ("luan-admin-center/E-TR1", "energy_import") in keys
        assert ("jinan-center/E-TR1", "energy_import") in keys  # the same id, two sites
        view = SiteStore(store, "jinan-center")
        latest = {r.meter_id for r in view.latest()}
        assert {"E-TR1", "WX-ROOF"} <= latest
        assert not any("/" in m for m in latest)
    table = pacsv.read_csv(truth)
    sites_in_truth = {split(m)[0] for m in table.column("meter_id").to_pylist()}
    assert sites_in_truth == {"luan-admin-center", "jinan-center"}
    for flag, value in (("--seed", "3"), ("--meters", "E-TR1"), ("--fault", "E-TR1:offline")):
        refused = epcmon(
            "simulate", "history", "--site", str(out), "--from", "2025-07-01", "--to",
            "2025-07-02", "--no-progress", "--out", str(store_path), flag, value,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert flag in refused.stderr


def test_a_generated_sites_meters_publish_what_the_collector_reads(sites: tuple[SiteConfig, ...]):
    """Each kind of meter, rendered as the simulator publishes it, routed and parsed as the
    collector does: the meter it came from, the values it sent."""
    site = sites[1]
    sim = SimulatedSite(site)
    router = TopicRouter(site)
    assert sorted(router.subscriptions()) == [
        f"city/{site.site.id}/{kind}/+" for kind in ("power", "water", "weather")
    ]
    now = local_midnight_ms(site, date(2025, 7, 21)) + 10 * 3_600_000
    checks = {
        "E-TR1": "energy_import",
        "E-R01": "power",
        "W-B1": "volume",
        "WX-ROOF": "outdoor_temperature",
    }
    for meter_id, quantity in checks.items():
        m = site.meter(meter_id)
        values = sim.values(meter_id, now)
        payload = render_payload(site.format_of(m), values, now)
        route = router.route(site.topic_of(m))
        assert route is not None
        assert route.meter_id == meter_id
        readings = {r.quantity: r for r in parse_payload(payload, route.fmt, route.meter_id, now)}
        assert readings[quantity].ts_ms == now
        assert readings[quantity].value == pytest.approx(values[quantity], rel=1e-6, abs=1e-3)


def test_boundary_histories_hold_what_the_contracts_need(tmp_path: Path):
    out = tmp_path / "city"
    assert epcmon("simulate", "city", "--out", str(out), "--sites", "2").returncode == 0
    store_path = tmp_path / "b.duckdb"
    done = epcmon(
        "simulate", "history", "--site", str(out), "--from", "2025-07-01", "--to", "2025-07-02",
        "--interval", "1h", "--no-progress", "--out", str(store_path), "--boundary",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    with DuckDBStore(store_path) as store:
        meters = {m for m, _ in store.series_keys()}
    assert meters == {
        *(f"luan-admin-center/{m}" for m in ("E-TR1", "E-TR2", "E-TR3", "E-TR4", "WX-ROOF")),
        *(f"jinan-center/{m}" for m in ("E-TR1", "E-TR2", "E-TR3", "E-TRH", "WX-ROOF")),
    }
    single = epcmon(
        "simulate", "history", "--site", str(SITE_FILE), "--from", "2025-07-01", "--to",
        "2025-07-02", "--no-progress", "--out", str(tmp_path / "one.duckdb"), "--boundary",
        "--meters", "E-TR1",
    )  # fmt: skip
    assert single.returncode == 2, single.stderr
    assert "--meters" in single.stderr

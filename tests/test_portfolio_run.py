"""Issue 18, what must show: one `epcmon run` serves the simulated city's 8 sites (the
administrative center and seven county/district centers, each with its own contract, vendor
and retrofit date). Left alone on a store holding their history, it writes every contract's
statements, collects live MQTT readings of every site into the one store as `<site>/<meter>`,
and serves the portfolio: its avoided energy over each contract's first contract year is
inside the combined 90 % interval (root sum of squares) of the simulator's truth. A county's
key sees its own site only; the city's key sees all; a vendor its contracts across sites.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.publish as publish
import pytest

from api.keys import KeyStore, Role
from core.net import free_port
from epcmon.simulate import HistoryOptions
from epcmon.simulate_city import run_portfolio_history
from epcmon.sites import load_portfolio
from simulators.city import generate_city
from simulators.city_truth import city_truth

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "sites" / "luan-admin-center.toml"
SITES = 8

pytestmark = pytest.mark.e2e


def _city(tmp_path: Path, api_port: int, broker_url: str) -> Path:
    """The 8-site city on this test's store, keys, port and broker."""
    city = generate_city(SITES, seed=0, reference_text=REFERENCE.read_text(encoding="utf-8"))
    directory = tmp_path / "city"
    directory.mkdir()
    for name, text in city.files().items():
        if name != "portfolio.toml":
            text = text.replace('[mqtt]\nurl = ""', f'[mqtt]\nurl = "{broker_url}"', 1)
        (directory / name).write_text(text, encoding="utf-8")
    (directory / "portfolio.toml").write_text(
        "[portfolio]\n"
        'id = "luan-city"\n'
        'name = "六安市公共机构能耗监测"\n'
        "[storage]\n"
        f'path = "{tmp_path / "city.duckdb"}"\n'
        "[api]\n"
        f"port = {api_port}\n"
        f'keys_path = "{tmp_path / "keys.sqlite3"}"\n',
        encoding="utf-8",
    )
    return directory


async def _output(proc: asyncio.subprocess.Process) -> str:
    """What an `epcmon run` that ended printed (it should not end by itself)."""
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return f"epcmon run ended with {proc.returncode}: {out.decode()[-3000:]}"


async def test_one_run_serves_the_city_and_its_savings_meet_the_truth(tmp_path, mosquitto):
    directory = _city(tmp_path, 0, mosquitto.url)
    portfolio = load_portfolio(directory)
    assert len(portfolio.sites) == SITES
    assert all(f'url = "{mosquitto.url}"' in p.read_text() for p in directory.glob("*-center.toml"))
    # every contract's boundary and weather station, hourly, from the first baseline on
    run_portfolio_history(
        str(directory),
        HistoryOptions(start="2023-09-01", end="2026-10-01", interval="1h", progress=False),
        boundary=True,
    )
    truth = {row.contract: row for row in city_truth(portfolio.sites)}
    assert len(truth) == SITES

    keys = KeyStore(tmp_path / "keys.sqlite3")
    county_site = "huoqiu-center"
    county_contract = portfolio.site(county_site).contracts[0].id
    tokens = {
        "city": keys.create(Role.ENGINEER, name="city office")[1],
        "county": keys.create(Role.ENGINEER, sites=(county_site,), name="county office")[1],
        "vendor": keys.create(
            Role.VENDOR,
            contracts=tuple(
                c.id
                for s in portfolio.sites
                for c in s.contracts
                if c.vendor == "安徽淠源节能服务有限公司"
            ),
        )[1],
    }
    keys.close()

    # the port is chosen now, not before the minute of history: another process may take it
    api_port = free_port()
    head = directory / "portfolio.toml"
    head.write_text(
        re.sub(r"(?m)^port = \d+$", f"port = {api_port}", head.read_text()), encoding="utf-8"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "epcmon.cli", "run", "--site", str(directory),
        "--data-dir", str(tmp_path / "data"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    figures: dict[str, object] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as client:
            city = {"Authorization": f"Bearer {tokens['city']}"}
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # the service fits and writes by itself
                try:
                    r = await client.get("/api/v1/portfolio", params={"year": 1}, headers=city)
                    if r.status_code == 200:
                        figures = r.json()
                        contracts = [c for s in figures["sites"] for c in s["contracts"]]
                        if len(contracts) == SITES and all(
                            c["statements"]["final"] >= 12 and c["start"] for c in contracts
                        ):
                            break
                except httpx.TransportError:
                    assert proc.returncode is None, await _output(proc)  # not listening yet
                await asyncio.sleep(1.0)
            contracts = [c for s in figures["sites"] for c in s["contracts"]]  # type: ignore[index]
            assert len(contracts) == SITES, figures
            assert all(c["statements"]["final"] >= 12 for c in contracts), figures

            # the portfolio's avoided energy against the truth, each contract's year 1
            totals = figures["totals"]  # type: ignore[index]
            true_total = sum(t.savings_kwh for t in truth.values())
            u90 = math.sqrt(sum(c["u90"] ** 2 for c in contracts))
            assert totals["u90_kwh"] == pytest.approx(u90)
            assert totals["avoided_kwh"] == pytest.approx(sum(c["avoided"] for c in contracts))
            for c in contracts:  # the same year the truth covers
                start, end = truth[c["id"]].start, truth[c["id"]].end
                assert (c["start"], c["end"]) == (start.isoformat(), end.isoformat())
            assert abs(totals["avoided_kwh"] - true_total) <= totals["u90_kwh"], (
                totals,
                true_total,
            )
            assert totals["u90_kwh"] < 0.5 * true_total  # an interval that says something
            print(
                f"portfolio year 1: {totals['avoided_kwh']:,.0f} ± {totals['u90_kwh']:,.0f} kWh "
                f"(90 %), truth {true_total:,.0f} kWh"
            )

            # live readings of every site land as <site>/<meter>, each in its own site
            health = (await client.get("/healthz")).json()
            subscribed = [n for n in health["parts"] if n.endswith("/mqtt")]
            assert len(subscribed) == SITES, health["parts"]
            generated = [s for s in portfolio.sites if s.site.id != "luan-admin-center"]
            for i, site in enumerate(generated):
                meter = next(m for m in site.meters if m.kind.value == "electricity")
                url = f"/api/v1/sites/{site.site.id}/meters/{meter.id}/latest"
                values: list[float] = []
                while time.monotonic() < deadline and 10.0 + i not in values:
                    # published again until stored: the broker keeps messages for the
                    # collector's session only once it has subscribed (writes are idempotent)
                    payload = {"ts": int(time.time() * 1000), "kwh": 1000.0 + i, "kw": 10.0 + i}
                    publish.single(
                        f"city/{site.site.id}/power/{meter.id}",
                        json.dumps(payload),
                        qos=1,
                        hostname=mosquitto.host,
                        port=mosquitto.port,
                    )
                    for _ in range(10):
                        values = [r["value"] for r in (await client.get(url, headers=city)).json()]
                        if 10.0 + i in values:
                            break
                        await asyncio.sleep(0.2)
                assert 10.0 + i in values, (site.site.id, values)
            # the county's office: its own site, nothing else
            county = {"Authorization": f"Bearer {tokens['county']}"}
            sites = (await client.get("/api/v1/sites", headers=county)).json()
            assert [s["id"] for s in sites] == [county_site]
            mine = await client.get("/api/v1/portfolio", params={"year": 1}, headers=county)
            assert [c["id"] for s in mine.json()["sites"] for c in s["contracts"]] == [
                county_contract
            ]
            other = await client.get("/api/v1/sites/jinan-center/meters", headers=county)
            assert other.status_code == 403
            own = await client.get(f"/api/v1/sites/{county_site}/meters", headers=county)
            assert own.status_code == 200
            # the vendor: its contracts at every site that has one, no building data
            vendor = {"Authorization": f"Bearer {tokens['vendor']}"}
            v = (await client.get("/api/v1/portfolio", params={"year": 1}, headers=vendor)).json()
            seen = {c["id"] for s in v["sites"] for c in s["contracts"]}
            assert len({s["id"] for s in v["sites"]}) >= 2
            assert seen == {
                c.id
                for s in portfolio.sites
                for c in s.contracts
                if c.vendor == "安徽淠源节能服务有限公司"
            }
            assert "kwh" not in v["totals"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text

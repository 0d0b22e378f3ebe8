"""`epcmon demo --city [N]`: the portfolio's main job in one process, on the embedded defaults.

The simulated city (`simulators.city`: the administrative center, seven county/district
centers, then small institutions; 8 sites by default) is written as a portfolio directory
under the data directory, every site's hourly history back-filled into one DuckDB store
(meters as `<site>/<meter>`) up to the last full hour, and the portfolio run as `epcmon run
--site DIR --role api` runs it (`PortfolioService`: every site's recompute, reports, alarms
and API routes, the portfolio's page and routes). Before it listens it prints each contract's
first contract year, as the service computed it, beside the simulator's truth, and the
portfolio's total with its combined 90 % interval.

Its meters are not played live: the single-site demo shows live collection, and a portfolio
collects as `epcmon run --site DIR` does, each site with its own MQTT client, on a real broker
(tests/test_portfolio_run.py). In one process with the embedded amqtt broker, 8 sites' live
meters overloaded the broker (PUBACK time-outs), so the city demo leaves them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from api.keys import KeyStore, Role
from core.config import ApiConfig, Portfolio, SiteConfig, StorageConfig
from core.config.portfolio import in_portfolio
from epcmon.demo import DemoOptions, listen_for
from epcmon.demo_history import Backfill, backfill
from epcmon.portfolio_runtime import PortfolioService
from epcmon.runtime import stop_on_signals
from epcmon.sites import load_portfolio
from processing.contract import compute_savings
from processing.portfolio import rss
from processing.schedule import Recompute
from simulators.city import generate_city
from storage.duckdb_store import DuckDBStore
from storage.scoped import SiteStore

CITY_DIR = "demo-city"


def write_city(directory: Path, sites: int, reference: Path) -> None:
    """The city's files, for the visitor to read (and to run later with `epcmon run`)."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.toml"):
        old.unlink()
    city = generate_city(sites, seed=0, reference_text=reference.read_text(encoding="utf-8"))
    for name, text in city.files().items():
        (directory / name).write_text(text, encoding="utf-8")


def year_one_lines(
    sites: list[SiteConfig],
    store: DuckDBStore,
    service: PortfolioService,
    truth: dict[str, Backfill],
) -> list[str]:
    """Each contract's first contract year beside its truth, and the portfolio's."""
    lines = [
        "each contract's first contract year, as the service computed it, beside the "
        "simulator's truth (kWh):",
        f"  {'site':<20}{'contract':<24}{'avoided':>12}{'±90 %':>10}{'truth':>12}  inside",
    ]
    avoided, u90, true_total = [], [], 0.0
    for site in sites:
        statements = service.sites[site.site.id].statements
        for contract in site.contracts:
            baseline = statements.latest_baseline(contract.id) if statements else None
            if baseline is None:
                lines.append(f"  {site.site.id:<20}{contract.id:<24}  no baseline yet")
                continue
            view = SiteStore(store, site.site.id)
            year = compute_savings(site, contract.id, view, baseline=baseline).years[0]
            months = truth[site.site.id].truth_by_month.get(contract.id, {})
            first, last = year.start.strftime("%Y-%m"), year.end.strftime("%Y-%m")
            true = sum(v for m, v in months.items() if first <= m < last)
            avoided.append(year.avoided)
            u90.append(year.u90.u)
            true_total += true
            inside = "yes" if abs(year.avoided - true) <= year.u90.u else "no"
            lines.append(
                f"  {site.site.id:<20}{contract.id:<24}{year.avoided:>12,.0f}{year.u90.u:>10,.0f}"
                f"{true:>12,.0f}  {inside}"
            )
    total, combined = sum(avoided), rss(u90)
    inside = "yes" if abs(total - true_total) <= combined else "no"
    lines.append(
        f"  {'portfolio':<44}{total:>12,.0f}{combined:>10,.0f}{true_total:>12,.0f}  {inside}"
        "   (±: root sum of squares of the contracts')"
    )
    return lines


async def run_city_demo(opts: DemoOptions, sites: int) -> None:
    def say(text: str) -> None:
        print(text, flush=True)

    stop = asyncio.Event()
    stop_on_signals(stop)
    directory = opts.data_dir / CITY_DIR
    write_city(directory, sites, opts.site_file)
    portfolio = load_portfolio(directory)
    api = ApiConfig(
        host=opts.host if opts.host is not None else portfolio.api.host,
        port=opts.port if opts.port is not None else portfolio.api.port,
        keys_path=str(opts.data_dir / "demo-city-api-keys.sqlite3"),
    )
    sockets = listen_for(api.host, api.port, opts, portfolio.source)
    async with contextlib.AsyncExitStack() as started:
        for sock in sockets:
            started.callback(sock.close)
        started.callback(stop.set)
        await _run(portfolio, api, opts, sockets, stop, started, say)
    say("stopped cleanly")


async def _run(
    portfolio: Portfolio,
    api: ApiConfig,
    opts: DemoOptions,
    sockets: list,  # type: ignore[type-arg]
    stop: asyncio.Event,
    started: contextlib.AsyncExitStack,
    say: Callable[[str], None],
) -> None:
    storage = StorageConfig(path=str(opts.data_dir / "demo-city.duckdb"))
    store = DuckDBStore(storage.path)
    started.callback(store.close)
    say(f"city {portfolio.source}: {len(portfolio.sites)} sites, {portfolio.meters} meters; "
        f"store: DuckDB {storage.path} (meters as <site>/<meter>)")  # fmt: skip
    sites: list[SiteConfig] = []
    truth: dict[str, Backfill] = {}
    for site in portfolio.sites:
        now_ms = int(time.time() * 1000)
        own = in_portfolio(site, storage, api)
        sites.append(own)
        view = SiteStore(store, site.site.id)
        filled = truth[site.site.id] = await asyncio.to_thread(
            backfill, site, [m.id for m in site.meters], view, now_ms, progress=lambda _t: None
        )
        say(f"  {site.site.id}: {len(site.meters)} meters, {filled.readings:,} readings of history "
            f"in {filled.seconds:.1f} s")  # fmt: skip
    demo = Portfolio(portfolio.info, storage, api, tuple(sites), portfolio.source)
    keys = KeyStore(api.keys_path)
    service = PortfolioService(demo, store, opts.data_dir, role="api", keys=keys)
    started.callback(service.close)
    key_id, key = keys.create(Role.ADMIN, name="epcmon city demo")
    started.callback(keys.revoke, key_id)  # the printed key dies with the demo
    for site in sites:  # each site's first recompute, before it listens: figures at once
        statements = service.sites[site.site.id].statements
        if site.contracts and statements is not None:
            recompute = Recompute(site, SiteStore(store, site.site.id), statements, service.health)
            await asyncio.to_thread(recompute.run_once)
    for line in await asyncio.to_thread(year_one_lines, sites, store, service, truth):
        say(line)
    bound = await service.start(sockets)
    running = asyncio.create_task(service.run(stop))

    async def stop_service() -> None:
        stop.set()
        await running

    started.push_async_callback(stop_service)
    base = f"http://{api.host}:{bound}"
    say(f"portfolio page: {base}/  (paste the key below); each site: {base}/sites/<site>/")
    say(f"demo API key (admin, every site, this run only): {key}")
    say(f'try: curl -H "Authorization: Bearer {key}" "{base}/api/v1/portfolio?year=1"')
    say("running; Ctrl-C stops" if opts.duration_s is None else f"running for {opts.duration_s:g}s")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait(
        {stopped, running}, timeout=opts.duration_s, return_when=asyncio.FIRST_COMPLETED
    )
    stopped.cancel()

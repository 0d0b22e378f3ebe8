"""One deployment serving a portfolio of sites: `epcmon run --site DIR`.

Every site runs as it would alone (a `Service`: its collectors, recompute, alarms, reports
and API routes), over its own view of the one shared store (`storage.scoped.SiteStore`: its
meters stored as `<site>/<meter>`), with its parts on the portfolio's one supervisor, named
`<site>/<part>`. What the sites share runs once: the store's spool drain or DuckDB
maintenance, and the API listener, which serves the portfolio's routes and every site's
(`api.portfolio`).

    service = PortfolioService(portfolio, store, data_dir, role="all")
    port = await service.start()
    await service.run(stop)
    service.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI

from api.keys import KeyStore
from api.portfolio import create_portfolio_app, health_app
from api.routes import portfolio as portfolio_routes
from core.config import Portfolio
from core.errors import ConfigError
from core.health import Health
from epcmon.api_server import ApiPart
from epcmon.collecting import Shard
from epcmon.reload import read_portfolio
from epcmon.runtime import (
    Role,
    Service,
    _warm,
    reload_on_sighup,
    role_parts,
    stop_on_signals,
)
from epcmon.supervisor import Scoped, Supervisor
from storage.base import TimeSeriesStore
from storage.duckdb_store import DuckDBStore, StoreMaintenance
from storage.scoped import SiteStore
from storage.spool import SpoolDrain, SpoolingStore

log = logging.getLogger("epcmon.run")


SELECT_LIMIT = 1024
"""paho-mqtt watches each client's sockets with `select()`, which fails (paho then retries
forever, unseen) for a descriptor numbered 1024 or more: `FD_SETSIZE`."""
MQTT_DESCRIPTORS = 3
"""What one MQTT client opens when it connects: its socket and paho's socket pair."""


def check_descriptors(services: Iterable[Service], shard: Shard) -> None:
    """Refuse to start a collector process whose MQTT clients (one per site) would get
    descriptors `select()` cannot watch: measured from what is open now, before any client
    connects. Found by bench/portfolio.py: of 200 sites in one process, 63 never connected."""
    clients = sum(1 for s in services if s.collectors and s.collectors.subscriber is not None)
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: nothing to measure with
        return
    headroom = 64  # the API's and the store's sockets, files opened later
    if open_now + MQTT_DESCRIPTORS * clients + headroom < SELECT_LIMIT:
        return
    fits = max(1, (SELECT_LIMIT - headroom - open_now) // MQTT_DESCRIPTORS)
    need = -(-clients * shard.count // fits)  # processes for the same share each
    raise ConfigError(
        f"this process would open {clients} MQTT connections (one per site) with {open_now} "
        f"descriptors already open; paho-mqtt cannot watch a descriptor past {SELECT_LIMIT}: "
        f"split the sites over at least {need} collector processes (--shard i/{need})",
        key="--shard",
    )


class PortfolioService:
    """The sites' services over one store and one supervisor, and the one API (module doc)."""

    def __init__(
        self,
        portfolio: Portfolio,
        store: TimeSeriesStore,
        data_dir: Path,
        *,
        role: Role = "all",
        shard: Shard = Shard(),
        mqtt_url: str | None = None,
        keys: KeyStore | None = None,
        health: Health | None = None,
    ) -> None:
        self.portfolio = portfolio
        self.store = store
        self.health = health or Health()
        self.supervisor = Supervisor(self.health)
        self.keys = keys or KeyStore(portfolio.api.keys_path)
        self.role = role
        self.shard = shard
        self.sites: dict[str, Service] = {}
        runs = role_parts(role)
        for site in portfolio.sites:
            sid = site.site.id
            site_role = role
            if runs.collectors and not shard.owns_site(sid):  # another process collects it
                if not (runs.jobs or runs.web):
                    continue
                site_role = "api"
            self.sites[sid] = Service(
                site,
                SiteStore(store, sid),
                data_dir / "sites" / sid,
                role=site_role,
                mqtt_url=mqtt_url,
                keys=self.keys,
                parts=Scoped(self.supervisor, f"{sid}/"),
            )
        if runs.collectors:
            check_descriptors(self.sites.values(), shard)
        if runs.collectors and isinstance(store, SpoolingStore):
            self.supervisor.add("spool-drain", SpoolDrain(store).run)
        if isinstance(store, DuckDBStore) and (runs.jobs or runs.collectors):
            first = portfolio.sites[0]
            maintenance = StoreMaintenance(
                store, portfolio.storage.retention, first.site.timezone, self.health
            )
            self.supervisor.add("store-maintenance", maintenance.run)
        self.app: FastAPI | None = None
        self._api: ApiPart | None = None
        self._background: list[asyncio.Task[None]] = []
        api = portfolio.api
        if runs.web:
            site_apps = {sid: s.app for sid, s in self.sites.items() if s.app is not None}
            self.app = create_portfolio_app(
                portfolio, site_apps, keys=self.keys, store=store, health=self.health
            )
            self._api = ApiPart(
                self.app, api.host, api.port, source=portfolio.source, reuse_port=api.reuse_port
            )
        else:  # a collector or worker process: the deployment's /healthz on its metrics port
            if runs.collectors:
                key, base = "metrics_port", api.metrics_port
                port = base + shard.index - 1 if base else 0
            else:
                key, port = "worker_metrics_port", api.worker_metrics_port
            self._api = ApiPart(
                health_app(portfolio, store, self.health),
                api.host,
                min(port, 65535),
                source=portfolio.source,
                port_key=key,
            )

    def describe(self) -> list[str]:
        lines = [
            f"portfolio {self.portfolio.info.id}: {len(self.sites)} sites, "
            f"{self.portfolio.meters} meters"
        ]
        for sid, service in self.sites.items():
            lines += [f"  {sid}: {line}" for line in service.describe()]
        return lines

    async def start(self, sockets: list[socket.socket] | None = None) -> int | None:
        """Listen (on `sockets` when the caller bound them already); return the bound port."""
        if self._api is None:
            return None
        port = await self._api.start(sockets)
        self.supervisor.add("api" if self.app is not None else "healthz", self._api.run)
        if self.app is not None:
            self._background.append(asyncio.create_task(self._warm()))
        return port

    async def _warm(self) -> None:
        """Every site's caches (its savings, its last month's bills), then the portfolio's
        figures the page asks first: the first visitor does not wait for 200 sites."""
        await asyncio.gather(*(_warm(s.app) for s in self.sites.values() if s.app is not None))
        assert self.app is not None
        try:
            await asyncio.to_thread(portfolio_routes.warm, self.app.state)
        except Exception:  # a request computes it later; the service runs regardless
            log.exception("warming the portfolio's figures failed")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.supervisor.run(stop)
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)

    async def reload_file(self, path: str | Path) -> None:
        """SIGHUP: re-read the portfolio; each site's new file goes to its service. Sites added
        or removed take a restart (said in the log)."""
        portfolio = await asyncio.to_thread(read_portfolio, path)
        if portfolio is None:
            return
        runs = role_parts(self.role)
        new = {
            sid
            for sid in portfolio.sites_by_id
            if runs.jobs or runs.web or not runs.collectors or self.shard.owns_site(sid)
        }
        old = set(self.sites)
        if new != old:
            log.warning(
                "reload: sites added (%s) or removed (%s) take a restart of epcmon run",
                ", ".join(sorted(new - old)) or "none",
                ", ".join(sorted(old - new)) or "none",
            )
        for sid in sorted(new & old):
            await self.sites[sid].reload(portfolio.site(sid))
        self.portfolio = portfolio
        if self.app is not None:
            self.app.state.portfolio = portfolio

    def close(self) -> None:
        for service in self.sites.values():
            service.close()
        self.keys.close()


async def run_portfolio(portfolio: Portfolio, *, role: Role, shard: Shard, data_dir: Path) -> None:
    """`epcmon run --site DIR`: `run_service` for a portfolio directory."""
    import storage

    def say(text: str) -> None:
        print(text, flush=True)

    stop = asyncio.Event()
    stop_on_signals(stop)
    health = Health()
    store = storage.open_store(portfolio.storage, None, health=health, sites=portfolio.sites)
    where = (
        portfolio.storage.path
        if portfolio.storage.backend == "duckdb"
        else portfolio.storage.influx.url
    )
    say(f"store: {portfolio.storage.backend} {where} (meters stored as <site>/<meter>)")
    service: PortfolioService | None = None
    reloads: list[asyncio.Task[object]] = []
    try:
        service = PortfolioService(
            portfolio, store, data_dir, role=role, shard=shard, health=health
        )
        for line in service.describe():
            say(line)
        port = await service.start()
        if port is not None and service.app is not None:
            say(f"API on http://{portfolio.api.host}:{port} (sites under /sites/<site>/)")
        elif port is not None:
            say(f"/healthz on http://{portfolio.api.host}:{port}")
        reloads = reload_on_sighup(service, portfolio.source)
        say(
            f"running {len(service.supervisor.names)} parts of {len(service.sites)} sites; "
            "SIGHUP reloads the portfolio, Ctrl-C or SIGTERM stops"
        )
        await service.run(stop)
    finally:
        stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if reloads:
            await asyncio.gather(*reloads, return_exceptions=True)
        if service is not None:
            service.close()
        store.close()
        say("stopped")

"""Wiring the parts into running services: collectors, the API, and `epcmon run`.

Settings, stores and clients are built here, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from fastapi import FastAPI

import storage
from alarms.engine import AlarmEngine, LogDispatcher
from alarms.model import Dispatcher, Fanout
from alarms.notify import NotifyDispatcher
from alarms.store import AlarmStore, default_path
from api.app import create_app, warm_caches
from api.keys import KeyStore
from api.metrics import create_metrics_app
from api.status import OpsContext
from core.config import SiteConfig
from core.errors import ConfigError
from core.health import Health
from epcmon.api_server import ApiPart
from epcmon.collecting import Collectors, Shard
from epcmon.reload import Changes, changes, read_site, restart_line
from epcmon.supervisor import Parts, Supervisor
from processing.schedule import Recompute
from processing.statements import StatementStore
from reports.build import reports_dir
from reports.schedule import MonthlyReports
from storage.base import TimeSeriesStore
from storage.duckdb_store import DuckDBStore, StoreMaintenance
from storage.spool import SpoolDrain, SpoolingStore

log = logging.getLogger("epcmon.run")

Role = Literal["all", "collector", "api", "web", "worker"]
ROLES: tuple[Role, ...] = ("all", "collector", "api", "web", "worker")


@dataclass(frozen=True, slots=True)
class RoleParts:
    """What a process of one role runs."""

    collectors: bool
    """Modbus polling and MQTT subscription (several processes: `--shard i/n`)."""
    jobs: bool
    """The scheduled jobs: recompute, alarms and their delivery, monthly reports (and a
    DuckDB store's maintenance). Once per deployment: two would each raise the same alarms."""
    web: bool
    """The API. Stateless (it reads the store, the statements, the alarms, the keys): run
    it several times behind one address with `[api] reuse_port`."""


def role_parts(role: Role) -> RoleParts:
    """`all`: everything; `collector`; `api`: web and jobs (as before `web` and `worker`
    existed); `web`: the API alone; `worker`: the jobs alone."""
    return RoleParts(
        collectors=role in ("all", "collector"),
        jobs=role in ("all", "api", "worker"),
        web=role in ("all", "api", "web"),
    )


def open_store(site: SiteConfig, health: Health | None = None) -> TimeSeriesStore:
    """The site's store; a network store gets the durable spool in front of it (which reports
    the `spool` condition to `health` while it holds batches)."""
    return storage.open_store(site.storage, site, health=health)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


class Reloadable(Protocol):
    async def reload_file(self, path: str | Path) -> object: ...


def reload_on_sighup(service: Reloadable, path: str | Path) -> list[asyncio.Task[object]]:
    """SIGHUP re-reads the site file at `path` into `service`; the tasks it started, for
    the caller to wait for at the end."""
    tasks: list[asyncio.Task[object]] = []

    def hangup() -> None:
        log.info("SIGHUP: reloading %s", path)
        tasks.append(asyncio.create_task(service.reload_file(path)))

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangup)
    return tasks


async def _warm(app: FastAPI) -> None:
    try:
        computed = await asyncio.to_thread(warm_caches, app)
    except Exception:  # a request computes it later; the service runs regardless
        log.exception("warming the API's caches failed")
        return
    if computed:
        log.info("savings of %d contract boundaries computed and cached", computed)


class Service:
    """The parts of one epcmon process over one store, under one supervisor, as its role
    decides (`role_parts`): the collectors, the scheduled jobs (recompute, alarms, reports, a
    DuckDB store's daily retention and compaction) and the API. `epcmon run` and `epcmon demo` both run
    one; the demo adds its simulators as parts of their own. Alarm transitions go to
    `dispatcher` (default: one log line each and the site's `[notify]` channels, delivered by
    a part of their own).

        service = Service(site, store, data_dir, role="all")
        port = await service.start()     # the API listens (a port in use fails here)
        await service.run(stop)          # until stop; raises what no restart can fix
        service.close()
    """

    def __init__(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        data_dir: Path,
        *,
        role: Role = "all",
        shard: Shard = Shard(),
        mqtt_url: str | None = None,
        keys: KeyStore | None = None,
        health: Health | None = None,
        dispatcher: Dispatcher | None = None,
        parts: Parts | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.supervisor: Parts = parts or Supervisor(health or Health())
        self.health = self.supervisor.health
        self.collectors: Collectors | None = None
        self.statements: StatementStore | None = None
        self.alarms: AlarmStore | None = None
        self.alarm_engine: AlarmEngine | None = None
        self.notify: NotifyDispatcher | None = None
        self.dispatcher: Dispatcher = dispatcher or LogDispatcher()
        self.app: FastAPI | None = None
        self.metrics_app: FastAPI | None = None
        """`/metrics` alone, in a process without the API (a collector, a worker)."""
        self._api: ApiPart | None = None
        self._keys = keys
        self._background: list[asyncio.Task[None]] = []
        self._recompute: Recompute | None = None
        self._reloading = asyncio.Lock()
        self._shard = shard
        runs = role_parts(role)
        if runs.collectors:
            self.collectors = Collectors(
                site, store, data_dir, shard=shard, mqtt_url=mqtt_url, health=self.health
            )
            for name, part in self.collectors.parts():
                self.supervisor.add(name, part)
            if isinstance(store, SpoolingStore):  # replays as soon as the store is back
                self.supervisor.add("spool-drain", SpoolDrain(store).run)
        if isinstance(store, DuckDBStore) and (runs.jobs or runs.collectors):
            # InfluxDB keeps data by its own retention policies
            maintenance = StoreMaintenance(
                store, site.storage.retention, site.site.timezone, self.health
            )
            self.supervisor.add("store-maintenance", maintenance.run)
        if runs.jobs or runs.web:
            self.statements = StatementStore(site.storage.statements_file)
            self.alarms = AlarmStore(default_path(site, self.statements.path))
        if runs.jobs:
            self._add_jobs(dispatcher)
        if runs.web:
            self._add_web(data_dir)
        elif self.collectors is not None or runs.jobs:  # /metrics alone, on its own port
            self._add_metrics()

    def _add_jobs(self, dispatcher: Dispatcher | None) -> None:
        """The scheduled jobs, which run once per deployment: the recompute, the monthly
        reports, the alarms and their delivery."""
        site, store = self.site, self.store
        assert self.statements is not None
        assert self.alarms is not None
        recompute = self._recompute = Recompute(site, store, self.statements, self.health)
        every_s = site.schedule.recompute_every_s
        self.supervisor.add("recompute", lambda stop: recompute.run(stop, every_s))
        if site.reports.enabled:  # each closed month's report, once its statements settle
            reports = MonthlyReports(site, store, self.statements, reports_dir(site), self.health)
            self.supervisor.add("reports", reports.run)
        if dispatcher is None and site.notify.enabled and site.notify.channels:
            # delivery runs as a part of its own: a slow or dead receiver never holds
            # up the evaluation, which only queues
            self.notify = NotifyDispatcher(site, health=self.health)
            self.dispatcher = Fanout(LogDispatcher(), self.notify)
            self.supervisor.add("notify", self.notify.run)
        if site.alarms.enabled:  # the rules every [alarms] every_s, from the stored alarms
            spool = getattr(store, "spool", None)
            self.alarm_engine = AlarmEngine(
                site,
                store,
                self.alarms,
                dispatcher=self.dispatcher,
                health=self.health,
                availability=self.collectors.availability if self.collectors else None,
                statements=self.statements,
                spool_depth=(lambda: int(spool.depth)) if spool is not None else None,
            )
            self.supervisor.add("alarms", self.alarm_engine.run)

    def _add_web(self, data_dir: Path) -> None:
        """The API, on `[api] host` and `port` (shared with the other web processes when
        `[api] reuse_port`)."""
        site = self.site
        if self._keys is None:
            self._keys = KeyStore(site.api.keys_path)
        self.app = create_app(
            site,
            self.store,
            keys=self._keys,
            status=self.collectors.availability if self.collectors else None,
            data_dir=data_dir,
            statements=self.statements,
            health=self.health,
            alarms=self.alarms,
            alarm_dispatcher=self.dispatcher,
        )
        self._api = ApiPart(
            self.app,
            site.api.host,
            site.api.port,
            source=site.source,
            reuse_port=site.api.reuse_port,
        )

    def _add_metrics(self) -> None:
        """`/metrics` alone, in a process without the API: a collector's on `[api]
        metrics_port` + its shard's index - 1, a worker's on `[api] worker_metrics_port`."""
        site = self.site
        if self._keys is None:
            self._keys = KeyStore(site.api.keys_path)
        held = getattr(self.store, "spool", None)
        ops = OpsContext(
            status=self.collectors.availability if self.collectors else None,
            health=self.health,
            spool_depth=(lambda: int(held.depth)) if held is not None else None,
            spool_store=self.store if held is not None else None,
            alarms_active=self.alarms.active_counts if self.alarms is not None else None,
        )
        self.metrics_app = create_metrics_app(ops, self._keys, site)
        if self.collectors is not None:
            key, base = "metrics_port", site.api.metrics_port
            port = base + self._shard.index - 1 if base else 0
        else:
            key, port = "worker_metrics_port", site.api.worker_metrics_port
        self._api = ApiPart(
            self.metrics_app, site.api.host, min(port, 65535), source=site.source, port_key=key
        )

    def describe(self) -> list[str]:
        return self.collectors.describe() if self.collectors is not None else []

    async def reload(self, site: SiteConfig) -> Changes:
        """Apply a new, validated site file to the running parts (`epcmon.reload`); logs
        what was applied in one line and what needs a restart in another."""
        async with self._reloading:  # two SIGHUPs in a row apply one after the other
            found = changes(self.site, site)
            if self.collectors is not None:
                await self.collectors.reload(site, self.supervisor)
            if self._recompute is not None:
                self._recompute.site = site
            if self.alarm_engine is not None:
                self.alarm_engine.site = site  # new meters: planned at its next step
                if self.site.alarms != site.alarms and "alarms" in self.supervisor.names:
                    # new rules or delays: it starts over from the stored alarms
                    await self.supervisor.replace("alarms", self.alarm_engine.run)
            if self.app is not None:
                self.app.state.site = site
            self.site = site
            log.info("reload: %s", found.summary())
            if found.needs_restart:
                log.warning("%s", restart_line(found.needs_restart))
            return found

    async def reload_file(self, path: str | Path) -> Changes | None:
        """SIGHUP: read and validate `path`, then apply it; a bad file changes nothing."""
        site = await asyncio.to_thread(read_site, path)
        if site is None:
            return None
        try:
            return await self.reload(site)
        except ConfigError as exc:  # found while building the new parts, before applying
            log.error(
                "reload failed: %s; keeping the running configuration", " ".join(str(exc).split())
            )
            return None

    async def start(self, sockets: list[socket.socket] | None = None) -> int | None:
        """Listen (when this process serves the API), on `sockets` when the caller bound them
        already; return the bound port."""
        if self._api is None:
            return None
        port = await self._api.start(sockets)
        if self.app is None:  # a collector's or a worker's /metrics
            self.supervisor.add("metrics", self._api.run)
            return port
        self.supervisor.add("api", self._api.run)
        self._background.append(asyncio.create_task(_warm(self.app)))  # its end ends nothing
        return port

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.supervisor.run(stop)
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)

    def close(self) -> None:
        if self.statements is not None:
            self.statements.close()
        if self.alarms is not None:
            self.alarms.close()
        if self._keys is not None:
            self._keys.close()


async def run_service(site: SiteConfig, *, role: Role, shard: Shard, data_dir: Path) -> None:
    """`epcmon run` / `epcmon collect`: the collectors, the recompute and/or the API, each a
    supervised part, until a signal; raises only what no restart can fix."""

    def say(text: str) -> None:
        print(text, flush=True)

    # Separate collector and API processes need a store they can share (InfluxDB): a DuckDB
    # file is owned by one process, and a second one fails to open it with a clear error.
    stop = asyncio.Event()
    stop_on_signals(stop)
    health = Health()
    store = open_store(site, health)
    where = site.storage.path if site.storage.backend == "duckdb" else site.storage.influx.url
    say(f"store: {site.storage.backend} {where}")
    service: Service | None = None
    reloads: list[asyncio.Task[object]] = []
    try:
        service = Service(site, store, data_dir, role=role, shard=shard, health=health)
        for line in service.describe():
            say(line)
        port = await service.start()
        if port is not None and service.app is not None:
            say(f"API on http://{site.api.host}:{port}")
        elif port is not None:
            say(f"metrics on http://{site.api.host}:{port}/metrics")
        reloads = reload_on_sighup(service, site.source) if site.source else []
        say(
            f"running {', '.join(service.supervisor.names)}; "
            "SIGHUP reloads the site file, Ctrl-C or SIGTERM stops"
        )
        await service.run(stop)
    finally:
        stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if service is not None and reloads:
            await asyncio.gather(*reloads, return_exceptions=True)
        if service is not None:
            service.close()
        store.close()
        say("stopped")

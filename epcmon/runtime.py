"""Wiring the parts into running services: collectors, the API, and `epcmon run`.

Settings, stores and clients are built here, never at import time.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import FastAPI

import storage
from alarms.engine import AlarmEngine, LogDispatcher
from alarms.model import Dispatcher, Fanout
from alarms.notify import NotifyDispatcher
from alarms.store import AlarmStore, default_path
from api.app import create_app, warm_caches
from api.keys import KeyStore
from collectors.availability import Availability
from collectors.modbus.poller import GatewayPoller
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import Gateway, SiteConfig
from core.errors import ConfigError
from core.health import Health
from epcmon.api_server import ApiPart
from epcmon.supervisor import PartRun, Supervisor
from processing.schedule import Recompute
from processing.statements import StatementStore
from reports.build import reports_dir
from reports.schedule import MonthlyReports
from storage.base import TimeSeriesStore
from storage.deadletters import DeadLetters
from storage.spool import SpoolDrain, SpoolingStore

log = logging.getLogger("epcmon.run")

Role = Literal["all", "collector", "api"]


@dataclass(frozen=True)
class Shard:
    """`--shard i/n`: this process polls the gateways whose stable hash falls in slot i of n."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected i/n, e.g. 1/2") from None
        if not 1 <= i <= n:
            raise ValueError(f"--shard {text!r}: i must be between 1 and n")
        return cls(i, n)

    def owns(self, gateway: Gateway) -> bool:
        # crc32 of the id: a gateway stays in its shard when others are added or removed
        return zlib.crc32(gateway.id.encode()) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Collectors:
    """The collectors of a site (or of one shard of it), writing to one store: each gateway
    poller and the MQTT subscriber is a part of its own under the supervisor."""

    def __init__(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        data_dir: Path,
        *,
        shard: Shard = Shard(),
        mqtt_url: str | None = None,
        availability: Availability | None = None,
        health: Health | None = None,
    ) -> None:
        self.site = site
        self.shard = shard
        self.availability = availability or Availability()
        self.health = health or Health()
        self.writer = StoreWriter(store, self.availability, health=self.health)
        self.dead_letters = DeadLetters.for_mqtt(data_dir / "dead-letters.jsonl", site.mqtt)
        self.pollers = [
            GatewayPoller(
                gw,
                [m for m in site.meters if m.modbus is not None and m.modbus.gateway == gw.id],
                self.writer,
                self.availability,
            )
            for gw in site.gateways
            if shard.owns(gw)
        ]
        self.pollers = [p for p in self.pollers if p.plans]
        url = mqtt_url if mqtt_url is not None else site.mqtt.url
        has_mqtt = any(m.mqtt is not None for m in site.meters)
        self.subscriber: MqttSubscriber | None = None
        if has_mqtt and not url:
            log.warning("the site has MQTT meters but no [mqtt] url: they are not collected")
        elif has_mqtt:
            if shard.count > 1 and not site.mqtt.shared_group:
                raise ConfigError(
                    "several collector processes need a shared subscription, or each stores every message",
                    file=site.source,
                    entity="[mqtt]",
                    key="shared_group",
                )
            base_id = site.mqtt.client_id or f"epcmon-{site.site.id}"
            client_id = base_id if shard.count == 1 else f"{base_id}-{shard.index}"
            self.subscriber = MqttSubscriber(
                site,
                url,
                self.writer,
                self.dead_letters,
                self.availability,
                client_id=client_id,
                health=self.health,
            )

    def describe(self) -> list[str]:
        lines = [
            f"modbus gateway {p.gateway.id} {p.gateway.host}:{p.gateway.port}: {len(p.plans)} meters"
            for p in self.pollers
        ]
        if self.subscriber is not None:
            lines.append(
                f"mqtt {self.subscriber.host}:{self.subscriber.port} as {self.subscriber.client_id}"
            )
        return lines

    def parts(self) -> list[tuple[str, PartRun]]:
        """(name, run) of every long-running collector part."""
        out: list[tuple[str, PartRun]] = [(f"modbus {p.gateway.id}", p.run) for p in self.pollers]
        if self.subscriber is not None:
            out.append(("mqtt", self.subscriber.run))
        return out


def open_store(site: SiteConfig, health: Health | None = None) -> TimeSeriesStore:
    """The site's store; a network store gets the durable spool in front of it (which reports
    the `spool` condition to `health` while it holds batches)."""
    return storage.open_store(site.storage, site, health=health)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _warm(app: FastAPI) -> None:
    try:
        computed = await asyncio.to_thread(warm_caches, app)
    except Exception:  # a request computes it later; the service runs regardless
        log.exception("warming the API's caches failed")
        return
    if computed:
        log.info("savings of %d contract boundaries computed and cached", computed)


class Service:
    """The parts of one epcmon process over one store, under one supervisor: the collectors
    (role `all`/`collector`), the recompute, the alarms and the API (role `all`/`api`).
    `epcmon run` and `epcmon demo` both run one; the demo adds its simulators as parts of
    their own. Alarm transitions go to `dispatcher` (default: one log line each and the
    site's `[notify]` channels, delivered by a part of their own).

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
    ) -> None:
        self.site = site
        self.store = store
        self.health = health or Health()
        self.supervisor = Supervisor(self.health)
        self.collectors: Collectors | None = None
        self.statements: StatementStore | None = None
        self.alarms: AlarmStore | None = None
        self.alarm_engine: AlarmEngine | None = None
        self.notify: NotifyDispatcher | None = None
        self.dispatcher: Dispatcher = dispatcher or LogDispatcher()
        self.app: FastAPI | None = None
        self._api: ApiPart | None = None
        self._keys = keys
        self._background: list[asyncio.Task[None]] = []
        if role in ("all", "collector"):
            self.collectors = Collectors(
                site, store, data_dir, shard=shard, mqtt_url=mqtt_url, health=self.health
            )
            for name, part in self.collectors.parts():
                self.supervisor.add(name, part)
            if isinstance(store, SpoolingStore):  # replays as soon as the store is back
                self.supervisor.add("spool-drain", SpoolDrain(store).run)
        if role in ("all", "api"):
            self.statements = StatementStore(site.storage.statements_file)
            recompute = Recompute(site, store, self.statements, self.health)
            every_s = site.schedule.recompute_every_s
            self.supervisor.add("recompute", lambda stop: recompute.run(stop, every_s))
            if site.reports.enabled:  # each closed month's report, once its statements settle
                reports = MonthlyReports(
                    site, store, self.statements, reports_dir(site), self.health
                )
                self.supervisor.add("reports", reports.run)
            self.alarms = AlarmStore(default_path(site, self.statements.path))
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
            if self._keys is None:
                self._keys = KeyStore(site.api.keys_path)
            self.app = create_app(
                site,
                store,
                keys=self._keys,
                status=self.collectors.availability if self.collectors else None,
                data_dir=data_dir,
                statements=self.statements,
                health=self.health,
                alarms=self.alarms,
                alarm_dispatcher=self.dispatcher,
            )
            self._api = ApiPart(self.app, site.api.host, site.api.port, source=site.source)

    def describe(self) -> list[str]:
        return self.collectors.describe() if self.collectors is not None else []

    async def start(self, sockets: list[socket.socket] | None = None) -> int | None:
        """Listen (when this process serves the API), on `sockets` when the caller bound them
        already; return the bound port."""
        if self._api is None or self.app is None:
            return None
        port = await self._api.start(sockets)
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
    try:
        service = Service(site, store, data_dir, role=role, shard=shard, health=health)
        for line in service.describe():
            say(line)
        port = await service.start()
        if port is not None:
            say(f"API on http://{site.api.host}:{port}")
        say(f"running {', '.join(service.supervisor.names)}; Ctrl-C or SIGTERM stops")
        await service.run(stop)
    finally:
        stop.set()
        if service is not None:
            service.close()
        store.close()
        say("stopped")

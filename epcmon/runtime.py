"""Wiring the parts into running services: collectors, the API, and `epcmon run`.

Settings, stores and clients are built here, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI

import storage
from api.app import create_app, warm_caches
from api.keys import KeyStore
from collectors.availability import Availability
from storage.deadletters import DeadLetters
from collectors.modbus.poller import GatewayPoller
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import Gateway, SiteConfig
from core.errors import ConfigError
from core.health import Health
from epcmon.supervisor import PartRun, Supervisor
from processing.schedule import Recompute
from processing.statements import StatementStore
from storage.base import TimeSeriesStore

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
        self.writer = StoreWriter(store, self.availability)
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


class ApiServer(uvicorn.Server):
    """uvicorn, minus its own signal handling: the process's runtime owns Ctrl-C.

    It binds its listening sockets itself (`listen`), before anything is served: an address
    it cannot listen on (a port in use, a host that is not this machine's) is a one-line
    `ConfigError` naming `[api] port` or `host` (and the site file, when `source` is given),
    raised to the caller, instead of uvicorn's log line and a `SystemExit` inside a task."""

    def __init__(self, config: uvicorn.Config, *, source: str = "") -> None:
        super().__init__(config)
        self.source = source

    @staticmethod
    def listen(host: str, port: int, *, source: str = "") -> list[socket.socket]:
        """Sockets bound to every address of `host` at `port` (0: a free one), as asyncio's
        `create_server` would bind them."""
        try:
            addresses = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise ConfigError(
                f"cannot listen on {host!r}: {exc.strerror}",
                file=source,
                entity="[api]",
                key="host",
            ) from None
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _name, address in dict.fromkeys(addresses):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError as exc:
            for sock in sockets:
                sock.close()
            reason = {
                errno.EADDRINUSE: "the port is already in use (by another epcmon, or another server)",
                errno.EADDRNOTAVAIL: "not an address of this machine",
                errno.EACCES: "permission denied (ports below 1024 need privileges)",
            }.get(exc.errno or 0, exc.strerror or str(exc))
            raise ConfigError(
                f"cannot listen on {host}:{port}: {reason}",
                file=source,
                entity="[api]",
                key="host" if exc.errno == errno.EADDRNOTAVAIL else "port",
            ) from None
        return sockets

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def bound_port(self) -> int:
        if self.servers and self.servers[0].sockets:
            return int(self.servers[0].sockets[0].getsockname()[1])
        return int(self.config.port)

    async def start_serving(self, sockets: list[socket.socket] | None = None) -> asyncio.Task[None]:
        """Serve in a task (on `sockets` from `listen`, or on ones bound now); return once
        listening, or raise why it could not."""
        if sockets is None:
            sockets = self.listen(self.config.host, self.config.port, source=self.source)
        task = asyncio.create_task(self.serve(sockets=sockets))
        while not self.started and not task.done():
            await asyncio.sleep(0.02)  # uvicorn signals readiness only through `started`
        if task.done():
            for sock in sockets:
                sock.close()
            await task
            raise RuntimeError(f"the API could not listen on {self.config.host}:{self.config.port}")
        return task


class ApiPart:
    """The API as a supervised part: listens when started (so a port in use is found before
    the service says it runs), serves until `stop`, and listens anew after a failure."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._serving: tuple[ApiServer, asyncio.Task[None]] | None = None

    async def start(self) -> int:
        """Listen now; return the bound port (the configured one, or the one 0 got)."""
        server = ApiServer(
            uvicorn.Config(
                self.app, host=self.host, port=self.port, log_level="warning", lifespan="off"
            )
        )
        task = await server.start_serving()
        self._serving = (server, task)
        if self.port == 0:
            self.port = server.bound_port  # a restart listens where clients already look
        return server.bound_port

    async def run(self, stop: asyncio.Event) -> None:
        if self._serving is None:
            await self.start()
        assert self._serving is not None
        server, task = self._serving
        self._serving = None
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                server.should_exit = True
                await task
        task.result()  # a server that ended by itself: its error, or a quiet return


def open_store(site: SiteConfig) -> TimeSeriesStore:
    """The site's store; a network store gets the durable spool in front of it."""
    cfg = site.storage
    Path(cfg.path if cfg.backend == "duckdb" else cfg.spool.path).parent.mkdir(
        parents=True, exist_ok=True
    )
    return storage.open_store(cfg, site)


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
    (role `all`/`collector`), the recompute and the API (role `all`/`api`). `epcmon run` and
    `epcmon demo` both run one; the demo adds its simulators as parts of their own.

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
    ) -> None:
        self.site = site
        self.store = store
        self.health = health or Health()
        self.supervisor = Supervisor(self.health)
        self.collectors: Collectors | None = None
        self.statements: StatementStore | None = None
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
        if role in ("all", "api"):
            self.statements = StatementStore(site.storage.statements_file)
            recompute = Recompute(site, store, self.statements, self.health)
            every_s = site.schedule.recompute_every_s
            self.supervisor.add("recompute", lambda stop: recompute.run(stop, every_s))
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
            )
            self._api = ApiPart(self.app, site.api.host, site.api.port)

    def describe(self) -> list[str]:
        return self.collectors.describe() if self.collectors is not None else []

    async def start(self) -> int | None:
        """Listen (when this process serves the API); return the bound port."""
        if self._api is None or self.app is None:
            return None
        port = await self._api.start()
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
    store = open_store(site)
    where = site.storage.path if site.storage.backend == "duckdb" else site.storage.influx.url
    say(f"store: {site.storage.backend} {where}")
    service: Service | None = None
    try:
        service = Service(site, store, data_dir, role=role, shard=shard)
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

"""`epcmon demo`: the whole path in one process, on the embedded defaults.

A few meters of the virtual site (`simulators.site.SimulatedSite`, in real time) are served
(Modbus gateways on loopback, MQTT meters publishing to an embedded broker when no broker
URL is configured), collected, stored in DuckDB under the data directory, and served by the
API on 127.0.0.1. The simulator's truth (the contract's true savings) is printed beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker

from api.keys import KeyStore, Role
from collectors.availability import Availability
from collectors.profiles import load_profiles
from core.config import SiteConfig, parse_site
from core.errors import ConfigError
from core.net import free_port
from epcmon.api_server import ApiServer
from epcmon.demo_history import backfill, bills_summary, statements_beside_truth
from epcmon.runtime import Service, stop_on_signals
from processing.schedule import Recompute
from simulators.clock import RealClock
from simulators.modbus_server import SimulatedGateway
from simulators.mqtt_publisher import MqttMeterPublisher
from simulators.serve import site_units
from simulators.site import SimulatedSite
from storage.duckdb_store import DuckDBStore

log = logging.getLogger("epcmon.demo")


@dataclass(frozen=True)
class DemoOptions:
    site_file: Path
    data_dir: Path
    host: str | None = None
    port: int | None = None
    interval_s: int = 5
    duration_s: float | None = None
    mqtt_url: str | None = None


def demo_site(
    site: SiteConfig,
    opts: DemoOptions,
    mqtt_url: str,
    embedded_broker: bool,
    ports: dict[str, int],
) -> SiteConfig:
    """The demo's own site: every meter of the site, polled often, gateways where the
    simulated ones run now, the store under the data directory."""
    data: dict[str, Any] = site.model_dump(mode="json")
    for raw in data["meters"]:
        raw["poll_interval_s"] = opts.interval_s
    data["gateways"] = [
        {**g, "host": "127.0.0.1", "port": ports[g["id"]]}
        for g in data["gateways"]
        if g["id"] in ports
    ]
    data["storage"] = {**data["storage"], "path": str(opts.data_dir / "epcmon-demo.duckdb")}
    data["mqtt"] = {**data["mqtt"], "url": mqtt_url, "client_id": f"epcmon-demo-{site.site.id}"}
    if embedded_broker:
        data["mqtt"]["protocol"] = "3.1.1"  # amqtt speaks MQTT 3.1.1
    if opts.host is not None:
        data["api"]["host"] = opts.host
    if opts.port is not None:
        data["api"]["port"] = opts.port
    return parse_site(
        data, source=f"{site.source} (demo subset)", known_profiles=set(load_profiles())
    )


def _listen(site: SiteConfig, opts: DemoOptions) -> list[socket.socket]:
    host = opts.host if opts.host is not None else site.api.host
    port = opts.port if opts.port is not None else site.api.port
    return listen_for(host, port, opts, site.source)


def listen_for(host: str, port: int, opts: DemoOptions, source: str) -> list[socket.socket]:
    """The API's sockets, bound before anything starts: an address in use is one line naming
    the option (`--port`, `--host`) or the file's key it came from."""
    try:
        return ApiServer.listen(host, port, source=source)
    except ConfigError as exc:
        given = {"host": opts.host, "port": opts.port}.get(exc.key)
        if given is None:  # from the site file: the error names it
            raise
        raise ConfigError(exc.reason, key=f"--{exc.key}") from None


async def embedded_broker(
    opts: DemoOptions, started: contextlib.AsyncExitStack, say: Callable[[str], None]
) -> tuple[str, bool]:
    """(the broker's URL, whether it is ours): `--mqtt-url`, else an embedded amqtt broker on
    a free loopback port, stopped with `started`."""
    if opts.mqtt_url:
        return opts.mqtt_url, False
    port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    started.push_async_callback(broker.shutdown)
    url = f"mqtt://127.0.0.1:{port}"
    say(f"embedded MQTT broker (amqtt) on {url}")
    return url, True


async def run_demo(site: SiteConfig, opts: DemoOptions) -> None:
    def say(text: str) -> None:
        print(text, flush=True)

    stop = asyncio.Event()
    stop_on_signals(stop)
    sockets = _listen(site, opts)
    # Whatever fails on the way up, everything started so far is stopped, in reverse order.
    async with contextlib.AsyncExitStack() as started:
        for sock in sockets:  # uvicorn closes them too when it ran; a second close is a no-op
            started.callback(sock.close)
        started.callback(stop.set)
        availability = await _run_demo(site, opts, sockets, stop, started, say)
    counts = dict(sorted(availability.counters.items()))
    say(f"stopped cleanly; counters: {counts}")


async def _run_demo(
    site: SiteConfig,
    opts: DemoOptions,
    sockets: list[socket.socket],
    stop: asyncio.Event,
    started: contextlib.AsyncExitStack,
    say: Callable[[str], None],
) -> Availability:
    meters = list(site.meters)
    sim = SimulatedSite(site, clock=RealClock())
    now_ms = sim.clock()
    sim.values(meters[0].id, now_ms)  # integrates every counter from the epoch to now

    mqtt_url = opts.mqtt_url or site.mqtt.url
    embedded = not mqtt_url and any(m.mqtt for m in meters)
    if embedded:
        mqtt_url, _ = await embedded_broker(opts, started, say)

    ports: dict[str, int] = {}
    for gw in site.gateways:
        units = site_units(sim, [m for m in meters if m.modbus and m.modbus.gateway == gw.id])
        if units:
            gateway = SimulatedGateway(units, clock=sim.clock)
            ports[gw.id] = await gateway.start()
            started.push_async_callback(gateway.stop)
            say(f"simulated gateway {gw.id} on 127.0.0.1:{ports[gw.id]}: {len(units)} meters")

    dsite = demo_site(site, opts, mqtt_url, embedded, ports)
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(dsite.storage.path)
    started.callback(store.close)
    say(f"store: DuckDB {dsite.storage.path}")
    filled = await asyncio.to_thread(
        backfill, site, [m.id for m in dsite.meters], store, now_ms, progress=say
    )
    keys = KeyStore(opts.data_dir / "demo-api-keys.sqlite3")
    service = Service(dsite, store, opts.data_dir, keys=keys, mqtt_url=mqtt_url)
    started.callback(service.close)
    demo_key_id, demo_key = keys.create(Role.ADMIN, name="epcmon demo")
    started.callback(keys.revoke, demo_key_id)  # the printed key dies with the demo
    kinds = Counter(f"{m.protocol} {m.kind.value}" for m in dsite.meters)
    say(
        f"{len(dsite.meters)} meters of {dsite.site.name}, every {opts.interval_s}s: "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    )
    if any(m.mqtt for m in dsite.meters):
        publisher = MqttMeterPublisher(
            dsite,
            [(m, sim.source(m.id)) for m in dsite.meters if m.mqtt],
            mqtt_url,
            clock=sim.clock,
        )
        service.supervisor.add("simulated mqtt meters", publisher.run)
    if dsite.contracts and service.statements is not None:
        # the service's first recompute pass, before it listens: statements are there at once
        recompute = Recompute(dsite, store, service.statements, service.health)
        await asyncio.to_thread(recompute.run_once)
        for line in statements_beside_truth(dsite, service.statements, filled):
            say(line)
    for line in await asyncio.to_thread(bills_summary, dsite, store, now_ms):
        say(line)
    bound = await service.start(sockets)
    running = asyncio.create_task(service.run(stop))

    async def stop_service() -> None:
        stop.set()
        await running

    started.push_async_callback(stop_service)
    say(f"API on http://{dsite.api.host}:{bound}  (docs: /docs)")
    say(f"web page: http://{dsite.api.host}:{bound}/  (paste the key below)")
    say(f"demo API key (admin, this run only): {demo_key}")
    say(
        f'try: curl -H "Authorization: Bearer {demo_key}" http://{dsite.api.host}:{bound}/api/v1/meters'
    )
    say("running; Ctrl-C stops" if opts.duration_s is None else f"running for {opts.duration_s:g}s")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait(
        {stopped, running}, timeout=opts.duration_s, return_when=asyncio.FIRST_COMPLETED
    )
    stopped.cancel()
    assert service.collectors is not None
    return service.collectors.availability

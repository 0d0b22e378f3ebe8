"""Serving a whole site: its Modbus gateways and MQTT meters on loopback, for other tools.

`epcmon simulate serve` runs `serve_site()`; the demo and tests use `start_gateways()` and
`site_units()` for the meters they need.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from collectors.profiles import get_profile
from core.config import Meter, SiteConfig
from core.net import free_port
from simulators.faults import FaultPlan
from simulators.modbus_server import SimulatedGateway, SimulatedUnit
from simulators.mqtt_publisher import MqttMeterPublisher
from simulators.site import SimulatedSite


def site_units(sim: SimulatedSite, meters: Iterable[Meter]) -> list[SimulatedUnit]:
    """The Modbus units of `meters`, their values from the live site."""
    out = []
    for m in meters:
        if m.modbus is None:
            continue
        out.append(
            SimulatedUnit(
                m.modbus.unit,
                get_profile(m.modbus.profile),
                sim.source(m.id),
                m.modbus.pt_ratio,
                m.modbus.ct_ratio,
                meter_id=m.id,
            )
        )
    return out


async def start_gateways(
    sim: SimulatedSite,
    *,
    meters: Iterable[Meter] | None = None,
    faults: FaultPlan | None = None,
    any_port: bool = True,
    host: str = "127.0.0.1",
) -> dict[str, SimulatedGateway]:
    """One started gateway per site gateway that has any of `meters` (default: all), on a
    free port or (`any_port=False`) on the port the site file gives it."""
    chosen = list(meters) if meters is not None else list(sim.site.meters)
    started: dict[str, SimulatedGateway] = {}
    try:
        for gw in sim.site.gateways:
            units = site_units(sim, (m for m in chosen if m.modbus and m.modbus.gateway == gw.id))
            if not units:
                continue
            sg = SimulatedGateway(
                units,
                clock=sim.clock,
                host=host,
                port=0 if any_port else gw.port,
                faults=faults,
                name=gw.id,
            )
            await sg.start()
            started[gw.id] = sg
    except BaseException:
        for sg in started.values():
            await sg.stop()
        raise
    return started


@contextlib.asynccontextmanager
async def embedded_broker() -> AsyncIterator[str]:
    """An amqtt broker on a free loopback port (MQTT 3.1.1); yields its URL."""
    from amqtt.broker import Broker

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
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        await broker.shutdown()


@dataclass
class ServeOptions:
    any_port: bool = False
    mqtt_url: str | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    duration_s: float | None = None


async def serve_site(
    site: SiteConfig,
    sim: SimulatedSite,
    opts: ServeOptions,
    say: Callable[[str], None],
    stop: asyncio.Event,
) -> dict[str, int]:
    """Run the site's gateways and MQTT meters until `stop` (or the duration); returns the
    number of Modbus requests each gateway served."""
    gateways = await start_gateways(sim, faults=opts.faults, any_port=opts.any_port)
    counts: dict[str, int] = {}
    try:
        for gw_id, sg in gateways.items():
            units = ", ".join(str(u) for u in sorted(sg.units))
            say(f"gateway {gw_id} on {sg.host}:{sg.port} (units {units})")
        mqtt_meters = [m for m in site.meters if m.mqtt is not None]
        async with contextlib.AsyncExitStack() as stack:
            if mqtt_meters:
                url = opts.mqtt_url or site.mqtt.url
                if not url:
                    url = await stack.enter_async_context(embedded_broker())
                    say(f"embedded MQTT broker (amqtt, MQTT 3.1.1) on {url}")
                publisher = MqttMeterPublisher(
                    site.model_copy(
                        update={"mqtt": site.mqtt.model_copy(update={"protocol": "3.1.1"})}
                    )
                    if not (opts.mqtt_url or site.mqtt.url)
                    else site,
                    [(m, sim.source(m.id)) for m in mqtt_meters],
                    url,
                    client_id=f"epcmon-simulator-{site.site.id}",
                    clock=sim.clock,
                    faults=opts.faults,
                )
                for m in mqtt_meters:
                    assert m.mqtt is not None
                    say(f"MQTT meter {m.id} -> {site.topic_of(m)} every {m.poll_interval_s}s")
                task = asyncio.create_task(publisher.run(stop))
            else:
                task = None
            say(
                "serving; Ctrl-C stops"
                if opts.duration_s is None
                else f"serving for {opts.duration_s:g}s"
            )
            try:
                if opts.duration_s is None:
                    await stop.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), opts.duration_s)
            finally:
                stop.set()
                if task is not None:
                    await task
    finally:
        for gw_id, sg in gateways.items():
            counts[gw_id] = sg.requests
            await sg.stop()
    return counts

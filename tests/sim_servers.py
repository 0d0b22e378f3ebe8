"""Running simulated gateways for synchronous clients (pyModbusTCP, mbpoll) in tests: an
asyncio loop in a thread, the gateways on free loopback ports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from simulators.clock import FixedClock
from simulators.faults import FaultPlan
from simulators.modbus_server import SimulatedGateway
from simulators.serve import start_gateways
from simulators.site import SimulatedSite
from tests.sim_helpers import model, site

T = TypeVar("T")

# a summer workday, 10:00 in Lu'an: offices full, the chillers running
SUMMER_MORNING_MS = int(datetime(2025, 7, 15, 2, 0, tzinfo=UTC).timestamp() * 1000)


@dataclass
class Served:
    clock: FixedClock
    sim: SimulatedSite
    gateways: dict[str, SimulatedGateway]
    loop: asyncio.AbstractEventLoop

    def endpoint(self, meter_id: str) -> tuple[int, int]:
        """(port, unit) of a meter."""
        m = site().meter(meter_id)
        assert m.modbus is not None
        return self.gateways[m.modbus.gateway].port, m.modbus.unit

    def gateway_of(self, meter_id: str) -> SimulatedGateway:
        m = site().meter(meter_id)
        assert m.modbus is not None
        return self.gateways[m.modbus.gateway]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def serving(
    meter_ids: list[str], *, at_ms: int = SUMMER_MORNING_MS, faults: FaultPlan | None = None
) -> Iterator[Served]:
    clock = FixedClock(at_ms)
    sim = SimulatedSite(site(), clock=clock, model=model())
    sim.values(meter_ids[0])  # counters integrated from the epoch before the first request
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    served = Served(clock, sim, {}, loop)
    try:
        served.gateways = served.run(
            start_gateways(sim, meters=[site().meter(m) for m in meter_ids], faults=faults)
        )
        yield served
    finally:
        for gateway in served.gateways.values():
            served.run(gateway.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

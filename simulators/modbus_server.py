"""Simulated Modbus TCP gateways: one server, the meters behind it as unit ids.

Built on pymodbus' `SimDevice`/`SimData` with an access hook: every read recomputes the
registers it touches from the live model, so counters advance between polls. Registers are
read-only: a simulated meter refuses writes, as a metering-grade meter would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.modbus.decode import encode
from collectors.profiles import Profile
from core.quantities import QUANTITIES, conversion_factor

ValueSource = Callable[[int], dict[str, float]]
"""now_ms -> canonical values of every quantity the meter knows."""


@dataclass(frozen=True)
class SimulatedUnit:
    unit: int
    profile: Profile
    values: ValueSource
    pt: float = 1.0
    ct: float = 1.0


def _blocks(profile: Profile) -> list[SimData]:
    """Register blocks covering the profile's fields; small gaps are served as zeros,
    as real meters do for undocumented registers between documented ones."""
    spans = sorted((profile.spec(f).address, profile.spec(f).count) for f in profile.fields)
    merged: list[list[int]] = []
    for address, count in spans:
        if merged and address - (merged[-1][0] + merged[-1][1]) <= profile.gap_fill:
            merged[-1][1] = max(merged[-1][1], address + count - merged[-1][0])
        else:
            merged.append([address, count])
    return [
        SimData(address=a, count=c, values=0, datatype=DataType.REGISTERS, readonly=True)
        for a, c in merged
    ]


async def _on_access(
    unit: SimulatedUnit,
    clock: Callable[[], int],
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    if set_values is not None:
        return ExcCodes.ILLEGAL_FUNCTION
    values = unit.values(clock())
    end = address + count
    for f in unit.profile.fields:
        spec = unit.profile.spec(f)
        if spec.address + spec.count <= address or spec.address >= end or f.quantity not in values:
            continue
        value = values[f.quantity] / conversion_factor(f.unit, QUANTITIES[f.quantity].unit)
        regs = encode(value, spec, pt=unit.pt, ct=unit.ct)
        offset = spec.address - start_address
        registers[offset : offset + spec.count] = regs
    return None


class SimulatedGateway:
    """A Modbus TCP server on loopback; `port=0` takes a free port (see `.port`)."""

    def __init__(
        self,
        units: list[SimulatedUnit],
        *,
        clock: Callable[[], int],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        devices = [
            SimDevice(
                id=u.unit,
                simdata=_blocks(u.profile),
                action=partial(_on_access, u, clock),
            )
            for u in units
        ]
        self._server = ModbusTcpServer(devices, address=(host, port))
        self.host = host
        self.port = port

    async def start(self) -> int:
        await self._server.serve_forever(background=True)
        transport = self._server.transport
        if isinstance(transport, asyncio.Server) and transport.sockets:
            self.port = int(transport.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        await self._server.shutdown()  # type: ignore[no-untyped-call]

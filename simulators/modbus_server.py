"""Simulated Modbus TCP gateways: one server, the meters behind it as unit ids.

Built on pymodbus' `SimDevice`/`SimData` with an access hook: every read recomputes the
registers it touches from the live model, so counters advance between polls. Registers are
read-only: a simulated meter refuses writes, as a metering-grade meter would.

Like a real serial-to-Ethernet gateway, a unit id with no meter behind it is answered with
exception 11 (gateway target device failed to respond). Faults (`simulators.faults`) make a
unit stop answering, answer late, or answer exceptions 6 and 11; counters can reset or
wrap at 32 bits, instantaneous values spike; the gateway itself can close the connection on a
request or answer garbage (random bytes, wrong lengths, truncated or oversized frames, wrong
function codes, transaction or unit ids).

One pymodbus detail is corrected here: its request handler stamps a response with the
transaction id of the *latest* request on the connection, so an answer delayed past the
client's timeout would pass for the answer to the next request (wrong registers, silently
accepted). Our handler answers every request with its own transaction and unit id; the
client then discards a late answer, as it must.
"""

from __future__ import annotations

import asyncio
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.logging import Log
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.modbus.decode import RegisterSpec, RegisterType, encode
from collectors.profiles import Profile
from core.quantities import QUANTITIES, conversion_factor
from simulators.faults import COUNTERS, FaultInjector, FaultPlan, GatewayOutcome, ModbusOutcome

ValueSource = Callable[[int], dict[str, float]]
"""now_ms -> canonical values of every quantity the meter knows."""


@dataclass(frozen=True)
class SimulatedUnit:
    unit: int
    profile: Profile
    values: ValueSource
    pt: float = 1.0
    ct: float = 1.0
    meter_id: str = ""
    """The meter's id: the key of its faults (default: `unit-<unit>`)."""

    @property
    def fault_key(self) -> str:
        return self.meter_id or f"unit-{self.unit}"


SERVED_GAP = 64
"""Undocumented registers between documented ones read as zeros up to this many in a row
(real meters answer a whole block); beyond, exception 2 (illegal data address)."""


def _blocks(profile: Profile) -> list[SimData]:
    """Register blocks covering the profile's fields; gaps up to `SERVED_GAP` are served
    as zeros, as real meters do for undocumented registers between documented ones."""
    spans = sorted((profile.spec(f).address, profile.spec(f).count) for f in profile.fields)
    merged: list[list[int]] = []
    for address, count in spans:
        if merged and address - (merged[-1][0] + merged[-1][1]) <= max(
            SERVED_GAP, profile.gap_fill
        ):
            merged[-1][1] = max(merged[-1][1], address + count - merged[-1][0])
        else:
            merged.append([address, count])
    return [
        SimData(address=a, count=c, values=0, datatype=DataType.REGISTERS, readonly=True)
        for a, c in merged
    ]


Encoder = Callable[[float], list[int]]
_INT_RANGE = {
    RegisterType.INT16: ("h", -(2**15), 2**15 - 1),
    RegisterType.UINT16: ("H", 0, 2**16 - 1),
    RegisterType.INT32: ("i", -(2**31), 2**31 - 1),
    RegisterType.UINT32: ("I", 0, 2**32 - 1),
    RegisterType.INT64: ("q", -(2**63), 2**63 - 1),
    RegisterType.UINT64: ("Q", 0, 2**64 - 1),
}
_FLOATS = {RegisterType.FLOAT32: "f", RegisterType.FLOAT64: "d"}


def encoder(spec: RegisterSpec, pt: float, ct: float) -> Encoder:
    """`decode.encode` for one register spec, with its lookups done once: the same
    registers, a few times faster (every request encodes a dozen values or more)."""
    if spec.type is RegisterType.INT32_FLOAT32:
        return lambda value: encode(value, spec, pt=pt, ct=ct)
    divisor = spec.ratio(pt, ct)
    scale, offset = spec.scale, spec.offset
    words = spec.count
    unpack = struct.Struct(("<" if spec.order.bytes_swapped else ">") + "H" * words).unpack
    reverse = spec.order.low_word_first
    if spec.type in _FLOATS:
        pack = struct.Struct(">" + _FLOATS[spec.type]).pack

        def enc_float(value: float) -> list[int]:
            regs = list(unpack(pack((value / divisor - offset) / scale)))
            return regs[::-1] if reverse else regs

        return enc_float
    fmt, lo, hi = _INT_RANGE[spec.type]
    pack_int = struct.Struct(">" + fmt).pack

    def enc_int(value: float) -> list[int]:
        raw = max(lo, min(hi, round((value / divisor - offset) / scale)))
        regs = list(unpack(pack_int(raw)))
        return regs[::-1] if reverse else regs

    return enc_int


Field = tuple[str, int, int, RegisterSpec, float, Encoder]
_FIELDS: dict[tuple[str, float, float], tuple[Field, ...]] = {}


def _fields(unit: SimulatedUnit) -> tuple[Field, ...]:
    """(quantity, first register, end register, register spec, canonical-to-register factor,
    encoder) of each field of a unit's profile, built once per (profile, PT, CT)."""
    k = (unit.profile.name, unit.pt, unit.ct)
    got = _FIELDS.get(k)
    if got is None:
        fields = []
        for f in unit.profile.fields:
            spec = unit.profile.spec(f)
            factor = 1.0 / conversion_factor(f.unit, QUANTITIES[f.quantity].unit)
            enc = encoder(spec, unit.pt, unit.ct)
            fields.append((f.quantity, spec.address, spec.address + spec.count, spec, factor, enc))
        got = tuple(fields)
        _FIELDS[k] = got
    return got


class _RequestHandler(ServerRequestHandler):
    """pymodbus' handler, answering each request with its own transaction and unit id, and
    playing the gateway's faults: a dropped connection, garbage instead of the answer."""

    async def handle_request(self) -> None:
        pdu, addr = self.last_pdu, self.last_addr
        if not pdu:
            return
        gateway: SimulatedGateway = self.server.gateway
        outcome = gateway.gateway_outcome()
        if outcome is GatewayOutcome.DROP:
            self.close()
            return
        try:
            response = await pdu.datastore_update(self.server.context, pdu.dev_id)
        except NoSuchIdException:
            return  # an offline unit: no answer at all, the client times out
        except Exception as exc:  # pymodbus answers whatever else with exception 4
            Log.error(  # type: ignore[no-untyped-call]
                "Datastore unable to fulfill request: {}; {}", exc, traceback.format_exc()
            )
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        if outcome is GatewayOutcome.GARBAGE:
            frame = self.framer.buildFrame(response)
            self.send(gateway.garbage(frame), addr)
            return
        self.server_send(response, addr)  # type: ignore[no-untyped-call]


class _TcpServer(ModbusTcpServer):
    gateway: SimulatedGateway

    def callback_new_connection(self) -> _RequestHandler:
        return _RequestHandler(  # type: ignore[no-untyped-call]
            self, self.trace_packet, self.trace_pdu, self.trace_connect
        )


class SimulatedGateway:
    """A Modbus TCP server on loopback; `port=0` takes a free port (see `.port`).

    `faults` (default: none) can be replaced while running: `gateway.faults = plan`; the
    gateway's own faults are those of `name` (its gateway id) in the plan.
    `requests` counts the requests that reached a unit (answered or not)."""

    def __init__(
        self,
        units: list[SimulatedUnit],
        *,
        clock: Callable[[], int],
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
        start_ms: int | None = None,
        name: str = "gateway",
    ) -> None:
        self.name = name
        self._clock = clock
        self._injector = FaultInjector(
            faults or FaultPlan(), start_ms if start_ms is not None else clock()
        )
        self.requests = 0
        devices = [
            SimDevice(id=u.unit, simdata=_blocks(u.profile), action=partial(self._on_access, u))
            for u in units
        ]
        # unit 0 stands for every unit id without a meter: the gateway's RS-485 side waits
        # for an answer that never comes and says so
        devices.append(
            SimDevice(
                id=0,
                simdata=[
                    SimData(
                        address=0,
                        count=0xFFFF,
                        values=0,
                        datatype=DataType.REGISTERS,
                        readonly=True,
                    )
                ],
                action=self._no_meter,
            )
        )
        self.units = {u.unit: u for u in units}
        self._server = _TcpServer(devices, address=(host, port), ignore_missing_devices=True)
        self._server.gateway = self
        self.host = host
        self.port = port

    @property
    def faults(self) -> FaultPlan:
        return self._injector.plan

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self._injector = FaultInjector(plan, self._injector.start_ms)

    @property
    def injected(self) -> dict[str, int]:
        """Faults injected so far, by kind."""
        return dict(self._injector.injected)

    def gateway_outcome(self) -> GatewayOutcome:
        """What the gateway does with the request that just arrived."""
        return self._injector.gateway(self.name, self._clock())

    def garbage(self, frame: bytes) -> bytes:
        """Garbage in place of the answer `frame`."""
        return self._injector.garbage(self.name, frame)

    async def _no_meter(self, *_: Any) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def _on_access(
        self,
        unit: SimulatedUnit,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        self.requests += 1
        now = self._clock()
        injector = self._injector
        key = unit.fault_key
        outcome, delay = injector.modbus(key, now)
        if outcome is ModbusOutcome.OFFLINE:
            raise NoSuchIdException(f"unit {unit.unit} is offline (simulated fault)")
        if delay:
            await asyncio.sleep(delay)
        if outcome is ModbusOutcome.BUSY:
            return ExcCodes.DEVICE_BUSY
        if outcome is ModbusOutcome.GATEWAY_NO_RESPONSE:
            return ExcCodes.GATEWAY_NO_RESPONSE
        values = injector.values(key, now, unit.values(now), unit.values)
        end = address + count
        for quantity, first, stop, spec, to_register, enc in _fields(unit):
            if stop <= address or first >= end:
                continue
            if quantity not in values:
                continue
            value = values[quantity] * to_register
            if quantity in COUNTERS and injector.plan.meters:
                ratio = spec.ratio(unit.pt, unit.ct)
                value = injector.rollover_value(
                    key, quantity, now, value, spec, ratio, unit.values, 1.0 / to_register
                )
            offset = first - start_address
            registers[offset : offset + stop - first] = enc(value)
        return None

    async def start(self) -> int:
        await self._server.serve_forever(background=True)
        transport = self._server.transport
        if isinstance(transport, asyncio.Server) and transport.sockets:
            self.port = int(transport.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        await self._server.shutdown()  # type: ignore[no-untyped-call]

"""The Modbus poller: the only Modbus code that awaits.

One connection per gateway, its requests serialised; gateways run as separate tasks, so a
slow one never delays another. Polls are aligned to wall-clock multiples of the interval.
Only read function codes (3, 4) are ever sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from math import gcd

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collectors.availability import Availability
from collectors.modbus.decode import decode
from collectors.modbus.plan import ReadRequest, plan_reads
from collectors.profiles import get_profile
from core.config import Gateway, Meter
from core.errors import BadResponse, ConfigError, DeviceBusy, DeviceError, DeviceTimeout
from core.readings import Reading, ReadingBatch

log = logging.getLogger("epcmon.modbus")

Sink = Callable[[ReadingBatch], Awaitable[None]]
EXC_ILLEGAL_ADDRESS = 2
EXC_BUSY = 6


@dataclass(frozen=True)
class MeterPlan:
    meter_id: str
    unit: int
    interval_s: int
    reads: tuple[ReadRequest, ...]
    pt: float
    ct: float

    @classmethod
    def for_meter(cls, meter: Meter) -> MeterPlan:
        src = meter.modbus
        if src is None:
            raise ValueError(f"meter {meter.id} is not a Modbus meter")
        reads = tuple(plan_reads(get_profile(src.profile)))
        return cls(meter.id, src.unit, meter.poll_interval_s, reads, src.pt_ratio, src.ct_ratio)


class GatewayPoller:
    def __init__(
        self,
        gateway: Gateway,
        meters: list[Meter],
        sink: Sink,
        availability: Availability,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.plans = [MeterPlan.for_meter(m) for m in meters]
        self._sink = sink
        self._availability = availability
        self._clock = clock
        self._disabled: set[tuple[str, int]] = set()
        self.client = AsyncModbusTcpClient(
            gateway.host,
            port=gateway.port,
            timeout=gateway.timeout_s,
            retries=0,
            reconnect_delay=0.5,
            reconnect_delay_max=30,
        )

    async def _read(self, plan: MeterPlan, req: ReadRequest) -> list[int]:
        attempts = self.gateway.busy_retries + 1
        for attempt in range(attempts):
            try:
                if req.function_code == 3:
                    rr = await self.client.read_holding_registers(
                        req.address, count=req.count, device_id=plan.unit
                    )
                else:
                    rr = await self.client.read_input_registers(
                        req.address, count=req.count, device_id=plan.unit
                    )
            except ModbusException as exc:
                raise DeviceTimeout(f"no answer from unit {plan.unit}: {exc}") from None
            if not rr.isError():
                return list(rr.registers)
            code = getattr(rr, "exception_code", 0)
            if code == EXC_BUSY and attempt + 1 < attempts:
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            if code == EXC_BUSY:
                raise DeviceBusy(f"unit {plan.unit} busy after {attempts} attempts")
            if code == EXC_ILLEGAL_ADDRESS:
                raise ConfigError(
                    f"the device rejects registers {req.address}..{req.address + req.count - 1} "
                    f"(exception 2, illegal address): wrong profile or unit id?",
                    entity=f"meter {plan.meter_id!r}",
                    key="modbus.profile",
                )
            raise BadResponse(f"unit {plan.unit} answered exception {code}")
        raise AssertionError("unreachable")

    async def poll_meter(self, plan: MeterPlan, now_ms: int) -> list[Reading]:
        readings: list[Reading] = []
        for req in plan.reads:
            if (plan.meter_id, req.address) in self._disabled:
                continue
            try:
                registers = await self._read(plan, req)
            except ConfigError as exc:
                # a configuration error stays one: report it once, stop asking for it
                log.error("%s", exc)
                self._disabled.add((plan.meter_id, req.address))
                self._availability.count("modbus_config_errors")
                continue
            self._availability.count("modbus_requests")
            for field in req.fields:
                value = decode(req.slice_for(field, registers), field.spec, pt=plan.pt, ct=plan.ct)
                readings.append(
                    Reading(plan.meter_id, field.quantity, now_ms, value * field.factor)
                )
        return readings

    async def poll_cycle(self, tick_s: int | None = None) -> ReadingBatch:
        now = self._clock()
        now_ms = int(now * 1000)
        if not self.client.connected:
            await self.client.connect()
        out: list[Reading] = []
        for plan in self.plans:
            if tick_s is not None and tick_s % plan.interval_s:
                continue
            try:
                out += await self.poll_meter(plan, now_ms)
            except DeviceError as exc:
                self._availability.failed(plan.meter_id, str(exc))
                self._availability.count("modbus_errors")
                continue
            self._availability.ok(plan.meter_id, now_ms)
        batch = ReadingBatch.from_readings(out)
        if len(batch):
            await self._sink(batch)
        return batch

    async def run(self, stop: asyncio.Event) -> None:
        if not self.plans:
            return
        tick = 0
        for plan in self.plans:
            tick = gcd(tick, plan.interval_s)
        try:
            while not stop.is_set():
                now = self._clock()
                next_tick = (int(now) // tick + 1) * tick
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_tick - now))
                    break
                except TimeoutError:
                    pass
                await self.poll_cycle(next_tick)
        finally:
            self.client.close()

"""The Modbus poller: the only Modbus code that awaits.

One connection per gateway with its requests serialised (serial-to-Ethernet gateways answer
one request at a time); each gateway runs as its own task, so a slow gateway never delays
another. Polls are aligned to wall-clock multiples of the interval, and each meter's readings
carry the time its answer arrived.

Error policy (DESIGN.md):
- exception 6 (busy) is retried at once, up to `busy_retries`; nothing else is retried;
- a timeout skips that unit for the cycle; a unit that keeps timing out is probed less often
  (every 2, 4, ... cycles, at most every 5 minutes), and after the units that answer, so a
  dead meter costs the others almost nothing and never shifts their cadence;
- exception 2 (illegal address) is a configuration error: a merged read is split into one
  read per field to find the address the device rejects, which is then named and dropped.
Only read function codes (3, 4) are ever sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from math import gcd

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collectors.availability import Availability
from collectors.modbus.decode import decode, decode_string
from collectors.modbus.plan import ReadRequest, plan_reads, split_request
from collectors.profiles import Profile, get_profile
from core.config import Gateway, Meter
from core.errors import (
    BadResponse,
    ConfigError,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    StoreError,
)
from core.quantities import QUANTITIES
from core.readings import Reading, ReadingBatch

log = logging.getLogger("epcmon.modbus")

Sink = Callable[[ReadingBatch], Awaitable[None]]
EXC_ILLEGAL_ADDRESS = 2
EXC_BUSY = 6
MAX_PROBE_SPACING_S = 300


class IllegalAddress(BadResponse):
    """Exception 2 for one read (internal: becomes a ConfigError once pinned down)."""


@dataclass
class MeterPlan:
    meter_id: str
    unit: int
    interval_s: int
    profile: Profile
    reads: list[ReadRequest]
    static_reads: list[ReadRequest]
    pt: float
    ct: float
    misses: int = 0
    skip_cycles: int = 0
    identified: bool = False
    identity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_meter(cls, meter: Meter) -> MeterPlan:
        src = meter.modbus
        if src is None:
            raise ValueError(f"meter {meter.id} is not a Modbus meter")
        profile = get_profile(src.profile)
        wanted = frozenset(src.quantities) if src.quantities else None
        reads = plan_reads(profile, quantities=wanted)
        static_reads = plan_reads(profile, quantities=wanted, static=True)
        return cls(
            meter.id,
            src.unit,
            meter.poll_interval_s,
            profile,
            reads,
            static_reads,
            src.pt_ratio,
            src.ct_ratio,
        )


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
        self._connect_failures = 0
        self._next_connect = 0.0
        self._implausible: set[tuple[str, str]] = set()
        self.client = AsyncModbusTcpClient(
            gateway.host,
            port=gateway.port,
            timeout=gateway.timeout_s,
            retries=0,
            reconnect_delay=0,  # we reconnect ourselves, with our own backoff, between cycles
        )

    async def _request(
        self, plan: MeterPlan, function_code: int, address: int, count: int
    ) -> list[int]:
        attempts = self.gateway.busy_retries + 1
        for attempt in range(attempts):
            try:
                if function_code == 3:
                    rr = await self.client.read_holding_registers(
                        address, count=count, device_id=plan.unit
                    )
                else:
                    rr = await self.client.read_input_registers(
                        address, count=count, device_id=plan.unit
                    )
            except ModbusException as exc:
                raise DeviceTimeout(
                    f"no answer from unit {plan.unit} in {self.gateway.timeout_s:g}s ({exc})"
                ) from None
            finally:
                self._availability.count("modbus_requests")
            if not rr.isError():
                registers = list(rr.registers)
                if len(registers) < count:
                    raise BadResponse(
                        f"unit {plan.unit} returned {len(registers)} of {count} registers"
                    )
                return registers[:count]
            code = getattr(rr, "exception_code", 0)
            if code == EXC_BUSY and attempt + 1 < attempts:
                self._availability.count("modbus_busy_retries")
                await asyncio.sleep(0.02 * (attempt + 1))
                continue
            if code == EXC_BUSY:
                raise DeviceBusy(
                    f"unit {plan.unit} still busy (exception 6) after {attempts} attempts"
                )
            if code == EXC_ILLEGAL_ADDRESS:
                raise IllegalAddress(f"exception 2 at {address}..{address + count - 1}")
            raise BadResponse(f"unit {plan.unit} answered exception {code}")
        raise AssertionError("unreachable")

    async def _read_all(
        self, plan: MeterPlan, reads: list[ReadRequest]
    ) -> list[tuple[ReadRequest, list[int]]]:
        out: list[tuple[ReadRequest, list[int]]] = []
        pending = list(reads)
        while pending:
            req = pending.pop(0)
            try:
                registers = await self._request(plan, req.function_code, req.address, req.count)
            except IllegalAddress:
                if len(req.fields) > 1:
                    # find the field the device rejects: one read per field, from now on
                    parts = split_request(req)
                    index = reads.index(req)
                    reads[index : index + 1] = parts
                    pending[:0] = parts
                    continue
                f = req.fields[0]
                reads.remove(req)
                self._availability.count("modbus_config_errors")
                log.error(
                    "%s",
                    ConfigError(
                        f"the device rejects {f.quantity} at address {f.spec.address} "
                        f"(FC{req.function_code}, exception 2: illegal address): wrong profile or "
                        f"unit id? No longer polled.",
                        entity=f"meter {plan.meter_id!r}",
                        key="modbus.profile",
                    ),
                )
                continue
            out.append((req, registers))
        return out

    async def _identify(self, plan: MeterPlan) -> None:
        plan.identified = True
        for ident in plan.profile.identification:
            spec = plan.profile.string_spec(ident)
            try:
                registers = await self._request(
                    plan, plan.profile.function_code, spec.address, spec.count
                )
            except DeviceError as exc:
                log.info("meter %s: no %s (%s)", plan.meter_id, ident.name, exc)
                continue
            plan.identity[ident.name] = decode_string(registers, spec)
        if plan.identity:
            log.info("meter %s identifies as %s", plan.meter_id, plan.identity)

    async def poll_meter(self, plan: MeterPlan) -> list[Reading]:
        answers = await self._read_all(plan, plan.reads)
        if not plan.identified:  # configuration registers: once per connection
            answers += await self._read_all(plan, plan.static_reads)
        now_ms = int(self._clock() * 1000)
        readings = []
        for req, registers in answers:
            for f in req.fields:
                value = (
                    decode(req.slice_for(f, registers), f.spec, pt=plan.pt, ct=plan.ct) * f.factor
                )
                spec = QUANTITIES[f.quantity]
                if not math.isfinite(value) or not spec.accepts(value):
                    # an implausible value is a fault of the meter, not a reading
                    self._availability.count("modbus_out_of_range")
                    if (plan.meter_id, f.quantity) not in self._implausible:
                        self._implausible.add((plan.meter_id, f.quantity))
                        log.warning(
                            "meter %s: %s = %g %s is outside [%g, %g]; not stored",
                            plan.meter_id,
                            f.quantity,
                            value,
                            spec.unit.value,
                            spec.low,
                            spec.high,
                        )
                    continue
                readings.append(Reading(plan.meter_id, f.quantity, now_ms, value))
        if not plan.identified:
            await self._identify(plan)
        return readings

    async def _ensure_connected(self) -> bool:
        if self.client.connected:
            return True
        now = self._clock()
        if now < self._next_connect:
            return False
        if await self.client.connect():
            for plan in self.plans:
                plan.identified = False  # a new connection may be a replaced meter: ask again
            if self._connect_failures:
                log.info("gateway %s reachable again", self.gateway.id)
            self._connect_failures = 0
            return True
        self._connect_failures += 1
        delay = min(60.0, 2.0 ** min(self._connect_failures, 6))
        self._next_connect = now + delay
        if self._connect_failures == 1:
            log.warning(
                "gateway %s (%s:%d) unreachable; retrying with backoff",
                self.gateway.id,
                self.gateway.host,
                self.gateway.port,
            )
        return False

    async def poll_cycle(self, tick_s: int | None = None) -> ReadingBatch:
        """Poll every meter due at `tick_s` (all of them when None) once."""
        due = [p for p in self.plans if tick_s is None or tick_s % p.interval_s == 0]
        if not due:
            return ReadingBatch.empty()
        if not await self._ensure_connected():
            for plan in due:
                self._availability.failed(plan.meter_id, f"gateway {self.gateway.id} unreachable")
            return ReadingBatch.empty()
        out: list[Reading] = []
        # Units that missed their last poll go last: on a serialised connection a probe that
        # times out would otherwise delay every answer after it, and with it the timestamps
        # (and the cadence) of the live meters behind it. Stable: the order is otherwise kept.
        for plan in sorted(due, key=lambda p: p.misses > 0):
            if plan.skip_cycles > 0:
                plan.skip_cycles -= 1
                continue
            try:
                out += await self.poll_meter(plan)
            except DeviceError as exc:
                plan.misses += 1
                # probe a silent unit every 2, 4, 8 ... of its cycles, at most every 5 minutes
                plan.skip_cycles = min(
                    2 ** min(plan.misses - 1, 8) - 1, MAX_PROBE_SPACING_S // plan.interval_s
                )
                self._availability.failed(plan.meter_id, str(exc))
                self._availability.count("modbus_errors")
                if not self.client.connected:
                    break  # the gateway dropped us: the rest waits for the next cycle
                continue
            plan.misses = 0
            self._availability.ok(plan.meter_id, int(self._clock() * 1000))
        batch = ReadingBatch.from_readings(out)
        if len(batch):
            try:
                await self._sink(batch)
            except StoreError as exc:
                # Neither the store nor its spool took the batch (the spool is full): loud, and
                # counted. The counters are the truth, so the energy is in the next readings.
                self._availability.count("readings_not_stored", len(batch))
                log.error(
                    "gateway %s: %d readings NOT STORED: %s", self.gateway.id, len(batch), exc
                )
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
                overrun = self._clock() - next_tick
                if overrun > tick:
                    self._availability.count("modbus_cycle_overruns")
                    log.warning(
                        "gateway %s: cycle took %.1fs, longer than its %ds interval",
                        self.gateway.id,
                        overrun,
                        tick,
                    )
        finally:
            self.client.close()

"""The Modbus poller: the only Modbus code that awaits, one task per gateway.

Each gateway runs as its own task on its own connection (`collectors.modbus.connection`), so
a slow gateway never delays another. Polls are aligned to wall-clock multiples of the
interval, and each meter's readings carry the time its answer arrived.

Per cycle (the connection's error policy is in `collectors.modbus.connection`):
- a timeout skips that unit for the cycle; a unit that keeps timing out is probed less often
  (every 2, 4, ... cycles, at most every 5 minutes), and after the units that answer, so a
  dead meter costs the others almost nothing and never shifts their cadence;
- exception 2 (illegal address) is a configuration error: a merged read is split into one
  read per field to find the address the device rejects, which is then named and dropped;
- a meter is reported down for its gateway's faults (dropped connections, garbage) only when
  they cost it `GATEWAY_FAULTS_BEFORE_DOWN` polls in a row;
- an implausible value is the meter's fault, logged once per meter and quantity, not stored;
- cycles that overrun their interval (a gateway whose answers cost timeouts) are one line when
  they start and one when cycles fit again, counted as `modbus_cycle_overruns`;
- readings the store refuses are counted (`readings_not_stored`), logged once until stored
  again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from math import gcd

from collectors.availability import Availability
from collectors.modbus.connection import (
    DROP_RETRIES,
    GatewayConnection,
    GatewayUnreachable,
    IllegalAddress,
)
from collectors.modbus.decode import decode, decode_string
from collectors.modbus.episodes import GatewayEpisodes
from collectors.modbus.guard import BadFrame, ConnectionDropped, quiet_pymodbus
from collectors.modbus.meter_plan import MeterPlan
from collectors.modbus.plan import ReadRequest, split_request
from core.config import Gateway, Meter
from core.errors import BadReadings, ConfigError, DeviceError, StoreError
from core.quantities import QUANTITIES
from core.readings import Reading, ReadingBatch

log = logging.getLogger("epcmon.modbus")

__all__ = ["DROP_RETRIES", "GatewayPoller", "MeterPlan", "Sink", "quiet_pymodbus"]

Sink = Callable[[ReadingBatch], Awaitable[None]]
MAX_PROBE_SPACING_S = 300
GATEWAY_FAULTS_BEFORE_DOWN = 3
"""Polls in a row a meter may lose to its gateway's faults (drops, garbage) before it is
reported down: a gateway that drops one connection in ten must not flap every meter."""


class GatewayPoller(GatewayConnection):
    """Polls the meters of one gateway, cycle after cycle, into `sink` (module doc)."""

    def __init__(
        self,
        gateway: Gateway,
        meters: list[Meter],
        sink: Sink,
        availability: Availability,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.meters = tuple(meters)
        """As configured: a reload replaces the poller when they change."""
        self.plans = [MeterPlan.for_meter(m) for m in meters]
        super().__init__(gateway, availability, clock)
        self._sink = sink
        self._not_stored_logged = False
        self._implausible: set[tuple[str, str]] = set()
        self._overruns = GatewayEpisodes()

    def _connected_anew(self) -> None:
        # after an outage a meter may have been replaced: read its identity again
        for plan in self.plans:
            plan.identified = False

    async def _read_all(
        self, plan: MeterPlan, reads: list[ReadRequest]
    ) -> list[tuple[ReadRequest, list[int]]]:
        out: list[tuple[ReadRequest, list[int]]] = []
        pending = list(reads)
        while pending:
            req = pending.pop(0)
            try:
                registers = await self._request(
                    plan.unit, req.function_code, req.address, req.count
                )
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
                    plan.unit, plan.profile.function_code, spec.address, spec.count
                )
            except (ConnectionDropped, BadFrame, GatewayUnreachable):
                plan.identified = False  # the gateway's fault, not the meter's: ask next cycle
                return
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

    async def poll_cycle(self, tick_s: int | None = None) -> ReadingBatch:
        """Poll every meter due at `tick_s` (all of them when None) once."""
        due = [p for p in self.plans if tick_s is None or tick_s % p.interval_s == 0]
        if not due:
            return ReadingBatch.empty()
        out: list[Reading] = []
        asked = False
        went_down: dict[str, list[str]] = {}
        came_back: list[str] = []

        def failed(plan: MeterPlan, reason: str) -> None:
            if self._availability.failed(plan.meter_id, reason, quiet=True):
                went_down.setdefault(reason, []).append(plan.meter_id)

        # Units that missed their last poll go last: on a serialised connection a probe that
        # times out would otherwise delay every answer after it, and with it the timestamps
        # (and the cadence) of the live meters behind it. Stable: the order is otherwise kept.
        for plan in sorted(due, key=lambda p: p.misses > 0):
            if plan.skip_cycles > 0:
                plan.skip_cycles -= 1
                continue
            try:
                out += await self.poll_meter(plan)
            except GatewayUnreachable as exc:
                failed(plan, str(exc))
                continue
            except (ConnectionDropped, BadFrame) as exc:
                # the gateway's fault: the unit is not probed less often for it, and is
                # reported down only when it keeps losing its polls to it
                asked = True
                plan.gateway_misses += 1
                self._availability.count("modbus_errors")
                if plan.gateway_misses >= GATEWAY_FAULTS_BEFORE_DOWN:
                    failed(plan, f"gateway {self.gateway.id}: {exc}")
                continue
            except DeviceError as exc:
                asked = True
                plan.misses += 1
                # probe a silent unit every 2, 4, 8 ... of its cycles, at most every 5 minutes
                plan.skip_cycles = min(
                    2 ** min(plan.misses - 1, 8) - 1, MAX_PROBE_SPACING_S // plan.interval_s
                )
                failed(plan, str(exc))
                self._availability.count("modbus_errors")
                continue
            asked = True
            plan.misses = 0
            plan.gateway_misses = 0
            if (
                self._availability.ok(plan.meter_id, int(self._clock() * 1000), quiet=True)
                is not None
            ):
                came_back.append(plan.meter_id)
        self._availability.log_changes(went_down, came_back, f"gateway {self.gateway.id}")
        if asked and (episode := self.episodes.cycle_done()) is not None:
            log.info("%s behaves again: %s", self._where, episode.summary())
        batch = ReadingBatch.from_readings(out)
        if len(batch):
            try:
                await self._sink(batch)
            except StoreError:
                # Neither the store nor its spool took the batch (disk full, spool full): the
                # writer reported the outage to Health, which logs it once; each cycle's loss is
                # counted. The counters are the truth, so the energy is in the next readings.
                self._availability.count("readings_not_stored", len(batch))
                if not self._not_stored_logged:
                    self._not_stored_logged = True
                    log.error(
                        "gateway %s: readings are NOT STORED while the store refuses writes "
                        "(counted in readings_not_stored)",
                        self.gateway.id,
                    )
            except BadReadings as exc:  # only a clock far off could cause it: counted, logged
                self._availability.count("readings_not_stored", len(batch))
                log.error("gateway %s: readings refused: %s", self.gateway.id, exc)
            else:
                if self._not_stored_logged:
                    self._not_stored_logged = False
                    log.warning("gateway %s: readings are stored again", self.gateway.id)
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
                took = self._clock() - next_tick
                if took > tick:
                    self._availability.count("modbus_cycle_overruns")
                    if self._overruns.fault("overrun"):
                        log.warning(
                            "gateway %s: a cycle took %.1fs, longer than its %ds interval "
                            "(one line until cycles fit again; counted: modbus_cycle_overruns)",
                            self.gateway.id,
                            took,
                            tick,
                        )
                if (ended := self._overruns.cycle_done()) is not None:
                    log.info(
                        "gateway %s: cycles fit their %ds interval again (%d overruns in %d "
                        "cycles)",
                        self.gateway.id,
                        tick,
                        ended.faults["overrun"],
                        ended.cycles,
                    )
        finally:
            self.client.close()

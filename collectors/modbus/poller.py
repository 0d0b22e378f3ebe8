"""The Modbus poller: the only Modbus code that awaits.

One connection per gateway with its requests serialised (serial-to-Ethernet gateways answer
one request at a time); each gateway runs as its own task, so a slow gateway never delays
another. Polls are aligned to wall-clock multiples of the interval, and each meter's readings
carry the time its answer arrived.

Error policy (DESIGN.md):
- exception 6 (busy) is retried at once, up to `busy_retries`; a request the gateway dropped,
  once (below); nothing else;
- a timeout skips that unit for the cycle; a unit that keeps timing out is probed less often
  (every 2, 4, ... cycles, at most every 5 minutes), and after the units that answer, so a
  dead meter costs the others almost nothing and never shifts their cadence;
- exception 2 (illegal address) is a configuration error: a merged read is split into one
  read per field to find the address the device rejects, which is then named and dropped.
Only read function codes (3, 4) are ever sent.

Gateways that misbehave (issue 12):
- a connection the gateway closes is re-opened at once, within the cycle, and the request
  that was in flight is sent again on the new connection, up to `DROP_RETRIES` times (reads are
  idempotent); the
  remaining meters are polled as usual. The connect backoff (2, 4, ... 60 s) applies only when
  connecting itself fails (refused, timed out);
- an answer that is not the answer to the request in flight (`frame.check_answer`: random
  bytes, a wrong length, function code, unit or transaction id, a truncated or oversized
  frame) fails that request as `BadFrame` at once, and the connection, no longer framed, is
  closed and re-opened for the next request. Nothing of it reaches asyncio's transport (which
  would log a traceback) or pymodbus' decoder;
- the log gets one line when a gateway starts misbehaving and one when it has behaved for a
  few cycles again (`GatewayEpisodes`), never one per frame; the counts are `Availability`
  counters (`/metrics`): `modbus_drops`, `modbus_bad_frames`, `modbus_reconnects`,
  `modbus_retries_after_drop`, `modbus_connect_failures`. A meter is reported down for a
  gateway's faults only when they cost it `GATEWAY_FAULTS_BEFORE_DOWN` polls in a row;
- pymodbus' own logger, which reports each of these with hex dumps of the last frames, is
  quieted by a filter (`quiet_pymodbus`): only its CRITICAL lines pass, and everything when an
  operator sets the `pymodbus` logger to DEBUG;
- cycles that overrun their interval (a gateway whose answers cost timeouts) are one line when
  they start and one when cycles fit again, counted as `modbus_cycle_overruns`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from math import gcd

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.transaction import TransactionManager

from collectors.availability import Availability
from collectors.modbus.decode import decode, decode_string
from collectors.modbus.episodes import GatewayEpisodes
from collectors.modbus.frame import Answer, Expected, Garbage, Incomplete, Stale, check_answer
from collectors.modbus.plan import ReadRequest, plan_reads, split_request
from collectors.profiles import Profile, get_profile
from core.config import Gateway, Meter
from core.errors import (
    BadReadings,
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
DROP_RETRIES = 2
"""Times a request whose connection dropped is sent again on a new one (reads are idempotent):
with a gateway that drops a fraction p of its requests a request is lost with p^3 (15 %: 0.3 %),
and a gateway that drops everything costs 3 reconnects a request, no timeouts."""
GATEWAY_FAULTS_BEFORE_DOWN = 3
"""Polls in a row a meter may lose to its gateway's faults (drops, garbage) before it is
reported down: a gateway that drops one connection in ten must not flap every meter."""
PYMODBUS_LOGGER = "pymodbus.logging"


class IllegalAddress(BadResponse):
    """Exception 2 for one read (internal: becomes a ConfigError once pinned down)."""


class ConnectionDropped(DeviceError):
    """The gateway closed the connection while a request was in flight."""


class BadFrame(BadResponse):
    """What came back is not an answer to the request (garbage); the connection is closed."""


class GatewayUnreachable(DeviceError):
    """Connecting to the gateway failed (refused, timed out), now or within the backoff."""


class _PymodbusFilter(logging.Filter):
    """Drops pymodbus' log lines below CRITICAL unless its logger is set to DEBUG: it logs
    every timeout, bad frame and failed connect, each with hex dumps of the last frames,
    and the poller reports all of them itself, once per state change."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.CRITICAL or logging.getLogger(
            PYMODBUS_LOGGER
        ).isEnabledFor(logging.DEBUG)


def quiet_pymodbus() -> None:
    """Install the filter on pymodbus' logger (once; idempotent)."""
    logger = logging.getLogger(PYMODBUS_LOGGER)
    if not any(isinstance(f, _PymodbusFilter) for f in logger.filters):
        logger.addFilter(_PymodbusFilter())


class _GuardedTransactions(TransactionManager):
    """pymodbus' transaction manager with a receive path that takes only the answer to the
    request in flight (`frame.check_answer`), fails that request at once when the gateway
    closes the connection or sends garbage, and lets no exception out into asyncio's
    transport (which would log a traceback and close the connection behind our back)."""

    expected: Expected | None
    sent: deque[int]
    partial: int
    """Bytes of an incomplete answer received for the request in flight."""

    def setup(self) -> None:
        # pymodbus silently empties a receive buffer past 264 bytes before anyone looks at
        # it; `check_answer` refuses an impossible length from the header on, and buffers
        # at most one frame of up to 260 bytes, so the bound is not needed
        self.max_buffer_size = 1 << 20
        self.expected = None
        self.sent = deque(maxlen=32)
        self.partial = 0

    def pdu_send(self, pdu: ModbusPDU, addr: tuple[str, int] | None = None) -> None:
        self.expected = Expected(pdu.transaction_id, pdu.dev_id, pdu.function_code, pdu.count)
        self.partial = 0
        super().pdu_send(pdu, addr)
        self.sent.append(pdu.transaction_id)

    def callback_connected(self) -> None:
        super().callback_connected()
        self.setup()

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        why = f" ({exc})" if exc else ""
        self._fail(ConnectionDropped(f"the gateway closed the connection{why}"))

    def callback_data(self, data: bytes, addr: tuple[str, int] | None = None) -> int:
        try:
            return self._receive(data, addr)
        except Exception as exc:  # nothing may reach the transport (class doc)
            self._garbage(f"an answer pymodbus cannot decode ({type(exc).__name__}: {exc})")
            return len(data)

    def _receive(self, data: bytes, addr: tuple[str, int] | None) -> int:
        used = 0
        while used < len(data):
            expected = self.expected
            if expected is None or self.response_future.done():
                return len(data)  # nobody is waiting: a late answer, or unsolicited bytes
            verdict = check_answer(data[used:], expected, self.sent)
            if isinstance(verdict, Incomplete):
                self.partial = len(data) - used
                return used
            if isinstance(verdict, Stale):  # the late answer to an abandoned request
                used += verdict.used
                continue
            if isinstance(verdict, Garbage):
                self._garbage(verdict.reason)
                return len(data)
            assert isinstance(verdict, Answer)
            frame = data[used : used + verdict.used]
            super().callback_data(frame, addr)
            if not self.response_future.done():
                self._garbage("an answer pymodbus cannot decode")
            return len(data)  # whatever follows the answer answers nothing
        return used

    def _garbage(self, reason: str) -> None:
        self._fail(BadFrame(reason))
        self.close()  # the byte stream is no longer framed: start a new one

    def _fail(self, exc: Exception) -> None:
        future = self.response_future
        if self.expected is not None and not future.done():
            future.set_exception(exc)
        self.expected = None


class _GuardedClient(AsyncModbusTcpClient):
    """pymodbus' TCP client on `_GuardedTransactions`."""

    guard: _GuardedTransactions

    def __init__(self, host: str, *, port: int, timeout: float) -> None:
        super().__init__(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
        self.guard = _GuardedTransactions(
            self.comm_params, FramerSocket(DecodePDU(False)), 0, False, None, None, None
        )
        self.guard.setup()
        self.ctx = self.guard


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
    gateway_misses: int = 0
    """Polls lost in a row to the gateway's faults (dropped connections, garbage)."""
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
        self._not_stored_logged = False
        self._connect_failures = 0
        self._next_connect = 0.0
        self._connected_once = False
        self._implausible: set[tuple[str, str]] = set()
        self.episodes = GatewayEpisodes()
        """Whether the gateway misbehaves now, and what it did since it started."""
        self._overruns = GatewayEpisodes()
        quiet_pymodbus()
        self.client = _GuardedClient(gateway.host, port=gateway.port, timeout=gateway.timeout_s)

    @property
    def _where(self) -> str:
        return f"gateway {self.gateway.id} ({self.gateway.host}:{self.gateway.port})"

    def _gateway_fault(self, kind: str, detail: str) -> None:
        """Count one drop or garbage answer; log it when it starts an episode."""
        self._availability.count("modbus_drops" if kind == "drop" else "modbus_bad_frames")
        if self.episodes.fault(kind):
            log.warning(
                "%s misbehaves: %s; polls go on, reconnecting as needed (counted in /metrics: "
                "modbus_drops, modbus_bad_frames)",
                self._where,
                detail,
            )

    async def _exchange(
        self, plan: MeterPlan, function_code: int, address: int, count: int
    ) -> ModbusPDU:
        """One request on the open connection; every failure a `DeviceError`."""
        self._availability.count("modbus_requests")
        try:
            if function_code == 3:
                rr = await self.client.read_holding_registers(
                    address, count=count, device_id=plan.unit
                )
            else:
                rr = await self.client.read_input_registers(
                    address, count=count, device_id=plan.unit
                )
        except DeviceError:
            raise  # ConnectionDropped, BadFrame: from the guard
        except ConnectionException:
            raise ConnectionDropped("the connection was gone before the request") from None
        except ModbusException as exc:
            if self.client.guard.partial:
                got = self.client.guard.partial
                self.client.close()  # the rest may still come, into the next answer
                raise BadFrame(
                    f"a truncated answer ({got} bytes, then nothing for "
                    f"{self.gateway.timeout_s:g}s)"
                ) from None
            raise DeviceTimeout(
                f"no answer from unit {plan.unit} in {self.gateway.timeout_s:g}s ({exc})"
            ) from None
        if not rr.isError() and (
            rr.function_code != function_code or len(rr.registers) != count
        ):  # the guard checks this on the wire; a decoder surprise must not pass either
            self.client.close()
            raise BadFrame(
                f"function {rr.function_code} with {len(rr.registers)} registers in the "
                f"answer to function {function_code} for {count}"
            )
        return rr

    async def _request(
        self, plan: MeterPlan, function_code: int, address: int, count: int
    ) -> list[int]:
        attempts = self.gateway.busy_retries + 1
        busy = 0
        drops = 0
        while True:
            if not await self._ensure_connected():
                raise GatewayUnreachable(f"gateway {self.gateway.id} unreachable")
            try:
                rr = await self._exchange(plan, function_code, address, count)
            except ConnectionDropped as exc:
                self._gateway_fault(
                    "drop", f"it closed the connection during a request to unit {plan.unit}"
                )
                drops += 1
                if drops > DROP_RETRIES:
                    raise ConnectionDropped(f"{exc}, {drops} times for this request") from None
                self._availability.count("modbus_retries_after_drop")
                continue
            except BadFrame as exc:
                self._gateway_fault(
                    "garbage", f"it answered a request to unit {plan.unit} with garbage: {exc}"
                )
                raise
            if not rr.isError():
                return list(rr.registers)
            code = getattr(rr, "exception_code", 0)
            if code == EXC_BUSY and busy + 1 < attempts:
                busy += 1
                self._availability.count("modbus_busy_retries")
                await asyncio.sleep(0.02 * busy)
                continue
            if code == EXC_BUSY:
                raise DeviceBusy(
                    f"unit {plan.unit} still busy (exception 6) after {attempts} attempts"
                )
            if code == EXC_ILLEGAL_ADDRESS:
                raise IllegalAddress(f"exception 2 at {address}..{address + count - 1}")
            raise BadResponse(f"unit {plan.unit} answered exception {code}")

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

    async def _ensure_connected(self) -> bool:
        """Connected, or connected now; False while connecting fails (then with backoff).
        A connection the gateway closed is re-opened at once: only failed connects back off."""
        if self.client.connected:
            return True
        now = self._clock()
        if now < self._next_connect:
            return False
        if await self.client.connect():
            if self._connected_once:
                self._availability.count("modbus_reconnects")
            if self._connect_failures or not self._connected_once:
                # after an outage a meter may have been replaced: read its identity again
                # (not after a dropped connection re-opened at once)
                for plan in self.plans:
                    plan.identified = False
            if self._connect_failures:
                log.info("gateway %s reachable again", self.gateway.id)
            self._connected_once = True
            self._connect_failures = 0
            return True
        self._availability.count("modbus_connect_failures")
        self._connect_failures += 1
        delay = min(60.0, 2.0 ** min(self._connect_failures, 6))
        self._next_connect = now + delay
        if self._connect_failures == 1:
            log.warning("%s unreachable; retrying with backoff", self._where)
        return False

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

"""One gateway's connection: connecting with backoff, one request at a time, and what a
request may be retried for.

One connection per gateway with its requests serialised (serial-to-Ethernet gateways answer
one request at a time). Error policy (DESIGN.md):
- exception 6 (busy) is retried at once, up to `busy_retries`; a request the gateway dropped,
  `DROP_RETRIES` times (below); nothing else. Exception 2 (illegal address) is raised as
  `IllegalAddress` for the poller to pin down;
- a connection the gateway closes is re-opened at once, within the cycle, and the request
  that was in flight is sent again on the new connection (reads are idempotent). The connect
  backoff (2, 4, ... 60 s) applies only when connecting itself fails (refused, timed out);
- an answer that is not the answer to the request in flight fails that request as
  `BadFrame` at once (`collectors.modbus.guard`), and the connection is re-opened for the
  next request;
- the log gets one line when a gateway starts misbehaving and one when it has behaved for a
  few cycles again (`GatewayEpisodes`), never one per frame; the counts are `Availability`
  counters (`/metrics`): `modbus_drops`, `modbus_bad_frames`, `modbus_reconnects`,
  `modbus_retries_after_drop`, `modbus_connect_failures`.
Only read function codes (3, 4) are ever sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from collectors.availability import Availability
from collectors.modbus.episodes import GatewayEpisodes
from collectors.modbus.guard import BadFrame, ConnectionDropped, GuardedClient, quiet_pymodbus
from core.config import Gateway
from core.errors import BadResponse, DeviceBusy, DeviceError, DeviceTimeout

log = logging.getLogger("epcmon.modbus")

EXC_ILLEGAL_ADDRESS = 2
EXC_BUSY = 6
DROP_RETRIES = 2
"""Times a request whose connection dropped is sent again on a new one (reads are idempotent):
with a gateway that drops a fraction p of its requests a request is lost with p^3 (15 %: 0.3 %),
and a gateway that drops everything costs 3 reconnects a request, no timeouts."""


class IllegalAddress(BadResponse):
    """Exception 2 for one read (internal: becomes a ConfigError once pinned down)."""


class GatewayUnreachable(DeviceError):
    """Connecting to the gateway failed (refused, timed out), now or within the backoff."""


class GatewayConnection:
    """The connection to one gateway and the requests sent on it (module doc)."""

    def __init__(
        self, gateway: Gateway, availability: Availability, clock: Callable[[], float]
    ) -> None:
        self.gateway = gateway
        self._availability = availability
        self._clock = clock
        self._connect_failures = 0
        self._next_connect = 0.0
        self._connected_once = False
        self.episodes = GatewayEpisodes()
        """Whether the gateway misbehaves now, and what it did since it started."""
        quiet_pymodbus()
        self.client = GuardedClient(gateway.host, port=gateway.port, timeout=gateway.timeout_s)

    def _connected_anew(self) -> None:
        """Called on the first connect and after connecting had failed, not after a dropped
        connection re-opened at once."""

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

    async def _exchange(self, unit: int, function_code: int, address: int, count: int) -> ModbusPDU:
        """One request on the open connection; every failure a `DeviceError`."""
        self._availability.count("modbus_requests")
        try:
            if function_code == 3:
                rr = await self.client.read_holding_registers(address, count=count, device_id=unit)
            else:
                rr = await self.client.read_input_registers(address, count=count, device_id=unit)
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
                f"no answer from unit {unit} in {self.gateway.timeout_s:g}s ({exc})"
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

    async def _request(self, unit: int, function_code: int, address: int, count: int) -> list[int]:
        attempts = self.gateway.busy_retries + 1
        busy = 0
        drops = 0
        while True:
            if not await self._ensure_connected():
                raise GatewayUnreachable(f"gateway {self.gateway.id} unreachable")
            try:
                rr = await self._exchange(unit, function_code, address, count)
            except ConnectionDropped as exc:
                self._gateway_fault(
                    "drop", f"it closed the connection during a request to unit {unit}"
                )
                drops += 1
                if drops > DROP_RETRIES:
                    raise ConnectionDropped(f"{exc}, {drops} times for this request") from None
                self._availability.count("modbus_retries_after_drop")
                continue
            except BadFrame as exc:
                self._gateway_fault(
                    "garbage", f"it answered a request to unit {unit} with garbage: {exc}"
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
                raise DeviceBusy(f"unit {unit} still busy (exception 6) after {attempts} attempts")
            if code == EXC_ILLEGAL_ADDRESS:
                raise IllegalAddress(f"exception 2 at {address}..{address + count - 1}")
            raise BadResponse(f"unit {unit} answered exception {code}")

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
                self._connected_anew()
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

"""pymodbus' TCP client with a guarded receive path, and pymodbus' own log quieted.

An answer that is not the answer to the request in flight (`frame.check_answer`: random
bytes, a wrong length, function code, unit or transaction id, a truncated or oversized
frame) fails that request as `BadFrame` at once, and the connection, no longer framed, is
closed (the poller re-opens it for the next request). A connection the gateway closes fails
the request in flight as `ConnectionDropped`. Nothing of it reaches asyncio's transport
(which would log a traceback) or pymodbus' decoder.

pymodbus' own logger, which reports each of these with hex dumps of the last frames, is
quieted by a filter (`quiet_pymodbus`): only its CRITICAL lines pass, and everything when an
operator sets the `pymodbus` logger to DEBUG.
"""

from __future__ import annotations

import logging
from collections import deque

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.transaction import TransactionManager

from collectors.modbus.frame import Answer, Expected, Garbage, Incomplete, Stale, check_answer
from core.errors import BadResponse, DeviceError

PYMODBUS_LOGGER = "pymodbus.logging"


class ConnectionDropped(DeviceError):
    """The gateway closed the connection while a request was in flight."""


class BadFrame(BadResponse):
    """What came back is not an answer to the request (garbage); the connection is closed."""


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


class GuardedClient(AsyncModbusTcpClient):
    """pymodbus' TCP client on `_GuardedTransactions`."""

    guard: _GuardedTransactions

    def __init__(self, host: str, *, port: int, timeout: float) -> None:
        super().__init__(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
        self.guard = _GuardedTransactions(
            self.comm_params, FramerSocket(DecodePDU(False)), 0, False, None, None, None
        )
        self.guard.setup()
        self.ctx = self.guard

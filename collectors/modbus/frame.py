"""Is this the answer to the request in flight? Pure checks of Modbus TCP answer frames.

The poller asks one question at a time on a connection, so it knows exactly what the next
answer must look like: its transaction id, unit id, function code and register count.
`check_answer(buffer, expected, sent)` looks at the bytes received so far and says one of:

- `Incomplete`: a plausible start; wait for more bytes;
- `Answer(used)`: the first `used` bytes are the awaited answer (registers or an exception),
  well formed: pymodbus may decode them;
- `Stale(used)`: a well-formed answer to an *earlier* request on this connection (one that
  timed out and was abandoned): skip it and keep waiting;
- `Garbage(reason)`: anything else. The byte stream can no longer be trusted to be framed
  (random bytes, an impossible length, a wrong protocol, function code, unit or transaction
  id, a byte count that disagrees with what was asked): the request fails as a bad answer and
  the connection is closed.

Frame layout (Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3):

    [tid:2][protocol id:2 = 0][length:2 = bytes that follow][unit:1][function:1][data]
    answer to FC 3/4: [function][byte count = 2 x registers][registers]
    exception:        [function | 0x80][exception code]

The longest ADU is 260 bytes, so the length field is at most 254.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

MAX_LENGTH_FIELD = 254
"""Unit id + a PDU of at most 253 bytes."""


@dataclass(frozen=True, slots=True)
class Expected:
    """The request in flight: what its answer must carry."""

    transaction_id: int
    unit: int
    function_code: int
    count: int
    """Registers asked for."""


@dataclass(frozen=True, slots=True)
class Incomplete:
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    used: int


@dataclass(frozen=True, slots=True)
class Stale:
    used: int
    transaction_id: int


@dataclass(frozen=True, slots=True)
class Garbage:
    reason: str


Verdict = Incomplete | Answer | Stale | Garbage


def check_answer(buffer: bytes, expected: Expected, sent: Container[int] = ()) -> Verdict:
    """What the bytes received so far are, for the request `expected`; `sent` holds the
    transaction ids of earlier requests on this connection (their late answers are stale)."""
    if len(buffer) >= 4 and (protocol := int.from_bytes(buffer[2:4], "big")) != 0:
        return Garbage(f"protocol id {protocol}, not 0 (not a Modbus TCP frame)")
    if len(buffer) < 6:
        return Incomplete()
    length = int.from_bytes(buffer[4:6], "big")
    if length > MAX_LENGTH_FIELD:
        return Garbage(f"frame length {length + 6} bytes, over the 260 Modbus allows")
    if length < 3:
        return Garbage(f"frame length {length + 6} bytes, too short for any answer")
    used = 6 + length
    if len(buffer) < used:
        return Incomplete()
    tid = int.from_bytes(buffer[0:2], "big")
    unit, function, pdu = buffer[6], buffer[7], buffer[8:used]
    if tid != expected.transaction_id:
        if tid in sent:
            return Stale(used, tid)
        return Garbage(
            f"transaction id {tid} in the answer to transaction {expected.transaction_id}"
        )
    if expected.unit and unit != expected.unit:
        return Garbage(f"unit {unit} answered a request to unit {expected.unit}")
    if function == expected.function_code | 0x80:
        if len(pdu) != 1:
            return Garbage(f"an exception answer of {len(pdu) + 1} bytes (2 expected)")
        return Answer(used)
    if function != expected.function_code:
        return Garbage(
            f"function code {function} in the answer to function {expected.function_code}"
        )
    want = 2 * expected.count
    if not pdu or pdu[0] != want or len(pdu) != 1 + want:
        got = pdu[0] if pdu else 0
        return Garbage(
            f"byte count {got} and {max(0, len(pdu) - 1)} data bytes "
            f"for {expected.count} registers ({want} bytes)"
        )
    return Answer(used)

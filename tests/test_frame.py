"""`check_answer` as a table: bytes received, the request in flight, the verdict.

Frames from the Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3 layout:
[tid:2][protocol 0:2][length:2][unit:1][function:1][byte count:1][registers].
"""

from __future__ import annotations

import pytest

from collectors.modbus.frame import (
    Answer,
    Expected,
    Garbage,
    Incomplete,
    Stale,
    Verdict,
    check_answer,
)

ASK = Expected(transaction_id=7, unit=5, function_code=3, count=2)
"""FC 3, unit 5, two registers: the answer is 6 + 1 + 1 + 1 + 4 = 13 bytes."""
OK = bytes.fromhex("0007 0000 0007 05 03 04 1234 5678")
EXCEPTION = bytes.fromhex("0007 0000 0003 05 83 02")

TABLE: list[tuple[str, bytes, Verdict]] = [
    ("the answer", OK, Answer(13)),
    ("the answer, then bytes of nothing", OK + b"\x00\x01", Answer(13)),
    ("an exception answer (FC | 0x80)", EXCEPTION, Answer(9)),
    ("nothing yet", b"", Incomplete()),
    ("part of the header", OK[:5], Incomplete()),
    ("the header, part of the body", OK[:10], Incomplete()),
    ("a late answer to transaction 6", bytes.fromhex("0006 0000 0007 05 03 04 0000 0000"), Stale(13, 6)),
    ("protocol id not 0", bytes.fromhex("0007 0001 0007 05 03 04 1234 5678"),
     Garbage("protocol id 1, not 0 (not a Modbus TCP frame)")),
    ("random bytes: the protocol id tells at once", bytes.fromhex("9a1f c3"), Incomplete()),
    ("random bytes: the protocol id tells at once", bytes.fromhex("9a1f c3 07"),
     Garbage("protocol id 49927, not 0 (not a Modbus TCP frame)")),
    ("a length Modbus does not allow", bytes.fromhex("0007 0000 0400 05 03"),
     Garbage("frame length 1030 bytes, over the 260 Modbus allows")),
    ("a length too short for any answer", bytes.fromhex("0007 0000 0002 05 03"),
     Garbage("frame length 8 bytes, too short for any answer")),
    ("a transaction id never sent", bytes.fromhex("0107 0000 0007 05 03 04 1234 5678"),
     Garbage("transaction id 263 in the answer to transaction 7")),
    ("another unit", bytes.fromhex("0007 0000 0007 06 03 04 1234 5678"),
     Garbage("unit 6 answered a request to unit 5")),
    ("the other read function", bytes.fromhex("0007 0000 0007 05 04 04 1234 5678"),
     Garbage("function code 4 in the answer to function 3")),
    ("a write echo", bytes.fromhex("0007 0000 0006 05 10 0000 0001"),
     Garbage("function code 16 in the answer to function 3")),
    ("an exception answer of the wrong size", bytes.fromhex("0007 0000 0004 05 83 02 00"),
     Garbage("an exception answer of 3 bytes (2 expected)")),
    ("one register fewer, consistently framed", bytes.fromhex("0007 0000 0005 05 03 02 1234"),
     Garbage("byte count 2 and 2 data bytes for 2 registers (4 bytes)")),
    ("one register more, consistently framed", bytes.fromhex("0007 0000 0009 05 03 06 1234 5678 9abc"),
     Garbage("byte count 6 and 6 data bytes for 2 registers (4 bytes)")),
    ("the byte count promises more than the frame holds", bytes.fromhex("0007 0000 0005 05 03 04 1234"),
     Garbage("byte count 4 and 2 data bytes for 2 registers (4 bytes)")),
]  # fmt: skip


@pytest.mark.parametrize(("why", "data", "verdict"), TABLE, ids=[row[0] for row in TABLE])
def test_check_answer(why: str, data: bytes, verdict: Verdict) -> None:
    assert check_answer(data, ASK, sent=(5, 6)) == verdict, why


def test_unit_0_in_the_request_accepts_any_unit_in_the_answer() -> None:
    # some gateways answer requests to unit 0 (or 255) from the unit behind them
    ask = Expected(transaction_id=7, unit=0, function_code=3, count=2)
    assert check_answer(OK, ask) == Answer(13)


def test_input_registers_are_checked_the_same_way() -> None:
    ask = Expected(transaction_id=1, unit=1, function_code=4, count=1)
    assert check_answer(bytes.fromhex("0001 0000 0005 01 04 02 00ff"), ask) == Answer(11)
    assert check_answer(bytes.fromhex("0001 0000 0005 01 03 02 00ff"), ask) == Garbage(
        "function code 3 in the answer to function 4"
    )


def test_the_input_is_not_touched() -> None:
    data = bytearray(OK)
    check_answer(bytes(data), ASK)
    assert data == OK

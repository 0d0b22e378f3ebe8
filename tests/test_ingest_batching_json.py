"""The bounded JSON reader's orjson fast path (`collectors.mqtt.bounded`): whatever a payload
holds, `load_json` returns exactly what the strict decoder returns (same values, same types,
the sign of zero), or refuses what it refuses; and the usual meter payload takes the fast
path."""

from __future__ import annotations

import math
from typing import Any

import pytest

from collectors.mqtt import bounded
from collectors.mqtt.bounded import load_json
from collectors.mqtt.payload import default_limits
from core.errors import PayloadError
from tests.hostile_payloads import corpus

NOW_MS = 1_767_225_600_000

TRICKY = [
    b'{"ts": 1767225600000, "p": 1003, "e": 10.123}',
    b'{"a": -0.0}', b'{"a": -0}', b'{"a": -0.5}', b'{"a": 0.0}', b"-0.0",
    b'{"a": 1, "a": 2}', b'{"a": {"b": 1, "b": 1}}', b'{"a": ": x", "a": 1}',
    b'{"a": ": x"}', b'{"a" : 1 , "b"\t:\n2}', b'[{"k": 1}, {"k": 2}]',
    b'{"a": 1e5}', b'{"a": 1E-400}', b'{"a": 1e400}', b"NaN", b'{"a": Infinity}',
    b'{"a": 123456789012345678}', b'{"a": 1234567890123456789}', b'{"a": 18446744073709551616}',
    b'{"a": 0.30000000000000004}', b'{"a": 99999999999999999.5}', b'{"a": 01}', b'{"a": 1.}',
    b'{"a": "\\u00e9"}', b'{"a": "\xc3\xa9"}', b'{"a": "x\\"y"}', b'{"a": "\\ud800"}',
    b'{"a": "\x01"}', b"[1,]", b'{"a": 1} x', b" 1 ", b"true", b"null", b'""', b"[]", b"{}",
]  # fmt: skip


def _strict(payload: bytes) -> Any:
    try:
        return load_json(payload, default_limits(), fast=False)
    except PayloadError:
        return PayloadError


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


PAYLOADS = TRICKY + [case.payload for case in corpus(NOW_MS)]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_the_fast_path_reads_what_the_strict_decoder_reads(payload: bytes) -> None:
    expected = _strict(payload)
    try:
        got: Any = load_json(payload, default_limits())
    except PayloadError:
        got = PayloadError
    if isinstance(expected, type):  # the strict decoder refuses it: so must load_json
        assert got is PayloadError
    else:
        assert _same(got, expected), (got, expected)


@pytest.mark.parametrize(
    ("payload", "fast"),
    [
        (b'{"ts": 1767225600000, "p": 1003, "e": 10.123}', True),
        (b'{"Time": "2026-01-01T08:00:00", "ENERGY": {"Power": 12, "Total": 1.5}}', True),
        (b'{"a": 1, "a": 2}', False),
        (b'{"a": "x\\"y"}', False),
        (b'{"a": 1e5}', False),
        (b'{"a": -0.0}', False),
    ],
)
def test_which_texts_take_the_fast_path(payload: bytes, fast: bool) -> None:
    document = bounded._fast_document(payload, payload.decode(), 32)
    assert (document is not bounded._NOT_FAST) is fast

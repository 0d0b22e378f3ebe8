"""The lean PUBLISH decoder (`collectors.mqtt.lean`): rows of packets, each read as paho's own
decoder reads it (topic, packet id, QoS, payload), MQTT 5 properties skipped; malformed
packets refused (paho's decoder then raises its own error)."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion

from collectors.mqtt.lean import LEAN, decode_publish


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, *, qos: int, mid: int = 0, props: bytes | None) -> bytes:
    """A PUBLISH packet's body (after the remaining length); `props` None for MQTT 3.1.1."""
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += _varint(len(props)) + props
    return body + payload


PAYLOAD = b'{"ts": 1767225600000, "p": 5}'
USER_PROPERTY = b"\x26" + struct.pack("!H", 1) + b"k" + struct.pack("!H", 1) + b"v"
LONG_PROPERTIES = USER_PROPERTY * 30  # 240 bytes: a two-byte property length

ROWS = [
    # (case, header, body, v5)
    ("v5, QoS 1, no properties", 0x32, publish(b"a/b", PAYLOAD, qos=1, mid=7, props=b""), True),
    ("v5, QoS 0, no packet id", 0x30, publish(b"a/b", PAYLOAD, qos=0, props=b""), True),
    ("v5, a user property", 0x32, publish(b"a/b", PAYLOAD, qos=1, mid=9, props=USER_PROPERTY), True),
    ("v5, 240 bytes of properties", 0x32, publish(b"a", PAYLOAD, qos=1, mid=65535, props=LONG_PROPERTIES), True),
    ("v5, empty payload", 0x32, publish(b"a/b", b"", qos=1, mid=1, props=b""), True),
    ("3.1.1, QoS 1", 0x32, publish(b"tele/x/SENSOR", PAYLOAD, qos=1, mid=300, props=None), False),
    ("3.1.1, QoS 0, dup and retain flags", 0x39, publish(b"t", PAYLOAD, qos=0, props=None), False),
    ("3.1.1, invalid UTF-8 topic", 0x32, publish(b"t/\xff", PAYLOAD, qos=1, mid=2, props=None), False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "header", "body", "v5"), ROWS, ids=[r[0] for r in ROWS])
def test_reads_what_paho_reads(case: str, header: int, body: bytes, v5: bool) -> None:
    ours = decode_publish(header, body, v5)
    version = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
    paho = _packet.decode_publish(header, body, version)
    assert (ours._topic, ours.mid, ours.qos, ours.payload) == (
        paho.topic,
        paho.mid,
        paho.qos,
        paho.payload,
    )


def test_the_topic_is_text_or_paho_s_error() -> None:
    assert decode_publish(0x32, publish(b"a/b", b"", qos=1, mid=1, props=b""), True).topic == "a/b"
    bad = decode_publish(0x32, publish(b"t/\xff", b"", qos=1, mid=1, props=None), False)
    with pytest.raises(UnicodeDecodeError):
        _ = bad.topic


MALFORMED = [
    ("topic longer than the packet", 0x32, struct.pack("!H", 50) + b"abc", False),
    ("no packet id", 0x32, struct.pack("!H", 1) + b"a", False),
    ("properties longer than the packet", 0x32, struct.pack("!H", 1) + b"a\x00\x01\x10", True),
    ("property length of five bytes", 0x32, struct.pack("!H", 1) + b"a\x00\x01" + b"\xff" * 5, True),
    ("3.1.1, empty topic", 0x32, struct.pack("!H", 0) + b"\x00\x01x", False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "header", "body", "v5"), MALFORMED, ids=[r[0] for r in MALFORMED])
def test_malformed_packets_are_refused(case: str, header: int, body: bytes, v5: bool) -> None:
    with pytest.raises((ValueError, IndexError, struct.error)):
        decode_publish(header, body, v5)


def test_this_paho_has_what_the_lean_client_needs() -> None:
    assert LEAN  # else the collector silently falls back to the stock (slower) client

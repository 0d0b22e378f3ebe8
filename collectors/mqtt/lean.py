"""paho's client with a lean PUBLISH path: what the collector needs of a message, nothing else.

For each PUBLISH, stock paho builds a `Properties` object (MQTT 5; ~30 % of the collector's
time in the profile of issue 16 even when the packet carries no property), an `MQTTMessage`
with an `MQTTMessageInfo` holding a `threading.Condition`, logs a debug line, and matches the
topic against the per-filter callbacks. The collector reads a message's topic, payload,
packet id and QoS only, so `LeanClient` decodes QoS 0 and 1 PUBLISH packets itself
(`decode_publish`, pure) into a `LeanMessage` and calls `on_message` directly; `ack_many` sends a run's PUBACKs as one write (stock paho
queues each on its own and wakes its network thread once per ack). Everything
else is paho's: the network, keep-alives, acknowledgements, reconnects, QoS 2 (delegated),
and any packet the lean decoder cannot read (paho's own decoder then raises its usual
error).

The override is of one private method (`Client._handle_publish`), and `ack_many` uses
another (`_packet_queue`), of paho-mqtt 2.x, pinned
`<3` in pyproject.toml; `LEAN` is False, and the stock client is used, on a paho whose
internals do not look like the ones this was written against.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

MQTTv5 = MQTTProtocolVersion.MQTTv5

__all__ = ["LEAN", "LeanClient", "LeanMessage", "decode_publish"]

_H = struct.Struct("!H")
_PUBACK = struct.Struct("!BBH")
PUBACK = 0x40

LEAN = all(
    callable(getattr(mqtt.Client, name, None)) for name in ("_handle_publish", "_packet_queue")
)
"""Whether this paho has the internals `LeanClient` relies on."""


class LeanMessage:
    """A received PUBLISH: what `mqtt.MQTTMessage` offers the collector, in four slots."""

    __slots__ = ("_topic", "mid", "payload", "qos")

    def __init__(self, topic: bytes, mid: int, qos: int, payload: bytes) -> None:
        self._topic = topic
        self.mid = mid
        self.qos = qos
        self.payload = payload

    @property
    def topic(self) -> str:
        """The topic as text; `UnicodeDecodeError` for invalid UTF-8, like paho's."""
        return self._topic.decode("utf-8")


def decode_publish(header: int, packet: bytes | bytearray, v5: bool) -> LeanMessage:
    """A PUBLISH packet's message: `header` is the fixed header's first byte, `packet`
    what follows the remaining length. MQTT 5 properties are skipped, not decoded.
    `ValueError` (or `struct.error`, `IndexError`) for a malformed packet."""
    qos = (header & 0x06) >> 1
    (length,) = _H.unpack_from(packet, 0)
    at = 2 + length
    if at > len(packet):
        raise ValueError("topic runs past the packet")
    topic = bytes(packet[2:at])
    mid = 0
    if qos:
        (mid,) = _H.unpack_from(packet, at)
        at += 2
    if v5:
        props = 0
        shift = 0
        while True:  # variable byte integer, at most 4 bytes (MQTT 5 §1.5.5)
            byte = packet[at]
            at += 1
            props |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise ValueError("malformed property length")
        at += props
        if at > len(packet):
            raise ValueError("properties run past the packet")
    elif not topic:
        raise ValueError("topic can't be empty in MQTT 3.1.1")
    return LeanMessage(topic, mid, qos, bytes(packet[at:]))


class LeanClient(mqtt.Client):
    """`mqtt.Client` whose QoS 0/1 PUBLISH handling builds a `LeanMessage` (module doc).
    For the collector's use: one `on_message`, no per-filter callbacks."""

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        if (header & 0x06) >> 1 > 1:
            return super()._handle_publish()
        try:
            message = decode_publish(header, self._in_packet["packet"], self._protocol == MQTTv5)
        except (ValueError, IndexError, struct.error):
            return super()._handle_publish()  # its decoder raises paho's own error
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                on_message(self, self._userdata, message)  # type: ignore[arg-type]
        if message.qos == 1 and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge the QoS 1 messages `mids`, in this order, in one write (PUBACK with
        no reason code: success, in MQTT 5 as in 3.1.1)."""
        if mids:
            blob = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
            self._packet_queue(PUBACK, blob, 0, 0)

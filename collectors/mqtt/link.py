"""The paho-mqtt glue: one client and its network thread, and the messages it delivers.

paho-mqtt's network thread hands each message to the subscriber's asyncio loop as an `Item`,
tagged with the connection it came on, through the link's `Inbox` (`collectors.mqtt.inbox`:
batches cut by `[mqtt] batch_linger_ms`, `batch_max_messages` and `batch_max_bytes`, one
wake-up of the loop per batch). Message ids belong to one network connection: a message that
outlived its connection (paho reconnected, or the subscriber did) is never acknowledged; the
broker sends it again on the new one. The client is paho's with a lean PUBLISH path
(`collectors.mqtt.lean`).

Backpressure: at most `mqtt.buffer_messages` messages are held between receipt and ack. When
the buffer is full, paho's network thread waits in `on_message`, so it stops reading the
socket: the broker keeps the rest in our persistent session instead of in our memory. The
broker's receive maximum is not relied on (Mosquitto lets clients raise it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collectors.mqtt.columns import Columns
from collectors.mqtt.inbox import Inbox
from collectors.mqtt.lean import LEAN, LeanClient, LeanMessage

if TYPE_CHECKING:
    from collectors.mqtt.subscriber import MqttSubscriber

log = logging.getLogger("epcmon.mqtt")

Message = LeanMessage | mqtt.MQTTMessage
"""A received message: lean (`collectors.mqtt.lean`), or paho's own for QoS 2."""

PASSWORD_ENV = "EPCMON_MQTT_PASSWORD"


class Link:
    """One paho client and its network thread: the messages it delivers can be acked on it
    only while the connection they came on (its `generation`) is still the current one."""

    def __init__(self, sub: MqttSubscriber, loop: asyncio.AbstractEventLoop) -> None:
        self._sub = sub
        self._loop = loop
        self.lock = threading.Lock()
        self.generation = 0
        self.connected = False
        cfg = sub.site.mqtt
        self.inbox: Inbox[Item] = Inbox(
            loop,
            capacity=cfg.buffer_messages,
            linger_s=cfg.batch_linger_ms / 1000,
            max_messages=cfg.batch_max_messages,
            max_bytes=cfg.batch_max_bytes,
            on_full=lambda: sub.availability.count("mqtt_backpressure_waits"),
        )
        self.closing = threading.Event()
        client_class = LeanClient if LEAN else mqtt.Client
        if sub.v5:
            client = client_class(
                CallbackAPIVersion.VERSION2,
                client_id=sub.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            client = client_class(
                CallbackAPIVersion.VERSION2,
                client_id=sub.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if cfg.username:
            client.username_pw_set(cfg.username, os.environ.get(PASSWORD_ENV))
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        self.client = client

    def open(self) -> None:
        cfg = self._sub.site.mqtt
        if self._sub.v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
            self.client.connect_async(
                self._sub.host,
                self._sub.port,
                keepalive=cfg.keepalive_s,
                clean_start=False,
                properties=props,
            )
        else:
            self.client.connect_async(self._sub.host, self._sub.port, keepalive=cfg.keepalive_s)
        self.client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the network thread; what it delivered stays unacknowledged."""
        self.closing.set()
        self.inbox.close()
        with self.lock:
            self.generation += 1  # nothing received so far may be acked any more
            self.connected = False
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, items: Sequence[Item]) -> int:
        """Acknowledge `items` (in receive order) if their connection is still up; how many."""
        client = self.client
        with self.lock:
            if not self.connected:
                return 0
            live = [item for item in items if item.generation == self.generation]
            if isinstance(client, LeanClient):
                client.ack_many([i.message.mid for i in live if i.message.qos == 1])
                one_by_one = [i for i in live if i.message.qos == 2]
            else:
                one_by_one = live
            for item in one_by_one:
                client.ack(item.message.mid, item.message.qos)
        return len(live)

    def release(self, n: int) -> None:
        self.inbox.release(n)

    def _call(self, callback: Callable[..., object], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: we are shutting down
            return False
        return True

    # --- paho's thread ----------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        sub = self._sub
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connect to %s:%d refused: %s", sub.host, sub.port, reason)
            return
        with self.lock:
            self.generation += 1
            self.connected = True
        log.info("MQTT connected to %s:%d as %s", sub.host, sub.port, sub.client_id)
        filters = sub.router.subscriptions()
        if filters:
            client.subscribe([(f, 1) for f in filters])  # connected once the broker says so
        else:
            self._call(sub._set_connected, self, True)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: Properties
    ) -> None:
        # the broker routes messages to our session from here on: before this line, what is
        # published for our topics is not ours to lose (an installer's test can wait for it)
        refused = sum(r.is_failure for r in reasons)
        if refused:
            log.warning(
                "MQTT broker refused %d of %d topic filters (its ACL?): those meters are not "
                "collected", refused, len(reasons),
            )  # fmt: skip
        log.info("MQTT subscribed to %d topic filters", len(reasons) - refused)
        self._call(self._sub._set_connected, self, True)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        with self.lock:
            self.generation += 1  # ids of that connection must never be acked on the next
            self.connected = False
        sub = self._sub
        deliberate = self.closing.is_set()
        level = logging.INFO if deliberate else logging.WARNING
        log.log(level, "MQTT disconnected from %s:%d: %s", sub.host, sub.port, reason)
        self._call(sub._set_connected, self, False)

    def _on_message(self, _c: mqtt.Client, _u: object, message: Message) -> None:
        # Backpressure: `put` waits for room, so paho stops reading the socket while we are
        # full; once closed it takes nothing (unacknowledged: the broker delivers it again).
        self.inbox.put(Item(self, self.generation, message), len(message.payload))


@dataclass(slots=True)
class Item:
    """A received message, the link and connection it came on, and what became of it."""

    link: Link
    generation: int
    message: Message
    topic: str = ""
    received_ms: int = 0
    columns: Columns | None = None
    """The batch's readings, of which this message's are `start:stop`; None: nothing to
    store (a dead letter)."""
    start: int = 0
    stop: int = 0
    reason: str = ""
    dead_written: bool = False
    stored: bool = False


def topic_of(message: Message) -> str:
    """The message's topic as text, even if a broker let invalid UTF-8 through."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return bytes(message._topic).decode("utf-8", "backslashreplace")

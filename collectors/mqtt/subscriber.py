"""The MQTT subscriber: the only MQTT code that touches the network.

paho-mqtt's network thread hands each message to our asyncio loop; a consumer task parses a
run of messages, commits their readings to the store (or its spool), and only then
acknowledges them, in the order received (`manual_ack=True`). A crash before the commit means
the broker delivers the message again; idempotent writes make the redelivery harmless.

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
import time
from collections.abc import Awaitable, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.availability import Availability
from collectors.deadletters import DeadLetters
from collectors.mqtt.payload import parse_payload
from collectors.mqtt.routing import TopicRouter
from core.config import SiteConfig
from core.errors import PayloadError, StoreError
from core.net import parse_mqtt_url
from core.readings import Reading, ReadingBatch

log = logging.getLogger("epcmon.mqtt")

Sink = Callable[[ReadingBatch], Awaitable[None]]
PASSWORD_ENV = "EPCMON_MQTT_PASSWORD"


class MqttSubscriber:
    def __init__(
        self,
        site: SiteConfig,
        url: str,
        sink: Sink,
        dead_letters: DeadLetters,
        availability: Availability,
        *,
        max_batch: int = 5_000,
        client_id: str | None = None,
    ) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self._site = site
        self._sink = sink
        self._dead = dead_letters
        self._availability = availability
        self._max_batch = max_batch
        self._router = TopicRouter(site)
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._slots = threading.BoundedSemaphore(site.mqtt.buffer_messages)
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        cfg = site.mqtt
        self._v5 = cfg.protocol == "5"
        self.client_id = client_id or cfg.client_id or f"epcmon-{site.site.id}"
        if self._v5:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if cfg.username:
            self.client.username_pw_set(cfg.username, os.environ.get(PASSWORD_ENV))
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # --- paho's thread ----------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connect to %s:%d refused: %s", self.host, self.port, reason)
            return
        log.info("MQTT connected to %s:%d as %s", self.host, self.port, self.client_id)
        filters = self._router.subscriptions()
        if filters:
            client.subscribe([(f, 1) for f in filters])
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        level = logging.WARNING if getattr(reason, "is_failure", True) else logging.INFO
        log.log(level, "MQTT disconnected from %s:%d: %s", self.host, self.port, reason)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._connected.clear)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        # Backpressure: wait for room, so paho stops reading the socket while we are full.
        while not self._slots.acquire(timeout=0.5):
            if self._closing.is_set():
                return
            self._availability.count("mqtt_backpressure_waits")
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    # --- our loop ---------------------------------------------------------------------
    def _parse(self, message: mqtt.MQTTMessage, received_ms: int) -> list[Reading]:
        route = self._router.route(message.topic)
        if route is None:
            raise PayloadError(f"unknown meter: no meter is mapped to topic {message.topic!r}")
        return parse_payload(bytes(message.payload), route.fmt, route.meter_id, received_ms)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        cfg = self._site.mqtt
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = cfg.session_expiry_s
            self.client.connect_async(
                self.host, self.port, keepalive=cfg.keepalive_s, clean_start=False, properties=props
            )
        else:
            self.client.connect_async(self.host, self.port, keepalive=cfg.keepalive_s)
        self.client.loop_start()

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def buffered(self) -> int:
        return self._queue.qsize()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if getter not in done:
                    getter.cancel()
                    break
                messages = [getter.result()]
                while len(messages) < self._max_batch and not self._queue.empty():
                    messages.append(self._queue.get_nowait())
                await self._handle(messages)
        finally:
            self._closing.set()
            self.client.disconnect()
            self.client.loop_stop()

    def _release(self, n: int) -> None:
        for _ in range(n):
            self._slots.release()

    async def _handle(self, messages: list[mqtt.MQTTMessage]) -> None:
        received_ms = int(time.time() * 1000)
        readings: list[Reading] = []
        for message in messages:
            try:
                got = self._parse(message, received_ms)
            except PayloadError as exc:
                self._dead.add(
                    source=message.topic,
                    reason=str(exc),
                    payload=bytes(message.payload),
                    received_ms=received_ms,
                )
                self._availability.count("mqtt_dead_letters")
                continue
            readings += got
            self._availability.ok(got[0].meter_id, received_ms)
        if readings:
            try:
                await self._sink(ReadingBatch.from_readings(readings))
            except StoreError as exc:
                self._release(len(messages))
                await self._redeliver(exc)
                return
        for message in messages:  # in receive order, after the commit
            self.client.ack(message.mid, message.qos)
        self._release(len(messages))
        self._availability.count("mqtt_messages", len(messages))
        self._availability.count("mqtt_readings", len(readings))

    async def _redeliver(self, exc: StoreError) -> None:
        """The store (and its spool) refused the run: acknowledge nothing, forget what is
        queued here, and reconnect, so the broker delivers every unacknowledged message
        again (message ids of the old connection must not be acknowledged on the new one)."""
        dropped = self._queue.qsize()
        log.error("store write failed, %d messages will be redelivered: %s", dropped, exc)
        self._availability.count("mqtt_store_failures")
        while not self._queue.empty():
            self._queue.get_nowait()
        self._release(dropped)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(self.client.reconnect)

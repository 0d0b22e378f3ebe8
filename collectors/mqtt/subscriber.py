"""The MQTT subscriber: the only MQTT code that touches the network.

paho-mqtt's network thread hands each message to our asyncio loop; a consumer task parses a
run of messages, commits their readings to the store, and only then acknowledges them, in
the order received (`manual_ack=True`). A reading is acknowledged once it is stored, so a
crash before the commit means the broker delivers it again; the store's idempotent writes
make the redelivery harmless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.availability import Availability
from collectors.deadletters import DeadLetters
from collectors.mqtt.payload import parse_payload
from core.config import SiteConfig
from core.errors import PayloadError, StoreError
from core.readings import Reading, ReadingBatch

log = logging.getLogger("epcmon.mqtt")

Sink = Callable[[ReadingBatch], Awaitable[None]]


def parse_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"MQTT url {url!r}: expected mqtt://host:port")
    return parts.hostname, parts.port or 1883


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
    ) -> None:
        self.host, self.port = parse_url(url)
        self._site = site
        self._sink = sink
        self._dead = dead_letters
        self._availability = availability
        self._max_batch = max_batch
        self._topics = {m.mqtt.topic: m for m in site.meters if m.mqtt is not None}
        self._queue: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        cfg = site.mqtt
        self._v5 = cfg.protocol == "5"
        client_id = cfg.client_id or f"epcmon-{site.site.id}"
        if self._v5:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            self.client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
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
        log.info("MQTT connected to %s:%d", self.host, self.port)
        if self._topics:
            client.subscribe([(topic, 1) for topic in sorted(self._topics)])
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        level = logging.WARNING if getattr(reason, "is_failure", True) else logging.INFO
        log.log(level, "MQTT disconnected from %s:%d: %s", self.host, self.port, reason)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    # --- our loop ---------------------------------------------------------------------
    def _parse(self, message: mqtt.MQTTMessage, received_ms: int) -> list[Reading]:
        meter = self._topics.get(message.topic)
        if meter is None or meter.mqtt is None:
            raise PayloadError(f"unknown meter: no meter listens on topic {message.topic!r}")
        fmt = self._site.payload_formats[meter.mqtt.format]
        return parse_payload(bytes(message.payload), fmt, meter.id, received_ms)

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
            self.client.disconnect()
            self.client.loop_stop()

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
                await self._redeliver(exc)
                return
        for message in messages:  # in receive order, after the commit
            self.client.ack(message.mid, message.qos)
        self._availability.count("mqtt_messages", len(messages))
        self._availability.count("mqtt_readings", len(readings))

    async def _redeliver(self, exc: StoreError) -> None:
        """The store refused the run: acknowledge nothing, forget what is queued here, and
        reconnect, so the broker delivers every unacknowledged message again (message ids
        of the old connection must not be acknowledged on the new one)."""
        log.error(
            "store write failed, %d messages will be redelivered: %s", self._queue.qsize(), exc
        )
        self._availability.count("mqtt_store_failures")
        while not self._queue.empty():
            self._queue.get_nowait()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(self.client.reconnect)

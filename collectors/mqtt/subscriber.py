"""The MQTT subscriber: the only MQTT code that touches the network.

paho-mqtt's network thread hands each message to our asyncio loop; `run()` parses a run of
messages, writes the unusable ones to the dead letters and the readings to the store (or its
spool), and only then acknowledges them, in the order received (`manual_ack=True`). A crash
before the commit means the broker delivers the message again; idempotent writes make the
redelivery harmless.

**Every message has an outcome**: stored, or dead-lettered with its reason, and then
acknowledged. Whatever a payload does to the parser (a `PayloadError`, or any other
exception: a bug of ours must not stop ingest) makes it a dead letter. When the sink raises
something other than `StoreError`, the batch itself is bad: it is written again message by
message, and the messages the store refuses become dead letters.

**Store faults pause ingest and never lose an ack.** A `StoreError` from the sink, or an
`OSError` writing the dead letters (disk full), acknowledges nothing: the run is retried with
capped backoff for a short hold (`hold_s`, below the keep-alive, because paho's network thread
may be blocked in `on_message` by the backpressure wait and then sends no keep-alives). If the
store is still failing then, the subscriber disconnects deliberately and forgets every message
it holds (the broker keeps them, unacknowledged, in our persistent session), probes the store
by writing the held run again until it is accepted, and reconnects: the broker redelivers what
was not acknowledged. Logged once when ingest pauses and once when it resumes, counted
(`mqtt_ingest_paused`, `mqtt_ingest_resumed`), and reported as the `mqtt-ingest` condition.

Message ids belong to one network connection: every message is tagged with the connection it
came on, and one that outlived its connection (paho reconnected, or we did) is dropped
unacknowledged; the broker sends it again on the new one.

Backpressure: at most `mqtt.buffer_messages` messages are held between receipt and ack. When
the buffer is full, paho's network thread waits in `on_message`, so it stops reading the
socket: the broker keeps the rest in our persistent session instead of in our memory. The
broker's receive maximum is not relied on (Mosquitto lets clients raise it).

Restartable: each `run()` starts from a fresh queue and a fresh paho client (same client id,
so the same broker session), so the supervisor can call it again after it raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.availability import Availability
from collectors.mqtt.payload import PayloadLimits, parse_payload
from collectors.mqtt.routing import TopicRouter
from core.config import PayloadFormat, SiteConfig
from core.errors import PayloadError, StoreError
from core.health import Health
from core.net import parse_mqtt_url
from core.readings import Reading, ReadingBatch
from storage.deadletters import DeadLetter, DeadLetters

log = logging.getLogger("epcmon.mqtt")

Sink = Callable[[ReadingBatch], Awaitable[None]]
Parser = Callable[[bytes, PayloadFormat, str, int, PayloadLimits], list[Reading]]
PASSWORD_ENV = "EPCMON_MQTT_PASSWORD"
CONDITION = "mqtt-ingest"
"""The `Health` condition raised while ingest is paused."""
HOLD_S = 5.0
"""How long a failing run is retried while still connected before disconnecting."""
RETRY_MAX_S = 10.0
"""Longest wait between two attempts to write a held run while the store fails."""


class _Fault(Exception):
    """The run cannot be committed now (the store, or the dead-letter file, refused it)."""


class _Link:
    """One paho client and its network thread: the messages it delivers can be acked on it
    only while the connection they came on (its `generation`) is still the current one."""

    def __init__(self, sub: MqttSubscriber, loop: asyncio.AbstractEventLoop) -> None:
        self._sub = sub
        self._loop = loop
        self.lock = threading.Lock()
        self.generation = 0
        self.connected = False
        self.slots = threading.BoundedSemaphore(sub.site.mqtt.buffer_messages)
        self.closing = threading.Event()
        if sub.v5:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=sub.client_id,
                protocol=mqtt.MQTTv5,
                manual_ack=True,
            )
        else:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=sub.client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        cfg = sub.site.mqtt
        if cfg.username:
            client.username_pw_set(cfg.username, os.environ.get(PASSWORD_ENV))
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
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
        with self.lock:
            self.generation += 1  # nothing received so far may be acked any more
            self.connected = False
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, items: Sequence[_Item]) -> int:
        """Acknowledge `items` (in receive order) if their connection is still up; how many."""
        acked = 0
        with self.lock:
            for item in items:
                if item.generation == self.generation and self.connected:
                    self.client.ack(item.message.mid, item.message.qos)
                    acked += 1
        return acked

    def release(self, n: int) -> None:
        for _ in range(n):
            self.slots.release()

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
            client.subscribe([(f, 1) for f in filters])
        self._call(sub._set_connected, self, True)

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

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        # Backpressure: wait for room, so paho stops reading the socket while we are full.
        if not self.slots.acquire(blocking=False):
            self._sub.availability.count("mqtt_backpressure_waits")
            while not self.slots.acquire(timeout=0.1):
                if self.closing.is_set():
                    return  # unacknowledged: the broker delivers it again
        item = _Item(self, self.generation, message)
        if self.closing.is_set() or not self._call(self._sub._enqueue, item):
            self.slots.release()


@dataclass(slots=True)
class _Item:
    """A received message, the link and connection it came on, and what became of it."""

    link: _Link
    generation: int
    message: mqtt.MQTTMessage
    topic: str = ""
    received_ms: int = 0
    readings: list[Reading] | None = None
    reason: str = ""
    dead_written: bool = False
    stored: bool = False


def topic_of(message: mqtt.MQTTMessage) -> str:
    """The message's topic as text, even if a broker let invalid UTF-8 through."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return bytes(message._topic).decode("utf-8", "backslashreplace")


class MqttSubscriber:
    """Subscribes to the site's MQTT meters; `run(stop)` until `stop` is set (module doc)."""

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
        health: Health | None = None,
        hold_s: float = HOLD_S,
        retry_max_s: float = RETRY_MAX_S,
        parse: Parser = parse_payload,
    ) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self.site = site
        self.availability = availability
        self.health = health if health is not None else Health()
        self.router = TopicRouter(site)
        self.limits = PayloadLimits.of_site(site)
        self._sink = sink
        self._parse_payload = parse
        self._dead = dead_letters
        self._max_batch = max_batch
        cfg = site.mqtt
        self.v5 = cfg.protocol == "5"
        self.client_id = client_id or cfg.client_id or f"epcmon-{site.site.id}"
        # paho's thread may be blocked in on_message while we hold a run: it must not miss
        # the keep-alive, so the hold ends well before 1.5 keep-alives
        self._hold_s = min(hold_s, cfg.keepalive_s / 2)
        self._retry_max_s = retry_max_s
        self._connected = asyncio.Event()
        self._queue: asyncio.Queue[_Item] | None = None
        self._link: _Link | None = None
        self._reported: set[str] = set()
        self.paused = False

    # --- called on our loop from paho's thread ------------------------------------------
    def _enqueue(self, item: _Item) -> None:
        if self._queue is None or item.link is not self._link:
            item.link.release(1)  # from a link we closed: the broker sends it again
            return
        self._queue.put_nowait(item)

    def _set_connected(self, link: _Link, up: bool) -> None:
        if link is not self._link:
            return
        if up:
            self._connected.set()
        else:
            self._connected.clear()

    # --- the loop -------------------------------------------------------------------------
    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def buffered(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def run(self, stop: asyncio.Event) -> None:
        self._queue = asyncio.Queue()
        self._connected.clear()
        self._open()
        try:
            while not stop.is_set():
                items = await self._next_run(stop)
                if items is None:
                    break  # stopped
                if items:
                    await self._handle(items, stop)
        finally:
            await self._drop_link()
            self._queue = None
            if self.paused:  # stopped (or failed) while paused: the condition ends with us
                self.paused = False
                self.health.recover(CONDITION, "subscriber stopped")

    def _open(self) -> None:
        self._link = _Link(self, asyncio.get_running_loop())
        self._link.open()

    async def _drop_link(self) -> None:
        """Disconnect and forget every message held: none of them is acknowledged."""
        link, self._link = self._link, None
        self._connected.clear()
        queue = self._queue
        while queue is not None and not queue.empty():
            queue.get_nowait()  # unacknowledged: the broker delivers them again
        if link is not None:
            # joins paho's thread, which may be waiting out a reconnect delay
            await asyncio.to_thread(link.close)

    async def _next_run(self, stop: asyncio.Event) -> list[_Item] | None:
        """The next run of messages still ackable (maybe none), or None once `stop` is set."""
        assert self._queue is not None
        queue = self._queue
        if queue.empty():
            getter = asyncio.ensure_future(queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return None
            items = [getter.result()]
        else:
            items = [queue.get_nowait()]
        while len(items) < self._max_batch and not queue.empty():
            items.append(queue.get_nowait())
        live = []
        for item in items:
            if item.generation == item.link.generation:
                live.append(item)
            else:
                item.link.release(1)  # its connection is gone: the broker sends it again
        return live

    async def _handle(self, items: list[_Item], stop: asyncio.Event) -> None:
        received_ms = int(time.time() * 1000)
        for item in items:
            item.received_ms = received_ms
            self._parse(item, received_ms)
        try:
            await self._commit(items)
        except _Fault as fault:
            await self._pause(items, fault, stop)
            return
        self._finish(items)

    def _parse(self, item: _Item, received_ms: int) -> None:
        message = item.message
        item.topic = topic_of(message)
        try:
            route = self.router.route(item.topic)
            if route is None:
                raise PayloadError(
                    f"unknown meter: no meter is mapped to topic {item.topic[:200]!r}"
                )
            item.readings = self._parse_payload(
                bytes(message.payload), route.fmt, route.meter_id, received_ms, self.limits
            )
        except PayloadError as exc:
            item.reason = str(exc)
        except Exception as exc:  # a parser bug: the message still gets an outcome
            item.reason = f"parser failed: {type(exc).__name__}: {exc}"
            self.availability.count("mqtt_parser_failures")
            self._report_once(
                f"parser:{type(exc).__name__}",
                "the payload parser failed on a message from %s (dead-lettered): %s",
                item.topic,
                exc,
                exc_info=True,
            )
        else:
            self.availability.ok(item.readings[0].meter_id, received_ms)

    def _report_once(self, key: str, text: str, *args: object, exc_info: bool = False) -> None:
        """Log the first occurrence of a kind of problem (a flood must not flood the log)."""
        if key in self._reported or len(self._reported) > 1_000:
            log.debug(text, *args)
            return
        self._reported.add(key)
        log.warning(text, *args, exc_info=exc_info)

    async def _commit(self, items: list[_Item]) -> None:
        """Dead letters, then readings; raises `_Fault` when either cannot be written now.
        Safe to call again for the same run: what was written is not written twice."""
        await self._write_dead_letters(items)
        pending = [i for i in items if i.readings and not i.stored]
        if not pending:
            return
        try:
            await self._sink(
                ReadingBatch.from_readings(r for i in pending for r in i.readings or ())
            )
        except StoreError as exc:
            raise _Fault(f"the store refuses writes: {exc}") from exc
        except Exception as exc:
            self._report_once(
                f"sink:{type(exc).__name__}",
                "the store refused a run of %d messages (%s); writing them one by one",
                len(pending),
                exc,
                exc_info=True,
            )
            await self._isolate(pending)
            await self._write_dead_letters(items)
            return
        for item in pending:
            item.stored = True

    async def _isolate(self, pending: list[_Item]) -> None:
        """Write message by message; the ones the store refuses become dead letters."""
        for item in pending:
            try:
                await self._sink(ReadingBatch.from_readings(item.readings or ()))
            except StoreError as exc:
                raise _Fault(f"the store refuses writes: {exc}") from exc
            except Exception as exc:
                item.readings = None
                item.reason = f"store refused: {type(exc).__name__}: {exc}"
                self.availability.count("mqtt_store_rejects")
            else:
                item.stored = True

    async def _write_dead_letters(self, items: list[_Item]) -> None:
        new = [i for i in items if i.reason and not i.dead_written]
        if not new:
            return
        letters = [
            DeadLetter(i.topic, i.reason, bytes(i.message.payload), i.received_ms) for i in new
        ]
        try:
            await asyncio.to_thread(self._dead.write, letters)
        except OSError as exc:
            raise _Fault(f"the dead letters cannot be written: {exc}") from exc
        for item in new:
            item.dead_written = True
            self._report_once(
                f"dead:{item.reason.split(':', 1)[0][:60]}",
                "MQTT message from %s dead-lettered (first of its kind): %s",
                item.topic,
                item.reason[:300],
            )
        self.availability.count("mqtt_dead_letters", len(new))

    def _finish(self, items: list[_Item]) -> None:
        """Acknowledge a committed run in receive order and free its buffer slots."""
        if not items:
            return
        link = items[0].link
        acked = link.ack(items)
        link.release(len(items))
        self.availability.count("mqtt_messages", acked)
        self.availability.count("mqtt_readings", sum(len(i.readings or ()) for i in items))
        if acked < len(items):
            # committed, but the connection they came on is gone: the broker sends them
            # again and the idempotent store takes them once
            self.availability.count("mqtt_unacked_after_reconnect", len(items) - acked)

    # --- pause and resume ---------------------------------------------------------------
    async def _pause(self, items: list[_Item], fault: _Fault, stop: asyncio.Event) -> None:
        self.paused = True
        self.availability.count("mqtt_ingest_paused")
        self.health.degrade(CONDITION, f"ingest paused: {fault}")
        log.error(
            "MQTT ingest paused: %s; nothing is acknowledged, the broker keeps the messages", fault
        )
        delay = 0.2
        attempts = 1
        held_since = time.monotonic()
        # 1. still connected: retry for a short hold (a locked store, a hiccup)
        while time.monotonic() - held_since < self._hold_s:
            if await _wait(stop, min(delay, self._hold_s)):
                return
            delay = min(delay * 2, self._retry_max_s)
            attempts += 1
            try:
                await self._commit(items)
            except _Fault as again:
                fault = again
                continue
            self._finish(items)
            self._resumed(attempts, held_since)
            return
        # 2. disconnect, forget what we hold, and probe with the held run until it is
        # accepted (idempotent: the broker's redelivery stores it once more)
        log.warning(
            "MQTT: disconnecting until the store accepts writes (%d messages held, none acked)",
            len(items) + self.buffered,
        )
        await self._drop_link()
        while True:
            if await _wait(stop, delay):
                return
            delay = min(delay * 2, self._retry_max_s)
            attempts += 1
            try:
                await self._commit(items)
            except _Fault as again:
                if str(again) != str(fault):
                    self.health.degrade(CONDITION, f"ingest paused: {again}")
                fault = again
                continue
            break
        self._open()
        self._resumed(attempts, held_since)

    def _resumed(self, attempts: int, since: float) -> None:
        self.paused = False
        self.availability.count("mqtt_ingest_resumed")
        took = time.monotonic() - since
        self.health.recover(CONDITION, f"after {attempts} attempts")
        log.warning("MQTT ingest resumed after %.1f s (%d attempts)", took, attempts)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` unless `stop` is set first; whether it was."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True

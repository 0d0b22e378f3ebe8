"""The MQTT subscriber: the only MQTT code that touches the network.

`run()` takes batches of the messages paho delivers (`collectors.mqtt.link`; cut by time and
size, `[mqtt] batch_linger_ms`, `batch_max_messages`, `batch_max_bytes`), gives each message
its outcome, stored or dead-lettered, in one store transaction per batch, and acknowledges
them only after that is committed, in the order received (`manual_ack=True`;
`collectors.mqtt.outcomes`).

**Store faults pause ingest and never lose an ack.** A run that cannot be committed (the
store refuses writes, the dead letters cannot be written) acknowledges nothing: the run is
retried with capped backoff for a short hold (`hold_s`, below the keep-alive, because paho's
network thread may be blocked in `on_message` by the backpressure wait and then sends no
keep-alives). If the store is still failing then, the subscriber disconnects deliberately
and forgets every message it holds (the broker keeps them, unacknowledged, in our persistent
session), probes the store by writing the held run again until it is accepted, and
reconnects: the broker redelivers what was not acknowledged. Logged once when ingest pauses
and once when it resumes, counted (`mqtt_ingest_paused`, `mqtt_ingest_resumed`), and
reported as the `mqtt-ingest` condition.

Restartable: each `run()` starts from a fresh queue and a fresh paho client (same client id,
so the same broker session), so the supervisor can call it again after it raised.
"""

from __future__ import annotations

import asyncio
import logging
import time

from collectors.availability import Availability
from collectors.mqtt.discovery import Discovery
from collectors.mqtt.link import PASSWORD_ENV, Item, Link, topic_of
from collectors.mqtt.outcomes import Fault, Outcomes, Parser, Sink
from collectors.mqtt.payload import PayloadLimits, parse_records
from collectors.mqtt.routing import TopicRouter
from core.config import SiteConfig
from core.health import Health
from core.net import parse_mqtt_url
from storage.deadletters import DeadLetters
from storage.devices import UnconfiguredDevices

log = logging.getLogger("epcmon.mqtt")

__all__ = ["CONDITION", "PASSWORD_ENV", "MqttSubscriber", "Parser", "Sink", "topic_of"]

CONDITION = "mqtt-ingest"
"""The `Health` condition raised while ingest is paused."""
HOLD_S = 5.0
"""How long a failing run is retried while still connected before disconnecting."""
RETRY_MAX_S = 10.0
"""Longest wait between two attempts to write a held run while the store fails."""


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
        client_id: str | None = None,
        health: Health | None = None,
        hold_s: float = HOLD_S,
        retry_max_s: float = RETRY_MAX_S,
        parse: Parser = parse_records,
        devices: UnconfiguredDevices | None = None,
    ) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self.site = site
        self.availability = availability
        self.health = health if health is not None else Health()
        self.router = TopicRouter(site)
        self.limits = PayloadLimits.of_site(site)
        self.discovery = Discovery(site, self.limits, devices, availability)
        self._outcomes = Outcomes(
            self.router, self.limits, sink, dead_letters, availability, parse, self.discovery
        )
        cfg = site.mqtt
        self.v5 = cfg.protocol == "5"
        self.client_id = client_id or cfg.client_id or f"epcmon-{site.site.id}"
        # paho's thread may be blocked in on_message while we hold a run: it must not miss
        # the keep-alive, so the hold ends well before 1.5 keep-alives
        self._hold_s = min(hold_s, cfg.keepalive_s / 2)
        self._retry_max_s = retry_max_s
        self._connected = asyncio.Event()
        self._link: Link | None = None
        self.paused = False

    # --- called on our loop from paho's thread (by `Link`) --------------------------------
    def _set_connected(self, link: Link, up: bool) -> None:
        if link is not self._link:
            return
        if up:
            self._connected.set()
        else:
            self._connected.clear()

    # --- reload ---------------------------------------------------------------------------
    def update(self, site: SiteConfig) -> tuple[list[str], list[str]]:
        """Route by `site` from now on (its meters, routes and payload formats), and change
        the subscriptions on the live connection: the session, and every message held or
        in flight, stay. Returns the topic filters (subscribed, unsubscribed). The
        connection's own settings (`[mqtt]` url, client id, protocol, the `batch_*` keys...)
        are not changed here: those need a new subscriber."""
        before = set(self.router.subscriptions())
        self.site = site
        self.router = TopicRouter(site)
        self.limits = PayloadLimits.of_site(site)
        self._outcomes.router = self.router
        self._outcomes.limits = self.limits
        after = set(self.router.subscriptions())
        added, removed = sorted(after - before), sorted(before - after)
        link = self._link
        if link is not None and link.connected:
            # on a connection that drops meanwhile, `_on_connect` subscribes anew by the new router
            if added:
                link.client.subscribe([(f, 1) for f in added])
            if removed:
                link.client.unsubscribe(removed)
        return added, removed

    # --- the loop -------------------------------------------------------------------------
    async def wait_connected(self, timeout: float) -> None:
        """Until connected and subscribed (the broker routes our topics to the session)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def buffered(self) -> int:
        """Messages received and not yet taken into a batch."""
        return self._link.inbox.waiting if self._link is not None else 0

    async def run(self, stop: asyncio.Event) -> None:
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
            await asyncio.to_thread(self.discovery.flush)  # the last second's devices
            if self.paused:  # stopped (or failed) while paused: the condition ends with us
                self.paused = False
                self.health.recover(CONDITION, "subscriber stopped")

    def _open(self) -> None:
        self._link = Link(self, asyncio.get_running_loop())
        self._link.open()

    async def _drop_link(self) -> None:
        """Disconnect and forget every message held: none of them is acknowledged."""
        link, self._link = self._link, None  # its inbox, unacknowledged, goes with it
        self._connected.clear()
        if link is not None:
            # joins paho's thread, which may be waiting out a reconnect delay
            await asyncio.to_thread(link.close)

    async def _next_run(self, stop: asyncio.Event) -> list[Item] | None:
        """The next batch of messages still ackable (maybe none), or None once `stop` is set."""
        assert self._link is not None
        items = await self._link.inbox.take(stop)
        if items is None:
            return None
        live = []
        for item in items:
            if item.generation == item.link.generation:
                live.append(item)
            else:
                item.link.release(1)  # its connection is gone: the broker sends it again
        return live

    async def _handle(self, items: list[Item], stop: asyncio.Event) -> None:
        self._outcomes.parse_run(items, int(time.time() * 1000))
        try:
            await self._outcomes.commit(items)
        except Fault as fault:
            await self._pause(items, fault, stop)
            return
        self._outcomes.finish(items)

    # --- pause and resume ---------------------------------------------------------------
    async def _pause(self, items: list[Item], fault: Fault, stop: asyncio.Event) -> None:
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
                await self._outcomes.commit(items)
            except Fault as again:
                fault = again
                continue
            self._outcomes.finish(items)
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
                await self._outcomes.commit(items)
            except Fault as again:
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

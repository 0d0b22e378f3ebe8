"""Simulated MQTT meters: each publishes its payload format at its interval, QoS 1.

Intervals are in simulated time (`poll_interval_s` of each meter, or `interval_s` for all):
with an accelerated clock a weather station reporting every minute publishes 60 times a
wall second at 3600x. Device timestamps are simulated time too (plus any clock skew the
fault plan gives the device). Faults: messages withheld while a meter is offline,
malformed payloads, duplicates (see `simulators.faults`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.config import Meter, SiteConfig
from core.net import parse_mqtt_url
from simulators.faults import FaultInjector, FaultPlan
from simulators.payloads import render_payload

ValueSource = Callable[[int], dict[str, float]]


def _wall_ms() -> int:
    return int(time.time() * 1000)


class MqttMeterPublisher:
    def __init__(
        self,
        site: SiteConfig,
        meters: list[tuple[Meter, ValueSource]],
        url: str,
        *,
        interval_s: float | None = None,
        client_id: str = "epcmon-simulator",
        clock: Callable[[], int] | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self._site = site
        self._meters = [(m, src) for m, src in meters if m.mqtt is not None]
        self._interval = interval_s
        self._clock: Callable[[], int] = clock or _wall_ms
        self._rate = float(getattr(clock, "rate", 1.0))
        self._injector = FaultInjector(faults or FaultPlan(), self._clock())
        self.host, self.port = parse_mqtt_url(url)
        protocol = mqtt.MQTTv5 if site.mqtt.protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        self.published = 0
        self._in_flight: list[mqtt.MQTTMessageInfo] = []

    @property
    def injected(self) -> dict[str, int]:
        return dict(self._injector.injected)

    def interval_ms(self, meter: Meter) -> int:
        return int((self._interval or meter.poll_interval_s) * 1000)

    def publish_once(self, now_ms: int, *, only_due: bool = False) -> int:
        """Publish every meter (or those whose interval divides `now_ms`); returns how many
        messages went out."""
        sent = 0
        for meter, source in self._meters:
            assert meter.mqtt is not None
            if only_due and now_ms % self.interval_ms(meter):
                continue
            publish, malformed, duplicate, skew_ms = self._injector.mqtt(meter.id, now_ms)
            if not publish:
                continue
            fmt = self._site.format_of(meter)
            values = self._injector.values(meter.id, now_ms, source(now_ms), source)
            payload = render_payload(fmt, values, now_ms + skew_ms)
            if malformed:
                payload = self._injector.malform(meter.id, payload)
            for _ in range(2 if duplicate else 1):
                self._in_flight.append(
                    self.client.publish(self._site.topic_of(meter), payload, qos=1)
                )
                self.published += 1
                sent += 1
        return sent

    def flush(self, timeout: float) -> None:
        """Wait until the broker has acknowledged everything published (QoS 1)."""
        for info in self._in_flight:
            info.wait_for_publish(timeout)
        self._in_flight.clear()

    async def run(self, stop: asyncio.Event) -> None:
        if not self._meters:
            return
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        tick_ms = math.gcd(*(self.interval_ms(m) for m, _ in self._meters))
        try:
            while not stop.is_set():
                now = self._clock()
                next_tick = (now // tick_ms + 1) * tick_ms
                wait_s = (next_tick - now) / 1000.0 / self._rate
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait_s)
                    break
                except TimeoutError:
                    pass
                if self.client.is_connected():
                    self.publish_once(next_tick, only_due=True)
                    self._in_flight = [i for i in self._in_flight if not i.is_published()]
        finally:
            self.client.disconnect()
            self.client.loop_stop()

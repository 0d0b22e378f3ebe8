"""Simulated MQTT meters: each publishes its payload format at its interval, QoS 1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from collectors.mqtt.subscriber import parse_url
from core.config import Meter, SiteConfig
from simulators.payloads import render_payload

ValueSource = Callable[[int], dict[str, float]]


class MqttMeterPublisher:
    def __init__(
        self,
        site: SiteConfig,
        meters: list[tuple[Meter, ValueSource]],
        url: str,
        *,
        interval_s: float | None = None,
        client_id: str = "epcmon-simulator",
    ) -> None:
        self._site = site
        self._meters = [(m, src) for m, src in meters if m.mqtt is not None]
        self._interval = interval_s
        self.host, self.port = parse_url(url)
        protocol = mqtt.MQTTv5 if site.mqtt.protocol == "5" else mqtt.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        self.published = 0

    def publish_once(self, now_ms: int) -> None:
        for meter, source in self._meters:
            assert meter.mqtt is not None
            fmt = self._site.payload_formats[meter.mqtt.format]
            payload = render_payload(fmt, source(now_ms), now_ms)
            self.client.publish(meter.mqtt.topic, payload, qos=1)
            self.published += 1

    async def run(self, stop: asyncio.Event) -> None:
        if not self._meters:
            return
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        interval = self._interval or min(m.poll_interval_s for m, _ in self._meters)
        try:
            while not stop.is_set():
                now = time.time()
                next_tick = (now // interval + 1) * interval
                try:
                    await asyncio.wait_for(stop.wait(), timeout=next_tick - now)
                    break
                except TimeoutError:
                    pass
                if self.client.is_connected():
                    self.publish_once(int(next_tick * 1000))
        finally:
            self.client.disconnect()
            self.client.loop_stop()

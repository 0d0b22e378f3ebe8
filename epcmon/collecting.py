"""A site's collectors (or one shard's) as parts of a supervised service: a poller per
Modbus gateway and the MQTT subscriber, writing to one store, and how a reload changes them.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

from collectors.availability import Availability
from collectors.modbus.poller import GatewayPoller
from collectors.mqtt.subscriber import MqttSubscriber
from collectors.writer import StoreWriter
from core.config import Gateway, SiteConfig
from core.errors import ConfigError
from core.health import Health
from epcmon.supervisor import PartRun, Parts
from storage.base import TimeSeriesStore
from storage.deadletters import DeadLetters
from storage.devices import DEVICES_FILE, UnconfiguredDevices

log = logging.getLogger("epcmon.run")


@dataclass(frozen=True)
class Shard:
    """`--shard i/n`: this process polls the gateways whose stable hash falls in slot i of n."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected i/n, e.g. 1/2") from None
        if not 1 <= i <= n:
            raise ValueError(f"--shard {text!r}: i must be between 1 and n")
        return cls(i, n)

    def owns(self, gateway: Gateway) -> bool:
        # crc32 of the id: a gateway stays in its shard when others are added or removed
        return zlib.crc32(gateway.id.encode()) % self.count == self.index - 1

    def owns_site(self, site_id: str) -> bool:
        """In a portfolio, a shard takes whole sites (their gateways and MQTT meters)."""
        return zlib.crc32(site_id.encode()) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Collectors:
    """The collectors of a site (or of one shard of it), writing to one store: each gateway
    poller and the MQTT subscriber is a part of its own under the supervisor."""

    def __init__(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        data_dir: Path,
        *,
        shard: Shard = Shard(),
        mqtt_url: str | None = None,
        availability: Availability | None = None,
        health: Health | None = None,
    ) -> None:
        self.site = site
        self.shard = shard
        self.availability = availability or Availability()
        self.health = health or Health()
        self.writer = StoreWriter(store, self.availability, health=self.health)
        self.dead_letters = DeadLetters.for_mqtt(data_dir / "dead-letters.jsonl", site.mqtt)
        self.pollers = self._pollers(site)
        url = mqtt_url if mqtt_url is not None else site.mqtt.url
        has_mqtt = any(m.mqtt is not None for m in site.meters)
        self.subscriber: MqttSubscriber | None = None
        if has_mqtt and not url:
            log.warning(
                "site %s has MQTT meters but no [mqtt] url (%s): they are not collected",
                site.site.id,
                site.source or "its site file",
            )
        elif has_mqtt:
            if shard.count > 1 and not site.mqtt.shared_group:
                raise ConfigError(
                    "several collector processes need a shared subscription, or each stores every message",
                    file=site.source,
                    entity="[mqtt]",
                    key="shared_group",
                )
            base_id = site.mqtt.client_id or f"epcmon-{site.site.id}"
            client_id = base_id if shard.count == 1 else f"{base_id}-{shard.index}"
            self.subscriber = MqttSubscriber(
                site,
                url,
                self.writer,
                self.dead_letters,
                self.availability,
                client_id=client_id,
                health=self.health,
                devices=UnconfiguredDevices.for_mqtt(data_dir / DEVICES_FILE, site.mqtt),
            )

    def _pollers(self, site: SiteConfig) -> list[GatewayPoller]:
        """A poller for each gateway of this shard with meters to poll."""
        pollers = [
            GatewayPoller(
                gw,
                [m for m in site.meters if m.modbus is not None and m.modbus.gateway == gw.id],
                self.writer,
                self.availability,
            )
            for gw in site.gateways
            if self.shard.owns(gw)
        ]
        return [p for p in pollers if p.plans]

    async def reload(self, site: SiteConfig, supervisor: Parts) -> None:
        """Apply `site` (validated): pollers of gateways added, removed or changed (their
        settings or their meters) are started, stopped or replaced as parts of `supervisor`;
        the others keep polling. The subscriber routes by `site` on its live connection."""
        fresh = {p.gateway.id: p for p in self._pollers(site)}  # built first: may raise
        running = {p.gateway.id: p for p in self.pollers}
        kept: list[GatewayPoller] = []
        for gw_id, poller in running.items():
            new = fresh.get(gw_id)
            if new is None:
                await supervisor.remove(f"modbus {gw_id}")
            elif new.gateway != poller.gateway or new.meters != poller.meters:
                await supervisor.replace(f"modbus {gw_id}", new.run)
                kept.append(new)
            else:
                kept.append(poller)
        for gw_id, new in fresh.items():
            if gw_id not in running:
                supervisor.add(f"modbus {gw_id}", new.run)
                kept.append(new)
        self.pollers = kept
        self.site = site
        if self.subscriber is not None:
            added, removed = self.subscriber.update(site)
            if added or removed:
                log.info(
                    "MQTT on the live connection: subscribed to %s, unsubscribed from %s",
                    ", ".join(added) or "nothing",
                    ", ".join(removed) or "nothing",
                )
        elif any(m.mqtt is not None for m in site.meters):
            log.warning("reload: the first MQTT meters need a restart to be collected")

    def describe(self) -> list[str]:
        lines = [
            f"modbus gateway {p.gateway.id} {p.gateway.host}:{p.gateway.port}: {len(p.plans)} meters"
            for p in self.pollers
        ]
        if self.subscriber is not None:
            lines.append(
                f"mqtt {self.subscriber.host}:{self.subscriber.port} as {self.subscriber.client_id}"
            )
        return lines

    def parts(self) -> list[tuple[str, PartRun]]:
        """(name, run) of every long-running collector part."""
        out: list[tuple[str, PartRun]] = [(f"modbus {p.gateway.id}", p.run) for p in self.pollers]
        if self.subscriber is not None:
            out.append(("mqtt", self.subscriber.run))
        return out

"""Which meter a topic belongs to, and what to subscribe to: pure."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import PayloadFormat, SiteConfig


@dataclass(frozen=True)
class Route:
    meter_id: str
    fmt: PayloadFormat


class TopicRouter:
    def __init__(self, site: SiteConfig) -> None:
        self._site = site
        self._exact = {
            m.mqtt.topic: Route(m.id, site.format_of(m))
            for m in site.meters
            if m.mqtt is not None and m.mqtt.topic
        }
        self._routes = list(site.mqtt.routes.values())
        self._routed_meters = {m.id for m in site.meters if m.mqtt is not None and m.mqtt.route}

    def subscriptions(self) -> list[str]:
        """Topic filters, `$share/<group>/`-prefixed when the site shares its subscription."""
        filters = sorted(set(self._exact) | {r.subscription for r in self._routes})
        group = self._site.mqtt.shared_group
        return [f"$share/{group}/{f}" for f in filters] if group else filters

    def route(self, topic: str) -> Route | None:
        if (hit := self._exact.get(topic)) is not None:
            return hit
        for route in self._routes:
            meter_id = route.match(topic)
            if meter_id is not None and meter_id in self._routed_meters:
                return Route(meter_id, self._site.payload_formats[route.format])
        return None

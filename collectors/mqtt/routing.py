"""Which meter a topic belongs to, and what to subscribe to: pure.

A topic is a meter's own (`[meters.mqtt] topic`), or matches a route's pattern
(`[mqtt.routes.NAME]`), whose meter template gives the meter id from the topic's variables
and, for a message naming several meters, from values in each record of the payload
(`{/addr}`). Only meters the site file configures are routed to: anything else is an unknown
meter (dead-lettered, and listed as an unconfigured device). `[mqtt] discover` adds topic
filters whose messages are all such devices, unless a meter claims them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.config import MqttRoute, PayloadFormat, SiteConfig
from core.config.topics import NAME_CHARS

_TEMPLATE_PARTS = re.compile(r"\{(/[^{}]*)\}")
"""Splits a meter template at its payload variables, keeping their pointers."""


@dataclass(frozen=True)
class Route:
    """Where a topic's messages go: one meter, or the meters its payload names."""

    fmt: PayloadFormat
    meter_id: str = ""
    """The meter, when the topic alone names it ("" when the payload names the meters)."""
    names: tuple[str, ...] = ()
    """JSON pointers of the payload values that name the meter (`{/addr}`), in order."""
    template: str = ""
    """The meter id with the topic's variables filled in, the payload's still in place."""
    route: str = ""
    """The `[mqtt.routes.NAME]` it came from ("" for a meter's own topic)."""
    known: frozenset[str] = field(default=frozenset(), repr=False)
    """The configured meters of that route."""

    def meter_of(self, names: Sequence[str]) -> str | None:
        """The configured meter the payload's `names` (one per pointer in `names`) give, or
        None: an unknown meter."""
        meter_id = self.candidate(names)
        return meter_id if meter_id in self.known else None

    def claims_any(self) -> bool:
        """Whether a configured meter can be on this topic: with the payload naming the
        meters, whether one fits the template (`E-GW1-{/addr}`: any `E-GW1-...`); a topic
        naming its meter is routed only to a configured one."""
        if not self.names:
            return True
        pattern = re.compile(
            "".join(
                NAME_CHARS if part in self.names else re.escape(part)
                for part in _TEMPLATE_PARTS.split(self.template)
                if part
            )
        )
        return any(pattern.fullmatch(meter_id) for meter_id in self.known)

    def candidate(self, names: Sequence[str]) -> str:
        """The meter id the names give, configured or not."""
        if not self.names:
            return self.meter_id
        meter_id = self.template
        for pointer, name in zip(self.names, names, strict=True):
            meter_id = meter_id.replace("{" + pointer + "}", name)
        return meter_id


@dataclass(frozen=True)
class Unrouted:
    """A topic no meter claims, and what a meter configured for it would be: the route that
    matches it and the meter id it would give (the payload's variables still in place), if
    any route does."""

    topic: str
    route: str = ""
    meter_id: str = ""


class TopicRouter:
    def __init__(self, site: SiteConfig) -> None:
        self._site = site
        self._exact = {
            m.mqtt.topic: Route(site.format_of(m), m.id)
            for m in site.meters
            if m.mqtt is not None and m.mqtt.topic
        }
        self._routes: list[tuple[str, MqttRoute]] = list(site.mqtt.routes.items())
        known: dict[str, set[str]] = {name: set() for name in site.mqtt.routes}
        for m in site.meters:
            if m.mqtt is not None and m.mqtt.route:
                known[m.mqtt.route].add(m.id)
        self._known = {name: frozenset(ids) for name, ids in known.items()}

    def subscriptions(self) -> list[str]:
        """Topic filters, `$share/<group>/`-prefixed when the site shares its subscription."""
        filters = sorted(
            set(self._exact) | {r.subscription for _, r in self._routes} | set(self.discover)
        )
        group = self._site.mqtt.shared_group
        return [f"$share/{group}/{f}" for f in filters] if group else filters

    @property
    def discover(self) -> tuple[str, ...]:
        """`[mqtt] discover`: filters whose unclaimed messages are unconfigured devices."""
        return self._site.mqtt.discover

    def route(self, topic: str) -> Route | None:
        """Where `topic`'s messages go, or None when no configured meter can be on it. A
        route whose payload names the meters takes every topic its pattern matches."""
        if (hit := self._exact.get(topic)) is not None:
            return hit
        for name, route in self._routes:
            meter_id = route.match(topic)
            if meter_id is None:
                continue
            names = route.payload_names
            if names:  # the payload names the meters: which are configured, each record says
                fmt = self._site.payload_formats[route.format]
                return Route(fmt, "", names, meter_id, name, self._known[name])
            if meter_id in self._known[name]:
                return Route(
                    self._site.payload_formats[route.format],
                    meter_id,
                    route=name,
                    known=self._known[name],
                )
        return None

    def unrouted(self, topic: str) -> Unrouted:
        """What a meter configured for `topic` (which `route()` did not route) would be."""
        for name, route in self._routes:
            meter_id = route.match(topic)
            if meter_id is not None:
                return Unrouted(topic, name, meter_id)
        return Unrouted(topic)

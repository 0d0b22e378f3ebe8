"""Reloading the site file into a running service (SIGHUP), the way Telegraf does.

The file is read and validated first: a bad file changes nothing (one line naming the
error). A good one is compared with the running configuration (`changes`) and applied
(`Service.reload`):

- a gateway added to the file gets a poller, a part of its own; a removed one's poller is
  stopped; a gateway whose settings or meters changed has its poller replaced (the others
  never notice);
- MQTT meters, routes and payload formats: the subscriber routes by the new file at once
  and changes its subscriptions on the live connection (the session and every message in
  flight stay: nothing is lost, nothing acked early);
- the alarm engine, the recompute and the API read the new file from their next step (the
  alarm engine restarts from the stored alarms when `[alarms]` changed);
- settings read once at start (the store, the API's address, the MQTT connection, the
  schedules, `[notify]`) are not applied: one line names them as needing a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from core.config import Portfolio, SiteConfig
from core.errors import ConfigError

T = TypeVar("T")

log = logging.getLogger("epcmon.run")

RESTART_SECTIONS = ("site", "storage", "api", "schedule", "reports", "notify", "simulation")
"""Sections read once when the service starts: a change needs a restart."""
MQTT_LIVE_KEYS = frozenset({"routes"})
"""The `[mqtt]` keys applied live (every other one is the connection's: a restart)."""


@dataclass(frozen=True)
class Changes:
    """What differs between the running site file and the new one."""

    meters_added: list[str] = field(default_factory=list)
    meters_removed: list[str] = field(default_factory=list)
    meters_changed: list[str] = field(default_factory=list)
    gateways_added: list[str] = field(default_factory=list)
    gateways_removed: list[str] = field(default_factory=list)
    gateways_changed: list[str] = field(default_factory=list)
    routing_changed: bool = False
    """`[mqtt.routes]` or `[payload_formats]`."""
    sections_changed: list[str] = field(default_factory=list)
    """Other top-level sections that differ (contracts, alarms, ...)."""
    needs_restart: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.meters_added
            or self.meters_removed
            or self.meters_changed
            or self.gateways_added
            or self.gateways_removed
            or self.gateways_changed
            or self.routing_changed
            or self.sections_changed
            or self.needs_restart
        )

    def summary(self) -> str:
        """One line: what is applied (the restart line is separate)."""
        parts: list[str] = []
        for verb, what, ids in (
            ("added", "meters", self.meters_added),
            ("removed", "meters", self.meters_removed),
            ("changed", "meters", self.meters_changed),
            ("added", "gateways", self.gateways_added),
            ("removed", "gateways", self.gateways_removed),
            ("changed", "gateways", self.gateways_changed),
        ):
            if ids:
                parts.append(f"{verb} {what} {_ids(ids)}")
        if self.routing_changed:
            parts.append("MQTT routes/payload formats changed")
        if self.sections_changed:
            parts.append("changed " + ", ".join(f"[{s}]" for s in self.sections_changed))
        return "; ".join(parts) if parts else "nothing to apply"


def _ids(ids: list[str], shown: int = 10) -> str:
    more = len(ids) - shown
    return ", ".join(ids[:shown]) + (f" and {more} more" if more > 0 else "")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _by_id(items: Iterable[_HasId]) -> dict[str, _HasId]:
    return {item.id: item for item in items}


def changes(old: SiteConfig, new: SiteConfig) -> Changes:
    """What `new` changes against `old` (pure)."""
    old_m, new_m = _by_id(old.meters), _by_id(new.meters)
    old_g, new_g = _by_id(old.gateways), _by_id(new.gateways)
    restart = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(new, s)]
    old_mqtt = old.mqtt.model_dump(exclude=set(MQTT_LIVE_KEYS))
    if old_mqtt != new.mqtt.model_dump(exclude=set(MQTT_LIVE_KEYS)):
        restart.append("mqtt")
    handled = {"meters", "gateways", "payload_formats", "mqtt", *RESTART_SECTIONS}
    others = [
        name
        for name in type(old).model_fields
        if name not in handled and getattr(old, name) != getattr(new, name)
    ]
    return Changes(
        meters_added=sorted(new_m.keys() - old_m.keys()),
        meters_removed=sorted(old_m.keys() - new_m.keys()),
        meters_changed=sorted(k for k in old_m.keys() & new_m.keys() if old_m[k] != new_m[k]),
        gateways_added=sorted(new_g.keys() - old_g.keys()),
        gateways_removed=sorted(old_g.keys() - new_g.keys()),
        gateways_changed=sorted(k for k in old_g.keys() & new_g.keys() if old_g[k] != new_g[k]),
        routing_changed=(
            old.mqtt.routes != new.mqtt.routes or old.payload_formats != new.payload_formats
        ),
        sections_changed=others,
        needs_restart=restart,
    )


def restart_line(sections: list[str]) -> str:
    return (
        "reload: "
        + ", ".join(f"[{s}]" for s in sections)
        + " changed: not applied until epcmon restarts (read once at start)"
    )


def read_site(path: str | Path) -> SiteConfig | None:
    """The site file at `path`, validated as `epcmon run` validates it; None (and one line
    naming the error) when it is bad, so the running configuration stays."""
    from epcmon.sites import load

    return _read(load, path)


def read_portfolio(path: str | Path) -> Portfolio | None:
    """The portfolio directory at `path`, as `read_site` reads a site file."""
    from epcmon.sites import load_portfolio

    return _read(load_portfolio, path)


def _read(loader: Callable[[str | Path], T], path: str | Path) -> T | None:
    try:
        return loader(path)
    except ConfigError as exc:
        log.error(
            "reload failed: %s; keeping the running configuration", " ".join(str(exc).split())
        )
    except OSError as exc:
        log.error(
            "reload failed: %s: %s; keeping the running configuration",
            exc.filename or path,
            exc.strerror or exc,
        )
    return None

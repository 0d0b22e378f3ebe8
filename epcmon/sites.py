"""Loading a site file with everything the running program knows (the shipped profiles)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from collectors.profiles import load_profiles
from core.config import (
    PORTFOLIO_FILE,
    Portfolio,
    PortfolioFile,
    SiteConfig,
    StorageConfig,
    load_portfolio_file,
    load_site,
    with_environment,
)
from core.config.environment import influx_from_environment
from core.config.portfolio import in_portfolio
from core.errors import ConfigError


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> SiteConfig:
    """Load and validate a site file against the profiles epcmon ships, with the settings
    the environment overrides (`EPCMON_INFLUX_<KEY>`; default: this process's). A site file
    in a portfolio directory (beside `portfolio.toml`) is loaded as that portfolio runs it:
    its store is the portfolio's, its meters stored as `<site>/<meter>`."""
    head = Path(path).parent / PORTFOLIO_FILE
    if head.is_file() and Path(path).name != PORTFOLIO_FILE:
        return member(path, head, environ)
    return _load(path, environ)


def member(path: str | Path, head: Path, environ: Mapping[str, str] | None = None) -> SiteConfig:
    """Site file `path` of the portfolio whose `portfolio.toml` is `head`."""
    env = os.environ if environ is None else environ
    file, storage = _head(head, env)
    return in_portfolio(_load(path, env), storage, file.api)


def _head(head: Path, env: Mapping[str, str]) -> tuple[PortfolioFile, StorageConfig]:
    """`portfolio.toml` and its store with the environment's overrides."""
    file = load_portfolio_file(head)
    influx = influx_from_environment(file.storage.influx, env)
    return file, file.storage.model_copy(update={"influx": influx})


def _load(path: str | Path, environ: Mapping[str, str] | None = None) -> SiteConfig:
    profiles = load_profiles()
    site = with_environment(
        load_site(path, known_profiles=set(profiles)), os.environ if environ is None else environ
    )
    for meter in site.meters:
        src = meter.modbus
        if src is None:
            continue
        used = {f.transformer.value for f in profiles[src.profile].fields}
        for key, ratio, marks in (
            ("ct_ratio", src.ct_ratio, {"ct", "pt*ct"}),
            ("pt_ratio", src.pt_ratio, {"pt", "pt*ct"}),
        ):
            if ratio != 1.0 and not used & marks:
                # the meter applies its own ratio (or none): ours would be silently ignored
                raise ConfigError(
                    f"{ratio:g} is set, but profile {src.profile!r} has no register scaled by it "
                    "(the meter reports primary values itself)",
                    file=site.source,
                    entity=f"meter {meter.id!r}",
                    key=f"modbus.{key}",
                )
    return site


def is_portfolio(path: str | Path) -> bool:
    """A directory (with `portfolio.toml`) is a portfolio; a file is one site."""
    return Path(path).is_dir()


def load_portfolio(path: str | Path, environ: Mapping[str, str] | None = None) -> Portfolio:
    """Load the portfolio directory `path`: `portfolio.toml` and every other `*.toml` in it
    (each a site file, validated as `load` does), with the shared `[storage]` and `[api]`
    put in each site. Site ids and contract ids must be unique across the portfolio (a
    vendor key names its contracts, across sites)."""
    env = os.environ if environ is None else environ
    directory = Path(path)
    head = directory / PORTFOLIO_FILE
    if not head.is_file():
        raise ConfigError(
            f"a portfolio directory needs {PORTFOLIO_FILE} ([portfolio] id and name)",
            file=str(directory),
        )
    file, storage = _head(head, env)
    paths = sorted(p for p in directory.glob("*.toml") if p.name != PORTFOLIO_FILE)
    if not paths:
        raise ConfigError("no site files (*.toml) beside portfolio.toml", file=str(directory))
    sites: list[SiteConfig] = []
    seen: dict[str, str] = {}
    contracts: dict[str, str] = {}
    for p in paths:
        site = in_portfolio(_load(p, env), storage, file.api)
        if site.site.id in seen:
            raise ConfigError(
                f"site id {site.site.id!r} is also the id of {seen[site.site.id]}",
                file=str(p),
                entity="[site]",
                key="id",
            )
        seen[site.site.id] = str(p)
        for c in site.contracts:
            if c.id in contracts:
                raise ConfigError(
                    f"contract id {c.id!r} is also a contract of {contracts[c.id]} (contract "
                    "ids are unique across a portfolio: vendor keys name them)",
                    file=str(p),
                    entity=f"contract {c.id!r}",
                    key="id",
                )
            contracts[c.id] = str(p)
        sites.append(site)
    _check_mqtt_apart(sites)
    return Portfolio(
        info=file.portfolio,
        storage=storage,
        api=file.api,
        sites=tuple(sites),
        source=str(directory),
    )


def _check_mqtt_apart(sites: list[SiteConfig]) -> None:
    """Sites on one broker must not share a client id (each would disconnect the other) or a
    meter topic (one site's readings would be another's dead letters)."""
    clients: dict[tuple[str, str], str] = {}
    topics: dict[tuple[str, str], str] = {}
    for site in sites:
        url = site.mqtt.url
        if any(m.mqtt is not None for m in site.meters):
            client = site.mqtt.client_id or f"epcmon-{site.site.id}"
            if (url, client) in clients:
                raise ConfigError(
                    f"client id {client!r} is also site {clients[url, client]!r}'s on this broker",
                    file=site.source,
                    entity="[mqtt]",
                    key="client_id",
                )
            clients[url, client] = site.site.id
        for meter in site.meters:
            if meter.mqtt is None:
                continue
            topic = site.topic_of(meter)
            if (url, topic) in topics:
                raise ConfigError(
                    f"topic {topic!r} is also a topic of site {topics[url, topic]!r} on this "
                    "broker (each site's meters publish on topics of their own)",
                    file=site.source,
                    entity=f"meter {meter.id!r}",
                    key="mqtt.topic",
                )
            topics[url, topic] = site.site.id


def uncovered_years(site: SiteConfig) -> list[int]:
    """Years from the first baseline through next year that the holiday data lacks."""
    first = min((c.baseline_start.year for c in site.contracts), default=date.today().year)
    years = range(first, date.today().year + 2)  # through next year: its notice comes in November
    return list(site.work_calendar.uncovered_years(years))


def summary_dict(site: SiteConfig) -> dict[str, Any]:
    """`check-config --json`: the summary's counts as data."""
    return {
        "file": site.source,
        "site": {
            "id": site.site.id,
            "name": site.site.name,
            "name_en": site.site.name_en,
            "timezone": site.site.timezone,
            "latitude": site.site.latitude,
            "longitude": site.site.longitude,
        },
        "buildings": len(site.buildings),
        "floor_area_m2": sum(b.floor_area_m2 for b in site.buildings),
        "tenants": len(site.tenants),
        "departments": sum(1 for t in site.tenants if t.kind == "department"),
        "gateways": len(site.gateways),
        "meters": len(site.meters),
        "meters_by_kind": dict(sorted(Counter(m.kind.value for m in site.meters).items())),
        "meters_by_protocol": dict(sorted(Counter(m.protocol for m in site.meters).items())),
        "payload_formats": len(site.payload_formats),
        "contracts": len(site.contracts),
        "uncovered_holiday_years": uncovered_years(site),
    }


def summary(site: SiteConfig) -> str:
    kinds = Counter(m.kind.value for m in site.meters)
    protocols = Counter(m.protocol for m in site.meters)
    departments = sum(1 for t in site.tenants if t.kind == "department")
    lines = [
        f"site {site.site.id}: {site.site.name}"
        + (f" ({site.site.name_en})" if site.site.name_en else ""),
        f"  time zone {site.site.timezone}, {site.site.latitude:.3f}N {site.site.longitude:.3f}E",
        f"  buildings: {len(site.buildings)} ({sum(b.floor_area_m2 for b in site.buildings):,.0f} m2)",
        f"  tenants: {len(site.tenants)} ({departments} departments, {len(site.tenants) - departments} common areas)",
        f"  gateways: {len(site.gateways)}",
        f"  meters: {len(site.meters)}: "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        + "; by protocol: "
        + ", ".join(f"{k} {n}" for k, n in sorted(protocols.items())),
        f"  payload formats: {len(site.payload_formats)}",
        f"  contracts: {len(site.contracts)}",
    ]
    uncovered = uncovered_years(site)
    if uncovered:
        lines.append(
            "  warning: no statutory holiday data for "
            + ", ".join(map(str, uncovered))
            + " (weekdays are taken as workdays; add [[calendar.overrides]])"
        )
    return "\n".join(lines)

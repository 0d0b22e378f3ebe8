"""The time-series store: one interface, several backends (DuckDB embedded, InfluxDB)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from core.config import SiteConfig, StorageConfig
from core.errors import ConfigError
from core.health import Health
from storage.base import Agg, Every, Series, TimeSeriesStore

__all__ = ["Agg", "Every", "Series", "TimeSeriesStore", "open_store"]

log = logging.getLogger(__name__)


def open_store(
    config: StorageConfig,
    site: SiteConfig | None = None,
    *,
    spool: bool = True,
    environ: Mapping[str, str] | None = None,
    health: Health | None = None,
    sites: Sequence[SiteConfig] = (),
) -> TimeSeriesStore:
    """The store `config` describes. InfluxDB gets its secrets from the environment
    (`EPCMON_INFLUX_TOKEN`, `EPCMON_INFLUX_PASSWORD`), the site's meter tags from `site` (a
    portfolio's from `sites`, its meters stored as `<site>/<meter>`), and
    the durable spool in front of it unless `spool=False` (e.g. for `epcmon store copy`,
    which should stop, and resume later, rather than spool); the spool reports to `health`.

    DuckDB gets no spool: it fails when its own disk is full or failing, where a spool on
    that disk cannot help either; the collectors then hold back (MQTT unacknowledged, kept
    by the broker) until it takes writes again.

    Raises `StoreUnavailable` for a DuckDB file that cannot be opened (locked, corrupt) and
    `ConfigError` naming the site file, `[storage.spool]` and `path` for a spool path that
    cannot hold a spool."""
    from storage.duckdb_store import DuckDBStore
    from storage.influx import InfluxStore
    from storage.spool import Spool, SpoolingStore

    if site is not None and site.store_scope:  # one site of a portfolio: its view
        from storage.scoped import SiteStore

        shared = open_store(
            config, None, spool=spool, environ=environ, health=health, sites=(site,)
        )
        return SiteStore(shared, site.store_scope, owns=True)
    if config.backend == "duckdb":
        return DuckDBStore(config.path)
    env = os.environ if environ is None else environ
    influx = config.influx
    token = env.get("EPCMON_INFLUX_TOKEN") or None
    password = env.get("EPCMON_INFLUX_PASSWORD") or None
    if influx.mode != "v1" and token is None:
        log.warning("EPCMON_INFLUX_TOKEN is not set: writes to %s are unauthenticated", influx.url)
    if influx.mode == "v1" and influx.username and password is None:
        log.warning("EPCMON_INFLUX_PASSWORD is not set for InfluxDB user %r", influx.username)
    store = InfluxStore(influx, token=token, password=password, site=site, sites=sites)
    if not spool:
        return store
    try:
        spooled = Spool(config.spool.path, config.spool.max_bytes)
    except ConfigError as exc:
        store.close()
        if site is None or not site.source:
            raise
        raise ConfigError(exc.reason, file=site.source, entity=exc.entity, key=exc.key) from exc
    return SpoolingStore(
        store,
        spooled,
        replay_interval_s=config.spool.replay_interval_s,
        drain_points=config.spool.drain_points,
        health=health,
    )

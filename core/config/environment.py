"""Settings the environment overrides (`EPCMON_INFLUX_<KEY>`); secrets only ever come from it."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from core.config.site import SiteConfig
from core.config.storage import InfluxConfig
from core.errors import ConfigError

INFLUX_ENV_PREFIX = "EPCMON_INFLUX_"
"""`EPCMON_INFLUX_<KEY>` (e.g. `EPCMON_INFLUX_URL`) overrides `[storage.influx]` `<key>`."""


def influx_from_environment(influx: InfluxConfig, environ: Mapping[str, str]) -> InfluxConfig:
    """`influx` with every `EPCMON_INFLUX_<KEY>` of `environ` applied, validated; a bad
    value is a `ConfigError` naming the variable."""
    overrides = {
        name: environ[INFLUX_ENV_PREFIX + name.upper()]
        for name in InfluxConfig.model_fields
        if INFLUX_ENV_PREFIX + name.upper() in environ
    }
    if not overrides:
        return influx
    try:
        return InfluxConfig.model_validate({**influx.model_dump(), **overrides})
    except ValidationError as err:
        error = err.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        raise ConfigError(
            error["msg"],
            file="environment",
            entity=INFLUX_ENV_PREFIX + name.upper(),
            key=f"storage.influx.{name}",
        ) from None


def with_environment(site: SiteConfig, environ: Mapping[str, str]) -> SiteConfig:
    """`site` with the settings the environment overrides (`EPCMON_INFLUX_<KEY>`)."""
    influx = influx_from_environment(site.storage.influx, environ)
    if influx is site.storage.influx:
        return site
    updated = site.model_copy(
        update={"storage": site.storage.model_copy(update={"influx": influx})}
    )
    updated._source = site.source
    updated._store_scope = site.store_scope
    return updated

"""A portfolio: one deployment serving many sites (a city's public institutions).

A portfolio is a directory: `portfolio.toml` and one site file per institution (every other
`*.toml` in it). `portfolio.toml` names the portfolio and holds what the sites share: the one
store (`[storage]`) and the one API (`[api]`). Each site file keeps everything else of its
own (calendar overrides, tariffs, contracts and vendors, MQTT topics, alarms); its own
`[storage]` and `[api]`, if any, are replaced by the portfolio's, and its statements, alarms
and reports are kept per site under `<statements directory>/sites/<site>/`.

    [portfolio]
    id = "luan-city"
    name = "六安市公共机构能耗监测"
    [storage]
    path = "data/luan-city.duckdb"
    [api]
    port = 8000
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePath

from pydantic import Field

from core.config.base import EntityId, _Model
from core.config.site import ApiConfig, SiteConfig
from core.config.storage import StorageConfig
from core.errors import NotFound

PORTFOLIO_FILE = "portfolio.toml"
"""The file in a portfolio directory that is not a site."""


class PortfolioInfo(_Model):
    """The portfolio itself: `[portfolio]` of `portfolio.toml`."""

    id: EntityId
    """Short ASCII id (the city's, e.g. `luan-city`)."""
    name: str = Field(min_length=1)
    """Display name (Chinese first)."""
    name_en: str = ""
    """English name, optional."""


class PortfolioFile(_Model):
    """`portfolio.toml`: the portfolio's name and what its sites share."""

    portfolio: PortfolioInfo
    storage: StorageConfig = StorageConfig()
    """The one store of every site's readings (meters stored as `<site>/<meter>`)."""
    api: ApiConfig = ApiConfig()
    """The one API (and its keys file) serving every site."""


@dataclass(frozen=True)
class Portfolio:
    """A loaded portfolio: its file and its sites, each with the shared `[storage]` and
    `[api]` in place of its own (see the module)."""

    info: PortfolioInfo
    storage: StorageConfig
    api: ApiConfig
    sites: tuple[SiteConfig, ...]
    source: str
    """The directory, for messages."""

    @cached_property
    def sites_by_id(self) -> Mapping[str, SiteConfig]:
        return {s.site.id: s for s in self.sites}

    def site(self, site_id: str) -> SiteConfig:
        try:
            return self.sites_by_id[site_id]
        except KeyError:
            raise NotFound(f"no site {site_id!r} in portfolio {self.info.id!r}") from None

    @property
    def meters(self) -> int:
        return sum(len(s.meters) for s in self.sites)


def site_state_dir(storage: StorageConfig, site_id: str) -> PurePath:
    """Where a portfolio keeps one site's statements, alarms and reports."""
    return PurePath(storage.statements_file).parent / "sites" / site_id


def in_portfolio(site: SiteConfig, storage: StorageConfig, api: ApiConfig) -> SiteConfig:
    """`site` as a portfolio runs it: the shared store and API, its own state directory."""
    own = storage.model_copy(
        update={"statements_path": str(site_state_dir(storage, site.site.id) / "statements.sqlite")}
    )
    updated = site.model_copy(update={"storage": own, "api": api})
    updated._source = site.source
    updated._store_scope = site.site.id
    return updated

"""A two-site portfolio over one real DuckDB store: the reference site and a copy of it as a
county center (the same meter ids, so a leak between the sites would show), with apps as
`epcmon run --site DIR` builds them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from fastapi import FastAPI

from api.app import create_app
from api.keys import KeyStore, Role
from api.portfolio import create_portfolio_app
from collectors.profiles import load_profiles
from core.config import ApiConfig, Portfolio, PortfolioInfo, SiteConfig, StorageConfig, parse_site
from core.config.portfolio import in_portfolio
from core.health import Health
from processing.contract import fit_baseline, statement
from processing.statements import StatementStore
from processing.testing import synthetic_hourly, write_boundary
from storage.base import TimeSeriesStore
from storage.duckdb_store import DuckDBStore
from storage.scoped import SiteStore
from tests.api_fixtures import STATEMENT_MONTH, fill, two_contract_site

COUNTY = "county-b"
CITY = "luan-admin-center"


def county_copy(site: SiteConfig) -> SiteConfig:
    """The reference site as another institution: its own id, name and contract ids."""
    data = site.model_dump(mode="json")
    data["site"] = {**data["site"], "id": COUNTY, "name": "裕安区行政中心"}
    data["contracts"] = [{**c, "id": f"{COUNTY}-{c['id']}"} for c in data["contracts"]]
    return parse_site(data, source=f"{COUNTY}.toml", known_profiles=set(load_profiles()))


def fit_contract(
    site: SiteConfig, store: TimeSeriesStore, statements: StatementStore, seed: int
) -> None:
    """The site's first contract as `make_world` gives the reference site's: a synthetic
    boundary year and reporting months, its baseline fitted and a statement saved."""
    contract = site.contracts[0]
    synthetic = synthetic_hourly(
        date(2024, 7, 1),
        date(2025, 10, 1),
        seed=seed,
        calendar=site.work_calendar,
        retrofit=contract.reporting_start,
        reduction=0.1,
    )
    write_boundary(store, contract.meters, "WX-ROOF", synthetic)
    baseline = fit_baseline(site, contract.id, store)
    statements.save_baseline(baseline)
    statements.save_statement(
        statement(site, contract.id, store, STATEMENT_MONTH, baseline=baseline)
    )


@dataclass
class PortfolioWorld:
    portfolio: Portfolio
    store: DuckDBStore
    keys: KeyStore
    tokens: dict[str, str]
    apps: dict[str, FastAPI]
    router: FastAPI

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def make_portfolio_world(tmp_path: Path) -> PortfolioWorld:
    storage = StorageConfig(path=str(tmp_path / "city.duckdb"))
    api = ApiConfig(keys_path=str(tmp_path / "keys.sqlite3"))
    city = two_contract_site()
    sites = tuple(in_portfolio(s, storage, api) for s in (city, county_copy(city)))
    portfolio = Portfolio(
        PortfolioInfo(id="luan-city", name="六安市"), storage, api, sites, str(tmp_path)
    )
    store = DuckDBStore(storage.path)
    keys = KeyStore(api.keys_path)
    health = Health()
    apps = {}
    for seed, site in enumerate(sites, start=5):
        view = SiteStore(store, site.site.id)
        fill(view, site)  # type: ignore[arg-type]
        statements = StatementStore(site.storage.statements_file)
        fit_contract(site, view, statements, seed)
        apps[site.site.id] = create_app(site, view, keys=keys, statements=statements, health=health)
    city_contract = sites[0].contracts[0].id
    tokens = {
        "city": keys.create(Role.ENGINEER, name="city office")[1],
        "admin": keys.create(Role.ADMIN)[1],
        "county": keys.create(Role.ENGINEER, sites=(COUNTY,), name="county office")[1],
        "county-viewer": keys.create(Role.VIEWER, sites=(COUNTY,))[1],
        "vendor": keys.create(Role.VENDOR, contracts=(city_contract,))[1],
        "vendor-both": keys.create(
            Role.VENDOR, contracts=(city_contract, f"{COUNTY}-{city_contract}")
        )[1],
    }
    router = create_portfolio_app(portfolio, apps, keys=keys, store=store, health=health)
    return PortfolioWorld(portfolio, store, keys, tokens, apps, router)

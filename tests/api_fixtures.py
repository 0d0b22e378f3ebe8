"""A real DuckDB store filled with a few weeks of meter data, and an app over it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from api.app import create_app
from api.keys import KeyStore, Role
from collectors.profiles import load_profiles
from core.config import SiteConfig, parse_site
from core.readings import ReadingBatch
from epcmon.sites import load
from processing.contract import fit_baseline, statement
from processing.statements import StatementStore
from processing.testing import synthetic_hourly, write_boundary
from storage.duckdb_store import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_764_518_400_000  # 2025-11-30T16:00Z: local midnight in Shanghai
DAYS = 14


OTHER = "epc-2026-02"
"""A second contract, of another vendor: the vendor key must not learn that it exists."""
STATEMENT_MONTH = "2025-09"


@dataclass
class ApiWorld:
    site: SiteConfig
    store: DuckDBStore
    keys: KeyStore
    tokens: dict[str, str]
    statements: StatementStore


def fill(store: DuckDBStore, site: SiteConfig) -> None:
    """15-minute power and counters for every electricity and water meter; weather."""
    ts = T0 + np.arange(DAYS * 96, dtype=np.int64) * 900_000
    hours = (ts // 3_600_000 + 8) % 24
    occupied = ((hours >= 8) & (hours < 18)).astype(float)
    batches = []
    for i, m in enumerate(site.meters):
        base = 2.0 + (i % 7)
        if m.kind.value == "electricity":
            power = base * (0.3 + 0.7 * occupied)
            batches.append(ReadingBatch.for_series(m.id, "power", ts, power))
            batches.append(
                ReadingBatch.for_series(m.id, "energy_import", ts, 1000 + np.cumsum(power) / 4)
            )
        elif m.kind.value == "water":
            flow = 0.2 + occupied
            batches.append(ReadingBatch.for_series(m.id, "volume", ts, 500 + np.cumsum(flow) / 4))
        elif m.kind.value == "weather":
            batches.append(
                ReadingBatch.for_series(m.id, "outdoor_temperature", ts, 8 + 5 * occupied)
            )
    store.write(ReadingBatch.concat(batches))


def two_contract_site() -> SiteConfig:
    site = load(ROOT / "sites/luan-admin-center.toml")
    data = site.model_dump(mode="json")
    other = {
        **data["contracts"][0],
        "id": OTHER,
        "name": "另一个合同",
        "vendor": "另一家节能公司",
        "baseline_start": "2025-01-01",
        "baseline_end": "2026-01-01",
        "reporting_start": "2026-01-01",
    }
    data["contracts"].append(other)
    return parse_site(data, source=site.source, known_profiles=set(load_profiles()))


def make_world(tmp_path: Path) -> ApiWorld:
    site = two_contract_site()
    store = DuckDBStore(tmp_path / "api.duckdb")
    fill(store, site)
    contract = site.contracts[0]
    synthetic = synthetic_hourly(
        date(2024, 7, 1),
        date(2025, 10, 1),
        seed=5,
        calendar=site.work_calendar,
        retrofit=contract.reporting_start,
        reduction=0.1,
    )
    write_boundary(store, contract.meters, "WX-ROOF", synthetic)
    statements = StatementStore(tmp_path / "statements.sqlite")
    baseline = fit_baseline(site, contract.id, store)
    statements.save_baseline(baseline)
    statements.save_statement(
        statement(site, contract.id, store, STATEMENT_MONTH, baseline=baseline)
    )
    keys = KeyStore(tmp_path / "keys.sqlite3")
    tokens = {}
    for role in ("admin", "engineer", "viewer"):
        tokens[role] = keys.create(Role(role))[1]
    tokens["vendor"] = keys.create(Role.VENDOR, contracts=(site.contracts[0].id,))[1]
    return ApiWorld(site, store, keys, tokens, statements)


def app_for(world: ApiWorld, **kwargs: object):  # type: ignore[no-untyped-def]
    return create_app(  # type: ignore[arg-type]
        world.site, world.store, keys=world.keys, statements=world.statements, **kwargs
    )

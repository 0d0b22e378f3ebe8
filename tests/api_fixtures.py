"""A real DuckDB store filled with a few weeks of meter data, and an app over it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from api.app import create_app
from api.keys import KeyStore, Role
from core.config import SiteConfig
from core.readings import ReadingBatch
from epcmon.sites import load
from storage.duckdb_store import DuckDBStore

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_764_518_400_000  # 2025-11-30T16:00Z: local midnight in Shanghai
DAYS = 14


@dataclass
class ApiWorld:
    site: SiteConfig
    store: DuckDBStore
    keys: KeyStore
    tokens: dict[str, str]


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


def make_world(tmp_path: Path) -> ApiWorld:
    site = load(ROOT / "sites/luan-admin-center.toml")
    store = DuckDBStore(tmp_path / "api.duckdb")
    fill(store, site)
    keys = KeyStore(tmp_path / "keys.sqlite3")
    tokens = {}
    for role in ("admin", "engineer", "viewer"):
        tokens[role] = keys.create(Role(role))[1]
    tokens["vendor"] = keys.create(Role.VENDOR, contracts=(site.contracts[0].id,))[1]
    return ApiWorld(site, store, keys, tokens)


def app_for(world: ApiWorld, **kwargs: object):  # type: ignore[no-untyped-def]
    return create_app(world.site, world.store, keys=world.keys, **kwargs)  # type: ignore[arg-type]

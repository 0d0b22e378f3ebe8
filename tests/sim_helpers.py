"""Shared, cached pieces for the simulator tests (one model per process, built once)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from core.config import SiteConfig
from epcmon.sites import load
from simulators.history import History, generate_history
from simulators.model import SiteModel

ROOT = Path(__file__).resolve().parents[1]
SITE_FILE = ROOT / "sites" / "luan-admin-center.toml"
INCOMERS = ("E-TR1", "E-TR2", "E-TR3", "E-TR4")

BASELINE_START = datetime(2024, 6, 30, 16, tzinfo=UTC)  # 2024-07-01 00:00 in Lu'an
BASELINE_END = datetime(2025, 6, 30, 16, tzinfo=UTC)


@cache
def site() -> SiteConfig:
    return load(SITE_FILE)


@cache
def model(seed: int = 0) -> SiteModel:
    return SiteModel(site(), seed)


@cache
def baseline_year() -> History:
    """The contract's baseline year, hourly, core quantities of every meter."""
    return generate_history(site(), BASELINE_START, BASELINE_END, interval="1h", model=model())

"""`epcmon store copy --from duckdb:PATH --to influx:URL`: the wiring around
`storage.copy` (store specs, InfluxDB settings from the site file and flags, tqdm)."""

from __future__ import annotations

import argparse
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.config import SiteConfig, StorageConfig, influx_from_environment
from core.errors import ConfigError
from core.readings import to_ms
from storage import open_store
from storage.base import TimeSeriesStore
from storage.copy import MAX_MS, MIN_MS, CopyState, copy_history, plan_copy

log = logging.getLogger(__name__)

_INFLUX_FLAGS = ("mode", "database", "retention_policy", "org", "bucket", "username", "precision")


def storage_config(spec: str, site: SiteConfig | None, args: argparse.Namespace) -> StorageConfig:
    """`duckdb:PATH` or `influx:URL` (with the site file's `[storage.influx]` and the flags)."""
    kind, _, where = spec.partition(":")
    if kind == "duckdb" and where:
        return StorageConfig(backend="duckdb", path=where)
    if kind == "influx" and where:
        # the site file (with the environment's overrides, applied by `load`), then flags
        base = (
            site.storage.influx
            if site is not None
            else influx_from_environment(StorageConfig().influx, os.environ)
        )
        overrides: dict[str, Any] = {"url": where}
        for flag in _INFLUX_FLAGS:
            if getattr(args, flag, None) is not None:
                overrides[flag] = getattr(args, flag)
        influx = base.model_validate({**base.model_dump(), **overrides})
        return StorageConfig(backend="influx", influx=influx)
    raise ConfigError(f"store {spec!r}: expected duckdb:PATH or influx:URL", key="--from/--to")


def _moment(text: str | None, default: int, flag: str) -> int:
    if text is None:
        return default
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"not an ISO 8601 time: {text!r}", key=flag) from None
    return to_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def run_copy(args: argparse.Namespace) -> int:
    site: SiteConfig | None = None
    if args.site is not None:
        from epcmon.sites import load

        site = load(args.site)
    source_config = storage_config(args.source, site, args)
    destination_config = storage_config(args.destination, site, args)
    if destination_config.backend == "influx" and site is None:
        log.warning("no --site: points are tagged with their meter only (see README, schema)")
    start = _moment(args.start, MIN_MS, "--start")
    end = _moment(args.end, MAX_MS, "--end")
    state = CopyState.open(Path(args.state), args.source, args.destination)

    source: TimeSeriesStore = open_store(source_config, site, spool=False)
    try:
        destination: TimeSeriesStore = open_store(destination_config, site, spool=False)
        try:
            plan = plan_copy(source, start, end)
            print(f"copying {plan.points:,} points of {len(plan.months)} series")
            with tqdm(
                total=plan.points, unit="pt", unit_scale=True, disable=args.no_progress
            ) as bar:

                def advance(points: int) -> None:
                    bar.update(points)

                written = copy_history(
                    source, destination, plan, state, batch_points=args.batch, progress=advance
                )
        finally:
            destination.close()
    finally:
        source.close()
    print(f"copied {written:,} points; progress kept in {state.path}")
    return 0

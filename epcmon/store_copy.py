"""`epcmon store copy --from duckdb:PATH --to influx:URL`: the wiring around
`storage.copy` (store specs, InfluxDB settings from the site file and flags, tqdm)."""

from __future__ import annotations

import argparse
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from core.config import SiteConfig, StorageConfig, influx_from_environment
from core.errors import ConfigError
from core.readings import to_ms
from storage import open_store
from storage.base import TimeSeriesStore
from storage.copy import MAX_MS, MIN_MS, CopyState, copy_history, plan_copy

log = logging.getLogger(__name__)

_INFLUX_FLAGS = ("mode", "database", "retention_policy", "org", "bucket", "username", "precision")


def storage_config(
    spec: str, site: SiteConfig | None, args: argparse.Namespace, option: str = "--from/--to"
) -> StorageConfig:
    """`duckdb:PATH` or `influx:URL` (with the site file's `[storage.influx]` and the flags);
    `option` is the one the spec came from."""
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
        try:
            influx = base.model_validate({**base.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where_ = ".".join(str(part) for part in first["loc"])
            cause = first.get("ctx", {}).get("error")
            reason = str(cause) if isinstance(cause, ValueError) else first["msg"]
            raise ConfigError(f"{spec!r}: {where_}: {reason}", key=option) from None
        return StorageConfig(backend="influx", influx=influx)
    raise ConfigError(f"store {spec!r}: expected duckdb:PATH or influx:URL", key=option)


def _same_store(a: StorageConfig, b: StorageConfig) -> bool:
    if a.backend != b.backend:
        return False
    if a.backend == "duckdb":
        return Path(a.path).resolve() == Path(b.path).resolve()
    keys = ("url", "database", "retention_policy", "org", "bucket")
    return all(getattr(a.influx, k) == getattr(b.influx, k) for k in keys)


def _open_state(path: Path, source: str, destination: str) -> CopyState:
    """The progress file of `--state`: an earlier run's of the same copy, or a new one; it
    must be writable before anything is copied."""
    if path.is_dir():
        raise ConfigError(f"{path}: a directory, not a file", key="--state")
    try:
        state = CopyState.open(path, source, destination)
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path}: not the progress file of an `epcmon store copy` ({exc}); "
            "remove it or pass another --state",
            key="--state",
        ) from None
    try:
        state.save()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write it: {exc.strerror}", key="--state") from None
    return state


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
    source_config = storage_config(args.source, site, args, "--from")
    destination_config = storage_config(args.destination, site, args, "--to")
    if source_config.backend == "duckdb" and not Path(source_config.path).is_file():
        # opening it would create an empty store (and its directories) and copy nothing
        what = "not a file" if Path(source_config.path).exists() else "no such file"
        raise ConfigError(f"{source_config.path}: {what}", key="--from")
    if _same_store(source_config, destination_config):
        raise ConfigError(f"{args.destination!r} is the same store as --from", key="--to")
    start = _moment(args.start, MIN_MS, "--start")
    end = _moment(args.end, MAX_MS, "--end")
    if end <= start:
        since = f"--start {args.start!r}" if args.start else "the earliest time a store holds"
        raise ConfigError(f"{args.end!r} is not after {since}", key="--end")
    state = _open_state(Path(args.state), args.source, args.destination)
    if destination_config.backend == "influx" and site is None:
        log.warning("no --site: points are tagged with their meter only (see README, schema)")

    source: TimeSeriesStore = open_store(source_config, site, spool=False)
    try:
        destination: TimeSeriesStore = open_store(destination_config, site, spool=False)
        try:
            plan = plan_copy(source, state, start, end)
            print(f"copying {plan.points:,} points of {len(plan.left)} series")
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

"""`epcmon simulate city` (a simulated city as a portfolio directory) and `epcmon simulate
history --site DIR` (every site's history into the portfolio's one store)."""

from __future__ import annotations

import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from core.config import SiteConfig
from core.errors import ConfigError
from core.readings import from_ms
from epcmon.simulate import (
    _SCHEMA,
    _TRUTH,
    STORE_SUFFIXES,
    TABLE_SUFFIXES,
    HistoryOptions,
    _Progress,
    _readings_table,
    _TableFile,
    _truth_table,
    history_range,
)
from simulators.city import generate_city
from simulators.history import iter_history
from storage.scoped import SiteStore, qualified

if TYPE_CHECKING:
    from storage.duckdb_store import DuckDBStore

PORTFOLIO_FILE = "portfolio.toml"
MAX_SITES = 5_000


# ------------------------------------------------------------------ simulate city


def run_city(out: str, sites: int, seed: int, *, reference: str, force: bool = False) -> int:
    """Write the city's `portfolio.toml` and site files into `out` and print its totals."""
    if not 1 <= sites <= MAX_SITES:
        raise ConfigError(f"{sites}: a city has 1 to {MAX_SITES:,} sites", key="--sites")
    try:
        reference_text = Path(reference).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{reference}: cannot read it: {exc.strerror}", key="--reference"
        ) from None
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory", key="--out")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise ConfigError(f"{out}: not empty (--force replaces its .toml files)", key="--out")
    try:
        tomllib.loads(reference_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=reference) from None
    city = generate_city(sites, seed, reference_text=reference_text)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.toml"):
            old.unlink()
        for name, text in city.files().items():
            (directory / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write it: {exc.strerror}", key="--out") from None
    t = city.totals
    print(f"city {out} (seed {seed}): {t.line()}")
    kinds: dict[str, tuple[int, int]] = {}
    for s in city.sites:
        n, m = kinds.get(s.kind, (0, 0))
        kinds[s.kind] = (n + 1, m + s.meters)
    print("  " + ", ".join(f"{k} {n} ({m:,} meters)" for k, (n, m) in kinds.items()))
    return 0


# ------------------------------------------------------------------ a portfolio's history


def boundary_meters(site: SiteConfig) -> tuple[str, ...]:
    """What the site's contracts are computed from: their boundary meters (every utility)
    and weather stations, in order, each once; `()` for a site without a contract."""
    ids: list[str] = []
    weather = [m.id for m in site.meters if m.kind.value == "weather"]
    for c in site.contracts:
        for utility in c.utility_names():
            ids += c.terms(utility).meters
        ids += [c.weather_station] if c.weather_station else weather[:1]
    return tuple(dict.fromkeys(ids))


def run_portfolio_history(directory: str, opts: HistoryOptions, *, boundary: bool = False) -> int:
    """Every site's history over the range into the portfolio's store (meters stored as
    `site/meter`), or into `--out`; `--truth`: each interval's truth, meters qualified.
    `boundary`: only each site's `boundary_meters` (sites without a contract are skipped)."""
    for flag, given in (("--meters", opts.meters), ("--fault", opts.faults)):
        if given:
            raise ConfigError("not with a portfolio directory (give one site file)", key=flag)
    if opts.seed is not None:
        raise ConfigError(
            "not with a portfolio directory: each site has its seed in [simulation] "
            "(simulate city --seed draws them)",
            key="--seed",
        )
    from epcmon.sites import load_portfolio

    portfolio = load_portfolio(directory)
    if not opts.out and portfolio.storage.backend != "duckdb":
        raise ConfigError(
            "the portfolio's store is InfluxDB: write a DuckDB file and copy it "
            "(epcmon store copy)",
            key="--out",
        )
    out = Path(opts.out) if opts.out else Path(portfolio.storage.path)
    if opts.out and out.suffix not in STORE_SUFFIXES + TABLE_SUFFIXES:
        raise ConfigError(
            f"{out}: expected a .duckdb store, a .csv or a .parquet file", key="--out"
        )
    if opts.truth and Path(opts.truth).resolve() == out.resolve():
        raise ConfigError(f"{opts.truth}: the same file as --out", key="--truth")
    ranges = {
        s.site.id: history_range(s, opts.start, opts.end, opts.interval) for s in portfolio.sites
    }
    truth = _TableFile(Path(opts.truth), _TRUTH, "--truth") if opts.truth else None
    table = _TableFile(out, _SCHEMA, "--out") if out.suffix in TABLE_SUFFIXES else None
    store: DuckDBStore | None = None
    began = time.perf_counter()
    total = 0
    played: dict[str, int] = {}
    try:
        if table is None:
            from storage.duckdb_store import DuckDBStore

            try:
                store = DuckDBStore(out)
            except OSError as exc:
                raise ConfigError(f"{out}: cannot create it: {exc.strerror}", key="--out") from exc
        for site in portfolio.sites:
            meters = boundary_meters(site) if boundary else None
            if meters == ():
                continue
            played[site.site.id] = len(meters) if meters is not None else len(site.meters)
            total += _site_history(site, ranges[site.site.id], opts, meters, store, table, truth)
    finally:
        for f in (truth, table, store):
            if f is not None:
                f.close()
    start, end = ranges[portfolio.sites[0].site.id]
    print(
        f"{total:,} readings of {sum(played.values()):,} meters at {len(played)} sites, {from_ms(int(start.timestamp() * 1000)).isoformat()} to "
        f"{from_ms(int(end.timestamp() * 1000)).isoformat()} every {opts.interval} -> {out} "
        f"in {time.perf_counter() - began:.1f} s"
        + (f"; truth -> {opts.truth}" if opts.truth else "")
    )
    return 0


def _site_history(
    site: SiteConfig,
    span: tuple[datetime, datetime],
    opts: HistoryOptions,
    meters: tuple[str, ...] | None,
    store: DuckDBStore | None,
    table: _TableFile | None,
    truth: _TableFile | None,
) -> int:
    start, end = span
    sid = site.site.id
    prefix = qualified(sid, "")
    view = SiteStore(store, sid) if store is not None else None
    began = time.perf_counter()
    written = 0
    saved = dict.fromkeys((c.id for c in site.contracts), 0.0)
    total_ms = int((end - start).total_seconds() * 1000)
    with _Progress(total_ms, opts.progress, f"{sid} {opts.interval}") as progress:
        for part in iter_history(
            site,
            start,
            end,
            interval=opts.interval,
            seed=site.simulation.seed,
            meters=meters,
            quantities=opts.quantities,
            progress=progress,
        ):
            if view is not None:
                view.write(part.readings)
            if table is not None:
                table.write_table(_readings_table(part.readings.with_meter_prefix(prefix)))
            if truth is not None:
                t = _truth_table(part)
                ids = pa.array([prefix + m for m in t.column("meter_id").to_pylist()], pa.string())
                truth.write_table(t.set_column(1, "meter_id", ids))
            for c in site.contracts:
                saved[c.id] += float(sum(part.true_savings_kwh[m].sum() for m in c.meters))
            written += len(part.readings)
    took = time.perf_counter() - began
    truths = ", ".join(f"{c} true savings {v:,.0f} kWh" for c, v in saved.items())
    n = len(meters) if meters is not None else len(site.meters)
    print(
        f"  {sid}: {written:,} readings of {n} meters in {took:.1f} s"
        + (f"; {truths}" if truths else "")
    )
    return written

"""`epcmon simulate history` and `epcmon simulate serve`."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import pyarrow as pa

from core.config import SiteConfig
from core.errors import ConfigError
from core.readings import ReadingBatch, from_ms
from simulators.clock import AcceleratedClock, RealClock
from simulators.faults import FaultPlan
from simulators.history import History, iter_history
from simulators.model import SiteModel
from simulators.serve import ServeOptions, serve_site
from simulators.site import SimulatedSite


def parse_moment(text: str, site: SiteConfig, what: str) -> datetime:
    """A local date (midnight in the site's zone) or an ISO time with an offset."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, dtime(0), tzinfo=site.site.tz)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is neither a date nor an ISO time") from None
    if moment.tzinfo is None:
        raise ConfigError(f"{what}: {text!r} needs a UTC offset (or give a date)")
    return moment


def faults_for(site: SiteConfig, specs: tuple[str, ...], seed: int) -> FaultPlan:
    plan = FaultPlan.from_site(site)
    if specs:
        extra = FaultPlan.parse(specs, seed=seed)
        extra.check(site)
        plan = plan.merged(extra)
    return plan


# ------------------------------------------------------------------ history


@dataclass(frozen=True)
class HistoryOptions:
    start: str
    end: str
    interval: str = "15m"
    seed: int | None = None
    quantities: str = "core"
    meters: tuple[str, ...] = ()
    out: str | None = None
    truth: str | None = None
    faults: tuple[str, ...] = ()
    progress: bool = True


class _Sink(Protocol):
    def write(self, part: History) -> None: ...

    def close(self) -> None: ...


_SCHEMA = pa.schema(
    [
        ("meter_id", pa.string()),
        ("quantity", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("value", pa.float64()),
    ]
)
_TRUTH = pa.schema(
    [
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("meter_id", pa.string()),
        ("actual", pa.float64()),
        ("counterfactual", pa.float64()),
        ("true_savings", pa.float64()),
    ]
)


def _readings_table(batch: ReadingBatch) -> pa.Table:
    return pa.table(
        {
            "meter_id": pa.array(batch.meter_id, type=pa.string()),
            "quantity": pa.array(batch.quantity, type=pa.string()),
            "ts": pa.array(batch.ts_ms, type=pa.timestamp("ms", tz="UTC")),
            "value": pa.array(batch.value, type=pa.float64()),
        },
        schema=_SCHEMA,
    )


def _truth_table(part: History) -> pa.Table:
    ids = list(part.actual_kwh)
    n = len(part.ts_ms)
    return pa.table(
        {
            "ts": pa.array(np.tile(part.ts_ms, len(ids)), type=pa.timestamp("ms", tz="UTC")),
            "meter_id": pa.array(np.repeat(np.array(ids, dtype=object), n), type=pa.string()),
            "actual": np.concatenate([part.actual_kwh[m] for m in ids]) if ids else np.zeros(0),
            "counterfactual": np.concatenate([part.counterfactual_kwh[m] for m in ids])
            if ids
            else np.zeros(0),
            "true_savings": np.concatenate([part.true_savings_kwh[m] for m in ids])
            if ids
            else np.zeros(0),
        },
        schema=_TRUTH,
    )


class _TableFile:
    """CSV or Parquet, written part by part."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        if path.suffix == ".parquet":
            self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")
        elif path.suffix == ".csv":
            self._writer = pacsv.CSVWriter(str(path), schema)
        else:
            raise ConfigError(f"{path}: expected a .csv or .parquet file")

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


class _ReadingsFile:
    def __init__(self, path: Path) -> None:
        self._file = _TableFile(path, _SCHEMA)

    def write(self, part: History) -> None:
        self._file.write_table(_readings_table(part.readings))

    def close(self) -> None:
        self._file.close()


class _Store:
    def __init__(self, path: Path) -> None:
        from storage.duckdb_store import DuckDBStore

        self._store = DuckDBStore(path)
        self.written = 0

    def write(self, part: History) -> None:
        self.written += self._store.write(part.readings)

    def close(self) -> None:
        self._store.close()


class _Progress:
    def __init__(self, total_ms: int, enabled: bool, label: str) -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=round(total_ms / 86_400_000, 2),
                unit="day",
                desc=label,
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} days [{elapsed}<{remaining}]",
            )

    def __call__(self, ms: int) -> None:
        if self._bar is not None:
            self._bar.update(ms / 86_400_000)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        if self._bar is not None:
            self._bar.close()


def run_history(site: SiteConfig, opts: HistoryOptions) -> int:
    seed = site.simulation.seed if opts.seed is None else opts.seed
    start = parse_moment(opts.start, site, "--from")
    end = parse_moment(opts.end, site, "--to")
    faults = faults_for(site, opts.faults, seed)
    out = Path(opts.out) if opts.out else Path(site.storage.path)
    sink: _Sink = _ReadingsFile(out) if out.suffix in (".csv", ".parquet") else _Store(out)
    truth = _TableFile(Path(opts.truth), _TRUTH) if opts.truth else None
    model = SiteModel(site, seed)
    began = time.perf_counter()
    readings = 0
    total_ms = int((end - start).total_seconds() * 1000)
    try:
        with _Progress(total_ms, opts.progress, f"{site.site.id} {opts.interval}") as progress:
            for part in iter_history(
                site,
                start,
                end,
                interval=opts.interval,
                seed=seed,
                meters=opts.meters or None,
                quantities=opts.quantities,
                faults=None if faults.empty else faults,
                model=model,
                progress=progress,
            ):
                sink.write(part)
                if truth is not None:
                    truth.write_table(_truth_table(part))
                readings += len(part.readings)
    finally:
        sink.close()
        if truth is not None:
            truth.close()
    took = time.perf_counter() - began
    print(
        f"{readings:,} readings of {len(opts.meters) or len(site.meters)} meters, "
        f"{from_ms(int(start.timestamp() * 1000)).isoformat()} to "
        f"{from_ms(int(end.timestamp() * 1000)).isoformat()} every {opts.interval} (seed {seed}) "
        f"-> {out} in {took:.1f} s" + (f"; truth -> {opts.truth}" if opts.truth else "")
    )
    return 0


# ------------------------------------------------------------------ serve


@dataclass(frozen=True)
class ServeArgs:
    seed: int | None = None
    speed: float | None = None
    start: str | None = None
    any_port: bool = False
    mqtt_url: str | None = None
    faults: tuple[str, ...] = ()
    duration_s: float | None = None


async def run_serve(site: SiteConfig, args: ServeArgs) -> int:
    def say(text: str) -> None:
        print(text, flush=True)

    seed = site.simulation.seed if args.seed is None else args.seed
    speed = args.speed if args.speed is not None else site.simulation.acceleration
    start = parse_moment(args.start, site, "--start") if args.start else site.simulation.start
    clock: RealClock | AcceleratedClock
    if speed == 1.0 and start is None:
        clock = RealClock()
    else:
        clock = AcceleratedClock(speed, int(start.timestamp() * 1000) if start else None)
    faults = faults_for(site, args.faults, seed)
    sim = SimulatedSite(site, clock=clock, seed=seed)
    say(
        f"simulating {site.site.id} (seed {seed}) at {speed:g}x from {from_ms(clock()).isoformat()}"
    )
    sim.values(site.meters[0].id)  # integrate the counters up to now before serving
    for meter_id, f in faults.meters.items():
        say(f"fault on {meter_id}: {f.model_dump(exclude_defaults=True)}")
    for gateway_id, g in faults.gateways.items():
        say(f"fault on gateway {gateway_id}: {g.model_dump(exclude_defaults=True)}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    opts = ServeOptions(
        any_port=args.any_port, mqtt_url=args.mqtt_url, faults=faults, duration_s=args.duration_s
    )
    counts = await serve_site(site, sim, opts, say, stop)
    say(f"stopped; Modbus requests served: {sum(counts.values()):,}")
    return 0

"""`epcmon simulate history` and `epcmon simulate serve`."""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import pyarrow as pa

from core.config import SiteConfig
from core.errors import ConfigError
from core.readings import ReadingBatch, from_ms, to_ms
from simulators.anomalies import truth_table
from simulators.clock import AcceleratedClock, RealClock
from simulators.faults import FaultPlan
from simulators.history import INTERVALS, History, iter_history
from simulators.model import SiteModel
from simulators.serve import ServeOptions, serve_site
from simulators.site import SimulatedSite
from simulators.weather import LAST_DAY, ORIGIN_DAY

# The days the simulation can play, local: the weather model's daily series runs from day
# ORIGIN_DAY (2000-01-01) through LAST_DAY (2101-01-01) and is interpolated between local
# noons, so the whole days it covers are the second through the second-to-last.
SIMULATED_FROM = date(1970, 1, 1) + timedelta(days=ORIGIN_DAY + 1)
SIMULATED_UNTIL = date(1970, 1, 1) + timedelta(days=LAST_DAY - 1)
"""Exclusive: the last day simulated is the one before (2100-12-30)."""

STORE_SUFFIXES = (".duckdb", ".db")
TABLE_SUFFIXES = (".csv", ".parquet")


def parse_moment(text: str, site: SiteConfig, what: str) -> datetime:
    """A local date (midnight in the site's zone) or an ISO time with an offset, within the
    days the simulation covers; `what` is the option it came from."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        moment = datetime.combine(day, dtime(0), tzinfo=site.site.tz)
        return _covered(moment, site, text, what)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is neither a date nor an ISO time", key=what) from None
    if moment.tzinfo is None:
        raise ConfigError(f"{text!r} needs a UTC offset (or give a date)", key=what)
    return _covered(moment, site, text, what)


def _covered(moment: datetime, site: SiteConfig, text: str, what: str) -> datetime:
    first = datetime.combine(SIMULATED_FROM, dtime(0), tzinfo=site.site.tz)
    last = datetime.combine(SIMULATED_UNTIL, dtime(0), tzinfo=site.site.tz)
    if not first <= moment <= last:
        raise ConfigError(
            f"{text!r} is outside the days the simulation covers "
            f"({SIMULATED_FROM} to {SIMULATED_UNTIL}, local)",
            key=what,
        )
    return moment


def history_range(
    site: SiteConfig, start_text: str, end_text: str, interval: str
) -> tuple[datetime, datetime]:
    """`--from` and `--to` of `simulate history`: both covered, in order, on the grid."""
    if interval not in INTERVALS:
        *most, last = INTERVALS
        raise ConfigError(f"{interval!r}: one of {', '.join(most)} or {last}", key="--interval")
    start = parse_moment(start_text, site, "--from")
    end = parse_moment(end_text, site, "--to")
    if end <= start:
        raise ConfigError(f"{end_text!r} is not after --from {start_text!r}", key="--to")
    step_ms = INTERVALS[interval] * 60_000
    for text, moment, flag in ((start_text, start, "--from"), (end_text, end, "--to")):
        if to_ms(moment) % step_ms:
            raise ConfigError(
                f"{text!r} is not on the {interval} grid of --interval (in UTC)", key=flag
            )
    return start, end


def faults_for(site: SiteConfig, specs: tuple[str, ...], seed: int) -> FaultPlan:
    """The site file's faults with those of `--fault` added (a bad one names the option)."""
    plan = FaultPlan.from_site(site)
    if specs:
        try:
            extra = FaultPlan.parse(specs, seed=seed)
            extra.check(site)
        except ConfigError as exc:
            what = ": ".join(part for part in (exc.entity, exc.reason) if part)
            raise ConfigError(what, key="--fault") from None
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


_ANOMALIES = pa.schema(
    [
        ("kind", pa.string()),
        ("meter", pa.string()),
        ("start", pa.timestamp("ms", tz="UTC")),
        ("end", pa.timestamp("ms", tz="UTC")),
        ("category", pa.string()),
        ("rule", pa.string()),
        ("rules", pa.string()),
        ("meters", pa.string()),
        ("parameters", pa.string()),
    ]
)


def anomalies_path(truth: Path) -> Path:
    """Where `--truth FILE` lists the anomalies: FILE's name with `.anomalies` before its
    suffix (truth.csv -> truth.anomalies.csv)."""
    return truth.with_name(f"{truth.stem}.anomalies{truth.suffix}")


def _anomalies_table(site: SiteConfig, plan: FaultPlan, start_ms: int, end_ms: int) -> pa.Table:
    rows = [t.row() for t in truth_table(site, plan.anomalies, start_ms, end_ms)]
    columns = {
        name: [r[name] for r in rows] for name in _ANOMALIES.names if name not in ("start", "end")
    }
    columns["start"] = [r["start_ms"] for r in rows]
    columns["end"] = [r["end_ms"] for r in rows]
    return pa.table({name: columns[name] for name in _ANOMALIES.names}, schema=_ANOMALIES)


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
    """CSV or Parquet, written part by part; `flag` is the option that named it."""

    def __init__(self, path: Path, schema: pa.Schema, flag: str) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        if path.suffix not in TABLE_SUFFIXES:
            raise ConfigError(f"{path}: expected a .csv or .parquet file", key=flag)
        self._writer: pq.ParquetWriter | pacsv.CSVWriter
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".parquet":
                self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(str(path), schema)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write it: {_reason(exc)}", key=flag) from exc

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


def _reason(exc: OSError) -> str:
    return exc.strerror if exc.strerror and exc.filename else str(exc)


class _ReadingsFile:
    def __init__(self, path: Path) -> None:
        self._file = _TableFile(path, _SCHEMA, "--out")

    def write(self, part: History) -> None:
        self._file.write_table(_readings_table(part.readings))

    def close(self) -> None:
        self._file.close()


class _Store:
    def __init__(self, path: Path, site: SiteConfig, flag: str | None) -> None:
        from storage.duckdb_store import DuckDBStore

        try:
            self._store = DuckDBStore(path)
        except OSError as exc:  # its directory cannot be made
            reason = f"{path}: cannot create it: {_reason(exc)}"
            if flag is None:
                raise ConfigError(reason, file=site.source, entity="[storage]", key="path") from exc
            raise ConfigError(reason, key=flag) from exc
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
    start, end = history_range(site, opts.start, opts.end, opts.interval)
    for meter_id in opts.meters:
        if meter_id not in site.meters_by_id:
            raise ConfigError(f"no meter {meter_id!r} in {site.source}", key="--meters")
    faults = faults_for(site, opts.faults, seed)
    out = Path(opts.out) if opts.out else Path(site.storage.path)
    if opts.out and out.suffix not in STORE_SUFFIXES + TABLE_SUFFIXES:
        raise ConfigError(
            f"{out}: expected a .duckdb store, a .csv or a .parquet file", key="--out"
        )
    if opts.truth and Path(opts.truth).resolve() == out.resolve():
        raise ConfigError(f"{opts.truth}: the same file as --out", key="--truth")
    truth = _TableFile(Path(opts.truth), _TRUTH, "--truth") if opts.truth else None
    try:
        sink: _Sink = (
            _ReadingsFile(out)
            if out.suffix in TABLE_SUFFIXES
            else _Store(out, site, "--out" if opts.out else None)
        )
    except BaseException:
        if truth is not None:
            truth.close()
        raise
    model = SiteModel(site, seed, faults.anomalies)
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
    if opts.truth:
        listed = _TableFile(anomalies_path(Path(opts.truth)), _ANOMALIES, "--truth")
        try:
            listed.write_table(_anomalies_table(site, faults, to_ms(start), to_ms(end)))
        finally:
            listed.close()
    took = time.perf_counter() - began
    print(
        f"{readings:,} readings of {len(opts.meters) or len(site.meters)} meters, "
        f"{from_ms(int(start.timestamp() * 1000)).isoformat()} to "
        f"{from_ms(int(end.timestamp() * 1000)).isoformat()} every {opts.interval} (seed {seed}) "
        f"-> {out} in {took:.1f} s"
        + (
            f"; truth -> {opts.truth}, anomalies -> {anomalies_path(Path(opts.truth))}"
            if opts.truth
            else ""
        )
    )
    for t in truth_table(site, faults.anomalies, to_ms(start), to_ms(end)):
        print(_describe(t.kind, t.meter, t.start_ms, t.end_ms, t.parameters))
    return 0


def _describe(
    kind: str, meter: str, start_ms: int, end_ms: int | None, params: dict[str, object]
) -> str:
    """One line of an injected anomaly, e.g. `anomaly leak at W-MAIN from ... to ... {...}`."""
    when = from_ms(start_ms).isoformat()
    if end_ms is None:
        when = f"from {when} for good"
    elif end_ms == start_ms:
        when = f"at {when}"
    else:
        when = f"from {when} to {from_ms(end_ms).isoformat()}"
    return f"anomaly {kind} at {meter} {when}" + (f" {params}" if params else "")


# ------------------------------------------------------------------ serve


def check_gateway_ports(site: SiteConfig) -> None:
    """Each gateway with meters is served on 127.0.0.1 at its port in the site file: say which
    one is taken before any is started (pymodbus would only say it could not listen)."""
    for gw in site.gateways:
        if gw.port == 0 or not any(m.modbus and m.modbus.gateway == gw.id for m in site.meters):
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers
            try:
                sock.bind(("127.0.0.1", gw.port))
            except OSError as exc:
                reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise ConfigError(
                    f"cannot serve on 127.0.0.1:{gw.port}: {reason} "
                    "(--any-port serves every gateway on a free port)",
                    file=site.source,
                    entity=f"gateway {gw.id!r}",
                    key="port",
                ) from None


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
    if not args.any_port:
        check_gateway_ports(site)
    clock: RealClock | AcceleratedClock
    if speed == 1.0 and start is None:
        clock = RealClock()
    else:
        clock = AcceleratedClock(speed, int(start.timestamp() * 1000) if start else None)
    faults = faults_for(site, args.faults, seed)
    sim = SimulatedSite(site, clock=clock, seed=seed, anomalies=faults.anomalies)
    say(
        f"simulating {site.site.id} (seed {seed}) at {speed:g}x from {from_ms(clock()).isoformat()}"
    )
    sim.values(site.meters[0].id)  # integrate the counters up to now before serving
    for meter_id, f in faults.meters.items():
        say(f"fault on {meter_id}: {f.model_dump(exclude_defaults=True)}")
    for gateway_id, g in faults.gateways.items():
        say(f"fault on gateway {gateway_id}: {g.model_dump(exclude_defaults=True)}")
    for t in truth_table(site, faults.anomalies):
        say(_describe(t.kind, t.meter, t.start_ms, t.end_ms, t.parameters))
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

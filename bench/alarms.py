"""How well alarms catch what goes wrong: detection against the simulators' ground truth.

    .venv/bin/python -m bench.alarms                 # the reference site, 2025-07 to 2026-07
    .venv/bin/python -m bench.alarms --quick         # 3 weeks, one anomaly of each kind
    .venv/bin/python -m bench.alarms --engine alarms.bench:engine --csv detections.csv

Over a simulated year of the reference site, anomalies of every kind (`--per-kind` each, 8:
56 in all) are placed at random by seed (`simulators.anomaly_draw`) and played by the
simulators (a leak, a chiller left on over a holiday, a base-load step, a demand peak, a
silent meter, a counter reset, a jump). The history is written to a DuckDB store as the
collectors would write it: a warm-up (`--warmup-days`, default a year: the baselines' data)
in bulk, then step by step (`--step`), each step's readings before the alarm engine evaluates
at its end: `evaluate(store, now_ms) -> [Condition]`, then `lifecycle.observe(conditions,
now_ms) -> [Transition]`, as `epcmon run` does every `[alarms] every_s`. No evaluation sees a
reading from after its `now`. The same year is then replayed without anomalies.

Printed beside the targets (issue 15): the share of anomalies detected (≥ 95 %), the median
time to detection of data and capacity alarms (≤ 1 h) and of consumption anomalies (≤ 1 day),
and false alarms per meter-month on the year without anomalies (≤ 0.1); scoring in
`bench.alarm_scoring`.

The history's interval (`--interval`, 15 min) stands for every meter's poll interval: each
meter's `poll_interval_s` is set to it, so rules that judge staleness by it judge the
history's grid. `--engine MODULE:FUNCTION` names a function `(site, store) -> (evaluate,
lifecycle)`; the default is `bench.alarm_standin:engine`, three trivial rules that exercise
the harness until the real rules are merged.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import shutil
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Protocol

import numpy as np

from alarms.model import Condition, Transition
from bench.alarm_scoring import Score, report, score
from core.config import Anomaly, SiteConfig, parse_site
from core.readings import ReadingBatch, from_ms
from simulators.anomalies import truth_table
from simulators.anomaly_draw import draw_anomalies
from simulators.faults import FaultPlan
from simulators.history import INTERVALS, iter_history
from simulators.model import SiteModel
from storage.base import TimeSeriesStore
from storage.duckdb_store import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
SITE_FILE = REPO / "sites" / "luan-admin-center.toml"
SPAN = (date(2025, 7, 1), date(2026, 7, 1))
QUICK_SPAN = (date(2025, 7, 1), date(2025, 7, 22))
DEFAULT_ENGINE = "bench.alarm_standin:engine"

Evaluate = Callable[[TimeSeriesStore, int], list[Condition]]


class LifeCycle(Protocol):
    def observe(self, conditions: Sequence[Condition], now_ms: int) -> list[Transition]: ...


EngineFactory = Callable[[SiteConfig, TimeSeriesStore], tuple[Evaluate, LifeCycle]]


@dataclass
class Replay:
    """What a replay did and how long it took."""

    transitions: list[Transition] = field(default_factory=list)
    evaluations: int = 0
    readings: int = 0
    evaluate_s: list[float] = field(default_factory=list)
    """Per evaluation: `evaluate` plus `observe`, seconds."""
    write_s: float = 0.0
    total_s: float = 0.0


def bench_site(path: Path, interval: str) -> SiteConfig:
    """The site file with every meter polled every `interval` (the history's grid)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    seconds = INTERVALS[interval] * 60
    for meter in data.get("meters", []):
        meter["poll_interval_s"] = seconds
    return parse_site(data, source=str(path))


def _by_time(batch: ReadingBatch) -> ReadingBatch:
    order = np.argsort(batch.ts_ms, kind="stable")
    return ReadingBatch(
        batch.meter_id[order], batch.quantity[order], batch.ts_ms[order], batch.value[order]
    )


def _slice(batch: ReadingBatch, i: int, j: int) -> ReadingBatch:
    return ReadingBatch(
        batch.meter_id[i:j], batch.quantity[i:j], batch.ts_ms[i:j], batch.value[i:j]
    )


def replay(
    site: SiteConfig,
    store: TimeSeriesStore,
    evaluate: Evaluate,
    lifecycle: LifeCycle,
    *,
    start: datetime,
    end: datetime,
    warmup_start: datetime | None = None,
    interval: str = "15m",
    step_ms: int = 900_000,
    seed: int = 0,
    plan: FaultPlan | None = None,
    meters: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Write the site's history into `store` as collectors would and evaluate every
    `step_ms` over [start, end]: at each step `now`, the readings with ts <= now are in the
    store and no later one is; then `evaluate(store, now)` and `lifecycle.observe(...)`.
    From `warmup_start` to `start` the history is written without evaluating."""
    plan = plan if plan is not None else FaultPlan(seed=seed)
    model = SiteModel(site, seed, plan.anomalies)
    out = Replay()
    began = time.perf_counter()
    start_ms = int(start.timestamp() * 1000)
    end_ms = int(end.timestamp() * 1000)
    now = start_ms + step_ms
    first = warmup_start if warmup_start is not None else start

    def write(batch: ReadingBatch) -> None:
        if len(batch):
            t = time.perf_counter()
            store.write(batch)
            out.write_s += time.perf_counter() - t
            out.readings += len(batch)

    for part in iter_history(
        site, first, end, interval=interval, seed=seed, meters=meters, faults=plan, model=model
    ):
        batch = _by_time(part.readings)
        part_end = int(part.ts_ms[-1]) + part.interval_ms
        i = 0
        while now < part_end and now <= end_ms:
            j = int(np.searchsorted(batch.ts_ms, now, side="right"))
            write(_slice(batch, i, j))
            i = j
            t = time.perf_counter()
            conditions = evaluate(store, now)
            out.transitions += lifecycle.observe(conditions, now)
            out.evaluate_s.append(time.perf_counter() - t)
            out.evaluations += 1
            now += step_ms
        write(_slice(batch, i, len(batch)))
        if progress is not None:
            progress(part_end)
    out.total_s = time.perf_counter() - began
    return out


def load_engine(spec: str) -> EngineFactory:
    """`module:function` -> the function."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"--engine {spec!r}: expected MODULE:FUNCTION")
    factory: EngineFactory = getattr(importlib.import_module(module), name)
    return factory


def _local_midnight(site: SiteConfig, day: date) -> datetime:
    return datetime.combine(day, dtime(0), tzinfo=site.site.tz)


def run(
    site: SiteConfig,
    factory: EngineFactory,
    *,
    start: datetime,
    end: datetime,
    warmup_start: datetime,
    interval: str,
    step_ms: int,
    seed: int,
    anomalies: tuple[Anomaly, ...],
    workdir: Path,
    name: str,
) -> Replay:
    """One replay on a fresh store and a fresh engine."""
    path = workdir / f"{name}.duckdb"
    store = DuckDBStore(path)
    try:
        evaluate, lifecycle = factory(site, store)

        def say(at_ms: int) -> None:
            print(
                f"  {name}: {from_ms(min(at_ms, int(end.timestamp() * 1000))):%Y-%m-%d}",
                end="\r",
                file=sys.stderr,
            )

        return replay(
            site, store, evaluate, lifecycle, start=start, end=end, warmup_start=warmup_start,
            interval=interval, step_ms=step_ms, seed=seed,
            plan=FaultPlan(seed=seed, anomalies=anomalies), progress=say,
        )  # fmt: skip
    finally:
        store.close()


def _timing(name: str, r: Replay) -> str:
    ms = sorted(1000 * x for x in r.evaluate_s)
    med = statistics.median(ms) if ms else float("nan")
    p99 = ms[int(0.99 * (len(ms) - 1))] if ms else float("nan")
    return (
        f"{name}: {r.readings:,} readings, {r.evaluations:,} evaluations "
        f"(median {med:.1f} ms, p99 {p99:.1f} ms), writes {r.write_s:.1f} s, "
        f"{len(r.transitions):,} transitions, {r.total_s:.1f} s in all"
    )


def write_csv(path: Path, result: Score) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "kind",
                "meter",
                "start",
                "end",
                "category",
                "rule",
                "detected",
                "by_rule",
                "subject",
                "delay_h",
            ]
        )
        for d in result.detections:
            t = d.truth
            w.writerow(
                [
                    t.kind, t.meter, from_ms(t.start_ms).isoformat(),
                    "" if t.end_ms is None else from_ms(t.end_ms).isoformat(), t.category, t.rule,
                    "" if d.raised is None else from_ms(d.raised.at_ms).isoformat(),
                    "" if d.raised is None else d.raised.alarm.rule,
                    "" if d.raised is None else d.raised.alarm.subject,
                    "" if d.delay_ms is None else f"{d.delay_ms / 3_600_000:.2f}",
                ]
            )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.alarms", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 weeks, one anomaly of each kind")
    p.add_argument("--site", type=Path, default=SITE_FILE)
    p.add_argument(
        "--engine",
        default=DEFAULT_ENGINE,
        help="MODULE:FUNCTION (site, store) -> (evaluate, lifecycle)",
    )
    p.add_argument("--seed", type=int, default=0, help="simulator and placement seed")
    p.add_argument(
        "--per-kind", type=int, default=None, help="anomalies of each kind (8; quick: 1)"
    )
    p.add_argument(
        "--interval", default="15m", choices=list(INTERVALS), help="history grid and poll interval"
    )
    p.add_argument("--step", type=int, default=15, help="minutes between evaluations (15)")
    p.add_argument(
        "--warmup-days",
        type=int,
        default=None,
        help="history written before the span (365; quick: 7)",
    )
    p.add_argument("--no-clean", action="store_true", help="skip the year without anomalies")
    p.add_argument(
        "--csv", type=Path, default=None, help="write each anomaly and its detection here"
    )
    args = p.parse_args(argv)  # fmt: skip

    site = bench_site(args.site, args.interval)
    factory = load_engine(args.engine)
    first, last = QUICK_SPAN if args.quick else SPAN
    per_kind = args.per_kind if args.per_kind is not None else (1 if args.quick else 8)
    warmup = args.warmup_days if args.warmup_days is not None else (7 if args.quick else 365)
    start, end = _local_midnight(site, first), _local_midnight(site, last)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    anomalies = draw_anomalies(site, start_ms, end_ms, per_kind=per_kind, seed=args.seed)
    truths = truth_table(site, anomalies)
    months = (last - first).days / (365.2425 / 12)
    meter_months = len(site.meters) * months
    print(
        f"alarm detection, {site.site.id} ({len(site.meters)} meters), {first} to {last} "
        f"(seed {args.seed}), {len(truths)} anomalies, history every {args.interval}, "
        f"evaluated every {args.step} min, engine {args.engine}"
    )
    if args.engine == DEFAULT_ENGINE:
        print("  (the stand-in engine: three trivial rules, not the real ones)")
    workdir = Path(tempfile.mkdtemp(prefix="epcmon-bench-alarms-"))

    def go(name: str, injected: tuple[Anomaly, ...]) -> Replay:
        return run(
            site, factory, start=start, end=end, warmup_start=start - timedelta(days=warmup),
            interval=args.interval, step_ms=args.step * 60_000, seed=args.seed,
            anomalies=injected, workdir=workdir, name=name,
        )  # fmt: skip

    try:
        with_anomalies = go("anomalies", anomalies)
        clean = None if args.no_clean else go("clean", ())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(" " * 40, end="\r", file=sys.stderr)
    result = score(truths, with_anomalies.transitions, meter_months=meter_months)
    clean_result = (
        None if clean is None else score((), clean.transitions, meter_months=meter_months)
    )
    for line in report(result, clean_result):
        print(line)
    print(_timing("with anomalies", with_anomalies))
    if clean is not None:
        print(_timing("without", clean))
    if args.csv is not None:
        write_csv(args.csv, result)
        print(f"detections -> {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

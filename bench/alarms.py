"""How well the alarm engine catches what goes wrong: detection against the simulators' truth.

    .venv/bin/python -m bench.alarms                      # the reference site, a year
    .venv/bin/python -m bench.alarms --days 7 --per-kind 1   # a smoke run (the test's)
    .venv/bin/python -m bench.alarms --fine-everywhere    # every rule at every grid step

Over a simulated year of the reference site (`sites/luan-admin-center.toml`, from 2025-07-01
local), anomalies of every kind (`--per-kind` each, 8: 56 in all) are placed at random by seed
(`simulators.anomaly_draw`) and played by the simulators: a leak, a chiller or heat pump left
on over a weekend or holiday, a department's base load stepping up, a demand peak at an
incomer, a meter going silent, a counter reset, an implausible jump. The history (every
`--interval`, 15 min, with `--warmup-days` before the span: the rules' reference window) is
written to a DuckDB store as the collectors would write it, then the real engine
(`alarms.engine.AlarmEngine`: the site file's `[alarms]` rules, the life cycle, an alarm
store) is stepped through the span as `epcmon run` steps it, one instant after another, each
seeing nothing after its instant (`AlarmEngine.prefetch`, then `step(now)`: the engine's own
replay mode). The same year is then replayed without anomalies; both run at once (`--jobs`).

The service evaluates every rule every `[alarms] every_s` (60 s). A year of that is half a
million evaluations; the benchmark makes about 9,300 (`instants`):

- at every whole hour, the rules that judge hours (`out_of_hours`, `night_water_flow`,
  `plant_no_demand`) and the data and capacity rules. The consumption rules judge completed
  hours only, so their verdicts cannot change between two whole hours (no reading arrives
  late here). Counter resets and jumps stay raised for an hour (`hold_s`), so an hourly
  evaluation sees every one, and the silences drawn last two hours or more;
- once a day, the rules that judge a whole day or night: `daily_use` at local midnight (the
  day it judges has just ended), `base_load` at the night's end. The service re-judges the
  same day every minute against a reference window that slides by the hour, which could flip
  a borderline verdict within the day; the benchmark's verdict is the one at the day's end;
- at every grid step (the readings arrive every `--interval`), the data and capacity rules
  for `ZOOM_MS` after each injected data or capacity anomaly starts: their time to detection
  is measured to the step, not the hour (elsewhere a data alarm would be seen up to an hour
  late; on the span without anomalies there is nothing to time).

`--fine-everywhere` evaluates every rule at every step (four times as many evaluations, each
of every rule), the check that the shortcut changes nothing: `--days 10 --per-kind 2` gave
the same detections and delays, and the same 57 and 4 transitions, both ways.

The whole run (both years, two processes) took 19 min on a busy 2-core machine, 10.5 min of
CPU (median 95 ms an evaluation): about 6 min on two quiet cores. `--days 7` is the smoke
test's run (under a minute).
A subject a rule does not judge at an instant keeps its state in the life cycle.

Printed beside the targets (issue 15): the share of anomalies detected (≥ 95 %), the median
time to detection of data and capacity alarms (≤ 1 h) and of consumption anomalies (≤ 1 day),
and false alarms per meter-month on the year without anomalies (≤ 0.1); scoring in
`bench.alarm_scoring`. No contract baseline is stored here (no recompute runs), so the rules
judge meters against their own history and no contract boundary.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from multiprocessing import get_context
from pathlib import Path

from alarms.engine import AlarmEngine
from alarms.model import Category, Transition
from alarms.rules import REGISTRY
from alarms.store import AlarmStore
from bench.alarm_scoring import Score, report, score
from core.config import Anomaly, SiteConfig, load_site
from core.readings import from_ms
from simulators.anomalies import Truth, truth_table
from simulators.anomaly_draw import draw_anomalies
from simulators.faults import FaultPlan
from simulators.history import INTERVALS, iter_history
from simulators.model import SiteModel
from storage.duckdb_store import DuckDBStore

REPO = Path(__file__).resolve().parents[1]
SITE_FILE = REPO / "sites" / "luan-admin-center.toml"
FIRST_DAY = date(2025, 7, 1)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
CHUNK_MS = 28 * DAY_MS
"""The stretch prefetched at once (the engine's window holds it and the reference before it)."""
ZOOM_MS = 6 * HOUR_MS
"""How long after a data or capacity anomaly starts its rules are evaluated at every step."""
FAST_RULES = frozenset(
    name for name, r in REGISTRY.items() if r.category in (Category.DATA, Category.CAPACITY)
)


class _Quiet:
    """A dispatcher that delivers nothing (the transitions are scored, not sent)."""

    def dispatch(self, transitions: list[Transition]) -> None:
        del transitions


@dataclass
class Replay:
    """What one replay did and how long it took."""

    name: str
    transitions: list[Transition] = field(default_factory=list)
    readings: int = 0
    evaluations: int = 0
    evaluate_s: list[float] = field(default_factory=list)
    write_s: float = 0.0
    total_s: float = 0.0
    peak_load: dict[str, float] = field(default_factory=dict)
    """Each transformer's highest 15-minute load over the span, as a share of its rating."""


def daily_hours(site: SiteConfig) -> dict[str, int]:
    """The rules judged once a day, and the local hour they are: `daily_use` when the day it
    judges has ended (midnight), `base_load` when the night it judges has (its end)."""
    return {"daily_use": 0, "base_load": site.alarms.night_hours[1] % 24}


def instants(
    site: SiteConfig,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    zoom: Sequence[tuple[int, int]],
    everywhere: bool,
) -> list[tuple[int, frozenset[str] | None]]:
    """The instants of (start, end] the engine is stepped at, each with the rules evaluated
    then (None: every rule)."""
    daily = daily_hours(site)
    hourly = frozenset(REGISTRY) - daily.keys()
    by_hour = {h: hourly | {r for r, at in daily.items() if at == h} for h in range(24)}
    out: list[tuple[int, frozenset[str] | None]] = []
    now = start_ms + step_ms
    while now <= end_ms:
        if everywhere:
            out.append((now, None))
        elif now % HOUR_MS == 0:
            out.append((now, by_hour[from_ms(now).astimezone(site.site.tz).hour]))
        elif any(a <= now < b for a, b in zoom):
            out.append((now, FAST_RULES))
        now += step_ms
    return out


def zoom_windows(truths: Sequence[Truth]) -> list[tuple[int, int]]:
    return [(t.start_ms, t.start_ms + ZOOM_MS) for t in truths if t.category != "consumption"]


def write_history(
    site: SiteConfig,
    store: DuckDBStore,
    start: datetime,
    end: datetime,
    *,
    interval: str,
    seed: int,
    anomalies: tuple[Anomaly, ...],
    out: Replay,
) -> None:
    """The site's history with the anomalies, as the collectors would have stored it."""
    plan = FaultPlan(seed=seed, anomalies=anomalies)
    model = SiteModel(site, seed, plan.anomalies)
    for part in iter_history(
        site, start, end, interval=interval, seed=seed, faults=plan, model=model
    ):
        t = time.perf_counter()
        store.write(part.readings)
        out.write_s += time.perf_counter() - t
        out.readings += len(part.readings)


def replay(
    engine: AlarmEngine,
    start_ms: int,
    end_ms: int,
    *,
    step_ms: int,
    zoom: Sequence[tuple[int, int]] = (),
    everywhere: bool = False,
    out: Replay,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Step the engine through (start, end]: a stretch of `CHUNK_MS` prefetched at a time,
    then `engine.step(now, rules)` at each instant (`instants`)."""
    todo = instants(engine.site, start_ms, end_ms, step_ms, zoom, everywhere)
    i = 0
    while i < len(todo):
        chunk_end = min(todo[i][0] + CHUNK_MS, end_ms + 1)
        engine.prefetch(todo[i][0], chunk_end)
        while i < len(todo) and todo[i][0] < chunk_end:
            now, rules = todo[i]
            t = time.perf_counter()
            out.transitions += engine.step(now, rules)
            out.evaluate_s.append(time.perf_counter() - t)
            out.evaluations += 1
            i += 1
        if progress is not None:
            progress(chunk_end)


def peak_load(site: SiteConfig, store: DuckDBStore, start_ms: int, end_ms: int) -> dict[str, float]:
    """Each rated incomer's highest 15-minute mean power over the span / its rated kVA."""
    from storage.base import Agg, Every

    out = {}
    for meter, kva in site.alarms.rules.transformer_load.rated_kva.items():
        s = store.aggregate(meter, "power", start_ms, end_ms, Every(15, "m"), Agg.MEAN)
        out[meter] = float(s.value.max()) / kva if len(s) else float("nan")
    return out


@dataclass(frozen=True)
class Job:
    name: str
    site_file: Path
    start: datetime
    end: datetime
    warmup_days: int
    interval: str
    seed: int
    anomalies: tuple[Anomaly, ...]
    everywhere: bool
    workdir: Path


def run_job(job: Job) -> Replay:
    """One replay on a fresh store, a fresh engine and a fresh alarm store."""
    began = time.perf_counter()
    site = load_site(job.site_file)
    out = Replay(job.name)
    store = DuckDBStore(job.workdir / f"{job.name}.duckdb")
    try:
        write_history(
            site, store, job.start - timedelta(days=job.warmup_days), job.end,
            interval=job.interval, seed=job.seed, anomalies=job.anomalies, out=out,
        )  # fmt: skip
        start_ms, end_ms = int(job.start.timestamp() * 1000), int(job.end.timestamp() * 1000)
        engine = AlarmEngine(site, store, AlarmStore(":memory:"), dispatcher=_Quiet())
        truths = truth_table(site, job.anomalies)

        def say(at_ms: int) -> None:
            day = from_ms(min(at_ms, end_ms)).astimezone(site.site.tz)
            print(f"  {job.name}: {day:%Y-%m-%d}", file=sys.stderr, flush=True)

        replay(
            engine, start_ms, end_ms, step_ms=INTERVALS[job.interval] * 60_000,
            zoom=zoom_windows(truths), everywhere=job.everywhere, out=out, progress=say,
        )  # fmt: skip
        out.peak_load = peak_load(site, store, start_ms, end_ms)
    finally:
        store.close()
    out.total_s = time.perf_counter() - began
    return out


def _timing(r: Replay) -> str:
    ms = sorted(1000 * x for x in r.evaluate_s)
    med = statistics.median(ms) if ms else float("nan")
    p99 = ms[int(0.99 * (len(ms) - 1))] if ms else float("nan")
    return (
        f"{r.name}: {r.readings:,} readings written in {r.write_s:.0f} s, "
        f"{r.evaluations:,} evaluations (median {med:.0f} ms, p99 {p99:.0f} ms), "
        f"{len(r.transitions):,} transitions, {r.total_s:.0f} s in all"
    )


def write_csv(path: Path, result: Score) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["kind", "meter", "start", "end", "category", "rule", "detected", "by_rule",
                    "subject", "delay_h"])  # fmt: skip
        for d in result.detections:
            t = d.truth
            w.writerow(
                [
                    t.kind, t.meter, from_ms(t.start_ms).isoformat(),
                    "" if t.end_ms is None else from_ms(t.end_ms).isoformat(), t.category, t.rule,
                    "" if d.raised is None else from_ms(d.raised.at_ms).isoformat(),
                    "" if d.raised is None else d.raised.alarm.rule,
                    "" if d.raised is None else d.raised.alarm.subject,
                    "" if d.delay_ms is None else f"{d.delay_ms / HOUR_MS:.2f}",
                ]
            )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.alarms", description=__doc__.splitlines()[0])
    p.add_argument("--site", type=Path, default=SITE_FILE)
    p.add_argument("--days", type=int, default=365, help="the span, from 2025-07-01 (365)")
    p.add_argument("--per-kind", type=int, default=8, help="anomalies of each kind (8)")
    p.add_argument("--seed", type=int, default=0, help="simulator and placement seed")
    p.add_argument("--interval", default="15m", choices=list(INTERVALS), help="history grid")
    p.add_argument(
        "--warmup-days",
        type=int,
        default=35,
        help="history before the span (35: the rules' 28-day reference and more)",
    )
    p.add_argument(
        "--fine-everywhere",
        action="store_true",
        help="every rule at every grid step (slow; the shortcut's check)",
    )
    p.add_argument("--no-clean", action="store_true", help="skip the span without anomalies")
    p.add_argument("--jobs", type=int, default=2, help="replays run at once (2)")
    p.add_argument("--csv", type=Path, default=None, help="each anomaly and its detection")
    args = p.parse_args(argv)  # fmt: skip
    if args.days < 1 or args.per_kind < 0 or args.warmup_days < 0 or args.jobs < 1:
        p.error("--days and --jobs must be positive, --per-kind and --warmup-days not negative")

    began = time.perf_counter()
    site = load_site(args.site)
    start = datetime.combine(FIRST_DAY, dtime(0), tzinfo=site.site.tz)
    end = start + timedelta(days=args.days)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    anomalies = draw_anomalies(site, start_ms, end_ms, per_kind=args.per_kind, seed=args.seed)
    truths = truth_table(site, anomalies)
    meter_months = len(site.meters) * args.days / (365.2425 / 12)
    print(
        f"alarm detection, {site.site.id} ({len(site.meters)} meters), {start:%Y-%m-%d} + "
        f"{args.days} days (seed {args.seed}), {len(truths)} anomalies, history every "
        f"{args.interval} after {args.warmup_days} days of warm-up, "
        + ("every rule at every step" if args.fine_everywhere else "evaluated hourly and "
           f"every {args.interval} for {ZOOM_MS // HOUR_MS} h after a data or capacity anomaly")
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="epcmon-bench-alarms-") as tmp:
        jobs = [
            Job(name, args.site, start, end, args.warmup_days, args.interval, args.seed,
                injected, args.fine_everywhere, Path(tmp))
            for name, injected in (("anomalies", anomalies), ("clean", ()))
            if not (name == "clean" and args.no_clean)
        ]  # fmt: skip
        if args.jobs > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(min(args.jobs, len(jobs)), get_context("spawn")) as pool:
                done = list(pool.map(run_job, jobs))
        else:
            done = [run_job(j) for j in jobs]
    with_anomalies = done[0]
    clean = done[1] if len(done) > 1 else None
    result = score(truths, with_anomalies.transitions, meter_months=meter_months)
    clean_result = (
        None if clean is None else score((), clean.transitions, meter_months=meter_months)
    )
    for line in report(result, clean_result):
        print(line)
    if clean is not None:
        loads = ", ".join(f"{m} {v:.0%}" for m, v in sorted(clean.peak_load.items()))
        print(f"highest 15-minute transformer load without anomalies (warning at 95 %): {loads}")
    for r in done:
        print(_timing(r))
    print(f"whole benchmark: {time.perf_counter() - began:.0f} s")
    if args.csv is not None:
        write_csv(args.csv, result)
        print(f"detections -> {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

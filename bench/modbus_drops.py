"""Benchmark: polls that succeed when a gateway drops connections, beside the target.

    .venv/bin/python -m bench.modbus_drops          # 40 meters, 300 cycles, median of 3 runs
    .venv/bin/python -m bench.modbus_drops --quick  # 10 meters, 30 cycles, 1 run

Two simulated gateways (in a child process, so the simulator does not share the poller's
event loop), each with the same 40 meters in the reference site's mix of profiles: one that
behaves (the anchor) and one that closes the connection on 15 % of the requests it receives
(`[simulation.gateway_faults] drop_rate = 0.15`). One `GatewayPoller` per gateway, one after
the other, polls every meter back to back for a few hundred cycles; a poll succeeds when the
meter's readings are in its cycle's batch. Each run draws other drops (the fault plan's seed
is the run's number); the figure is the median of the runs.
Target (issue 12): with 15 % of connections dropped, >= 95 % of polls succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.poll_modbus import gateway_id, profiles_for, serve_in_child, site_for

DROP_RATE = 0.15
TARGET = 0.95


@dataclass(frozen=True)
class Run:
    polls: int
    succeeded: int
    requests: int
    drops: int
    reconnects: int
    cycle_s: float
    """Median wall time of one cycle."""

    @property
    def rate(self) -> float:
        return self.succeeded / self.polls


async def _poll(port_index: int, ports: list[int], per_gateway: int, cycles: int) -> Run:
    from collectors.availability import Availability
    from collectors.modbus.poller import GatewayPoller
    from core.readings import ReadingBatch

    site = site_for(ports, per_gateway)
    gateway = site.gateways_by_id[gateway_id(port_index)]
    meters = [m for m in site.meters if m.modbus and m.modbus.gateway == gateway.id]
    availability = Availability()

    async def sink(_batch: ReadingBatch) -> None:
        return None

    poller = GatewayPoller(gateway, meters, sink, availability)
    succeeded = 0
    times = []
    try:
        for _ in range(cycles):
            t0 = time.perf_counter()
            batch = await poller.poll_cycle()
            times.append(time.perf_counter() - t0)
            succeeded += len({r.meter_id for r in batch})
    finally:
        poller.client.close()
    c = availability.counters
    return Run(
        cycles * len(meters),
        succeeded,
        c["modbus_requests"],
        c["modbus_drops"],
        c["modbus_reconnects"],
        statistics.median(times),
    )


class _Count(logging.Handler):
    """Counts the log lines the pollers write (the operator's view: INFO and up)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += 1


def run(per_gateway: int, cycles: int, runs: int) -> tuple[list[Run], list[Run], int]:
    """(anchor runs, dropping runs, log lines written by the dropping runs)."""
    from core.config import GatewayFaults
    from simulators.faults import FaultPlan

    clean: list[Run] = []
    dropping: list[Run] = []
    names = profiles_for(per_gateway)
    counter = _Count()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for seed in range(runs):
        plan = FaultPlan(seed=seed, gateways={gateway_id(1): GatewayFaults(drop_rate=DROP_RATE)})
        with serve_in_child([names, names], plan) as ports:
            clean.append(asyncio.run(_poll(0, ports, per_gateway, cycles)))
            root.addHandler(counter)
            try:
                dropping.append(asyncio.run(_poll(1, ports, per_gateway, cycles)))
            finally:
                root.removeHandler(counter)
    return clean, dropping, counter.lines


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="python -m bench.modbus_drops", description=doc.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="10 meters, 30 cycles, 1 run")
    parser.add_argument("--meters", type=int, default=40, help="meters on each gateway")
    parser.add_argument("--cycles", type=int, default=300, help="cycles per run")
    parser.add_argument("--runs", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    meters, cycles, runs = (10, 30, 1) if args.quick else (args.meters, args.cycles, args.runs)
    print(
        f"epcmon Modbus drop benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} cores; {meters} meters on a gateway, {cycles} cycles back to back, "
        f"median of {runs} run{'s' if runs > 1 else ''}"
        f"{', QUICK sizes (figures not comparable)' if args.quick else ''}"
    )
    clean, dropping, lines = run(meters, cycles, runs)

    def pct(rs: list[Run]) -> float:
        return 100 * statistics.median(r.rate for r in rs)

    def dropped(rs: list[Run]) -> float:
        return 100 * statistics.median(r.drops / max(1, r.requests) for r in rs)

    def cycle_ms(rs: list[Run]) -> float:
        return 1000 * statistics.median(r.cycle_s for r in rs)

    met = pct(dropping) >= 100 * TARGET
    verdict = "n/a" if args.quick else ("ok" if met else "MISSED")
    rate = f"{100 * DROP_RATE:.0f} %"
    rows = [
        (
            f"polls succeeded, 0 % of connections dropped ({clean[0].polls:,} polls a run)",
            f"{pct(clean):.2f} %",
            "anchor",
            "",
        ),
        (
            f"polls succeeded, {rate} dropped ({dropped(dropping):.1f} % of requests "
            f"measured, {statistics.median(r.reconnects for r in dropping):.0f} reconnects)",
            f"{pct(dropping):.2f} %",
            f">= {100 * TARGET:.0f} %",
            verdict,
        ),
        (
            "  per run",
            ", ".join(f"{100 * r.rate:.2f} %" for r in dropping),
            "-",
            "",
        ),
        (
            f"median cycle time, 0 % / {rate} dropped",
            f"{cycle_ms(clean):.1f} / {cycle_ms(dropping):.1f} ms",
            "-",
            "",
        ),
        (
            f"log lines written while {rate} were dropped, all runs",
            f"{lines}",
            "a handful",
            "",
        ),
    ]
    print()
    width = max(len(r[0]) for r in rows)
    fig = max(len(r[1]) for r in rows)
    tgt = max(len(r[2]) for r in rows)
    print(f"{'measure':<{width}}  {'figure':>{fig}}  {'target':<{tgt}}  verdict")
    for m, f, t, v in rows:
        print(f"{m:<{width}}  {f:>{fig}}  {t:<{tgt}}  {v}")
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())

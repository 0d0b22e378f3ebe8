"""Benchmark of the Modbus poller: one full poll cycle of many meters, beside its target.

    .venv/bin/python -m bench.poll_modbus          # 1,000 meters behind 10 gateways
    .venv/bin/python -m bench.poll_modbus --quick  # 100 meters behind 10 gateways

The simulated gateways (each meter a mix of the 7 profiles, like the reference site) run in a
child process, so the simulator's CPU does not share the poller's event loop. The parent runs
one `GatewayPoller` per gateway, concurrently, as `epcmon run` does: one connection per
gateway, requests serialised on it. After a warm-up cycle (connection, configuration
registers, identification), it measures one full cycle's wall time and the requests per
meter; then the same with the naive plan, one request per register field.
Target (issue 9): a cycle of 1,000 meters in <= 15 s with <= 2 requests per meter.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import SiteConfig
    from simulators.faults import FaultPlan

GATEWAYS = 10
# per 100 meters, roughly the reference site's mix of profiles
MIX = (
    ("chint-dtsu666", 36),
    ("acrel-adw300", 30),
    ("eastron-sdm630", 20),
    ("xintai-water", 6),
    ("acrel-dtsd1352", 4),
    ("belimo-energy-valve", 3),
    ("tuf2000m", 1),
)
PT, CT = 10.0, 40.0
CYCLE_TARGET_S = 15.0
REQUESTS_TARGET = 2.0


@dataclass(frozen=True)
class Row:
    measure: str
    figure: str
    target: str
    verdict: str


def profiles_for(per_gateway: int) -> list[str]:
    """`per_gateway` profile names in the site's proportions (largest remainders)."""
    total = sum(n for _, n in MIX)
    exact = [(name, per_gateway * n / total) for name, n in MIX]
    counts = {name: int(x) for name, x in exact}
    rest = per_gateway - sum(counts.values())
    for name, _x in sorted(exact, key=lambda e: e[1] - int(e[1]), reverse=True)[:rest]:
        counts[name] += 1
    return [name for name, _ in MIX for _ in range(counts[name])]


def plausible_values(profile_name: str) -> dict[str, float]:
    """A value inside each quantity's range for every field of the profile (canonical units)."""
    from collectors.profiles import get_profile
    from core.quantities import QUANTITIES

    out = {}
    for i, field in enumerate(get_profile(profile_name).fields):
        unit = QUANTITIES[field.quantity].unit.value
        if field.quantity in ("ct_ratio", "pt_ratio"):
            out[field.quantity] = CT if field.quantity == "ct_ratio" else PT
        elif field.quantity.startswith("power_factor") or field.quantity == "valve_position":
            out[field.quantity] = 0.9
        elif unit == "Hz":
            out[field.quantity] = 50.0
        elif unit == "degC":
            out[field.quantity] = 7.0 + i
        elif unit == "MPa":
            out[field.quantity] = 0.32
        else:
            out[field.quantity] = 100.0 + 7 * i
    return out


def gateway_id(index: int) -> str:
    """The id of the index-th gateway, in the site `_site` builds and in `serve_in_child`
    (where it keys the gateway's faults)."""
    return f"gw{index:02d}"


def _ratios(profile_name: str) -> dict[str, float]:
    return {"pt_ratio": PT, "ct_ratio": CT} if profile_name == "acrel-dtsd1352" else {}


def _constant(values: dict[str, float]) -> Callable[[int], dict[str, float]]:
    return lambda _now: values


def _serve(conn: Connection, gateways: list[list[str]], faults: FaultPlan | None) -> None:
    """Child process: the simulated gateways, their ports sent back, until told to stop."""
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from collectors.profiles import get_profile
    from simulators.modbus_server import SimulatedGateway, SimulatedUnit

    values = {name: plausible_values(name) for names in gateways for name in names}

    async def main() -> None:
        servers = [
            SimulatedGateway(
                [
                    SimulatedUnit(
                        unit,
                        get_profile(name),
                        _constant(values[name]),
                        _ratios(name).get("pt_ratio", 1.0),
                        _ratios(name).get("ct_ratio", 1.0),
                    )
                    for unit, name in enumerate(names, start=1)
                ],
                clock=lambda: int(time.time() * 1000),
                faults=faults,
                name=gateway_id(g),
            )
            for g, names in enumerate(gateways)
        ]
        conn.send([await s.start() for s in servers])
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            if msg == "count":
                conn.send(sum(s.requests for s in servers))
            else:
                break
        for s in servers:
            await s.stop()

    asyncio.run(main())


@contextmanager
def serve_in_child(
    gateways: list[list[str]], faults: FaultPlan | None = None
) -> Iterator[list[int]]:
    """Simulated gateways in a child process (spawn), so their CPU does not share the
    caller's event loop: gateway i holds units 1..n of the profiles `gateways[i]` (faults
    keyed `unit-<n>`, the gateway's own `gateway_id(i)`); yields the gateways' loopback ports."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, gateways, faults), daemon=True)
    proc.start()
    try:
        if not parent.poll(60):  # the child died or hangs: say so rather than wait forever
            raise SystemExit(f"the simulated gateways did not start (exit code {proc.exitcode})")
        yield parent.recv()
    finally:
        if proc.is_alive():
            parent.send("stop")
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()


def site_for(ports: list[int], per_gateway: int) -> SiteConfig:
    """Gateways `gateway_id(i)` on `ports`, each with `per_gateway` meters of the mix."""
    from collectors.profiles import get_profile, load_profiles
    from core.config import parse_site

    names = profiles_for(per_gateway)
    return parse_site(
        {
            "site": {"id": "bench", "name": "Bench", "latitude": 31, "longitude": 116},
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
            "gateways": [
                {"id": gateway_id(g), "host": "127.0.0.1", "port": port, "timeout_s": 2.0}
                for g, port in enumerate(ports)
            ],
            "meters": [
                {
                    "id": f"G{g:02d}-U{unit:03d}",
                    "kind": get_profile(name).kind.value,
                    "building": "b",
                    "modbus": {
                        "gateway": gateway_id(g),
                        "unit": unit,
                        "profile": name,
                        **_ratios(name),
                    },
                }
                for g in range(len(ports))
                for unit, name in enumerate(names, start=1)
            ],
        },
        known_profiles=set(load_profiles()),
    )


@dataclass(frozen=True)
class Cycle:
    seconds: float
    requests: int
    readings: int
    meters_up: int


async def _measure(ports: list[int], per_gateway: int, naive: bool) -> tuple[Cycle, int]:
    from collectors.availability import Availability
    from collectors.modbus.plan import split_request
    from collectors.modbus.poller import GatewayPoller
    from core.readings import ReadingBatch

    site = site_for(ports, per_gateway)
    availability = Availability()
    readings = 0

    async def sink(batch: ReadingBatch) -> None:
        nonlocal readings
        readings += len(batch)

    pollers = [
        GatewayPoller(
            gw,
            [m for m in site.meters if m.modbus and m.modbus.gateway == gw.id],
            sink,
            availability,
        )
        for gw in site.gateways
    ]
    if naive:  # one request per register field, nothing merged
        for poller in pollers:
            for plan in poller.plans:
                plan.reads = [part for req in plan.reads for part in split_request(req)]
    try:
        await asyncio.gather(*(p.poll_cycle() for p in pollers))  # warm-up
        before, readings = availability.counters["modbus_requests"], 0
        t0 = time.perf_counter()
        await asyncio.gather(*(p.poll_cycle() for p in pollers))
        seconds = time.perf_counter() - t0
        requests = availability.counters["modbus_requests"] - before
    finally:
        for p in pollers:
            p.client.close()
    up = sum(1 for s in availability.snapshot().values() if s.up)
    return Cycle(seconds, requests, readings, up), len(site.meters)


def run(gateways: int, per_gateway: int, *, quick: bool) -> list[Row]:
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    rows: list[Row] = []

    def verdict(met: bool) -> str:
        return "n/a" if quick else ("ok" if met else "MISSED")

    with serve_in_child([profiles_for(per_gateway)] * gateways) as ports:
        for naive in (False, True):
            cycle, meters = asyncio.run(_measure(ports, per_gateway, naive))
            if cycle.meters_up != meters:
                raise SystemExit(f"only {cycle.meters_up} of {meters} meters answered")
            per_meter = cycle.requests / meters
            label = "naive plan (one request per field)" if naive else "merged plan"
            rows.append(
                Row(
                    f"{meters:,} meters / {gateways} gateways, one cycle, {label}",
                    f"{cycle.seconds:.2f} s",
                    f"<= {CYCLE_TARGET_S:g} s" if not naive else "-",
                    verdict(cycle.seconds <= CYCLE_TARGET_S) if not naive else "",
                )
            )
            rows.append(
                Row(
                    f"  requests per meter ({cycle.readings:,} readings)",
                    f"{per_meter:.2f}",
                    f"<= {REQUESTS_TARGET:g}" if not naive else "-",
                    verdict(per_meter <= REQUESTS_TARGET) if not naive else "",
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(
        prog="python -m bench.poll_modbus", description=doc.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="100 meters: a smoke test")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    per_gateway = 10 if args.quick else 100
    print(
        f"epcmon Modbus poll benchmark: Python {platform.python_version()}, {os.cpu_count()} cores"
        f"{', QUICK sizes (figures not comparable)' if args.quick else ''}"
    )
    rows = run(GATEWAYS, per_gateway, quick=args.quick)
    print()
    width = max(len(r.measure) for r in rows)
    fig = max(len(r.figure) for r in rows)
    tgt = max(len(r.target) for r in rows)
    print(f"{'measure':<{width}}  {'figure':>{fig}}  {'target':<{tgt}}  verdict")
    for r in rows:
        print(f"{r.measure:<{width}}  {r.figure:>{fig}}  {r.target:<{tgt}}  {r.verdict}")
    return 1 if args.strict and any(r.verdict == "MISSED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

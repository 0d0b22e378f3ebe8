"""Issue 9, fault (d): one dead device among 50 on a gateway; the others keep their cadence.

The poller's real `run(stop)` loop polls 50 simulated meters (served from a child process)
every second for ~8 s over one connection (requests serialised, as a serial-to-Ethernet
gateway needs). One unit never answers (the simulator's `offline` fault), so every request to
it costs the whole 0.3 s timeout. The other 49 must keep a 1 s cadence within 10 %, measured
on the timestamps the poller gives their readings (the time each answer arrived); the dead one
has no readings and is reported down. A control run without the dead unit shows the cadence
the loop keeps on its own.

This test found that a probe of the dead unit in the middle of the polling order delayed
every meter behind it by the timeout in each probe cycle (intervals of 0.7 s and 1.3 s); the
poller now polls units that missed their last poll after the ones that answer.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics

from bench.poll_modbus import serve_in_child
from collectors.availability import Availability
from collectors.modbus.poller import GatewayPoller
from collectors.profiles import get_profile, load_profiles
from core.config import MeterFaults, SiteConfig, parse_site
from core.readings import ReadingBatch
from simulators.faults import FaultPlan

UNITS = 50
DEAD_UNIT = 25  # in the middle of the polling order: the meters after it are the ones at risk
PROFILE = "acrel-adw300"
INTERVAL_S = 1.0
TIMEOUT_S = 0.3
RUN_S = 8.0
TOLERANCE = 0.10
MACHINE_STALLS = 1  # intervals per meter allowed outside the tolerance (see _check_cadence)


def _site(port: int) -> SiteConfig:
    return parse_site(
        {
            "site": {"id": "dead", "name": "D", "latitude": 31, "longitude": 116},
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
            "gateways": [{"id": "gw", "host": "127.0.0.1", "port": port, "timeout_s": TIMEOUT_S}],
            "meters": [
                {
                    "id": f"M{unit:02d}",
                    "kind": get_profile(PROFILE).kind.value,
                    "building": "b",
                    "poll_interval_s": int(INTERVAL_S),
                    "modbus": {"gateway": "gw", "unit": unit, "profile": PROFILE},
                }
                for unit in range(1, UNITS + 1)
            ],
        },
        known_profiles=set(load_profiles()),
    )


async def _run(dead: int | None) -> tuple[dict[str, list[int]], Availability]:
    faults = FaultPlan({f"unit-{dead}": MeterFaults(offline=True)} if dead else {})
    # the simulator in its own process: the cadence measured is the poller's, not the
    # poller's and 50 simulated meters' sharing one event loop
    with serve_in_child([[PROFILE] * UNITS], faults) as ports:
        return await _poll(ports[0])


async def _poll(port: int) -> tuple[dict[str, list[int]], Availability]:
    site = _site(port)
    stamps: dict[str, set[int]] = {m.id: set() for m in site.meters}

    async def sink(batch: ReadingBatch) -> None:
        for r in batch:
            stamps[r.meter_id].add(r.ts_ms)

    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), sink, availability)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await asyncio.sleep(RUN_S)
    finally:
        stop.set()
        await task
    return {m: sorted(ts) for m, ts in stamps.items()}, availability


def _check_cadence(stamps: dict[str, list[int]], skip: set[str]) -> tuple[float, float]:
    """Assert every live meter's cadence; return the worst median and worst interval (s)."""
    worst_median, worst = 0.0, 0.0
    for meter, ts in stamps.items():
        if meter in skip:
            continue
        assert len(ts) >= RUN_S - 2, (meter, len(ts))
        # The first interval may include the first connection and the static registers.
        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(ts)][1:]
        median = statistics.median(gaps)
        assert abs(median - INTERVAL_S) <= TOLERANCE * INTERVAL_S, (meter, gaps)
        # One interval may be stretched by the shared machine pausing the whole process (a
        # control run saw 1.28 s once under CI load); the fault this test found disturbed the
        # meters behind the dead one in every probe cycle, which is more than one interval.
        outliers = [g for g in gaps if abs(g - INTERVAL_S) > TOLERANCE * INTERVAL_S]
        assert len(outliers) <= MACHINE_STALLS, (meter, gaps)
        off = (
            sorted(abs(g - INTERVAL_S) for g in gaps)[-1 - len(outliers)]
            if len(gaps) > len(outliers)
            else 0.0
        )
        worst_median = max(worst_median, abs(median - INTERVAL_S))
        worst = max(worst, off)
    return worst_median, worst


async def test_one_dead_device_does_not_disturb_the_others_cadence() -> None:
    stamps, availability = await _run(DEAD_UNIT)
    dead = f"M{DEAD_UNIT:02d}"
    assert stamps[dead] == []
    state = availability.snapshot()[dead]
    assert state.seen
    assert not state.up
    assert "no answer" in state.last_error
    assert availability.counters["modbus_errors"] >= 1
    _check_cadence(stamps, skip={dead})
    snapshot = availability.snapshot()
    assert all(snapshot[m].up for m in stamps if m != dead)


async def test_control_run_without_a_dead_device() -> None:
    stamps, availability = await _run(None)
    _check_cadence(stamps, skip=set())
    assert availability.counters["modbus_errors"] == 0

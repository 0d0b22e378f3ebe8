"""Issue 12: Modbus gateways that misbehave cost one log line and almost no polls.

Real sockets throughout: the poller against simulated gateways on loopback that close the
connection on a request (`drop_rate`) or answer garbage (`garbage_rate`, `garbage`), the
faults of `[simulation.gateway_faults.<gateway id>]`.

Found (and kept here as regression tests):
- a gateway sending garbage flooded the log (pymodbus hex dumps per frame, asyncio
  "Fatal error: protocol.data_received() call failed" tracebacks), and some garbage passed
  for an answer (a wrong function code or byte count);
- a gateway dropping 15 % of its connections lost most polls: one drop ended the bus's
  cycle, and the request in flight waited out the whole timeout first.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from collectors.availability import Availability
from collectors.modbus.poller import DROP_RETRIES, GatewayPoller
from collectors.profiles import get_profile, load_profiles
from core.config import GatewayFaults, SiteConfig, parse_site
from core.readings import ReadingBatch
from simulators.faults import GARBAGE_KINDS, FaultPlan
from simulators.modbus_server import SimulatedGateway, SimulatedUnit
from tests.test_poller import plausible_values

TIMEOUT_S = 0.2


def now_ms() -> int:
    return int(time.time() * 1000)


def site_with(gateways: dict[str, tuple[int, list[str]]], interval_s: int = 1) -> SiteConfig:
    """Gateway id -> (port, profiles of units 1..n); meter ids `<gateway>-U<unit>`."""
    return parse_site(
        {
            "site": {"id": "gwf", "name": "G", "latitude": 31, "longitude": 116},
            "buildings": [{"id": "b", "name": "B", "floor_area_m2": 1}],
            "gateways": [
                {"id": gw, "host": "127.0.0.1", "port": port, "timeout_s": TIMEOUT_S}
                for gw, (port, _) in gateways.items()
            ],
            "meters": [
                {
                    "id": f"{gw}-U{unit}",
                    "kind": get_profile(name).kind.value,
                    "building": "b",
                    "poll_interval_s": interval_s,
                    "modbus": {"gateway": gw, "unit": unit, "profile": name},
                }
                for gw, (_, names) in gateways.items()
                for unit, name in enumerate(names, start=1)
            ],
        },
        known_profiles=set(load_profiles()),
    )


async def start_gateway(name: str, profiles: list[str], plan: FaultPlan) -> SimulatedGateway:
    units = []
    for unit, profile in enumerate(profiles, start=1):
        values = plausible_values(profile)
        units.append(SimulatedUnit(unit, get_profile(profile), lambda _now, v=values: v))
    gateway = SimulatedGateway(units, clock=now_ms, faults=plan, name=name)
    await gateway.start()
    return gateway


class Collect:
    """A sink that keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[ReadingBatch] = []

    async def __call__(self, batch: ReadingBatch) -> None:
        self.batches.append(batch)

    def stamps(self, meter_id: str) -> list[int]:
        return sorted({r.ts_ms for b in self.batches for r in b if r.meter_id == meter_id})


@contextmanager
def operator_logging() -> Iterator[list[logging.LogRecord]]:
    """Every record that reaches the root logger at INFO and above, with pymodbus' logger
    at INFO too (noisier than `epcmon`'s CLI, which sets it to WARNING)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root, pymodbus = logging.getLogger(), logging.getLogger("pymodbus")
    handler = Keep(logging.INFO)
    levels = root.level, pymodbus.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    pymodbus.setLevel(logging.INFO)
    try:
        yield records
    finally:
        gc.collect()  # "exception was never retrieved" is logged when a future is collected
        root.removeHandler(handler)
        root.setLevel(levels[0])
        pymodbus.setLevel(levels[1])


def lines(records: list[logging.LogRecord]) -> list[str]:
    return [f"{r.name} {r.levelname}: {r.getMessage()}" for r in records]


async def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)  # the pollers run meanwhile; look again
    return bool(condition())


# ------------------------------------------------------------------ garbage


async def test_a_gateway_sending_garbage_costs_a_handful_of_log_lines_not_one_a_frame():
    """Garbage of every kind on every answer of one gateway for ~4 s, then clean answers;
    a second gateway beside it is fine. Both pollers run their real `run(stop)` loops."""
    bad_profiles = ["chint-dtsu666", "acrel-adw300", "eastron-sdm630"]
    good_profiles = ["chint-dtsu666", "acrel-adw300", "xintai-water"]
    garbage_until = now_ms() + 4_000
    plan = FaultPlan(
        gateways={"bad": GatewayFaults(garbage_rate=1.0, garbage="any", until_ms=garbage_until)}
    )
    bad = await start_gateway("bad", bad_profiles, plan)
    good = await start_gateway("good", good_profiles, FaultPlan())
    with operator_logging() as records:  # the poller's lines, not the simulator's
        site = site_with({"bad": (bad.port, bad_profiles), "good": (good.port, good_profiles)})
        availability = Availability()
        sink = Collect()
        pollers = [
            GatewayPoller(
                gw, [m for m in site.meters if m.modbus and m.modbus.gateway == gw.id], sink,
                availability,
            )
            for gw in site.gateways
        ]  # fmt: skip
        stop = asyncio.Event()
        tasks = [asyncio.create_task(p.run(stop)) for p in pollers]
        try:
            recovered = await wait_until(
                lambda: any("behaves again" in r.getMessage() for r in records), timeout=15
            )
            assert not any(t.done() for t in tasks), "a poller died"
        finally:
            stop.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await bad.stop()
            await good.stop()
    assert results == [None, None]
    said = lines(records)
    garbage = sum(n for k, n in bad.injected.items() if k.startswith("garbage_"))
    assert garbage >= 9, bad.injected  # 3 meters, 3 cycles or more
    assert recovered, said
    # one line when it starts, one when it is fine again, and each of its meters down and
    # back once: bounded by the meters, not by the frames
    assert len([s for s in said if "misbehaves" in s]) == 1, said
    assert len([s for s in said if "behaves again" in s]) == 1, said
    assert len(said) <= 2 + 2 * len(bad_profiles), said
    assert not [s for s in said if s.startswith(("pymodbus", "asyncio"))], said
    assert availability.counters["modbus_bad_frames"] >= garbage
    # the meters behind the bad gateway are polled again once it behaves
    for unit in range(1, len(bad_profiles) + 1):
        assert any(ts > garbage_until for ts in sink.stamps(f"bad-U{unit}")), unit
        assert availability.snapshot()[f"bad-U{unit}"].up
    # the good gateway's meters kept a 1 s cadence throughout
    for unit in range(1, len(good_profiles) + 1):
        ts = sink.stamps(f"good-U{unit}")
        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(ts)][1:]
        assert len(gaps) >= 5, ts
        assert statistics.median(gaps) == pytest.approx(1.0, abs=0.1), gaps
        assert max(abs(g - 1.0) for g in gaps) <= 0.25, gaps


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
async def test_each_kind_of_garbage_is_a_bad_answer_for_that_meter(kind):
    """Never taken for an answer, never an escape; cheap (no timeout) where the frame says
    at once that it is not the answer; the connection works again afterwards."""
    profiles = ["chint-dtsu666", "acrel-adw300"]
    plan = FaultPlan(gateways={"gw": GatewayFaults(garbage_rate=1.0, garbage=kind)})
    gateway = await start_gateway("gw", profiles, plan)
    site = site_with({"gw": (gateway.port, profiles)})
    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), Collect(), availability)
    try:
        await poller.poll_cycle()  # connects, reads the configuration registers
        t0 = time.monotonic()
        batch = await poller.poll_cycle()
        took = time.monotonic() - t0
        assert len(batch) == 0
        assert availability.counters["modbus_bad_frames"] >= 2 * len(profiles)
        if kind != "truncated":  # a truncated frame may still be completed: that one waits
            assert took < TIMEOUT_S, took
        gateway.faults = FaultPlan()
        batch = await poller.poll_cycle()
        assert {r.meter_id for r in batch} == {"gw-U1", "gw-U2"}
    finally:
        poller.client.close()
        await gateway.stop()


async def test_cycles_that_overrun_their_interval_are_one_line_not_one_a_cycle():
    """Found running `epcmon run` against a garbage gateway: truncated answers cost a timeout
    each, the cycles overran their 1 s interval, and each overrun was a log line."""
    profiles = ["xintai-water"] * 3  # 3 truncated answers x 0.4 s: every cycle overruns
    plan = FaultPlan(gateways={"gw": GatewayFaults(garbage_rate=1.0, garbage="truncated")})
    gateway = await start_gateway("gw", profiles, plan)
    site = site_with({"gw": (gateway.port, profiles)})
    gw = site.gateways[0].model_copy(update={"timeout_s": 0.4})
    availability = Availability()
    with operator_logging() as records:
        poller = GatewayPoller(gw, list(site.meters), Collect(), availability)
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        try:
            overran = await wait_until(
                lambda: availability.counters["modbus_cycle_overruns"] >= 3, timeout=15
            )
        finally:
            stop.set()
            await task
            await gateway.stop()
    assert overran, dict(availability.counters)
    said = lines(records)
    assert len([s for s in said if "longer than its 1s interval" in s]) == 1, said
    assert len(said) <= 2 + len(profiles), said  # misbehaves, overruns, meters down


def test_pymodbus_speaks_again_when_an_operator_sets_its_logger_to_debug():
    from pymodbus.logging import Log

    from collectors.modbus.poller import quiet_pymodbus

    quiet_pymodbus()
    quiet_pymodbus()  # idempotent: one filter
    logger = logging.getLogger("pymodbus.logging")
    assert len([f for f in logger.filters if type(f).__name__ == "_PymodbusFilter"]) == 1
    with operator_logging() as records:
        Log.error("a frame pymodbus did not like ({})", 1)
        Log.critical("pymodbus cannot go on ({})", 2)
        logging.getLogger("pymodbus").setLevel(logging.DEBUG)
        Log.error("a frame pymodbus did not like ({})", 3)
    said = lines(records)
    assert [s.split(":", 1)[1].split("\n")[0] for s in said] == [
        " pymodbus cannot go on (2)",
        " a frame pymodbus did not like (3)",
    ], said


# ------------------------------------------------------------------ dropped connections


async def test_with_15_percent_of_connections_dropped_95_percent_of_polls_succeed():
    profiles = ["chint-dtsu666", "acrel-adw300", "eastron-sdm630", "xintai-water"] * 5
    plan = FaultPlan(gateways={"gw": GatewayFaults(drop_rate=0.15)})
    gateway = await start_gateway("gw", profiles, plan)
    site = site_with({"gw": (gateway.port, profiles)})
    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), Collect(), availability)
    cycles = 25
    ok = 0
    try:
        t0 = time.monotonic()
        for _ in range(cycles):
            batch = await poller.poll_cycle()
            ok += len({r.meter_id for r in batch})
        took = time.monotonic() - t0
    finally:
        poller.client.close()
        await gateway.stop()
    assert gateway.injected["drop"] >= 50  # the faults were there
    assert ok / (cycles * len(profiles)) >= 0.95, (ok, dict(availability.counters))
    assert availability.counters["modbus_connect_failures"] == 0  # no backoff after a drop
    assert took < cycles * TIMEOUT_S  # a drop is noticed at once, not after the timeout


async def test_a_dropped_request_is_retried_on_a_new_connection_without_backoff():
    profiles = ["chint-dtsu666", "xintai-water"]
    plan = FaultPlan(gateways={"gw": GatewayFaults(drop_rate=1.0)})
    gateway = await start_gateway("gw", profiles, plan)
    site = site_with({"gw": (gateway.port, profiles)})
    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), Collect(), availability)
    try:
        t0 = time.monotonic()
        assert len(await poller.poll_cycle()) == 0
        assert time.monotonic() - t0 < TIMEOUT_S
        # each meter: its request, dropped; twice more on a new connection, dropped again;
        # the second meter is asked all the same
        tries = 1 + DROP_RETRIES
        assert gateway.injected["drop"] == tries * len(profiles)
        assert availability.counters["modbus_retries_after_drop"] == DROP_RETRIES * len(profiles)
        # two cycles lost to the gateway are not yet a meter down; the third is
        assert "gw-U1" not in availability.snapshot()
        await poller.poll_cycle()
        assert "gw-U1" not in availability.snapshot()
        await poller.poll_cycle()
        assert not availability.snapshot()["gw-U1"].up
        assert "closed the connection" in availability.snapshot()["gw-U1"].last_error
        assert gateway.injected["drop"] == 3 * tries * len(profiles)  # never skipped
        gateway.faults = FaultPlan()
        batch = await poller.poll_cycle()  # at once: no connect backoff after drops
        assert {r.meter_id for r in batch} == {"gw-U1", "gw-U2"}
        assert availability.counters["modbus_connect_failures"] == 0
    finally:
        poller.client.close()
        await gateway.stop()


async def test_the_backoff_follows_a_failed_connect():
    profiles = ["xintai-water"]
    gateway = await start_gateway("gw", profiles, FaultPlan())
    port = gateway.port
    await gateway.stop()  # nothing listens there now: connecting is refused
    site = site_with({"gw": (port, profiles)})
    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), Collect(), availability)
    try:
        await poller.poll_cycle()
        await poller.poll_cycle()
    finally:
        poller.client.close()
    assert availability.counters["modbus_connect_failures"] == 1  # the second waits
    assert "unreachable" in availability.snapshot()["gw-U1"].last_error


# ------------------------------------------------------------------ restartable


async def test_run_can_be_called_again_after_it_raised():
    profiles = ["xintai-water"]
    gateway = await start_gateway("gw", profiles, FaultPlan())
    site = site_with({"gw": (gateway.port, profiles)})
    availability = Availability()
    calls = 0
    kept: list[ReadingBatch] = []

    async def sink(batch: ReadingBatch) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the writer broke")
        kept.append(batch)

    poller = GatewayPoller(site.gateways[0], list(site.meters), sink, availability)
    stop = asyncio.Event()
    try:
        with pytest.raises(RuntimeError, match="the writer broke"):
            await asyncio.wait_for(poller.run(stop), timeout=5)
        task = asyncio.create_task(poller.run(stop))  # what the supervisor does
        assert await wait_until(lambda: len(kept) >= 2, timeout=5)
        stop.set()
        await task
    finally:
        poller.client.close()
        await gateway.stop()
    assert {r.meter_id for r in kept[-1]} == {"gw-U1"}


async def test_a_gateway_going_away_is_one_line_for_its_meters_and_one_when_back():
    """Twenty meters behind a gateway that goes away: one line saying so, not twenty, and one
    when they are back."""
    profiles = ["chint-dtsu666"] * 20
    gateway = await start_gateway("gw", profiles, FaultPlan())
    site = site_with({"gw": (gateway.port, profiles)})
    availability = Availability()
    poller = GatewayPoller(site.gateways[0], list(site.meters), Collect(), availability)
    try:
        with operator_logging() as records:
            assert len(await poller.poll_cycle()) > 0
            await gateway.stop()
            poller.client.close()
            await poller.poll_cycle()  # the connect is refused: every meter down at once
            down = [line for line in lines(records) if "down" in line]
            assert down == [
                "epcmon.availability WARNING: 20 meters of gateway gw are down: gateway gw "
                "unreachable (gw-U1, gw-U2, gw-U3, gw-U4, gw-U5, gw-U6, gw-U7, gw-U8 and 12 more)"
            ]
            assert all(not s.up for s in availability.snapshot().values())
            await poller.poll_cycle()  # still down: nothing more
            assert [line for line in lines(records) if "down" in line] == down
            values = plausible_values(profiles[0])
            units = [
                SimulatedUnit(u, get_profile(profiles[0]), lambda _now: values)
                for u in range(1, len(profiles) + 1)
            ]
            gateway = SimulatedGateway(units, clock=now_ms, port=gateway.port, name="gw")
            await gateway.start()  # back, where it was
            poller._next_connect = 0.0  # the connect backoff is not what this test is about
            assert len(await poller.poll_cycle()) > 0
            back = [line for line in lines(records) if " are back" in line]
            assert len(back) == 1
            assert back[0].startswith("epcmon.availability INFO: 20 meters of gateway gw are back")
    finally:
        poller.client.close()
        await gateway.stop()

"""The MQTT payload parser alone (pure, no broker): what the bounds cost.

Figures printed beside their anchor, a bare `json.loads` of the same payload:
- a flat IoT-meter payload and a nested Tasmota one, parsed into readings;
- devices as they publish (issue 17): an NB-IoT water meter writing numbers as strings and
  `YYYY/MM/DD HH:MM:SS` local time, and an RS-485 gateway's message with its 10 meters
  (records, scale factors, the meter named by a value of each record);
- the hostile corpus (tests/hostile_payloads.py), every case refused or parsed: the mean and
  the slowest case, so a payload that is expensive to refuse shows.

    python -m bench.parse_payload [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from collectors.mqtt.payload import PayloadLimits, parse_payload, parse_records
from core.config import MqttConfig, PayloadFormat
from core.errors import PayloadError

NOW_MS = 1_767_225_600_000


def per_call_us(fn: Callable[[], Any], n: int, repeat: int = 5) -> float:
    """Best of `repeat` runs of `n` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def refuse_or_parse(payload: bytes, fmt: Any, limits: PayloadLimits) -> None:
    with contextlib.suppress(PayloadError):
        parse_payload(payload, fmt, "M", NOW_MS, limits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke test")
    args = parser.parse_args(argv)
    n = 2_000 if args.quick else 50_000

    from tests.hostile_payloads import FORMATS, corpus

    limits = PayloadLimits.of(MqttConfig(), commissioned=None, timezone="UTC")
    flat = json.dumps({"ts": NOW_MS - 60_000, "p": 1050.5, "e": 10.125}).encode()
    tasmota = json.dumps(
        {
            "Time": "2026-01-01T07:59:00",
            "ENERGY": {"TotalStartTime": "2025-01-01T00:00:00", "Total": 12.345, "Power": 850},
        }
    ).encode()
    print("epcmon MQTT payload parser (pure, one core)")
    print(f"{'measure':44s} {'us/message':>11s} {'json.loads':>11s} {'ratio':>6s}")
    for name, payload, fmt in (
        ("flat payload -> 2 readings", flat, FORMATS["flat_ms"]),
        ("Tasmota payload -> 2 readings", tasmota, FORMATS["tasmota"]),
    ):
        ours = per_call_us(partial(parse_payload, payload, fmt, "M", NOW_MS, limits), n)
        anchor = per_call_us(partial(json.loads, payload), n)
        print(f"{name:44s} {ours:11.2f} {anchor:11.2f} {ours / anchor:5.1f}x")

    at = "2026/01/01 07:59:00"  # NOW_MS is 2026-01-01 08:00 in Shanghai
    water = json.dumps(
        {"deviceId": "861234567890123", "dataTime": at, "totalFlow": "001234.567",
         "instantFlow": "0.850", "battery": "3.62"}
    ).encode()  # fmt: skip
    bus = json.dumps(
        {"gw": "GWB2", "time": at, "devices": [
            {"addr": a, "Ep": str(100_000 * a), "P": str(150 * a), "U": "2201"}
            for a in range(1, 11)
        ]}
    ).encode()  # fmt: skip
    local = {
        "timestamp_format": "%Y/%m/%d %H:%M:%S",
        "timestamp_timezone": "Asia/Shanghai",
        "numeric_strings": True,
    }
    water_fmt = PayloadFormat.model_validate(
        local | {"timestamp": "/dataTime", "fields": [
            {"pointer": "/totalFlow", "quantity": "volume", "unit": "m3"},
            {"pointer": "/instantFlow", "quantity": "flow", "unit": "m3/h"},
            {"pointer": "/battery", "quantity": "battery_voltage", "unit": "V"},
        ]}
    )  # fmt: skip
    bus_fmt = PayloadFormat.model_validate(
        local | {"records": "/devices", "timestamp": "/time", "timestamp_scope": "message",
                 "fields": [
            {"pointer": "/Ep", "quantity": "energy_import", "unit": "kWh", "scale": 0.01},
            {"pointer": "/P", "quantity": "power", "unit": "W"},
            {"pointer": "/U", "quantity": "voltage_l1", "unit": "V", "scale": 0.1},
        ]}
    )  # fmt: skip
    for name, payload, fmt, names in (
        ("NB-IoT water, strings, local time -> 3", water, water_fmt, ()),
        ("RS-485 gateway, 10 meters -> 30 readings", bus, bus_fmt, ("/addr",)),
    ):
        ours = per_call_us(partial(parse_records, payload, fmt, NOW_MS, limits, names), n // 5)
        anchor = per_call_us(partial(json.loads, payload), n // 5)
        print(f"{name:44s} {ours:11.2f} {anchor:11.2f} {ours / anchor:5.1f}x")

    cases = corpus(NOW_MS)
    times = []
    for case in cases:
        reps = max(1, n // 500)
        ours = per_call_us(
            partial(refuse_or_parse, case.payload, FORMATS[case.fmt], limits), reps, repeat=3
        )
        times.append((ours, case.name, case.payload))
    mean = sum(t for t, _, _ in times) / len(times)
    slowest, name, payload = max(times)
    try:
        anchor = per_call_us(partial(json.loads, payload), max(1, n // 500), repeat=3)
        shown = f"{anchor:11.2f} {slowest / anchor:5.1f}x"
    except (ValueError, RecursionError):
        shown = f"{'(refused)':>11s}"
    print(f"{'hostile corpus, ' + str(len(cases)) + ' cases: mean':44s} {mean:11.2f}")
    print(f"{'hostile corpus: slowest (' + name[:20] + ')':44s} {slowest:11.2f} {shown}")
    print(f"  ({len(payload):,} bytes; every case is bounded by max_payload_bytes)")
    print("target: a few us per valid payload; refusing costs a small multiple of json.loads")
    return 0


if __name__ == "__main__":
    sys.exit(main())

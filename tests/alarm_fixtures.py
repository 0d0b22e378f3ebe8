"""A tiny site and hand-made readings for the alarm rules: a department meter, a chiller, a
transformer incomer, a water main and a weather station, their usual week, and what a test
changes in it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from alarms.lifecycle import Lifecycle, Timing
from alarms.model import Category, Condition, Severity
from alarms.store import AlarmStore
from core.config import SiteConfig, parse_site
from core.readings import ReadingBatch

TZ = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000
DAY = 86_400_000
QUARTER = 900_000
Rate = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]
"""UTC ms -> use per hour (kWh/h, m³/h) at those instants."""


def local_ms(*args: int) -> int:
    """UTC ms of a local (Shanghai) time: `local_ms(2025, 6, 18, 4, 30)`."""
    return int(datetime(*args, tzinfo=TZ).timestamp() * 1000)  # type: ignore[misc]


def site_dict() -> dict[str, Any]:
    def modbus(unit: int) -> dict[str, Any]:
        return {"gateway": "gw", "unit": unit, "profile": "eastron-sdm630"}

    return {
        "site": {"id": "tiny", "name": "测试楼", "latitude": 31.7, "longitude": 116.5},
        "buildings": [{"id": "b", "name": "楼", "floor_area_m2": 1000}],
        "tenants": [{"id": "t1", "name": "一处", "building": "b", "floor_area_m2": 500}],
        "gateways": [{"id": "gw", "host": "127.0.0.1"}],
        "payload_formats": {
            "wx": {
                "timestamp": "/ts",
                "timestamp_format": "epoch_ms",
                "fields": [{"pointer": "/t", "quantity": "outdoor_temperature", "unit": "degC"}],
            }
        },
        "meters": [
            {
                "id": "TR-1",
                "name": "1#变压器进线",
                "kind": "electricity",
                "building": "b",
                "end_use": "incomer",
                "poll_interval_s": 15,
                "modbus": modbus(1),
            },
            {
                "id": "E-1",
                "name": "一处 照明插座",
                "kind": "electricity",
                "building": "b",
                "tenant": "t1",
                "parent": "TR-1",
                "modbus": modbus(2),
            },
            {
                "id": "CH-1",
                "name": "1#冷水机组",
                "kind": "electricity",
                "building": "b",
                "end_use": "chiller",
                "parent": "TR-1",
                "modbus": modbus(3),
            },
            {
                "id": "W-1",
                "name": "给水总表",
                "kind": "water",
                "building": "b",
                "end_use": "water_main",
                "modbus": modbus(4),
            },
            {
                "id": "WX",
                "name": "气象站",
                "kind": "weather",
                "building": "b",
                "end_use": "weather",
                "mqtt": {"topic": "tiny/wx", "format": "wx"},
            },
        ],
        "alarms": {
            "rules": {
                "transformer_load": {"rated_kva": {"TR-1": 1000}},
                "max_demand": {"contracted_kw": 800},
            }
        },
    }


def tiny_site(alarms: dict[str, Any] | None = None) -> SiteConfig:
    """The tiny site, with `alarms` merged into its `[alarms]` (rule tables merged too)."""
    data = site_dict()
    for key, value in (alarms or {}).items():
        if key == "rules":
            for rule, settings in value.items():
                data["alarms"]["rules"].setdefault(rule, {}).update(settings)
        else:
            data["alarms"][key] = value
    return parse_site(data)


def _hour_of(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.asarray((ts // HOUR + 8) % 24, dtype=np.int64)


def _weekday(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Monday-Friday in Shanghai (the tests' dates avoid holidays unless they say so)."""
    days = (ts + 8 * HOUR) // DAY
    return np.asarray((days + 3) % 7 < 5)


def jitter(ts: npt.NDArray[np.int64], cv: float, seed: int) -> npt.NDArray[np.float64]:
    """A deterministic ±cv wobble per hour (the same instant, the same wobble)."""
    h = (ts // HOUR) * 2_654_435_761 + seed * 97
    return 1.0 + cv * (((h % 1000) / 1000.0) - 0.5) * 2


def office(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """A department: 30 kWh/h in office hours on weekdays, 10 otherwise."""
    busy = _weekday(ts) & (_hour_of(ts) >= 8) & (_hour_of(ts) < 18)
    return np.where(busy, 30.0, 10.0) * jitter(ts, 0.04, 1)


def chiller(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """A chiller: 200 kWh/h 7:00-20:00 on weekdays, 1 (controls) otherwise."""
    on = _weekday(ts) & (_hour_of(ts) >= 7) & (_hour_of(ts) < 20)
    return np.where(on, 200.0, 1.0) * jitter(ts, 0.04, 2)


def water(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """A water main: 0.5 m³/h at night (0:00-6:00), 5 by day."""
    night = _hour_of(ts) < 6
    return np.where(night, 0.5, 5.0) * jitter(ts, 0.05, 3)


def counter(
    meter: str,
    quantity: str,
    rate: Rate,
    start_ms: int,
    end_ms: int,
    *,
    step_ms: int = QUARTER,
    first: float = 1000.0,
) -> ReadingBatch:
    """A register read every `step_ms` over [start, end) that counts `rate` (per hour)."""
    ts = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
    used = rate(ts) * step_ms / HOUR  # what is used in the step that starts at each reading
    value = first + np.concatenate([[0.0], np.cumsum(used)[:-1]])
    return ReadingBatch.for_series(meter, quantity, ts, value)


def instant(
    meter: str, quantity: str, value: Rate, start_ms: int, end_ms: int, step_ms: int = QUARTER
) -> ReadingBatch:
    ts = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
    return ReadingBatch.for_series(meter, quantity, ts, value(ts))


def usual(
    start_ms: int,
    end_ms: int,
    *,
    rates: dict[str, Rate] | None = None,
    skip: tuple[str, ...] = (),
) -> ReadingBatch:
    """Every meter of the tiny site over [start, end): its usual use (or `rates`' instead)."""
    r: dict[str, Rate] = {"E-1": office, "CH-1": chiller, "W-1": water}
    r.update(rates or {})

    def incomer(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        return r["E-1"](ts) + r["CH-1"](ts) + 50.0

    r.setdefault("TR-1", incomer)
    batches = []
    for meter, rate in r.items():
        if meter in skip:
            continue
        quantity = "volume" if meter.startswith("W") else "energy_import"
        batches.append(counter(meter, quantity, rate, start_ms, end_ms))
        if meter == "TR-1":
            batches.append(instant(meter, "power", rate, start_ms, end_ms, 60_000))
    if "WX" not in skip:
        batches.append(
            instant("WX", "outdoor_temperature", lambda t: 25.0 + 0 * t, start_ms, end_ms)
        )
    return ReadingBatch.concat(batches)


# -- stored alarms of the reference site, for the API and the page -----------------------------

BOUNDARY_ALARM, BUILDING_ALARM, PART_ALARM, CLEARED_ALARM = 1, 2, 3, 4
"""Alarms `seed_alarms` stores: on a contract boundary meter (a vendor sees it), on a
department's meter and on a part of the service (neither of which a vendor sees), all
active; and one on a department's meter, cleared."""


def seed_alarms(path: str, at_ms: int) -> None:
    store = AlarmStore(path)
    cycle = Lifecycle(lambda _r: Timing(), next_id=store.next_id())
    conditions = [
        Condition("meter_offline", "E-TR1", True, Severity.WARNING, Category.DATA,
                  "表计离线：E-TR1 已 20 min 无读数", 20.0, 15.0, "min", ("E-TR1",)),
        Condition("base_load", "E-D01", True, Severity.WARNING, Category.CONSUMPTION,
                  "基础负荷上升：E-D01 夜间平均 12.0 kWh/h", 12.0, 9.0, "kWh/h", ("E-D01",)),
        Condition("part_restarting", "mqtt", True, Severity.CRITICAL, Category.DATA,
                  "服务部件 mqtt 故障重启"),
        Condition("night_water_flow", "W-MAIN", True, Severity.CRITICAL, Category.CONSUMPTION,
                  "夜间持续用水（疑似漏水）：W-MAIN", 1.4, 1.2, "m3/h", ("W-MAIN",)),
    ]  # fmt: skip
    store.record(cycle.observe(conditions, at_ms - 3_600_000))
    gone = replace(conditions[3], active=False, message="夜间用水正常 W-MAIN")
    store.record(cycle.observe([gone], at_ms - 600_000))
    store.close()

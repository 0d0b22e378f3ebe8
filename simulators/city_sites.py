"""The site files of a simulated city, as data for `simulators.toml_text.dumps`.

Two shapes, both read by the simulator through their end uses, tenants and names
(`simulators.roles`):

- a **county/district administrative center** (`center_doc`): 1-3 buildings, one transformer
  incomer each plus one for the HVAC plant, a 照明插座 sub-meter per department, common
  lighting and lifts per building, facade lighting, an IT room, a canteen in the larger ones,
  the plant (water-cooled chillers with their pumps and towers and heat pumps for winter, or
  air-cooled chillers with air-source heat pumps), a water main per building, a weather
  station; one energy-performance contract on the incomers;
- a **small institution** (`institution_doc`): a school, a clinic, a township office or a
  library: one incomer per building, one sub-meter per room or office (schools meter every
  classroom and dormitory room), common lighting, a water main, a weather station; some with
  a small LED contract.

Every meter is an MQTT meter on a route of its site: `city/<site>/power/<meter>`,
`city/<site>/water/<meter>`, `city/<site>/weather/<meter>`, in three payload formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from simulators.toml_text import Inline

Doc = dict[str, Any]

EPOCH = date(2023, 1, 1)
"""Counters integrate from here: before the earliest baseline (2023-09)."""

FORMATS: Doc = {
    # {"ts": 1767225600000, "kwh": 12345.6, "kw": 42.1}
    "city-power": {
        "timestamp": "/ts",
        "timestamp_format": "epoch_ms",
        "fields": [
            Inline(pointer="/kwh", quantity="energy_import", unit="kWh"),
            Inline(pointer="/kw", quantity="power", unit="kW"),
        ],
    },
    # {"time": "2026-01-05T01:00:00Z", "total_m3": 1234.5, "flow_m3h": 0.8}
    "city-water": {
        "timestamp": "/time",
        "timestamp_format": "iso8601",
        "timestamp_timezone": "UTC",
        "fields": [
            Inline(pointer="/total_m3", quantity="volume", unit="m3"),
            Inline(pointer="/flow_m3h", quantity="flow", unit="m3/h"),
        ],
    },
    # {"ts": 1767225600000, "temp_c": 3.2, "rh": 78, "ghi": 0}
    "city-weather": {
        "timestamp": "/ts",
        "timestamp_format": "epoch_ms",
        "fields": [
            Inline(pointer="/temp_c", quantity="outdoor_temperature", unit="degC"),
            Inline(pointer="/rh", quantity="relative_humidity", unit="%"),
            Inline(pointer="/ghi", quantity="solar_irradiance", unit="W/m2"),
        ],
    },
}
ROUTES = {"power": "city-power", "water": "city-water", "weather": "city-weather"}

TOU_SEASONS: list[Doc] = [
    {
        "name": "summer",
        "months": [7, 8],
        "windows": [
            Inline(period="valley", start=0, end=8),
            Inline(period="peak", start=9, end=12),
            Inline(period="peak", start=16, end=20),
            Inline(period="sharp", start=20, end=22),
            Inline(period="valley", start=23, end=24),
        ],
        "prices": Inline(sharp=1.236, peak=1.03, flat=0.65, valley=0.35),
    },
    {
        "name": "winter",
        "months": [12, 1],
        "windows": [
            Inline(period="valley", start=0, end=8),
            Inline(period="peak", start=9, end=12),
            Inline(period="peak", start=16, end=18),
            Inline(period="sharp", start=18, end=20),
            Inline(period="peak", start=20, end=22),
            Inline(period="valley", start=23, end=24),
        ],
        "prices": Inline(sharp=1.2, peak=1.0, flat=0.65, valley=0.35),
    },
    {
        "name": "shoulder",
        "months": [2, 3, 4, 5, 6, 9, 10, 11],
        "windows": [
            Inline(period="valley", start=0, end=8),
            Inline(period="peak", start=9, end=12),
            Inline(period="peak", start=16, end=22),
            Inline(period="valley", start=23, end=24),
        ],
        "prices": Inline(peak=1.0, flat=0.65, valley=0.35),
    },
]
"""Anhui's time-of-use tariff for 1-10 kV commercial users, as in the reference site."""


@dataclass(frozen=True)
class MeasurePlan:
    id: str
    description: str
    end_use: str
    reduction: float


@dataclass(frozen=True)
class ContractPlan:
    id: str
    name: str
    vendor: str
    reporting_start: date
    measures: tuple[MeasurePlan, ...]

    @property
    def baseline_start(self) -> date:
        """Twelve months before the retrofit."""
        return self.reporting_start.replace(year=self.reporting_start.year - 1)


@dataclass(frozen=True)
class Room:
    """A department, office, classroom or ward: a tenant with its own sub-meter."""

    name: str
    building: str
    area_m2: float
    staff: int


@dataclass(frozen=True)
class SitePlan:
    id: str
    name: str
    name_en: str
    latitude: float
    longitude: float
    seed: int
    buildings: tuple[tuple[str, str, float, int], ...]
    """(id, name, floor area m2, floors)."""
    rooms: tuple[Room, ...]
    plant: Literal["chiller", "heat_pump", "none"]
    contract: ContractPlan | None
    canteen: bool = False
    room_word: str = "照明插座"


_ROUTE_OF = {"electricity": "power", "water": "water", "weather": "weather"}


def _meter(
    mid: str,
    name: str,
    building: str,
    end_use: str,
    *,
    kind: str = "electricity",
    tenant: str | None = None,
    parent: str | None = None,
    every_s: int = 60,
) -> Doc:
    m: Doc = {"id": mid, "name": name, "kind": kind, "building": building}
    if tenant is not None:
        m["tenant"] = tenant
    if parent is not None:
        m["parent"] = parent
    m["end_use"] = end_use
    m["poll_interval_s"] = every_s
    m["mqtt"] = Inline(route=_ROUTE_OF[kind])
    return m


def _tenant(tid: str, name: str, building: str, area: float, staff: int = 0) -> Doc:
    kind = "department" if staff else "common"
    t: Doc = {"id": tid, "name": name, "building": building, "floor_area_m2": area}
    return t | ({"staff": staff, "kind": kind} if staff else {"kind": kind})


def _head(plan: SitePlan) -> Doc:
    return {
        "site": {
            "id": plan.id,
            "name": plan.name,
            "name_en": plan.name_en,
            "timezone": "Asia/Shanghai",
            "latitude": plan.latitude,
            "longitude": plan.longitude,
            "climate": "hot-summer/cold-winter (夏热冬冷)",
        },
        "calendar": {"source": "china"},
        "storage": {"backend": "duckdb", "path": f"data/{plan.id}.duckdb"},
        "mqtt": {
            "url": "",
            "routes": {
                route: {
                    "pattern": f"city/{plan.id}/{route}/{{meter}}",
                    "meter": "{meter}",
                    "format": fmt,
                }
                for route, fmt in ROUTES.items()
            },
        },
        "simulation": {"seed": plan.seed, "epoch": EPOCH},
        "payload_formats": FORMATS,
        "buildings": [
            {"id": b, "name": name, "floor_area_m2": area, "floors": floors}
            for b, name, area, floors in plan.buildings
        ],
    }


def _contract(c: ContractPlan, meters: list[str]) -> Doc:
    return {
        "id": c.id,
        "name": c.name,
        "vendor": c.vendor,
        "meters": meters,
        "baseline_start": c.baseline_start,
        "baseline_end": c.reporting_start,
        "reporting_start": c.reporting_start,
        "weather_station": "WX-ROOF",
        "vendor_share": 0.8,
        "measures": [
            {
                "id": m.id,
                "description": m.description,
                "end_use": m.end_use,
                "reduction": m.reduction,
            }
            for m in c.measures
        ],
        "baseline": {"model": "daily", "day_types": "calendar"},
        "tariff": {"kind": "tou", "seasons": TOU_SEASONS},
    }


def _rooms(plan: SitePlan, incomer: dict[str, str]) -> tuple[list[Doc], list[Doc]]:
    tenants: list[Doc] = []
    meters: list[Doc] = []
    width = max(2, len(str(len(plan.rooms))))
    for i, r in enumerate(plan.rooms, 1):
        tid = f"r{i:0{width}d}"
        tenants.append(_tenant(tid, r.name, r.building, r.area_m2, max(1, r.staff)))
        name = f"{r.name} {plan.room_word}"
        meters.append(
            _meter(
                f"E-R{i:0{width}d}",
                name,
                r.building,
                "mixed",
                tenant=tid,
                parent=incomer[r.building],
                every_s=300,
            )
        )
    return tenants, meters


def _common(plan: SitePlan, incomer: dict[str, str]) -> tuple[list[Doc], list[Doc]]:
    """Each building's common areas (their lighting, and lifts above four floors)."""
    room_area: dict[str, float] = {}
    for r in plan.rooms:
        room_area[r.building] = room_area.get(r.building, 0.0) + r.area_m2
    tenants: list[Doc] = []
    meters: list[Doc] = []
    for b, name, area, floors in plan.buildings:
        common = round(max(0.15 * area, area - room_area.get(b, 0.0) - 0.05 * area))
        tenants.append(_tenant(f"common-{b}", f"{name}公共区域", b, common))
        meters.append(
            _meter(
                f"E-LT-{b}",
                f"{name}公共区域照明",
                b,
                "lighting",
                tenant=f"common-{b}",
                parent=incomer[b],
            )
        )
        if floors >= 5:
            meters.append(_meter(f"E-LIFT-{b}", f"{name}电梯", b, "lift", parent=incomer[b]))
    return tenants, meters


def _plant(plan: SitePlan, feeder: str, b: str) -> list[Doc]:
    area = sum(x[2] for x in plan.buildings)
    out: list[Doc] = []

    def add(mid: str, name: str, end_use: str) -> None:
        out.append(_meter(mid, name, b, end_use, parent=feeder))

    if plan.plant == "chiller":
        n = 2 if area < 20_000 else 3
        for i in range(1, n + 1):
            add(f"E-CH{i}", f"{i}#离心式冷水机组", "chiller")
        for i in range(1, n + 2):
            add(f"E-CHWP{i}", f"{i}#冷冻水泵", "chw_pump")
        for i in range(1, n + 2):
            add(f"E-CWP{i}", f"{i}#冷却水泵", "cw_pump")
        for i in range(1, n + 1):
            add(f"E-CT{i}", f"{i}#冷却塔风机", "cooling_tower")
        for i in range(1, 3):
            add(f"E-HP{i}", f"{i}#风冷热泵机组（冬季供热）", "heating")
    elif plan.plant == "heat_pump":
        n_hp = 2 if area < 10_000 else (3 if area < 18_000 else 4)
        for i in range(1, n_hp + 1):
            add(f"E-HP{i}", f"{i}#空气源热泵机组（冬季供热）", "heating")
        for i in range(1, 3):
            add(f"E-CH{i}", f"{i}#风冷冷水机组（夏季供冷）", "chiller")
        for i in range(1, 3):
            add(f"E-CHWP{i}", f"{i}#空调循环水泵", "chw_pump")
    if plan.plant != "none":
        add("E-AHU1", "一层大堂组合式空调箱", "ahu")
    return out


def center_doc(plan: SitePlan) -> Doc:
    """A county/district administrative center's site file."""
    doc = _head(plan)
    first = plan.buildings[0][0]
    feeds = {b: f"E-TR{i}" for i, (b, *_) in enumerate(plan.buildings, 1)}
    meters = [
        _meter(feeds[b], f"{i}#变压器低压总进线（{name}）", b, "incomer")
        for i, (b, name, _, _) in enumerate(plan.buildings, 1)
    ]
    meters.append(_meter("E-TRH", "空调冷热源专用变压器低压总进线", first, "incomer"))
    tenants, rooms = _rooms(plan, feeds)
    common_t, common_m = _common(plan, feeds)
    tenants += common_t
    meters += rooms + common_m
    area = sum(x[2] for x in plan.buildings)
    tenants.append(_tenant("it-room", "信息机房", first, round(max(40.0, area * 0.006))))
    meters.append(_meter("E-IT", "信息机房", first, "it", tenant="it-room", parent=feeds[first]))
    meters.append(_meter("E-LT-OUT", "室外泛光照明", first, "lighting", parent=feeds[first]))
    if plan.canteen:
        staff = sum(r.staff for r in plan.rooms)
        tenants.append(_tenant("canteen", "机关食堂", first, round(max(200.0, staff * 1.2))))
        meters.append(
            _meter(
                "E-CANTEEN",
                "机关食堂厨房及餐厅",
                first,
                "mixed",
                tenant="canteen",
                parent=feeds[first],
            )
        )
    meters += _plant(plan, "E-TRH", first)
    for b, name, _, _ in plan.buildings:
        meters.append(
            _meter(
                f"W-{b.upper()}", f"{name}给水引入管", b, "water_main", kind="water", every_s=900
            )
        )
    if plan.plant == "chiller":
        meters.append(
            _meter(
                "W-CT-MU",
                "冷却塔补水",
                first,
                "makeup_water",
                kind="water",
                parent=f"W-{first.upper()}",
                every_s=900,
            )
        )
    meters.append(_weather(first))
    doc["tenants"] = tenants
    doc["meters"] = meters
    if plan.contract is not None:
        boundary = [feeds[b] for b, *_ in plan.buildings] + ["E-TRH"]
        doc["contracts"] = [_contract(plan.contract, boundary)]
    return doc


def _weather(b: str) -> Doc:
    return _meter("WX-ROOF", "屋面气象站", b, "weather", kind="weather")


def institution_doc(plan: SitePlan) -> Doc:
    """A small institution's site file."""
    doc = _head(plan)
    first = plan.buildings[0][0]
    feeds = {b: f"E-IN{i}" for i, (b, *_) in enumerate(plan.buildings, 1)}
    meters = [_meter(feeds[b], f"{name}低压总进线", b, "incomer") for b, name, *_ in plan.buildings]
    tenants, rooms = _rooms(plan, feeds)
    common_t, common_m = _common(plan, feeds)
    meters += rooms + common_m
    meters += _plant(plan, feeds[first], first)
    meters.append(_meter("W-MAIN", "给水引入管", first, "water_main", kind="water", every_s=900))
    meters.append(_weather(first))
    doc["tenants"] = tenants + common_t
    doc["meters"] = meters
    if plan.contract is not None:
        doc["contracts"] = [_contract(plan.contract, list(feeds.values()))]
    return doc

"""What each meter of a site file measures, and how big it is: the static half of the model.

A meter's *role* follows from its kind, end use and tenant; where the site file's end-use
vocabulary is coarser than physics, a few words in the meter's name (Chinese or English)
refine it:

| role | from | keywords in the name |
|---|---|---|
| office | `mixed` with a department (or no) tenant | |
| canteen | `mixed` of a common tenant | 食堂 厨 餐 canteen kitchen |
| meeting hall | `mixed` of a common tenant | 会议 会堂 报告厅 conference meeting hall |
| common lighting / outdoor lighting | `lighting` | 泛光 室外 景观 outdoor facade flood |
| office lighting | `lighting` of a department | |
| lift, IT room | `lift`, `it` | |
| plug device | `plug`: printer, display, AV rack or terminals | 复印 打印 print / 大屏 屏 显示 screen display wall / 音视频 AV audio / 终端 terminal |
| chiller, pumps, tower, heat pump, AHU | `chiller`, `chw_pump`, `cw_pump`, `cooling_tower`, `heating`, `ahu` | |
| BTU meter, coil energy valve | `cooling_delivered`, `coil_energy` | |
| building main, zone, kitchen, irrigation | `water_main`; `domestic_water` (zone without tenant, kitchen with one) | 浇 灌 绿化 irrigation garden |
| tower make-up, closed-loop make-up | `makeup_water` | 冷却塔 tower |
| incomer | `incomer`: the sum of its children plus losses | |

Sizes come from floor areas, head counts and the plant's share of the site; every
department also gets habits of its own (arrival time, overtime, weekend duty, lamp and
equipment densities), drawn from the seed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from enum import StrEnum

import numpy as np

from core.config import EndUse, Meter, MeterKind, SiteConfig, Tenant
from simulators import rand

log = logging.getLogger("epcmon.simulators")


class Role(StrEnum):
    OFFICE = "office"
    OFFICE_LIGHTING = "office_lighting"
    CANTEEN = "canteen"
    MEETING = "meeting_hall"
    COMMON_LIGHTING = "common_lighting"
    OUTDOOR_LIGHTING = "outdoor_lighting"
    LIFT = "lift"
    IT_ROOM = "it_room"
    PLUG_PRINTER = "plug_printer"
    PLUG_DISPLAY = "plug_display"
    PLUG_AV = "plug_av"
    PLUG_TERMINALS = "plug_terminals"
    PLUG_GENERIC = "plug"
    CHILLER = "chiller"
    CHW_PUMP = "chw_pump"
    CW_PUMP = "cw_pump"
    COOLING_TOWER = "cooling_tower"
    HEAT_PUMP = "heat_pump"
    AHU = "ahu"
    INCOMER = "incomer"
    BTU = "btu"
    COIL = "coil"
    WATER_MAIN = "water_main"
    WATER_ZONE = "water_zone"
    WATER_KITCHEN = "water_kitchen"
    WATER_TENANT = "water_tenant"
    IRRIGATION = "irrigation"
    TOWER_MAKEUP = "tower_makeup"
    LOOP_MAKEUP = "loop_makeup"
    WEATHER = "weather"
    OTHER = "other"


def _has(meter: Meter, tenant: Tenant | None, *words: str) -> bool:
    text = " ".join(
        (meter.name, meter.id, tenant.name if tenant else "", tenant.name_en if tenant else "")
    ).lower()
    return any(w.lower() in text for w in words)


def role_of(meter: Meter, tenant: Tenant | None) -> Role:
    eu = meter.end_use
    if meter.kind is MeterKind.WEATHER:
        return Role.WEATHER
    if meter.kind is MeterKind.THERMAL:
        return Role.COIL if eu is EndUse.COIL_ENERGY else Role.BTU
    if meter.kind is MeterKind.WATER:
        if eu is EndUse.MAKEUP_WATER:
            return Role.TOWER_MAKEUP if _has(meter, None, "冷却塔", "tower") else Role.LOOP_MAKEUP
        if eu is EndUse.WATER_MAIN:
            return Role.WATER_MAIN
        if _has(meter, None, "浇", "灌", "绿化", "irrigation", "garden"):
            return Role.IRRIGATION
        if tenant is None:
            return Role.WATER_ZONE
        if _has(meter, tenant, "食堂", "厨", "canteen", "kitchen"):
            return Role.WATER_KITCHEN
        return Role.WATER_TENANT
    # electricity
    simple = {
        EndUse.INCOMER: Role.INCOMER,
        EndUse.LIFT: Role.LIFT,
        EndUse.IT: Role.IT_ROOM,
        EndUse.CHILLER: Role.CHILLER,
        EndUse.CHW_PUMP: Role.CHW_PUMP,
        EndUse.CW_PUMP: Role.CW_PUMP,
        EndUse.COOLING_TOWER: Role.COOLING_TOWER,
        EndUse.HEATING: Role.HEAT_PUMP,
        EndUse.AHU: Role.AHU,
    }
    if eu in simple:
        return simple[eu]
    if eu is EndUse.LIGHTING:
        if _has(meter, None, "泛光", "室外", "景观", "outdoor", "facade", "flood"):
            return Role.OUTDOOR_LIGHTING
        if tenant is not None and tenant.kind == "department":
            return Role.OFFICE_LIGHTING
        return Role.COMMON_LIGHTING
    if eu is EndUse.PLUG:
        if _has(meter, None, "复印", "打印", "print", "copier"):
            return Role.PLUG_PRINTER
        if _has(meter, None, "音视频", "音响", " av", "audio"):
            return Role.PLUG_AV
        if _has(meter, None, "大屏", "屏", "显示", "screen", "display", "wall"):
            return Role.PLUG_DISPLAY
        if _has(meter, None, "终端", "terminal", "workstation"):
            return Role.PLUG_TERMINALS
        return Role.PLUG_GENERIC
    if eu is EndUse.MIXED:
        if tenant is not None and tenant.kind == "common":
            if _has(meter, tenant, "食堂", "厨", "餐", "canteen", "kitchen"):
                return Role.CANTEEN
            if _has(meter, tenant, "会议", "会堂", "报告厅", "conference", "meeting", "hall"):
                return Role.MEETING
        return Role.OFFICE
    return Role.OTHER


@dataclass(frozen=True)
class Habits:
    """A department's ways, drawn once per seed."""

    arrival_h: float
    """Offset of the arrival ramp from 08:15, hours."""
    leave_h: float
    """Offset of the departure ramp from the end of office hours, hours."""
    attendance: float
    """Share of staff in on an ordinary workday."""
    overtime: float
    """Mean share of staff staying for evening overtime."""
    overtime_h: float
    """How long overtime lasts (decay constant, hours)."""
    weekend_duty: float
    """Probability that a weekend day sees some of its staff in."""
    lighting_w_m2: float
    """Installed office lighting density (pre-retrofit fluorescent), W/m2."""
    plug_w_staff: float
    """Office equipment per person when at work, W."""
    heaters: float
    """Propensity to run desk-side electric heaters in cold weather, 0..1."""


def habits_for(seed: int, tenant_id: str) -> Habits:
    u = rand.uniform(rand.key(seed, "habits", tenant_id), np.arange(10))
    busy = u[9] < 0.15  # a few departments (emergency, petitions, finance) never rest
    return Habits(
        arrival_h=-0.25 + 0.4 * float(u[0]),
        leave_h=-0.1 + 0.45 * float(u[1]),
        attendance=0.82 + 0.13 * float(u[2]),
        overtime=0.03 + (0.30 if busy else 0.17) * float(u[3]),
        overtime_h=0.8 + 1.8 * float(u[4]),
        weekend_duty=(0.35 if busy else 0.12) * float(u[5]),
        lighting_w_m2=8.5 + 3.0 * float(u[6]),
        plug_w_staff=110.0 + 60.0 * float(u[7]),
        heaters=float(u[8]),
    )


@dataclass(frozen=True)
class MeterSpec:
    """One meter as the model sees it."""

    meter: Meter
    index: int
    role: Role
    tenant_index: int | None
    """Column of the tenant in the occupancy matrices."""
    building_index: int
    children: tuple[int, ...]
    size: float
    """Role-specific scale: kW for loads, m3/h for water, kW thermal for coils."""
    area_m2: float = 0.0
    rated_kw: float = 1.0
    """Rating for power factor, current and losses (kW; m3/h for water)."""
    sigma_quarter: float = 0.05
    sigma_minute: float = 0.05
    key: int = 0

    @property
    def id(self) -> str:
        return self.meter.id


@dataclass(frozen=True)
class PlantSpec:
    """The site's central plant, sized from the floor area and the plant meters."""

    area_m2: float
    design_cooling_kw: float
    chillers: tuple[int, ...]
    chiller_kw_th: float
    chw_pumps: tuple[int, ...]
    cw_pumps: tuple[int, ...]
    towers: tuple[int, ...]
    heat_pumps: tuple[int, ...]
    heat_pump_kw_th: float
    ahus: tuple[int, ...]
    pump_chw_kw: float
    pump_cw_kw: float
    tower_kw: float


@dataclass(frozen=True)
class MeasureEffect:
    """A contract measure as the model applies it."""

    end_use: EndUse
    reduction: float
    from_ms: int
    contract: str


@dataclass(frozen=True)
class SiteSpec:
    site: SiteConfig
    seed: int
    meters: tuple[MeterSpec, ...]
    tenants: tuple[Tenant, ...]
    habits: tuple[Habits, ...]
    buildings: tuple[str, ...]
    building_area: tuple[float, ...]
    building_staff: tuple[float, ...]
    building_floors: tuple[int, ...]
    plant: PlantSpec
    measures: tuple[MeasureEffect, ...]
    order: tuple[int, ...]
    """Meter indices children first (for summing up the hierarchy)."""
    index: Mapping[str, int] = field(default_factory=dict)

    def spec(self, meter_id: str) -> MeterSpec:
        return self.meters[self.index[meter_id]]


# ------------------------------------------------------------------ sizing

DEPT_IT_KW = 0.5
"""A department's network switch, small server, always on."""
COMMON_LIGHTING_W_M2 = 8.0
IT_ROOM_W_M2 = 120.0
OUTDOOR_W_PER_BUILDING_M2 = 0.5
CANTEEN_KW_PER_DINER = 0.04
DESIGN_COOLING_W_M2 = 90.0
"""Chinese practice sizes office chiller plants near 90-110 W/m2 of gross area."""
HEAT_PUMP_SHARE = 0.55
"""Heat pump heating capacity as a share of the design cooling load."""


def _children(site: SiteConfig) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {m.id: [] for m in site.meters}
    for m in site.meters:
        if m.parent is not None:
            out[m.parent].append(m.id)
    return out


def _order(site: SiteConfig, children: Mapping[str, list[str]]) -> list[str]:
    """Children before parents."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(mid: str) -> None:
        if mid in seen:
            return
        seen.add(mid)
        for c in children[mid]:
            visit(c)
        done.append(mid)

    for m in site.meters:
        visit(m.id)
    return done


def local_midnight_ms(site: SiteConfig, day: date) -> int:
    moment = datetime.combine(day, time(0), tzinfo=site.site.tz)
    return int(moment.astimezone(UTC).timestamp() * 1000)


def build_spec(site: SiteConfig, seed: int) -> SiteSpec:
    tenants = tuple(site.tenants)
    tenant_idx = {t.id: i for i, t in enumerate(tenants)}
    buildings = tuple(b.id for b in site.buildings)
    b_idx = {b: i for i, b in enumerate(buildings)}
    b_area = tuple(b.floor_area_m2 for b in site.buildings)
    b_staff = tuple(
        float(sum(t.staff for t in tenants if t.building == b)) or 0.02 * area
        for b, area in zip(buildings, b_area, strict=True)
    )
    b_floors = tuple(b.floors for b in site.buildings)
    habits = tuple(habits_for(seed, t.id) for t in tenants)
    children = _children(site)
    order_ids = _order(site, children)
    index = {m.id: i for i, m in enumerate(site.meters)}
    total_area = sum(b_area)
    total_staff = sum(t.staff for t in tenants) or 0.02 * total_area

    roles = {
        m.id: role_of(m, tenants[tenant_idx[m.tenant]] if m.tenant else None) for m in site.meters
    }

    def of_role(*rs: Role) -> tuple[int, ...]:
        return tuple(index[m.id] for m in site.meters if roles[m.id] in rs)

    chillers = of_role(Role.CHILLER)
    design = DESIGN_COOLING_W_M2 * total_area / 1000.0
    plant = PlantSpec(
        area_m2=total_area,
        design_cooling_kw=design,
        chillers=chillers,
        chiller_kw_th=design / max(1, len(chillers)),
        chw_pumps=of_role(Role.CHW_PUMP),
        cw_pumps=of_role(Role.CW_PUMP),
        towers=of_role(Role.COOLING_TOWER),
        heat_pumps=of_role(Role.HEAT_PUMP),
        heat_pump_kw_th=HEAT_PUMP_SHARE * design / max(1, len(of_role(Role.HEAT_PUMP))),
        ahus=of_role(Role.AHU),
        # motor ratings as a share of one chiller's cooling capacity (55 kW / 75 kW on 800 RT)
        pump_chw_kw=0.0195 * design / max(1, len(chillers)),
        pump_cw_kw=0.0265 * design / max(1, len(chillers)),
        tower_kw=0.0105 * design / max(1, len(chillers)),
    )

    # how many meters share a (tenant or building, role): they split the area
    share: dict[tuple[str, Role], int] = {}
    for m in site.meters:
        k = (m.tenant or f"building:{m.building}", roles[m.id])
        share[k] = share.get(k, 0) + 1
    lifts_in: dict[str, int] = {}
    coils_in: dict[str, int] = {}
    ahus_in: dict[str, int] = {}
    zones_in: dict[str, int] = {}
    for m in site.meters:
        lifts_in[m.building] = lifts_in.get(m.building, 0) + (roles[m.id] is Role.LIFT)
        coils_in[m.building] = coils_in.get(m.building, 0) + (roles[m.id] is Role.COIL)
        ahus_in[m.building] = ahus_in.get(m.building, 0) + (roles[m.id] is Role.AHU)
        zones_in[m.building] = zones_in.get(m.building, 0) + (roles[m.id] is Role.WATER_ZONE)
    lit_separately = {m.tenant for m in site.meters if roles[m.id] is Role.OFFICE_LIGHTING}

    specs: list[MeterSpec] = []
    for m in site.meters:
        role = roles[m.id]
        ti = tenant_idx.get(m.tenant) if m.tenant else None
        tenant = tenants[ti] if ti is not None else None
        bi = b_idx[m.building]
        n_share = share[(m.tenant or f"building:{m.building}", role)]
        area = (tenant.floor_area_m2 if tenant else b_area[bi] * 0.1) / n_share
        size, rated, sq, sm = _size(
            role,
            m,
            tenant,
            area,
            bi,
            b_area,
            b_staff,
            b_floors,
            plant,
            total_staff,
            habits[ti] if ti is not None else None,
            lifts_in,
            coils_in,
            ahus_in,
            zones_in,
        )
        if role is Role.OFFICE and m.tenant in lit_separately:
            size = -size  # negative: the lighting part is metered elsewhere
        specs.append(
            MeterSpec(
                meter=m,
                index=index[m.id],
                role=role,
                tenant_index=ti,
                building_index=bi,
                children=tuple(index[c] for c in children[m.id]),
                size=size,
                area_m2=area,
                rated_kw=rated,
                sigma_quarter=sq,
                sigma_minute=sm,
                key=rand.key(seed, "meter", m.id),
            )
        )
    # incomers: rated from the CT ratio where there is one, else from what they feed
    specs = [_rate_parent(s, specs) for s in specs]
    # minute weights stay positive only up to 0.28 (see SiteModel.minute_weights)
    specs = [MeterSpec(**{**s.__dict__, "sigma_minute": min(s.sigma_minute, 0.28)}) for s in specs]

    measures = []
    for c in site.contracts:
        for ms in c.measures:
            measures.append(
                MeasureEffect(
                    ms.end_use, ms.reduction, local_midnight_ms(site, c.reporting_start), c.id
                )
            )
            if ms.end_use not in _MEASURABLE:
                log.warning(
                    "contract %s: measure %s acts on end use %r, which the simulator cannot "
                    "change; it is ignored",
                    c.id,
                    ms.id,
                    ms.end_use.value,
                )
    return SiteSpec(
        site=site,
        seed=seed,
        meters=tuple(specs),
        tenants=tenants,
        habits=habits,
        buildings=buildings,
        building_area=b_area,
        building_staff=b_staff,
        building_floors=b_floors,
        plant=plant,
        measures=tuple(measures),
        order=tuple(index[i] for i in order_ids),
        index=index,
    )


_MEASURABLE = frozenset(
    {
        EndUse.LIGHTING,
        EndUse.PLUG,
        EndUse.IT,
        EndUse.LIFT,
        EndUse.MIXED,
        EndUse.CHILLER,
        EndUse.CHW_PUMP,
        EndUse.CW_PUMP,
        EndUse.COOLING_TOWER,
        EndUse.AHU,
        EndUse.HEATING,
        EndUse.DOMESTIC_WATER,
        EndUse.MAKEUP_WATER,
    }
)


def _size(
    role: Role,
    m: Meter,
    tenant: Tenant | None,
    area: float,
    bi: int,
    b_area: tuple[float, ...],
    b_staff: tuple[float, ...],
    b_floors: tuple[int, ...],
    plant: PlantSpec,
    total_staff: float,
    habits: Habits | None,
    lifts_in: Mapping[str, int],
    coils_in: Mapping[str, int],
    ahus_in: Mapping[str, int],
    zones_in: Mapping[str, int],
) -> tuple[float, float, float, float]:
    """(size, rated, sigma per quarter, sigma per minute)."""
    staff = float(tenant.staff) if tenant else 0.0
    if role in (Role.OFFICE, Role.OFFICE_LIGHTING):
        lpd = habits.lighting_w_m2 if habits else 9.0
        peak = area * lpd / 1000 + staff * 0.21 + area * 0.002 + DEPT_IT_KW
        return area, max(5.0, 1.6 * peak), 0.03, 0.04
    if role is Role.CANTEEN:
        kw = CANTEEN_KW_PER_DINER * total_staff
        return kw, 1.5 * kw, 0.06, 0.15
    if role is Role.MEETING:
        return area, max(5.0, area * 0.03), 0.05, 0.05
    if role is Role.COMMON_LIGHTING:
        kw = area * COMMON_LIGHTING_W_M2 / 1000
        return kw, max(3.0, 1.4 * kw), 0.02, 0.01
    if role is Role.OUTDOOR_LIGHTING:
        kw = OUTDOOR_W_PER_BUILDING_M2 * b_area[bi] / 1000
        return kw, max(3.0, 2.0 * kw), 0.02, 0.005
    if role is Role.LIFT:
        lifts = math.ceil(b_staff[bi] / 300 + b_floors[bi] / 6)
        per_meter = lifts / max(1, lifts_in[m.building])
        return per_meter, max(5.0, per_meter * 15.0), 0.2, 0.6
    if role is Role.IT_ROOM:
        kw = area * IT_ROOM_W_M2 / 1000
        return kw, max(5.0, 1.6 * kw), 0.01, 0.01
    if role in (
        Role.PLUG_PRINTER,
        Role.PLUG_DISPLAY,
        Role.PLUG_AV,
        Role.PLUG_TERMINALS,
        Role.PLUG_GENERIC,
    ):
        kw = {
            Role.PLUG_PRINTER: 1.2,
            Role.PLUG_DISPLAY: 2.4,
            Role.PLUG_AV: 1.5,
            Role.PLUG_TERMINALS: 2.0,
            Role.PLUG_GENERIC: 0.8,
        }[role]
        return kw, 3.5, 0.1, 0.3 if role is Role.PLUG_PRINTER else 0.05
    if role is Role.CHILLER:
        return plant.chiller_kw_th, plant.chiller_kw_th / 4.5, 0.015, 0.02
    if role is Role.CHW_PUMP:
        return plant.pump_chw_kw, plant.pump_chw_kw, 0.01, 0.005
    if role is Role.CW_PUMP:
        return plant.pump_cw_kw, plant.pump_cw_kw, 0.01, 0.005
    if role is Role.COOLING_TOWER:
        return plant.tower_kw, plant.tower_kw, 0.03, 0.02
    if role is Role.HEAT_PUMP:
        return plant.heat_pump_kw_th, plant.heat_pump_kw_th / 2.4, 0.02, 0.02
    if role is Role.AHU:
        kw = float(np.clip(0.8 * b_area[bi] / 1000 / max(1, ahus_in[m.building]), 11.0, 45.0))
        return kw, 1.2 * kw, 0.02, 0.01
    if role is Role.COIL:
        design_b = DESIGN_COOLING_W_M2 * b_area[bi] / 1000
        cap = min(0.4 * design_b / max(1, coils_in[m.building]), 400.0)
        return cap, cap, 0.04, 0.05
    if role is Role.BTU:
        return plant.design_cooling_kw, plant.design_cooling_kw, 0.0, 0.03
    if role is Role.WATER_MAIN:
        # m3/h scale: 40 L per person per working day, plus cleaning
        return b_staff[bi] * 0.04, max(2.0, b_staff[bi] * 0.01), 0.12, 0.35
    if role is Role.WATER_ZONE:
        share = 0.5 / max(1, zones_in[m.building])
        return share, max(1.0, b_staff[bi] * 0.005), 0.12, 0.4
    if role is Role.WATER_KITCHEN:
        return 0.006 * total_staff, max(1.0, 0.003 * total_staff), 0.15, 0.4
    if role is Role.WATER_TENANT:
        return staff * 0.04, max(0.5, staff * 0.01), 0.15, 0.5
    if role is Role.IRRIGATION:
        return max(0.5, b_area[bi] * 0.00005), 6.0, 0.1, 0.1
    if role is Role.TOWER_MAKEUP:
        return 1.0, max(2.0, plant.design_cooling_kw / 2450 * 3.6 * 1.5), 0.05, 0.1
    if role is Role.LOOP_MAKEUP:
        return 0.05, 2.5, 0.3, 0.3
    if role is Role.INCOMER:
        return 0.0, 0.0, 0.0, 0.0
    return area * 0.005, max(2.0, area * 0.01), 0.05, 0.05


def _rate_parent(s: MeterSpec, specs: list[MeterSpec]) -> MeterSpec:
    if s.role is not Role.INCOMER:
        return s
    src = s.meter.modbus
    if src is not None and src.ct_ratio > 1:
        # a CT with 5 A secondaries: rated current = ratio x 5 A, 230 V phases, pf 0.9
        rated = src.ct_ratio * 5.0 * 3 * 230.0 * 0.9 / 1000
    else:
        rated = 0.8 * sum(_rated(c, specs) for c in s.children) or 100.0
    return MeterSpec(**{**s.__dict__, "rated_kw": rated, "sigma_quarter": 0.0, "sigma_minute": 0.0})


def _rated(i: int, specs: list[MeterSpec]) -> float:
    s = specs[i]
    if s.role is Role.INCOMER:
        return 0.8 * sum(_rated(c, specs) for c in s.children)
    return s.rated_kw

"""A simulated city: the portfolio of a municipal 机关事务管理局, as site files.

    city = generate_city(sites=200, seed=0, reference_text=Path(REF).read_text())
    city.files()          # {"portfolio.toml": ..., "luan-admin-center.toml": ..., ...}
    city.totals           # sites, meters, floor area, contracts, vendors

Pure and seeded: the same arguments give the same text. The sites, in order:

1. the administrative center: the reference site file, copied as it is (its contract
   `epc-2025-01` stays) but for a `[simulation] seed` drawn from the city's seed when it
   sets none (`with_seed`);
2. seven county/district administrative centers (`CENTERS`), of different sizes (9-32
   departments, 7,500-36,000 m2, 1-3 buildings), each with its own energy-performance
   contract, retrofit date (2024-09 to 2025-10, a 12-month baseline before) and vendor (four
   vendor companies, one holding three contracts);
3. a long tail of small institutions (schools, clinics, township offices, libraries), one
   site each, some with a small LED contract; schools meter every classroom and dormitory
   room, which is where most of a city's meters are: `--sites 200` gives ~23,000 meters.

`--sites N` takes the first N of that order, so a smaller city is a prefix of a larger one
with the same seed. Each generated site has its own `[simulation] seed` (drawn from the
city's seed and the site id), so sites are independent: their weather, habits and noise
differ (what a root-sum-of-squares portfolio uncertainty assumes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np

from simulators import rand
from simulators.city_sites import (
    ContractPlan,
    MeasurePlan,
    Room,
    SitePlan,
    center_doc,
    institution_doc,
)
from simulators.toml_text import dumps

PORTFOLIO_ID = "luan-city"
PORTFOLIO_NAME = "六安市机关事务管理局公共机构能耗监测"

VENDORS = (
    "安徽淠源节能服务有限公司",  # also the reference site's vendor
    "安徽皖能综合能源服务有限公司",
    "合肥绿源合同能源管理有限公司",
    "江淮节能科技股份有限公司",
)
"""Fictional energy-service companies."""


@dataclass(frozen=True)
class Center:
    slug: str
    county: str
    county_en: str
    latitude: float
    longitude: float
    departments: int
    area_m2: float
    buildings: int
    plant: Literal["chiller", "heat_pump"]
    reporting_start: date
    vendor: int
    led: float
    plant_reduction: float


# fmt: off
CENTERS = (
    Center("jinan", "金安区", "Jin'an District", 31.755, 116.539, 32, 36_000, 3, "chiller",
           date(2024, 9, 1), 0, 0.42, 0.14),
    Center("yuan", "裕安区", "Yu'an District", 31.738, 116.480, 28, 30_000, 2, "chiller",
           date(2025, 3, 1), 1, 0.38, 0.12),
    Center("yeji", "叶集区", "Yeji District", 31.851, 115.913, 9, 7_500, 1, "heat_pump",
           date(2025, 10, 1), 2, 0.45, 0.25),
    Center("huoqiu", "霍邱县", "Huoqiu County", 32.353, 116.278, 24, 22_000, 2, "chiller",
           date(2024, 11, 1), 0, 0.40, 0.15),
    Center("shucheng", "舒城县", "Shucheng County", 31.462, 116.948, 20, 16_000, 2, "heat_pump",
           date(2025, 5, 1), 3, 0.35, 0.22),
    Center("jinzhai", "金寨县", "Jinzhai County", 31.727, 115.934, 16, 12_000, 1, "heat_pump",
           date(2025, 1, 1), 1, 0.50, 0.28),
    Center("huoshan", "霍山县", "Huoshan County", 31.393, 116.333, 14, 10_000, 2, "chiller",
           date(2025, 8, 1), 2, 0.40, 0.12),
)
# fmt: on
"""The seven county/district centers: sizes, plants, retrofit dates and vendors differ."""

BUILDING_NAMES = ("主楼", "东楼", "西楼")
# fmt: off
DEPARTMENTS = (
    "政府办公室", "发展和改革委员会", "财政局", "教育局", "公安局", "民政局", "司法局",
    "人力资源和社会保障局", "自然资源局", "生态环境分局", "住房和城乡建设局", "交通运输局",
    "农业农村局", "水利局", "商务局", "文化旅游体育局", "卫生健康委员会", "退役军人事务局",
    "应急管理局", "审计局", "市场监督管理局", "统计局", "医疗保障局", "林业局", "城市管理局",
    "数据资源管理局", "信访局", "政务服务中心", "人大常委会办公室", "政协办公室", "纪委监委",
    "组织部", "宣传部", "统战部", "总工会",
)
# fmt: on
"""A county's departments (at most 35 per center; beyond: numbered offices)."""

# the long tail: (kind, name pattern, English, rooms range, floor area range, room word)
# fmt: off
TAIL_KINDS = {
    "school": ("{county}第{k}中学", "Middle School No. {k}, {county_en}", (180, 320),
               (12_000, 30_000), "照明插座"),
    "clinic": ("{county}第{k}社区卫生服务中心", "Community Health Centre No. {k}, {county_en}",
               (50, 120), (3_000, 9_000), "照明插座"),
    "township": ("{county}第{k}乡镇人民政府", "Township Government No. {k}, {county_en}",
                 (25, 60), (1_500, 4_500), "照明插座"),
    "library": ("{county}第{k}图书馆", "Library No. {k}, {county_en}", (15, 40),
                (2_000, 6_000), "照明插座"),
}
TAIL_CYCLE = ("school", "clinic", "township", "school", "library", "clinic", "township",
              "school", "clinic", "township")
# fmt: on
"""Kinds in turn (three schools, clinics and township offices and a library in ten), so
a city's meter count grows steadily with its size."""
TAIL_CONTRACT_SHARE = 0.4
RETROFIT_MONTHS = tuple(date(2024 + (8 + i) // 12, (8 + i) % 12 + 1, 1) for i in range(14))
"""2024-09-01 ... 2025-10-01: a full contract year after each has closed by 2026-11."""


@dataclass(frozen=True)
class CitySite:
    id: str
    filename: str
    text: str
    kind: str
    """`reference`, `center`, or a tail kind (`school`, `clinic`, ...)."""
    meters: int
    floor_area_m2: float
    contracts: tuple[str, ...]
    vendors: tuple[str, ...]
    reporting_starts: tuple[date, ...]


@dataclass(frozen=True)
class Totals:
    sites: int
    meters: int
    floor_area_m2: float
    contracts: int
    vendors: int

    def line(self) -> str:
        return (
            f"{self.sites} sites, {self.meters:,} meters, {self.floor_area_m2:,.0f} m2, "
            f"{self.contracts} contracts with {self.vendors} vendors"
        )


@dataclass(frozen=True)
class City:
    portfolio_text: str
    sites: tuple[CitySite, ...]

    def files(self) -> dict[str, str]:
        """File name -> text: `portfolio.toml` and one site file per site."""
        return {"portfolio.toml": self.portfolio_text, **{s.filename: s.text for s in self.sites}}

    @property
    def totals(self) -> Totals:
        return Totals(
            sites=len(self.sites),
            meters=sum(s.meters for s in self.sites),
            floor_area_m2=sum(s.floor_area_m2 for s in self.sites),
            contracts=sum(len(s.contracts) for s in self.sites),
            vendors=len({v for s in self.sites for v in s.vendors}),
        )


def portfolio_text(port: int = 8000) -> str:
    doc = {
        "portfolio": {"id": PORTFOLIO_ID, "name": PORTFOLIO_NAME},
        "storage": {"backend": "duckdb", "path": f"data/{PORTFOLIO_ID}.duckdb"},
        "api": {"host": "127.0.0.1", "port": port},
    }
    return dumps(
        doc, header="六安市公共机构能耗监测：组合配置（模拟城市）\nThe simulated city's portfolio"
    )


def _uniform(seed: int, *parts: object, n: int = 8) -> list[float]:
    return [float(x) for x in rand.uniform(rand.key(seed, "city", *parts), np.arange(n))]


def site_seed(seed: int, site_id: str) -> int:
    """A generated site's `[simulation] seed`."""
    return rand.key(seed, "city-site", site_id) % 2_000_000_000


def _split(total: float, n: int, u: list[float]) -> list[float]:
    weights = [0.5 + (u[i % len(u)] + 0.37 * i) % 1.0 for i in range(n)]
    s = sum(weights)
    return [total * w / s for w in weights]


def center_plan(c: Center, seed: int) -> SitePlan:
    u = _uniform(seed, c.slug, n=64)
    areas = _split(c.area_m2, c.buildings, u[:3]) if c.buildings > 1 else [c.area_m2]
    buildings = tuple(
        (
            f"b{i + 1}",
            f"{c.county}行政中心{BUILDING_NAMES[i]}",
            float(round(a)),
            max(3, min(18, round(a / 1_600))),
        )
        for i, a in enumerate(areas)
    )
    dept_area = _split(0.55 * c.area_m2, c.departments, u[3:])
    rooms = []
    for i, a in enumerate(dept_area):
        b = buildings[i % len(buildings)][0]
        name = DEPARTMENTS[i] if i < len(DEPARTMENTS) else f"第{i + 1}办公室"
        rooms.append(Room(f"{c.county}{name}", b, float(round(a)), max(4, round(a / 11))))
    plant_measure = (
        MeasurePlan(
            "chiller-plant-optimisation",
            "冷站群控优化：冷机台数、出水温度、水泵变频",
            "chiller",
            c.plant_reduction,
        )
        if c.plant == "chiller"
        else MeasurePlan(
            "heat-pump-replacement",
            "空气源热泵机组更换为高效变频机组",
            "heating",
            c.plant_reduction,
        )
    )
    contract = ContractPlan(
        id=f"epc-{c.slug}-{c.reporting_start:%Y-%m}",
        name=f"{c.county}行政中心照明及空调节能改造合同能源管理项目",
        vendor=VENDORS[c.vendor],
        reporting_start=c.reporting_start,
        measures=(
            MeasurePlan("led-lighting", "办公区及公共区域更换 LED 灯具", "lighting", c.led),
            plant_measure,
        ),
    )
    return SitePlan(
        id=f"{c.slug}-center",
        name=f"{c.county}行政中心",
        name_en=f"{c.county_en} Administrative Center",
        latitude=c.latitude,
        longitude=c.longitude,
        seed=site_seed(seed, f"{c.slug}-center"),
        buildings=buildings,
        rooms=tuple(rooms),
        plant=c.plant,
        contract=contract,
        canteen=c.departments >= 14,
    )


def tail_plan(k: int, seed: int) -> SitePlan:
    """The k-th small institution (k from 1)."""
    kind = TAIL_CYCLE[(k - 1) % len(TAIL_CYCLE)]
    pattern, pattern_en, (r0, r1), (a0, a1), word = TAIL_KINDS[kind]
    sid = f"{kind}-{k:03d}"
    u = _uniform(seed, sid, n=12)
    c = CENTERS[(k - 1) % len(CENTERS)]
    n_rooms = r0 + int(u[0] * (r1 - r0 + 1))
    area = float(round(a0 + u[1] * (a1 - a0), -2))
    names = {"county": c.county, "county_en": c.county_en, "k": k}
    buildings: tuple[tuple[str, str, float, int], ...]
    if kind == "school":
        teach, dorm = 0.55 * area, 0.45 * area
        buildings = (
            ("teach", "教学楼", float(round(teach)), 5),
            ("dorm", "学生宿舍楼", float(round(dorm)), 6),
        )
        n_class = n_rooms // 3
        rooms = [Room(f"教室{i + 1:03d}", "teach", round(0.7 * teach / n_class), 4)
                 for i in range(n_class)]  # fmt: skip
        n_dorm = n_rooms - n_class
        rooms += [Room(f"宿舍{i + 1:03d}", "dorm", round(0.75 * dorm / n_dorm), 2)
                  for i in range(n_dorm)]  # fmt: skip
    else:
        floors = max(2, min(6, round(area / 900)))
        buildings = (("main", "主楼", area, floors),)
        word_room = {"clinic": "诊室", "township": "办公室", "library": "阅览室"}[kind]
        rooms = [
            Room(
                f"{word_room}{i + 1:03d}",
                "main",
                float(max(12, round(0.6 * area / n_rooms))),
                max(1, round(0.6 * area / n_rooms / 15)),
            )
            for i in range(n_rooms)
        ]
    contract = None
    if u[2] < TAIL_CONTRACT_SHARE:
        start = RETROFIT_MONTHS[int(u[3] * len(RETROFIT_MONTHS))]
        contract = ContractPlan(
            id=f"epc-{sid}-led",
            name=f"{pattern.format(**names)} LED 照明改造",
            vendor=VENDORS[int(u[4] * len(VENDORS))],
            reporting_start=start,
            measures=(
                MeasurePlan(
                    "led-lighting", "更换 LED 灯具", "lighting", round(0.3 + 0.2 * u[5], 2)
                ),
            ),
        )
    return SitePlan(
        id=sid,
        name=pattern.format(**names),
        name_en=pattern_en.format(**names),
        latitude=round(c.latitude + 0.2 * (u[6] - 0.5), 3),
        longitude=round(c.longitude + 0.2 * (u[7] - 0.5), 3),
        seed=site_seed(seed, sid),
        buildings=buildings,
        rooms=tuple(rooms),
        plant="heat_pump" if kind == "clinic" else "none",
        contract=contract,
        room_word=word,
    )


def _site(plan: SitePlan, kind: str) -> CitySite:
    doc = center_doc(plan) if kind == "center" else institution_doc(plan)
    header = f"{plan.name} ({plan.name_en}): generated by `epcmon simulate city`"
    c = plan.contract
    return CitySite(
        id=plan.id,
        filename=f"{plan.id}.toml",
        text=dumps(doc, header=header),
        kind=kind,
        meters=len(doc["meters"]),
        floor_area_m2=sum(b[2] for b in plan.buildings),
        contracts=(c.id,) if c else (),
        vendors=(c.vendor,) if c else (),
        reporting_starts=(c.reporting_start,) if c else (),
    )


def with_seed(text: str, seed: int) -> str:
    """The reference site file with a `[simulation] seed` drawn from the city's seed, as every
    generated site has, when it sets none itself: otherwise every city would share one draw
    of its weather, habits and noise (and so one draw of its savings error)."""
    import tomllib

    doc = tomllib.loads(text)
    if "simulation" in doc:
        return text
    sid = doc["site"]["id"]
    return (
        text.rstrip("\n")
        + "\n\n# 模拟城市：本单位的随机种子由城市种子导出 (the city's seed draws this site's)\n"
        + f"[simulation]\nseed = {site_seed(seed, sid)}\n"
    )


def reference_site(text: str) -> CitySite:
    """The reference site file as one of the city's sites (its counts read from the text)."""
    import tomllib

    doc = tomllib.loads(text)
    contracts = doc.get("contracts", [])
    return CitySite(
        id=doc["site"]["id"],
        filename=f"{doc['site']['id']}.toml",
        text=text,
        kind="reference",
        meters=len(doc.get("meters", [])),
        floor_area_m2=float(sum(b["floor_area_m2"] for b in doc["buildings"])),
        contracts=tuple(c["id"] for c in contracts),
        vendors=tuple(c["vendor"] for c in contracts),
        reporting_starts=tuple(c["reporting_start"] for c in contracts),
    )


def generate_city(sites: int = 8, seed: int = 0, *, reference_text: str) -> City:
    """The first `sites` sites of the city (the reference site, the seven centers, then the
    tail), with `portfolio.toml`."""
    if sites < 1:
        raise ValueError("a city has at least one site")
    out = [reference_site(with_seed(reference_text, seed))]
    out += [_site(center_plan(c, seed), "center") for c in CENTERS[: sites - 1]]
    for k in range(1, sites - len(out) + 1):
        plan = tail_plan(k, seed)
        out.append(_site(plan, plan.id.split("-")[0]))
    return City(portfolio_text=portfolio_text(), sites=tuple(out))

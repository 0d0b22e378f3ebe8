"""The report's tables, Chinese first (`中文 / English`): the workbook and the PDF
draw these same rows, so the two documents cannot disagree.

Values stay numbers (as `processing` computed them, the API's figures); `Column.kind` says
how to show them: `text`, `int`, `kwh` (1 decimal), `cny` (2 decimals), `ratio` (2
decimals), `pct` (a fraction shown as a percentage), `share` (the same, 1 decimal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from processing.monthly import SiteMonth
from reports.content import ReportData

Kind = Literal["text", "int", "kwh", "cny", "ratio", "pct", "share"]

STATUS = {
    "above_constraint": "超约束值 above constraint",
    "above_guide": "超引导值 above guide",
    "at_or_below_guide": "达引导值 at or below guide",
    "within_constraint": "未超约束值 within constraint",
    "no_data": "无数据 no data",
}


@dataclass(frozen=True)
class Column:
    zh: str
    en: str
    kind: Kind = "text"

    @property
    def title(self) -> str:
        return f"{self.zh} / {self.en}" if self.en else self.zh


@dataclass
class Table:
    key: str
    """A short ASCII id (tests and the workbook's defined names use it)."""
    zh: str
    en: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    total: list[Any] | None = None
    """A last row that sums the ones above (drawn apart, never counted twice)."""
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.zh} / {self.en}"


def change(now: float | None, before: float | None) -> float | None:
    """The relative change, or None when there is nothing to compare with."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before


def _electricity_cny(doc: dict[str, Any] | None) -> float | None:
    rec = doc and doc["reconciliation"]["electricity"]["cny"]
    return None if not rec else float(rec["measured"])


def _water_cny(doc: dict[str, Any] | None) -> float | None:
    rec = doc and doc["reconciliation"]["water"]["cny"]
    return None if not rec else float(rec["measured"])


def summary(data: ReportData) -> Table:
    b, ly = data.bills, data.last_year
    i = data.intensity["site"]
    first = data.first
    last_year = data.months[:12]  # the 12 months through the same month a year before
    ytd_ly = last_year[12 - first.month :]
    area = i["floor_area_m2"]
    t = Table(
        "summary",
        "全场概况",
        "Site totals",
        [
            Column("项目", "Item"),
            Column("本月", "This month", "kwh"),
            Column("去年同期", "Same month last year", "kwh"),
            Column("同比", "Year on year", "pct"),
        ],
    )

    def add(zh: str, en: str, now: float | None, before: float | None) -> None:
        t.rows.append([f"{zh} / {en}", now, before, change(now, before)])

    s, sl = b["site"], (ly or {}).get("site")
    add("用电量 (kWh)", "Electricity (kWh)", s["kwh"], sl and sl["kwh"])
    add("电费 (元)", "Electricity cost (CNY)", _electricity_cny(b), _electricity_cny(ly))
    add("用水量 (m³)", "Water (m³)", s["water_m3"], sl and sl["water_m3"])
    add("水费 (元)", "Water cost (CNY)", _water_cny(b), _water_cny(ly))
    add(
        "单位面积用电 (kWh/m²)",
        "Electricity per m² (kWh/m²)",
        s["kwh_per_m2"],
        sl and sl["kwh_per_m2"],
    )
    add(
        "人均用电 (kWh/人)",
        "Electricity per person (kWh)",
        s["kwh_per_person"],
        sl and sl["kwh_per_person"],
    )
    ytd = i["year_to_date"]
    add("年初至今用电量 (kWh)", "Year to date, electricity (kWh)", ytd["kwh"], _sum(ytd_ly, "kwh"))
    add(
        "年初至今用水量 (m³)", "Year to date, water (m³)", ytd["water_m3"], _sum(ytd_ly, "water_m3")
    )
    kwh_a = _sum(last_year, "kwh")
    add(
        "近12个月单位面积用电 (kWh/m²·a)",
        "12 months, kWh/m²·a",
        i["kwh_per_m2"],
        kwh_a and round(kwh_a / area, 3),
    )
    if ly is None:
        t.notes.append("去年同期无数据 / no data for the same month last year")
    return t


def _sum(months: list[SiteMonth], key: str) -> float | None:
    """A sum over months, None when none of them has data."""
    values = [getattr(m, key) for m in months]
    return round(sum(values), 3) if any(values) else None


def monthly(data: ReportData) -> Table:
    t = Table(
        "monthly",
        "逐月用电用水",
        "Month by month",
        [
            Column("月份", "Month"),
            Column("用电量 kWh", "Electricity kWh", "kwh"),
            Column("去年同月 kWh", "Same month last year kWh", "kwh"),
            Column("同比", "Year on year", "pct"),
            Column("用水量 m³", "Water m³", "kwh"),
            Column("去年同月 m³", "Same month last year m³", "kwh"),
        ],
    )
    months = data.months
    for now, before in zip(months[12:], months[:12], strict=True):
        last_kwh, last_m3 = before.kwh or None, before.water_m3 or None  # 0: no data then
        t.rows.append(
            [now.month, now.kwh, last_kwh, change(now.kwh, last_kwh), now.water_m3, last_m3]
        )
    return t


def departments(data: ReportData) -> Table:
    b = data.bills
    before = {r["tenant"]: r for r in (data.last_year or {}).get("rows", [])}
    t = Table(
        "departments",
        "各部门用能与费用（按单位面积用电排名）",
        "Departments, ranked by kWh/m²",
        [
            Column("排名", "Rank", "int"),
            Column("部门", "Department"),
            Column("楼栋", "Building"),
            Column("面积 m²", "Area m²", "kwh"),
            Column("人数", "Staff", "int"),
            Column("自有计量 kWh", "Own kWh", "kwh"),
            Column("分摊 kWh", "Apportioned kWh", "kwh"),
            Column("用电合计 kWh", "Electricity kWh", "kwh"),
            Column("去年同期 kWh", "Last year kWh", "kwh"),
            Column("同比", "Year on year", "pct"),
            Column("电费 元", "Electricity CNY", "cny"),
            Column("用水 m³", "Water m³", "kwh"),
            Column("水费 元", "Water CNY", "cny"),
            Column("费用合计 元", "Total CNY", "cny"),
            Column("kWh/m²", "", "ratio"),
            Column("kWh/人", "kWh/person", "ratio"),
        ],
    )
    for r in b["rows"]:
        last = before.get(r["tenant"])
        last_kwh = last["kwh"] if last else None
        t.rows.append(
            [
                r["rank"], r["name"], r["building"], r["floor_area_m2"], r["staff"],
                r["kwh_own"], round(r["kwh"] - r["kwh_own"], 3), r["kwh"], last_kwh,
                change(r["kwh"], last_kwh), r["cny_electricity"], r["water_m3"], r["cny_water"],
                r["cny"], r["kwh_per_m2"], r["kwh_per_person"],
            ]
        )  # fmt: skip
    left = b["unallocated"]
    t.rows.append(
        [None, "未分摊 / unallocated", "", None, None, None, None, left["kwh"], None, None,
         left["cny_electricity"], left["water_m3"], left["cny_water"], left["cny"], None, None]
    )  # fmt: skip
    rec = b["reconciliation"]
    t.total = [
        None, "合计（=总表计量）/ total (= incomers)", "", None, None, None, None,
        rec["electricity"]["measured"], None, None, _electricity_cny(b),
        rec["water"]["measured"], _water_cny(b),
        None if not b["priced"] else round((_electricity_cny(b) or 0) + (_water_cny(b) or 0), 2),
        None, None,
    ]  # fmt: skip
    if not b["priced"]:
        t.notes.append(
            "未配置电价（[billing.tariff]）：仅列电量与水量 / no site tariff: kWh and m³ only"
        )
    for name, check in rec.items():
        t.notes.append(
            f"{'电' if name == 'electricity' else '水'}：总表 {check['measured']:,.3f} = 部门自有 "
            f"{check['departments_own']:,.3f} + 分摊 {check['apportioned']:,.3f} + 未分摊 "
            f"{check['unallocated']:,.3f} {check['unit']}（差 {check['difference']:.3f}） / "
            f"{name}: meters = own + apportioned + unallocated"
        )
    return t


def buildings(data: ReportData) -> Table:
    rows = data.bills["rows"]
    by_id = {b["id"]: b for b in data.intensity["buildings"]}
    gbt = next((x for x in data.intensity["targets"] if x["id"] == "gbt51161"), None)
    t = Table(
        "buildings",
        "各楼栋（其部门账单之和）",
        "Buildings (what their departments were billed)",
        [
            Column("楼栋", "Building"),
            Column("名称", "Name"),
            Column("面积 m²", "Area m²", "kwh"),
            Column("人数", "Staff", "int"),
            Column("本月用电 kWh", "Electricity kWh", "kwh"),
            Column("本月用水 m³", "Water m³", "kwh"),
            Column("本月费用 元", "CNY", "cny"),
            Column("本月 kWh/m²", "Month kWh/m²", "ratio"),
            Column("年初至今 kWh", "Year to date kWh", "kwh"),
            Column("近12月 kWh/m²·a", "12 months kWh/m²·a", "ratio"),
            Column("对标 GB/T 51161", "Against GB/T 51161"),
        ],
    )
    for b in data.site.buildings:
        mine = [r for r in rows if r["building"] == b.id]
        kwh = round(sum(r["kwh"] for r in mine), 3)
        cny = round(sum(r["cny"] for r in mine), 2) if data.bills["priced"] else None
        figures = by_id[b.id]
        status = (gbt or {}).get("buildings", {}).get(b.id, {}).get("status")
        t.rows.append(
            [
                b.id, b.name, b.floor_area_m2, sum(r["staff"] for r in mine), kwh,
                round(sum(r["water_m3"] for r in mine), 3), cny, kwh / b.floor_area_m2,
                figures["year_to_date"]["kwh"], figures["kwh_per_m2"],
                STATUS.get(status, "") if status else "",
            ]
        )  # fmt: skip
    t.notes.append(
        "楼栋数据为其部门账单（自有计量 + 分摊）之和；未分摊部分只计入全场 / a building's figures "
        "are its departments' bills; the unallocated remainder belongs to the site only"
    )
    return t


def targets(data: ReportData) -> Table:
    i = data.intensity
    w = i["window"]
    t = Table(
        "intensity",
        f"能耗强度对标（{w['first']} 至 {w['last']}）",
        f"Energy-use intensity against the targets ({w['first']} to {w['last']})",
        [
            Column("指标", "Target"),
            Column("口径", "Metric"),
            Column("约束值", "Constraint", "ratio"),
            Column("引导值", "Guide", "ratio"),
            Column("对象", "Where"),
            Column("实际值", "Value", "ratio"),
            Column("结论", "Status"),
        ],
    )
    for x in i["targets"]:
        mark = "（暂定 provisional）" if x["provisional"] else ""
        if "site" in x:
            t.rows.append(
                [x["id"] + mark, x["metric"], x["constraint"], x["guide"], "全场 site",
                 x["site"]["value"], STATUS[x["site"]["status"]]]
            )  # fmt: skip
        for b_id, v in x.get("buildings", {}).items():
            t.rows.append(
                [x["id"] + mark, x["metric"], x["constraint"], x["guide"], b_id, v["value"],
                 STATUS[v["status"]]]
            )  # fmt: skip
    for x in i["targets"]:
        t.notes.append(f"{x['id']}：{x['source']}")
    if not w["complete"]:
        t.notes.append(
            f"近12个月中仅 {w['months_with_data']} 个月有数据，数值为已有月份之和，未折算全年 / only "
            f"{w['months_with_data']} of 12 months have data: sums, not scaled to a year"
        )
    return t


__all__ = [
    "STATUS",
    "Column",
    "Table",
    "buildings",
    "change",
    "departments",
    "monthly",
    "summary",
    "targets",
]

"""The report's contract and data-quality sections (the savings, the guarantee, meters
offline and data gaps), and `sections()`: every table of the report in the order both
documents show them (`reports.tables` holds the site's and the table type)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from processing.coverage import MeterCoverage
from reports.content import ContractMonth, ReportData
from reports.tables import (
    Column,
    Table,
    buildings,
    departments,
    monthly,
    summary,
    targets,
)

SAVINGS_STATUS = {
    "final": "正式 final",
    "unreliable": "不可靠 unreliable (a fit or sufficiency criterion failed)",
    "provisional": "暂定 provisional",
    "missing": "未出具 not written",
    "outside": "不在报告期 outside the reporting period",
}
UTILITY = {
    "electricity": "电 electricity",
    "water": "水 water",
    "gas": "天然气 gas",
    "thermal": "热 heat",
}


def _local(data: ReportData, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=data.site.site.tz).strftime("%m-%d %H:%M")


def savings(data: ReportData) -> Table:
    t = Table(
        "savings",
        "合同能源管理节能量（本月）",
        "Energy-performance contract savings (this month)",
        [
            Column("合同", "Contract"),
            Column("能源", "Utility"),
            Column("状态", "Status"),
            Column("版本", "Version", "int"),
            Column("调整后基线", "Adjusted baseline", "kwh"),
            Column("实际", "Actual", "kwh"),
            Column("节能量", "Avoided", "kwh"),
            Column("±90 %", "±90 %", "kwh"),
            Column("节能率", "Savings %", "share"),
            Column("节能效益 元", "Value CNY", "cny"),
            Column("年度累计节能量", "Contract year to date", "kwh"),
            Column("累计节能量", "Cumulative", "kwh"),
            Column("累计 ±90 %", "Cumulative ±90 %", "kwh"),
            Column("减碳 tCO2", "Carbon tCO2", "ratio"),
        ],
    )
    for c in data.savings:
        t.rows.append(_savings_row(c))
    if not data.savings:
        t.notes.append("本场址未配置合同 / the site has no contract")
    t.notes.append(
        "节能量 = 调整后基线 − 实际（IPMVP / ASHRAE Guideline 14），±90 % 为其不确定度 / avoided = "
        "adjusted baseline − actual, with its 90 % uncertainty"
    )
    return t


def _savings_row(c: ContractMonth) -> list[Any]:
    head = [c.contract_id, UTILITY.get(c.utility, c.utility), SAVINGS_STATUS[c.status], c.version]
    n = c.numbers
    if n is None:
        return head + [None] * 10
    m, ytd, cum = n["month"], n["year_to_date"], n["cumulative"]
    money = m.get("money") or {}
    share = m["avoided"] / m["adjusted_baseline"] if m["adjusted_baseline"] else None
    return [
        *head, m["adjusted_baseline"], m["actual"], m["avoided"], m["u90"]["u"], share,
        money.get("total_cny"), ytd["avoided"], cum["avoided"], cum["u90"]["u"], m["carbon_t"],
    ]  # fmt: skip


def guarantee(data: ReportData) -> Table:
    t = Table(
        "guarantee",
        "节能量保证（合同年度）",
        "Guaranteed savings (contract year)",
        [
            Column("合同", "Contract"),
            Column("合同年度", "Contract year", "int"),
            Column("年度起止", "Year"),
            Column("保证节能量 kWh", "Guaranteed kWh", "kwh"),
            Column("按期应达 kWh", "Pro rata kWh", "kwh"),
            Column("已实现 kWh", "Achieved kWh", "kwh"),
            Column("差额 kWh", "Shortfall kWh", "kwh"),
            Column("差额 元", "Shortfall CNY", "cny"),
            Column("结论", "Status"),
        ],
    )
    for c in data.savings:
        g = c.numbers and c.numbers.get("guarantee")
        if not g:
            continue
        state = "年度已结束 year complete" if g["year_complete"] else "年度进行中 year running"
        verdict = "达标 on track" if g["shortfall_kwh"] <= 0 else "未达标 short"
        t.rows.append(
            [c.contract_id, g["contract_year"], f"{g['year_start']} – {g['year_end']}",
             g["guaranteed_kwh"], g["pro_rata_kwh"], g["achieved_kwh"], g["shortfall_kwh"],
             g["shortfall_cny"], f"{verdict}，{state}"]
        )  # fmt: skip
    if not t.rows:
        t.notes.append("本月无带保证条款的合同结算单 / no statement with a guarantee this month")
    return t


def data_quality(data: ReportData) -> Table:
    rows = [c for c in data.coverage if c.gaps]
    offline = [c for c in rows if c.offline_at_end]
    t = Table(
        "gaps",
        "离线表计与数据缺失",
        "Meters offline and data gaps",
        [
            Column("表计", "Meter"),
            Column("类型", "Kind"),
            Column("数据完整率", "Hours with data", "share"),
            Column("缺失小时", "Hours missing", "int"),
            Column("缺失段数", "Gaps", "int"),
            Column("最长缺失", "Longest gap"),
            Column("月末离线", "Offline at month end"),
        ],
    )
    for c in sorted(rows, key=lambda c: (c.share, c.meter_id)):
        t.rows.append(_gap_row(data, c))
    total = len(data.coverage)
    t.notes.append(
        f"共 {total} 块表计：{total - len(rows)} 块数据完整，{len(rows)} 块有缺失，{len(offline)} 块月末离线 / "
        f"{total} meters: {total - len(rows)} complete, {len(rows)} with gaps, {len(offline)} "
        "offline at month end (hourly: an hour without any reading is missing)"
    )
    return t


def _gap_row(data: ReportData, c: MeterCoverage) -> list[Any]:
    g = c.longest_gap
    longest = f"{_local(data, g.start_ms)} → {_local(data, g.end_ms)}（{g.hours} h）" if g else ""
    return [
        c.meter_id, c.kind, c.share, c.hours - c.hours_with_data, len(c.gaps), longest,
        "是 yes" if c.offline_at_end else "",
    ]  # fmt: skip


def sections(data: ReportData) -> list[Table]:
    """Every table of the report, in the order both documents show them."""
    return [
        summary(data),
        monthly(data),
        departments(data),
        buildings(data),
        targets(data),
        savings(data),
        guarantee(data),
        data_quality(data),
    ]


__all__ = ["data_quality", "guarantee", "savings", "sections"]

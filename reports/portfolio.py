"""The monthly energy report at portfolio level, as an Excel workbook: every site's month and
its twelve months through it (kWh, m³, kWh/m², avoided kWh ± 90 %, statements), ranked, with
the portfolio's totals (its 90 % uncertainty the root sum of squares of the contracts'), and
every contract's figures. The numbers are `processing.portfolio`'s, as the API serves them.

    write_portfolio_xlsx("六安市公共机构能耗监测", "2026-11", month, twelve, Path("p.xlsx"))
"""

from __future__ import annotations

from pathlib import Path

from processing.portfolio import PortfolioFigures
from reports.tables import Column, Table
from reports.xlsx import INSTALL_HINT, _Formats, _write_table


def site_table(figures: PortfolioFigures, key: str, zh: str, en: str) -> Table:
    """The sites ranked by intensity, with the portfolio's totals."""
    by_id = {s.site_id: s for s in figures.sites}
    table = Table(
        key,
        zh,
        en,
        [
            Column("排名", "rank", "int"),
            Column("单位", "site"),
            Column("名称", "name"),
            Column("建筑面积 m²", "floor area m²", "kwh"),
            Column("用电 kWh", "electricity kWh", "kwh"),
            Column("用水 m³", "water m³", "kwh"),
            Column("单位面积能耗 kWh/m²", "kWh/m²", "ratio"),
            Column("节能量 kWh", "avoided kWh", "kwh"),
            Column("±90 % kWh", "±90 % kWh", "kwh"),
        ],
    )
    for rank, sid in enumerate(figures.by_intensity, start=1):
        s = by_id[sid]
        table.rows.append(
            [rank, s.site_id, s.name, s.floor_area_m2, s.kwh, s.water_m3, s.kwh_per_m2]
            + ([s.avoided_kwh, s.u90_kwh] if s.contracts else [None, None])
        )
    table.total = [
        None,
        "合计 total",
        "",
        figures.floor_area_m2,
        figures.kwh,
        figures.water_m3,
        figures.kwh_per_m2,
        figures.avoided_kwh,
        figures.u90_kwh,
    ]
    table.notes.append(
        "合计的 ±90 % 为各合同绝对不确定度的平方和开方（各单位基线相互独立）/ the total's "
        "±90 % is the root sum of squares of the contracts' (independent baselines)"
    )
    return table


def contract_table(figures: PortfolioFigures) -> Table:
    table = Table(
        "contracts",
        "合同节能量",
        "Contracts' avoided energy",
        [
            Column("单位", "site"),
            Column("合同", "contract"),
            Column("节能服务公司", "vendor"),
            Column("起", "from"),
            Column("止", "to"),
            Column("调整后基线", "adjusted baseline", "kwh"),
            Column("实际", "actual", "kwh"),
            Column("节能量", "avoided", "kwh"),
            Column("±90 %", "±90 %", "kwh"),
            Column("单位", "unit"),
            Column("终版月数", "final months", "int"),
            Column("暂估月数", "provisional months", "int"),
        ],
    )
    for s in figures.sites:
        for c in s.contracts:
            table.rows.append(
                [
                    s.site_id,
                    c.contract_id,
                    c.vendor,
                    c.start.isoformat() if c.start else "",
                    c.end.isoformat() if c.end else "",
                    c.adjusted_baseline,
                    c.actual,
                    c.avoided,
                    c.u90,
                    c.unit,
                    c.status.final,
                    c.status.provisional,
                ]
            )
    return table


def write_portfolio_xlsx(
    name: str, month: str, month_figures: PortfolioFigures, twelve: PortfolioFigures, path: Path
) -> Path:
    """The workbook: the month, the twelve months through it, and the contracts."""
    try:
        import xlsxwriter
    except ImportError as exc:  # the optional extra
        raise RuntimeError(INSTALL_HINT) from exc
    book = xlsxwriter.Workbook(str(path))
    fmt = _Formats(book)
    first = twelve.window.first.strftime("%Y-%m")
    for sheet_name, tables in (
        (
            "各单位 Sites",
            [
                site_table(month_figures, "month", f"{month} 各单位", f"sites in {month}"),
                site_table(twelve, "twelve", f"{first}–{month} 各单位", f"{first} to {month}"),
            ],
        ),
        ("合同 Contracts", [contract_table(twelve)]),
    ):
        sheet = book.add_worksheet(sheet_name)
        sheet.write(0, 0, f"{name} 月度能耗报告 / portfolio report {month}", fmt.title)
        sheet.set_column(0, 1, 18)
        sheet.set_column(2, 2, 28)
        sheet.set_column(3, 12, 14)
        row = 2
        for table in tables:
            _, row = _write_table(sheet, fmt, row, table)
    book.close()
    return path

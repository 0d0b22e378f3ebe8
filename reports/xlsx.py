"""The month's report as an Excel workbook (XlsxWriter): one sheet per part, numbers as
numbers (the API's figures, full precision, shown rounded by the cell format), a native
Excel chart of the site's months against the year before, and the bills' every-pool detail.

    write_xlsx(data, Path("report.xlsx"))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.content import ReportData
from reports.sections import sections
from reports.tables import Kind, Table

if TYPE_CHECKING:
    from xlsxwriter.workbook import Workbook
    from xlsxwriter.worksheet import Worksheet

INSTALL_HINT = "the monthly report needs its extra: pip install 'epcmon[report]'"

NUMBER_FORMATS: dict[Kind, str] = {
    "text": "@",
    "int": "0",
    "kwh": "#,##0.0",
    "cny": "#,##0.00",
    "ratio": "#,##0.00",
    "pct": "+0.0%;-0.0%;0.0%",
    "share": "0.0%",
}
SHEETS = {
    "summary": "概览 Summary",
    "monthly": "概览 Summary",
    "departments": "部门 Departments",
    "buildings": "楼栋 Buildings",
    "intensity": "能耗强度 Intensity",
    "savings": "节能效益 Savings",
    "guarantee": "节能效益 Savings",
    "gaps": "数据质量 Data quality",
}
"""Which sheet each table goes on (in order of first appearance)."""


class _Formats:
    def __init__(self, book: Workbook) -> None:
        self.title = book.add_format({"bold": True, "font_size": 14})
        self.heading = book.add_format({"bold": True, "font_size": 11, "font_color": "#1F4E79"})
        self.header = book.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"}
        )
        self.note = book.add_format({"italic": True, "font_color": "#595959"})
        self.cells = {
            k: book.add_format({"num_format": f, "border": 1}) for k, f in NUMBER_FORMATS.items()
        }
        self.totals = {
            k: book.add_format({"num_format": f, "border": 1, "bold": True, "top": 2})
            for k, f in NUMBER_FORMATS.items()
        }


def _write_table(sheet: Worksheet, fmt: _Formats, row: int, table: Table) -> tuple[int, int]:
    """Write `table` from `row`; return the rows of its first and last data line."""
    sheet.write(row, 0, table.title, fmt.heading)
    row += 1
    for col, column in enumerate(table.columns):
        sheet.write(row, col, column.title, fmt.header)
    first = row + 1
    lines = [(r, fmt.cells) for r in table.rows]
    if table.total is not None:
        lines.append((table.total, fmt.totals))
    for values, formats in lines:
        row += 1
        for col, (column, value) in enumerate(zip(table.columns, values, strict=True)):
            _cell(sheet, row, col, value, formats[column.kind])
    for note in table.notes:
        row += 1
        sheet.write(row, 0, note, fmt.note)
    return first, row + 2


def _cell(sheet: Worksheet, row: int, col: int, value: Any, cell_format: Any) -> None:
    if value is None or value == "":
        sheet.write_blank(row, col, None, cell_format)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        sheet.write_string(row, col, str(value), cell_format)
    else:
        sheet.write_number(row, col, float(value), cell_format)


def write_xlsx(data: ReportData, path: Path) -> Path:
    try:
        import xlsxwriter
    except ImportError as exc:  # an optional extra
        raise ImportError(INSTALL_HINT) from exc
    site = data.site.site
    book = xlsxwriter.Workbook(str(path), {"constant_memory": False})
    book.set_properties(
        {
            "title": f"{site.name} {data.month} 能耗月报 / monthly energy report",
            "subject": f"{site.id} {data.month}",
            "author": "epcmon",
            "comments": f"generated {data.generated_at}",
        }
    )
    fmt = _Formats(book)
    sheets: dict[str, Worksheet] = {}
    next_row: dict[str, int] = {}
    placed: dict[str, tuple[str, int, int]] = {}
    for table in sections(data):
        name = SHEETS[table.key]
        if name not in sheets:
            sheets[name] = book.add_worksheet(name)
            next_row[name] = 0
        sheet = sheets[name]
        if name == SHEETS["summary"] and next_row[name] == 0:
            next_row[name] = _cover(sheet, fmt, data)
        first, after = _write_table(sheet, fmt, next_row[name], table)
        placed[table.key] = (name, first, first + len(table.rows) - 1)
        _name_range(book, table.key, name, first - 1, first + len(table.rows) - 1, table)
        if table.total is not None:
            row = first + len(table.rows)
            _name_range(book, f"{table.key}_total", name, row, row, table)
        next_row[name] = after
        widths = [max(10, min(34, len(c.title) + 2)) for c in table.columns]
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)
    _chart(book, sheets[SHEETS["summary"]], placed["monthly"], next_row[SHEETS["summary"]])
    departments = sheets[SHEETS["departments"]]
    departments.freeze_panes(placed["departments"][1], 2)
    _detail(book, fmt, data)
    book.close()
    return path


def _name_range(book: Workbook, key: str, sheet: str, first: int, last: int, table: Table) -> None:
    """A workbook-level name for a table's header and rows (`departments`, ...): formulas
    and readers find a table by it, wherever it sits."""
    from xlsxwriter.utility import xl_rowcol_to_cell

    corner = xl_rowcol_to_cell(first, 0, row_abs=True, col_abs=True)
    end = xl_rowcol_to_cell(last, len(table.columns) - 1, row_abs=True, col_abs=True)
    book.define_name(key, f"='{sheet}'!{corner}:{end}")


def _cover(sheet: Worksheet, fmt: _Formats, data: ReportData) -> int:
    site, b = data.site.site, data.bills
    sheet.write(0, 0, f"{site.name} {data.month} 能耗月报 / Monthly energy report", fmt.title)
    lines = [
        f"月份 / month: {data.month}（{b['start']} – {b['end']} UTC）",
        f"数据截至 / data through: {b['through'] or '无数据 no data'}",
        f"电价 / tariff: {'按场址分时电价计费 site time-of-use tariff' if b['priced'] else '未配置 none'}",
        f"生成时间 / generated: {data.generated_at}（epcmon）",
    ]
    for i, line in enumerate(lines, 1):
        sheet.write(i, 0, line)
    return len(lines) + 2


def _chart(book: Workbook, sheet: Worksheet, where: tuple[str, int, int], row: int) -> None:
    name, first, last = where
    chart = book.add_chart({"type": "column"})
    for col, label in ((1, "用电量 kWh / this year"), (2, "去年同月 / year before")):
        chart.add_series(
            {
                "name": label,
                "categories": [name, first, 0, last, 0],
                "values": [name, first, col, last, col],
            }
        )
    chart.set_title({"name": "逐月用电量 / Electricity by month"})
    chart.set_y_axis({"num_format": "#,##0"})
    chart.set_size({"width": 760, "height": 320})
    sheet.insert_chart(row, 0, chart)


def _detail(book: Workbook, fmt: _Formats, data: ReportData) -> None:
    """The bills with every pool and time-of-use period a column: the API's CSV."""
    header, rows = data.bills_csv
    sheet = book.add_worksheet("分摊明细 Apportionment")
    sheet.write(0, 0, "部门账单明细（与接口 CSV 相同）/ The bills, as the API's CSV", fmt.heading)
    for col, name in enumerate(header):
        sheet.write(1, col, name, fmt.header)
    for r, values in enumerate(rows, 2):
        for col, value in enumerate(values):
            _cell(sheet, r, col, value, fmt.cells["text" if isinstance(value, str) else "ratio"])
    sheet.freeze_panes(2, 3)
    sheet.set_column(0, len(header) - 1, 12)


__all__ = ["INSTALL_HINT", "write_xlsx"]

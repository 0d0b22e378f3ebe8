"""The month's report as a PDF (fpdf2), Chinese first, in the bundled CJK font (embedded as
a subset, with its text extractable): a cover page with the site's totals and the chart of
its months, then one table per part, wide tables on landscape pages.

    write_pdf(data, Path("report.pdf"))
"""

from __future__ import annotations

import io
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from reports import fonts
from reports.charts import departments_chart, months_chart
from reports.content import ReportData
from reports.sections import sections
from reports.tables import Kind, Table

log = logging.getLogger("epcmon.reports")

INSTALL_HINT = "the monthly report needs its extra: pip install 'epcmon[report]'"
FONT = "cjk"
BLUE = (31, 78, 121)
GREY = (89, 89, 89)
HEADER_FILL = (221, 235, 247)


def format_value(value: Any, kind: Kind) -> str:
    if value is None or value == "":
        return "–" if kind != "text" else ""
    if kind == "text" or isinstance(value, str):
        return str(value)
    v = float(value)
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "kwh":
        return f"{v:,.1f}"
    if kind in ("cny", "ratio"):
        return f"{v:,.2f}"
    if kind == "pct":
        return f"{v * 100:+.1f} %"
    return f"{v * 100:.1f} %"  # share


def codes(chars: str) -> str:
    """`U+5803 堃, ...`: the code point says which character even where it cannot be drawn."""
    return ", ".join(f"U+{ord(c):04X} {c}" for c in chars)


def _width(text: str) -> int:
    """Rough display width: a CJK character is two Latin ones."""
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def texts_of(data: ReportData, tables: list[Table]) -> list[str]:
    """Every string the PDF draws (to check the fonts can draw them)."""
    out = [data.site.site.name, *(b.name for b in data.site.buildings)]
    for t in tables:
        out += [t.title, *t.notes, *(c.title for c in t.columns)]
        for row in [*t.rows, *([t.total] if t.total else [])]:
            out += [str(v) for v in row if isinstance(v, str)]
    return out


def _document() -> Any:
    try:
        from fpdf import FPDF
    except ImportError as exc:  # an optional extra
        raise ImportError(INSTALL_HINT) from exc

    class Report(FPDF):
        running_title = ""

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(FONT, size=7)
            self.set_text_color(*GREY)
            self.cell(
                0,
                5,
                f"{self.running_title}    第 {self.page_no()} 页 / page {self.page_no()}",
                align="C",
            )

    return Report(format="A4", unit="mm")


def write_pdf(data: ReportData, path: Path) -> Path:
    tables = sections(data)
    texts = texts_of(data, tables)
    pdf = _document()
    site = data.site.site
    pdf.running_title = f"{site.name} {data.month} 能耗月报"
    pdf.set_title(f"{site.name} {data.month} 能耗月报 / Monthly energy report")
    pdf.set_author("epcmon")
    pdf.set_subject(f"{site.id} {data.month}")
    pdf.add_font(FONT, "", str(fonts.FONT_FILE))
    extra = fonts.fallback(texts)
    if extra is not None:
        pdf.add_font("cjk-fallback", "", str(extra[0]), collection_font_number=extra[1])
        pdf.set_fallback_fonts(["cjk-fallback"])
    lacking = fonts.missing(texts, extra)
    if lacking:
        log.warning(
            "report %s: no font draws %s: install a CJK font (fonts-noto-cjk)",
            data.month,
            codes(lacking),
        )
    pdf.set_auto_page_break(True, margin=16)
    by_key = {t.key: t for t in tables}
    _cover(pdf, data, by_key["summary"], lacking)
    pdf.image(io.BytesIO(months_chart(data)), w=pdf.epw)
    _table(pdf, by_key["monthly"])
    pdf.add_page(orientation="L")
    _table(pdf, by_key["departments"])
    pdf.add_page(orientation="P")
    pdf.image(io.BytesIO(departments_chart(data)), w=pdf.epw)
    pdf.add_page(orientation="L")  # the rest flows, a page breaking where it must
    for key in ("buildings", "intensity", "savings", "guarantee", "gaps"):
        _table(pdf, by_key[key])
    pdf.output(str(path))
    return path


def _heading(pdf: Any, text: str, size: float = 12) -> None:
    pdf.set_font(FONT, size=size)
    pdf.set_text_color(*BLUE)
    pdf.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(1.5)


def _cover(pdf: Any, data: ReportData, summary: Table, lacking: str) -> None:
    site = data.site.site
    pdf.add_page()
    _heading(pdf, f"{site.name}\n{data.month} 能耗月报", 18)
    pdf.set_font(FONT, size=10)
    pdf.set_text_color(*GREY)
    pdf.multi_cell(
        0,
        5,
        f"Monthly energy report, {site.name_en or site.id}, {data.month}\n"
        f"报送 / for：机关事务管理局 (the administration)\n"
        f"数据截至 / data through：{_through(data)}    "
        f"生成时间 / generated：{data.generated_at}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_text_color(0, 0, 0)
    if lacking:
        pdf.set_text_color(192, 0, 0)
        pdf.multi_cell(
            0,
            5,
            f"以下字符无字体可显示 / no font draws: {codes(lacking)}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)
    _table(pdf, summary)


def _through(data: ReportData) -> str:
    through = data.bills["through"]
    if through is None:
        return "无数据 / no data"
    moment = datetime.fromisoformat(through.replace("Z", "+00:00")).astimezone(data.site.site.tz)
    return f"{moment:%Y-%m-%d %H:%M} ({data.site.site.timezone})"


def _table(pdf: Any, table: Table) -> None:
    from fpdf.fonts import FontFace

    if pdf.will_page_break(40):  # a heading is never left alone at the foot of a page
        pdf.add_page(orientation=pdf.cur_orientation)
    _heading(pdf, table.title, 11)
    size = 6.5 if len(table.columns) > 12 else 7.5
    pdf.set_font(FONT, size=size)
    lines = [*table.rows, *([table.total] if table.total else [])]
    cells = [
        [format_value(v, c.kind) for v, c in zip(row, table.columns, strict=True)] for row in lines
    ]
    weights = []
    for i, c in enumerate(table.columns):
        longest = max([_width(r[i]) for r in cells] + [4])
        head = max(_width(c.zh), min(_width(c.en), 14))
        weights.append(min(max(longest, head), 40) + 2)
    align = tuple("LEFT" if c.kind == "text" else "RIGHT" for c in table.columns)
    heading = [f"{c.zh}\n{c.en}" if c.en else c.zh for c in table.columns]
    with pdf.table(
        col_widths=tuple(weights),
        text_align=align,
        headings_style=FontFace(emphasis="", fill_color=HEADER_FILL, color=BLUE),
        line_height=size * 0.5,
        padding=0.8,
        borders_layout="SINGLE_TOP_LINE",
        first_row_as_headings=True,
        width=pdf.epw,
    ) as out:
        row = out.row()
        for text in heading:
            row.cell(text, align="CENTER")
        for i, values in enumerate(cells):
            total = table.total is not None and i == len(cells) - 1
            style = FontFace(fill_color=(242, 242, 242)) if total else None
            row = out.row(style=style)
            for text in values:
                row.cell(text)
    if table.notes:
        pdf.ln(1)
        pdf.set_font(FONT, size=7)
        pdf.set_text_color(*GREY)
        for note in table.notes:
            pdf.multi_cell(0, 3.6, note, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(4)


__all__ = ["INSTALL_HINT", "format_value", "write_pdf"]

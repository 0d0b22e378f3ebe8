"""The report's charts (matplotlib, drawn with the bundled CJK font), as PNG bytes for the PDF.

- `months_chart`: the site's electricity month by month against the same months a year before;
- `departments_chart`: every department's kWh/m² this month, the ranking of the bills.
"""

from __future__ import annotations

import io
from typing import Any

from reports.content import ReportData
from reports.fonts import fallback, matplotlib_family

DPI = 160


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    _pyplot().close(fig)
    return out.getvalue()


def months_chart(data: ReportData) -> bytes:
    plt = _pyplot()
    family = matplotlib_family()
    months = data.months
    now, before = months[12:], months[:12]
    labels = [m.month[2:] for m in now]
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(7.2, 2.8))
        x = range(len(now))
        ax.bar(
            [i - 0.2 for i in x],
            [m.kwh / 1000 for m in before],
            0.4,
            color="#9DC3E6",
            label="去年同月 / year before",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [m.kwh / 1000 for m in now],
            0.4,
            color="#1F4E79",
            label="本年 / this year",
        )
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_ylabel("MWh")
        ax.set_title("逐月用电量 / Electricity by month", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        return _png(fig)


def departments_chart(data: ReportData) -> bytes:
    plt = _pyplot()
    rows = data.bills["rows"]
    family = matplotlib_family(fallback(r["name"] for r in rows))
    with plt.rc_context({"font.family": family, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(7.2, max(3.0, 0.16 * len(rows) + 1.0)))
        names = [r["name"] for r in rows][::-1]
        values = [r["kwh_per_m2"] for r in rows][::-1]
        ax.barh(range(len(rows)), values, color="#2E75B6", height=0.7)
        ax.set_yticks(range(len(rows)), names, fontsize=6)
        ax.set_xlabel("kWh/m²", fontsize=8)
        ax.set_title("各部门单位面积用电 / Departments, kWh per m²", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        ax.margins(y=0.01)
        fig.tight_layout()
        return _png(fig)


__all__ = ["departments_chart", "months_chart"]

"""The dashboards of a portfolio: every member's four (`members.py`: why one set per site)
and the portfolio overview, on `/api/v1/portfolio` through Infinity.

The overview's months are the dashboard's time range as local months
(`${__from:date:YYYY-MM}`: Grafana formats them in the browser's time zone), by default the
last twelve closed months, the API's own default. Its URLs are the portfolio's routes, so a
key scoped to some sites sees only theirs (the viewer key of the Infinity datasource).
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import barchart, stat, table
from grafana_foundation_sdk.builders.common import TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import Dashboard, DashboardLink, Row
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DashboardLinkType, DynamicConfigValue

from core.config import Portfolio, SiteConfig
from dashboards.grafana.build import TAGS, build_all
from dashboards.grafana.members import PORTFOLIO_TAG, PREFIX
from dashboards.grafana.sources import API
from dashboards.grafana.targets import INFINITY, Infinity

MONTHS = "first=${__from:date:YYYY-MM}&last=${__to:date:YYYY-MM}"
"""The dashboard's time range as the portfolio route's local months."""
FIGURES = f"{API}/portfolio?{MONTHS}"
OVERVIEW_UID = f"{PREFIX}-portfolio"
SITE_LINK = f"/d/{PREFIX}-${{__value.raw}}-overview?${{__url_time_range}}"
"""The link on the sites table's site id: that site's overview dashboard (`uid_for`)."""


def _sites_table() -> table.Panel:
    kwh_m2 = "kWh/m²"
    return (
        table.Panel()
        .title("各单位 (按单位面积能耗排序) / Sites (ranked by intensity)")
        .datasource(INFINITY)
        .span(24)
        .sort_by([TableSortByFieldState().display_name(kwh_m2).desc(False)])
        .override_by_name(
            "单位 / Site",
            [
                DynamicConfigValue(
                    "links", [{"title": "单位概览 / Site overview", "url": SITE_LINK}]
                )
            ],
        )
        .with_target(
            Infinity(FIGURES)
            .root("sites")
            .column("id", "单位 / Site")
            .column("name", "名称 / Name")
            .column("floor_area_m2", "面积 m² / Floor area m²", "number")
            .column("kwh", "用电 kWh / Consumption kWh", "number")
            .column("kwh_per_m2", kwh_m2, "number")
            .column("avoided_kwh", "节能量 kWh / Avoided kWh", "number")
            .column("u90_kwh", "±90 % kWh", "number")
        )
    )


def overview(portfolio: Portfolio) -> Dashboard:
    info = portfolio.info
    d = (
        Dashboard(f"{info.name} 组合概览 / Portfolio overview")
        .uid(OVERVIEW_UID)
        .tags([*TAGS, PORTFOLIO_TAG])
        .timezone(portfolio.sites[0].site.timezone)
        .refresh("5m")
        .time("now-12M/M", "now-1M/M")
        .editable()
        .link(
            DashboardLink("单位 / Sites")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .keep_time(True)
        )
    )
    d = d.with_row(Row("合计 / Totals")).with_panel(
        stat.Panel()
        .title("节能量 (±90 %, 方和根) / Avoided energy (±90 %, root sum of squares)")
        .unit("kWh")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(FIGURES)
            .root("totals")
            .column("avoided_kwh", "节能量 / Avoided", "number")
            .column("u90_kwh", "±90 %", "number")
        )
    )
    d = d.with_panel(
        stat.Panel()
        .title("用电与强度 / Consumption and intensity")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(FIGURES)
            .root("totals")
            .column("kwh", "用电 kWh / Consumption kWh", "number")
            .column("kwh_per_m2", "kWh/m²", "number")
            .column("sites", "单位 / Sites", "number")
            .column("contracts", "合同 / Contracts", "number")
        )
    )
    d = d.with_row(Row("单位 / Sites")).with_panel(_sites_table())
    d = d.with_panel(
        barchart.Panel()
        .title("单位面积能耗排名 / Ranking by intensity (kWh/m²)")
        .unit("kWh/m²")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(FIGURES)
            .root("ranking.by_intensity")
            .column("site", "单位 / Site")
            .column("kwh_per_m2", "kWh/m²", "number")
        )
    )
    d = d.with_panel(
        barchart.Panel()
        .title("节能量排名 (±90 %) / Ranking by avoided energy (±90 %)")
        .unit("kWh")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(FIGURES)
            .root("ranking.by_savings")
            .column("site", "单位 / Site")
            .column("avoided_kwh", "节能量 / Avoided", "number")
            .column("u90_kwh", "±90 %", "number")
        )
    )
    return d.with_panel(
        table.Panel()
        .title("合同与结算单 / Contracts and statements")
        .datasource(INFINITY)
        .span(24)
        .with_target(
            Infinity(FIGURES)
            .root("sites.contracts")  # every site's contracts (ids unique in a portfolio)
            .column("id", "合同 / Contract")
            .column("name", "名称 / Name")
            .column("vendor", "服务公司 / Vendor")
            .column("avoided", "节能量 / Avoided", "number")
            .column("u90", "±90 %", "number")
            .column("unit", "单位 / Unit")
            .column("statements.final", "已结算 / Final", "number")
            .column("statements.provisional", "暂估 / Provisional", "number")
            .column("statements.unreliable", "不可靠 / Unreliable", "number")
            .column("statements.last_final", "最近结算月 / Last final")
        )
    )


def build_portfolio(portfolio: Portfolio) -> dict[str, dict[str, Any]]:
    """The overview (`portfolio`) and every member's dashboards (`<site>-<stem>`), as plain
    JSON data keyed by file stem."""
    out = {"portfolio": json.loads(json.dumps(overview(portfolio).build(), cls=JSONEncoder))}
    for site in portfolio.sites:
        for stem, data in build_all(site).items():
            out[f"{site.site.id}-{stem}"] = data
    return out


def build_any(target: SiteConfig | Portfolio) -> dict[str, dict[str, Any]]:
    """A site file's dashboards, or a portfolio directory's."""
    return build_portfolio(target) if isinstance(target, Portfolio) else build_all(target)


def datasource_site(target: SiteConfig | Portfolio) -> SiteConfig:
    """The site whose `[storage]` and `[api]` the datasources are made of (a portfolio's
    members all carry the shared ones)."""
    return target.sites[0] if isinstance(target, Portfolio) else target

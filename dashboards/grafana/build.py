"""The four dashboards, built from the site file: small builder functions, sorted JSON.

Titles are Chinese first with the English after a slash. Raw meter panels read where the
site's store can be read (`sources.py`: InfluxQL on an InfluxDB site, our API on a DuckDB
site); savings, statements and operations panels query our API through the Infinity
datasource (URLs relative to its base URL, which carries a viewer key). Every series panel
honours the dashboard's time range.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    Dashboard,
    Row,
    TextBoxVariable,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from core.config import EndUse, SiteConfig
from dashboards.grafana.members import in_portfolio, site_tag, uid_for
from dashboards.grafana.sources import ISO_RANGE, RANGE, api_base, reads_for
from dashboards.grafana.targets import INFINITY, Infinity

TAGS = ["epcmon"]
PLANT_ELECTRIC = (EndUse.CHILLER, EndUse.CHW_PUMP, EndUse.CW_PUMP, EndUse.COOLING_TOWER)


def meters_of(site: SiteConfig, *uses: EndUse) -> list[str]:
    return [m.id for m in site.meters if m.end_use in uses]


def dashboard(stem: str, title: str, site: SiteConfig) -> Dashboard:
    """A dashboard of `site`; a portfolio member's has its `site` variable and links, and
    its site id in the title (titles are unique in a Grafana folder; names need not be)."""
    if site.store_scope:
        name = site.site.name
        title = f"{site.site.id} · " + (title if title.startswith(name) else f"{name} {title}")
    d = (
        Dashboard(title)
        .uid(uid_for(site, stem))
        .tags(TAGS + ([site_tag(site)] if site.store_scope else []))
        .timezone(site.site.timezone)
        .refresh("1m")
        .time("now-7d", "now")
        .editable()
    )
    return in_portfolio(d, site) if site.store_scope else d


def contract_variable(site: SiteConfig) -> CustomVariable:
    ids = [c.id for c in site.contracts]
    return CustomVariable("contract").label("合同 / Contract").values(",".join(ids))


def overview(site: SiteConfig) -> Dashboard:
    reads = reads_for(site)
    incomers = meters_of(site, EndUse.INCOMER)
    plant = meters_of(site, *PLANT_ELECTRIC)
    btu = meters_of(site, EndUse.COOLING_DELIVERED)
    water_main = meters_of(site, EndUse.WATER_MAIN)
    weather = meters_of(site, EndUse.WEATHER)
    d = dashboard("overview", f"{site.site.name} 概览 / Site overview", site)
    if site.contracts:
        d = d.with_variable(contract_variable(site))
    d = d.with_row(Row("实时负荷 / Live load")).with_panel(
        stat.Panel()
        .title("总负荷 / Total load")
        .unit("kW")
        .datasource(reads.ref)
        .span(6)
        .with_target(reads.total("power", incomers))
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("进线负荷 / Load by incomer")
        .unit("kW")
        .datasource(reads.ref)
        .span(18)
        .with_target(reads.by_meter("power", incomers))
    )
    if site.contracts:
        d = d.with_panel(
            barchart.Panel()
            .title("每日用电与基线预期 / Daily use against the baseline")
            .unit("kWh")
            .datasource(INFINITY)
            .span(24)
            .with_target(
                Infinity(f"{api_base(site)}/grafana/contracts/$contract/savings?period=day&{RANGE}")
                .column("period", "日期 / Day")
                .column("baseline", "基线预期 / Baseline", "number")
                .column("actual", "实际 / Actual", "number")
            )
        )
    d = d.with_row(Row("分项 / Breakdown"))
    for b in site.buildings:
        d = d.with_panel(
            barchart.Panel()
            .title(f"{b.name} 每日用电 / {b.name_en or b.id} daily electricity")
            .unit("kWh")
            .datasource(INFINITY)
            .span(12)
            .with_target(
                Infinity(f"{api_base(site)}/consumption/buildings/{b.id}?every=1d&{ISO_RANGE}")
                .root("rows")
                .column("time", "时间 / Time", "timestamp")
                .column("value", "用电 / kWh", "number")
            )
        )
    d = d.with_panel(
        table.Panel()
        .title("各部门平均功率 / Mean power by department")
        .unit("kW")
        .datasource(reads.ref)
        .span(12)
        .with_target(reads.departments())
    )
    if water_main:
        panel = (
            timeseries.Panel()
            .title("用水 / Water (m³ per hour)")
            .unit("m3")
            .datasource(reads.ref)
            .span(12)
        )
        for target in reads.hourly_increase("volume", water_main):
            panel = panel.with_target(target)
        d = d.with_panel(panel)
    d = d.with_row(Row("冷站 / Chiller plant"))
    if plant:
        d = d.with_panel(
            timeseries.Panel()
            .title("冷站电功率 / Plant electricity")
            .unit("kW")
            .datasource(reads.ref)
            .span(12)
            .with_target(reads.by_meter("power", plant))
        )
    if plant and btu:
        d = d.with_panel(
            timeseries.Panel()
            .title("供冷量与冷站 COP / Delivered cooling and plant COP")
            .unit("kW")
            .datasource(reads.ref)
            .span(12)
            .with_target(reads.hourly_sum("thermal_power", btu, "cooling", "供冷 / cooling kW"))
            .with_target(reads.hourly_sum("power", plant, "electric", "电 / electric kW"))
        )
    if weather:
        d = d.with_panel(
            timeseries.Panel()
            .title("室外温度 / Outdoor temperature")
            .unit("celsius")
            .datasource(reads.ref)
            .span(24)
            .with_target(reads.mean("outdoor_temperature", weather))
        )
    return d


def meter_detail(site: SiteConfig) -> Dashboard:
    reads = reads_for(site)
    d = dashboard("meter", "电表详情 / Meter detail", site).with_variable(reads.meter_variable())
    d = d.with_panel(
        timeseries.Panel()
        .title("功率 / Power")
        .unit("kW")
        .datasource(reads.ref)
        .span(12)
        .with_target(reads.detail("power"))
    )
    d = d.with_panel(
        barchart.Panel()
        .title("每时段电量 / Energy per interval")
        .unit("kWh")
        .datasource(reads.ref)
        .span(12)
        .with_target(reads.detail_increase("energy_import"))
    )
    for quantity, title, unit in (
        ("voltage_l1", "电压 / Voltage L1", "volt"),
        ("current_l1", "电流 / Current L1", "amp"),
        ("power_factor", "功率因数 / Power factor", "none"),
    ):
        d = d.with_panel(
            timeseries.Panel()
            .title(title)
            .unit(unit)
            .datasource(reads.ref)
            .span(8)
            .with_target(reads.detail(quantity))
        )
    d = d.with_panel(
        timeseries.Panel()
        .title("可用性 (每小时读数) / Availability (readings per hour)")
        .datasource(reads.ref)
        .span(24)
        .with_target(reads.detail_count())
    )
    return d


def savings(site: SiteConfig) -> Dashboard:
    base = f"{api_base(site)}/contracts/$contract"
    grafana = f"{api_base(site)}/grafana/contracts/$contract"  # the same rows, in the range
    first = site.contracts[0].reporting_start if site.contracts else None
    d = (
        dashboard("savings", "节能量 / Contract savings", site)
        .with_variable(contract_variable(site))
        .with_variable(
            TextBoxVariable("month")
            .label("结算月 / Statement month (YYYY-MM)")
            .default_value(first.strftime("%Y-%m") if first else "")
        )
    )
    d = d.time("now-2y", "now").with_panel(
        timeseries.Panel()
        .title("累计节能量 / Cumulative avoided energy")
        .unit("kWh")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{grafana}/savings?period=month&{RANGE}")
            .column("end", "月末 / Month end", "timestamp")
            .column("cumulative", "累计 / Cumulative", "number")
            .timeseries()
        )
        .with_target(
            Infinity(f"{base}/statements")
            .ref_id("B")
            .column("month", "月份 / Month")
            .column("avoided", "节能量 / Avoided", "number")
        )
    )
    d = d.with_panel(
        barchart.Panel()
        .title("每月节能量 (±90%) / Monthly avoided energy (±90 %)")
        .unit("kWh")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{grafana}/savings?period=month&{RANGE}")
            .column("period", "月份 / Month")
            .column("avoided", "节能量 / Avoided", "number")
            .column("u90", "不确定度 / ±90 %", "number")
        )
    )
    d = d.with_panel(
        table.Panel()
        .title(
            "结算单: 节能量, 金额, 节能服务公司分成, 碳减排 / Statement: energy, money, vendor's share, carbon"
        )
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{base}/statements/$month")
            .root("numbers.month")
            .column("avoided", "节能量 kWh / Avoided kWh", "number")
            .column("u90", "±90 %", "number")
            .column("money.total_cny", "节能效益 元 / Savings CNY", "number")
            .column("money.vendor_cny", "服务公司分成 元 / Vendor CNY", "number")
            .column("money.owner_cny", "业主 元 / Owner CNY", "number")
            .column("carbon_t", "减排 tCO₂ / Carbon t", "number")
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("保证节能量 / Against the guarantee")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{base}/statements/$month")
            .root("numbers.guarantee")
            .column("contract_year", "合同年 / Year", "number")
            .column("guaranteed_kwh", "保证 kWh / Guaranteed", "number")
            .column("pro_rata_kwh", "按期 kWh / Pro rata", "number")
            .column("achieved_kwh", "实现 kWh / Achieved", "number")
            .column("shortfall_kwh", "差额 kWh / Shortfall", "number")
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("合同年度 / Contract years")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{base}/savings?period=year")
            .column("period", "年度 / Year")
            .column("baseline", "基线 / Baseline", "number")
            .column("actual", "实际 / Actual", "number")
            .column("avoided", "节能量 / Avoided", "number")
            .column("u68", "±68 %", "number")
            .column("fsu90", "FSU 90 %", "number")
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("模型统计 / Model statistics (ASHRAE 14)")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{base}/baseline")
            .root("model.stats")
            .column("cvrmse", "CV(RMSE)", "number")
            .column("nmbe", "NMBE", "number")
            .column("r2", "R²", "number")
            .column("n", "n", "number")
            .column("n_eff", "n′", "number")
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("数据充分性 / Sufficiency findings")
        .datasource(INFINITY)
        .span(24)
        .with_target(
            Infinity(f"{base}/baseline")
            .root("findings")
            .column("severity", "级别 / Severity")
            .column("code", "代码 / Code")
            .column("clause", "条款 / Clause")
            .column("message", "说明 / Finding")
        )
    )
    return d


def operations(site: SiteConfig) -> Dashboard:
    d = dashboard("operations", "运行状态 / Operations", site).time("now-24h", "now")
    d = d.with_panel(
        table.Panel()
        .title("电表在线状态 / Meters offline")
        .datasource(INFINITY)
        .span(12)
        .with_target(
            Infinity(f"{api_base(site)}/operations/meters")
            .column("meter", "电表 / Meter")
            .column("stale", "离线 / Offline", "boolean")
            .column("last_seen", "最后读数 / Last seen", "timestamp")
            .column("age_s", "间隔 s / Age s", "number")
        )
    )
    d = d.with_panel(
        stat.Panel()
        .title("缓存批次 / Spool depth")
        .datasource(INFINITY)
        .span(6)
        .with_target(
            Infinity(f"{api_base(site)}/operations/spool")
            .column("backend", "存储 / Store")
            .column("spooled_batches", "批次 / Batches", "number")
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("死信 / Dead letters")
        .datasource(INFINITY)
        .span(6)
        .with_target(
            Infinity(f"{api_base(site)}/operations/dead-letters?limit=100")
            .column("time", "时间 / Time", "timestamp")
            .column("source", "来源 / Source")
            .column("reason", "原因 / Reason")
        )
    )
    reads = reads_for(site)
    d = d.with_panel(
        timeseries.Panel()
        .title("数据缺口 (每小时读数) / Data gaps (power readings per hour)")
        .datasource(reads.ref)
        .span(12)
        .with_target(reads.count("1h", "meter"))
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("采集速率 / Collector rate (power readings per minute)")
        .datasource(reads.ref)
        .span(12)
        .with_target(reads.count("1m", "kind"))
    )
    return d


BUILDERS: dict[str, Callable[[SiteConfig], Dashboard]] = {
    "overview": overview,
    "meter": meter_detail,
    "savings": savings,
    "operations": operations,
}
"""File stem -> builder; the savings dashboard only for sites with contracts."""


def build_all(site: SiteConfig) -> dict[str, dict[str, Any]]:
    """Every dashboard as plain JSON data, keyed by file stem."""
    out: dict[str, dict[str, Any]] = {}
    for stem, fn in BUILDERS.items():
        if stem == "savings" and not site.contracts:
            continue
        out[stem] = json.loads(json.dumps(fn(site).build(), cls=JSONEncoder))
    return out


def dumps(data: object) -> str:
    """Sorted, indented JSON with a final newline: what is committed, so diffs are stable."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"

"""Where the meter panels read: InfluxDB (InfluxQL) for an InfluxDB site, our API (Infinity,
`api/routes/grafana.py`) for a DuckDB site, whose store Grafana cannot reach.

Both classes answer the same questions with a target for the panel; `reads_for(site)` picks
one by `storage.backend`. Every series query carries the dashboard's time range: InfluxQL
through `$timeFilter` in each SELECT, Infinity URLs through `${__from}`/`${__to}` (epoch ms).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlencode

from grafana_foundation_sdk.builders.dashboard import CustomVariable, QueryVariable
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

from core.config import MeterKind, SiteConfig
from dashboards.grafana.targets import INFINITY, INFLUX, Infinity, InfluxQL
from processing.rollups import top_meters
from storage.scoped import qualified

Target = cogbuilder.Builder[cogvariants.Dataquery]
RANGE = "from=${__from}&to=${__to}"
"""Grafana's time range in epoch milliseconds, for `/api/v1/grafana/*`."""
ISO_RANGE = "start=${__from:date:iso}&end=${__to:date:iso}"
"""The same as ISO-8601, for the other routes."""
WIDTH_MS = {"1m": 60_000, "1h": 3_600_000}
API = "/api/v1"


def regex(ids: Sequence[str]) -> str:
    """An anchored InfluxQL regex of meter ids. Ids are `[A-Za-z0-9_.-]`, a portfolio's
    `<site>/<meter>`: `.` is escaped (any character otherwise), and so is `/` (it would end
    the regex literal)."""
    return "/^(" + "|".join(re.sub(r"([./])", r"\\\1", i) for i in sorted(ids)) + ")$/"


def api_base(site: SiteConfig) -> str:
    """Where the dashboards' Infinity URLs start: a portfolio member's routes are under
    `/api/v1/sites/$site` (the dashboard's `site` variable), a lone site's at `/api/v1`."""
    return f"{API}/sites/$site" if site.store_scope else API


def department_meters(site: SiteConfig) -> list[str]:
    """Every department's top-most electricity meters: what the department panel sums."""
    out: list[str] = []
    for tenant in site.tenants:
        mine = (m for m in site.meters if m.tenant == tenant.id)
        out += [m.id for m in top_meters(m for m in mine if m.kind is MeterKind.ELECTRICITY)]
    return out


class InfluxReads:
    """InfluxQL on the store's schema: a measurement per quantity, tags site/building/kind/
    meter/tenant, field `value`. A portfolio member's meters are `<site>/<meter>` in the shared
    store, and every query keeps to its site (`"site" = '$site'`)."""

    ref: DataSourceRef = INFLUX

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.scope = site.store_scope
        self._in_site = "\"site\" = '$site' AND " if self.scope else ""

    def _meters(self, meters: Sequence[str]) -> str:
        """The WHERE condition selecting `meters` (site-file ids)."""
        ids = [qualified(self.scope, m) for m in meters] if self.scope else meters
        return f'{self._in_site}"meter" =~ {regex(ids)}'

    def total(self, quantity: str, meters: Sequence[str]) -> Target:
        return InfluxQL(
            f'SELECT sum("last") FROM (SELECT last("value") FROM "{quantity}" WHERE '
            f'{self._meters(meters)} AND $timeFilter GROUP BY "meter") WHERE $timeFilter'
        )

    def by_meter(self, quantity: str, meters: Sequence[str]) -> Target:
        return InfluxQL(
            f'SELECT mean("value") FROM "{quantity}" WHERE {self._meters(meters)} AND '
            '$timeFilter GROUP BY time($__interval), "meter" fill(null)'
        ).alias("$tag_meter")

    def mean(self, quantity: str, meters: Sequence[str]) -> Target:
        return InfluxQL(
            f'SELECT mean("value") FROM "{quantity}" WHERE {self._meters(meters)} AND '
            "$timeFilter GROUP BY time($__interval)"
        )

    def hourly_sum(self, quantity: str, meters: Sequence[str], ref_id: str, label: str) -> Target:
        return (
            InfluxQL(
                f'SELECT sum("mean") FROM (SELECT mean("value") FROM "{quantity}" WHERE '
                f'{self._meters(meters)} AND $timeFilter GROUP BY time(1h), "meter") '
                "WHERE $timeFilter GROUP BY time(1h)"
            )
            .ref_id(ref_id)
            .alias(label)
        )

    def hourly_increase(self, quantity: str, meters: Sequence[str]) -> list[Target]:
        return [
            InfluxQL(
                f'SELECT non_negative_difference(last("value")) FROM "{quantity}" WHERE '
                f'{self._meters(meters)} AND $timeFilter GROUP BY time(1h), "meter"'
            ).alias("$tag_meter")
        ]

    def departments(self) -> Target:
        return InfluxQL(
            'SELECT sum("mean") FROM (SELECT mean("value") FROM "power" WHERE '
            f"{self._meters(department_meters(self.site))} AND $timeFilter "
            'GROUP BY "meter", "tenant") WHERE $timeFilter GROUP BY "tenant"'
        ).table()

    def meter_variable(self) -> QueryVariable | CustomVariable:
        where = " WHERE \"site\" = '$site'" if self.scope else ""
        return (
            QueryVariable("meter")
            .label("电表 / Meter")
            .datasource(INFLUX)
            .query('SHOW TAG VALUES FROM "power" WITH KEY = "meter"' + where)
            .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        )

    def detail(self, quantity: str) -> Target:
        """`$meter` is a value of the meter variable: the stored id (`<site>/<meter>` in a
        portfolio)."""
        return InfluxQL(
            f'SELECT mean("value") FROM "{quantity}" WHERE "meter" = \'$meter\' AND '
            "$timeFilter GROUP BY time($__interval)"
        ).alias("$meter")

    def detail_increase(self, quantity: str) -> Target:
        return InfluxQL(
            f'SELECT non_negative_difference(last("value")) FROM "{quantity}" WHERE '
            "\"meter\" = '$meter' AND $timeFilter GROUP BY time(1h)"
        ).table()

    def detail_count(self) -> Target:
        return InfluxQL(
            'SELECT count("value") FROM "power" WHERE "meter" = \'$meter\' AND $timeFilter '
            "GROUP BY time(1h) fill(0)"
        )

    def count(self, width: str, by: str) -> Target:
        return InfluxQL(
            f'SELECT count("value") FROM "power" WHERE {self._in_site}$timeFilter GROUP BY '
            f'time({width}), "{by}" fill(0)'
        ).alias(f"$tag_{by}")


class ApiReads:
    """Our API through Infinity: `/api/v1/grafana/*` (series as long rows, which the
    `timeseries` format turns wide) and the consumption routes (counters' increase)."""

    ref: DataSourceRef = INFINITY

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.base = api_base(site)

    def _url(self, path: str, meters: Sequence[str], **params: object) -> str:
        query = urlencode([("meter", m) for m in meters] + list(params.items()), safe="${}")
        return f"{self.base}/grafana/{path}?{query}&{RANGE}"

    def _series(self, label: str, meters: Sequence[str], **params: object) -> Infinity:
        return (
            Infinity(self._url("series", meters, **params))
            .column("time", "时间 / Time", "timestamp")
            .column("series", "序列 / Series")
            .column("value", label, "number")
            .timeseries()
        )

    def total(self, quantity: str, meters: Sequence[str]) -> Target:
        return Infinity(self._url("latest", meters, quantity=quantity)).column(
            "value", "合计 / Total", "number"
        )

    def by_meter(self, quantity: str, meters: Sequence[str]) -> Target:
        return self._series(quantity, meters, quantity=quantity, interval_ms="${__interval_ms}")

    def mean(self, quantity: str, meters: Sequence[str]) -> Target:
        return self.by_meter(quantity, meters)

    def hourly_sum(self, quantity: str, meters: Sequence[str], ref_id: str, label: str) -> Target:
        params = {"quantity": quantity, "interval_ms": WIDTH_MS["1h"], "by": "sum"}
        return self._series(label, meters, **params).ref_id(ref_id)

    def hourly_increase(self, quantity: str, meters: Sequence[str]) -> list[Target]:
        return [
            Infinity(f"{self.base}/consumption/meters/{m}?every=1h&{ISO_RANGE}")
            .ref_id(chr(ord("A") + i))
            .root("rows")
            .column("time", "时间 / Time", "timestamp")
            .column("value", m, "number")
            .timeseries()
            for i, m in enumerate(sorted(meters))
        ]

    def departments(self) -> Target:
        return (
            Infinity(f"{self.base}/grafana/tenants?quantity=power&{RANGE}")
            .column("tenant", "部门 / Department")
            .column("name", "名称 / Name")
            .column("value", "平均功率 kW / Mean kW", "number")
        )

    def meter_variable(self) -> QueryVariable | CustomVariable:
        ids = [m.id for m in self.site.meters if m.kind is MeterKind.ELECTRICITY]
        return CustomVariable("meter").label("电表 / Meter").values(",".join(ids))

    def detail(self, quantity: str) -> Target:
        return self._series(quantity, ["$meter"], quantity=quantity, interval_ms="${__interval_ms}")

    def detail_increase(self, quantity: str) -> Target:
        return (
            Infinity(f"{self.base}/consumption/meters/$meter?every=1h&{ISO_RANGE}")
            .root("rows")
            .column("time", "时间 / Time", "timestamp")
            .column("value", "电量 kWh / Energy kWh", "number")
        )

    def detail_count(self) -> Target:
        params = {"quantity": "power", "interval_ms": WIDTH_MS["1h"], "agg": "count"}
        return self._series("读数 / Readings", ["$meter"], **params)

    def count(self, width: str, by: str) -> Target:
        params = {"quantity": "power", "interval_ms": WIDTH_MS[width], "agg": "count", "by": by}
        return self._series("读数 / Readings", [], **params)


def reads_for(site: SiteConfig) -> InfluxReads | ApiReads:
    return InfluxReads(site) if site.storage.backend == "influx" else ApiReads(site)

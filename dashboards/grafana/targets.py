"""Query targets the SDK does not ship: InfluxQL (raw meter data) and Infinity (our API).

Each is a plain `Dataquery` with `to_json()` and a builder, so they plug into any SDK panel's
`with_target`. Tests read them back from the built JSON by their datasource type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import DataSourceRef

INFLUX_TYPE = "influxdb"
INFINITY_TYPE = "yesoreyeram-infinity-datasource"
INFLUX_UID = "epcmon-influxdb"
INFINITY_UID = "epcmon-api"
INFLUX = DataSourceRef(type_val=INFLUX_TYPE, uid=INFLUX_UID)
INFINITY = DataSourceRef(type_val=INFINITY_TYPE, uid=INFINITY_UID)


@dataclass
class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL query (`rawQuery`), with Grafana's `$timeFilter` and `$__interval`."""

    query: str
    ref_id: str = "A"
    alias: str = ""
    result_format: str = "time_series"  # or "table"

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": INFLUX.to_json(),
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            payload["alias"] = self.alias
        return payload


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: str) -> None:
        self._q = InfluxQLQuery(query)

    def ref_id(self, ref_id: str) -> Self:
        self._q.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        self._q.alias = alias
        return self

    def table(self) -> Self:
        self._q.result_format = "table"
        return self

    def build(self) -> InfluxQLQuery:
        return self._q


@dataclass(frozen=True)
class Column:
    selector: str
    text: str
    type: str = "string"  # string | number | timestamp | boolean

    def to_json(self) -> dict[str, object]:
        return {"selector": self.selector, "text": self.text, "type": self.type}


@dataclass
class InfinityQuery(cogvariants.Dataquery):
    """A JSON query against our API: `url` is relative to the datasource's base URL (which
    carries the viewer key); `root_selector` picks the rows, `columns` the fields."""

    url: str
    columns: list[Column] = field(default_factory=list)
    root_selector: str = ""
    ref_id: str = "A"
    format: str = "table"  # or "timeseries"

    def to_json(self) -> dict[str, object]:
        return {
            "columns": [c.to_json() for c in self.columns],
            "datasource": INFINITY.to_json(),
            "filters": [],
            "format": self.format,
            "parser": "backend",
            "refId": self.ref_id,
            "root_selector": self.root_selector,
            "source": "url",
            "type": "json",
            "url": self.url,
            "url_options": {"data": "", "method": "GET"},
        }


class Infinity(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, url: str) -> None:
        self._q = InfinityQuery(url)

    def ref_id(self, ref_id: str) -> Self:
        self._q.ref_id = ref_id
        return self

    def root(self, selector: str) -> Self:
        self._q.root_selector = selector
        return self

    def column(self, selector: str, text: str, type_: str = "string") -> Self:
        self._q.columns.append(Column(selector, text, type_))
        return self

    def timeseries(self) -> Self:
        self._q.format = "timeseries"
        return self

    def build(self) -> InfinityQuery:
        return self._q

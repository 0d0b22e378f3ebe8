"""The time-series store: one interface, several backends (DuckDB embedded, InfluxDB)."""

from storage.base import Agg, Every, Series, TimeSeriesStore

__all__ = ["Agg", "Every", "Series", "TimeSeriesStore"]

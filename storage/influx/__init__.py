"""InfluxDB as the production store: `InfluxStore` (see `storage.influx.store`), its schema
(`storage.influx.schema`), line-protocol encoder and InfluxQL builders."""

from storage.influx.store import InfluxStore

__all__ = ["InfluxStore"]

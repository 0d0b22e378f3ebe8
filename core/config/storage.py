"""Where readings are stored: `[storage]`, `[storage.influx]`, `[storage.spool]`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.config.base import _Model
from core.net import http_port

SECRET_ENV = ("EPCMON_INFLUX_TOKEN", "EPCMON_INFLUX_PASSWORD")
"""The environment variables that carry the store's secrets; no secret is read from a file."""


class InfluxConfig(_Model):
    """InfluxDB, for `backend = "influx"`: `[storage.influx]`; secrets only from the environment.

    The token (2.x, 3.x) is `EPCMON_INFLUX_TOKEN`, the password (1.x) `EPCMON_INFLUX_PASSWORD`;
    a `token` or `password` key in the file is refused.
    """

    # A secret put in the file by mistake must not be echoed by a validation error.
    model_config = ConfigDict(hide_input_in_errors=True)

    url: str = Field(default="http://127.0.0.1:8086", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """Base URL of the server, `http(s)://host:port` (a path prefix is allowed)."""
    mode: Literal["v1", "v2", "v3"] = "v2"
    """`v1`: InfluxDB 1.x (`/write` with database and retention policy, user and password).
    `v2`: InfluxDB ≥ 1.8 and 2.x (`/api/v2/write` through influxdb-client, token; reads through
    the v1 compatibility API, which needs a DBRP mapping of `database`). `v3`: InfluxDB 3.x
    (`/api/v2/write`, bearer token for reads)."""
    database: str = "epcmon"
    """Database for writes in `v1` mode and for InfluxQL reads in every mode (2.x: the
    database name DBRP-mapped to the bucket; 3.x: the database)."""
    retention_policy: str = ""
    """Retention policy (`v1` writes and all reads); empty: the database's default."""
    org: str = ""
    """Organisation for `v2` writes (ignored by 3.x)."""
    bucket: str = ""
    """Bucket for `v2`/`v3` writes; empty: `database`, or `database/retention_policy`."""
    username: str = ""
    """User for `v1` mode (empty: no authentication); the password is `EPCMON_INFLUX_PASSWORD`."""
    precision: Literal["ms", "s"] = "ms"
    """Timestamp precision written. `s` refuses readings that are not on a whole second."""
    gzip: bool = False
    """Compress write bodies (worth it over a slow link, costs CPU on both ends)."""
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    """Timeout of one HTTP request."""
    retries: int = Field(default=3, ge=0, le=20)
    """Retries of a write after a connection error or HTTP ≥ 429, with exponential backoff;
    after the last one the batch goes to the spool."""
    retry_backoff_s: float = Field(default=0.5, ge=0, le=60)
    """First backoff; doubled each retry (a server's `Retry-After` is honoured up to 60 s)."""
    batch_lines: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most lines per write request; larger batches are split."""
    tz_clause: bool = True
    """The server supports InfluxQL `tz()` (1.4+, 2.x, 3.x). `false`: day buckets are
    computed from fixed offsets, one query per span of constant UTC offset."""

    @field_validator("url")
    @classmethod
    def _valid_port(cls, value: str) -> str:
        http_port(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_files(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in ("token", "password"):
                if key in data:
                    raise ValueError(
                        f"`{key}` does not belong in the site file: set "
                        f"EPCMON_INFLUX_{key.upper()} in the environment"
                    )
        return data


class SpoolConfig(_Model):
    """The durable spool for writes the store cannot take now: `[storage.spool]`."""

    path: str = "data/spool.sqlite3"
    """SQLite file of spooled batches, relative to the working directory. Its directory must
    be writable (SQLite keeps its `-wal` and `-shm` files beside it)."""
    max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    """Bound of the spool's payload in bytes; reaching it raises `SpoolFull`, never drops."""
    replay_interval_s: float = Field(default=5.0, ge=0, le=3600)
    """While the store refuses writes, how often the spool drain tries it again (the
    longest a recovered store waits for its backlog)."""
    drain_points: int = Field(default=100_000, ge=1_000, le=1_000_000)
    """Most readings per replay write: the drain coalesces the oldest spooled batches up to
    this many into one write."""


class RetentionConfig(_Model):
    """Retention, roll-ups and compaction of the DuckDB store: `[storage.retention]`. `epcmon run`
    does it once a day; InfluxDB keeps its data by its own retention policies."""

    raw_days: int = Field(default=400, ge=0, le=36_500)
    """Days of raw points kept for quantities that are not counters (power, voltages, currents,
    temperatures, ...), counted back from each daily pass to a local midnight. Older points
    live on for good as hourly roll-ups (count, sum, min, max, first and last of each hour,
    split at the local midnight in zones with half-hour offsets), from which hourly, daily
    and monthly reads answer with the same numbers. Counters (kWh, m³) keep every raw point:
    the M&V reads them. 0: keep every raw point."""
    at: str = Field(default="03:30", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    """Local time of day (the site's zone, `HH:MM`) of the daily pass: retention, then
    compaction when it is worth it."""
    compact_free_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    """Compact the file (copy it into a fresh one, sorted by series and time, and swap them;
    the store keeps working meanwhile) when at least this fraction of it is free space that
    DuckDB would not give back: after deletions, and after rewrites of stored readings.
    1: never."""


class StorageConfig(_Model):
    """The time-series store: `[storage]`."""

    backend: Literal["duckdb", "influx"] = "duckdb"
    """`duckdb`: embedded DuckDB (one process owns the file). `influx`: an InfluxDB server
    (`[storage.influx]`), writes spooled while it cannot be reached (`[storage.spool]`)."""
    path: str = "data/epcmon.duckdb"
    """DuckDB file, relative to the working directory."""
    influx: InfluxConfig = InfluxConfig()
    """The InfluxDB server, for `backend = "influx"`."""
    spool: SpoolConfig = SpoolConfig()
    """The spool in front of InfluxDB."""
    retention: RetentionConfig = RetentionConfig()
    """Retention, roll-ups and compaction of the DuckDB file."""
    statements_path: str = ""
    """SQLite file of fitted baselines and monthly statements; empty: beside the store file
    (`<path>.statements.sqlite`), or with InfluxDB beside the spool (`statements.sqlite` in the
    spool's directory)."""

    @property
    def statements_file(self) -> str:
        if self.statements_path:
            return self.statements_path
        if self.backend == "influx":  # `path` is the DuckDB file's, unused: keep our state together
            return str(PurePath(self.spool.path).with_name("statements.sqlite"))
        return f"{self.path}.statements.sqlite"

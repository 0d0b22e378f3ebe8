"""The embedded store: `DuckDBStore`, one DuckDB file owned by one process.

The package, one job a module:

| module | holds |
|---|---|
| `store` | `DuckDBStore`: the series and newest-point memory, idempotent writes, reads and roll-ups |
| `connection` | the store's connection: per-thread cursors, dropping it when DuckDB invalidates the database, reopening it |
| `files` | opening a file: one owner per file in this process, foreign files refused, why opening failed |
| `sql` | the SQL of reads: time literals, the read range, the roll-up query of every aggregate and width |
| `rollups` | retention's SQL: what is retired, the roll-up rows that outlive raw points, reads from them |
| `retention` | one retention pass: raw points before a local midnight folded into roll-ups and deleted |
| `compact` | compaction: a copy into a fresh file, swapped in while the store keeps working |
| `maintenance` | `StoreMaintenance`: retention then compaction, daily, a supervised part of `epcmon run` |
"""

from storage.duckdb_store.maintenance import StoreMaintenance
from storage.duckdb_store.store import DuckDBStore

__all__ = ["DuckDBStore", "StoreMaintenance"]

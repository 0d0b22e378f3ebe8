"""Opening a DuckDB store file: one owner per file in this process, foreign files refused
before DuckDB sees them, a connection that never fetches extensions, and one-line reasons
for every way opening can fail."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from core.errors import StoreUnavailable

CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS series (
        series_id INTEGER PRIMARY KEY,
        meter_id VARCHAR NOT NULL,
        quantity VARCHAR NOT NULL,
        UNIQUE (meter_id, quantity)
    )
    """,
    "CREATE TABLE IF NOT EXISTS readings (series_id INTEGER, ts TIMESTAMP, value DOUBLE)",
    # Roll-ups of retired raw points (see `storage.duckdb_store.rollups`): one row per series
    # and piece (a UTC hour, split at the local midnight of `retention.tz` where one falls in it)
    """
    CREATE TABLE IF NOT EXISTS rollups (
        series_id INTEGER, ts TIMESTAMP, n BIGINT, total DOUBLE, lo DOUBLE, hi DOUBLE,
        first_v DOUBLE, first_ts TIMESTAMP, last_v DOUBLE, last_ts TIMESTAMP
    )
    """,
    # At most one row: raw points of retired series before `raw_from` are gone
    "CREATE TABLE IF NOT EXISTS retention (tz VARCHAR NOT NULL, raw_from TIMESTAMP NOT NULL)",
)

# Stores open in this process, by resolved path: DuckDB hands a second connect() to the same
# file the same database, which would give two writers two different newest-ts maps.
_OPEN_FILES: set[str] = set()
_OPEN_FILES_LOCK = threading.Lock()

_DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file."""

_WHAT_TO_DO = (
    "restore it from a backup, or move it away and let epcmon create an empty store "
    "(`epcmon store copy` can fill it from another store)"
)


def claim_file(path: str | Path) -> str:
    """Make the file's directory, check the file is a DuckDB database (or absent), and
    register it as open in this process; return its resolved path, the key to release."""
    file = Path(path).expanduser().resolve()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot create the directory of DuckDB store {file}: {exc.strerror or exc}; "
            "choose a path in a directory epcmon can write"
        ) from exc
    check_header(file)
    with _OPEN_FILES_LOCK:
        if str(file) in _OPEN_FILES:
            raise StoreUnavailable(
                f"DuckDB store {file} is already open in this process; "
                "share the one DuckDBStore instead of opening the file twice"
            )
        _OPEN_FILES.add(str(file))
    return str(file)


def release_file(key: str) -> None:
    """The file of `claim_file` may be opened again."""
    with _OPEN_FILES_LOCK:
        _OPEN_FILES.discard(key)


def connect(path: str) -> duckdb.DuckDBPyConnection:
    """A connection to `path` in UTC with the schema in place, or `StoreUnavailable`."""
    try:
        # Never fetch extensions from the network: a foreign file (a SQLite database)
        # would otherwise make DuckDB download a scanner for it.
        con = duckdb.connect(path, config=CONNECT_CONFIG)
    except duckdb.Error as exc:
        raise StoreUnavailable(open_failure(path, exc)) from exc
    try:
        con.execute("SET TimeZone = 'UTC'")
        for statement in SCHEMA:
            con.execute(statement)
    except duckdb.Error as exc:
        con.close()
        raise StoreUnavailable(open_failure(path, exc)) from exc
    except BaseException:
        con.close()
        raise
    return con


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def is_invalidated(exc: duckdb.Error) -> bool:
    return "invalidated" in str(exc)


def check_header(file: Path) -> None:
    """Refuse a file that is not a DuckDB database before DuckDB sees it (DuckDB would try
    to load a reader extension for a SQLite file, or fail with a message that hides the
    file's name)."""
    if file.is_dir():
        raise StoreUnavailable(
            f"DuckDB store {file} is a directory; point [storage] path at a file"
        )
    try:
        with file.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return  # a new store
    except OSError as exc:
        raise StoreUnavailable(f"cannot read DuckDB store {file}: {exc.strerror or exc}") from exc
    if head[8:12] == _DUCKDB_MAGIC:
        return
    if not head:
        what = "is empty (0 bytes: a store whose creation was interrupted?)"
    elif head.startswith(b"SQLite format 3"):
        what = "is a SQLite database, not a DuckDB store"
    else:
        what = "is not a DuckDB database"
    raise StoreUnavailable(f"DuckDB store {file} {what}; {_WHAT_TO_DO}")


def open_failure(path: str, exc: duckdb.Error) -> str:
    """One line saying why DuckDB could not open `path`, and what to do."""
    said = first_line(exc)
    if "could not set lock" in said.lower() or "conflicting lock" in said.lower():
        return (
            f"cannot open DuckDB store {path}: the file is locked; another epcmon process "
            f"probably owns it ({said})"
        )
    if isinstance(exc, duckdb.IOException) and "No space left" in said:
        return f"cannot open DuckDB store {path}: its disk is full ({said})"
    return f"DuckDB store {path} is corrupt or unreadable ({said}); {_WHAT_TO_DO}"

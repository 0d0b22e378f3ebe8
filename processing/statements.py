"""Fitted baselines and monthly statements, kept in a small SQLite file beside the store.

Append-only: a refit or a recomputed statement is a new row (a new version of its month), and
the old ones stay for the auditor (`history()`); the newest is served. The running month's
provisional figures live apart, one row a month replaced on every pass, so an hourly refresh
does not grow the auditor's record. Each row holds the whole record (model, findings,
contract, inputs: `record.py`), so a statement can be recomputed from it alone
(`contract.recompute`), and its status (`final`, `provisional`, or `unreliable: <finding>`
when its baseline fails a criterion), so that the listing need not parse records. SQLite, not
the DuckDB store: this is small transactional state, and the DuckDB file belongs to one writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from processing.baseline import Baseline
from processing.record import Statement, status_of

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS baselines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        contract_id TEXT NOT NULL,
        utility TEXT NOT NULL,
        fitted_at TEXT NOT NULL,
        inputs_digest TEXT NOT NULL,
        body TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS statements (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        contract_id TEXT NOT NULL,
        utility TEXT NOT NULL,
        month TEXT NOT NULL,
        created_at TEXT NOT NULL,
        inputs_digest TEXT NOT NULL,
        avoided REAL NOT NULL,
        body TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS statements_key ON statements (contract_id, utility, month)",
    # The running month's figures (and those of a closed month still settling): one row per
    # month, replaced on every pass; dropped once the month's final statement is written.
    """
    CREATE TABLE IF NOT EXISTS provisional (
        contract_id TEXT NOT NULL,
        utility TEXT NOT NULL,
        month TEXT NOT NULL,
        created_at TEXT NOT NULL,
        inputs_digest TEXT NOT NULL,
        avoided REAL NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (contract_id, utility, month)
    )
    """,
)
_STATUS_COLUMNS = ("statements", "provisional")
"""Tables that got a `status` column after files existed: added to an older file on open
(its rows read `final` or `provisional`, as they were then)."""


@dataclass(frozen=True, slots=True)
class MonthEntry:
    """One month of a contract as the API lists it: its newest figures and their status."""

    month: str
    status: str
    """`final`, `provisional`, or `unreliable: <finding>` (the baseline or the data fails a
    sufficiency or fit criterion: the figures are shown, never as a bare number)."""
    version: int
    """How many final statements the month has had (0 while provisional); the newest is served."""
    created_at: str
    inputs_digest: str
    avoided: float


class StatementStore:
    """Baselines and statements in one SQLite file (or `":memory:"`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, check_same_thread=False)
        self._lock = threading.Lock()
        self._writes = 0  # this store's own commits (data_version does not count them)
        with self._lock, self._con:
            for statement in _SCHEMA:
                self._con.execute(statement)
            for table in _STATUS_COLUMNS:
                columns = {row[1] for row in self._con.execute(f"PRAGMA table_info({table})")}
                if "status" not in columns:
                    self._con.execute(
                        f"ALTER TABLE {table} ADD COLUMN status TEXT NOT NULL DEFAULT ''"
                    )

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def version(self) -> tuple[int, int]:
        """Changes whenever the file's content may have: another connection's commit (the
        worker process's, SQLite's `PRAGMA data_version`) or one of this store's writes. A
        cache over what it reads keeps its entries while this is unchanged."""
        with self._lock:
            (version,) = self._con.execute("PRAGMA data_version").fetchone()
            return int(version), self._writes

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def save_baseline(self, baseline: Baseline) -> int:
        body = json.dumps(baseline.to_dict(), ensure_ascii=False)
        with self._lock, self._con:
            self._writes += 1
            cur = self._con.execute(
                "INSERT INTO baselines (contract_id, utility, fitted_at, inputs_digest, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    baseline.contract_id,
                    baseline.utility,
                    baseline.fitted_at,
                    baseline.inputs_digest,
                    body,
                ),
            )
            return int(cur.lastrowid or 0)

    def latest_baseline(self, contract_id: str, utility: str = "electricity") -> Baseline | None:
        with self._lock:
            row = self._con.execute(
                "SELECT body FROM baselines WHERE contract_id = ? AND utility = ? ORDER BY id DESC LIMIT 1",
                (contract_id, utility),
            ).fetchone()
        return None if row is None else Baseline.from_dict(json.loads(row[0]))

    def save_statement(self, statement: Statement) -> int:
        body = json.dumps(statement.to_dict(), ensure_ascii=False)
        with self._lock, self._con:
            self._writes += 1
            cur = self._con.execute(
                "INSERT INTO statements (contract_id, utility, month, created_at, inputs_digest, "
                "avoided, body, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    statement.contract_id,
                    statement.utility,
                    statement.month,
                    statement.created_at,
                    statement.inputs_digest,
                    statement.month_savings.avoided,
                    body,
                    statement.status(final=True),
                ),
            )
            return int(cur.lastrowid or 0)

    def latest_statement_json(
        self, contract_id: str, month: str, utility: str = "electricity"
    ) -> dict[str, Any] | None:
        """The newest stored statement of a month, as stored (for `recompute`)."""
        with self._lock:
            row = self._con.execute(
                "SELECT body FROM statements WHERE contract_id = ? AND utility = ? AND month = ? "
                "ORDER BY id DESC LIMIT 1",
                (contract_id, utility, month),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def latest_statement(
        self, contract_id: str, month: str, utility: str = "electricity"
    ) -> Statement | None:
        data = self.latest_statement_json(contract_id, month, utility)
        return None if data is None else Statement.from_dict(data)

    def history(
        self, contract_id: str, utility: str = "electricity"
    ) -> list[tuple[str, str, str, float]]:
        """(month, created_at, inputs digest, avoided) of every stored statement, oldest first."""
        with self._lock:
            rows = self._con.execute(
                "SELECT month, created_at, inputs_digest, avoided FROM statements "
                "WHERE contract_id = ? AND utility = ? ORDER BY month, id",
                (contract_id, utility),
            ).fetchall()
        return [(str(m), str(c), str(d), float(a)) for m, c, d, a in rows]

    def save_provisional(self, statement: Statement) -> None:
        """Replace the month's provisional figures."""
        body = json.dumps(statement.to_dict(), ensure_ascii=False)
        with self._lock, self._con:
            self._writes += 1
            self._con.execute(
                "INSERT OR REPLACE INTO provisional "
                "(contract_id, utility, month, created_at, inputs_digest, avoided, body, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    statement.contract_id,
                    statement.utility,
                    statement.month,
                    statement.created_at,
                    statement.inputs_digest,
                    statement.month_savings.avoided,
                    body,
                    statement.status(final=False),
                ),
            )

    def drop_provisional(self, contract_id: str, month: str, utility: str = "electricity") -> None:
        with self._lock, self._con:
            self._writes += 1
            self._con.execute(
                "DELETE FROM provisional WHERE contract_id = ? AND utility = ? AND month = ?",
                (contract_id, utility, month),
            )

    def provisional_json(
        self, contract_id: str, month: str, utility: str = "electricity"
    ) -> dict[str, Any] | None:
        with self._lock:
            row = self._con.execute(
                "SELECT body FROM provisional WHERE contract_id = ? AND utility = ? AND month = ?",
                (contract_id, utility, month),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def record(
        self, contract_id: str, month: str, utility: str = "electricity"
    ) -> tuple[dict[str, Any], str] | None:
        """The month's newest record, final or else provisional, and its status."""
        with self._lock:
            row = self._con.execute(
                "SELECT body, status FROM statements WHERE contract_id = ? AND utility = ? "
                "AND month = ? ORDER BY id DESC LIMIT 1",
                (contract_id, utility, month),
            ).fetchone()
            final = row is not None
            if row is None:
                row = self._con.execute(
                    "SELECT body, status FROM provisional WHERE contract_id = ? AND utility = ? "
                    "AND month = ?",
                    (contract_id, utility, month),
                ).fetchone()
        if row is None:
            return None
        body = dict(json.loads(row[0]))
        return body, str(row[1]) or status_of(body.get("findings", []), final)

    def months(self, contract_id: str, utility: str = "electricity") -> list[MonthEntry]:
        """Every month with figures, oldest first: the newest final statement of a month, or
        its provisional figures while it has none."""
        with self._lock:
            final = self._con.execute(
                "SELECT month, count(*), max(id) FROM statements "
                "WHERE contract_id = ? AND utility = ? GROUP BY month",
                (contract_id, utility),
            ).fetchall()
            newest = {
                int(i): row
                for i, *row in self._con.execute(
                    "SELECT id, created_at, inputs_digest, avoided, status FROM statements "
                    "WHERE id IN (SELECT max(id) FROM statements "
                    "WHERE contract_id = ? AND utility = ? GROUP BY month)",
                    (contract_id, utility),
                ).fetchall()
            }
            provisional = self._con.execute(
                "SELECT month, created_at, inputs_digest, avoided, status FROM provisional "
                "WHERE contract_id = ? AND utility = ?",
                (contract_id, utility),
            ).fetchall()
        entries = {
            str(month): MonthEntry(
                str(month), str(newest[int(i)][3]) or "final", int(n), str(newest[int(i)][0]),
                str(newest[int(i)][1]), float(newest[int(i)][2]),
            )
            for month, n, i in final
        }  # fmt: skip
        for month, created, digest, avoided, status in provisional:
            entries.setdefault(
                str(month),
                MonthEntry(
                    str(month), str(status) or "provisional", 0, str(created), str(digest),
                    float(avoided),
                ),
            )  # fmt: skip
        return [entries[m] for m in sorted(entries)]

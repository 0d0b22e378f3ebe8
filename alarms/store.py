"""Alarms and their history, in a small SQLite file beside the statements.

One row per alarm (its current state: active or cleared, severity, value, who acknowledged
it and when) and one row per transition in `alarm_events` (raised, updated, cleared,
acknowledged: the history the API shows per alarm). SQLite, like the statements: small
transactional state, written by the service's alarm part and by the API's acknowledge route
(WAL: a reader never waits for the writer).

    store = AlarmStore(path)
    stored = store.record(transitions)       # the transitions with the alarms as stored
    store.acknowledge(alarm_id, "张工 (key 1a2b3c4d)", now_ms)
    page = store.alarms(state="active")      # active first, then by severity and time
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from alarms.lifecycle import acknowledged
from alarms.model import Alarm, Category, Severity, Transition
from core.config import SiteConfig
from core.errors import NotFound

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS alarms (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL,
        subject TEXT NOT NULL,
        state TEXT NOT NULL,
        severity TEXT NOT NULL,
        category TEXT NOT NULL,
        message TEXT NOT NULL,
        raised_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        cleared_ms INTEGER,
        acknowledged_by TEXT,
        acknowledged_ms INTEGER,
        value REAL,
        threshold REAL,
        unit TEXT NOT NULL,
        meters TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state, raised_ms)",
    """
    CREATE TABLE IF NOT EXISTS alarm_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alarm_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        value REAL,
        by TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS alarm_events_alarm ON alarm_events (alarm_id, id)",
)
_COLUMNS = (
    "id, rule, subject, state, severity, category, message, raised_ms, updated_ms, cleared_ms, "
    "acknowledged_by, acknowledged_ms, value, threshold, unit, meters"
)
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}

StateFilter = Literal["active", "cleared", "all"]


@dataclass(frozen=True, slots=True)
class Event:
    """One transition of an alarm, as kept in its history."""

    kind: str
    at_ms: int
    severity: Severity
    message: str
    value: float | None
    by: str | None


@dataclass(frozen=True, slots=True)
class AlarmPage:
    alarms: list[Alarm]
    total: int
    """How many alarms match (before paging)."""


def default_path(site: SiteConfig, statements_file: str | Path | None = None) -> str:
    """`[alarms] file`, or `alarms.sqlite3` beside the statements file (`statements_file`
    when given: the one the service opened; in memory beside statements in memory)."""
    if site.alarms.file:
        return site.alarms.file
    beside = str(statements_file or site.storage.statements_file)
    if beside == ":memory:":
        return ":memory:"
    return str(Path(beside).parent / "alarms.sqlite3")


def _alarm(row: tuple[object, ...]) -> Alarm:
    (i, rule, subject, state, severity, category, message, raised, updated, cleared, by, at,
     value, threshold, unit, meters) = row  # fmt: skip
    return Alarm(
        id=int(i),  # type: ignore[call-overload]
        rule=str(rule),
        subject=str(subject),
        state=state,  # type: ignore[arg-type]
        severity=Severity(str(severity)),
        category=Category(str(category)),
        message=str(message),
        raised_ms=int(raised),  # type: ignore[call-overload]
        updated_ms=int(updated),  # type: ignore[call-overload]
        cleared_ms=None if cleared is None else int(cleared),  # type: ignore[call-overload]
        acknowledged_by=None if by is None else str(by),
        acknowledged_ms=None if at is None else int(at),  # type: ignore[call-overload]
        value=None if value is None else float(value),  # type: ignore[arg-type]
        threshold=None if threshold is None else float(threshold),  # type: ignore[arg-type]
        unit=str(unit),
        meters=tuple(json.loads(str(meters))),
    )


def sort_key(alarm: Alarm) -> tuple[int, int, int, int]:
    """Active first, then the most severe, then the newest."""
    return (
        0 if alarm.state == "active" else 1,
        _SEVERITY_ORDER[alarm.severity],
        -alarm.raised_ms,
        -alarm.id,
    )


class AlarmStore:
    """Alarms and their transitions in one SQLite file (or `":memory:"`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        self._lock = threading.Lock()
        self._own_acks: set[int] = set()
        """Events of the acknowledgements recorded through this store (this process's API
        dispatched them itself: `acknowledgements_after` leaves them out)."""
        with self._lock, self._con:
            if self.path != ":memory:":
                self._con.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._con.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # -- the engine's side -------------------------------------------------------------------

    def next_id(self) -> int:
        with self._lock:
            (top,) = self._con.execute("SELECT coalesce(max(id), 0) FROM alarms").fetchone()
        return int(top) + 1

    def open_alarms(self) -> list[Alarm]:
        """The alarms raised and not cleared."""
        with self._lock:
            rows = self._con.execute(
                f"SELECT {_COLUMNS} FROM alarms WHERE state = 'active' ORDER BY id"
            ).fetchall()
        return [_alarm(r) for r in rows]

    def record(self, transitions: Iterable[Transition]) -> list[Transition]:
        """Store the transitions in one transaction; return them with each alarm as stored
        (an acknowledgement made meanwhile through the API included)."""
        done: list[Transition] = []
        with self._lock, self._con:
            for t in transitions:
                a = t.alarm
                if t.kind == "raised":
                    self._con.execute(
                        f"INSERT INTO alarms ({_COLUMNS}) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            a.id, a.rule, a.subject, a.state, a.severity.value, a.category.value,
                            a.message, a.raised_ms, a.updated_ms, a.cleared_ms,
                            a.acknowledged_by, a.acknowledged_ms, a.value, a.threshold, a.unit,
                            json.dumps(list(a.meters)),
                        ),
                    )  # fmt: skip
                elif t.kind == "acknowledged":
                    self._con.execute(
                        "UPDATE alarms SET acknowledged_by = ?, acknowledged_ms = ? WHERE id = ?",
                        (a.acknowledged_by, a.acknowledged_ms, a.id),
                    )
                else:  # updated, cleared: everything but the acknowledgement
                    self._con.execute(
                        "UPDATE alarms SET state = ?, severity = ?, message = ?, updated_ms = ?, "
                        "cleared_ms = ?, value = ?, threshold = ? WHERE id = ?",
                        (
                            a.state, a.severity.value, a.message, a.updated_ms, a.cleared_ms,
                            a.value, a.threshold, a.id,
                        ),
                    )  # fmt: skip
                event = self._con.execute(
                    "INSERT INTO alarm_events (alarm_id, kind, at_ms, severity, message, value, by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        a.id, t.kind, t.at_ms, a.severity.value, a.message, a.value,
                        a.acknowledged_by if t.kind == "acknowledged" else None,
                    ),
                )  # fmt: skip
                if t.kind == "acknowledged":
                    self._own_acks.add(int(event.lastrowid or 0))
                row = self._con.execute(
                    f"SELECT {_COLUMNS} FROM alarms WHERE id = ?", (a.id,)
                ).fetchone()
                done.append(replace(t, alarm=_alarm(row)))
        return done

    def refresh(self, alarms: Iterable[Alarm]) -> None:
        """Keep the shown message and value of raised alarms current (no history row)."""
        rows = [(a.message, a.value, a.threshold, a.id) for a in alarms]
        if not rows:
            return
        with self._lock, self._con:
            self._con.executemany(
                "UPDATE alarms SET message = ?, value = ?, threshold = ? "
                "WHERE id = ? AND state = 'active'",
                rows,
            )

    def last_event_id(self) -> int:
        with self._lock:
            (top,) = self._con.execute("SELECT coalesce(max(id), 0) FROM alarm_events").fetchone()
        return int(top)

    def acknowledgements_after(self, event_id: int) -> tuple[list[Transition], int]:
        """The acknowledgements other connections recorded after event `event_id` (a web
        process's API: `epcmon run --role web`), each with its alarm as stored now, and the
        newest event id seen (the next call's `event_id`). For the process that delivers
        notifications, so that an acknowledgement reaches the channels whichever process
        took it."""
        with self._lock:
            rows = self._con.execute(
                f"SELECT e.id, e.at_ms, e.by, {', '.join('a.' + c for c in _COLUMNS.split(', '))} "
                "FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
                "WHERE e.id > ? AND e.kind = 'acknowledged' ORDER BY e.id",
                (event_id,),
            ).fetchall()
            (top,) = self._con.execute(
                "SELECT coalesce(max(id), ?) FROM alarm_events", (event_id,)
            ).fetchone()
            own = self._own_acks
            found = [
                Transition(
                    "acknowledged",
                    replace(_alarm(row[3:]), acknowledged_by=row[2], acknowledged_ms=int(row[1])),
                    int(row[1]),
                )
                for row in rows
                if int(row[0]) not in own
            ]
            self._own_acks = {i for i in own if i > int(top)}
        return found, int(top)

    # -- the API's side ----------------------------------------------------------------------

    def get(self, alarm_id: int) -> Alarm:
        with self._lock:
            row = self._con.execute(
                f"SELECT {_COLUMNS} FROM alarms WHERE id = ?", (alarm_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no alarm {alarm_id}")
        return _alarm(row)

    def history(self, alarm_id: int) -> list[Event]:
        """The alarm's transitions, oldest first."""
        with self._lock:
            rows = self._con.execute(
                "SELECT kind, at_ms, severity, message, value, by FROM alarm_events "
                "WHERE alarm_id = ? ORDER BY id",
                (alarm_id,),
            ).fetchall()
        return [
            Event(str(k), int(t), Severity(str(s)), str(m), None if v is None else float(v), b)
            for k, t, s, m, v, b in rows
        ]

    def acknowledge(self, alarm_id: int, by: str, now_ms: int) -> Transition:
        """Record that `by` saw the alarm (`NotFound` when there is none)."""
        (stored,) = self.record([acknowledged(self.get(alarm_id), by, now_ms)])
        return stored

    def alarms(
        self,
        *,
        state: StateFilter = "active",
        since_ms: int | None = None,
        limit: int = 100,
        offset: int = 0,
        visible: Callable[[Alarm], bool] | None = None,
    ) -> AlarmPage:
        """Alarms in `state` (raised, or cleared, since `since_ms` when given), active first,
        then by severity, then newest; only those `visible` (a vendor's boundary)."""
        where: list[str] = []
        args: list[object] = []
        if state != "all":
            where.append("state = ?")
            args.append(state)
        if since_ms is not None:
            where.append("(raised_ms >= ? OR coalesce(cleared_ms, updated_ms) >= ?)")
            args += [since_ms, since_ms]
        sql = f"SELECT {_COLUMNS} FROM alarms"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._con.execute(sql, args).fetchall()
        found = [_alarm(r) for r in rows]
        if visible is not None:
            found = [a for a in found if visible(a)]
        found.sort(key=sort_key)
        return AlarmPage(found[offset : offset + limit], len(found))

    def active_counts(self) -> dict[tuple[str, str], int]:
        """(rule, severity) -> how many alarms are active (for `/metrics`)."""
        with self._lock:
            rows = self._con.execute(
                "SELECT rule, severity, count(*) FROM alarms WHERE state = 'active' "
                "GROUP BY rule, severity"
            ).fetchall()
        return {(str(r), str(s)): int(n) for r, s, n in rows}

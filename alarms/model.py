"""The alarm vocabulary every part of `alarms/` shares (pure data, no I/O).

    rule(context) -> [Condition]          what a rule sees now, per subject
    lifecycle.observe(conditions, now)    -> [Transition]  (hysteresis, minimum duration)
    dispatcher.dispatch(transitions)      never blocks, never raises

An alarm is keyed by (rule, subject): one meter offline is one alarm however often the rule
sees it; a subject is a meter id, a tenant id, a contract id, a part name or `site`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Category(StrEnum):
    DATA = "data"  # meters offline, counter resets, jumps, dead letters, spool, store, parts
    CONSUMPTION = "consumption"  # use out of hours, above the baseline, base load, leaks, plant
    CAPACITY = "capacity"  # transformer kVA, maximum demand (需量)


@dataclass(frozen=True, slots=True)
class Condition:
    """What a rule sees for one subject at one evaluation: active or not, and its numbers."""

    rule: str
    """The rule's id in the site file, e.g. `meter_offline`, `night_water_flow`."""
    subject: str
    """What it is about: a meter, tenant or contract id, a part name, or `site`."""
    active: bool
    severity: Severity
    category: Category
    message: str
    """One line an engineer understands, Chinese first where the site's names are Chinese."""
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    meters: tuple[str, ...] = ()
    """The meters it concerns (for role scoping: a vendor sees alarms of its boundary only)."""
    observed_ms: int = 0
    """The time the evidence is from (the newest reading it judged), UTC epoch ms."""
    details: dict[str, Any] = field(default_factory=dict)


AlarmState = Literal["pending", "active", "cleared"]


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm's current state, as stored."""

    id: int
    rule: str
    subject: str
    state: AlarmState
    severity: Severity
    category: Category
    message: str
    raised_ms: int
    updated_ms: int
    cleared_ms: int | None = None
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    meters: tuple[str, ...] = ()


TransitionKind = Literal["raised", "updated", "cleared", "acknowledged"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of an alarm worth telling someone about."""

    kind: TransitionKind
    alarm: Alarm
    at_ms: int


class Dispatcher(Protocol):
    """Delivers transitions (e-mail, webhooks, ...) in the background: `dispatch` only queues,
    never blocks the evaluation and never raises."""

    def dispatch(self, transitions: list[Transition]) -> None: ...


class Fanout:
    """Hands each batch of transitions to several dispatchers in turn (the log and the
    notifiers); one that raises, against its contract, does not keep the others from theirs."""

    def __init__(self, *dispatchers: Dispatcher) -> None:
        self.dispatchers = dispatchers

    def dispatch(self, transitions: list[Transition]) -> None:
        for d in self.dispatchers:
            try:
                d.dispatch(transitions)
            except Exception:
                logging.getLogger("epcmon.alarms").exception("%s failed", type(d).__name__)

"""Response schemas of `/api/v1/alarms`: an alarm, its history, a page of alarms."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from alarms.model import Alarm
from alarms.store import AlarmPage, Event
from api.common import iso
from core.readings import from_ms

SeverityOut = Literal["info", "warning", "critical"]


def _time(ms: int | None) -> str | None:
    return None if ms is None else iso(from_ms(ms))


class AlarmOut(BaseModel):
    id: int
    rule: str = Field(description="the rule's name in `[alarms.rules]`, e.g. `meter_offline`")
    subject: str = Field(description="what it is about: a meter, contract boundary, part or `site`")
    state: Literal["active", "cleared"]
    severity: SeverityOut
    category: Literal["data", "consumption", "capacity"]
    message: str = Field(description="one line, Chinese first")
    raised: str = Field(description="since when the condition holds (ISO-8601 UTC)")
    updated: str = Field(description="the last transition (raised, updated or cleared)")
    cleared: str | None
    acknowledged_by: str | None = Field(description="who acknowledged it: the key's name and id")
    acknowledged: str | None
    value: float | None
    threshold: float | None
    unit: str
    meters: list[str]

    @classmethod
    def of(cls, a: Alarm) -> AlarmOut:
        return cls(
            id=a.id,
            rule=a.rule,
            subject=a.subject,
            state="cleared" if a.state == "cleared" else "active",
            severity=a.severity.value,
            category=a.category.value,
            message=a.message,
            raised=iso(from_ms(a.raised_ms)),
            updated=iso(from_ms(a.updated_ms)),
            cleared=_time(a.cleared_ms),
            acknowledged_by=a.acknowledged_by,
            acknowledged=_time(a.acknowledged_ms),
            value=a.value,
            threshold=a.threshold,
            unit=a.unit,
            meters=list(a.meters),
        )


class AlarmEventOut(BaseModel):
    kind: Literal["raised", "updated", "cleared", "acknowledged"]
    time: str
    severity: SeverityOut
    message: str
    value: float | None
    by: str | None

    @classmethod
    def of(cls, e: Event) -> AlarmEventOut:
        return cls(
            kind=e.kind,
            time=iso(from_ms(e.at_ms)),
            severity=e.severity.value,
            message=e.message,
            value=e.value,
            by=e.by,
        )


class AlarmDetailOut(AlarmOut):
    history: list[AlarmEventOut] = Field(description="its transitions, oldest first")


class AlarmPageOut(BaseModel):
    total: int = Field(description="alarms matching, before paging")
    offset: int
    limit: int
    alarms: list[AlarmOut] = Field(description="active first, then by severity, then newest")

    @classmethod
    def of(cls, page: AlarmPage, offset: int, limit: int) -> AlarmPageOut:
        return cls(
            total=page.total,
            offset=offset,
            limit=limit,
            alarms=[AlarmOut.of(a) for a in page.alarms],
        )

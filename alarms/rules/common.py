"""What the rules share: building a condition, naming a meter, formatting a duration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alarms.model import Category, Condition, Severity
from core.config import RuleSettings, SiteConfig


@dataclass(frozen=True, slots=True)
class Judged:
    """One rule's verdict on one subject, before it becomes a `Condition`."""

    subject: str
    active: bool
    message: str
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    meters: tuple[str, ...] = ()
    observed_ms: int = 0
    severity: Severity | None = None
    """Overrides the rule's configured severity (a capacity alarm turning critical)."""
    details: dict[str, Any] | None = None


def conditions(
    rule: str, category: Category, settings: RuleSettings, judged: list[Judged]
) -> list[Condition]:
    return [
        Condition(
            rule=rule,
            subject=j.subject,
            active=j.active,
            severity=j.severity or Severity(settings.severity),
            category=category,
            message=j.message,
            value=j.value,
            threshold=j.threshold,
            unit=j.unit,
            meters=j.meters,
            observed_ms=j.observed_ms,
            details=j.details or {},
        )
        for j in judged
    ]


def meter_label(site: SiteConfig, meter_id: str) -> str:
    """`E-D01 市政府办公室 照明插座（18F）`: the id, then the name when it has one."""
    meter = site.meters_by_id.get(meter_id)
    return f"{meter_id} {meter.name}" if meter is not None and meter.name else meter_id


def duration(ms: float) -> str:
    """`25 min`, `3.5 h`, `2.0 d`."""
    minutes = ms / 60_000
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"

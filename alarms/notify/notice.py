"""What a message says about one alarm change, in words: pure, from the site file's names.

    names = SiteNames(site, "zh")
    notice = names.notice(transition)
    notice.headline   -> "【严重告警】夜间持续用水 1.2 m³/h"
    notice.where      -> "主楼给水引入管 DN150（W-MAIN）· 主楼"
    notice.lines()    -> [("位置", ...), ("开始", ...), ("数值", ...), ...]

Times are the site's local time; numbers have as many decimals as they need; the link is
`[api] public_url` + `/#alarm-<id>` (none when `public_url` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from alarms.model import Alarm, Severity, Transition
from core.config import SiteConfig

Language = Literal["zh", "en"]

KIND_LABELS: dict[Language, dict[str, str]] = {
    "zh": {"raised": "告警", "updated": "告警更新", "cleared": "已恢复", "acknowledged": "已确认"},
    "en": {
        "raised": "Alarm",
        "updated": "Alarm updated",
        "cleared": "Cleared",
        "acknowledged": "Acknowledged",
    },
}
SEVERITY_LABELS: dict[Language, dict[str, str]] = {
    "zh": {"info": "提示", "warning": "警告", "critical": "严重"},
    "en": {"info": "info", "warning": "warning", "critical": "critical"},
}
FIELD_LABELS: dict[Language, dict[str, str]] = {
    "zh": {
        "site": "站点",
        "where": "位置",
        "meters": "涉及表计",
        "since": "开始",
        "cleared": "恢复",
        "at": "时间",
        "value": "数值",
        "threshold": "阈值",
        "rule": "规则",
        "ack": "确认",
        "link": "详情",
        "lasted": "持续",
        "part": "服务部件",
        "more": "另有 {n} 条未列出",
    },
    "en": {
        "site": "Site",
        "where": "Where",
        "meters": "Meters",
        "since": "Since",
        "cleared": "Cleared",
        "at": "At",
        "value": "Value",
        "threshold": "threshold",
        "rule": "Rule",
        "ack": "Acknowledged",
        "link": "Details",
        "lasted": "lasted",
        "part": "service part",
        "more": "{n} more not listed",
    },
}
ZH_SEVERITY_TAGS = {"critical": "严重告警", "warning": "告警", "info": "提示"}
"""How a Chinese headline names a raised (or updated) alarm's severity."""
MAX_METERS = 3
"""Meters named in `where` before `+N`."""


def number(value: float) -> str:
    """As many decimals as a reading needs: 12 345, 123, 12.3, 1.23, 0.123."""
    if value != value:  # NaN
        return "NaN"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def paren(text: str, language: Language) -> str:
    """` (text)`, or `（text）` in Chinese."""
    return f"（{text}）" if language == "zh" else f" ({text})"


def duration(seconds: float, language: Language) -> str:
    """`3 小时 20 分钟` / `3 h 20 min`; whole minutes, the two largest units."""
    minutes = max(0, round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    units = ("天", "小时", "分钟") if language == "zh" else ("d", "h", "min")
    parts = [f"{n} {u}" for n, u in zip((days, hours, mins), units, strict=True) if n]
    return " ".join(parts[:2]) or f"0 {units[2]}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One alarm change, worded for a person (module doc)."""

    transition: Transition
    language: Language
    kind_label: str
    severity_label: str
    headline: str
    """`【严重告警】<message>` / `[critical] Alarm: <message>`."""
    where: str
    since: str
    """When the alarm was raised, local time."""
    at: str
    """When this change happened, local time."""
    lasted: str
    """How long it was active (for a cleared alarm), else empty."""
    value: str
    """`1.2 m³/h，阈值 0.5 m³/h`, or empty."""
    link: str

    @property
    def alarm(self) -> Alarm:
        return self.transition.alarm

    @property
    def kind(self) -> str:
        return self.transition.kind

    def lines(self) -> list[tuple[str, str]]:
        """(label, text) of the facts below the headline, the empty ones left out."""
        label = FIELD_LABELS[self.language]
        out = [(label["where"], self.where), (label["since"], self.since)]
        if self.kind == "cleared":
            lasted = paren(f"{label['lasted']} {self.lasted}", self.language)
            out.append((label["cleared"], f"{self.at}{lasted}"))
        elif self.kind != "raised":
            out.append((label["at"], self.at))
        if self.value:
            out.append((label["value"], self.value))
        if self.alarm.acknowledged_by:
            out.append((label["ack"], self.alarm.acknowledged_by))
        out.append(
            (label["rule"], self.alarm.rule + paren(self.alarm.category.value, self.language))
        )
        if self.link:
            out.append((label["link"], self.link))
        return [(k, v) for k, v in out if v]


class SiteNames:
    """The site file's names of what alarms are about, and the words of one language."""

    def __init__(self, site: SiteConfig, language: Language = "zh") -> None:
        self.site = site
        self.language: Language = language
        self.tz: ZoneInfo = site.site.tz
        self.public_url = site.api.public_url.rstrip("/")
        self._buildings = {b.id: self._name(b.name, b.name_en) for b in site.buildings}
        self._tenants = {t.id: t for t in site.tenants}
        self._contracts = {c.id: c.name for c in site.contracts}

    def _name(self, name: str, name_en: str = "") -> str:
        return name_en if self.language == "en" and name_en else name

    @property
    def site_name(self) -> str:
        return self._name(self.site.site.name, self.site.site.name_en)

    def local(self, ms: int) -> str:
        """`2025-07-14 02:15` in the site's time zone."""
        return datetime.fromtimestamp(ms / 1000, self.tz).strftime("%Y-%m-%d %H:%M")

    def link(self, alarm: Alarm) -> str:
        return f"{self.public_url}/#alarm-{alarm.id}" if self.public_url else ""

    def meter(self, meter_id: str) -> str:
        meter = self.site.meters_by_id.get(meter_id)
        if meter is None:
            return meter_id
        return meter.name + paren(meter.id, self.language) if meter.name else meter.id

    def _tenant(self, tenant_id: str) -> str:
        tenant = self._tenants[tenant_id]
        return self._name(tenant.name, tenant.name_en)

    def where(self, alarm: Alarm) -> str:
        """What and where the alarm is about: the meter with its tenant and building, the
        tenant with its building, the contract, a service part, or the site."""
        subject = alarm.subject
        parts: list[str]
        if subject in self.site.meters_by_id:
            meter = self.site.meters_by_id[subject]
            parts = [self.meter(subject)]
            if meter.tenant is not None and meter.tenant in self._tenants:
                parts.append(self._tenant(meter.tenant))
            parts.append(self._buildings.get(meter.building, meter.building))
        elif subject in self._tenants:
            tenant = self._tenants[subject]
            parts = [self._tenant(subject), self._buildings.get(tenant.building, tenant.building)]
        elif subject in self._contracts:
            parts = [self._contracts[subject]]
        elif subject == "site":
            parts = [self.site_name]
        elif alarm.category.value == "data" and not alarm.meters:
            parts = [f"{FIELD_LABELS[self.language]['part']} {subject}"]
        else:
            parts = [subject]
        others = [m for m in alarm.meters if m != subject]
        if others:
            named = "、".join(self.meter(m) for m in others[:MAX_METERS])
            more = f" +{len(others) - MAX_METERS}" if len(others) > MAX_METERS else ""
            parts.append(f"{FIELD_LABELS[self.language]['meters']} {named}{more}")
        return " · ".join(dict.fromkeys(p for p in parts if p))

    def value(self, alarm: Alarm) -> str:
        if alarm.value is None:
            return ""
        unit = f" {alarm.unit}" if alarm.unit else ""
        text = f"{number(alarm.value)}{unit}"
        if alarm.threshold is not None:
            sep = "，" if self.language == "zh" else ", "
            label = FIELD_LABELS[self.language]["threshold"]
            text += f"{sep}{label} {number(alarm.threshold)}{unit}"
        return text

    def headline(self, transition: Transition) -> str:
        alarm = transition.alarm
        kind = KIND_LABELS[self.language][transition.kind]
        severity = SEVERITY_LABELS[self.language][alarm.severity.value]
        if self.language == "zh":
            if transition.kind in ("raised", "updated"):  # 【严重告警】【告警】【提示】
                kind = ZH_SEVERITY_TAGS[alarm.severity.value] + kind.removeprefix("告警")
            return f"【{kind}】{alarm.message}"
        return f"[{kind}, {severity}] {alarm.message}"

    def notice(self, transition: Transition) -> Notice:
        alarm = transition.alarm
        lasted = ""
        if transition.kind == "cleared":
            lasted = duration((transition.at_ms - alarm.raised_ms) / 1000, self.language)
        return Notice(
            transition=transition,
            language=self.language,
            kind_label=KIND_LABELS[self.language][transition.kind],
            severity_label=SEVERITY_LABELS[self.language][alarm.severity.value],
            headline=self.headline(transition),
            where=self.where(alarm),
            since=self.local(alarm.raised_ms),
            at=self.local(transition.at_ms),
            lasted=lasted,
            value=self.value(alarm),
            link=self.link(alarm),
        )


SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

__all__ = [
    "FIELD_LABELS",
    "KIND_LABELS",
    "SEVERITY_LABELS",
    "SEVERITY_ORDER",
    "Language",
    "Notice",
    "SiteNames",
    "duration",
    "number",
    "paren",
]

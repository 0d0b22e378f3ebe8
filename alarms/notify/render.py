"""The words of one message (one change, or several sent together): title, plain text and
markdown. Pure.

A message is a `Batch`: one change (`single`), changes that waited for the rate limit
(`batch`), what came in during quiet hours (`quiet`), the day's digest (`digest`), or
Alertmanager's periodic resend (`resend`, never rendered as text). A message listing many
changes names at most `max_listed` of them and says how many more there are, so a storm of
alarms makes one readable message, not a wall.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from alarms.model import Transition
from alarms.notify.notice import FIELD_LABELS, SEVERITY_LABELS, Notice, SiteNames

BatchKind = Literal["single", "batch", "quiet", "digest", "resend"]
MAX_LISTED = 30


@dataclass(frozen=True, slots=True)
class Batch:
    """What one message carries."""

    kind: BatchKind
    transitions: tuple[Transition, ...]
    day: str = ""
    """The local date a digest covers (`2025-07-14`)."""
    attempts: int = field(default=0, compare=False)
    """Failed deliveries of it so far."""


def _colon(names: SiteNames) -> str:
    return "：" if names.language == "zh" else ": "


def title(names: SiteNames, batch: Batch) -> str:
    """The subject of an e-mail, the title of a robot message."""
    n = len(batch.transitions)
    if batch.kind == "single" and n == 1:
        return names.headline(batch.transitions[0])
    counts = Counter(t.alarm.severity.value for t in batch.transitions if t.kind != "cleared")
    labels = SEVERITY_LABELS[names.language]
    tally = [f"{labels[s]} {counts[s]}" for s in ("critical", "warning", "info") if counts[s]]
    if names.language == "zh":
        head = {
            "digest": f"【每日告警摘要】{batch.day}：{n} 条告警变化",
            "quiet": f"【免打扰期间告警】{n} 条告警变化",
        }.get(batch.kind, f"【告警汇总】{n} 条告警变化")
        return head + (f"（{'，'.join(tally)}）" if tally else "")
    head = {
        "digest": f"[Daily alarm digest] {batch.day}: {n} alarm changes",
        "quiet": f"[During quiet hours] {n} alarm changes",
    }.get(batch.kind, f"[Alarms] {n} alarm changes")
    return head + (f" ({', '.join(tally)})" if tally else "")


def subject(names: SiteNames, batch: Batch) -> str:
    """An e-mail's subject: the title and the site."""
    return f"{title(names, batch)} - {names.site_name}"


def _notices(names: SiteNames, batch: Batch) -> list[Notice]:
    return [names.notice(t) for t in batch.transitions]


def text(names: SiteNames, batch: Batch, max_listed: int = MAX_LISTED) -> str:
    """Plain text (an e-mail's body, a webhook's `text`)."""
    colon = _colon(names)
    label = FIELD_LABELS[names.language]
    site = f"{label['site']}{colon}{names.site_name}"
    notices = _notices(names, batch)
    if batch.kind == "single" and len(notices) == 1:
        notice = notices[0]
        body = [notice.headline, "", site]
        body += [f"{k}{colon}{v}" for k, v in notice.lines()]
        return "\n".join(body) + "\n"
    body = [title(names, batch), site, ""]
    for i, notice in enumerate(notices[:max_listed], 1):
        body.append(f"{i}. {notice.headline}")
        body += [f"   {k}{colon}{v}" for k, v in notice.lines()]
        body.append("")
    if len(notices) > max_listed:
        body.append(label["more"].format(n=len(notices) - max_listed))
    return "\n".join(body).rstrip("\n") + "\n"


def _color(notice: Notice) -> str:
    """WeCom's three font colours: `warning` (orange), `info` (green), `comment` (grey)."""
    if notice.kind == "cleared":
        return "info"
    return "comment" if notice.alarm.severity.value == "info" else "warning"


def markdown(names: SiteNames, batch: Batch, *, colors: bool, max_listed: int = MAX_LISTED) -> str:
    """Markdown for a robot: WeCom's dialect with `colors` (its `<font color>`), DingTalk's
    without."""
    colon = _colon(names)
    label = FIELD_LABELS[names.language]

    def head(notice: Notice) -> str:
        if colors:
            return f'<font color="{_color(notice)}">{notice.headline}</font>'
        return notice.headline

    def facts(notice: Notice, indent: str) -> list[str]:
        out = []
        for key, value in notice.lines():
            if value == notice.link:
                out.append(f"{indent}[{key}]({value})")
            else:
                out.append(f"{indent}**{key}**{colon}{value}")
        return out

    notices = _notices(names, batch)
    if batch.kind == "single" and len(notices) == 1:
        notice = notices[0]
        lines = [f"### {head(notice)}", f"> **{label['site']}**{colon}{names.site_name}"]
        lines += facts(notice, "> ")
        return "\n".join(lines)
    lines = [f"### {title(names, batch)}", f"> **{label['site']}**{colon}{names.site_name}", ""]
    for notice in notices[:max_listed]:
        lines.append(f"- {head(notice)}")
        lines += facts(notice, "  ")
    if len(notices) > max_listed:
        lines += ["", label["more"].format(n=len(notices) - max_listed)]
    return "\n".join(lines)


def fit(render: Callable[[int], str], max_bytes: int) -> str:
    """`render(max_listed)` with as many changes listed as fit in `max_bytes` of UTF-8 (a
    robot's limit); cut at a character boundary if even one does not."""
    listed = MAX_LISTED
    while True:
        out = render(listed)
        if len(out.encode()) <= max_bytes:
            return out
        if listed == 1:
            cut = out.encode()[: max_bytes - 3].decode("utf-8", errors="ignore")
            return cut + "…"
        listed = max(1, listed // 2)


__all__ = ["MAX_LISTED", "Batch", "BatchKind", "fit", "markdown", "subject", "text", "title"]

"""Each channel's wire format, built from a `Batch`: pure (the time and the secrets passed in).

| channel | request |
|---|---|
| webhook | POST JSON `{"version": 1, "site", "kind", "title", "text", "transitions": [...]}` |
| wecom | POST `{"msgtype": "markdown", "markdown": {"content"}}` (≤ 4096 bytes) to `...?key=` |
| dingtalk | POST `{"msgtype": "markdown", "markdown": {"title", "text"}, "at"}` to `...?access_token=` (+ `timestamp`, `sign`) |
| alertmanager | POST `[{"labels", "annotations", "startsAt", "endsAt", "generatorURL"}]` to `/api/v2/alerts` |
| email | a MIME message: UTF-8 plain text, the subject RFC 2047-encoded |
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlencode

from alarms.model import Transition
from alarms.notify.notice import SiteNames
from alarms.notify.render import Batch, fit, markdown, subject, text, title

WECOM_MAX_BYTES = 4096
"""WeCom's limit on a markdown message's content."""
DINGTALK_MAX_BYTES = 18_000
"""Below DingTalk's limit on a message (about 20 000 bytes)."""
ALERTMANAGER_VALIDITY = 4
"""An active alert sent to Alertmanager is valid for this many resend periods."""


def json_bytes(payload: Any) -> bytes:
    """Compact UTF-8 JSON (Chinese as itself, not `\\u` escapes)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def iso(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, as Alertmanager and most receivers parse it."""
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def local_iso(names: SiteNames, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, names.tz).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- generic webhook


def transition_json(names: SiteNames, transition: Transition) -> dict[str, Any]:
    alarm = transition.alarm
    notice = names.notice(transition)
    return {
        "kind": transition.kind,
        "at": local_iso(names, transition.at_ms),
        "at_ms": transition.at_ms,
        "headline": notice.headline,
        "where": notice.where,
        "link": notice.link or None,
        "alarm": {
            "id": alarm.id,
            "rule": alarm.rule,
            "subject": alarm.subject,
            "state": alarm.state,
            "severity": alarm.severity.value,
            "category": alarm.category.value,
            "message": alarm.message,
            "raised_at": local_iso(names, alarm.raised_ms),
            "raised_ms": alarm.raised_ms,
            "updated_ms": alarm.updated_ms,
            "cleared_at": None if alarm.cleared_ms is None else local_iso(names, alarm.cleared_ms),
            "cleared_ms": alarm.cleared_ms,
            "acknowledged_by": alarm.acknowledged_by,
            "acknowledged_ms": alarm.acknowledged_ms,
            "value": alarm.value,
            "threshold": alarm.threshold,
            "unit": alarm.unit,
            "meters": list(alarm.meters),
        },
    }


def webhook_body(names: SiteNames, batch: Batch) -> dict[str, Any]:
    return {
        "version": 1,
        "site": {"id": names.site.site.id, "name": names.site_name},
        "kind": batch.kind,
        "title": title(names, batch),
        "text": text(names, batch),
        "transitions": [transition_json(names, t) for t in batch.transitions],
    }


def signature(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, the `X-Epcmon-Signature-256` header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- robots


def wecom_body(names: SiteNames, batch: Batch) -> dict[str, Any]:
    content = fit(lambda n: markdown(names, batch, colors=True, max_listed=n), WECOM_MAX_BYTES)
    return {"msgtype": "markdown", "markdown": {"content": content}}


def wecom_url(url: str, key: str) -> str:
    return f"{url}?{urlencode({'key': key})}"


def dingtalk_body(names: SiteNames, batch: Batch, at_mobiles: tuple[str, ...]) -> dict[str, Any]:
    # a mobile is @-mentioned only if the text also carries `@<mobile>`
    mention = ("\n\n" + " ".join(f"@{m}" for m in at_mobiles)) if at_mobiles else ""
    budget = DINGTALK_MAX_BYTES - len(mention.encode())
    body = fit(lambda n: markdown(names, batch, colors=False, max_listed=n), budget)
    return {
        "msgtype": "markdown",
        "markdown": {"title": title(names, batch), "text": body + mention},
        "at": {"atMobiles": list(at_mobiles), "isAtAll": False},
    }


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's 加签: base64(HMAC-SHA256(key=secret, "<timestamp>\\n<secret>"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def dingtalk_url(url: str, token: str, secret: str, timestamp_ms: int) -> str:
    query: dict[str, str | int] = {"access_token": token}
    if secret:
        query |= {"timestamp": timestamp_ms, "sign": dingtalk_sign(timestamp_ms, secret)}
    return f"{url}?{urlencode(query)}"


# --------------------------------------------------------------------------- Alertmanager


def alertmanager_alert(
    names: SiteNames, transition: Transition, now_ms: int, resend_s: float
) -> dict[str, Any]:
    """One alert in Alertmanager's `postableAlert` form; a cleared alarm ends at its clear,
    an active one `ALERTMANAGER_VALIDITY` resend periods from now."""
    alarm = transition.alarm
    notice = names.notice(transition)
    labels = {
        "alertname": alarm.rule,
        "subject": alarm.subject,
        "severity": alarm.severity.value,
        "category": alarm.category.value,
        "site": names.site.site.id,
        "source": "epcmon",
    }
    annotations = {
        "summary": alarm.message,
        "where": notice.where,
        "description": "\n".join(f"{k}: {v}" for k, v in notice.lines()),
        "epcmon_alarm_id": str(alarm.id),
    }
    if alarm.value is not None:
        annotations["value"] = notice.value
    if alarm.acknowledged_by:
        annotations["acknowledged_by"] = alarm.acknowledged_by
    if transition.kind == "cleared":
        ends = alarm.cleared_ms if alarm.cleared_ms is not None else transition.at_ms
    else:
        ends = now_ms + int(ALERTMANAGER_VALIDITY * resend_s * 1000)
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": iso(alarm.raised_ms),
        "endsAt": iso(ends),
    }
    if notice.link:
        alert["generatorURL"] = notice.link
    return alert


def alertmanager_body(
    names: SiteNames, batch: Batch, now_ms: int, resend_s: float
) -> list[dict[str, Any]]:
    return [alertmanager_alert(names, t, now_ms, resend_s) for t in batch.transitions]


# --------------------------------------------------------------------------- e-mail


def email_message(
    names: SiteNames, batch: Batch, sender: str, recipients: tuple[str, ...], now_s: float
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject(names, batch)
    msg["Date"] = format_datetime(datetime.fromtimestamp(now_s, names.tz))
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].rstrip(">") or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    if batch.kind == "single" and len(batch.transitions) == 1:
        msg["X-Epcmon-Alarm"] = str(batch.transitions[0].alarm.id)
    # base64: Chinese text stays intact through any relay (no 8BITMIME needed)
    msg.set_content(text(names, batch), charset="utf-8", cte="base64")
    return msg


__all__ = [
    "alertmanager_alert",
    "alertmanager_body",
    "dingtalk_body",
    "dingtalk_sign",
    "dingtalk_url",
    "email_message",
    "iso",
    "json_bytes",
    "signature",
    "transition_json",
    "webhook_body",
    "wecom_body",
    "wecom_url",
]

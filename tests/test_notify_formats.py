"""Each channel's wire format and the words in it, pure: what, where (the site file's names),
since when, value against threshold, the link."""

from __future__ import annotations

import base64
import hashlib
import hmac
from email import message_from_bytes, policy
from urllib.parse import parse_qs, urlsplit

import pytest

from alarms.model import Category, Severity, Transition
from alarms.notify.formats import (
    WECOM_MAX_BYTES,
    alertmanager_alert,
    dingtalk_body,
    dingtalk_url,
    email_message,
    iso,
    signature,
    webhook_body,
    wecom_body,
)
from alarms.notify.notice import SiteNames, duration, number
from alarms.notify.render import Batch, text, title
from tests.notify_helpers import alarm, change, local_ms, site

SITE = site([])
ZH = SiteNames(SITE, "zh")
EN = SiteNames(SITE, "en")
LEAK = change()
ONE = Batch("single", (LEAK,))


@pytest.mark.parametrize(
    ("value", "shown"),
    [(12345.6, "12,346"), (123.4, "123"), (12.34, "12.3"), (1.25, "1.25"), (0.1234, "0.123"),
     (2.0, "2"), (-0.0004, "0"), (float("nan"), "NaN")],
)  # fmt: skip
def test_numbers_have_the_decimals_they_need(value: float, shown: str):
    assert number(value) == shown


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [(0, "0 分钟", "0 min"), (13_500, "3 小时 45 分钟", "3 h 45 min"),
     (2 * 86_400 + 3 * 3600 + 60, "2 天 3 小时", "2 d 3 h")],
)  # fmt: skip
def test_durations_read_naturally(seconds: float, zh: str, en: str):
    assert (duration(seconds, "zh"), duration(seconds, "en")) == (zh, en)


def test_the_text_of_one_alarm_says_what_where_since_when_value_and_link():
    assert text(ZH, ONE) == (
        "【告警】夜间持续用水：最低流量 1.25 m³/h\n"
        "\n"
        "站点：六安市行政中心\n"
        "位置：主楼给水引入管 DN150（W-MAIN） · 主楼\n"
        "开始：2025-07-14 02:15\n"
        "数值：1.25 m³/h，阈值 0.5 m³/h\n"
        "规则：night_water_flow（consumption）\n"
        "详情：https://epc.example.gov.cn/#alarm-17\n"
    )


def test_a_cleared_alarm_says_when_and_how_long_it_lasted():
    cleared = change("cleared", cleared="2025-07-14 06:00")
    lines = text(EN, Batch("single", (cleared,))).splitlines()
    assert lines[0] == "[Cleared, warning] 夜间持续用水：最低流量 1.25 m³/h"
    assert "Cleared: 2025-07-14 06:00 (lasted 3 h 45 min)" in lines
    assert "Where: 主楼给水引入管 DN150 (W-MAIN) · Main building" in lines


@pytest.mark.parametrize(
    ("subject", "meters", "where"),
    [
        ("E-DEPT-01", ("E-DEPT-01",), "市发改委照明插座（E-DEPT-01） · 市发改委 · 主楼"),
        ("dept-01", ("E-DEPT-01",), "市发改委 · 主楼 · 涉及表计 市发改委照明插座（E-DEPT-01）"),
        ("site", (), "六安市行政中心"),
        ("mqtt", (), "服务部件 mqtt"),
    ],
)
def test_where_uses_the_site_files_names(subject: str, meters: tuple[str, ...], where: str):
    a = alarm(subject=subject, meters=meters)
    if subject == "mqtt":
        from dataclasses import replace

        a = replace(a, category=Category.DATA)
    assert ZH.where(a) == where


def test_without_public_url_there_is_no_link():
    names = SiteNames(site([], public_url=""))
    assert "详情" not in text(names, ONE)
    assert "generatorURL" not in alertmanager_alert(names, LEAK, 0, 60)


def test_a_storm_lists_thirty_and_says_how_many_more():
    storm = Batch("batch", tuple(change(id=i) for i in range(45)))
    body = text(ZH, storm)
    assert body.startswith("【告警汇总】45 条告警变化（警告 45）\n站点：六安市行政中心\n")
    assert "30. 【告警】" in body
    assert "31. " not in body
    assert body.rstrip().endswith("另有 15 条未列出")


def test_titles_of_digest_and_quiet_summaries():
    changes = (change(id=1, severity=Severity.CRITICAL), change(id=2))
    assert title(ZH, Batch("digest", changes, day="2025-07-15")) == (
        "【每日告警摘要】2025-07-15：2 条告警变化（严重 1，警告 1）"
    )
    assert title(EN, Batch("quiet", changes)) == (
        "[During quiet hours] 2 alarm changes (critical 1, warning 1)"
    )


# --------------------------------------------------------------------------- the wire formats


def test_webhook_payload():
    body = webhook_body(ZH, ONE)
    assert body == {
        "version": 1,
        "site": {"id": "luan-test", "name": "六安市行政中心"},
        "kind": "single",
        "title": "【告警】夜间持续用水：最低流量 1.25 m³/h",
        "text": text(ZH, ONE),
        "transitions": [
            {
                "kind": "raised",
                "at": "2025-07-14T02:15:00+08:00",
                "at_ms": local_ms("2025-07-14 02:15"),
                "headline": "【告警】夜间持续用水：最低流量 1.25 m³/h",
                "where": "主楼给水引入管 DN150（W-MAIN） · 主楼",
                "link": "https://epc.example.gov.cn/#alarm-17",
                "alarm": {
                    "id": 17,
                    "rule": "night_water_flow",
                    "subject": "W-MAIN",
                    "state": "active",
                    "severity": "warning",
                    "category": "consumption",
                    "message": "夜间持续用水：最低流量 1.25 m³/h",
                    "raised_at": "2025-07-14T02:15:00+08:00",
                    "raised_ms": local_ms("2025-07-14 02:15"),
                    "updated_ms": local_ms("2025-07-14 02:15"),
                    "cleared_at": None,
                    "cleared_ms": None,
                    "acknowledged_by": None,
                    "acknowledged_ms": None,
                    "value": 1.25,
                    "threshold": 0.5,
                    "unit": "m³/h",
                    "meters": ["W-MAIN"],
                },
            }
        ],
    }


def test_webhook_signature_is_the_bodys_hmac_sha256():
    body = b'{"version":1}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature(body, "s3cret") == f"sha256={expected}"


def test_wecom_markdown_payload():
    assert wecom_body(ZH, ONE) == {
        "msgtype": "markdown",
        "markdown": {
            "content": (
                '### <font color="warning">【告警】夜间持续用水：最低流量 1.25 m³/h</font>\n'
                "> **站点**：六安市行政中心\n"
                "> **位置**：主楼给水引入管 DN150（W-MAIN） · 主楼\n"
                "> **开始**：2025-07-14 02:15\n"
                "> **数值**：1.25 m³/h，阈值 0.5 m³/h\n"
                "> **规则**：night_water_flow（consumption）\n"
                "> [详情](https://epc.example.gov.cn/#alarm-17)"
            )
        },
    }


def test_wecom_cleared_is_green():
    cleared = Batch("single", (change("cleared", cleared="2025-07-14 06:00"),))
    assert wecom_body(ZH, cleared)["markdown"]["content"].startswith(
        '### <font color="info">【已恢复】'
    )


def test_a_storm_fits_wecoms_4096_bytes():
    storm = Batch("batch", tuple(change(id=i) for i in range(200)))
    content = wecom_body(ZH, storm)["markdown"]["content"]
    assert len(content.encode()) <= WECOM_MAX_BYTES
    assert "条未列出" in content


def test_dingtalk_markdown_payload_with_mentions():
    body = dingtalk_body(ZH, ONE, ("13800000000",))
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "【告警】夜间持续用水：最低流量 1.25 m³/h"
    assert body["markdown"]["text"].startswith("### 【告警】夜间持续用水")
    assert "<font" not in body["markdown"]["text"]
    assert body["markdown"]["text"].endswith("\n\n@13800000000")
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


def test_dingtalk_signed_url():
    url = dingtalk_url("https://oapi.dingtalk.com/robot/send", "tok", "SECabc", 1752430500000)
    query = parse_qs(urlsplit(url).query)
    # DingTalk's check, done independently: HMAC-SHA256 of "timestamp\nsecret", base64
    mac = hmac.new(b"SECabc", b"1752430500000\nSECabc", hashlib.sha256).digest()
    assert query == {
        "access_token": ["tok"],
        "timestamp": ["1752430500000"],
        "sign": [base64.b64encode(mac).decode()],
    }
    unsigned = dingtalk_url("https://oapi.dingtalk.com/robot/send", "tok", "", 1)
    assert parse_qs(urlsplit(unsigned).query) == {"access_token": ["tok"]}


def test_alertmanager_alert_of_an_active_and_a_cleared_alarm():
    now = local_ms("2025-07-14 02:16")
    assert alertmanager_alert(ZH, LEAK, now, 60) == {
        "labels": {
            "alertname": "night_water_flow",
            "subject": "W-MAIN",
            "severity": "warning",
            "category": "consumption",
            "site": "luan-test",
            "source": "epcmon",
        },
        "annotations": {
            "summary": "夜间持续用水：最低流量 1.25 m³/h",
            "where": "主楼给水引入管 DN150（W-MAIN） · 主楼",
            "description": (
                "位置: 主楼给水引入管 DN150（W-MAIN） · 主楼\n开始: 2025-07-14 02:15\n"
                "数值: 1.25 m³/h，阈值 0.5 m³/h\n规则: night_water_flow（consumption）\n"
                "详情: https://epc.example.gov.cn/#alarm-17"
            ),
            "epcmon_alarm_id": "17",
            "value": "1.25 m³/h，阈值 0.5 m³/h",
        },
        "startsAt": "2025-07-13T18:15:00.000Z",
        "endsAt": "2025-07-13T18:20:00.000Z",  # 4 resend periods from now
        "generatorURL": "https://epc.example.gov.cn/#alarm-17",
    }
    cleared = change("cleared", cleared="2025-07-14 06:00")
    assert alertmanager_alert(ZH, cleared, now, 60)["endsAt"] == "2025-07-13T22:00:00.000Z"


def test_iso_is_utc_with_milliseconds():
    assert iso(1_752_430_500_123) == "2025-07-13T18:15:00.123Z"


def test_email_has_a_chinese_subject_and_body_that_survive_the_wire():
    msg = email_message(
        ZH, ONE, "能源监测 <epcmon@example.gov.cn>", ("ops@example.gov.cn",), 1_752_430_560
    )
    wire = msg.as_bytes()
    assert wire.isascii()  # RFC 2047 subject, base64 body: any relay passes it
    back = message_from_bytes(wire, policy=policy.default)
    assert back["Subject"] == "【告警】夜间持续用水：最低流量 1.25 m³/h - 六安市行政中心"
    assert back["From"].addresses[0].display_name == "能源监测"
    assert back["Auto-Submitted"] == "auto-generated"
    assert back["X-Epcmon-Alarm"] == "17"
    assert back.get_content() == text(ZH, ONE)


def test_acknowledged_says_by_whom():
    a = alarm(acknowledged_by="张工")
    lines = text(ZH, Batch("single", (Transition("acknowledged", a, a.raised_ms + 60_000),)))
    assert "确认：张工" in lines
    assert lines.startswith("【已确认】")

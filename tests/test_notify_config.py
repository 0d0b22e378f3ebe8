"""`[notify]`: channels validate themselves, secrets never come from the file, and a missing
environment variable stops the start with one message naming it."""

from __future__ import annotations

from typing import Any

import pytest

from alarms.notify import NotifyDispatcher
from core.config.notify import AlertmanagerChannel, EmailChannel, parse_window
from core.errors import ConfigError
from tests.notify_helpers import site

EMAIL = {
    "id": "ops-mail",
    "type": "email",
    "host": "smtp.example.gov.cn",
    "sender": "能源监测 <epcmon@example.gov.cn>",
    "recipients": ["ops@example.gov.cn"],
}


def test_each_channel_type_loads_with_its_defaults():
    s = site(
        [
            EMAIL,
            {"id": "hook", "type": "webhook", "url": "https://hooks.example.com/epc"},
            {"id": "wx", "type": "wecom", "key_env": "EPCMON_WECOM_KEY"},
            {"id": "dd", "type": "dingtalk", "token_env": "T", "secret_env": "S"},
            {"id": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093"},
        ]
    )
    email, hook, wx, dd, am = s.notify.channels
    assert isinstance(email, EmailChannel)
    assert (email.security, email.smtp_port) == ("starttls", 587)
    assert hook.kinds == ("raised", "cleared")
    assert wx.url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    assert dd.url == "https://oapi.dingtalk.com/robot/send"
    assert isinstance(am, AlertmanagerChannel)
    assert "updated" in am.kinds
    assert am.resend_s == 60
    assert s.api.public_url == "https://epc.example.gov.cn"


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("ssl", 465), ("none", 25)])
def test_the_smtp_port_follows_the_security(security: str, port: int):
    (channel,) = site([{**EMAIL, "security": security}]).notify.channels
    assert isinstance(channel, EmailChannel)
    assert channel.smtp_port == port


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({**EMAIL, "password": "hunter2"}, "`password` does not belong in the site file"),
        (
            {"id": "wx", "type": "wecom", "key": "3f2a-secret"},
            "put it in an environment variable and name that variable in `key_env`",
        ),
        (
            {"id": "dd", "type": "dingtalk", "token_env": "T", "secret": "SECabc"},
            "`secret_env`",
        ),
        (
            {"id": "hook", "type": "webhook", "url": "http://x/y", "token": "abc"},
            "`token_env`",
        ),
    ],
)
def test_a_secret_in_the_file_is_refused_and_not_echoed(entry: dict[str, Any], says: str):
    with pytest.raises(ConfigError) as caught:
        site([entry])
    assert says in str(caught.value)
    for secret in ("hunter2", "3f2a-secret", "SECabc", "abc"):
        assert secret not in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "key", "says"),
    [
        ({**EMAIL, "username": "epcmon"}, "password_env", "a username needs"),
        ({**EMAIL, "recipients": []}, "recipients", "at least 1"),
        ({**EMAIL, "quiet_hours": "22:00-7:00"}, "quiet_hours", "should match"),
        ({**EMAIL, "quiet_hours": "07:00-07:00"}, "quiet_hours", "the same time"),
        ({**EMAIL, "digest_at": "08:30:15"}, "digest_at", "whole minutes"),
        ({**EMAIL, "min_severity": "fatal"}, "min_severity", "'info', 'warning' or 'critical'"),
        ({**EMAIL, "kinds": ["opened"]}, "kinds.0", "'raised'"),
        ({"id": "hook", "type": "webhook"}, "url", "exactly one of `url` or `url_env`"),
        ({"id": "hook", "type": "webhook", "url": "ftp://x"}, "url", "should match"),
        ({"id": "wx", "type": "wecom", "key_env": "bad-name"}, "key_env", "should match"),
        (
            {
                "id": "am",
                "type": "alertmanager",
                "url": "http://a:9093",
                "quiet_hours": "22:00-07:00",
            },
            "quiet_hours",
            "time_intervals",
        ),
        ({"id": "x", "type": "pager"}, "(entry)", "'email', 'webhook', 'wecom'"),
    ],
)
def test_bad_channels_name_the_key(entry: dict[str, Any], key: str, says: str):
    with pytest.raises(ConfigError) as caught:
        site([entry])
    assert caught.value.entity == f"notify channel {entry['id']!r}"
    assert caught.value.key == key
    assert says in str(caught.value)


def test_channel_ids_are_unique():
    with pytest.raises(ConfigError, match="two channels are called 'hook'"):
        site([{"id": "hook", "type": "webhook", "url": "http://a/b"}] * 2)


def test_quiet_window_parses_and_may_wrap_midnight():
    from datetime import time

    assert parse_window("22:00-07:00") == (time(22), time(7))
    assert parse_window("") is None


def test_a_missing_secret_variable_stops_the_start_naming_it():
    s = site([{"id": "wx", "type": "wecom", "key_env": "EPCMON_TEST_WECOM_KEY"}])
    with pytest.raises(ConfigError) as caught:
        NotifyDispatcher(s, environ={})
    assert "EPCMON_TEST_WECOM_KEY is not set" in str(caught.value)
    assert (caught.value.entity, caught.value.key) == ("notify channel 'wx'", "key_env")
    NotifyDispatcher(s, environ={"EPCMON_TEST_WECOM_KEY": "k"})  # set: it starts


def test_an_unreadable_ca_file_stops_the_start():
    s = site([{**EMAIL, "ca_file": "/nonexistent/ca.pem"}])
    with pytest.raises(ConfigError) as caught:
        NotifyDispatcher(s, environ={})
    assert caught.value.key == "ca_file"


def test_disabled_channels_and_notify_send_nothing():
    s = site([{**EMAIL, "enabled": False}, {"id": "h", "type": "webhook", "url": "http://a/b"}])
    assert [lane.channel.id for lane in NotifyDispatcher(s, environ={}).lanes] == ["h"]
    off = s.model_copy(update={"notify": s.notify.model_copy(update={"enabled": False})})
    assert NotifyDispatcher(off, environ={}).lanes == []

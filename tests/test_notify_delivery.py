"""The dispatcher against a real HTTP receiver on loopback: each channel's exact request,
retries, de-duplication, the rate limit, quiet hours and the digest on an injected clock, a
slow receiver, the bound, and secrets that never reach a log line."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from alarms.model import Severity
from alarms.notify import NotifyDispatcher
from alarms.notify.formats import alertmanager_body, dingtalk_body, webhook_body, wecom_body
from alarms.notify.notice import SiteNames
from alarms.notify.render import Batch
from core.health import Health
from tests.notify_helpers import Answer, FakeClock, Receiver, change, receiver, site

SECRETS = {
    "T_WECOM_KEY": "wecom-key-693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa",
    "T_DD_TOKEN": "dd-token-4f9b1c0e7d",
    "T_DD_SECRET": "SECd1a9c0ffee5ecret",
    "T_HOOK_TOKEN": "hook-bearer-8c1e2f",
    "T_HOOK_SECRET": "hook-signing-55aa",
    "T_AM_TOKEN": "am-bearer-0b0b",
}
FAST = {"retry_backoff_s": 0.05, "retry_max_s": 0.2}


@pytest.fixture
def rx() -> Iterator[Receiver]:
    yield from receiver()


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)  # let the lanes work, then look again


@asynccontextmanager
async def running(dispatcher: NotifyDispatcher) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def dispatcher(channels: list[dict[str, Any]], **kw: Any) -> NotifyDispatcher:
    kw.setdefault("tick_s", 0.02)
    kw.setdefault("environ", SECRETS)
    return NotifyDispatcher(site(channels), **kw)


def all_channels(url: str) -> list[dict[str, Any]]:
    return [
        {"id": "hook", "type": "webhook", "url": f"{url}/hook",
         "token_env": "T_HOOK_TOKEN", "secret_env": "T_HOOK_SECRET"},
        {"id": "wx", "type": "wecom", "url": f"{url}/wecom", "key_env": "T_WECOM_KEY"},
        {"id": "dd", "type": "dingtalk", "url": f"{url}/dingtalk", "token_env": "T_DD_TOKEN",
         "secret_env": "T_DD_SECRET", "at_mobiles": ["13800000000"]},
        {"id": "am", "type": "alertmanager", "url": url, "token_env": "T_AM_TOKEN"},
    ]  # fmt: skip


async def test_each_http_channel_posts_its_exact_request(rx: Receiver):
    d = dispatcher(all_channels(rx.url))
    leak = change()
    one = Batch("single", (leak,))
    names = SiteNames(d.site)
    async with running(d):
        d.dispatch([leak])
        await until(lambda: all(s.messages == 1 for s in d.stats().values()), what="each channel")

    (hook,) = rx.on("/hook")
    assert hook.headers["content-type"] == "application/json; charset=utf-8"
    assert hook.headers["authorization"] == "Bearer hook-bearer-8c1e2f"
    mac = hmac.new(b"hook-signing-55aa", hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["x-epcmon-signature-256"] == f"sha256={mac}"
    assert hook.json() == webhook_body(names, one)
    assert hook.json()["transitions"][0]["alarm"]["id"] == 17

    (wx,) = rx.on("/wecom")
    assert wx.query == {"key": SECRETS["T_WECOM_KEY"]}
    assert wx.json() == wecom_body(names, one)
    assert wx.json()["msgtype"] == "markdown"

    (dd,) = rx.on("/dingtalk")
    assert dd.query["access_token"] == SECRETS["T_DD_TOKEN"]
    signed = f"{dd.query['timestamp']}\n{SECRETS['T_DD_SECRET']}".encode()
    expected = hmac.new(SECRETS["T_DD_SECRET"].encode(), signed, hashlib.sha256).digest()
    assert dd.query["sign"] == base64.b64encode(expected).decode()
    assert abs(int(dd.query["timestamp"]) / 1000 - time.time()) < 60  # DingTalk checks it
    assert dd.json() == dingtalk_body(names, one, ("13800000000",))

    (am,) = rx.on("/api/v2/alerts")
    assert am.headers["authorization"] == "Bearer am-bearer-0b0b"
    alerts = am.json()
    assert isinstance(alerts, list)
    assert len(alerts) == 1
    now_ms = int(time.time() * 1000)
    sent = alertmanager_body(names, one, now_ms, 60)
    assert {k: v for k, v in alerts[0].items() if k != "endsAt"} == {
        k: v for k, v in sent[0].items() if k != "endsAt"
    }
    assert alerts[0]["labels"]["alertname"] == "night_water_flow"
    assert len(rx.requests) == 4


async def test_a_failed_delivery_is_retried_until_the_receiver_takes_it(rx: Receiver):
    rx.plan = [Answer(500, "down"), Answer(503, "busy"), Answer(200, "{}")]
    health = Health()
    d = dispatcher([{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook", **FAST}],
                   health=health)  # fmt: skip
    async with running(d):
        d.dispatch([change()])
        await until(lambda: d.stats()["hook"].messages == 1, what="delivered after retries")
    bodies = [r.body for r in rx.on("/hook")]
    assert len(bodies) == 3
    assert len(set(bodies)) == 1
    assert not health.is_degraded("notify hook")  # failing, then delivered again
    assert health.transitions == 2


async def test_a_receiver_down_is_a_health_condition_until_it_is_back(rx: Receiver):
    health = Health()
    rx.answer_for = lambda r: Answer(503, "maintenance")
    d = dispatcher([{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook", **FAST}],
                   health=health)  # fmt: skip
    async with running(d):
        d.dispatch([change()])
        await until(lambda: health.is_degraded("notify hook"), what="degraded")
        assert "HTTP 503: maintenance" in health.snapshot().conditions["notify hook"].detail
        assert d.stats()["hook"].failing == "HTTP 503: maintenance"
        rx.answer_for = None
        await until(lambda: not health.is_degraded("notify hook"), what="recovered")
    assert d.stats()["hook"].messages == 1
    assert d.stats()["hook"].given_up == 0


@pytest.mark.parametrize(
    ("answer", "requests"),
    [
        (Answer(400, '{"error":"bad payload"}'), 1),  # a 4xx: retrying cannot help
        (Answer(200, '{"errcode":93000,"errmsg":"invalid webhook url"}'), 1),  # a bad key
        (Answer(200, "<html>proxy</html>"), 1),  # not a robot
    ],
)
async def test_a_permanent_failure_is_given_up_and_logged(
    rx: Receiver, caplog: pytest.LogCaptureFixture, answer: Answer, requests: int
):
    rx.answer_for = lambda r: answer
    d = dispatcher([{"id": "wx", "type": "wecom", "url": f"{rx.url}/wecom",
                     "key_env": "T_WECOM_KEY", **FAST}])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="epcmon"):
        async with running(d):
            d.dispatch([change()])
            await until(lambda: d.stats()["wx"].given_up == 1, what="given up")
    assert len(rx.requests) == requests
    assert "channel wx: gave up on a message of 1 alarm changes after 1 attempts" in caplog.text


async def test_a_robots_too_fast_answer_is_retried(rx: Receiver):
    rx.plan = [Answer(200, '{"errcode":130101,"errmsg":"send too fast"}')]
    d = dispatcher([{"id": "dd", "type": "dingtalk", "url": f"{rx.url}/dingtalk",
                     "token_env": "T_DD_TOKEN", **FAST}])  # fmt: skip
    async with running(d):
        d.dispatch([change()])
        await until(lambda: d.stats()["dd"].messages == 1, what="delivered on the retry")
    assert len(rx.requests) == 2


async def test_the_same_change_twice_is_sent_once(rx: Receiver):
    d = dispatcher([{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook"}])
    leak, cleared = change(), change("cleared", cleared="2025-07-14 06:00")
    async with running(d):
        d.dispatch([leak, leak])
        d.dispatch([leak])  # e.g. the engine re-sending after a restart
        d.dispatch([cleared])
        await until(lambda: d.stats()["hook"].messages == 2, what="raised and cleared")
        d.dispatch([cleared])
        await until(lambda: d.duplicates == 3, what="three duplicates seen")
    kinds = [r.json()["transitions"][0]["kind"] for r in rx.on("/hook")]
    assert kinds == ["raised", "cleared"]


async def test_the_rate_limit_is_per_channel_and_a_storm_makes_few_messages(rx: Receiver):
    d = dispatcher(
        [
            {"id": "slow", "type": "webhook", "url": f"{rx.url}/slow",
             "rate_burst": 2, "rate_per_hour": 1},
            {"id": "free", "type": "webhook", "url": f"{rx.url}/free", "rate_burst": 10},
        ]
    )  # fmt: skip
    storm = [change(id=i) for i in range(6)]
    async with running(d):
        d.dispatch(storm)
        await until(lambda: d.stats()["slow"].changes == 6, what="the storm on `slow`")
        await until(lambda: d.stats()["free"].changes == 6, what="the storm on `free`")
        d.dispatch([change(id=99)])
        await until(lambda: d.stats()["slow"].waiting == 1, what="the 7th waits for a token")
    slow = [r.json() for r in rx.on("/slow")]
    assert [(b["kind"], len(b["transitions"])) for b in slow] == [("single", 1), ("batch", 5)]
    assert len(rx.on("/free")) == 6  # its own bucket: one message per change
    assert d.stats()["slow"].dropped == 0


async def test_a_slow_receiver_never_blocks_dispatch_nor_the_other_channels(rx: Receiver):
    rx.answer_for = lambda r: Answer(200, "{}", delay_s=1.5 if r.path == "/slow" else 0)
    d = dispatcher(
        [
            {"id": "slow", "type": "webhook", "url": f"{rx.url}/slow"},
            {"id": "fast", "type": "webhook", "url": f"{rx.url}/fast", "rate_burst": 50},
        ]
    )
    async with running(d):
        d.dispatch([change(id=0)])
        await asyncio.sleep(0.05)  # the slow lane is now waiting on its receiver
        took = []
        for i in range(1, 21):
            started = time.perf_counter()
            d.dispatch([change(id=i)])
            took.append(time.perf_counter() - started)
        await until(lambda: d.stats()["fast"].changes == 21, timeout=1.0, what="fast lane")
        assert d.stats()["slow"].messages == 0  # still on its first message
    assert max(took) < 0.05, took


async def test_quiet_hours_hold_until_morning_on_an_injected_clock(rx: Receiver):
    clock = FakeClock("2025-07-14 23:00")
    d = dispatcher(
        [{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook",
          "quiet_hours": "22:00-07:00"}],
        clock=clock,
    )  # fmt: skip
    async with running(d):
        d.dispatch([change(id=1)])
        d.dispatch([change(id=2, severity=Severity.CRITICAL)])  # passes quiet hours
        await until(lambda: len(rx.requests) == 1, what="the critical one at once")
        clock.set("2025-07-15 03:00")
        d.dispatch([change("cleared", id=1, cleared="2025-07-15 03:00")])
        await asyncio.sleep(0.2)  # ten ticks of the lane: nothing may go out at night
        assert len(rx.requests) == 1
        assert d.stats()["hook"].waiting == 2
        clock.set("2025-07-15 07:00")
        await until(lambda: len(rx.requests) == 2, what="the morning summary")
    summary = rx.requests[1].json()
    assert summary["kind"] == "quiet"
    assert summary["title"].startswith("【免打扰期间告警】2 条告警变化")
    assert [(t["kind"], t["alarm"]["id"]) for t in summary["transitions"]] == [
        ("raised", 1),
        ("cleared", 1),
    ]


async def test_a_daily_digest_on_an_injected_clock(rx: Receiver):
    clock = FakeClock("2025-07-14 09:00")
    d = dispatcher(
        [{"id": "daily", "type": "webhook", "url": f"{rx.url}/daily", "digest_at": "08:30",
          "min_severity": "info"},
         {"id": "now", "type": "webhook", "url": f"{rx.url}/now"}],
        clock=clock,
    )  # fmt: skip
    async with running(d):
        d.dispatch([change(id=1)])
        d.dispatch([change(id=2, severity=Severity.INFO)])
        clock.set("2025-07-14 18:00")
        d.dispatch([change("cleared", id=1, cleared="2025-07-14 18:00")])
        await until(lambda: len(rx.on("/now")) == 2, what="the other channel at once")
        clock.set("2025-07-15 08:29")
        await asyncio.sleep(0.2)  # ten ticks: not yet
        assert rx.on("/daily") == []
        clock.set("2025-07-15 08:30")
        await until(lambda: len(rx.on("/daily")) == 1, what="the digest")
    digest = rx.on("/daily")[0].json()
    assert digest["kind"] == "digest"
    assert digest["title"] == "【每日告警摘要】2025-07-15：3 条告警变化（警告 1，提示 1）"
    assert [t["alarm"]["id"] for t in digest["transitions"]] == [1, 2, 1]


async def test_alertmanager_active_alarms_are_resent_until_cleared(rx: Receiver):
    clock = FakeClock("2025-07-14 02:16")
    d = dispatcher([{"id": "am", "type": "alertmanager", "url": rx.url, "resend_s": 60}],
                   clock=clock)  # fmt: skip
    async with running(d):
        d.dispatch([change()])
        await until(lambda: len(rx.requests) == 1, what="the alert")
        clock.set("2025-07-14 02:17")
        await until(lambda: len(rx.requests) == 2, what="the resend")
        d.dispatch([change("cleared", cleared="2025-07-14 02:17")])
        await until(lambda: len(rx.requests) == 3, what="the resolve")
        clock.set("2025-07-14 02:19")
        await asyncio.sleep(0.2)  # ten ticks past the next resend time: nothing active
    ends = [r.json()[0]["endsAt"] for r in rx.requests]
    assert len(rx.requests) == 3
    assert ends == ["2025-07-13T18:20:00.000Z", "2025-07-13T18:21:00.000Z",
                    "2025-07-13T18:17:00.000Z"]  # fmt: skip


async def test_a_channel_hears_of_an_alarm_when_it_escalates_into_its_filter(rx: Receiver):
    d = dispatcher([{"id": "duty", "type": "webhook", "url": f"{rx.url}/duty",
                     "min_severity": "critical"}])  # fmt: skip
    async with running(d):
        d.dispatch([change(id=5)])  # a warning: not for this channel
        d.dispatch([change("updated", id=5, severity=Severity.CRITICAL, raised="2025-07-14 02:45")])
        d.dispatch([change("cleared", id=5, cleared="2025-07-14 04:00")])  # a warning again
        await until(lambda: len(rx.requests) == 2, what="raised and cleared")
    kinds = [r.json()["transitions"][0]["kind"] for r in rx.requests]
    assert kinds == ["raised", "cleared"]


async def test_a_full_queue_drops_the_oldest_counts_and_logs_once(
    rx: Receiver, caplog: pytest.LogCaptureFixture
):
    rx.answer_for = lambda r: Answer(503, "down")
    d = dispatcher([{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook", "queue": 10,
                     "retry_backoff_s": 30}])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="epcmon.notify"):
        async with running(d):
            d.dispatch([change(id=0)])
            await until(lambda: len(rx.requests) == 1, what="the first attempt")
            for i in range(1, 26):
                d.dispatch([change(id=i)])
            assert d.stats()["hook"].dropped == 16
            assert d.stats()["hook"].waiting == 10
    said = [r.getMessage() for r in caplog.records]
    assert sum("the oldest are dropped" in m for m in said) == 1
    assert any("stopping with alarm changes not delivered: hook 10" in m for m in said)


async def test_stopped_mid_delivery_then_restarted_nothing_is_lost(rx: Receiver):
    rx.answer_for = lambda r: Answer(200, "{}", delay_s=0.5)
    d = dispatcher([{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook"}])
    async with running(d):
        d.dispatch([change(id=1)])
        await asyncio.sleep(0.1)  # the message is in flight
    assert d.stats()["hook"].waiting == 1  # put back, not lost
    rx.answer_for = None
    async with running(d):  # the supervisor starting the part again
        await until(lambda: d.stats()["hook"].messages == 1, what="delivered after restart")
    ids = [r.json()["transitions"][0]["alarm"]["id"] for r in rx.requests]
    assert ids[-1] == 1


async def test_secrets_never_reach_the_logs(rx: Receiver, caplog: pytest.LogCaptureFixture):
    # the receivers refuse and echo the whole request back: keys in URLs, tokens in headers
    def echo(r: Any) -> Answer:
        return Answer(400, json.dumps({"query": r.query, "headers": r.headers}))

    rx.answer_for = echo
    d = dispatcher(all_channels(rx.url))
    # the CLI quietens httpx to WARNING for the whole process, and CLI tests run in-process
    # before this one: open httpx's logger explicitly, as `-v` or a custom log config would
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        async with running(d):
            d.dispatch([change()])
            await until(
                lambda: sum(s.given_up for s in d.stats().values()) >= 4, what="all refused"
            )
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "gave up" in logged
    assert "HTTP Request: POST" in logged  # httpx's own request log was captured...
    for value in SECRETS.values():
        assert value not in logged  # ...and redacted
    assert "***" in logged


async def test_a_stop_right_after_a_dispatch_stops_at_once(rx: Receiver):
    # regression: a lane waiting in wait_for() swallowed the cancellation when its wake-up
    # and the stop came in the same loop turn (Python 3.11), and never stopped
    d = dispatcher([{"id": "hook", "type": "webhook", "url": f"{rx.url}/hook"}])
    leak = change()
    d.dispatch([leak])
    for _ in range(3):
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await until(lambda: d.stats()["hook"].messages == 1, what="the first delivered")
        d.dispatch([leak])  # a duplicate: it only wakes the lane
        stop.set()
        await asyncio.wait_for(task, 2)

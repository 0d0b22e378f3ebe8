"""The outbox's timing rules, pure, with the clock in the test's hand: quiet hours, the daily
digest, the rate limit, retries with backoff, the bound, Alertmanager's resend."""

from __future__ import annotations

from datetime import time

from alarms.model import Severity
from alarms.notify.outbox import Outbox, Pace
from tests.notify_helpers import TZ, change, local_ms


def at(text: str) -> float:
    return local_ms(text) / 1000


def ids(batch) -> list[int]:
    return [t.alarm.id for t in batch.transitions]


# --------------------------------------------------------------------------- quiet hours


def test_quiet_hours_hold_changes_until_they_end_then_send_one_summary():
    box = Outbox(Pace(TZ, quiet=(time(22), time(7))), at("2025-07-14 21:00"))
    box.add(change(id=1), at("2025-07-14 23:00"))
    box.add(change(id=2), at("2025-07-15 02:30"))
    assert box.due(at("2025-07-15 02:30")) is None
    assert box.due(at("2025-07-15 06:59")) is None
    batch = box.due(at("2025-07-15 07:00"))
    assert batch is not None
    assert batch.kind == "quiet"
    assert ids(batch) == [1, 2]
    assert box.due(at("2025-07-15 07:00")) is None
    assert len(box) == 0


def test_outside_quiet_hours_changes_go_at_once():
    box = Outbox(Pace(TZ, quiet=(time(22), time(7))), at("2025-07-14 09:00"))
    box.add(change(id=1), at("2025-07-14 21:59"))
    batch = box.due(at("2025-07-14 21:59"))
    assert batch is not None
    assert batch.kind == "single"
    assert ids(batch) == [1]


def test_a_critical_alarm_passes_quiet_hours_if_configured():
    critical = change(id=9, severity=Severity.CRITICAL)
    box = Outbox(Pace(TZ, quiet=(time(22), time(7))), at("2025-07-14 21:00"))
    box.add(critical, at("2025-07-14 23:00"))
    box.add(change(id=1), at("2025-07-14 23:00"))
    batch = box.due(at("2025-07-14 23:00"))
    assert batch is not None
    assert ids(batch) == [9]
    assert box.due(at("2025-07-14 23:00")) is None  # the warning waits for the morning
    strict = Outbox(Pace(TZ, quiet=(time(22), time(7)), quiet_critical=False), 0)
    strict.add(critical, at("2025-07-14 23:00"))
    assert strict.due(at("2025-07-14 23:00")) is None
    batch = strict.due(at("2025-07-15 07:00"))
    assert batch is not None
    assert batch.kind == "single"
    assert ids(batch) == [9]


def test_a_daytime_quiet_window_does_not_wrap():
    pace = Pace(TZ, quiet=(time(12), time(13, 30)))
    assert not pace.is_quiet(at("2025-07-14 11:59"))
    assert pace.is_quiet(at("2025-07-14 12:00"))
    assert pace.is_quiet(at("2025-07-14 13:29"))
    assert not pace.is_quiet(at("2025-07-14 13:30"))
    assert not pace.is_quiet(at("2025-07-14 23:00"))


# --------------------------------------------------------------------------- digest


def test_a_digest_channel_sends_the_collected_changes_once_a_day_at_its_time():
    box = Outbox(Pace(TZ, digest_at=time(8, 30)), at("2025-07-14 09:00"))
    box.add(change(id=1), at("2025-07-14 10:00"))
    box.add(change("cleared", id=1, cleared="2025-07-14 15:00"), at("2025-07-14 15:00"))
    box.add(change(id=2, severity=Severity.CRITICAL), at("2025-07-15 03:00"))  # no exception
    assert box.due(at("2025-07-14 15:00")) is None
    assert box.due(at("2025-07-15 08:29")) is None
    batch = box.due(at("2025-07-15 08:30"))
    assert batch is not None
    assert batch.kind == "digest"
    assert batch.day == "2025-07-15"
    assert ids(batch) == [1, 1, 2]
    # nothing collected: no message the next day
    assert box.due(at("2025-07-16 08:30")) is None
    box.add(change(id=3), at("2025-07-16 09:00"))
    assert box.due(at("2025-07-17 08:29")) is None
    batch = box.due(at("2025-07-17 08:31"))
    assert batch is not None
    assert ids(batch) == [3]
    assert batch.day == "2025-07-17"


def test_a_digest_started_after_its_time_first_sends_the_next_day():
    box = Outbox(Pace(TZ, digest_at=time(8, 30)), at("2025-07-14 08:30"))
    box.add(change(id=1), at("2025-07-14 08:30"))
    assert box.due(at("2025-07-14 08:31")) is None
    assert box.due(at("2025-07-15 08:30")) is not None


# --------------------------------------------------------------------------- rate limit


def test_the_rate_limit_sends_singles_then_one_batch_and_drops_nothing():
    box = Outbox(Pace(TZ, burst=3, rate_per_s=1 / 60), at("2025-07-14 09:00"))
    t0 = at("2025-07-14 09:00")
    for i in range(10):
        box.add(change(id=i), t0)
    sent = [box.due(t0), box.due(t0), box.due(t0)]
    assert [b.kind for b in sent if b] == ["single", "single", "batch"]
    assert [ids(b) for b in sent if b] == [[0], [1], list(range(2, 10))]
    assert box.due(t0) is None
    box.add(change(id=10), t0 + 30)
    assert box.due(t0 + 30) is None  # half a token
    batch = box.due(t0 + 60)
    assert batch is not None
    assert ids(batch) == [10]
    assert box.dropped == 0


def test_tokens_refill_up_to_the_burst_only():
    box = Outbox(Pace(TZ, burst=2, rate_per_s=1), 0)
    box.add(change(id=1), 0)
    assert box.due(1000) is not None
    assert box.tokens == 1  # refilled to 2, one taken


# --------------------------------------------------------------------------- retries


def test_a_failed_message_is_retried_with_doubling_backoff_then_given_up():
    box = Outbox(Pace(TZ, retries=3, backoff_s=5, backoff_max_s=12), 0)
    box.add(change(id=1), 0)
    box.add(change(id=2), 0)
    batch = box.due(0)
    assert batch is not None
    assert ids(batch) == [1]
    now, waits = 0.0, []
    for _ in range(3):
        outcome, delay = box.failed(batch, now, retryable=True)
        assert outcome == "retry"
        waits.append(delay)
        assert box.due(now + delay - 0.1) is None  # change 2 waits behind it: order kept
        now += delay
        batch = box.due(now)
        assert batch is not None
        assert ids(batch) == [1]
    assert waits == [5, 10, 12]
    assert box.failed(batch, now, retryable=True) == ("given up", 0.0)
    assert box.given_up == 1
    after = box.due(now)
    assert after is not None
    assert ids(after) == [2]
    box.delivered(after, now)
    assert len(box) == 0


def test_a_permanent_failure_is_not_retried():
    box = Outbox(Pace(TZ), 0)
    box.add(change(id=1), 0)
    batch = box.due(0)
    assert batch is not None
    assert box.failed(batch, 0, retryable=False) == ("given up", 0.0)
    assert box.given_up == 1
    assert len(box) == 0


def test_a_receivers_retry_after_is_honoured():
    box = Outbox(Pace(TZ, backoff_s=1, backoff_max_s=600), 0)
    box.add(change(id=1), 0)
    batch = box.due(0)
    assert batch is not None
    assert box.failed(batch, 0, retryable=True, retry_after=30) == ("retry", 30)


def test_a_message_interrupted_in_flight_is_due_again_first():
    box = Outbox(Pace(TZ), 0)
    box.add(change(id=1), 0)
    box.add(change(id=2), 0)
    batch = box.due(0)
    assert batch is not None
    box.put_back(batch)
    again = box.due(0)
    assert again is batch
    assert len(box) == 2


# --------------------------------------------------------------------------- the bound


def test_a_full_queue_drops_the_oldest_and_counts_them():
    box = Outbox(Pace(TZ, queue=10, burst=1, rate_per_s=1e-9), 0)
    box.add(change(id=100), 0)
    first = box.due(0)  # the one token: in flight, then failing
    assert first is not None
    box.failed(first, 0, retryable=True)
    dropped = sum(box.add(change(id=i), 0) for i in range(15))
    assert dropped == 6
    assert box.dropped == 6
    assert len(box) == 10
    assert [t.alarm.id for t in box.pending] == list(range(6, 15))
    assert box.retrying is not None  # the message being retried is kept while others go


# --------------------------------------------------------------------------- Alertmanager


def test_alertmanager_mode_sends_all_waiting_in_one_request_and_resends_the_active():
    box = Outbox(Pace(TZ, resend_s=60, burst=5), 0)
    box.add(change(id=1), 0)
    box.add(change(id=2), 0)
    batch = box.due(0)
    assert batch is not None
    assert batch.kind == "batch"
    assert ids(batch) == [1, 2]
    box.delivered(batch, 0)
    assert box.due(30) is None
    resend = box.due(60)
    assert resend is not None
    assert resend.kind == "resend"
    assert ids(resend) == [1, 2]
    box.delivered(resend, 60)
    box.add(change("cleared", id=1, cleared="2025-07-14 06:00"), 70)
    cleared = box.due(70)
    assert cleared is not None
    assert [t.kind for t in cleared.transitions] == ["cleared"]
    again = box.due(120)
    assert again is not None
    assert ids(again) == [2]
    assert box.failed(again, 120, retryable=True) == ("given up", 0.0)  # next resend comes
    assert box.given_up == 0


def test_alertmanager_mode_resolves_the_old_labels_when_severity_changes():
    box = Outbox(Pace(TZ, resend_s=60), 0)
    box.add(change(id=1, severity=Severity.WARNING), 0)
    box.due(0)
    box.add(change("updated", id=1, severity=Severity.CRITICAL), 10)
    batch = box.due(10)
    assert batch is not None
    assert [(t.kind, t.alarm.severity) for t in batch.transitions] == [
        ("cleared", Severity.WARNING),
        ("updated", Severity.CRITICAL),
    ]

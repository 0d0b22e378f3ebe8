"""One channel's undelivered changes and when to send them: pure, the clock passed in.

    outbox = Outbox(Pace.of(channel, tz), now)
    outbox.add(transition, now)          # queued; returns how many old ones it dropped
    batch = outbox.due(now)              # what to send now, or None
    outbox.delivered(batch, now)         # or: outbox.failed(batch, now, retryable=...)

The rules, in the order `due()` applies them:

1. **Retry**: a failed message is retried after a backoff (`retry_backoff_s`, doubled up to
   `retry_max_s`, at least the receiver's `Retry-After`), before anything newer, so the
   receiver sees the changes in order; after `retries` it is given up (and counted).
2. **Quiet hours** (local time, may wrap midnight): changes that come in meanwhile wait, and
   go out as one `quiet` summary when the window ends; critical ones pass if
   `quiet_critical`.
3. **Digest**: on a digest channel every change waits for the day's `digest_at` and goes out
   in one `digest` message (none when there was nothing).
4. **Rate limit**: a token bucket (`rate_burst`, refilled at `rate_per_hour`); each message
   takes a token. With tokens to spare each change is a message of its own; the last token
   takes all that wait as one `batch`, so a storm makes a few messages and loses nothing.
5. **Resend** (Alertmanager): every `resend_s` the alarms still active are sent again.

The outbox holds at most `queue` changes; beyond that the oldest are dropped and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from alarms.model import Severity, Transition
from alarms.notify.render import Batch
from core.config.notify import AlertmanagerChannel, Channel


@dataclass(frozen=True, slots=True)
class Pace:
    """A channel's timing rules (module doc)."""

    tz: ZoneInfo
    quiet: tuple[time, time] | None = None
    quiet_critical: bool = True
    digest_at: time | None = None
    rate_per_s: float = 30 / 3600
    burst: int = 5
    retries: int = 8
    backoff_s: float = 5.0
    backoff_max_s: float = 600.0
    queue: int = 1000
    resend_s: float = 0.0
    """> 0: Alertmanager mode (all that waits goes in one request; active alarms resent)."""

    @classmethod
    def of(cls, channel: Channel, tz: ZoneInfo) -> Pace:
        return cls(
            tz=tz,
            quiet=channel.quiet_window,
            quiet_critical=channel.quiet_critical,
            digest_at=channel.digest_at,
            rate_per_s=channel.rate_per_hour / 3600,
            burst=channel.rate_burst,
            retries=channel.retries,
            backoff_s=channel.retry_backoff_s,
            backoff_max_s=channel.retry_max_s,
            queue=channel.queue,
            resend_s=channel.resend_s if isinstance(channel, AlertmanagerChannel) else 0.0,
        )

    def backoff(self, attempts: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempts - 1)))

    def is_quiet(self, now: float) -> bool:
        if self.quiet is None:
            return False
        start, end = self.quiet
        t = datetime.fromtimestamp(now, self.tz).time()
        return start <= t < end if start < end else t >= start or t < end

    def next_digest(self, now: float) -> float:
        """The first digest time after `now` (epoch s)."""
        assert self.digest_at is not None
        local = datetime.fromtimestamp(now, self.tz)
        at = datetime.combine(local.date(), self.digest_at, tzinfo=self.tz)
        if at.timestamp() <= now:
            at = datetime.combine(local.date() + timedelta(days=1), self.digest_at, tzinfo=self.tz)
        return at.timestamp()


Outcome = Literal["retry", "given up"]


class Outbox:
    """One channel's queue and its timing (module doc)."""

    def __init__(self, pace: Pace, now: float) -> None:
        self.pace = pace
        self.pending: deque[Transition] = deque()
        self.held: deque[Transition] = deque()  # quiet hours
        self.digest: deque[Transition] = deque()
        self.tokens = float(pace.burst)
        self._refilled = now
        self.retrying: Batch | None = None
        self.retry_at = 0.0
        self.next_digest = pace.next_digest(now) if pace.digest_at is not None else 0.0
        self.active: dict[int, Transition] = {}  # Alertmanager: what is resent
        self.next_resend = now + pace.resend_s
        self.dropped = 0
        self.given_up = 0

    def __len__(self) -> int:
        """Changes not delivered yet (a message being retried included)."""
        retrying = 0 if self.retrying is None else len(self.retrying.transitions)
        return len(self.pending) + len(self.held) + len(self.digest) + retrying

    # -- in ------------------------------------------------------------------------------

    def add(self, transition: Transition, now: float) -> int:
        """Queue one change; returns how many old ones were dropped to make room."""
        if self.pace.resend_s > 0:
            self._track(transition)
        if self.pace.digest_at is not None:
            target = self.digest
        elif self.pace.is_quiet(now) and not (
            self.pace.quiet_critical and transition.alarm.severity is Severity.CRITICAL
        ):
            target = self.held
        else:
            target = self.pending
        dropped = 0
        while len(self) >= self.pace.queue:
            victim = max((self.digest, self.held, self.pending), key=len)
            if not victim:  # only the message being retried is left: it goes
                assert self.retrying is not None
                dropped += len(self.retrying.transitions)
                self.retrying = None
                continue
            victim.popleft()
            dropped += 1
        target.append(transition)
        self.dropped += dropped
        return dropped

    def _track(self, transition: Transition) -> None:
        """Alertmanager: keep the active alarms to resend; a severity that changed is a new
        label set, so the old one is resolved explicitly."""
        alarm = transition.alarm
        before = self.active.get(alarm.id)
        if transition.kind == "cleared":
            self.active.pop(alarm.id, None)
            return
        if before is not None and before.alarm.severity != alarm.severity:
            old = replace(before.alarm, state="cleared", cleared_ms=transition.at_ms)
            self.pending.append(Transition("cleared", old, transition.at_ms))
        self.active[alarm.id] = transition

    # -- out -----------------------------------------------------------------------------

    def due(self, now: float) -> Batch | None:
        """The message to send now, taken out of the queue; None when nothing is due."""
        if self.retrying is not None:
            return self.retrying if now >= self.retry_at else None
        self._refill(now)
        if self.held and not self.pace.is_quiet(now):
            held = tuple(self.held)
            self.held.clear()
            self.tokens = max(0.0, self.tokens - 1)
            return Batch("quiet" if len(held) > 1 else "single", held)
        if self.pace.digest_at is not None and now >= self.next_digest:
            day = datetime.fromtimestamp(self.next_digest, self.pace.tz).date()
            self.next_digest = self.pace.next_digest(now)
            if self.digest:
                collected = tuple(self.digest)
                self.digest.clear()
                return Batch("digest", collected, day=day.isoformat())
        if self.pending and self.tokens >= 1:
            self.tokens -= 1
            if self.pace.resend_s > 0 or (len(self.pending) > 1 and self.tokens < 1):
                taken = tuple(self.pending)
                self.pending.clear()
                return Batch("single" if len(taken) == 1 else "batch", taken)
            return Batch("single", (self.pending.popleft(),))
        if self.pace.resend_s > 0 and now >= self.next_resend:
            self.next_resend = now + self.pace.resend_s
            if self.active:
                return Batch("resend", tuple(self.active.values()))
        return None

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled)
        self.tokens = min(float(self.pace.burst), self.tokens + elapsed * self.pace.rate_per_s)
        self._refilled = now

    def delivered(self, batch: Batch, now: float) -> None:
        if batch is self.retrying:
            self.retrying = None

    def failed(
        self, batch: Batch, now: float, *, retryable: bool, retry_after: float = 0.0
    ) -> tuple[Outcome, float]:
        """Record a failed delivery: ("retry", seconds until it) or ("given up", 0). A
        resend is never retried (the next one comes anyway)."""
        attempts = batch.attempts + 1
        if batch.kind == "resend" or not retryable or attempts > self.pace.retries:
            if batch is self.retrying:
                self.retrying = None
            if batch.kind != "resend":
                self.given_up += len(batch.transitions)
            return "given up", 0.0
        delay = max(self.pace.backoff(attempts), min(retry_after, self.pace.backoff_max_s))
        self.retrying = replace(batch, attempts=attempts)
        self.retry_at = now + delay
        return "retry", delay

    def put_back(self, batch: Batch) -> None:
        """A message whose delivery was interrupted (the service stops): it is due again
        first, as it was."""
        if batch is self.retrying or batch.kind == "resend":
            return
        self.retrying = batch
        self.retry_at = 0.0


__all__ = ["Outbox", "Outcome", "Pace"]

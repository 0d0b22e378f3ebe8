"""The `Dispatcher` of `epcmon run`: `dispatch()` only queues; `run()` delivers.

    dispatcher = NotifyDispatcher(site, health=health)    # secrets read from the environment
    dispatcher.dispatch(transitions)                       # any thread; never blocks or raises
    supervisor.add("notify", dispatcher.run)               # one lane per channel, until stop

`dispatch` drops a change it has seen already (the same alarm, kind and time: the engine
re-sending it after a restart sends nothing twice), then hands each change to every channel
whose filters it passes, into that channel's bounded `Outbox` (quiet hours, digest, rate
limit, retries: `alarms.notify.outbox`). Each channel is a lane of its own in `run`, so a
slow or dead receiver delays nobody else, and evaluation never waits for any of them.

A channel learns of an alarm once it passes its filters (`min_severity`, `rules`): an alarm
that escalates into them is announced then as `raised`; its clear is sent whether or not it
still passes them, so nobody is left with an alarm that never clears.

A failing channel is the condition `notify <id>` in `Health` (logged once when it starts
failing, once when it delivers again); a message given up after its retries, and changes
dropped because a channel's queue was full, are logged and counted (`stats()`). What is still
undelivered when the service stops is logged. Secrets never reach a log line (`senders`).
Restartable: the queues live on the object, and a message interrupted in flight is due again
first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from alarms.model import Severity, Transition
from alarms.notify.notice import SEVERITY_ORDER
from alarms.notify.outbox import Outbox, Pace
from alarms.notify.render import Batch
from alarms.notify.senders import DeliveryError, RedactingFilter, Redactor, Sender, build_sender
from core.config import SiteConfig
from core.config.notify import Channel
from core.health import Health

log = logging.getLogger("epcmon.notify")

TICK_S = 1.0
"""The longest a lane sleeps before it looks at its clock again (quiet hours ending, a
digest due, a retry due)."""
REDACTED_LOGGERS = ("httpx",)
"""Libraries whose log lines carry request URLs (a robot's key is in its URL)."""

Key = tuple[str, int, str, str, int]


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """What one channel did since the service started."""

    messages: int
    """Messages delivered."""
    changes: int
    """Alarm changes in them."""
    given_up: int
    """Changes in messages given up after their retries (or refused for good)."""
    dropped: int
    """Changes dropped because the channel's queue was full."""
    waiting: int
    """Changes not delivered yet."""
    failing: str
    """The last error while deliveries fail; empty when they succeed."""


class _Lane:
    """One channel: its filters, its outbox and its sender."""

    def __init__(self, channel: Channel, sender: Sender, outbox: Outbox, remember: int) -> None:
        self.channel = channel
        self.sender = sender
        self.outbox = outbox
        self.min_rank = SEVERITY_ORDER[Severity(channel.min_severity)]
        self.remember = remember
        self.announced: OrderedDict[int, None] = OrderedDict()
        self.wake: asyncio.Event | None = None
        self.messages = 0
        self.changes = 0
        self.failing = ""
        self.dropping = 0

    @property
    def name(self) -> str:
        return f"notify {self.channel.id}"

    def accept(self, t: Transition) -> Transition | None:
        """The change to queue for this channel, or None (module doc)."""
        alarm, c = t.alarm, self.channel
        passes = SEVERITY_ORDER[alarm.severity] >= self.min_rank and (
            not c.rules or alarm.rule in c.rules
        )
        known = alarm.id in self.announced
        if t.kind == "cleared":
            self.announced.pop(alarm.id, None)
            return t if (passes or known) and "cleared" in c.kinds else None
        if t.kind == "acknowledged":
            return t if (passes or known) and "acknowledged" in c.kinds else None
        if not passes:
            return None
        if not known:
            self.announced[alarm.id] = None
            while len(self.announced) > self.remember:
                self.announced.popitem(last=False)
            if t.kind == "updated":  # new to this channel: it hears it as raised
                t = Transition("raised", alarm, t.at_ms)
        return t if t.kind in c.kinds else None


class NotifyDispatcher:
    """Queues alarm changes and delivers them to the site's channels (module doc)."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        environ: Mapping[str, str] | None = None,
        health: Health | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.site = site
        self.health = health or Health()
        self.clock = clock
        self.tick_s = tick_s
        now = clock()
        config = site.notify
        channels = [c for c in config.channels if c.enabled] if config.enabled else []
        self.lanes = [
            _Lane(
                c,
                build_sender(c, site, environ),
                Outbox(Pace.of(c, site.site.tz), now),
                config.remember,
            )
            for c in channels
        ]
        self.redact = Redactor(s for lane in self.lanes for s in lane.sender.secrets)
        self.duplicates = 0
        self._remember = config.remember
        self._seen: OrderedDict[Key, None] = OrderedDict()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- in: any thread ------------------------------------------------------------------

    def dispatch(self, transitions: list[Transition]) -> None:
        """Queue `transitions` for delivery; never blocks, never raises."""
        try:
            self._queue(transitions)
        except Exception:  # a bug here must not stop the evaluation that called us
            log.exception("queuing %d alarm changes for delivery failed", len(transitions))
        self._wake()

    def _queue(self, transitions: list[Transition]) -> None:
        now = self.clock()
        with self._lock:
            for t in transitions:
                key = (t.kind, t.alarm.id, t.alarm.rule, t.alarm.subject, t.at_ms)
                if key in self._seen:
                    self.duplicates += 1
                    continue
                self._seen[key] = None
                if len(self._seen) > self._remember:
                    self._seen.popitem(last=False)
                for lane in self.lanes:
                    accepted = lane.accept(t)
                    if accepted is not None:
                        self._dropped(lane, lane.outbox.add(accepted, now))

    def _dropped(self, lane: _Lane, dropped: int) -> None:
        if not dropped:
            return
        if not lane.dropping:
            log.warning(
                "channel %s: %d alarm changes wait (its queue is full): the oldest are dropped "
                "until it delivers again", lane.channel.id, len(lane.outbox),
            )  # fmt: skip
        lane.dropping += dropped

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return
        for lane in self.lanes:
            if lane.wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(lane.wake.set)

    # -- out: the supervised part --------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set (a lane that fails unexpectedly raises)."""
        if not self.lanes:
            await stop.wait()
            return
        redacting = RedactingFilter(self.redact)
        loggers = [logging.getLogger(name) for name in REDACTED_LOGGERS]
        for logger in loggers:
            logger.addFilter(redacting)
        self._loop = asyncio.get_running_loop()
        for lane in self.lanes:
            lane.wake = asyncio.Event()
        try:
            async with httpx.AsyncClient(headers={"user-agent": "epcmon"}) as client:
                lanes = [
                    asyncio.create_task(self._lane(lane, client, stop), name=lane.name)
                    for lane in self.lanes
                ]
                stopped = asyncio.create_task(stop.wait())
                try:
                    done, _ = await asyncio.wait(
                        [*lanes, stopped], return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        if task is not stopped:
                            task.result()  # a lane's unexpected error ends the part
                finally:
                    for task in [*lanes, stopped]:
                        task.cancel()
                    await asyncio.gather(*lanes, stopped, return_exceptions=True)
        finally:
            self._loop = None
            for lane in self.lanes:
                lane.wake = None
            for logger in loggers:
                logger.removeFilter(redacting)
            if stop.is_set():
                self._say_undelivered()

    async def _lane(self, lane: _Lane, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        assert lane.wake is not None
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
        # that arrives as the awaited thing completes, and the lane would never stop
        while not stop.is_set():
            lane.wake.clear()
            now = self.clock()
            with self._lock:
                batch = lane.outbox.due(now)
            if batch is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.tick_s):
                        await lane.wake.wait()
                continue
            await self._deliver(lane, batch, client, now)

    async def _deliver(
        self, lane: _Lane, batch: Batch, client: httpx.AsyncClient, now: float
    ) -> None:
        limit = lane.channel.timeout_s * 3  # connect, send and answer each have timeout_s
        retry_after = 0.0
        try:
            async with asyncio.timeout(limit):
                await lane.sender.send(batch, now, client)
        except asyncio.CancelledError:  # the service stops: the message is due again first
            with self._lock:
                lane.outbox.put_back(batch)
            raise
        except DeliveryError as exc:
            error, retryable, retry_after = self.redact(str(exc)), exc.retryable, exc.retry_after
        except TimeoutError:
            error, retryable = f"no answer within {limit:.0f} s", True
        except Exception as exc:  # our bug, not the receiver's: it would fail the same again
            error, retryable = self.redact(f"{type(exc).__name__}: {exc}"), False
            log.error(
                "channel %s: building a message failed: %s",
                lane.channel.id, self.redact(traceback.format_exc()),
            )  # fmt: skip
        else:
            self._delivered(lane, batch)
            return
        with self._lock:
            outcome, delay = lane.outbox.failed(
                batch, self.clock(), retryable=retryable, retry_after=retry_after
            )
        lane.failing = error
        self.health.degrade(lane.name, f"delivery failing: {error}")
        if outcome == "retry":
            log.debug("channel %s: %s; retry %d in %.1f s", lane.channel.id, error,
                      batch.attempts + 1, delay)  # fmt: skip
        elif batch.kind != "resend":
            log.warning(
                "channel %s: gave up on a message of %d alarm changes after %d attempts: %s",
                lane.channel.id, len(batch.transitions), batch.attempts + 1, error,
            )  # fmt: skip

    def _delivered(self, lane: _Lane, batch: Batch) -> None:
        with self._lock:
            lane.outbox.delivered(batch, self.clock())
        lane.messages += 1
        lane.changes += len(batch.transitions)
        if lane.failing:
            lane.failing = ""
            self.health.recover(lane.name, "delivers again")
        if lane.dropping:
            log.warning("channel %s delivers again; %d alarm changes were dropped meanwhile",
                        lane.channel.id, lane.dropping)  # fmt: skip
            lane.dropping = 0

    def _say_undelivered(self) -> None:
        with self._lock:
            waiting = {lane.channel.id: len(lane.outbox) for lane in self.lanes}
        if any(waiting.values()):
            log.warning(
                "stopping with alarm changes not delivered: %s",
                ", ".join(f"{name} {n}" for name, n in waiting.items() if n),
            )

    # -- reading -------------------------------------------------------------------------

    def stats(self) -> dict[str, ChannelStats]:
        with self._lock:
            return {
                lane.channel.id: ChannelStats(
                    messages=lane.messages,
                    changes=lane.changes,
                    given_up=lane.outbox.given_up,
                    dropped=lane.outbox.dropped,
                    waiting=len(lane.outbox),
                    failing=lane.failing,
                )
                for lane in self.lanes
            }


__all__ = ["ChannelStats", "NotifyDispatcher"]

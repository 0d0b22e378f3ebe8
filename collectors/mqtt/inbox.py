"""From paho's network thread to the subscriber's loop: bounded, batched, one wake-up a batch.

paho's thread `put`s each message; the loop `take`s batches. A batch is cut by time and
size: once a message is waiting, the loop lingers up to `linger_s` (from that message's
arrival) for more, and takes at most `max_messages` messages and `max_bytes` payload
bytes (at least one). It stops lingering as soon as a batch is full, or the buffer is:
under load each store transaction carries thousands of messages, and a lone message waits
no longer than the linger.

The loop is woken by a thread-safe call only when it waits and what it waits for has
come (a first message, a full batch), not once per message: the per-message hand-off of
`call_soon_threadsafe` (a write to the loop's self-pipe each time) was most of the cost
between paho and the subscriber.

Backpressure: at most `capacity` messages are held between `put` and `release` (after
their ack). When full, `put` blocks paho's thread, so it stops reading the socket and the
broker keeps the rest in our persistent session; `close` unblocks it (the message is then
not taken: unacknowledged, the broker delivers it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    """Bounded, batching hand-off from one producer thread to one asyncio consumer (module doc)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        capacity: int,
        linger_s: float,
        max_messages: int,
        max_bytes: int,
        on_full: Callable[[], None] = lambda: None,
    ) -> None:
        self._loop = loop
        self.capacity = capacity
        self.linger_s = linger_s
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._on_full = on_full
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._items: deque[tuple[T, int, float]] = deque()
        self._bytes = 0  # payload bytes waiting
        self._held = 0  # put and not yet released
        self._blocked = False  # the producer waits for room
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._want = 1  # messages that wake the waiting consumer

    # --- the producer's thread --------------------------------------------------------
    def put(self, item: T, size: int) -> bool:
        """Hold `item` (of `size` payload bytes) for the consumer, waiting while the inbox is
        full; False if it is closed (the item was not taken)."""
        with self._lock:
            if self._held >= self.capacity and not self._closed:
                self._on_full()
                self._blocked = True
                while self._held >= self.capacity and not self._closed:
                    self._room.wait(0.1)
                self._blocked = False
            if self._closed:
                return False
            self._held += 1
            self._items.append((item, size, time.monotonic()))
            self._bytes += size
            waiter = self._waiter
            if waiter is None or not self._ready():
                return True
            self._waiter = None
        with contextlib.suppress(RuntimeError):  # a closed loop: we are shutting down
            self._loop.call_soon_threadsafe(_wake, waiter)
        return True

    def _ready(self) -> bool:
        """Whether the waiting consumer has what it waits for (with the lock held)."""
        return (
            len(self._items) >= self._want
            or self._bytes >= self.max_bytes
            or self._held >= self.capacity
        )

    # --- the consumer's loop ----------------------------------------------------------
    def release(self, n: int) -> None:
        """`n` messages taken earlier are done with (acknowledged, or forgotten)."""
        with self._lock:
            self._held -= n
            if self._blocked:
                self._room.notify()

    def close(self) -> None:
        """Take nothing more; a producer waiting for room gives up."""
        with self._lock:
            self._closed = True
            self._room.notify_all()

    @property
    def waiting(self) -> int:
        """Messages put and not yet taken."""
        return len(self._items)

    async def take(self, stop: asyncio.Event) -> list[T] | None:
        """The next batch (module doc), or None once `stop` is set."""
        while True:
            with self._lock:
                if self._items:
                    break
                waiter = self._arm(1)
            if await _wait(waiter, stop, None):
                return None
        if self.linger_s > 0:
            lingering: asyncio.Future[None] | None = None
            with self._lock:
                if not self._full():
                    deadline = self._items[0][2] + self.linger_s
                    lingering = self._arm(self.max_messages)
            if lingering is not None:
                remaining = deadline - time.monotonic()
                stopped = remaining > 0 and await _wait(lingering, stop, remaining)
                with self._lock:
                    self._waiter = None
                if stopped:
                    return None
        return self._cut()

    def _arm(self, want: int) -> asyncio.Future[None]:
        """A future the producer completes once `want` messages wait (with the lock held)."""
        waiter = self._loop.create_future()
        self._waiter = waiter
        self._want = want
        return waiter

    def _full(self) -> bool:
        return (
            len(self._items) >= self.max_messages
            or self._bytes >= self.max_bytes
            or self._held >= self.capacity
        )

    def _cut(self) -> list[T]:
        batch: list[T] = []
        size = 0
        with self._lock:
            items = self._items
            while items and len(batch) < self.max_messages:
                item, n, _at = items[0]
                if batch and size + n > self.max_bytes:
                    break
                items.popleft()
                batch.append(item)
                size += n
            self._bytes -= size
        return batch


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _wait(waiter: asyncio.Future[None], stop: asyncio.Event, timeout: float | None) -> bool:
    """Wait for `waiter` (or `timeout`); whether `stop` was set first."""
    if stop.is_set():
        return True
    stopper: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((waiter, stopper), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    return stop.is_set()

"""Simulated time: real, accelerated, or fixed (tests).

A clock is a callable returning the simulated time in UTC epoch ms, with a `rate` (simulated
seconds per wall-clock second) so that servers can pace themselves in wall time.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    rate: float

    def __call__(self) -> int: ...


class RealClock:
    """The wall clock."""

    rate = 1.0

    def __call__(self) -> int:
        return int(time.time() * 1000)


class AcceleratedClock:
    """`rate` simulated seconds per wall second from `start_ms` (default: now).

    `AcceleratedClock(3600)`: an hour a second, a day in 24 s, a year in under 2.5 hours."""

    def __init__(self, rate: float, start_ms: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self._wall0 = time.monotonic()
        self._sim0 = start_ms if start_ms is not None else int(time.time() * 1000)

    def __call__(self) -> int:
        return self._sim0 + int((time.monotonic() - self._wall0) * 1000 * self.rate)


class FixedClock:
    """Time that moves only when told (tests)."""

    rate = 1.0

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms

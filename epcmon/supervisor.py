"""The supervisor of `epcmon run`: every long-running part runs under it, none dies unseen.

A part is `async def run(stop: asyncio.Event) -> None` that works until `stop` is set. When
one raises, the supervisor logs it once with its traceback, marks it down in `Health` (so
`/healthz` answers 503 naming it and its error), waits a capped exponential backoff, and
starts it again; a part that then runs for `settle_s` before failing again starts its backoff
over. A part that returns while the service is running is restarted the same way
(a collector that quietly stops collecting is a failure too).

What no restart can fix ends the service: a `ConfigError` (the site file is wrong) or a
`StoreUnavailable` raised while starting (the store cannot be opened) is re-raised by `run()`,
and `epcmon run` exits with its one-line message.

    supervisor = Supervisor(health)
    supervisor.add("mqtt", subscriber.run)
    supervisor.add("api", api.run)
    await supervisor.run(stop)      # until stop is set, or a fatal error
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.errors import ConfigError
from core.health import Health

log = logging.getLogger("epcmon.supervisor")

PartRun = Callable[[asyncio.Event], Awaitable[None]]
FATAL: tuple[type[BaseException], ...] = (ConfigError,)
"""Errors that restarting cannot fix: they stop the service."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff between restarts of one part."""

    first_s: float = 1.0
    max_s: float = 60.0
    settle_s: float = 30.0
    """A part that ran this long since its restart is healthy again: backoff starts over."""

    def delay(self, failures: int) -> float:
        return min(self.max_s, self.first_s * 2.0 ** max(0, failures - 1))


class Supervisor:
    """Runs named parts, restarts the ones that fail (module doc)."""

    def __init__(self, health: Health, backoff: Backoff = Backoff()) -> None:
        self.health = health
        self.backoff = backoff
        self._parts: dict[str, PartRun] = {}
        self._fatal: BaseException | None = None

    def add(self, name: str, run: PartRun) -> None:
        if name in self._parts:
            raise ValueError(f"part {name!r} added twice")
        self._parts[name] = run
        self.health.part_state(name, "starting")

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until `stop` is set; re-raise a fatal error after stopping the rest."""
        halt = asyncio.Event()  # set by `stop` or by a fatal error

        async def relay() -> None:
            await stop.wait()
            halt.set()

        relay_task = asyncio.create_task(relay())
        tasks = [
            asyncio.create_task(self._keep(name, run, halt), name=f"part:{name}")
            for name, run in self._parts.items()
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            halt.set()
            relay_task.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(relay_task, *tasks, return_exceptions=True)
        if self._fatal is not None:
            raise self._fatal

    async def _keep(self, name: str, run: PartRun, halt: asyncio.Event) -> None:
        failures = 0
        while not halt.is_set():
            started = time.monotonic()
            self.health.part_state(name, "running")
            if failures:
                log.warning("part %s started again (restart %d)", name, failures)
            try:
                await run(halt)
            except asyncio.CancelledError:
                raise
            except FATAL as exc:
                log.error("part %s: %s: stopping the service", name, exc)
                self.health.part_state(name, "failed", str(exc))
                self._fatal = exc
                halt.set()
                return
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.exception("part %s failed: %s", name, error)
            else:
                if halt.is_set():
                    break
                error = "stopped by itself while the service runs"
                log.error("part %s %s", name, error)
            if time.monotonic() - started >= self.backoff.settle_s:
                failures = 0
            failures += 1
            delay = self.backoff.delay(failures)
            self.health.part_state(name, "restarting", error)
            log.warning("part %s restarts in %.0f s (restart %d)", name, delay, failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), timeout=delay)
        self.health.part_state(name, "stopped")

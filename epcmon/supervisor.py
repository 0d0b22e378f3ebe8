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
from typing import Protocol

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
    """Runs named parts, restarts the ones that fail (module doc).

    Parts can be added, removed and replaced while it runs (a reload of the site file):
    `add` starts a new part at once, `remove` stops one and waits for it to end."""

    def __init__(self, health: Health, backoff: Backoff = Backoff()) -> None:
        self.health = health
        self.backoff = backoff
        self._parts: dict[str, PartRun] = {}
        self._fatal: BaseException | None = None
        self._halt: asyncio.Event | None = None  # set while running
        self._stops: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def add(self, name: str, run: PartRun) -> None:
        if name in self._parts:
            raise ValueError(f"part {name!r} added twice")
        self._parts[name] = run
        self.health.part_state(name, "starting")
        if self._halt is not None and not self._halt.is_set():
            self._start(name, run)

    async def remove(self, name: str) -> None:
        """Stop part `name` (it ends as it does at a stop) and forget it."""
        run = self._parts.pop(name, None)
        if run is None:
            raise KeyError(name)
        stop = self._stops.pop(name, None)
        task = self._tasks.pop(name, None)
        if stop is not None:
            stop.set()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        self.health.forget_part(name)

    async def replace(self, name: str, run: PartRun) -> None:
        """Stop part `name` and start `run` in its place (a gateway whose settings changed)."""
        if name in self._parts:
            await self.remove(name)
        self.add(name, run)

    @property
    def names(self) -> list[str]:
        return list(self._parts)

    def _start(self, name: str, run: PartRun) -> None:
        stop = asyncio.Event()
        self._stops[name] = stop
        self._tasks[name] = asyncio.create_task(self._keep(name, run, stop), name=f"part:{name}")

    def _halt_all(self) -> None:
        if self._halt is not None:
            self._halt.set()
        for stop in self._stops.values():
            stop.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until `stop` is set; re-raise a fatal error after stopping the rest."""
        self._halt = asyncio.Event()  # set by `stop` or by a fatal error
        self._fatal = None

        async def relay() -> None:
            await stop.wait()
            self._halt_all()

        relay_task = asyncio.create_task(relay())
        for name, run in self._parts.items():
            self._start(name, run)
        try:
            await self._halt.wait()
            self._halt_all()
            while self._tasks:  # parts added meanwhile are waited for too
                tasks = list(self._tasks.values())
                await asyncio.gather(*tasks, return_exceptions=True)
                for name, task in list(self._tasks.items()):
                    if task in tasks:
                        del self._tasks[name]
        finally:
            self._halt_all()
            relay_task.cancel()
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(relay_task, *tasks, return_exceptions=True)
            self._tasks.clear()
            self._stops.clear()
            self._halt = None
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
                self._halt_all()
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


class Parts(Protocol):
    """What a service adds its parts to: the `Supervisor`, or one site's `Scoped` view of a
    portfolio's."""

    health: Health

    def add(self, name: str, run: PartRun) -> None: ...

    async def remove(self, name: str) -> None: ...

    async def replace(self, name: str, run: PartRun) -> None: ...

    @property
    def names(self) -> list[str]: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class Scoped:
    """One site's parts on a portfolio's supervisor: the same calls as `Supervisor`'s, each
    part named `<prefix><name>` (`county-a/recompute`), so `/healthz` tells the sites apart
    and a site's reload replaces only its own parts."""

    def __init__(self, supervisor: Supervisor, prefix: str) -> None:
        self.supervisor = supervisor
        self.prefix = prefix
        self.health = supervisor.health

    def add(self, name: str, run: PartRun) -> None:
        self.supervisor.add(self.prefix + name, run)

    async def remove(self, name: str) -> None:
        await self.supervisor.remove(self.prefix + name)

    async def replace(self, name: str, run: PartRun) -> None:
        await self.supervisor.replace(self.prefix + name, run)

    @property
    def names(self) -> list[str]:
        cut = len(self.prefix)
        return [n[cut:] for n in self.supervisor.names if n.startswith(self.prefix)]

    async def run(self, stop: asyncio.Event) -> None:
        """The portfolio runs the shared supervisor; a site's view only waits with it."""
        await stop.wait()

"""When a gateway misbehaves, and when it is fine again: one log line each, not one a frame.

Pure bookkeeping for the poller. A gateway's faults (connections it drops, garbage it
sends) start an *episode*; the episode ends after `recover_after` poll cycles in a row
without a fault. A gateway that relapses soon after an episode ended (within four times the
cycles it took to recover) must then stay clean twice as long before it is called fine
again, up to `max_recover_after` cycles: a gateway that drops one connection in fifty
flaps between the two states every few cycles, and its log would be a line a minute.

    episodes = GatewayEpisodes()
    episodes.fault("drop")      -> True: a new episode, say so
    episodes.fault("garbage")   -> False: same episode, counted
    episodes.cycle_done()       -> None, or the `Episode` that just ended
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

RECOVER_AFTER_CYCLES = 3
MAX_RECOVER_AFTER_CYCLES = 96


@dataclass(frozen=True, slots=True)
class Episode:
    """What a gateway did between the first fault and the clean cycles that ended it."""

    faults: dict[str, int]
    cycles: int
    """Poll cycles from the first fault to the end, the clean ones included."""

    def summary(self) -> str:
        what = {"drop": "dropped connections", "garbage": "garbage answers"}
        counts = ", ".join(f"{n} {what.get(k, k)}" for k, n in sorted(self.faults.items()))
        return f"{counts} in {self.cycles} cycles"


@dataclass
class GatewayEpisodes:
    recover_after: int = RECOVER_AFTER_CYCLES
    max_recover_after: int = MAX_RECOVER_AFTER_CYCLES
    needed: int = RECOVER_AFTER_CYCLES
    """Clean cycles the current (or next) episode needs to end."""
    active: bool = False
    faults: Counter[str] = field(default_factory=Counter)
    """Faults of the current episode by kind."""
    cycles: int = 0
    clean: int = 0
    since_end: int | None = None
    """Cycles since the last episode ended (None: none ended yet)."""
    _faulty_cycle: bool = False

    def fault(self, kind: str) -> bool:
        """Count one fault; True when it starts an episode."""
        self._faulty_cycle = True
        self.faults[kind] += 1
        if self.active:
            return False
        relapse = self.since_end is not None and self.since_end <= 4 * self.needed
        self.needed = (
            min(2 * self.needed, self.max_recover_after) if relapse else self.recover_after
        )
        self.active = True
        self.cycles = self.clean = 0
        return True

    def cycle_done(self) -> Episode | None:
        """End of a poll cycle in which the gateway was asked something; returns the episode
        that this cycle ended, if any."""
        faulty, self._faulty_cycle = self._faulty_cycle, False
        if not self.active:
            if self.since_end is not None:
                self.since_end += 1
            return None
        self.cycles += 1
        self.clean = 0 if faulty else self.clean + 1
        if self.clean < self.needed:
            return None
        episode = Episode(dict(self.faults), self.cycles)
        self.active = False
        self.faults = Counter()
        self.since_end = 0
        return episode

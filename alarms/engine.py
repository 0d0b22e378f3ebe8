"""The alarm part of `epcmon run`: every `[alarms] every_s`, read what arrived, run the rules,
step the life cycle, store the transitions and hand them to the dispatcher.

    engine = AlarmEngine(site, store, AlarmStore(path), health=health, availability=avail,
                         statements=statements, dispatcher=LogDispatcher())
    await engine.run(stop)                  # a supervised part: restartable after it raised

    engine.evaluate(now_ms) -> [Condition]  # the rules alone, at any instant (a replay)
    engine.step(now_ms) -> [Transition]     # rules, life cycle, store, dispatch

A rule that raises is logged once per distinct error and named in `Health` (`alarms <rule>`)
until it evaluates again; the other rules go on. Evaluations read the store incrementally
(`alarms.window`): only what arrived since the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from alarms.context import PRIMARY, Context, MeterState, OpsSample
from alarms.lifecycle import Lifecycle, Timing
from alarms.model import Condition, Dispatcher, Transition
from alarms.rules import REGISTRY, enabled
from alarms.store import AlarmStore
from alarms.window import Key, Window
from core.config import RULE_NAMES, SiteConfig
from core.health import Health
from processing.baseline import Baseline
from processing.statements import StatementStore
from storage.base import TimeSeriesStore

log = logging.getLogger("epcmon.alarms")

DAY_MS = 86_400_000
PLAN_EVERY_MS = 600_000
"""How often the engine asks the store which series exist (new quantities); while a meter
of the site has none yet, at every evaluation (its first readings are read at once)."""
BASELINES_EVERY_MS = 3_600_000
"""How often it reloads the contracts' stored baselines (refitted by the recompute)."""
OPS_KEEP_MS = 2 * DAY_MS
INCOMER_QUANTITIES = ("power", "apparent_power", "power_factor")


class CollectorState(Protocol):
    """What the engine reads of the collectors' availability tracker (same process)."""

    @property
    def counters(self) -> Mapping[str, int]: ...

    def snapshot(self) -> Mapping[str, object]: ...


class LogDispatcher:
    """A dispatcher that logs one line per transition (beside the notifiers, `Fanout`)."""

    def dispatch(self, transitions: list[Transition]) -> None:
        for t in transitions:
            a = t.alarm
            level = logging.WARNING if t.kind == "raised" else logging.INFO
            log.log(
                level,
                "alarm %d %s: %s %s [%s] %s",
                a.id,
                t.kind,
                a.rule,
                a.subject,
                a.severity.value,
                a.message,
            )


def timing_of(site: SiteConfig) -> Callable[[str], Timing]:
    """Each rule's raise and clear delays from the site file."""

    def timing(rule: str) -> Timing:
        s = getattr(site.alarms.rules, rule)
        return Timing(s.raise_after_s * 1000, s.clear_after_s * 1000)

    return timing


class AlarmEngine:
    """Rules, life cycle, store and dispatch (module doc)."""

    def __init__(
        self,
        site: SiteConfig,
        store: TimeSeriesStore,
        alarms: AlarmStore,
        *,
        dispatcher: Dispatcher | None = None,
        health: Health | None = None,
        availability: CollectorState | None = None,
        statements: StatementStore | None = None,
        spool_depth: Callable[[], int] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.site = site
        self.store = store
        self.alarms = alarms
        self.dispatcher: Dispatcher = dispatcher or LogDispatcher()
        self.health = health or Health()
        self.availability = availability
        self.statements = statements
        self.spool_depth = spool_depth
        self.clock = clock or _now_ms
        """UTC epoch ms now (`run` evaluates at its instants)."""
        self.last_evaluation_s = 0.0
        """Seconds the last evaluation took (reads and rules)."""
        self._failing: dict[str, str] = {}
        self._acks_after = alarms.last_event_id()
        """Acknowledgements recorded by other processes after this event are dispatched at
        the next step (kept across restarts of the part: none is lost or sent twice)."""
        self._reset()

    def _reset(self) -> None:
        """Forget everything held in memory (a restart of the part starts clean)."""
        s = self.site.alarms
        retain_days = max(s.reference_days + 3, 33)  # a month's maximum demand, too
        self.window = Window([], retain_ms=retain_days * DAY_MS, late_ms=s.late_s * 1000)
        self.primary: dict[str, str] = {}
        self.lifecycle = Lifecycle(timing_of(self.site), next_id=self.alarms.next_id())
        self.lifecycle.resume(self.alarms.open_alarms())
        self.started_ms: int | None = None
        self._planned_ms: int | None = None
        self._baselines: dict[tuple[str, str], Baseline] = {}
        self._baselines_ms: int | None = None
        self._ops: deque[OpsSample] = deque()

    # -- what to read ----------------------------------------------------------------------------

    def _plan(self, now_ms: int) -> None:
        complete = len(self.primary) == len(self.site.meters)  # else: ask at every evaluation
        if complete and self._planned_ms is not None and now_ms - self._planned_ms < PLAN_EVERY_MS:
            return
        self._planned_ms = now_ms
        held: dict[str, set[str]] = {}
        for meter, quantity in self.store.series_keys():
            held.setdefault(meter, set()).add(quantity)
        keys: list[Key] = []
        for m in self.site.meters:
            have = held.get(m.id, set())
            first = next((q for q in PRIMARY.get(m.kind, ()) if q in have), None)
            if first is not None:
                self.primary[m.id] = first
                keys.append((m.id, first))
        for contract in self.site.contracts:
            for utility in contract.utility_names():
                terms = contract.terms(utility)
                keys += [
                    (m, terms.quantity) for m in terms.meters if terms.quantity in held.get(m, ())
                ]
        for meter in self.site.alarms.rules.transformer_load.rated_kva:
            keys += [(meter, q) for q in INCOMER_QUANTITIES if q in held.get(meter, ())]
        added = self.window.add(keys)
        if added and self.window.cursor_ms is not None:
            log.info("alarms: now reading %d more series", len(added))

    def _load_baselines(self, now_ms: int) -> None:
        if self.statements is None:
            return
        if self._baselines_ms is not None and now_ms - self._baselines_ms < BASELINES_EVERY_MS:
            return
        self._baselines_ms = now_ms
        found: dict[tuple[str, str], Baseline] = {}
        for contract in self.site.contracts:
            for utility in contract.utility_names():
                baseline = self.statements.latest_baseline(contract.id, utility)
                if baseline is not None:
                    found[(contract.id, utility)] = baseline
        self._baselines = found

    def _sample_ops(self, now_ms: int) -> None:
        dead = None
        if self.availability is not None:
            dead = int(self.availability.counters.get("mqtt_dead_letters", 0))
        depth = self.spool_depth() if self.spool_depth is not None else None
        self._ops.append(OpsSample(now_ms, dead, depth))
        while self._ops and self._ops[0].at_ms < now_ms - OPS_KEEP_MS:
            self._ops.popleft()

    def _meter_states(self) -> dict[str, MeterState] | None:
        if self.availability is None:
            return None
        out = {}
        for meter, state in self.availability.snapshot().items():
            out[meter] = MeterState(
                bool(getattr(state, "up", False)),
                int(getattr(state, "last_seen_ms", 0)),
                str(getattr(state, "last_error", "")),
            )
        return out

    # -- evaluating ------------------------------------------------------------------------------

    def prefetch(self, start_ms: int, end_ms: int) -> None:
        """Load the store's readings of [start - the reference window, end) at once, for a
        replay of evaluations at instants in [start, end) (a benchmark over history)."""
        self._plan(start_ms)
        self.window.prefetch(self.store, start_ms, end_ms)

    def context(self, now_ms: int) -> Context:
        """Read what arrived and gather everything the rules see at `now_ms`."""
        if self.started_ms is None:
            self.started_ms = now_ms
        self._plan(now_ms)
        self.window.update(self.store, now_ms)
        self._load_baselines(now_ms)
        self._sample_ops(now_ms)
        return Context(
            site=self.site,
            now_ms=now_ms,
            window=self.window,
            primary=dict(self.primary),
            started_ms=self.started_ms,
            raised=self.lifecycle.raised,
            health=self.health.snapshot(),
            meter_states=self._meter_states(),
            ops=tuple(self._ops),
            baselines=self._baselines,
        )

    def evaluate(self, now_ms: int, rules: Collection[str] | None = None) -> list[Condition]:
        """Every enabled rule's conditions at `now_ms` (a rule that fails is logged once and
        named in `Health`; the others go on). `rules`: only these (a replay that evaluates
        some rules less often; the life cycle keeps the state of subjects not judged)."""
        started = time.perf_counter()
        ctx = self.context(now_ms)
        out: list[Condition] = []
        for rule in enabled(ctx):
            if rules is not None and rule.name not in rules:
                continue
            try:
                found = rule.evaluate(ctx)
            except Exception as exc:
                self._failed(rule.name, exc)
                continue
            self._worked(rule.name)
            out += found
        self.last_evaluation_s = time.perf_counter() - started
        return out

    def _failed(self, rule: str, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if self._failing.get(rule) != reason:
            self._failing[rule] = reason
            log.exception("alarm rule %s failed", rule)
        self.health.degrade(f"alarms {rule}", reason)

    def _worked(self, rule: str) -> None:
        if self._failing.pop(rule, None) is not None:
            log.info("alarm rule %s evaluates again", rule)
            self.health.recover(f"alarms {rule}")

    def step(self, now_ms: int, rules: Collection[str] | None = None) -> list[Transition]:
        """Evaluate (`rules`: only these), move the life cycle, store and dispatch what
        changed."""
        conditions = self.evaluate(now_ms, rules)
        transitions = self.lifecycle.observe(conditions, now_ms)
        stored = self.alarms.record(transitions) if transitions else []
        self.alarms.refresh(self.lifecycle.open_alarms())
        if stored:
            self._dispatch(stored)
        # acknowledgements another process's API recorded (`--role web`): delivered here,
        # where the notify channels are, once
        acks, self._acks_after = self.alarms.acknowledgements_after(self._acks_after)
        if acks:
            self._dispatch(acks)
        return stored

    def _dispatch(self, transitions: list[Transition]) -> None:
        try:
            self.dispatcher.dispatch(transitions)
        except Exception:  # the protocol says it never raises; if one does, say so and go on
            log.exception("alarm dispatcher failed for %d transitions", len(transitions))

    def retire_disabled(self, now_ms: int) -> list[Transition]:
        """Clear the alarms of rules switched off in the site file."""
        off = [name for name in RULE_NAMES if not getattr(self.site.alarms.rules, name).enabled]
        done = self.lifecycle.retire(off, now_ms, "规则已停用 (rule switched off)")
        stored = self.alarms.record(done) if done else []
        if stored:
            self._dispatch(stored)
        return stored

    async def run(self, stop: asyncio.Event) -> None:
        """Step every `[alarms] every_s` until `stop` is set (a supervised part; calling it
        again after it raised starts from the stored alarms)."""
        self._reset()
        every = self.site.alarms.every_s
        await asyncio.to_thread(self.retire_disabled, self.clock())
        while not stop.is_set():
            done = await asyncio.to_thread(self.step, self.clock())
            if done:
                log.debug("alarms: %d transitions in %.3f s", len(done), self.last_evaluation_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["REGISTRY", "AlarmEngine", "LogDispatcher", "timing_of"]

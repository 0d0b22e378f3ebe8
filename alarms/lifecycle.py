"""The alarm life cycle: conditions in, transitions out (pure: no clock, no I/O).

An alarm is one episode of one (rule, subject):

- it starts when the rule first sees the condition active, and is **raised** once the
  condition has held for the rule's `raise_after_s` (a blip raises nothing);
- while raised, it is **updated** when its severity changes, or when its value moves
  materially (by `update_ratio` of the value last told, at most once per `update_every_s`);
- it ends when the condition has been gone for the rule's `clear_after_s`: a raised alarm is
  then **cleared**, a pending one forgotten. A condition back within that time continues the
  same episode, so a flapping meter makes one alarm, not one per flap. (A clear *threshold*
  below the raise threshold is the rule's part: rules see which alarms are raised.)
- a person **acknowledges** it (`acknowledged()`), which changes nothing else.

A rule reports a condition for every subject it judged, active or not; a subject it did not
judge this time (no data yet, say) keeps its state.

    cycle = Lifecycle(timings, next_id=store.next_id())
    cycle.resume(store.open_alarms())           # after a restart: the alarms still raised
    transitions = cycle.observe(conditions, now_ms)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

from alarms.model import Alarm, Condition, Severity, Transition


@dataclass(frozen=True, slots=True)
class Timing:
    """How long a rule's condition must hold before raising, and be gone before clearing."""

    raise_after_ms: int = 0
    clear_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class UpdatePolicy:
    """When a raised alarm's value has moved enough to tell someone again."""

    ratio: float = 0.25
    """Relative change of the value since it was last told."""
    every_ms: int = 3_600_000
    """At most one value update per this long (a severity change is told at once)."""

    def moved(self, told: float | None, now: float | None) -> bool:
        if told is None or now is None:
            return False
        return abs(now - told) >= self.ratio * max(abs(told), 1e-9)


@dataclass(frozen=True, slots=True)
class Track:
    """What the life cycle remembers of one episode of one (rule, subject)."""

    condition: Condition
    """The newest condition seen (active or not)."""
    active_since_ms: int
    """When the episode started (the condition first seen active)."""
    inactive_since_ms: int | None = None
    """When the condition was last seen going away; None while it holds."""
    alarm: Alarm | None = None
    """The raised alarm; None while pending."""
    told_value: float | None = None
    told_ms: int = 0


Key = tuple[str, str]


def _alarm(alarm_id: int, c: Condition, raised_ms: int, now_ms: int) -> Alarm:
    return Alarm(
        id=alarm_id,
        rule=c.rule,
        subject=c.subject,
        state="active",
        severity=c.severity,
        category=c.category,
        message=c.message,
        raised_ms=raised_ms,
        updated_ms=now_ms,
        value=c.value,
        threshold=c.threshold,
        unit=c.unit,
        meters=c.meters,
    )


class Lifecycle:
    """Raises, updates and clears alarms from conditions (module doc)."""

    def __init__(
        self,
        timing: Callable[[str], Timing],
        *,
        next_id: int = 1,
        update: UpdatePolicy = UpdatePolicy(),
    ) -> None:
        self._timing = timing
        self._next_id = next_id
        self._update = update
        self._tracks: dict[Key, Track] = {}

    # -- state -----------------------------------------------------------------------------

    def resume(self, alarms: Iterable[Alarm]) -> None:
        """Take over alarms raised before a restart (still active in the store)."""
        for a in alarms:
            if a.state != "active":
                continue
            c = Condition(
                a.rule, a.subject, True, a.severity, a.category, a.message, a.value,
                a.threshold, a.unit, a.meters, a.updated_ms,
            )  # fmt: skip
            self._tracks[(a.rule, a.subject)] = Track(
                c, a.raised_ms, alarm=a, told_value=a.value, told_ms=a.updated_ms
            )
            self._next_id = max(self._next_id, a.id + 1)

    @property
    def raised(self) -> frozenset[Key]:
        """(rule, subject) of every raised alarm: rules with a clear threshold read it."""
        return frozenset(k for k, t in self._tracks.items() if t.alarm is not None)

    def open_alarms(self) -> list[Alarm]:
        """The raised alarms with their newest value and message."""
        return [t.alarm for t in self._tracks.values() if t.alarm is not None]

    # -- transitions -----------------------------------------------------------------------

    def observe(self, conditions: Iterable[Condition], now_ms: int) -> list[Transition]:
        out: list[Transition] = []
        for c in conditions:
            key = (c.rule, c.subject)
            track = self._tracks.get(key)
            if track is None:
                if c.active:
                    track = Track(c, now_ms)
                else:
                    continue
            track = self._seen(track, c, now_ms)
            track, transition = self._step(track, now_ms)
            if transition is not None:
                out.append(transition)
            if track is None:
                self._tracks.pop(key, None)
            else:
                self._tracks[key] = track
        return out

    def retire(self, rules: Collection[str], now_ms: int, reason: str) -> list[Transition]:
        """Clear every alarm of `rules` (a rule switched off): nothing judges them any more."""
        out = []
        for key, track in list(self._tracks.items()):
            if key[0] not in rules:
                continue
            del self._tracks[key]
            if track.alarm is not None:
                done = replace(
                    track.alarm,
                    state="cleared",
                    cleared_ms=now_ms,
                    updated_ms=now_ms,
                    message=f"{track.alarm.message} ({reason})",
                )
                out.append(Transition("cleared", done, now_ms))
        return out

    def _seen(self, track: Track, c: Condition, now_ms: int) -> Track:
        if c.active:
            track = replace(track, condition=c, inactive_since_ms=None)
            if track.alarm is not None:  # keep what the page shows current
                track = replace(
                    track,
                    alarm=replace(
                        track.alarm, message=c.message, value=c.value, threshold=c.threshold
                    ),
                )
            return track
        since = track.inactive_since_ms if track.inactive_since_ms is not None else now_ms
        return replace(track, condition=c, inactive_since_ms=since)

    def _step(self, track: Track, now_ms: int) -> tuple[Track | None, Transition | None]:
        c = track.condition
        timing = self._timing(c.rule)
        if track.inactive_since_ms is not None:
            if now_ms - track.inactive_since_ms < timing.clear_after_ms:
                return track, None  # gone, not for long enough: the episode goes on
            if track.alarm is None:
                return None, None  # pending, never raised: forgotten
            # the message stays what was wrong (the list of cleared alarms says what they were)
            done = replace(track.alarm, state="cleared", cleared_ms=now_ms, updated_ms=now_ms)
            return None, Transition("cleared", done, now_ms)
        if track.alarm is None:
            if now_ms - track.active_since_ms < timing.raise_after_ms:
                return track, None
            alarm = _alarm(self._next_id, c, track.active_since_ms, now_ms)
            self._next_id += 1
            raised = replace(track, alarm=alarm, told_value=c.value, told_ms=now_ms)
            return raised, Transition("raised", alarm, now_ms)
        alarm = track.alarm
        severity_changed = c.severity != alarm.severity
        moved = self._update.moved(track.told_value, c.value) and (
            now_ms - track.told_ms >= self._update.every_ms
        )
        if not severity_changed and not moved:
            return track, None
        alarm = replace(alarm, severity=Severity(c.severity), updated_ms=now_ms)
        updated = replace(track, alarm=alarm, told_value=c.value, told_ms=now_ms)
        return updated, Transition("updated", alarm, now_ms)


def acknowledged(alarm: Alarm, by: str, now_ms: int) -> Transition:
    """A person saw the alarm: who and when (its state is unchanged)."""
    done = replace(alarm, acknowledged_by=by, acknowledged_ms=now_ms)
    return Transition("acknowledged", done, now_ms)

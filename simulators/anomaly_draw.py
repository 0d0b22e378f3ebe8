"""Anomalies placed at random over a span, by seed, for a detection benchmark.

    anomalies = draw_anomalies(site, start_ms, end_ms, per_kind=8, seed=0)

Each kind goes where it happens in a real building:

| kind | meters | when | lasts |
|---|---|---|---|
| `leak` | water meters | any hour | 1 to 4 days, night and day |
| `plant_on` | a chiller (April to October) or a heat pump (November to March) | a weekend or holiday, from 19:00 on the last working day | until 07:00 on the next working day |
| `base_load_step` | departments' office meters | from a local midnight | 10 to 30 days |
| `demand_peak` | incomers | a working day, starting between 09:00 and 16:00 | 1 hour |
| `silent` | any meter | any minute | 2 hours to 2 days (log-uniform) |
| `counter_reset`, `jump` | any meter with counters | any minute | an instant |

Two anomalies never overlap at one meter (with `GAP` either side), nor, where one shows in
the meters above its own (a physical anomaly), in the same alarm category there: so every
alarm raised can be told which anomaly it caught. Same site, span, counts and seed: the same
anomalies.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np

from core.config import ANOMALY_KINDS, Anomaly, EndUse, MeterKind, SiteConfig
from simulators.anomalies import CATEGORY, ancestors

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
GAP = 3 * DAY_MS
"""Kept free at a meter before and after each anomaly (alarms clear, baselines settle)."""
MARGIN = 2 * DAY_MS
"""Kept free at the span's start and end."""
TRIES = 500


class _Occupancy:
    """Which (meter, category) windows are taken; `*` stands for every category."""

    def __init__(self) -> None:
        self._taken: dict[tuple[str, str], list[tuple[int, int]]] = {}

    @staticmethod
    def _keys(site: SiteConfig, a: Anomaly) -> list[tuple[str, str]]:
        keys = [(a.meter, "*")]
        if a.physics:
            keys += [(m, CATEGORY[a.kind]) for m in ancestors(site, a.meter)]
        return keys

    def free(self, site: SiteConfig, a: Anomaly) -> bool:
        lo, hi = _window(a)
        for meter, cat in self._keys(site, a):
            clash = [(meter, "*")] if cat != "*" else [k for k in self._taken if k[0] == meter]
            if cat != "*":
                clash.append((meter, cat))
            for key in clash:
                if any(lo < b and a_ < hi for a_, b in self._taken.get(key, ())):
                    return False
        return True

    def take(self, site: SiteConfig, a: Anomaly) -> None:
        for key in self._keys(site, a):
            self._taken.setdefault(key, []).append(_window(a))


def _window(a: Anomaly) -> tuple[int, int]:
    end = a.end_ms if a.end_ms is not None else a.start_ms
    return a.start_ms - GAP, end + GAP


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def draw_anomalies(
    site: SiteConfig,
    start_ms: int,
    end_ms: int,
    *,
    per_kind: int = 8,
    seed: int = 0,
    kinds: Sequence[str] = ANOMALY_KINDS,
) -> tuple[Anomaly, ...]:
    """`per_kind` anomalies of each of `kinds` inside [start, end), by start time; fewer of a
    kind only if the span cannot hold them apart (a short span)."""
    rng = np.random.default_rng([seed, zlib.crc32(b"anomalies")])
    taken = _Occupancy()
    out: list[Anomaly] = []
    lo, hi = start_ms + MARGIN, end_ms - MARGIN
    if hi <= lo:
        return ()
    for kind in kinds:
        for _ in range(per_kind):
            for _ in range(TRIES):
                a = _draw(site, kind, rng, lo, hi)
                if a is None:
                    continue
                end = a.end_ms if a.end_ms is not None else a.start_ms
                if a.start_ms >= lo and end <= hi and taken.free(site, a):
                    taken.take(site, a)
                    out.append(a)
                    break
    return tuple(sorted(out, key=lambda a: (a.start_ms, a.meter, a.kind)))


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(0, len(items)))]


def _draw(
    site: SiteConfig, kind: str, rng: np.random.Generator, lo: int, hi: int
) -> Anomaly | None:
    tz = site.site.tz
    meters = site.meters
    minute = 60_000
    t = lo + int(rng.integers(0, (hi - lo) // minute)) * minute
    if kind == "leak":
        meter = _pick(rng, [m.id for m in meters if m.kind is MeterKind.WATER])
        hours = int(rng.integers(24, 97))
        return _make(kind, meter, t, t + hours * HOUR_MS)
    if kind == "silent":
        meter = _pick(rng, [m.id for m in meters])
        ms = int(np.exp(rng.uniform(np.log(2 * HOUR_MS), np.log(2 * DAY_MS))))
        return _make(kind, meter, t, t + ms // minute * minute)
    if kind in ("counter_reset", "jump"):
        meter = _pick(rng, [m.id for m in meters if m.kind is not MeterKind.WEATHER])
        return _make(kind, meter, t, None)
    if kind == "demand_peak":
        meter = _pick(rng, [m.id for m in meters if m.end_use is EndUse.INCOMER])
        day = _at(t).astimezone(tz).date()
        while not site.work_calendar.is_working_day(day):
            day += timedelta(days=1)
        local = datetime.combine(day, datetime.min.time(), tzinfo=tz) + timedelta(
            minutes=int(rng.integers(9 * 60, 16 * 60))
        )
        s = int(local.timestamp() * 1000)
        return _make(kind, meter, s, s + HOUR_MS)
    if kind == "base_load_step":
        departments = {t_.id for t_ in site.tenants if t_.kind == "department"}
        meter = _pick(
            rng,
            [m.id for m in meters if m.end_use is EndUse.MIXED and m.tenant in departments],
        )
        day = _at(t).astimezone(tz).date()
        s = int(datetime.combine(day, datetime.min.time(), tzinfo=tz).timestamp() * 1000)
        return _make(kind, meter, s, s + int(rng.integers(10, 31)) * DAY_MS)
    if kind == "plant_on":
        return _plant_on(site, _at(t).astimezone(tz).date(), rng)
    raise ValueError(f"unknown anomaly kind {kind!r}")


def _plant_on(site: SiteConfig, day: date, rng: np.random.Generator) -> Anomaly | None:
    """The first weekend or holiday from `day`: the unit left on from 19:00 on the last
    working day before it until 07:00 on the first working day after it."""
    cal = site.work_calendar
    tz = site.site.tz
    while cal.is_working_day(day):
        day += timedelta(days=1)
    first_off = day
    while not cal.is_working_day(day):
        day += timedelta(days=1)
    back = day
    last_working = first_off - timedelta(days=1)
    cooling = 4 <= first_off.month <= 10
    use = EndUse.CHILLER if cooling else EndUse.HEATING
    units = [m.id for m in site.meters if m.end_use is use and m.kind is MeterKind.ELECTRICITY]
    if not units:
        return None
    start = datetime.combine(last_working, datetime.min.time(), tzinfo=tz) + timedelta(hours=19)
    end = datetime.combine(back, datetime.min.time(), tzinfo=tz) + timedelta(hours=7)
    return _make(
        "plant_on", _pick(rng, units), int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    )


def _make(kind: str, meter: str, start_ms: int, end_ms: int | None) -> Anomaly:
    return Anomaly.model_validate(
        {
            "kind": kind,
            "meter": meter,
            "start": _at(start_ms),
            "end": _at(end_ms) if end_ms is not None else None,
        }
    )

"""Consumption rules: is something using more than it should? Pure functions of a `Context`.

- `out_of_hours`: use in unoccupied hours (nights, weekends, holidays) above the expected;
- `daily_use`: a day's use above the baseline's prediction by more than its uncertainty
  (a contract's boundary), or above the meter's usual day (other meters);
- `base_load`: a meter's night-time use stepping up;
- `night_water_flow`: water used in every hour of the night (a leak);
- `plant_no_demand`: chillers or heat pumps running outside occupied hours or on a day off.

A meter's "usual" is the same hour (or day) of the same kind of day, working or not, over
`[alarms] reference_days` before the hours judged; a contract's boundary is judged against
its baseline model (`expected.Boundary`).
"""

from __future__ import annotations

import numpy as np

from alarms.context import BoolArray, Context, FloatArray, robust
from alarms.rules.common import Judged, meter_label
from alarms.rules.expected import (
    boundaries,
    day_before,
    last_hours,
    reference,
    same_hours,
)
from core.config import MeterKind
from core.config.alarms import BaseLoad, DailyUse, NightWaterFlow, OutOfHours, PlantNoDemand

_UNIT = {MeterKind.ELECTRICITY: "kWh", MeterKind.WATER: "m3", MeterKind.THERMAL: "kWh"}
MIN_REFERENCE = 3
"""Hours (or days, nights) of the same kind a reference needs."""


def _unoccupied(ctx: Context) -> np.ndarray:
    g = ctx.grid
    return ~(g.working & g.within(ctx.settings.occupied_hours))


def out_of_hours(ctx: Context, s: OutOfHours) -> list[Judged]:
    hours = last_hours(ctx, s.min_hours)
    if len(hours) == 0:
        return []
    idle = bool(_unoccupied(ctx)[hours].all())
    before = day_before(ctx)
    masks = [same_hours(ctx, h, before) for h in hours.tolist()] if idle else []
    out = []
    for m in ctx.meters(s.kinds):
        use = ctx.hourly_use(m.id)
        if not np.isfinite(use[hours]).all():
            continue  # not judged: the offline rule speaks for it
        label = meter_label(ctx.site, m.id)
        unit = _UNIT.get(m.kind, "")
        if not idle:
            out.append(
                Judged(m.id, False, f"在办公时间内 {label} (occupied hours)", meters=(m.id,))
            )
            continue
        expected, limit = [], []
        for same in masks:
            ref = reference(use, same, MIN_REFERENCE)
            if ref is None:
                break
            median, spread = ref
            expected.append(median)
            limit.append(median + max(s.ratio * median, s.sigmas * spread, s.min_excess))
        if len(expected) < len(hours):
            continue
        active = bool((use[hours] > np.array(limit)).all())
        out.append(_excess(m.id, label, active, use[hours], expected, limit, unit, "m"))
    for b in boundaries(ctx):
        use = b.hourly
        if not idle or not np.isfinite(use[hours]).all():
            continue
        _, hour_pred = b.predicted
        pred = hour_pred[hours]
        if not np.isfinite(pred).all():
            continue
        limit = pred + np.maximum(s.ratio * pred, s.min_excess)
        active = bool((use[hours] > limit).all())
        label = f"合同 {b.contract.id} 计量边界"
        out.append(
            _excess(b.subject, label, active, use[hours], list(pred), list(limit), b.terms.unit,
                    "b", b.meters)
        )  # fmt: skip
    return out


def _excess(
    subject: str,
    label: str,
    active: bool,
    actual: FloatArray,
    expected: list[float],
    limit: list[float],
    unit: str,
    kind: str,
    meters: tuple[str, ...] = (),
) -> Judged:
    now, usual = float(np.mean(actual)), float(np.mean(expected))
    what = "基准预测" if kind == "b" else "同类时段通常"
    message = (
        f"非办公时间用能偏高：{label} 近 {len(actual)} 小时平均 {now:,.1f} {unit}/h，"
        f"{what} {usual:,.1f} (use out of hours above the expected)"
        if active
        else f"非办公时间用能正常 {label} (out-of-hours use as expected)"
    )
    return Judged(subject, active, message, round(now, 3), round(float(np.mean(limit)), 3),
                  f"{unit}/h", meters or (subject,))  # fmt: skip


def daily_use(ctx: Context, s: DailyUse) -> list[Judged]:
    days, _index, types, ended = ctx.days
    done = np.flatnonzero(ended)
    if len(done) == 0:
        return []
    j = int(done[-1])  # the last day that has ended
    working = np.isin(types, (0, 3))
    similar = similar_weather(ctx, j)
    out = []
    day = str(days[j])
    for m in ctx.meters(s.kinds):
        per_day = ctx.daily(ctx.hourly_use(m.id))
        if not np.isfinite(per_day[j]):
            continue
        mask = (np.arange(len(days)) < j) & (working == working[j]) & similar
        ref = reference(per_day, mask, MIN_REFERENCE)
        if ref is None:
            continue
        median, spread = ref
        limit = median + max(s.sigmas * spread, s.ratio * median, s.min_excess)
        active = bool(per_day[j] > limit)
        unit = _UNIT.get(m.kind, "")
        label = meter_label(ctx.site, m.id)
        message = (
            f"日用量偏高：{label} {day} 用 {per_day[j]:,.0f} {unit}，同类日通常 {median:,.0f}"
            f" (daily use above the usual)"
            if active
            else f"日用量正常 {label} {day} (daily use as usual)"
        )
        out.append(Judged(m.id, active, message, round(float(per_day[j]), 3), round(limit, 3),
                          unit, (m.id,)))  # fmt: skip
    for b in boundaries(ctx):
        bound = b.upper(s.confidence)
        actual = ctx.daily(b.hourly)
        if bound is None or not np.isfinite(actual[j]):
            continue
        pred, upper = bound
        if not np.isfinite(upper[j]):
            continue
        active = bool(actual[j] > upper[j])
        message = (
            f"日用量超出基准模型预测：合同 {b.contract.id} 计量边界 {day} 实际 {actual[j]:,.0f} "
            f"{b.terms.unit}，基准预测 {pred[j]:,.0f}，{s.confidence:.0%} 上限 {upper[j]:,.0f}"
            f" (daily use above the baseline's prediction by more than its uncertainty)"
            if active
            else f"日用量在基准模型预测范围内：合同 {b.contract.id} {day} (within the baseline's interval)"
        )
        out.append(Judged(b.subject, active, message, round(float(actual[j]), 3),
                          round(float(upper[j]), 3), b.terms.unit, b.meters))  # fmt: skip
    return out


def similar_weather(ctx: Context, j: int, hours: tuple[int, int] | None = None) -> BoolArray:
    """The days of the grid whose mean outdoor temperature (over `hours`) was within
    `[alarms] similar_weather_c` of day j's: a meter's reference days. Heating and cooling
    follow the weather, so a cold snap or the season's first hot day is judged against days
    like it, and not judged at all while fewer than the reference needs have been seen. All
    days when the setting is 0, the site reports no outdoor temperature, or day j has none."""
    days = ctx.days[0]
    every = np.ones(len(days), dtype=bool)
    within = ctx.settings.similar_weather_c
    t = ctx.outdoor_by_day(hours) if within > 0 else None
    if t is None or not np.isfinite(t[j]):
        return every
    with np.errstate(invalid="ignore"):
        near: BoolArray = np.abs(t - t[j]) <= within
    return near


def _nights(ctx: Context, use: FloatArray) -> tuple[np.ndarray, FloatArray, FloatArray]:
    """Per local day of the grid: how many of its night hours have ended, and the mean and
    the least use over them (NaN unless each of those hours is known)."""
    g = ctx.grid
    days, index, _types, _ended = ctx.days
    night = g.within(ctx.settings.night_hours) & g.complete
    n = np.bincount(index, weights=night, minlength=len(days))
    bad = np.bincount(index, weights=night & ~np.isfinite(use), minlength=len(days))
    sums = np.bincount(index, weights=np.where(night, np.nan_to_num(use), 0.0), minlength=len(days))
    least = np.full(len(days), np.inf)
    np.minimum.at(least, index[night], np.nan_to_num(use[night], nan=np.inf))
    ok = (n > 0) & (bad == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, sums / n, np.nan)
    return n, mean, np.where(ok, least, np.nan)


def base_load(ctx: Context, s: BaseLoad) -> list[Judged]:
    start, end = ctx.settings.night_hours
    full = end - start
    out = []
    for m in ctx.meters(s.kinds):
        n, mean, _ = _nights(ctx, ctx.hourly_use(m.id))
        whole = np.flatnonzero(n == full)
        if len(whole) == 0 or not np.isfinite(mean[whole[-1]]):
            continue
        j = int(whole[-1])
        similar = similar_weather(ctx, j, ctx.settings.night_hours)
        ref = reference(mean, (np.arange(len(mean)) < j) & (n == full) & similar, 7)
        if ref is None:
            continue
        median, spread = ref
        limit = median + max(s.ratio * median, s.sigmas * spread, s.min_step)
        active = bool(mean[j] > limit)
        unit = _UNIT.get(m.kind, "")
        label = meter_label(ctx.site, m.id)
        message = (
            f"基础负荷上升：{label} 夜间平均 {mean[j]:,.1f} {unit}/h，此前通常 {median:,.1f}"
            f" (base load stepped up)"
            if active
            else f"基础负荷正常 {label} (base load as usual)"
        )
        out.append(Judged(m.id, active, message, round(float(mean[j]), 3), round(limit, 3),
                          f"{unit}/h", (m.id,)))  # fmt: skip
    return out


def night_water_flow(ctx: Context, s: NightWaterFlow) -> list[Judged]:
    start, end = ctx.settings.night_hours
    full = end - start
    out = []
    for m in ctx.meters((MeterKind.WATER,)):
        n, _mean, least = _nights(ctx, ctx.hourly_use(m.id))
        judged = np.flatnonzero((n >= s.min_hours) & np.isfinite(least))
        if len(judged) == 0:
            continue
        j = int(judged[-1])  # tonight once it has enough hours, else last night
        whole = (np.arange(len(n)) < j) & (n == full) & np.isfinite(least)
        if int(whole.sum()) < MIN_REFERENCE:
            continue
        usual, _spread = robust(least[whole])
        if not np.isfinite(usual):
            continue
        limit = usual + s.leak_m3_per_h
        active = bool(least[j] >= limit)
        label = meter_label(ctx.site, m.id)
        message = (
            f"夜间持续用水（疑似漏水）：{label} 夜间每小时至少 {least[j]:,.2f} m³，"
            f"通常最低 {usual:,.2f} m³/h (water flowing all night: a leak?)"
            if active
            else f"夜间用水正常 {label} (no continuous night flow)"
        )
        out.append(Judged(m.id, active, message, round(float(least[j]), 3), round(limit, 3),
                          "m3/h", (m.id,)))  # fmt: skip
    return out


def plant_no_demand(ctx: Context, s: PlantNoDemand) -> list[Judged]:
    hours = last_hours(ctx, s.min_hours)
    if len(hours) == 0:
        return []
    g = ctx.grid
    start, end = ctx.settings.occupied_hours
    demand = g.working & (g.hour >= start - s.margin_h) & (g.hour < end + s.margin_h)
    idle = not bool(demand[hours].any())
    out = []
    for m in ctx.site.meters:
        if m.end_use not in s.end_uses or m.id not in ctx.primary:
            continue
        use = ctx.hourly_use(m.id)
        if not np.isfinite(use[hours]).all():
            continue
        running = bool((use[hours] >= s.running_kw).all())
        active = idle and running
        label = meter_label(ctx.site, m.id)
        message = (
            f"冷热源无需求运行：{label} 非使用时段连续 {len(hours)} 小时运行，平均 "
            f"{float(np.mean(use[hours])):,.0f} kW (plant running with no demand)"
            if active
            else f"冷热源运行正常 {label} (plant as scheduled)"
        )
        out.append(Judged(m.id, active, message, round(float(np.mean(use[hours])), 3),
                          s.running_kw, "kW", (m.id,)))  # fmt: skip
    return out

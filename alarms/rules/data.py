"""Data rules: is the data arriving, and can it be trusted? Pure functions of a `Context`.

- `meter_offline`: a meter silent for longer than its intervals allow;
- `counter_reset`: a counter register that went back (reset, replaced, rolled over);
- `implausible_jump`: a counter stepping further than the meter can have used;
- `dead_letters`: MQTT messages that could not be used, piling up;
- `spool_growing`: readings held in front of a network store that does not take them;
- `store_degraded`: the store refusing writes;
- `part_restarting`: a supervised part failing and being restarted.
"""

from __future__ import annotations

import numpy as np

from alarms.context import Context, OpsSample, percentile
from alarms.rules.common import Judged, duration, meter_label
from alarms.window import SeriesView
from core.config.alarms import (
    CounterReset,
    DeadLetters,
    ImplausibleJump,
    MeterOffline,
    PartRestarting,
    SpoolGrowing,
    StoreDegraded,
)
from processing.counters import EventKind, clean_counter


def meter_offline(ctx: Context, s: MeterOffline) -> list[Judged]:
    out = []
    for m in ctx.site.meters:
        view = ctx.use_view(m.id)
        last = view.last_ts if view is not None else None
        limit_ms = max(s.after_intervals * m.poll_interval_s, s.min_silence_s) * 1000
        since = last if last is not None else ctx.started_ms
        silent = ctx.now_ms - since
        active = silent > limit_ms
        label = meter_label(ctx.site, m.id)
        if not active:
            message = f"表计恢复上报 {label} (meter reporting again)"
        elif last is None:
            message = f"表计离线：{label} 自服务启动 {duration(silent)} 无读数 (meter offline: no reading since the service started)"
        else:
            message = f"表计离线：{label} 已 {duration(silent)} 无读数 (meter offline: no reading for {duration(silent)})"
        state = (ctx.meter_states or {}).get(m.id)
        if active and state is not None and state.last_error:
            message += f"；{state.last_error}"
        out.append(
            Judged(
                m.id, active, message, round(silent / 60_000, 1), round(limit_ms / 60_000, 1),
                "min", (m.id,), last or 0,
            )
        )  # fmt: skip
    return out


def _counter_samples(view: SeriesView) -> tuple[np.ndarray, np.ndarray]:
    """The counter's quarter-hour last values before its recent readings, then those."""
    recent = view.recent
    first = int(recent.ts_ms[0]) if len(recent) else None
    older = view.q_ts < first if first is not None else np.ones(len(view.q_ts), bool)
    return (
        np.concatenate([view.q_ts[older], recent.ts_ms]),
        np.concatenate([view.q_v[older], recent.value]),
    )


def counter_reset(ctx: Context, s: CounterReset) -> list[Judged]:
    out = []
    hold_from = ctx.now_ms - s.hold_s * 1000
    for m in ctx.meters():
        view = ctx.use_view(m.id)
        if view is None or not view.counter:
            continue
        ts, v = _counter_samples(view)
        keep = ts >= hold_from - 3_600_000  # the sample before the hold window, too
        _, _, events = clean_counter(ts[keep], v[keep])
        resets = [e for e in events if e.kind is EventKind.RESET and e.end_ms >= hold_from]
        label = meter_label(ctx.site, m.id)
        if resets:
            e = resets[-1]
            message = (
                f"计数器回退：{label} 从 {e.before:,.2f} 回到 {e.after:,.2f}（复位、换表或溢出翻转）"
                f" (counter went back: reset, replaced or rolled over)"
            )
            out.append(Judged(m.id, True, message, e.after, e.before, "", (m.id,), e.end_ms))
        else:
            out.append(
                Judged(m.id, False, f"计数器正常 {label} (counter counting)", meters=(m.id,))
            )
    return out


def implausible_jump(ctx: Context, s: ImplausibleJump) -> list[Judged]:
    out = []
    hold_from = ctx.now_ms - s.hold_s * 1000
    old = ctx.grid.start_ms < hold_from - 3_600_000
    for m in ctx.meters():
        view = ctx.use_view(m.id)
        if view is None or not view.counter:
            continue
        hourly = ctx.hourly_use(m.id)[old]
        known = hourly[np.isfinite(hourly)]
        if len(known) < 24:
            continue  # no idea yet what this meter can use
        typical_max = percentile(known, 99)
        limit_per_h = s.factor * max(typical_max, 1e-6)
        ts, v = _counter_samples(view)
        keep = ts >= hold_from - 3_600_000
        ts, v = ts[keep], v[keep]
        step = np.diff(v)
        hours = np.diff(ts) / 3_600_000
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(hours > 0, step / hours, np.inf)
        fast = rate > limit_per_h
        # a jump stands alone: the register steps and then counts at its usual pace again.
        # Plant starting for the season keeps using at the new pace (a chiller idle all
        # spring has a usual pace of nothing), so a step is judged once the next one is in
        alone = np.zeros(len(step), dtype=bool)
        alone[:-1] = ~fast[1:]
        jump = (step >= max(s.min_step, 0.0)) & fast & alone & (ts[1:] >= hold_from)
        label = meter_label(ctx.site, m.id)
        if jump.any():
            i = int(np.flatnonzero(jump)[-1])
            message = (
                f"读数跳变：{label} 在 {duration(ts[i + 1] - ts[i])} 内增加 {step[i]:,.1f}，"
                f"超过其最大小时用量的 {s.factor:g} 倍 (implausible jump)"
            )
            out.append(
                Judged(m.id, True, message, float(step[i]), float(limit_per_h * hours[i]), "",
                       (m.id,), int(ts[i + 1]))
            )  # fmt: skip
        else:
            out.append(Judged(m.id, False, f"读数正常 {label} (no jump)", meters=(m.id,)))
    return out


def _since(ops: tuple[OpsSample, ...], now_ms: int, window_s: int) -> OpsSample | None:
    """The oldest sample within the window (the baseline a change is measured from)."""
    inside = [o for o in ops if o.at_ms >= now_ms - window_s * 1000]
    return inside[0] if inside else None


def dead_letters(ctx: Context, s: DeadLetters) -> list[Judged]:
    if not ctx.ops or ctx.ops[-1].dead_letters is None:
        return []
    now = ctx.ops[-1]
    first = _since(ctx.ops, ctx.now_ms, s.window_s)
    base = first.dead_letters if first is not None and first.dead_letters is not None else 0
    new = (now.dead_letters or 0) - base
    active = new >= s.max_new
    message = (
        f"死信增多：{duration(s.window_s * 1000)} 内 {new} 条 MQTT 报文无法使用 (dead letters rising)"
        if active
        else "死信未增多 (dead letters steady)"
    )
    return [Judged("mqtt", active, message, float(new), float(s.max_new), "messages")]


def spool_growing(ctx: Context, s: SpoolGrowing) -> list[Judged]:
    if not ctx.ops or ctx.ops[-1].spool_batches is None:
        return []
    depth = ctx.ops[-1].spool_batches or 0
    first = _since(ctx.ops, ctx.now_ms, s.window_s)
    before = first.spool_batches if first is not None and first.spool_batches is not None else 0
    growing = depth > before and depth >= s.min_batches
    active = growing or depth >= s.max_batches
    message = (
        f"缓存积压：{depth} 批读数等待写入存储（{duration(s.window_s * 1000)} 前 {before} 批）"
        f" (spool growing: the store is not taking readings)"
        if active
        else f"缓存 {depth} 批 (spool not growing)"
    )
    return [Judged("spool", active, message, float(depth), float(s.min_batches), "batches")]


def store_degraded(ctx: Context, s: StoreDegraded) -> list[Judged]:
    if ctx.health is None:
        return []
    condition = ctx.health.conditions.get("store")
    if condition is None:
        return [Judged("store", False, "存储正常 (store accepting writes)")]
    message = f"存储拒绝写入：{condition.detail} (store degraded)"
    return [Judged("store", True, message, observed_ms=condition.since_ms)]


def part_restarting(ctx: Context, s: PartRestarting) -> list[Judged]:
    if ctx.health is None:
        return []
    out = []
    for name, part in sorted(ctx.health.parts.items()):
        down = part.state in ("restarting", "failed")
        recent = part.restarts > 0 and ctx.now_ms - part.last_error_ms <= s.window_s * 1000
        active = down or recent
        message = (
            f"服务部件 {name} 故障重启（第 {part.restarts} 次）：{part.last_error} "
            f"(part {name} {part.state})"
            if active
            else f"服务部件 {name} 运行正常 (part running)"
        )
        out.append(Judged(name, active, message, float(part.restarts), None, "restarts",
                          observed_ms=part.last_error_ms))  # fmt: skip
    return out

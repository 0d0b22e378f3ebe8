"""Capacity rules: is the supply near its limits? Pure functions of a `Context`.

- `transformer_load`: an incomer's load (kVA, the mean of the last 15 minutes) approaching
  its transformer's rated kVA; a raised alarm clears only below `clear_ratio`;
- `max_demand`: the month's maximum demand (需量: the highest 15-minute mean power of the
  summed incomers since the local month began) approaching the contracted value.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from alarms.context import Context
from alarms.model import Severity
from alarms.rules.common import Judged, meter_label
from core.config import EndUse
from core.config.alarms import MaxDemand, TransformerLoad
from storage.base import local_midnight_ms


def _mean_since(ctx: Context, meter_id: str, quantity: str, since_ms: int) -> float | None:
    view = ctx.view(meter_id, quantity)
    if view is None:
        return None
    sel = view.recent.ts_ms >= since_ms
    values = view.recent.value[sel]
    return float(np.mean(values)) if len(values) else None


def transformer_load(ctx: Context, s: TransformerLoad) -> list[Judged]:
    out = []
    since = ctx.now_ms - s.window_s * 1000
    for meter_id, rated in sorted(s.rated_kva.items()):
        kw = _mean_since(ctx, meter_id, "power", since)
        if kw is None:
            continue  # silent: the offline rule speaks for it
        kva = _mean_since(ctx, meter_id, "apparent_power", since)
        if kva is None:
            pf = _mean_since(ctx, meter_id, "power_factor", since)
            kva = abs(kw) / (abs(pf) if pf is not None and abs(pf) >= 0.2 else s.power_factor)
        ratio = kva / rated
        raised = ctx.is_raised("transformer_load", meter_id)
        active = ratio >= (s.clear_ratio if raised else s.warn_ratio)
        severity = Severity.CRITICAL if ratio >= s.critical_ratio else None
        label = meter_label(ctx.site, meter_id)
        message = (
            f"变压器负载率 {ratio:.0%}：{label} 近 {s.window_s // 60} 分钟平均 {kva:,.0f} kVA，"
            f"额定 {rated:,.0f} kVA (transformer load near its rating)"
            if active
            else f"变压器负载率 {ratio:.0%}：{label} (transformer load normal)"
        )
        out.append(Judged(meter_id, active, message, round(ratio, 4), s.warn_ratio, "",
                          (meter_id,), ctx.now_ms, severity, {"kva": round(kva, 1),
                                                              "rated_kva": rated}))  # fmt: skip
    return out


def month_start_ms(ctx: Context) -> int:
    zone = ctx.site.site.tz
    local = datetime.fromtimestamp(ctx.now_ms / 1000, zone).date()
    return local_midnight_ms(date(local.year, local.month, 1), zone)


def max_demand(ctx: Context, s: MaxDemand) -> list[Judged]:
    if s.contracted_kw is None:
        return []
    meters = s.meters or tuple(m.id for m in ctx.site.meters if m.end_use is EndUse.INCOMER)
    if not meters:
        return []
    first = month_start_ms(ctx)
    totals: dict[int, float] = {}
    seen: dict[int, int] = {}
    for meter_id in meters:
        ts, kw = ctx.quarter_demand(meter_id)
        sel = ts >= first
        for t, v in zip(ts[sel].tolist(), kw[sel].tolist(), strict=True):
            totals[t] = totals.get(t, 0.0) + v
            seen[t] = seen.get(t, 0) + 1
    whole = {t: v for t, v in totals.items() if seen[t] == len(meters)}
    if not whole:
        return []
    at, peak = max(whole.items(), key=lambda item: item[1])
    ratio = peak / s.contracted_kw
    active = ratio >= s.warn_ratio
    severity = Severity.CRITICAL if ratio >= s.critical_ratio else None
    label = "、".join(meter_label(ctx.site, m).split(" ")[0] for m in meters)
    message = (
        f"本月最大需量 {peak:,.0f} kW，达合同需量 {s.contracted_kw:,.0f} kW 的 {ratio:.0%}"
        f"（{label}） (the month's maximum demand near the contracted value)"
        if active
        else f"本月最大需量 {peak:,.0f} kW，合同需量的 {ratio:.0%} (maximum demand normal)"
    )
    return [
        Judged("site", active, message, round(peak, 1), round(s.warn_ratio * s.contracted_kw, 1),
               "kW", tuple(meters), at, severity, {"ratio": round(ratio, 4)})
    ]  # fmt: skip

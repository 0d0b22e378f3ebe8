"""The alarm rules: one registry, keyed by the names of `[alarms.rules]`.

Every rule is a pure function `check(ctx, settings) -> [Judged]` over a `Context` (what the
service has: the store's readings and roll-ups, the collectors' meter states and counters,
the supervisor's parts and conditions, the contracts' baselines, the calendar), judging every
subject it can (active or not). `Rule.evaluate(ctx)` turns the verdicts into `Condition`s
with the rule's name, category and severity; `evaluate(ctx)` runs every enabled rule.

| rule | category | module |
|---|---|---|
| `meter_offline`, `counter_reset`, `implausible_jump`, `dead_letters`, `spool_growing`, `store_degraded`, `part_restarting` | data | `rules.data` |
| `out_of_hours`, `daily_use`, `base_load`, `night_water_flow`, `plant_no_demand` | consumption | `rules.consumption` |
| `transformer_load`, `max_demand` | capacity | `rules.capacity` |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alarms.context import Context
from alarms.model import Category, Condition
from alarms.rules import capacity, consumption, data
from alarms.rules.common import Judged, conditions
from core.config import RULE_NAMES, RuleSettings


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    category: Category
    check: Callable[[Context, Any], list[Judged]]

    def settings(self, ctx: Context) -> RuleSettings:
        settings: RuleSettings = getattr(ctx.settings.rules, self.name)
        return settings

    def evaluate(self, ctx: Context) -> list[Condition]:
        settings = self.settings(ctx)
        return conditions(self.name, self.category, settings, self.check(ctx, settings))


_D, _C, _K = Category.DATA, Category.CONSUMPTION, Category.CAPACITY
REGISTRY: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("meter_offline", _D, data.meter_offline),
        Rule("counter_reset", _D, data.counter_reset),
        Rule("implausible_jump", _D, data.implausible_jump),
        Rule("dead_letters", _D, data.dead_letters),
        Rule("spool_growing", _D, data.spool_growing),
        Rule("store_degraded", _D, data.store_degraded),
        Rule("part_restarting", _D, data.part_restarting),
        Rule("out_of_hours", _C, consumption.out_of_hours),
        Rule("daily_use", _C, consumption.daily_use),
        Rule("base_load", _C, consumption.base_load),
        Rule("night_water_flow", _C, consumption.night_water_flow),
        Rule("plant_no_demand", _C, consumption.plant_no_demand),
        Rule("transformer_load", _K, capacity.transformer_load),
        Rule("max_demand", _K, capacity.max_demand),
    )
}
if tuple(REGISTRY) != RULE_NAMES:  # the site file's tables and this registry are one list
    raise ImportError(f"alarm rules {tuple(REGISTRY)} != [alarms.rules] {RULE_NAMES}")


def enabled(ctx: Context) -> list[Rule]:
    return [r for r in REGISTRY.values() if r.settings(ctx).enabled]


__all__ = ["REGISTRY", "Judged", "Rule", "enabled"]

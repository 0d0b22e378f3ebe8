"""Energy-use intensity against the standards: `[intensity]`.

GB/T 51161-2016 民用建筑能耗标准 gives, per office class and climate zone, a constraint value
(约束值: a building above it uses too much) and a guide value (引导值: what a good one uses), in
kWh/(m²·a) of gross floor area (table 5.2.1, office buildings, non-heating energy). The table
below is as recalled from that standard: the published text could not be read here to verify
it, so every figure taken from it is reported `provisional`. Sites add their own targets
(the 公共机构 energy quotas of their province, per person or per m²) as `[[intensity.targets]]`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from core.config.base import EntityId, FieldError, _Model

Metric = Literal[
    "kwh_per_m2",
    "kwh_per_person",
    "kgce_per_m2",
    "kgce_per_person",
    "water_m3_per_person",
    "water_m3_per_m2",
]
OfficeClass = Literal["government_a", "government_b", "commercial_a", "commercial_b"]
ClimateZone = Literal[
    "severe_cold_and_cold", "hot_summer_cold_winter", "hot_summer_warm_winter", "mild"
]

GBT51161_SOURCE = "GB/T 51161-2016 民用建筑能耗标准, 表 5.2.1 办公建筑非供暖能耗指标"
GBT51161_OFFICE: dict[OfficeClass, dict[ClimateZone, tuple[float, float]]] = {
    # (constraint 约束值, guide 引导值), kWh/(m²·a); A类: openable windows, natural ventilation
    # most of the year; B类: sealed, mechanically ventilated and air-conditioned all year
    "government_a": {
        "severe_cold_and_cold": (55, 45),
        "hot_summer_cold_winter": (70, 55),
        "hot_summer_warm_winter": (65, 50),
        "mild": (50, 40),
    },
    "commercial_a": {
        "severe_cold_and_cold": (65, 55),
        "hot_summer_cold_winter": (85, 70),
        "hot_summer_warm_winter": (80, 65),
        "mild": (65, 50),
    },
    "government_b": {
        "severe_cold_and_cold": (70, 50),
        "hot_summer_cold_winter": (90, 65),
        "hot_summer_warm_winter": (80, 60),
        "mild": (60, 45),
    },
    "commercial_b": {
        "severe_cold_and_cold": (80, 60),
        "hot_summer_cold_winter": (110, 80),
        "hot_summer_warm_winter": (100, 75),
        "mild": (70, 55),
    },
}
_CLASS_NAMES = {
    "government_a": "A类党政机关办公建筑",
    "government_b": "B类党政机关办公建筑",
    "commercial_a": "A类商业办公建筑",
    "commercial_b": "B类商业办公建筑",
}
_ZONE_NAMES = {
    "severe_cold_and_cold": "严寒和寒冷地区",
    "hot_summer_cold_winter": "夏热冬冷地区",
    "hot_summer_warm_winter": "夏热冬暖地区",
    "mild": "温和地区",
}


class IntensityTarget(_Model):
    """A constraint and/or guide value for one intensity figure: `[[intensity.targets]]`."""

    id: EntityId
    """ASCII id."""
    metric: Metric
    """`kwh_per_m2`, `kwh_per_person`, `kgce_per_m2`, `kgce_per_person` (electricity in kg
    of standard coal, `kgce_per_kwh`), `water_m3_per_person` or `water_m3_per_m2`; per year."""
    constraint: float | None = Field(default=None, gt=0)
    """Constraint value (约束值, 定额): above it is too much."""
    guide: float | None = Field(default=None, gt=0)
    """Guide value (引导值, 先进值): what a good building achieves."""
    applies_to: Literal["site", "buildings", "both"] = "both"
    """Compare the whole site, each building, or both."""
    source: str = Field(min_length=1)
    """Where the figures come from (standard, table, year), for the reader."""
    provisional: bool = False
    """The figures could not be verified against their source: the answers say so."""

    @model_validator(mode="after")
    def _ordered(self) -> IntensityTarget:
        if self.constraint is None and self.guide is None:
            raise FieldError("constraint", "give a constraint value, a guide value or both")
        if self.constraint is not None and self.guide is not None and self.guide > self.constraint:
            raise FieldError("guide", "the guide value must not exceed the constraint value")
        return self


class IntensityConfig(_Model):
    """Energy-use intensity against the standards: `[intensity]`."""

    office_class: OfficeClass = "government_a"
    """The site's class in GB/T 51161-2016: `government_a` (A类党政机关办公建筑: windows open,
    split or fan-coil air conditioning), `government_b` (B类: sealed, central air all year),
    `commercial_a`, `commercial_b`."""
    climate_zone: ClimateZone = "hot_summer_cold_winter"
    """GB 50176 climate zone: `severe_cold_and_cold`, `hot_summer_cold_winter` (夏热冬冷),
    `hot_summer_warm_winter`, `mild`."""
    standard_eui: bool = True
    """Compare kWh/m²·a with GB/T 51161-2016 table 5.2.1's constraint and guide values for
    `office_class` in `climate_zone` (reported provisional: recalled, not verified here)."""
    kgce_per_kwh: float = Field(default=0.1229, gt=0)
    """kg of standard coal per kWh of electricity, for `kgce_*` targets: GB/T 2589-2020's
    equivalent value (当量值) 0.1229."""
    targets: tuple[IntensityTarget, ...] = ()
    """Further targets: the province's 公共机构 energy and water quotas, the site's own."""

    @model_validator(mode="after")
    def _unique(self) -> IntensityConfig:
        ids = [t.id for t in self.targets]
        dup = sorted({i for i in ids if ids.count(i) > 1} | ({"gbt51161"} & set(ids)))
        if dup:
            raise FieldError("targets", f"duplicate or reserved target id(s) {dup}")
        return self

    def standard_target(self) -> IntensityTarget:
        constraint, guide = GBT51161_OFFICE[self.office_class][self.climate_zone]
        return IntensityTarget(
            id="gbt51161",
            metric="kwh_per_m2",
            constraint=constraint,
            guide=guide,
            applies_to="both",
            source=f"{GBT51161_SOURCE}: {_CLASS_NAMES[self.office_class]}, "
            f"{_ZONE_NAMES[self.climate_zone]} (as recalled; not verified against the text here)",
            provisional=True,
        )

    def all_targets(self) -> tuple[IntensityTarget, ...]:
        return ((self.standard_target(),) if self.standard_eui else ()) + self.targets

"""Department bills: the site's tariff and the pools of energy and water no department
meters alone, each shared out by a rule the site chooses: `[billing]`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from core.config.base import EntityId, FieldError, _Model
from core.config.contracts import Tariff
from core.config.places import EndUse, MeterKind

if TYPE_CHECKING:
    from core.config.site import SiteConfig
    from core.errors import ConfigError

AllocationRule = Literal["floor_area", "headcount", "metered_share", "fixed", "none"]
Utility = Literal["electricity", "water"]

_WATER = {EndUse.WATER_MAIN, EndUse.DOMESTIC_WATER, EndUse.MAKEUP_WATER}
_NEITHER = {EndUse.COOLING_DELIVERED, EndUse.COIL_ENERGY, EndUse.WEATHER}
END_USES: dict[str, frozenset[EndUse]] = {
    "electricity": frozenset(set(EndUse) - _WATER - _NEITHER),
    "water": frozenset(_WATER | {EndUse.MIXED}),
}
"""The end uses a pool of each utility may select."""


class Pool(_Model):
    """What no department meters alone, and how it is shared out: `[[billing.pools]]`.

    A meter that meters no department belongs to the first pool (in file order) of its
    utility whose selectors all match it; a meter that matches none is billed to nobody and
    shows in the unallocated remainder under its own id."""

    id: EntityId
    """ASCII id (a column of the bills' CSV)."""
    name: str = ""
    """Display name, e.g. `公共区域照明及电梯`."""
    utility: Utility = "electricity"
    """`electricity` (kWh, priced at the tariff hour by hour) or `water` (m³)."""
    meters: tuple[EntityId, ...] = ()
    """Selector: these meters (their own use, without what their sub-meters measure)."""
    end_uses: tuple[EndUse, ...] = ()
    """Selector: meters of these end uses (`incomer` or `water_main`: what the incomers or
    mains measure beyond their sub-meters, i.e. transformer losses, unmetered feeders)."""
    tenants: tuple[EntityId, ...] = ()
    """Selector: meters of these (common-area) tenants."""
    buildings: tuple[EntityId, ...] = ()
    """Selector: meters in these buildings."""
    rule: AllocationRule
    """How the pool is shared among its recipients: `floor_area` (m²), `headcount` (staff),
    `metered_share` (each recipient's own metered use of the utility that month), `fixed`
    (`keys`), or `none` (nobody: the whole pool stays in the unallocated remainder)."""
    recipients: tuple[EntityId, ...] = ()
    """The departments that share the pool; empty: every department."""
    per_building: bool = False
    """Share each building's part of the pool (by its meters' building) among the recipients
    in that building only (a building's lifts to that building's departments)."""
    keys: dict[EntityId, float] = Field(default_factory=dict)
    """`fixed`: each department's fraction of the pool (0-1, summing to at most 1; the rest
    stays in the unallocated remainder)."""

    @model_validator(mode="after")
    def _consistent(self) -> Pool:
        if not (self.meters or self.end_uses or self.tenants or self.buildings):
            raise FieldError(
                "meters", "a pool needs a selector: meters, end_uses, tenants or buildings"
            )
        if self.rule == "fixed":
            if not self.keys:
                raise FieldError("keys", "a fixed rule needs keys (department id = fraction)")
            bad = {k: v for k, v in self.keys.items() if not 0 <= v <= 1}
            if bad:
                raise FieldError("keys", f"fractions must be between 0 and 1: {bad}")
            total = sum(self.keys.values())
            if total > 1 + 1e-9:
                raise FieldError("keys", f"the fractions sum to {total:g}, more than 1")
            if self.per_building:
                raise FieldError(
                    "per_building", "a fixed rule shares the whole pool: drop per_building"
                )
            if self.recipients:
                raise FieldError("recipients", "a fixed rule's recipients are its keys")
        elif self.keys:
            raise FieldError("keys", f"keys belong to a fixed rule, not {self.rule!r}")
        misfit = [e.value for e in self.end_uses if e not in END_USES[self.utility]]
        if misfit:
            raise FieldError("end_uses", f"{misfit} are not {self.utility} end uses")
        return self

    @property
    def kind(self) -> MeterKind:
        return MeterKind(self.utility)


class BillingConfig(_Model):
    """Department bills (分户计量与费用分摊): `[billing]`."""

    tariff: Tariff | None = None
    """The site's own tariff (time-of-use by season, like `[contracts.tariff]`, and the water
    price), which prices the bills hour by hour; absent: bills carry kWh and m³ but no money."""
    pools: tuple[Pool, ...] = ()
    """What no department meters alone, shared out by rule; what no pool takes stays in the
    unallocated remainder."""

    @model_validator(mode="after")
    def _unique(self) -> BillingConfig:
        dup = [i for i, n in Counter(p.id for p in self.pools).items() if n > 1]
        if dup:
            raise FieldError("pools", f"duplicate pool id(s) {dup}")
        return self


def check_billing_references(cfg: SiteConfig, fail: Callable[[str, str, str], ConfigError]) -> None:
    """Pools name meters, tenants and buildings that exist, and share among departments."""
    billing = cfg.billing
    if (
        billing.tariff is not None
        and billing.tariff.kind == "flat"
        and billing.tariff.flat_price_cny_per_kwh == 0
    ):
        raise fail("[billing]", "tariff.flat_price_cny_per_kwh", "a flat tariff needs a price")
    tenants = {t.id: t for t in cfg.tenants}
    buildings = {b.id for b in cfg.buildings}
    for pool in billing.pools:
        entity = f"[billing] pool {pool.id!r}"
        for j, meter_id in enumerate(pool.meters):
            meter = cfg.meters_by_id.get(meter_id)
            if meter is None:
                raise fail(entity, f"meters.{j}", f"no meter {meter_id!r}")
            if meter.kind is not pool.kind:
                raise fail(
                    entity,
                    f"meters.{j}",
                    f"meter {meter_id!r} is a {meter.kind.value} meter, not {pool.utility}",
                )
            owner = tenants.get(meter.tenant or "")
            if owner is not None and owner.kind == "department":
                raise fail(
                    entity,
                    f"meters.{j}",
                    f"meter {meter_id!r} meters department {owner.id!r}: it is billed to it",
                )
        for j, tenant_id in enumerate(pool.tenants):
            if tenant_id not in tenants:
                raise fail(entity, f"tenants.{j}", f"no tenant {tenant_id!r}")
        for j, building_id in enumerate(pool.buildings):
            if building_id not in buildings:
                raise fail(entity, f"buildings.{j}", f"no building {building_id!r}")
        named = [("recipients", r) for r in pool.recipients] + [("keys", k) for k in pool.keys]
        for key, tenant_id in named:
            tenant = tenants.get(tenant_id)
            if tenant is None:
                raise fail(entity, key, f"no tenant {tenant_id!r}")
            if tenant.kind != "department":
                raise fail(entity, key, f"{tenant_id!r} is a common area: pools go to departments")

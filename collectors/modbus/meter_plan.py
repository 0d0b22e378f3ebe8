"""A Modbus meter as the poller sees it: its planned reads (`plan.plan_reads`), its PT/CT
ratios, and its poll state (misses, probe spacing, identity)."""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.modbus.plan import ReadRequest, plan_reads
from collectors.profiles import Profile, get_profile
from core.config import Meter


@dataclass
class MeterPlan:
    meter_id: str
    unit: int
    interval_s: int
    profile: Profile
    reads: list[ReadRequest]
    static_reads: list[ReadRequest]
    pt: float
    ct: float
    misses: int = 0
    skip_cycles: int = 0
    gateway_misses: int = 0
    """Polls lost in a row to the gateway's faults (dropped connections, garbage)."""
    identified: bool = False
    identity: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_meter(cls, meter: Meter) -> MeterPlan:
        src = meter.modbus
        if src is None:
            raise ValueError(f"meter {meter.id} is not a Modbus meter")
        profile = get_profile(src.profile)
        wanted = frozenset(src.quantities) if src.quantities else None
        reads = plan_reads(profile, quantities=wanted)
        static_reads = plan_reads(profile, quantities=wanted, static=True)
        return cls(
            meter.id,
            src.unit,
            meter.poll_interval_s,
            profile,
            reads,
            static_reads,
            src.pt_ratio,
            src.ct_ratio,
        )

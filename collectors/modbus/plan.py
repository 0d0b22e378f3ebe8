"""Request planning: which reads fetch a meter's registers in as few requests as possible.

Pure: a profile in, a list of reads out. Adjacent fields merge into one read while the gap
between them is at most the profile's `gap_fill` registers and the read stays within the
device's limit (125 registers by the protocol, lower where the profile says so). A field is
never split across reads. Fields that overlap (two views of the same registers) share a read.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.modbus.decode import RegisterSpec
from collectors.profiles import Profile
from core.quantities import QUANTITIES, conversion_factor

"""The default `gap_fill` of a profile."""


@dataclass(frozen=True, slots=True)
class FieldRead:
    quantity: str
    spec: RegisterSpec
    factor: float
    """Multiply the decoded value by this for the quantity's canonical unit."""


@dataclass(frozen=True, slots=True)
class ReadRequest:
    function_code: int
    address: int
    count: int
    fields: tuple[FieldRead, ...]

    def slice_for(self, field: FieldRead, registers: list[int]) -> list[int]:
        start = field.spec.address - self.address
        return registers[start : start + field.spec.count]


def plan_reads(
    profile: Profile,
    *,
    quantities: frozenset[str] | None = None,
    max_gap: int | None = None,
    static: bool | None = False,
) -> list[ReadRequest]:
    """The reads that fetch `quantities` (default: every field) of one device: its
    measurements (`static=False`, every poll), its configuration (`static=True`, once per
    connection), or both (`static=None`)."""
    gap = profile.gap_fill if max_gap is None else max_gap
    reads = sorted(
        (
            FieldRead(
                f.quantity, profile.spec(f), conversion_factor(f.unit, QUANTITIES[f.quantity].unit)
            )
            for f in profile.fields
            if (quantities is None or f.quantity in quantities)
            and (static is None or f.static == static)
        ),
        key=lambda r: r.spec.address,
    )
    plan: list[ReadRequest] = []
    group: list[FieldRead] = []
    for read in reads:
        if group:
            start = group[0].spec.address
            end = max(r.spec.address + r.spec.count for r in group)
            new_end = max(end, read.spec.address + read.spec.count)
            if read.spec.address - end <= gap and new_end - start <= profile.max_registers:
                group.append(read)
                continue
            plan.append(_request(profile, group))
        group = [read]
    if group:
        plan.append(_request(profile, group))
    return plan


def split_request(request: ReadRequest) -> list[ReadRequest]:
    """One read per field: what to fall back to when a merged read is refused (exception 2),
    so the field the device does not know can be named."""
    return [
        ReadRequest(request.function_code, f.spec.address, f.spec.count, (f,))
        for f in request.fields
    ]


def _request(profile: Profile, group: list[FieldRead]) -> ReadRequest:
    start = group[0].spec.address
    end = max(r.spec.address + r.spec.count for r in group)
    return ReadRequest(profile.function_code, start, end - start, tuple(group))

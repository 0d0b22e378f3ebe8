"""Request planning as tables: a register map in, the reads out."""

from __future__ import annotations

import pytest

from collectors.modbus.plan import plan_reads, split_request
from collectors.profiles import Profile, load_profiles


def profile(
    fields: list[tuple[str, int, str]], *, max_registers: int = 125, gap_fill: int = 16
) -> Profile:
    return Profile.model_validate(
        {
            "name": "t",
            "manufacturer": "t",
            "model": "t",
            "kind": "electricity",
            "source": "test",
            "function": "holding",
            "max_registers": max_registers,
            "gap_fill": gap_fill,
            "fields": [{"quantity": q, "address": a, "type": t, "unit": "1"} for q, a, t in fields],
        }
    )


Q = [
    "power_factor",
    "power_factor_l1",
    "power_factor_l2",
    "power_factor_l3",
    "ct_ratio",
    "pt_ratio",
]

TABLE = [
    # (why, fields, max_registers, gap_fill, expected [(address, count, n_fields)])
    ("adjacent fields merge", [(Q[0], 0, "float32"), (Q[1], 2, "float32")], 125, 16, [(0, 4, 2)]),
    (
        "a gap within the fill merges",
        [(Q[0], 0, "float32"), (Q[1], 10, "float32")],
        125,
        16,
        [(0, 12, 2)],
    ),
    (
        "a gap beyond the fill splits",
        [(Q[0], 0, "float32"), (Q[1], 19, "float32")],
        125,
        16,
        [(0, 2, 1), (19, 2, 1)],
    ),
    (
        "gap fill 0: only contiguous fields merge",
        [(Q[0], 0, "uint16"), (Q[1], 1, "uint16"), (Q[2], 3, "uint16")],
        125,
        0,
        [(0, 2, 2), (3, 1, 1)],
    ),
    (
        "the device limit splits at a field border",
        [(Q[0], 0, "float32"), (Q[1], 2, "float32"), (Q[2], 4, "float32")],
        5,
        16,
        [(0, 4, 2), (4, 2, 1)],
    ),
    (
        "the protocol limit: 125 registers",
        [(Q[0], 0, "uint16"), (Q[1], 124, "uint16"), (Q[2], 125, "uint16")],
        125,
        124,
        [(0, 125, 2), (125, 1, 1)],
    ),
    (
        "unsorted fields are sorted",
        [(Q[1], 40, "uint16"), (Q[0], 0, "uint16")],
        125,
        16,
        [(0, 1, 1), (40, 1, 1)],
    ),
    (
        "overlapping views share a read",
        [(Q[0], 0, "uint32"), (Q[1], 1, "uint16")],
        125,
        16,
        [(0, 2, 2)],
    ),
    (
        "64-bit fields keep their four registers",
        [(Q[0], 0, "float64"), (Q[1], 4, "int64")],
        6,
        16,
        [(0, 4, 1), (4, 4, 1)],
    ),
]


@pytest.mark.parametrize(
    ("why", "fields", "max_regs", "gap", "expected"), TABLE, ids=[t[0] for t in TABLE]
)
def test_plan_table(why, fields, max_regs, gap, expected):
    plan = plan_reads(profile(fields, max_registers=max_regs, gap_fill=gap))
    assert [(r.address, r.count, len(r.fields)) for r in plan] == expected
    for r in plan:
        assert r.count <= max_regs
        for f in r.fields:  # every field lies wholly inside its read
            assert r.address <= f.spec.address
            assert f.spec.address + f.spec.count <= r.address + r.count


def test_only_requested_quantities_are_planned():
    p = profile([(Q[0], 0, "uint16"), (Q[1], 1, "uint16"), (Q[2], 50, "uint16")])
    assert [(r.address, r.count) for r in plan_reads(p, quantities=frozenset({Q[2]}))] == [(50, 1)]


def test_split_request_gives_one_read_per_field():
    (merged,) = plan_reads(profile([(Q[0], 0, "float32"), (Q[1], 6, "float32")]))
    assert [(r.address, r.count) for r in split_request(merged)] == [(0, 2), (6, 2)]


# The plans of the shipped profiles' measurements (configuration registers such as CT/PT
# ratios are read once per connection, not every poll).
SHIPPED = {
    "eastron-sdm630": [(0x0000, 76), (0x0156, 2)],
    "chint-dtsu666": [(0x101E, 12), (0x2000, 70)],
    "acrel-adw300": [(20, 18), (62, 4)],
    "acrel-dtsd1352": [(0x0000, 22), (0x0061, 23), (0x0164, 28)],
    "xintai-water": [(0x0001, 27)],
    "tuf2000m": [(0, 36)],
    "belimo-energy-valve": [(4, 31), (65, 8)],
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_profile_plans(name):
    p = load_profiles()[name]
    plan = plan_reads(p)
    assert [(r.address, r.count) for r in plan] == SHIPPED[name]
    static = plan_reads(p, static=True)
    assert sum(len(r.fields) for r in plan + static) == len(p.fields)
    assert all(f.quantity in ("ct_ratio", "pt_ratio") for r in static for f in r.fields)
    assert all(r.function_code == p.function_code for r in plan)
    assert all(r.count <= p.max_registers for r in plan)

"""Register decoding, as rows of worked examples: registers in, engineering value out."""

from __future__ import annotations

import itertools

import pytest

from collectors.modbus.decode import (
    RegisterSpec,
    RegisterType,
    StringSpec,
    Transformer,
    WordOrder,
    decode,
    decode_string,
    encode,
)
from collectors.profiles import get_profile, load_profiles

T = RegisterType
W = WordOrder

CASES = [
    # (why, registers, spec, pt, ct, expected)
    (
        "Xintai protocol V1 example: bytes 1E 85 0B 3F = 0.545 m3/h",
        [0x1E85, 0x0B3F],
        RegisterSpec(5, T.FLOAT32, W.DCBA),
        1,
        1,
        0.545,
    ),
    (
        "SDM630 phase voltage 230.0 V, float32 ABCD",
        [0x4366, 0x0000],
        RegisterSpec(0, T.FLOAT32, W.ABCD),
        1,
        1,
        230.0,
    ),
    (
        "float32 1.0 low word first (CDAB)",
        [0x0000, 0x3F80],
        RegisterSpec(0, T.FLOAT32, W.CDAB),
        1,
        1,
        1.0,
    ),
    (
        "float32 1.0 bytes swapped in words (BADC)",
        [0x803F, 0x0000],
        RegisterSpec(0, T.FLOAT32, W.BADC),
        1,
        1,
        1.0,
    ),
    (
        "DTSU666 Ua: float 2200.0 in 0.1 V = 220.0 V",
        [0x4509, 0x8000],
        RegisterSpec(0x2006, T.FLOAT32, scale=0.1),
        1,
        1,
        220.0,
    ),
    (
        "ADW300 import energy: int32 123456 x 0.01 kWh",
        [0x0001, 0xE240],
        RegisterSpec(62, T.INT32, scale=0.01),
        1,
        1,
        1234.56,
    ),
    (
        "ADW300 power exported: int32 -200 W",
        [0xFFFF, 0xFF38],
        RegisterSpec(36, T.INT32),
        1,
        1,
        -200.0,
    ),
    (
        "DTSD1352 Ia: uint16 500 x 0.01 A on a 2000/5 CT (x400) = 2000 A",
        [500],
        RegisterSpec(0x64, T.UINT16, scale=0.01, transformer=Transformer.CT),
        1,
        400,
        2000.0,
    ),
    (
        "DTSD1352 energy: uint32 1000 x 0.01 kWh x PT 10 x CT 40",
        [0x0000, 0x03E8],
        RegisterSpec(0, T.UINT32, scale=0.01, transformer=Transformer.PT_CT),
        10,
        40,
        4000.0,
    ),
    (
        "DTSD1352 PF: int16 -950 x 0.001",
        [0xFC4A],
        RegisterSpec(0x17F, T.INT16, scale=0.001),
        1,
        1,
        -0.95,
    ),
    ("uint16 full scale", [0xFFFF], RegisterSpec(0, T.UINT16), 1, 1, 65535.0),
    ("int16 -1", [0xFFFF], RegisterSpec(0, T.INT16), 1, 1, -1.0),
    (
        "int16 bytes swapped (DCBA): 0x0100 reads 1",
        [0x0100],
        RegisterSpec(0, T.INT16, W.DCBA),
        1,
        1,
        1.0,
    ),
    ("uint32 above 2^31", [0x8000, 0x0001], RegisterSpec(0, T.UINT32), 1, 1, 2147483649.0),
    (
        "TUF-2000M accumulator: LONG 1234 + REAL4 0.5, CDAB",
        [0x04D2, 0x0000, 0x0000, 0x3F00],
        RegisterSpec(16, T.INT32_FLOAT32, W.CDAB),
        1,
        1,
        1234.5,
    ),
    ("float64 1.0 ABCD", [0x3FF0, 0, 0, 0], RegisterSpec(0, T.FLOAT64), 1, 1, 1.0),
    (
        "float64 1.0 low word first",
        [0, 0, 0, 0x3FF0],
        RegisterSpec(0, T.FLOAT64, W.CDAB),
        1,
        1,
        1.0,
    ),
    ("int64 -2 ABCD", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], RegisterSpec(0, T.INT64), 1, 1, -2.0),
    ("uint64 2^32 DCBA", [0, 0, 0x0100, 0], RegisterSpec(0, T.UINT64, W.DCBA), 1, 1, 4294967296.0),
    (
        "offset: raw 2731 x 0.1 - 273.1 K->degC",
        [2731],
        RegisterSpec(0, T.UINT16, scale=0.1, offset=-273.1),
        1,
        1,
        0.0,
    ),
]


@pytest.mark.parametrize(
    ("why", "registers", "spec", "pt", "ct", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_decode_worked_examples(why, registers, spec, pt, ct, expected):
    before = list(registers)
    assert decode(registers, spec, pt=pt, ct=ct) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert registers == before  # decode never touches its input


@pytest.mark.parametrize(
    ("kind", "order"),
    list(itertools.product(list(RegisterType), list(WordOrder))),
)
def test_encode_decode_round_trip(kind, order):
    spec = RegisterSpec(100, kind, order, scale=0.01, offset=5.0, transformer=Transformer.PT_CT)
    value = 12345.67 if kind not in (T.INT16, T.UINT16) else 123.45
    regs = encode(value, spec, pt=2, ct=3)
    assert len(regs) == spec.count
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode(regs, spec, pt=2, ct=3) == pytest.approx(value, rel=1e-6, abs=0.06)


def test_integer_encoding_saturates():
    spec = RegisterSpec(0, T.UINT16)
    assert encode(70000, spec) == [0xFFFF]
    assert encode(-5, spec) == [0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": -1, "type": T.UINT16}, "outside"),
        ({"address": 0xFFFF, "type": T.FLOAT32}, "runs past"),
        ({"address": 0, "type": T.UINT16, "scale": 0.0}, "scale"),
        ({"address": 0, "type": T.UINT16, "offset": float("nan")}, "finite"),
    ],
)
def test_invalid_specs_cannot_be_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RegisterSpec(**kwargs)


def test_wrong_register_count_is_refused():
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], RegisterSpec(0, T.FLOAT32))


def test_profiles_load_and_fields_do_not_overlap():
    profiles = load_profiles()
    assert {
        "eastron-sdm630",
        "chint-dtsu666",
        "acrel-adw300",
        "acrel-dtsd1352",
        "xintai-water",
        "tuf2000m",
        "belimo-energy-valve",
    } <= set(profiles)
    for profile in profiles.values():
        taken: dict[int, str] = {}
        for field in profile.fields:
            spec = profile.spec(field)
            for addr in range(spec.address, spec.address + spec.count):
                assert addr not in taken, f"{profile.name}: {field.quantity} overlaps {taken[addr]}"
                taken[addr] = field.quantity


def test_profile_datasheet_addresses():
    sdm = get_profile("eastron-sdm630")
    assert sdm.function_code == 4
    assert sdm.field("energy_import").address == 0x0048
    xintai = get_profile("xintai-water")
    assert xintai.spec(xintai.field("flow")).order is WordOrder.DCBA
    assert decode([0x1E85, 0x0B3F], xintai.spec(xintai.field("flow"))) == pytest.approx(
        0.545, rel=1e-4
    )
    tuf = get_profile("tuf2000m")
    assert tuf.field("supply_temperature").address == 32  # manual register 33


@pytest.mark.parametrize(
    ("registers", "order", "expected"),
    [
        ([0x5344, 0x4D36, 0x3330, 0x0000], W.ABCD, "SDM630"),  # 'SD' 'M6' '30' NUL
        ([0x4453, 0x364D, 0x3033, 0x2020], W.BADC, "SDM630"),  # bytes swapped, space padded
        ([0x4131], W.ABCD, "A1"),
    ],
)
def test_identification_strings(registers, order, expected):
    assert decode_string(registers, StringSpec(0, len(registers), order)) == expected


def test_string_spec_validates_itself():
    with pytest.raises(ValueError, match="register space"):
        StringSpec(0, 0)

"""Independent clients read the simulated meters at the datasheet addresses.

The register maps below are written out from the datasheets (docs: the meters reference),
not taken from our profile files, and decoded here with `struct`: pyModbusTCP and mbpoll
(a real subprocess) must find plausible values where the manuals say they are.
"""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Iterator

import pytest
from pyModbusTCP.client import ModbusClient

from tests.conftest import require
from tests.sim_servers import Served, serving

METERS = {
    "eastron-sdm630": "E-D48",
    "chint-dtsu666": "E-D01",
    "acrel-adw300": "E-D28",
    "acrel-dtsd1352": "E-TR1",
    "xintai-water": "W-MAIN",
    "tuf2000m": "H-BTU1",
    "belimo-energy-valve": "H-EV-M1",
}
QUARTER_MS = 900_000


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(list(METERS.values())) as s:
        yield s


def _bytes(regs: list[int]) -> bytes:
    return b"".join(r.to_bytes(2, "big") for r in regs)


def f32(regs: list[int], order: str) -> float:
    words = regs if order in ("ABCD", "BADC") else regs[::-1]
    raw = _bytes(words)
    if order in ("BADC", "DCBA"):
        raw = bytes(b for i in range(0, 4, 2) for b in (raw[i + 1], raw[i]))
    value: float = struct.unpack(">f", raw)[0]
    return value


def i32(regs: list[int], order: str, signed: bool = True) -> int:
    words = regs if order == "ABCD" else regs[::-1]
    value: int = struct.unpack(">i" if signed else ">I", _bytes(words))[0]
    return value


def swap16(reg: int) -> int:
    return ((reg & 0xFF) << 8) | (reg >> 8)


def i16(reg: int) -> int:
    return reg - 0x10000 if reg & 0x8000 else reg


class Reader:
    def __init__(self, served: Served, meter_id: str) -> None:
        port, unit = served.endpoint(meter_id)
        self.client = ModbusClient(
            host="127.0.0.1", port=port, unit_id=unit, timeout=5, auto_open=True
        )

    def holding(self, address: int, count: int) -> list[int]:
        regs = self.client.read_holding_registers(address, count)
        assert regs is not None, (
            f"read failed: {self.client.last_error_as_txt} / {self.client.last_except_as_txt}"
        )
        return list(regs)

    def input(self, address: int, count: int) -> list[int]:
        regs = self.client.read_input_registers(address, count)
        assert regs is not None, (
            f"read failed: {self.client.last_error_as_txt} / {self.client.last_except_as_txt}"
        )
        return list(regs)

    def close(self) -> None:
        self.client.close()


def read_eastron(r: Reader) -> dict[str, float]:
    regs = r.input(0x0000, 0x4C)
    f = {a: f32(regs[a : a + 2], "ABCD") for a in range(0, 0x4C, 2)}
    return {
        "v1": f[0x00], "v2": f[0x02], "v3": f[0x04],
        "i1": f[0x06], "i2": f[0x08], "i3": f[0x0A],
        "p1": f[0x0C], "p2": f[0x0E], "p3": f[0x10],
        "pf1": f[0x1E], "pf2": f[0x20], "pf3": f[0x22],
        "p": f[0x34] / 1000, "pf": f[0x3E], "hz": f[0x46], "kwh": f[0x48],
    }  # fmt: skip


def read_chint(r: Reader) -> dict[str, float]:
    regs = r.holding(0x2000, 0x46)
    f = {a: f32(regs[a : a + 2], "ABCD") for a in range(0, 0x46, 2)}
    energy = r.holding(0x101E, 2)
    return {
        "v1": f[0x06] * 0.1, "v2": f[0x08] * 0.1, "v3": f[0x0A] * 0.1,
        "i1": f[0x0C] * 0.001, "i2": f[0x0E] * 0.001, "i3": f[0x10] * 0.001,
        "p": f[0x12] * 0.1 / 1000, "pf": f[0x2A] * 0.001, "hz": f[0x44] * 0.01,
        "kwh": f32(energy, "ABCD"),
    }  # fmt: skip


def read_adw300(r: Reader) -> dict[str, float]:
    regs = r.holding(20, 46)  # 20..65

    def at(a: int) -> int:
        return regs[a - 20]

    return {
        "v1": at(20) * 0.1, "v2": at(21) * 0.1, "v3": at(22) * 0.1,
        "i1": at(26) * 0.01, "i2": at(27) * 0.01, "i3": at(28) * 0.01,
        "p": i32([at(36), at(37)], "ABCD") / 1000, "kwh": i32([at(62), at(63)], "ABCD") * 0.01,
    }  # fmt: skip


def read_dtsd1352(r: Reader) -> dict[str, float]:
    energy = r.holding(0x0000, 0x16)
    low = r.holding(0x0061, 0x2E)  # 0x61..0x8E
    power = r.holding(0x0164, 0x1C)  # 0x164..0x17F

    def lo(a: int) -> int:
        return low[a - 0x61]

    def pw(a: int) -> int:
        return power[a - 0x164]

    pt, ct = lo(0x8D), lo(0x8E)
    return {
        "pt": pt, "ct": ct,
        "v1": lo(0x61) * 0.1 * pt, "v2": lo(0x62) * 0.1 * pt, "v3": lo(0x63) * 0.1 * pt,
        "i1": lo(0x64) * 0.01 * ct, "i2": lo(0x65) * 0.01 * ct, "i3": lo(0x66) * 0.01 * ct,
        "hz": lo(0x77) * 0.01,
        "p": i32([pw(0x16A), pw(0x16B)], "ABCD") * pt * ct / 1000,
        "pf": i16(pw(0x17F)) * 0.001,
        "kwh": i32(energy[0x0A:0x0C], "ABCD", signed=False) * 0.01 * pt * ct,
    }  # fmt: skip


def read_xintai(r: Reader) -> dict[str, float]:
    regs = r.holding(0x0001, 0x1B)  # 1..0x1B

    def fl(a: int) -> float:
        return f32(regs[a - 1 : a + 1], "DCBA")

    return {
        # a little-endian device: its 16-bit status register is byte-swapped too
        "m3": fl(0x01), "reverse": fl(0x03), "flow": fl(0x05), "pipe": swap16(regs[0x07 - 1]),
        "mpa": fl(0x0A), "water_c": fl(0x0C), "battery": fl(0x1A),
    }  # fmt: skip


def read_tuf(r: Reader) -> dict[str, float]:
    regs = r.holding(0, 36)  # manual registers 1..36

    def real4(reg: int) -> float:  # manual numbering from 1
        return f32(regs[reg - 1 : reg + 1], "CDAB")

    def long(reg: int) -> int:
        return i32(regs[reg - 1 : reg + 1], "CDAB")

    return {
        "flow": real4(1), "gj_h": real4(3),
        "m3": long(9) + real4(11), "gj": long(17) + real4(19),
        "supply": real4(33), "return": real4(35),
    }  # fmt: skip


def read_belimo(r: Reader) -> dict[str, float]:
    regs = r.holding(4, 69)  # 4..72

    def at(a: int) -> int:
        return regs[a - 4]

    return {
        "position": at(4) * 0.0001, "l_s": at(7) * 0.001,
        "t1": i16(at(19)) * 0.01, "t2": i16(at(21)) * 0.01,
        "cool_w": i32([at(27), at(28)], "CDAB", signed=False),
        "cool_kwh": i32([at(65), at(66)], "CDAB", signed=False),
        "heat_kwh": i32([at(71), at(72)], "CDAB", signed=False),
    }  # fmt: skip


READERS = {
    "eastron-sdm630": read_eastron,
    "chint-dtsu666": read_chint,
    "acrel-adw300": read_adw300,
    "acrel-dtsd1352": read_dtsd1352,
    "xintai-water": read_xintai,
    "tuf2000m": read_tuf,
    "belimo-energy-valve": read_belimo,
}
COUNTER = {
    "eastron-sdm630": "kwh",
    "chint-dtsu666": "kwh",
    "acrel-adw300": "kwh",
    "acrel-dtsd1352": "kwh",
    "xintai-water": "m3",
    "tuf2000m": "gj",
    "belimo-energy-valve": "cool_kwh",
}


def read(served: Served, profile: str) -> dict[str, float]:
    r = Reader(served, METERS[profile])
    try:
        return READERS[profile](r)
    finally:
        r.close()


@pytest.mark.parametrize("profile", sorted(METERS))
def test_pymodbustcp_reads_plausible_values_at_the_datasheet_addresses(
    served: Served, profile: str
):
    v = read(served, profile)
    if "v1" in v:
        for phase in ("v1", "v2", "v3"):
            assert 198 <= v[phase] <= 242, (phase, v)  # 220 V +- 10 %
        if "hz" in v:
            assert 49.5 <= v["hz"] <= 50.5, v
        if "pf" in v:
            assert 0.5 <= v["pf"] <= 1.0, v
        assert v["p"] > 0, v
        # three phases: P = sum of V x I x pf, within the meters' rounding
        if "pf" in v:
            s = sum(v[f"v{k}"] * v[f"i{k}"] for k in (1, 2, 3)) * v["pf"] / 1000
            assert s == pytest.approx(v["p"], rel=0.05), v
    if profile == "acrel-dtsd1352":
        assert (v["pt"], v["ct"]) == (1, 400)
        assert v["i1"] > 100  # a 1250 kVA transformer at mid-morning: hundreds of amps
    if profile == "xintai-water":
        assert v["pipe"] == 0xAA
        assert 0.1 <= v["mpa"] <= 0.6
        assert v["flow"] > 0
        assert v["reverse"] == 0
        assert 3.0 <= v["battery"] <= 3.7
    if profile == "tuf2000m":
        assert 6 <= v["supply"] <= 8 < v["return"] <= 14  # chilled water, summer morning
        assert v["gj_h"] > 0
        assert v["flow"] > 0
    if profile == "belimo-energy-valve":
        assert 0 < v["position"] <= 1
        assert 6 <= v["t1"] <= 8 < v["t2"]
        assert v["cool_w"] > 0
    assert v[COUNTER[profile]] > 0


@pytest.mark.parametrize("profile", sorted(METERS))
def test_counters_grow_between_reads(served: Served, profile: str):
    first = read(served, profile)[COUNTER[profile]]
    served.clock.advance(QUARTER_MS)
    second = read(served, profile)[COUNTER[profile]]
    assert second > first


def test_a_unit_without_a_meter_gets_exception_11(served: Served):
    port, _ = served.endpoint("E-D01")
    client = ModbusClient(host="127.0.0.1", port=port, unit_id=250, timeout=5, auto_open=True)
    try:
        assert client.read_holding_registers(0, 2) is None
        assert client.last_except == 11  # gateway target device failed to respond
    finally:
        client.close()


def test_writes_are_refused(served: Served):
    port, unit = served.endpoint("E-D28")
    client = ModbusClient(host="127.0.0.1", port=port, unit_id=unit, timeout=5, auto_open=True)
    try:
        assert not client.write_single_register(20, 1234)
        assert client.last_except in (1, 2)
    finally:
        client.close()


# ------------------------------------------------------------------ mbpoll

_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)", re.MULTILINE)


def mbpoll(served: Served, meter_id: str, *args: str) -> list[str]:
    binary = require("mbpoll", "mbpoll")
    port, unit = served.endpoint(meter_id)
    done = subprocess.run(
        [
            binary,
            "-m",
            "tcp",
            "-p",
            str(port),
            "-a",
            str(unit),
            "-0",
            "-1",
            "-o",
            "5",
            *args,
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [value for _, value in _LINE.findall(done.stdout)]


def _hexwords(values: list[str]) -> list[int]:
    return [int(v, 16) for v in values]


MBPOLL = {
    # profile: (mbpoll arguments, decoder of its output, the same value via pyModbusTCP)
    "eastron-sdm630": (
        ["-t", "3:float", "-B", "-r", "0", "-c", "3"],
        lambda out: float(out[0]),
        "v1",
    ),
    "chint-dtsu666": (
        ["-t", "4:float", "-B", "-r", str(0x2006)],
        lambda out: float(out[0]) * 0.1,
        "v1",
    ),
    "acrel-adw300": (["-t", "4", "-r", "20", "-c", "3"], lambda out: int(out[0]) * 0.1, "v1"),
    "acrel-dtsd1352": (["-t", "4", "-r", str(0x8E)], lambda out: float(out[0]), "ct"),
    "xintai-water": (
        ["-t", "4:hex", "-r", "5", "-c", "2"],
        lambda out: f32(_hexwords(out), "DCBA"),
        "flow",
    ),
    "tuf2000m": (["-t", "4:float", "-r", "32"], lambda out: float(out[0]), "supply"),
    "belimo-energy-valve": (["-t", "4:int", "-r", "65"], lambda out: float(out[0]), "cool_kwh"),
}


@pytest.mark.parametrize("profile", sorted(METERS))
def test_mbpoll_reads_what_pymodbustcp_reads(served: Served, profile: str):
    args, decode, key = MBPOLL[profile]
    got = decode(mbpoll(served, METERS[profile], *args))
    expected = read(served, profile)[key]
    assert got == pytest.approx(expected, rel=1e-3, abs=0.01)


@pytest.mark.parametrize(
    ("meter", "args"),
    [
        ("E-D48", ["-t", "3:float", "-B", "-r", str(0x48)]),  # SDM630 import kWh, FC4
        ("E-TR1", ["-t", "4:int", "-B", "-r", str(0x0A)]),  # DTSD1352 import, uint32 ABCD
        ("H-EV-M1", ["-t", "4:int", "-r", "65"]),  # Belimo cooling kWh, low word first
    ],
)
def test_mbpoll_sees_counters_grow(served: Served, meter: str, args: list[str]):
    first = float(mbpoll(served, meter, *args)[0])
    served.clock.advance(QUARTER_MS)
    second = float(mbpoll(served, meter, *args)[0])
    assert second > first > 0


def test_mbpoll_on_a_unit_without_a_meter(served: Served):
    binary = require("mbpoll", "mbpoll")
    port, _ = served.endpoint("E-D01")
    done = subprocess.run(
        [
            binary,
            "-m",
            "tcp",
            "-p",
            str(port),
            "-a",
            "250",
            "-0",
            "-1",
            "-o",
            "5",
            "-r",
            "0",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "Target device failed to respond" in done.stdout + done.stderr


def test_the_servers_encoder_writes_what_decode_encode_writes():
    from collectors.modbus.decode import encode
    from collectors.profiles import load_profiles
    from simulators.modbus_server import encoder

    for profile in load_profiles().values():
        for f in profile.fields:
            spec = profile.spec(f)
            for value in (0.0, 0.5, 1.5, 2.5, 229.87, 12_345.678, 4.2e9, -3.26, -40_000.0):
                for pt, ct in ((1.0, 1.0), (1.0, 400.0), (10.0, 80.0)):
                    expected = encode(value, spec, pt=pt, ct=ct)
                    assert encoder(spec, pt, ct)(value) == expected, (
                        profile.name,
                        f.quantity,
                        value,
                    )

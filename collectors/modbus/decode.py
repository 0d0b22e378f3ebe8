"""Pure register decoding (and its inverse, for the simulators).

`decode(registers, spec)` turns the 16-bit registers a meter returned into an engineering
value: type, word/byte order, scale, offset and transformer ratios. It never touches its
input. Word/byte orders, for the bytes A B C D of a 32-bit value as the meter's manual
numbers them (A most significant):

    ABCD  big-endian, high word first            registers [AB, CD]
    CDAB  low word first ("word swap")           registers [CD, AB]
    BADC  bytes swapped inside each word         registers [BA, DC]
    DCBA  fully reversed (little-endian)         registers [DC, BA]

64-bit values extend the same rule word by word; 16-bit values only know "bytes swapped or
not" (BADC and DCBA swap, ABCD and CDAB do not).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class RegisterType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    INT32_FLOAT32 = "int32+float32"
    """TUF-2000M accumulators: a LONG integer part followed by a REAL4 fraction."""


class WordOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def low_word_first(self) -> bool:
        return self in (WordOrder.CDAB, WordOrder.DCBA)

    @property
    def bytes_swapped(self) -> bool:
        return self in (WordOrder.BADC, WordOrder.DCBA)


_STRUCT = {
    RegisterType.INT16: ("h", 1),
    RegisterType.UINT16: ("H", 1),
    RegisterType.INT32: ("i", 2),
    RegisterType.UINT32: ("I", 2),
    RegisterType.INT64: ("q", 4),
    RegisterType.UINT64: ("Q", 4),
    RegisterType.FLOAT32: ("f", 2),
    RegisterType.FLOAT64: ("d", 4),
}


class Transformer(StrEnum):
    NONE = ""
    PT = "pt"
    CT = "ct"
    PT_CT = "pt*ct"


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """Where a value lives and how it is written. Invalid specs cannot be built."""

    address: int
    type: RegisterType
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    transformer: Transformer = Transformer.NONE

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"register address {self.address} outside 0..65535")
        if self.address + self.count - 1 > 0xFFFF:
            raise ValueError(f"{self.type} at {self.address} runs past register 65535")
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError(
                f"scale {self.scale} / offset {self.offset} must be finite, scale != 0"
            )

    @property
    def count(self) -> int:
        """Registers the value occupies."""
        if self.type is RegisterType.INT32_FLOAT32:
            return 4
        return _STRUCT[self.type][1]

    def ratio(self, pt: float, ct: float) -> float:
        return {
            Transformer.NONE: 1.0,
            Transformer.PT: pt,
            Transformer.CT: ct,
            Transformer.PT_CT: pt * ct,
        }[self.transformer]


def _to_bytes(words: Sequence[int], order: WordOrder) -> bytes:
    ordered = list(reversed(words)) if order.low_word_first else list(words)
    out = bytearray()
    for w in ordered:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"register value {w} is not 16-bit")
        hi, lo = w >> 8, w & 0xFF
        out += bytes((lo, hi)) if order.bytes_swapped else bytes((hi, lo))
    return bytes(out)


def _from_bytes(raw: bytes, order: WordOrder) -> list[int]:
    words = []
    for i in range(0, len(raw), 2):
        hi, lo = raw[i], raw[i + 1]
        if order.bytes_swapped:
            hi, lo = lo, hi
        words.append(hi << 8 | lo)
    return list(reversed(words)) if order.low_word_first else words


def _raw_number(registers: Sequence[int], kind: RegisterType, order: WordOrder) -> float:
    if kind is RegisterType.INT32_FLOAT32:
        whole = _raw_number(registers[:2], RegisterType.INT32, order)
        fraction = _raw_number(registers[2:4], RegisterType.FLOAT32, order)
        return whole + fraction
    fmt, count = _STRUCT[kind]
    if len(registers) != count:
        raise ValueError(f"{kind} needs {count} registers, got {len(registers)}")
    value: float = struct.unpack(">" + fmt, _to_bytes(registers, order))[0]
    return value


def decode(
    registers: Sequence[int], spec: RegisterSpec, *, pt: float = 1.0, ct: float = 1.0
) -> float:
    """Engineering value of `registers` (exactly `spec.count` of them)."""
    if len(registers) != spec.count:
        raise ValueError(f"{spec.type} needs {spec.count} registers, got {len(registers)}")
    raw = _raw_number(registers, spec.type, spec.order)
    return (raw * spec.scale + spec.offset) * spec.ratio(pt, ct)


def encode(value: float, spec: RegisterSpec, *, pt: float = 1.0, ct: float = 1.0) -> list[int]:
    """Registers a meter would hold for `value` (the simulators' side of `decode`).

    Integer types round to the nearest step and saturate at the type's range.
    """
    raw = (value / spec.ratio(pt, ct) - spec.offset) / spec.scale
    if spec.type is RegisterType.INT32_FLOAT32:
        whole = math.floor(raw)
        whole = max(-(2**31), min(2**31 - 1, whole))
        return encode_raw(whole, RegisterType.INT32, spec.order) + encode_raw(
            raw - whole, RegisterType.FLOAT32, spec.order
        )
    return encode_raw(raw, spec.type, spec.order)


def encode_raw(raw: float, kind: RegisterType, order: WordOrder) -> list[int]:
    fmt, _ = _STRUCT[kind]
    if fmt in "fd":
        packed = struct.pack(">" + fmt, raw)
    else:
        bits = struct.calcsize(fmt) * 8
        lo, hi = (0, 2**bits - 1) if fmt.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        packed = struct.pack(">" + fmt, max(lo, min(hi, round(raw))))
    return _from_bytes(packed, order)


@dataclass(frozen=True, slots=True)
class StringSpec:
    """An identification string (serial number, model name): `count` registers, two ASCII
    characters each, high byte first unless the order swaps bytes; NULs and spaces trimmed."""

    address: int
    count: int
    order: WordOrder = WordOrder.ABCD

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF or not 1 <= self.count <= 125:
            raise ValueError(f"string at {self.address} x {self.count}: outside the register space")
        if self.address + self.count - 1 > 0xFFFF:
            raise ValueError(f"string at {self.address} runs past register 65535")


def decode_string(registers: Sequence[int], spec: StringSpec) -> str:
    if len(registers) != spec.count:
        raise ValueError(f"string needs {spec.count} registers, got {len(registers)}")
    raw = bytearray()
    for w in registers:
        hi, lo = w >> 8 & 0xFF, w & 0xFF
        raw += bytes((lo, hi)) if spec.order.bytes_swapped else bytes((hi, lo))
    return raw.decode("ascii", errors="replace").strip("\x00 ").replace("\x00", "")

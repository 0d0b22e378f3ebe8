"""Keyed, random-access noise: the same (key, index) gives the same number, always.

The simulators never draw noise in sequence from a generator whose state depends on how
far it has run: a value at 2025-03-04 10:15 would then depend on where the request
started. Every noise value is instead a pure hash of a key (seed, stream, meter) and an
absolute index (the quarter hour or minute since the Unix epoch), so a history from
January and one from June agree on June, and a live meter agrees with both.

The hash is SplitMix64's finaliser. `noise()` is the sum of two uniforms, centred and
scaled to unit variance: a triangular distribution bounded at +-sqrt(6), which is what a
load's jitter looks like (no 5-sigma outliers; spikes are a fault, injected on purpose).
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_INV32 = 1.0 / 4_294_967_296.0
_SQRT6 = float(np.sqrt(6.0))

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]


def key(*parts: object) -> int:
    """A 64-bit key from any parts (seed, stream name, meter id, ...), stable across runs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def hash64(keys: npt.ArrayLike, index: npt.ArrayLike) -> U64:
    """SplitMix64 of key + (index + 1) * golden, broadcasting keys against indices."""
    k = np.asarray(keys, dtype=np.uint64)
    i = np.asarray(index, dtype=np.int64).astype(np.uint64)
    x = (i + np.uint64(1)) * _GOLDEN + k
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    out: U64 = x ^ (x >> _S31)
    return out


def uniform(keys: npt.ArrayLike, index: npt.ArrayLike) -> F64:
    """Uniform on [0, 1)."""
    h = hash64(keys, index)
    out: F64 = (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9_007_199_254_740_992.0)
    return out


def noise(keys: npt.ArrayLike, index: npt.ArrayLike) -> F64:
    """Zero mean, unit variance, bounded (triangular on +-sqrt(6))."""
    h = hash64(keys, index)
    a = (h & _LOW32).astype(np.float64)
    b = (h >> _S32).astype(np.float64)
    out: F64 = ((a + b) * _INV32 - 1.0) * _SQRT6
    return out


def uniform4(keys: npt.ArrayLike, index: npt.ArrayLike) -> F64:
    """Four uniforms on [0, 1) (16-bit resolution) per (key, index), on a new last axis:
    a quarter-hour's white noise from one hash per hour."""
    h = hash64(keys, index)
    out: F64 = np.empty((*h.shape, 4))
    for k in range(4):
        out[..., k] = (h >> np.uint64(16 * k)) & np.uint64(0xFFFF)
    out *= 1.0 / 65536.0
    return out

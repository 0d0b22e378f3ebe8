"""The change-point search shared by the daily and the billing models.

A candidate is a set of base columns `D` (the intercepts of the day types, and for billing
the working-day share) plus at most one heating feature (a function of a heating change point)
and one cooling feature (of a cooling change point). For every change point on a grid the
features are rows of `H` and `C`; the normal equations of all candidates are assembled from a
handful of matrix products (X'X and X'y by blocks: D'D, D'H, D'C, H·H, C·C, H·C', ...) and
solved in one batched `numpy.linalg.solve`, so a grid of hundreds of (heating, cooling) pairs
costs about as much as one least-squares fit. SSE comes from the solution
(SSE = y'Wy - b'X'Wy), the usual identity of least squares.

Physically signed slopes: a candidate whose heating or cooling coefficient is not positive
(more energy further from the change point) is rejected, as in CalTRACK 3.4.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Candidate:
    """The best solution of one family: SSE, coefficients (D's, then heating, then cooling)
    and the grid indices of its change points (-1 where the family has none)."""

    sse: float
    coef: FloatArray
    heat_index: int
    cool_index: int


@dataclass(frozen=True, slots=True)
class Blocks:
    """Weighted cross products of the base columns, the target and the feature families."""

    dtd: FloatArray
    dty: FloatArray
    yy: float
    dth: FloatArray | None = None
    hh: FloatArray | None = None
    hy: FloatArray | None = None
    dtc: FloatArray | None = None
    cc: FloatArray | None = None
    cy: FloatArray | None = None
    hc: FloatArray | None = None


def blocks(
    d: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    h: FloatArray | None,
    c: FloatArray | None,
) -> Blocks:
    """Cross products for base columns `d` (n, k), target `y` (n,), weights `w` (n,) or None,
    heating features `h` (g_h, n) and cooling features `c` (g_c, n)."""
    dw = d if w is None else d * w[:, None]
    yw = y if w is None else y * w
    dth = hh = hy = dtc = cc = cy = hc = None
    if h is not None:
        hw = h if w is None else h * w
        dth = dw.T @ h.T
        hh = np.einsum("ij,ij->i", hw, h)
        hy = h @ yw
    if c is not None:
        cw = c if w is None else c * w
        dtc = dw.T @ c.T
        cc = np.einsum("ij,ij->i", cw, c)
        cy = c @ yw
        if h is not None:
            hc = (h if w is None else h * w) @ c.T
    return Blocks(d.T @ dw, d.T @ yw, float(y @ yw), dth, hh, hy, dtc, cc, cy, hc)


def solve(b: Blocks, heat: IntArray | None, cool: IntArray | None) -> Candidate | None:
    """Best physically signed solution over candidate pairs (heat[i], cool[i]) of grid
    indices (None: the family has no such feature). None when no candidate qualifies."""
    k = b.dtd.shape[0]
    n_cand = len(heat) if heat is not None else len(cool) if cool is not None else 1
    q = k + (heat is not None) + (cool is not None)
    gram = np.empty((n_cand, q, q))
    rhs = np.empty((n_cand, q))
    gram[:, :k, :k] = b.dtd
    rhs[:, :k] = b.dty
    col = k
    if heat is not None:
        assert b.dth is not None
        assert b.hh is not None
        assert b.hy is not None
        gram[:, :k, col] = b.dth[:, heat].T
        gram[:, col, :k] = b.dth[:, heat].T
        gram[:, col, col] = b.hh[heat]
        rhs[:, col] = b.hy[heat]
        col += 1
    if cool is not None:
        assert b.dtc is not None
        assert b.cc is not None
        assert b.cy is not None
        gram[:, :k, col] = b.dtc[:, cool].T
        gram[:, col, :k] = b.dtc[:, cool].T
        gram[:, col, col] = b.cc[cool]
        rhs[:, col] = b.cy[cool]
        if heat is not None:
            assert b.hc is not None
            gram[:, col - 1, col] = b.hc[heat, cool]
            gram[:, col, col - 1] = b.hc[heat, cool]
    coef = _batched_solve(gram, rhs)
    sse: FloatArray = b.yy - np.einsum("ij,ij->i", coef, rhs)
    ok = np.all(np.isfinite(coef), axis=1)
    if heat is not None or cool is not None:
        ok &= np.all(coef[:, k:] > 0, axis=1)  # physically signed slopes
    if not ok.any():
        return None
    sse = np.where(ok, sse, np.inf)
    best = int(np.argmin(sse))
    return Candidate(
        sse=max(float(sse[best]), 0.0),
        coef=coef[best].copy(),
        heat_index=int(heat[best]) if heat is not None else -1,
        cool_index=int(cool[best]) if cool is not None else -1,
    )


def _batched_solve(gram: FloatArray, rhs: FloatArray) -> FloatArray:
    try:
        solved = np.asarray(np.linalg.solve(gram, rhs[..., None])[..., 0], dtype=np.float64)
        return solved
    except np.linalg.LinAlgError:
        # A singular candidate (a hinge with no point beyond it): solve one by one, NaN for it.
        out = np.full(rhs.shape, np.nan, dtype=np.float64)
        for i in range(len(gram)):
            try:
                out[i] = np.linalg.solve(gram[i], rhs[i])
            except np.linalg.LinAlgError:
                continue
        return out


def coarse_grid(lo: float, hi: float, step: float) -> FloatArray:
    """Change points lo..hi every `step`, on multiples of `step`, ends included."""
    if not np.isfinite(lo) or not np.isfinite(hi) or hi < lo:
        return np.empty(0)
    first = np.ceil(lo / step) * step
    grid = np.arange(first, hi + 1e-9, step)
    if len(grid) == 0:
        grid = np.array([(lo + hi) / 2.0])
    return np.asarray(np.round(grid, 6), dtype=np.float64)


def fine_grid(centre: float, half_width: float, step: float, lo: float, hi: float) -> FloatArray:
    """Change points around `centre` every `step` within [lo, hi]."""
    grid = np.asarray(np.round(centre + np.arange(-half_width, half_width + 1e-9, step), 6))
    return np.asarray(grid[(grid >= lo - 1e-9) & (grid <= hi + 1e-9)], dtype=np.float64)

"""The change-point search shared by the daily and the billing models.

A candidate is a set of base columns `D` (the intercepts of the day types, and for billing
the working-day share) plus at most one heating feature (a function of a heating change point)
and one cooling feature (of a cooling change point). For every change point on a grid the
features are rows of `H` and `C`; the normal equations of all candidates are assembled from a
handful of matrix products (X'X and X'y by blocks: D'D, D'H, D'C, H·H, C·C, H·C', ...) and
solved in one batched `numpy.linalg.solve`, so a grid of hundreds of (heating, cooling) pairs
costs about as much as one least-squares fit: the base columns are partialled out once and
each candidate is a 1 x 1 or 2 x 2 system solved in closed form, vectorised over candidates.
SSE comes from the solution (SSE = y'My - b'X'My), the usual identity of least squares.

Physically signed slopes: a candidate whose heating or cooling coefficient is not positive
(more energy further from the change point) is rejected, as in CalTRACK 3.4.3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    dtd_inv: FloatArray = field(default_factory=lambda: np.empty((0, 0)))


def blocks(
    d: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    h: FloatArray | None,
    c: FloatArray | None,
    dtd_inv: FloatArray | None = None,
) -> Blocks:
    """Cross products for base columns `d` (n, k), target `y` (n,), weights `w` (n,) or None,
    heating features `h` (g_h, n) and cooling features `c` (g_c, n); `dtd_inv` spares the
    inversion of D'WD when the caller already has it (the same base columns, another grid)."""
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
    dtd = d.T @ dw
    inv = np.asarray(np.linalg.inv(dtd) if dtd_inv is None else dtd_inv, dtype=np.float64)
    return Blocks(dtd, d.T @ yw, float(y @ yw), dth, hh, hy, dtc, cc, cy, hc, inv)


def solve(
    b: Blocks, heat: IntArray | None, cool: IntArray | None, *, signed: bool = True
) -> Candidate | None:
    """Best solution over candidate pairs (heat[i], cool[i]) of grid indices (None: the family
    has no such feature), physically signed unless `signed` is False. None when none qualifies.

    The base columns are partialled out once (Frisch-Waugh-Lovell: M = I - D (D'D)^-1 D'), which
    leaves at most a 2 x 2 system per candidate, solved in closed form for all candidates at
    once: no per-candidate LAPACK call.
    """
    dtd_inv = b.dtd_inv
    beta_d = dtd_inv @ b.dty
    ymy = b.yy - float(b.dty @ beta_d)
    k = b.dtd.shape[0]
    if heat is None and cool is None:
        return Candidate(max(ymy, 0.0), np.asarray(beta_d, dtype=np.float64), -1, -1)
    feats: list[tuple[FloatArray, FloatArray, FloatArray]] = []  # (D'x, x'Mx, x'My) per family
    if heat is not None:
        assert b.dth is not None
        assert b.hh is not None
        assert b.hy is not None
        dx = b.dth[:, heat]
        feats.append(
            (dx, b.hh[heat] - np.sum(dx * (dtd_inv @ dx), axis=0), b.hy[heat] - beta_d @ dx)
        )
    if cool is not None:
        assert b.dtc is not None
        assert b.cc is not None
        assert b.cy is not None
        dx = b.dtc[:, cool]
        feats.append(
            (dx, b.cc[cool] - np.sum(dx * (dtd_inv @ dx), axis=0), b.cy[cool] - beta_d @ dx)
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        if len(feats) == 1:
            _, xmx, xmy = feats[0]
            ok = xmx > 1e-12 * max(float(np.max(np.abs(xmx))), 1e-300)
            slope = np.where(ok, xmy / xmx, np.nan)
            slopes = slope[None, :]
            reduction = slope * xmy
        else:
            assert b.hc is not None
            assert heat is not None
            assert cool is not None
            (dh, hmh, hmy), (dc, cmc, cmy) = feats
            hmc = b.hc[heat, cool] - np.sum(dh * (dtd_inv @ dc), axis=0)
            det = hmh * cmc - hmc * hmc
            ok = det > 1e-10 * np.maximum(hmh * cmc, 1e-300)
            bh = np.where(ok, (cmc * hmy - hmc * cmy) / det, np.nan)
            bc = np.where(ok, (hmh * cmy - hmc * hmy) / det, np.nan)
            slopes = np.stack([bh, bc])
            reduction = bh * hmy + bc * cmy
    sse = ymy - reduction
    ok = ok & np.all(np.isfinite(slopes), axis=0)
    if signed:
        ok &= np.all(slopes > 0, axis=0)  # physically signed slopes
    if not ok.any():
        return None
    best = int(np.argmin(np.where(ok, sse, np.inf)))
    chosen = slopes[:, best]
    # The base coefficients of the best candidate: (D'D)^-1 (D'y - D'x b).
    shift = np.zeros(k)
    for i, f in enumerate(feats):
        shift += f[0][:, best] * chosen[i]
    coef = np.concatenate([beta_d - dtd_inv @ shift, chosen])
    return Candidate(
        sse=max(float(sse[best]), 0.0),
        coef=np.asarray(coef, dtype=np.float64),
        heat_index=int(heat[best]) if heat is not None else -1,
        cool_index=int(cool[best]) if cool is not None else -1,
    )


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

"""Windows where a margin is positive: grid scan, hidden-maximum check, root refinement.

A *margin* is a function of time that is positive inside a window (elevation minus mask,
ISL visibility margin, shadow function). It is evaluated on a coarse grid for many rows
(satellites, pairs, stations) at once. A window is a run of grid points above zero; a
window short enough to fall between two grid points shows up as a local maximum of the
margin just below zero, so every such maximum within ``near`` of zero is refined too.
Boundaries are refined by the Illinois method (a bracketing regula falsi; Dowell and
Jarratt, BIT 11 (1971) 168-174) to 0.1 ms; maxima by golden-section search down to 0.5 s
and a final parabola. Every refinement step is one numpy evaluation over all brackets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CROSSING_TOL_S = 1e-4  # Illinois iterations stop when no estimate moves more
PEAK_TOL_S = 0.5  # then a parabola through the three best samples

# margin(rows, times[rows, k]) -> values[rows, k]: positive inside a window.
Margin = Callable[[np.ndarray, np.ndarray], np.ndarray]


def refine_crossings(margin: Margin, rows: np.ndarray, lo: np.ndarray,
                      hi: np.ndarray) -> np.ndarray:
    """The time in each bracket ``[lo, hi]`` where ``margin`` changes sign, by the
    Illinois (modified regula falsi) method: it keeps a bracket, so it cannot leave it,
    and converges superlinearly; iterations stop when no estimate moves by more than
    ``CROSSING_TOL_S``."""
    a, b = lo.astype(float).copy(), hi.astype(float).copy()
    if len(rows) == 0:
        return a

    def f(t: np.ndarray) -> np.ndarray:
        return np.nan_to_num(margin(rows, t[:, None])[:, 0], nan=-1e9)

    fa, fb = f(a), f(b)
    c = (a + b) / 2
    for _ in range(60):
        den = fb - fa
        new = np.where(den != 0, (a * fb - b * fa) / np.where(den != 0, den, 1.0), (a + b) / 2)
        new = np.clip(new, np.minimum(a, b), np.maximum(a, b))
        moved = np.max(np.abs(new - c))
        c = new
        if moved < CROSSING_TOL_S:
            break
        fc = f(c)
        flip = (fc > 0) != (fb > 0)
        a, fa = np.where(flip, b, a), np.where(flip, fb, fa / 2)
        b, fb = c, fc
    return c


def refine_maxima(margin: Margin, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(time, value) of the maximum of ``margin`` in each bracket ``[lo, hi]`` (unimodal
    there): golden-section search down to ``PEAK_TOL_S``, then a parabola through three
    samples around the best point."""
    a, b = lo.astype(float).copy(), hi.astype(float).copy()
    if len(rows) == 0:
        return a, a

    def f(t: np.ndarray) -> np.ndarray:
        return np.nan_to_num(margin(rows, np.clip(t, lo, hi)[:, None])[:, 0], nan=-1e9)

    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while np.max(b - a) > PEAK_TOL_S:
        left = fc > fd  # the maximum is in [a, d]
        a, b = np.where(left, a, c), np.where(left, d, b)
        new = np.where(left, b - g * (b - a), a + g * (b - a))
        fn = f(new)
        c, d, fc, fd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, fn, fd), np.where(left, fc, fn))
    x = np.where(fc > fd, c, d)
    h = (b - a) / 2
    y0, y1, y2 = f(x - h), np.maximum(fc, fd), f(x + h)
    den = y0 - 2 * y1 + y2
    off = np.where(den < 0, 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
    off = np.clip(off, -1, 1)
    value = y1 - 0.25 * (y0 - y2) * off
    return np.clip(x + off * h, lo, hi), np.maximum(value, y1)


@dataclass(frozen=True)
class Window:
    row: int
    start: float
    end: float
    peak_time: float
    peak: float


def windows(margin: Margin, grid_t: np.ndarray, grid_f: np.ndarray, near: float,
             peaks: bool = True) -> list[Window]:
    """Windows where ``margin > 0`` for each row of ``grid_f`` (rows x grid times),
    clipped to the grid's span; with the refined maximum of each if ``peaks``."""
    n_rows, n = grid_f.shape
    f = np.nan_to_num(grid_f, nan=-1e9)
    above = f > 0
    # Runs of grid points above the limit.
    pad = np.zeros((n_rows, 1), dtype=bool)
    edges = np.diff(np.concatenate((pad, above, pad), axis=1).astype(np.int8), axis=1)
    r_rows, r_first = np.nonzero(edges == 1)
    _e_rows, r_after = np.nonzero(edges == -1)
    r_last = r_after - 1
    # Hidden windows: local maxima just below the limit (the grid's end points count
    # as maxima when they are higher than their one neighbour).
    wall = np.full((n_rows, 1), -np.inf)
    fp = np.concatenate((wall, f, wall), axis=1)
    local = (f > fp[:, :-2]) & (f >= fp[:, 2:]) & (f <= 0) & (f > -near)
    h_rows, h_idx = np.nonzero(local)
    h_lo = grid_t[np.maximum(h_idx - 1, 0)]
    h_hi = grid_t[np.minimum(h_idx + 1, n - 1)]
    h_t, h_val = refine_maxima(margin, h_rows, h_lo, h_hi)
    hit = h_val > 0
    h_rows, h_t, h_val, h_lo, h_hi = h_rows[hit], h_t[hit], h_val[hit], h_lo[hit], h_hi[hit]

    # Peaks of the runs: the best grid point, then refined around it.
    if peaks:
        masked = np.where(above, f, -np.inf)
        peak_idx = np.array([r_first[i] + int(np.argmax(masked[r, r_first[i]:r_last[i] + 1]))
                             for i, r in enumerate(r_rows)], dtype=int)
        p_lo = grid_t[np.maximum(peak_idx - 1, 0)]
        p_hi = grid_t[np.minimum(peak_idx + 1, n - 1)]
        p_t, p_val = refine_maxima(margin, r_rows, p_lo, p_hi)
    else:
        p_t = p_val = np.full(len(r_rows), np.nan)
    # Crossings: starts of runs (unless at the grid start), ends (unless at grid end),
    # and both sides of hidden windows.
    s_need = r_first > 0
    e_need = r_last < n - 1
    rows_c = np.concatenate((r_rows[s_need], r_rows[e_need], h_rows, h_rows))
    lo_c = np.concatenate((grid_t[r_first[s_need] - 1], grid_t[r_last[e_need]], h_lo, h_t))
    hi_c = np.concatenate((grid_t[r_first[s_need]], grid_t[r_last[e_need] + 1], h_t, h_hi))
    cross = refine_crossings(margin, rows_c, lo_c, hi_c)
    k1, k2, k3 = s_need.sum(), s_need.sum() + e_need.sum(), s_need.sum() + e_need.sum() + len(
        h_rows)
    starts = np.full(len(r_rows), grid_t[0])
    starts[s_need] = cross[:k1]
    ends = np.full(len(r_rows), grid_t[-1])
    ends[e_need] = cross[k1:k2]
    out = [Window(int(r), float(a), float(b), float(pt), float(pv))
           for r, a, b, pt, pv in zip(r_rows, starts, ends, p_t, p_val, strict=True)]
    out += [Window(int(r), float(a), float(b), float(pt), float(pv))
            for r, a, b, pt, pv in zip(h_rows, cross[k2:k3], cross[k3:], h_t, h_val,
                                       strict=True)]
    return [w for w in out if w.end > w.start]


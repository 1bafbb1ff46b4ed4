"""Inter-satellite visibility: two satellites in line of sight and within range.

Two satellites see each other when the segment between them stays clear of a sphere of
the Earth's equatorial radius plus an atmosphere margin (default 100 km; the equatorial
radius is the conservative choice for an oblate Earth) and their range is at most
``max_range_km``. The visibility margin ``min(clearance - radius, max_range - range)`` is
handled like elevation-minus-mask (:mod:`sim_link.roots`; near-limit band
``NEAR_LIMIT_KM_PER_S * step``: it has kinks, so the band is linear in the step, sized for
relative speeds up to 20 km/s). Times are UNIX seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sim_link.frames import WGS84_A_KM
from sim_link.propagation import DEFAULT_STEP_S, Ephemeris, Propagator, time_grid
from sim_link.roots import windows
from sim_link.tle import Tle

EARTH_RADIUS_KM = WGS84_A_KM  # equatorial radius used for ISL Earth clearance
NEAR_LIMIT_KM_PER_S = 20.0  # the same for the ISL visibility margin


@dataclass(frozen=True)
class IslWindow:
    """Two satellites in line of sight (clear of Earth + margin) and within range."""

    satellite_a: str
    satellite_b: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def segment_clearance(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Minimum distance (km) from the Earth's centre to the segments ``r1[..]-r2[..]``."""
    d = r2 - r1
    dd = np.einsum("...i,...i->...", d, d)
    u = np.clip(-np.einsum("...i,...i->...", r1, d) / np.where(dd > 0, dd, 1.0), 0, 1)
    p = r1 + u[..., None] * d
    return np.sqrt(np.einsum("...i,...i->...", p, p))


def isl_margin(r1: np.ndarray, r2: np.ndarray, max_range_km: float,
               atmosphere_km: float = 100.0) -> np.ndarray:
    """Visibility margin (km): positive when the link exists."""
    d = r2 - r1
    rng = np.sqrt(np.einsum("...i,...i->...", d, d))
    clear = segment_clearance(r1, r2) - (EARTH_RADIUS_KM + atmosphere_km)
    return np.minimum(clear, max_range_km - rng)


def find_isl_windows(tles: Sequence[Tle] | Propagator, start: float, end: float,
                     max_range_km: float, atmosphere_km: float = 100.0,
                     step: float = DEFAULT_STEP_S,
                     pairs: Iterable[tuple[int, int]] | None = None) -> list[IslWindow]:
    """Visibility windows of every pair of satellites (or of ``pairs``, indices into
    ``tles``) in ``[start, end]``, sorted by start."""
    prop = tles if isinstance(tles, Propagator) else Propagator(tles)
    return isl_windows_on(Ephemeris(prop, time_grid(start, end, step)), max_range_km,
                          atmosphere_km, pairs)


def isl_windows_on(eph: Ephemeris, max_range_km: float, atmosphere_km: float = 100.0,
                   pairs: Iterable[tuple[int, int]] | None = None) -> list[IslWindow]:
    """:func:`find_isl_windows` over the span of an existing ephemeris grid."""
    prop = eph.prop
    n = len(prop.tles)
    grid_t, r = eph.t, eph.r
    near = NEAR_LIMIT_KM_PER_S * eph.step
    if pairs is None:
        pair_arr = np.array([(i, j) for i in range(n) for j in range(i + 1, n)], dtype=int)
    else:
        pair_arr = np.array(list(pairs), dtype=int).reshape(-1, 2)
    out: list[IslWindow] = []
    chunk = max(1, 2_000_000 // len(grid_t))
    for c in range(0, len(pair_arr), chunk):
        pc = pair_arr[c:c + chunk]
        grid_f = isl_margin(r[pc[:, 0]], r[pc[:, 1]], max_range_km, atmosphere_km)

        def margin(rows: np.ndarray, times: np.ndarray, pc: np.ndarray = pc
                   ) -> np.ndarray:
            ra = eph.teme(pc[rows, 0], times)
            rb = eph.teme(pc[rows, 1], times)
            return isl_margin(ra, rb, max_range_km, atmosphere_km)

        for w in windows(margin, grid_t, grid_f, near, peaks=False):
            a, b = pc[w.row]
            out.append(IslWindow(prop.tles[a].name, prop.tles[b].name, w.start, w.end))
    return sorted(out, key=lambda w: (w.start, w.satellite_a, w.satellite_b))


def isl_ranges(prop: Propagator, a: int, b: int, times: np.ndarray) -> np.ndarray:
    """Ranges (km) between satellites ``a`` and ``b`` at ``times``."""
    times = np.asarray(times, dtype=float)
    ra = prop.teme_at(np.full(len(times), a), times)
    rb = prop.teme_at(np.full(len(times), b), times)
    return np.linalg.norm(rb - ra, axis=-1)


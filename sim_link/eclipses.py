"""Eclipses: when the Earth hides the Sun from each satellite (conical shadow model).

The conical model of Montenbruck and Gill, "Satellite Orbits" (2000), sec. 3.4.2: seen
from the satellite at ``r`` (geocentric, TEME) with the Sun at ``s``
(:func:`sim_link.sun.sun_position_km`, in TEME too), the Earth's disc has
the apparent radius ``rho_E = asin(R_E / |r|)``, the Sun's ``rho_S = asin(R_S / |s - r|)``,
and their centres are ``theta`` apart. Then

* **penumbra**: ``theta < rho_E + rho_S`` -- some of the Sun's disc is hidden;
* **shadow**: ``theta < rho_E`` -- the Sun's *centre* is hidden. This is what "in shadow"
  means in the plan, in ``orbital link next`` and for sunlit intervals; it is also exactly
  skyfield's ``is_sunlit`` (a point Sun behind a spherical Earth), which the boundaries
  are tested against (within 1 s, ``tests/test_eclipses.py``);
* **umbra**: ``theta < rho_E - rho_S`` -- all of it is hidden.

A LEO satellite crosses the half of the penumbra on either side of the shadow boundary
in a few seconds (about 5 s at 550 km and 10 s for the ISS-like orbit in the tests; more
at high beta angles). The Earth is a sphere of the WGS84 equatorial radius
(skyfield uses 6378.1366 km; 0.4 m apart); its oblateness (up to 21 km less over the
poles, up to ~3 s earlier exit/later entry there) and the atmosphere's refraction and
absorption are ignored, so the boundaries are geometric. A passage through the penumbra
that never hides the Sun's centre is not listed.

Each margin (``rho_E +- rho_S - theta``, degrees; positive in shadow) is evaluated on the
ephemeris grid for every satellite at once and its windows are root-found by
:mod:`sim_link.roots` to 0.1 ms (of the model). The angle changes at about the orbital
rate (< 0.07 deg/s in LEO), so maxima within ``NEAR_SHADOW_DEG_PER_S * step`` below zero
are refined too: a grazing eclipse shorter than the grid step is still found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim_link.frames import WGS84_A_KM
from sim_link.plan import Eclipse, EclipseTable
from sim_link.propagation import DEFAULT_STEP_S, Ephemeris, Propagator, time_grid
from sim_link.roots import Window, windows
from sim_link.sun import SUN_RADIUS_KM, sun_position_km
from sim_link.tle import Tle

EARTH_RADIUS_KM = WGS84_A_KM
NEAR_SHADOW_DEG_PER_S = 0.1  # refine shadow-function maxima within this x step below 0


def shadow_angles(r: np.ndarray, sun: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(theta, rho_E, rho_S)`` in degrees for geocentric TEME positions ``r[..., 3]``
    (km) with the Sun at ``sun[..., 3]`` (km, TEME; broadcast against ``r``)."""
    d = sun - r  # satellite -> Sun
    r_len = np.linalg.norm(r, axis=-1)
    d_len = np.linalg.norm(d, axis=-1)
    theta = np.arctan2(np.linalg.norm(np.cross(d, r), axis=-1),
                       -np.einsum("...i,...i->...", d, r))
    rho_e = np.arcsin(np.clip(EARTH_RADIUS_KM / r_len, -1, 1))
    rho_s = np.arcsin(SUN_RADIUS_KM / d_len)
    return np.degrees(theta), np.degrees(rho_e), np.degrees(rho_s)


def shadow_margin(r: np.ndarray, sun: np.ndarray, sign: int = 0) -> np.ndarray:
    """``rho_E + sign * rho_S - theta`` (degrees; positive inside): the penumbra
    (``sign`` +1), the shadow (0) or the umbra (-1) at positions ``r``, Sun at ``sun``."""
    theta, rho_e, rho_s = shadow_angles(r, sun)
    return rho_e + sign * rho_s - theta


class SunGrid:
    """The Sun on the ephemeris grid, linearly interpolated between grid points: over
    60 s the Sun's direction turns 0.04 degrees, and the chord leaves the arc by 0.01
    milliarcseconds, so the VSOP87 series runs once per grid time, not per refinement."""

    def __init__(self, grid_t: np.ndarray) -> None:
        self.t = np.asarray(grid_t, dtype=float)
        self.step = float(self.t[1] - self.t[0])
        self.r = sun_position_km(self.t)

    def at(self, times: np.ndarray) -> np.ndarray:
        """Sun positions ``(..., 3)`` km at ``times`` within the grid."""
        u = (np.asarray(times, dtype=float) - self.t[0]) / self.step
        j = np.clip(np.floor(u).astype(int), 0, len(self.t) - 2)
        x = (u - j)[..., None]
        return self.r[j] * (1 - x) + self.r[j + 1] * x


def find_eclipses(tles: Sequence[Tle] | Propagator, start: float, end: float,
                  step: float = DEFAULT_STEP_S) -> EclipseTable:
    """Every eclipse of every satellite in ``[start, end]`` (UNIX seconds)."""
    prop = tles if isinstance(tles, Propagator) else Propagator(tles)
    return eclipses_on(Ephemeris(prop, time_grid(start, end, step)))


def eclipses_on(eph: Ephemeris, names: Sequence[str] | None = None) -> EclipseTable:
    """:func:`find_eclipses` over the span of an existing ephemeris grid; ``names``
    (default: the TLE names) name the satellites in the table."""
    sats = list(names) if names is not None else [t.name for t in eph.prop.tles]
    if len(sats) != len(eph.prop.tles):
        raise ValueError(f"{len(sats)} names for {len(eph.prop.tles)} satellites")
    grid_t = eph.t
    near = NEAR_SHADOW_DEG_PER_S * eph.step
    sun = SunGrid(grid_t)
    found: dict[int, dict[int, list[Window]]] = {}
    for sign in (1, 0, -1):

        def margin(rows: np.ndarray, times: np.ndarray, sign: int = sign) -> np.ndarray:
            return shadow_margin(eph.teme(rows, times), sun.at(times), sign)

        by_row: dict[int, list[Window]] = {}
        for w in windows(margin, grid_t, shadow_margin(eph.r, sun.r[None, :], sign), near,
                         peaks=False):
            by_row.setdefault(w.row, []).append(w)
        found[sign] = by_row
    out = []
    for row, shadows in found[0].items():
        for w in shadows:
            mid = (w.start + w.end) / 2
            pen = _around(found[1].get(row, []), mid) or w
            umbra = _around(found[-1].get(row, []), mid)
            u_start, u_end = (None, None) if umbra is None else (
                max(umbra.start, w.start), min(umbra.end, w.end))
            if u_start is not None and u_end is not None and not u_end > u_start:
                u_start = u_end = None
            out.append(Eclipse(sats[row], w.start, w.end, min(pen.start, w.start),
                               max(pen.end, w.end), u_start, u_end))
    return EclipseTable(float(grid_t[0]), float(grid_t[-1]), tuple(sats), tuple(out))


def _around(ws: list[Window], t: float) -> Window | None:
    """The window in ``ws`` that contains ``t``."""
    return next((w for w in ws if w.start <= t <= w.end), None)


def shadow_fraction(table: EclipseTable, satellite: str) -> float:
    """The fraction of the span ``satellite`` spends with the Sun's centre hidden."""
    return sum(e.duration for e in table.of(satellite)) / (table.end - table.start)

"""Ground-station passes: when a satellite is above a station's elevation mask.

Elevation-minus-mask is evaluated on the ephemeris grid (default 60 s) for every
satellite, time and station at once and windows are found by :mod:`sim_link.roots`.
Maxima within ``NEAR_MASK_DEG_PER_S * step`` (6 degrees at 60 s) below the mask are
refined too. (Around its culmination the elevation is close to a parabola,
``e_max - k t^2 / 2``; a LEO pass that culminates near a mask of up to ~60 degrees has k
below ~3e-3 deg/s^2, so half a 60 s step from the peak it has lost less than 1.4
degrees.)

**Masks above 60 degrees.** Near the zenith the elevation of a LEO satellite changes by
up to ~1 deg/s, so a pass that culminates just above a high mask can lie between grid
points whose elevations are tens of degrees below it (a 10 s pass above 85 degrees has
60 s neighbours near 60 degrees). For such a station the windows are searched above
``GRID_MASK_LIMIT_DEG`` (60 degrees, where the argument above holds), and inside each one
whose culmination clears the real mask, AOS and LOS are root-found between the window's
edges and the culmination (the elevation rises, then falls, within a pass). Times are
UNIX seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim_link.frames import Station, look, teme_to_ecef
from sim_link.propagation import DEFAULT_STEP_S, Ephemeris, Propagator, time_grid
from sim_link.roots import Margin, Window, refine_crossings, windows
from sim_link.tle import Tle

NEAR_MASK_DEG_PER_S = 0.1  # refine elevation maxima within this x step below the mask
GRID_MASK_LIMIT_DEG = 60.0  # higher masks: search above this, then refine (see above)


@dataclass(frozen=True)
class Pass:
    """A satellite above a station's elevation mask. Times are UNIX seconds (UTC); a
    pass in progress at the start or end of the search span is clipped to it."""

    satellite: str
    station: str
    aos: float
    los: float
    max_elevation_deg: float
    max_elevation_time: float

    @property
    def duration(self) -> float:
        return self.los - self.aos


def find_passes(tles: Sequence[Tle] | Propagator, stations: Sequence[Station],
                start: float, end: float, step: float = DEFAULT_STEP_S) -> list[Pass]:
    """Every pass of every satellite over every station in ``[start, end]``, sorted by
    AOS. ``step`` is the coarse grid (see the module docstring)."""
    prop = tles if isinstance(tles, Propagator) else Propagator(tles)
    return passes_on(Ephemeris(prop, time_grid(start, end, step)), stations)


def passes_on(eph: Ephemeris, stations: Sequence[Station]) -> list[Pass]:
    """:func:`find_passes` over the span of an existing ephemeris grid."""
    prop = eph.prop
    grid_t = eph.t
    r_ecef = teme_to_ecef(eph.r, grid_t[None, :])  # (n_sat, n_time, 3)
    near = NEAR_MASK_DEG_PER_S * eph.step
    out: list[Pass] = []
    for station in stations:
        el, _ = look(station, r_ecef)
        mask = station.min_elevation_deg
        search = min(mask, GRID_MASK_LIMIT_DEG)

        def elevation(rows: np.ndarray, times: np.ndarray, station: Station = station
                      ) -> np.ndarray:
            return look(station, teme_to_ecef(eph.teme(rows, times), times))[0]

        def margin(rows: np.ndarray, times: np.ndarray, search: float = search,
                   elevation: Margin = elevation) -> np.ndarray:
            return elevation(rows, times) - search

        found = windows(margin, grid_t, el - search, near)
        if mask > search:
            found = _above_mask(found, elevation, mask, search)
        for w in found:
            out.append(Pass(prop.tles[w.row].name, station.name, w.start, w.end,
                            w.peak + search, w.peak_time))
    return sorted(out, key=lambda p: (p.aos, p.station, p.satellite))


def _above_mask(found: list[Window], elevation: Margin, mask: float, search: float
                ) -> list[Window]:
    """The parts above ``mask`` of windows above ``search`` (< ``mask``): AOS between
    each window's start and its culmination, LOS between the culmination and its end."""
    keep = [w for w in found if w.peak + search > mask]
    if not keep:
        return []
    rows = np.array([w.row for w in keep])
    start, end = np.array([w.start for w in keep]), np.array([w.end for w in keep])
    peak = np.array([w.peak_time for w in keep])
    at = elevation(rows, np.stack((start, peak, end), axis=1)) - mask
    keep_peak = at[:, 1] > 0
    rows, start, end, peak, at = (rows[keep_peak], start[keep_peak], end[keep_peak],
                                  peak[keep_peak], at[keep_peak])

    def margin(r: np.ndarray, t: np.ndarray) -> np.ndarray:
        return elevation(r, t) - mask

    rise, fall = at[:, 0] <= 0, at[:, 2] <= 0  # else in progress at the span's edge
    aos, los = start.copy(), end.copy()
    aos[rise] = refine_crossings(margin, rows[rise], start[rise], peak[rise])
    los[fall] = refine_crossings(margin, rows[fall], peak[fall], end[fall])
    by_peak = {(w.row, w.peak_time): w for w in keep}
    return [Window(int(r), float(a), float(b), float(p), by_peak[(int(r), float(p))].peak)
            for r, a, b, p in zip(rows, aos, los, peak, strict=True) if b > a]


def station_ranges(prop: Propagator, sat: int, station: Station,
                   times: np.ndarray) -> np.ndarray:
    """Slant ranges (km) from ``station`` to satellite ``sat`` at ``times``."""
    times = np.asarray(times, dtype=float)
    r = teme_to_ecef(prop.teme_at(np.full(len(times), sat), times), times)
    return look(station, r)[1]

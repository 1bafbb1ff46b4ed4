"""Ground-station passes: when a satellite is above a station's elevation mask.

Elevation-minus-mask is evaluated on the ephemeris grid (default 60 s) for every
satellite, time and station at once and windows are found by :mod:`sim_link.roots`.
Maxima within ``NEAR_MASK_DEG_PER_S * step`` (6 degrees at 60 s) below the mask are
refined too. (Around its culmination the elevation is close to a parabola,
``e_max - k t^2 / 2``; a LEO pass that culminates near a mask of up to ~60 degrees has k
below ~3e-3 deg/s^2, so half a 60 s step from the peak it has lost less than 1.4
degrees.) Times are UNIX seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim_link.frames import Station, look, teme_to_ecef
from sim_link.propagation import DEFAULT_STEP_S, Ephemeris, Propagator, time_grid
from sim_link.roots import windows
from sim_link.tle import Tle

NEAR_MASK_DEG_PER_S = 0.1  # refine elevation maxima within this x step below the mask


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

        def margin(rows: np.ndarray, times: np.ndarray, station: Station = station,
                   mask: float = mask) -> np.ndarray:
            return look(station, teme_to_ecef(eph.teme(rows, times), times))[0] - mask

        for w in windows(margin, grid_t, el - mask, near):
            out.append(Pass(prop.tles[w.row].name, station.name, w.start, w.end,
                            w.peak + mask, w.peak_time))
    return sorted(out, key=lambda p: (p.aos, p.station, p.satellite))


def station_ranges(prop: Propagator, sat: int, station: Station,
                   times: np.ndarray) -> np.ndarray:
    """Slant ranges (km) from ``station`` to satellite ``sat`` at ``times``."""
    times = np.asarray(times, dtype=float)
    r = teme_to_ecef(prop.teme_at(np.full(len(times), sat), times), times)
    return look(station, r)[1]

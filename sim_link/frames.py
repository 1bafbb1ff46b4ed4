"""Frames: SGP4's TEME to Earth-fixed coordinates, and ground stations' look angles.

SGP4 gives positions in TEME (true equator, mean equinox). Earth-fixed coordinates are
TEME rotated about z by the Greenwich mean sidereal time of the IAU-82 model (Vallado's
``gstime``/``teme2ecef``, Vallado, "Fundamentals of Astrodynamics and Applications",
4th ed., eq. 3-45 and sec. 3.7), with UT1 taken equal to UTC (|UT1-UTC| < 0.9 s, i.e.
< 0.42 km of Earth rotation at the equator) and **polar motion ignored** (< ~10 m).
Against skyfield, which applies both, pass times differ by a few hundredths of a second
(measured in ``tests/test_orbit.py``). Ground stations use WGS84 geodetic coordinates
(not part of SGP4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim_link.julian import jd_fr

WGS84_A_KM = 6378.137
WGS84_F = 1 / 298.257223563


def gmst82(jd: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (radians), IAU-82 (Vallado's ``gstime``), UT1=UTC."""
    tut1 = ((jd - 2451545.0) + fr) / 36525.0
    seconds = (-6.2e-6 * tut1 ** 3 + 0.093104 * tut1 ** 2
               + (876600.0 * 3600 + 8640184.812866) * tut1 + 67310.54841)
    return np.mod(np.radians(seconds / 240.0), 2 * math.pi)



def teme_to_ecef(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """TEME positions ``r[..., 3]`` at UNIX times ``t`` (broadcast against ``r[..., 0]``)
    -> Earth-fixed (pseudo-Earth-fixed: polar motion ignored)."""
    jd, fr = jd_fr(t)
    g = gmst82(jd, fr)
    c, s = np.cos(g), np.sin(g)
    x, y = r[..., 0], r[..., 1]
    return np.stack((c * x + s * y, -s * x + c * y, r[..., 2]), axis=-1)


@dataclass(frozen=True)
class Station:
    """A ground station: WGS84 geodetic position and elevation mask."""

    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0
    min_elevation_deg: float = 10.0

    def ecef(self) -> np.ndarray:
        """Earth-fixed position, km."""
        lat, lon = math.radians(self.lat_deg), math.radians(self.lon_deg)
        e2 = WGS84_F * (2 - WGS84_F)
        n = WGS84_A_KM / math.sqrt(1 - e2 * math.sin(lat) ** 2)
        h = self.alt_m / 1000.0
        return np.array([(n + h) * math.cos(lat) * math.cos(lon),
                         (n + h) * math.cos(lat) * math.sin(lon),
                         (n * (1 - e2) + h) * math.sin(lat)])

    def up(self) -> np.ndarray:
        """Unit vector of the local vertical (geodetic), Earth-fixed."""
        lat, lon = math.radians(self.lat_deg), math.radians(self.lon_deg)
        return np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon),
                         math.sin(lat)])


def look(station: Station, r_ecef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(elevation in degrees, slant range in km) of Earth-fixed positions ``r[..., 3]``."""
    rho = r_ecef - station.ecef()
    rng = np.sqrt(np.einsum("...i,...i->...", rho, rho))
    sin_el = np.einsum("...i,i->...", rho, station.up()) / rng
    return np.degrees(np.arcsin(np.clip(sin_el, -1, 1))), rng


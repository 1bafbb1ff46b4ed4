"""The Sun's geocentric position, low precision, in the frame SGP4 works in.

Meeus, "Astronomical Algorithms", 2nd ed. (1998), ch. 25 "Solar Coordinates", the
low-accuracy method, with ``T`` Julian centuries of Terrestrial Time from J2000.0:

* geometric mean longitude ``L0 = 280.46646 + 36000.76983 T + 0.0003032 T^2`` (25.2),
* mean anomaly ``M = 357.52911 + 35999.05029 T - 0.0001537 T^2`` (25.3),
* eccentricity ``e = 0.016708634 - 0.000042037 T - 0.0000001267 T^2`` (25.4),
* equation of centre ``C = (1.914602 - 0.004817 T - 0.000014 T^2) sin M
  + (0.019993 - 0.000101 T) sin 2M + 0.000289 sin 3M``,
* true (geometric) longitude ``L0 + C``, latitude 0, distance
  ``1.000001018 (1 - e^2) / (1 + e cos(M + C))`` au (25.5),
* mean obliquity ``23 deg 26' 21.448" - 46.8150" T`` (22.2).

plus the largest periodic perturbations of the longitude by Venus (two terms), Jupiter
(two) and the Moon (the Earth's offset from the Earth-Moon barycentre, 6.4" sin D), from
Meeus, "Astronomical Formulae for Calculators", 4th ed. (1988), ch. 18 (their arguments
count Julian centuries from 1900 January 0.5, JD 2415020.0):
``+0.00134 cos A + 0.00154 cos B + 0.00200 cos C + 0.00179 sin D + 0.00178 sin E``.

The **geometric** longitude (no aberration), as skyfield's ``is_sunlit`` uses (the DE421
Earth-to-Sun vector). The direction is then rotated into SGP4's **TEME** frame: the
nutation's four largest terms (Meeus 1998, ch. 22) give the true equator and equinox of
date, and a rotation about z by the equation of the equinoxes takes the true equinox to
TEME's mean one (Vallado, "Fundamentals of Astrodynamics and Applications", sec. 3.7).
A GCRS/J2000 Sun with TEME satellite positions would be wrong by the precession since
2000 (~0.36 degrees in 2026: seconds of shadow time).

Measured against skyfield's DE421 Sun in TEME (``tests/test_eclipses.py``): within 0.0035
degrees over 2025-2030 (12 arcseconds in right ascension, 2.5 in declination; 0.01
degrees without the perturbation and nutation terms). That is a few hundredths of a
second of a LEO satellite's shadow entry or exit; only in grazing geometry (an eclipse of
under a minute, where the boundary moves by ~1 s per 4 arcseconds of Sun direction) does
it reach a second.

Terrestrial Time is taken as UTC + 69.184 s (37 leap seconds since 2017-01-01 plus
TT - TAI = 32.184 s); a further leap second would move the Sun by 0.04 arcseconds.
"""

from __future__ import annotations

import numpy as np

from sim_link.julian import DAY_S, UNIX_EPOCH_JD

AU_KM = 149_597_870.7
SUN_RADIUS_KM = 695_700.0  # IAU 2015 Resolution B3, nominal solar radius
TT_MINUS_UTC_S = 69.184
J2000_JD = 2451545.0
B1900_JD = 2415020.0  # the epoch of the perturbation arguments (1900 January 0.5)


def sun_position_km(t: np.ndarray) -> np.ndarray:
    """Geocentric Sun positions ``(..., 3)`` in km, equator and equinox of date (the
    TEME axes to within nutation), at UNIX times ``t`` (UTC)."""
    t = np.asarray(t, dtype=float)
    c = ((t + TT_MINUS_UTC_S) / DAY_S + (UNIX_EPOCH_JD - J2000_JD)) / 36525.0
    l0 = 280.46646 + 36000.76983 * c + 0.0003032 * c * c
    m = np.radians(357.52911 + 35999.05029 * c - 0.0001537 * c * c)
    e = 0.016708634 - 0.000042037 * c - 0.0000001267 * c * c
    centre = ((1.914602 - 0.004817 * c - 0.000014 * c * c) * np.sin(m)
              + (0.019993 - 0.000101 * c) * np.sin(2 * m) + 0.000289 * np.sin(3 * m))
    c0 = c + (J2000_JD - B1900_JD) / 36525.0  # centuries from 1900 January 0.5
    perturbations = (0.00134 * np.cos(np.radians(153.23 + 22518.7541 * c0))
                     + 0.00154 * np.cos(np.radians(216.57 + 45037.5082 * c0))
                     + 0.00200 * np.cos(np.radians(312.69 + 32964.3577 * c0))
                     + 0.00179 * np.sin(np.radians(350.74 + 445267.1142 * c0
                                                   - 0.00144 * c0 * c0))
                     + 0.00178 * np.sin(np.radians(231.19 + 20.20 * c0)))
    dpsi, deps = _nutation(c)
    lam = np.radians(l0 + centre + perturbations + dpsi)  # true equinox of date
    r = 1.000001018 * (1 - e * e) / (1 + e * np.cos(m + np.radians(centre))) * AU_KM
    eps0 = 23.0 + 26.0 / 60 + (21.448 - 46.8150 * c) / 3600
    eps = np.radians(eps0 + deps)  # true obliquity
    x, y, z = r * np.cos(lam), r * np.cos(eps) * np.sin(lam), r * np.sin(eps) * np.sin(lam)
    # True of date -> TEME: about z by the equation of the equinoxes (Vallado, sec. 3.7).
    eqeq = np.radians(dpsi * np.cos(np.radians(eps0)))
    return np.stack((x * np.cos(eqeq) + y * np.sin(eqeq),
                     -x * np.sin(eqeq) + y * np.cos(eqeq), z), axis=-1)


def _nutation(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nutation in longitude, in obliquity), degrees, at ``c`` Julian centuries (TT) from
    J2000: the four largest terms (Meeus, "Astronomical Algorithms", ch. 22, to 0.5" and
    0.1")."""
    node = np.radians(125.04452 - 1934.136261 * c)
    sun = np.radians(2 * (280.4665 + 36000.7698 * c))
    moon = np.radians(2 * (218.3165 + 481267.8813 * c))
    dpsi = (-17.20 * np.sin(node) - 1.32 * np.sin(sun) - 0.23 * np.sin(moon)
            + 0.21 * np.sin(2 * node))
    deps = 9.20 * np.cos(node) + 0.57 * np.cos(sun) + 0.10 * np.cos(moon) - 0.09 * np.cos(
        2 * node)
    return dpsi / 3600, deps / 3600

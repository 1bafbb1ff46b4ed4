"""The Sun's geocentric position in the frame SGP4 works in (TEME), to about 1 arcsecond.

**Ephemeris.** The Earth's heliocentric longitude ``L``, latitude ``B`` and distance ``R``
from VSOP87 (Bretagnon and Francou, A&A 202 (1988) 309), version D (mean ecliptic and
equinox of date), truncated as in Meeus, "Astronomical Algorithms", 2nd ed. (1998),
Appendix III -- its largest terms (40 of L0's 64, 20 of L1's 34, 10 of L2's 20, 20 of
R0's 40, and nearly all of the smaller series) -- summed as ``sum(A cos(B + C tau))
tau^k / 1e8`` with ``tau`` Julian millennia of Terrestrial Time from J2000.0 (Meeus
ch. 32). The geocentric, **geometric** Sun is then
``L + 180 deg``, ``-B``, ``R`` (Meeus ch. 25, "higher accuracy"), with no aberration or
light time: the Earth-to-Sun vector skyfield's ``is_sunlit`` uses. (Meeus's FK5 correction,
0.09", is left out.)

**Frame.** The nutation's four largest terms (Meeus ch. 22, to 0.5" in longitude and
0.1" in obliquity) give the true equator and equinox of date, and a rotation about z by
the equation of the equinoxes takes the true equinox to TEME's mean one (Vallado,
"Fundamentals of Astrodynamics and Applications", sec. 3.7). A GCRS/J2000 Sun with TEME
satellite positions would be wrong by the precession since 2000 (~0.36 degrees in 2026:
seconds of shadow time).

Measured against skyfield's DE421 Sun rotated into TEME over 2025-2030
(``tests/test_eclipses.py``): within 1.2 arcseconds in right ascension, 0.7 in
declination, 6e-6 in distance. A shadow boundary moves by about 1 s per 4 arcseconds of
Sun direction in the most sensitive (grazing) geometry seen in the tests, and by a few
milliseconds per arcsecond in a normal one.

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

# VSOP87D, the Earth (Meeus 1998, Appendix III): (A, B, C) per term, A in 1e-8 rad or au.
_L0 = (
    (175347046, 0, 0), (3341656, 4.6692568, 6283.07585), (34894, 4.6261, 12566.1517),
    (3497, 2.7441, 5753.3849), (3418, 2.8289, 3.5231), (3136, 3.6277, 77713.7715),
    (2676, 4.4181, 7860.4194), (2343, 6.1352, 3930.2097), (1324, 0.7425, 11506.7698),
    (1273, 2.0371, 529.691), (1199, 1.1096, 1577.3435), (990, 5.233, 5884.927),
    (902, 2.045, 26.298), (857, 3.508, 398.149), (780, 1.179, 5223.694),
    (753, 2.533, 5507.553), (505, 4.583, 18849.228), (492, 4.205, 775.523),
    (357, 2.92, 0.067), (317, 5.849, 11790.629), (284, 1.899, 796.298),
    (271, 0.315, 10977.079), (243, 0.345, 5486.778), (206, 4.806, 2544.314),
    (205, 1.869, 5573.143), (202, 2.458, 6069.777), (156, 0.833, 213.299),
    (132, 3.411, 2942.463), (126, 1.083, 20.775), (115, 0.645, 0.98),
    (103, 0.636, 4694.003), (102, 0.976, 15720.839), (102, 4.267, 7.114),
    (99, 6.21, 2146.17), (98, 0.68, 155.42), (86, 5.98, 161000.69), (85, 1.3, 6275.96),
    (85, 3.67, 71430.7), (80, 1.81, 17260.15), (79, 3.04, 12036.46),
)
_L1 = (
    (628331966747, 0, 0), (206059, 2.678235, 6283.07585), (4303, 2.6351, 12566.1517),
    (425, 1.59, 3.523), (119, 5.796, 26.298), (109, 2.966, 1577.344), (93, 2.59, 18849.23),
    (72, 1.14, 529.69), (68, 1.87, 398.15), (67, 4.41, 5507.55), (59, 2.89, 5223.69),
    (56, 2.17, 155.42), (45, 0.4, 796.3), (36, 0.47, 775.52), (29, 2.65, 7.11),
    (21, 5.34, 0.98), (19, 1.85, 5486.78), (19, 4.97, 213.3), (17, 2.99, 6275.96),
    (16, 0.03, 2544.31),
)
_L2 = (
    (52919, 0, 0), (8720, 1.0721, 6283.0758), (309, 0.867, 12566.152), (27, 0.05, 3.52),
    (16, 5.19, 26.3), (16, 3.68, 155.42), (10, 0.76, 18849.23), (9, 2.06, 77713.77),
    (7, 0.83, 775.52), (5, 4.66, 1577.34),
)
_L3 = (
    (289, 5.844, 6283.076), (35, 0, 0), (17, 5.49, 12566.15), (3, 5.2, 155.42),
    (1, 4.72, 3.52),
)
_L4 = (
    (114, 3.142, 0), (8, 4.13, 6283.08), (1, 3.84, 12566.15),
)
_L5 = (
    (1, 3.14, 0),
)
_B0 = (
    (280, 3.199, 84334.662), (102, 5.422, 5507.553), (80, 3.88, 5223.69),
    (44, 3.7, 2352.87), (32, 4.0, 1577.34),
)
_B1 = (
    (9, 3.9, 5507.55), (6, 1.73, 5223.69),
)
_R0 = (
    (100013989, 0, 0), (1670700, 3.0984635, 6283.07585), (13956, 3.05525, 12566.1517),
    (3084, 5.1985, 77713.7715), (1628, 1.1739, 5753.3849), (1576, 2.8469, 7860.4194),
    (925, 5.453, 11506.77), (542, 4.564, 3930.21), (472, 3.661, 5884.927),
    (346, 0.964, 5507.553), (329, 5.9, 5223.694), (307, 0.299, 5573.143),
    (243, 4.273, 11790.629), (212, 5.847, 1577.344), (186, 5.022, 10977.079),
    (175, 3.012, 18849.228), (110, 5.055, 5486.778), (98, 0.89, 6069.78),
    (86, 5.69, 15720.84), (86, 1.27, 161000.69),
)
_R1 = (
    (103019, 1.10749, 6283.07585), (1721, 1.0644, 12566.1517), (702, 3.142, 0),
    (32, 1.02, 18849.23), (31, 2.84, 5507.55), (25, 1.32, 5223.69), (18, 1.42, 1577.34),
    (10, 5.91, 10977.08), (9, 1.42, 6275.96), (9, 0.27, 5486.78),
)
_R2 = (
    (4359, 5.7846, 6283.0758), (124, 5.579, 12566.152), (12, 3.14, 0), (9, 3.63, 77713.77),
    (6, 1.87, 5573.14), (3, 5.47, 18849.23),
)
_R3 = (
    (145, 4.273, 6283.076), (7, 3.92, 12566.15),
)
_R4 = (
    (4, 2.56, 6283.08),
)


def sun_position_km(t: np.ndarray) -> np.ndarray:
    """Geocentric Sun positions ``(..., 3)`` in km in TEME at UNIX times ``t`` (UTC)."""
    t = np.asarray(t, dtype=float)
    c = ((t + TT_MINUS_UTC_S) / DAY_S + (UNIX_EPOCH_JD - J2000_JD)) / 36525.0
    tau = c / 10.0
    lon = _series((_L0, _L1, _L2, _L3, _L4, _L5), tau) + np.pi
    lat = -_series((_B0, _B1), tau)
    r = _series((_R0, _R1, _R2, _R3, _R4), tau) * AU_KM
    dpsi, deps = _nutation(c)
    lon = lon + dpsi  # true equinox of date
    eps0 = np.radians(23.0 + 26.0 / 60 + (21.448 - 46.8150 * c) / 3600)  # (22.2)
    eps = eps0 + deps  # true obliquity
    xe, ye, ze = (r * np.cos(lat) * np.cos(lon), r * np.cos(lat) * np.sin(lon),
                  r * np.sin(lat))
    x, y, z = xe, ye * np.cos(eps) - ze * np.sin(eps), ye * np.sin(eps) + ze * np.cos(eps)
    eqeq = dpsi * np.cos(eps0)  # the equation of the equinoxes: true of date -> TEME
    return np.stack((x * np.cos(eqeq) + y * np.sin(eqeq),
                     -x * np.sin(eqeq) + y * np.cos(eqeq), z), axis=-1)


def _series(powers: tuple[tuple[tuple[float, float, float], ...], ...],
            tau: np.ndarray) -> np.ndarray:
    """``sum_k tau^k sum_i A_i cos(B_i + C_i tau) / 1e8`` (Meeus eq. 32.2)."""
    total = np.zeros_like(tau)
    for k, terms in enumerate(powers):
        a, b, c = np.array(terms, dtype=float).T
        total = total + np.cos(b + c * tau[..., None]) @ a * tau ** k
    return total / 1e8


def _nutation(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nutation in longitude, in obliquity), radians, at ``c`` Julian centuries (TT)
    from J2000: the four largest terms (Meeus ch. 22)."""
    node = np.radians(125.04452 - 1934.136261 * c)
    sun = np.radians(2 * (280.4665 + 36000.7698 * c))
    moon = np.radians(2 * (218.3165 + 481267.8813 * c))
    dpsi = (-17.20 * np.sin(node) - 1.32 * np.sin(sun) - 0.23 * np.sin(moon)
            + 0.21 * np.sin(2 * node))
    deps = 9.20 * np.cos(node) + 0.57 * np.cos(sun) + 0.10 * np.cos(moon) - 0.09 * np.cos(
        2 * node)
    return np.radians(dpsi / 3600), np.radians(deps / 3600)

"""UNIX seconds (UTC) and Julian dates, as SGP4 and the sidereal time take them.

A UNIX time is split into the Julian date of the day's 0h and the fraction of the day, the
two-part form of ``sgp4.api.Satrec.sgp4`` (Vallado's ``jday``), so no precision is lost in
a single large float. UT1 is taken equal to UTC throughout (|UT1-UTC| < 0.9 s).
"""

from __future__ import annotations

import numpy as np

UNIX_EPOCH_JD = 2440587.5
DAY_S = 86_400.0


def jd_fr(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UNIX seconds -> (whole Julian date at 0h, day fraction) keeping full precision."""
    t = np.asarray(t, dtype=float)
    days = np.floor(t / DAY_S)
    return UNIX_EPOCH_JD + days, (t - days * DAY_S) / DAY_S


def unix_from_jd(jd: float, fr: float = 0.0) -> float:
    """Julian date (optionally in two parts) -> UNIX seconds."""
    return ((jd - UNIX_EPOCH_JD) + fr) * DAY_S

"""Orbits: TLEs -> positions (SGP4), ground-station passes, inter-satellite visibility.

**Element sets.** :func:`parse_tle` reads two-line element sets (with or without a name
line), checks the fixed column layout and the mod-10 checksum of each line and raises
:class:`TleError` naming the line and the problem. Each set becomes an
``sgp4.api.Satrec`` built with the **WGS72** constants: TLEs are fitted with WGS72 and
Vallado's verification output (``tcppver.out``) is computed with it, so WGS72 is the model
under which the elements mean what they say. (Ground stations, which are not part of
SGP4, use WGS84 geodetic coordinates.)

**Frames.** SGP4 gives positions in TEME (true equator, mean equinox). Earth-fixed
coordinates are TEME rotated about z by the Greenwich mean sidereal time of the IAU-82
model (Vallado's ``gstime``/``teme2ecef``), with UT1 taken equal to UTC (|UT1-UTC| < 0.9 s,
i.e. < 0.42 km of Earth rotation at the equator) and **polar motion ignored** (< ~10 m).
Against skyfield, which applies both, pass times differ by a few hundredths of a second
(measured in ``tests/test_orbit.py``).

**Passes.** Elevation-minus-mask is evaluated on a coarse grid (default 60 s) for every
satellite, time and station at once (``SatrecArray`` plus numpy). A pass is a run of
grid points above the mask; a pass short enough to fall between two grid points shows up
as a local maximum of the elevation just below the mask, so every such maximum within
``NEAR_MASK_DEG_PER_S * step`` (6 degrees at 60 s) of the mask is refined too. (Around
its culmination the elevation is close to a parabola, ``e_max - k t^2 / 2``; a LEO pass
that culminates near a mask of up to ~60 degrees has k below ~3e-3 deg/s^2, so half a
60 s step from the peak it has lost less than 1.4 degrees.) AOS/LOS are refined by
the Illinois method (a bracketing regula falsi) to 0.1 ms; the culmination by
golden-section search around the best grid point down to 0.5 s and a final parabola.
Every refinement step is one numpy evaluation over all brackets at once: positions
between grid points come from cubic Hermite interpolation of the SGP4 positions and
velocities on the grid (:class:`Ephemeris`, < 1 m at 60 s), so SGP4 runs once per
satellite and grid time.

**Inter-satellite links.** Two satellites see each other when the segment between them
stays clear of a sphere of the Earth's equatorial radius plus an atmosphere margin
(default 100 km; the equatorial radius is the conservative choice for an oblate Earth)
and their range is at most ``max_range_km``. The visibility margin
``min(clearance - radius, max_range - range)`` is handled like elevation-minus-mask
(near-limit band ``NEAR_LIMIT_KM_PER_S * step``: it has kinks, so the band is linear in
the step, sized for relative speeds up to 20 km/s).

Times are UNIX seconds (UTC), as in :mod:`sim_link.plan`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sgp4.api import WGS72, Satrec, SatrecArray

from sim_link.errors import LinkError

# WGS72 (the SGP4 gravity model) and WGS84 (station geodetic coordinates).
WGS72_MU_KM3_S2 = 398_600.8
WGS72_RADIUS_KM = 6378.135
WGS72_J2 = 0.001082616
WGS84_A_KM = 6378.137
WGS84_F = 1 / 298.257223563
EARTH_RADIUS_KM = WGS84_A_KM  # equatorial radius used for ISL Earth clearance
UNIX_EPOCH_JD = 2440587.5
DAY_S = 86_400.0
NEAR_MASK_DEG_PER_S = 0.1  # refine elevation maxima within this x step below the mask
NEAR_LIMIT_KM_PER_S = 20.0  # the same for the ISL visibility margin
DEFAULT_STEP_S = 60.0
_CROSSING_TOL_S = 1e-4  # Illinois iterations stop when no estimate moves more
_PEAK_TOL_S = 0.5  # then a parabola through the three best samples


class TleError(LinkError):
    """A TLE is malformed; the message names the line and what is wrong."""


# -- element sets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tle:
    """One element set: an optional name and the two 69-column lines."""

    name: str
    line1: str
    line2: str

    @property
    def satnum(self) -> str:
        """Catalogue number as written (columns 3-7, may be Alpha-5)."""
        return self.line1[2:7].strip()

    @property
    def epoch(self) -> float:
        """Epoch as UNIX seconds (UTC)."""
        sat = self.satrec()
        return _unix_from_jd(sat.jdsatepoch, sat.jdsatepochF)

    def satrec(self) -> Satrec:
        """The SGP4 model of this set (WGS72 constants, see the module docstring)."""
        return Satrec.twoline2rv(self.line1, self.line2, WGS72)


def tle_checksum(line: str) -> int:
    """Mod-10 checksum of columns 1-68: digits count their value, '-' counts 1."""
    return sum(int(c) if c.isdigit() else c == "-" for c in line[:68]) % 10


# (first column, last column, what, kind) -- columns 1-based, inclusive.
# kinds: "int" digits (blank allowed where noted), "float" decimal, "exp" TLE exponent,
# "satnum" digits or Alpha-5, "any".
_LINE1_FIELDS = (
    (3, 7, "satellite number", "satnum"),
    (19, 20, "epoch year", "int"),
    (21, 32, "epoch day", "float"),
    (34, 43, "first derivative of mean motion", "float"),
    (45, 52, "second derivative of mean motion", "exp"),
    (54, 61, "BSTAR drag term", "exp"),
    (63, 63, "ephemeris type", "int?"),
    (65, 68, "element set number", "int?"),
)
_LINE2_FIELDS = (
    (3, 7, "satellite number", "satnum"),
    (9, 16, "inclination", "float"),
    (18, 25, "right ascension of the ascending node", "float"),
    (27, 33, "eccentricity", "int"),
    (35, 42, "argument of perigee", "float"),
    (44, 51, "mean anomaly", "float"),
    (53, 63, "mean motion", "float"),
    (64, 68, "revolution number", "int?"),
)
_SEPARATORS = {1: (2, 9, 18, 33, 44, 53, 62, 64), 2: (2, 8, 17, 26, 34, 43, 52)}
_EXP = re.compile(r"[ +-]?\d{0,5}[ +-]\d\Z")
_FLOAT = re.compile(r"[ +-]?\d*\.?\d*\Z")


def _check_line(line: str, number: int, where: str, checksum: bool = True) -> None:
    if len(line) != 69:
        raise TleError(f"{where}: TLE line {number} must have 69 columns, has {len(line)}")
    if line[0] != str(number):
        raise TleError(f"{where}: expected TLE line {number} (starting '{number} '), "
                       f"got line number {line[0]!r}")
    for col in _SEPARATORS[number]:
        if line[col - 1] != " ":
            raise TleError(f"{where}: column {col} of line {number} must be blank, "
                           f"got {line[col - 1]!r}")
    for first, last, what, kind in _LINE1_FIELDS if number == 1 else _LINE2_FIELDS:
        text = line[first - 1:last]
        ok = True
        if kind == "satnum":
            ok = bool(re.fullmatch(r" *\d+|[A-Z]\d{4}", text))
        elif kind in ("int", "int?"):
            ok = text.strip().isdigit() or (kind == "int?" and not text.strip())
        elif kind == "float":
            ok = bool(_FLOAT.match(text.strip())) and any(c.isdigit() for c in text)
        elif kind == "exp":
            ok = bool(_EXP.match(text.strip().rjust(8))) if text.strip() else False
        if not ok:
            raise TleError(f"{where}: {what} (columns {first}-{last}) is not a valid "
                           f"number: {text!r}")
    if not line[68].isdigit():
        raise TleError(f"{where}: checksum (column 69) must be a digit, got {line[68]!r}")
    want = tle_checksum(line)
    if checksum and int(line[68]) != want:
        raise TleError(f"{where}: checksum mismatch: column 69 says {line[68]}, "
                       f"the mod-10 sum of columns 1-68 is {want}")


def parse_tle(text: str, source: str = "TLE", verify_checksums: bool = True) -> list[Tle]:
    """Element sets in ``text``: 2-line sets, or 3-line sets with a name line (a leading
    ``"0 "`` is dropped). Blank lines and lines starting with ``#`` are ignored. Raises
    :class:`TleError` naming ``source``, the line number and the problem. A set without a
    name is named by its catalogue number. ``verify_checksums=False`` is for historical
    sets known to carry wrong checksums (three of Vallado's verification TLEs do)."""
    lines = [(i, raw.rstrip()) for i, raw in enumerate(text.splitlines(), 1)
             if raw.strip() and not raw.lstrip().startswith("#")]
    out: list[Tle] = []
    k = 0
    while k < len(lines):
        name = ""
        no, line = lines[k]
        if not line.startswith(("1 ", "2 ")):
            name = line[2:].strip() if line.startswith("0 ") else line.strip()
            k += 1
            if k == len(lines):
                raise TleError(f"{source} line {no}: name line {name!r} is not followed "
                               f"by TLE line 1")
            no, line = lines[k]
        if not line.startswith("1 "):
            raise TleError(f"{source} line {no}: expected TLE line 1 (starting '1 '), "
                           f"got {line[:20]!r}")
        if k + 1 == len(lines):
            raise TleError(f"{source} line {no}: TLE line 1 is not followed by line 2")
        no2, line2 = lines[k + 1]
        _check_line(line, 1, f"{source} line {no}", verify_checksums)
        _check_line(line2, 2, f"{source} line {no2}", verify_checksums)
        if line[2:7] != line2[2:7]:
            raise TleError(f"{source} line {no2}: satellite number {line2[2:7].strip()!r} "
                           f"differs from line 1's {line[2:7].strip()!r}")
        tle = Tle(name or line[2:7].strip(), line, line2)
        sat = tle.satrec()
        if sat.error:
            raise TleError(f"{source} line {no}: sgp4 rejects the elements (error "
                           f"{sat.error})")
        out.append(tle)
        k += 2
    return out


def load_tles(path: str) -> list[Tle]:
    """:func:`parse_tle` of a file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TleError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TleError(f"{path}: not an ASCII TLE file (byte {exc.start})") from None
    return parse_tle(text, source=str(path))


def _exp_field(x: float) -> str:
    """A number in the TLE's implied-decimal exponent notation, e.g. ``" 28098-4"``."""
    if x == 0:
        return " 00000+0"
    exp = math.floor(math.log10(abs(x))) + 1
    digits = round(abs(x) / 10.0 ** exp * 1e5)
    if digits >= 100_000:
        digits, exp = 10_000, exp + 1
    if not -9 <= exp <= 9:
        raise TleError(f"{x!r} cannot be written in TLE exponent notation")
    return f"{'-' if x < 0 else ' '}{digits:05d}{'-' if exp < 0 else '+'}{abs(exp)}"


def make_tle(name: str, satnum: int, epoch: float, inclination_deg: float, raan_deg: float,
             eccentricity: float, arg_perigee_deg: float, mean_anomaly_deg: float,
             mean_motion_rev_day: float, bstar: float = 0.0, intl_designator: str = "",
             revolution: int = 0, element_number: int = 999) -> Tle:
    """A well-formed element set (columns and checksums right) for simulation.
    ``epoch`` is UNIX seconds."""
    if not 0 < satnum < 100_000:
        raise TleError(f"satellite number {satnum} must be in 1..99999")
    when = datetime.fromtimestamp(epoch, UTC)
    start = datetime(when.year, 1, 1, tzinfo=UTC)
    day = 1 + (when - start).total_seconds() / DAY_S
    ecc = round(eccentricity * 1e7)
    if not 0 <= ecc < 10_000_000:
        raise TleError(f"eccentricity {eccentricity} must be in [0, 1)")
    l1 = (f"1 {satnum:05d}U {intl_designator:<8.8} {when.year % 100:02d}{day:012.8f} "
          f" .00000000  00000+0 {_exp_field(bstar)} 0 {element_number % 10000:4d}")
    l2 = (f"2 {satnum:05d} {inclination_deg % 360:8.4f} {raan_deg % 360:8.4f} {ecc:07d} "
          f"{arg_perigee_deg % 360:8.4f} {mean_anomaly_deg % 360:8.4f} "
          f"{mean_motion_rev_day:11.8f}{revolution % 100000:5d}")
    l1 += str(tle_checksum(l1))
    l2 += str(tle_checksum(l2))
    [tle] = parse_tle(f"{name}\n{l1}\n{l2}\n", source=f"generated {name}")
    return tle


def mean_motion_for_altitude(altitude_km: float) -> float:
    """Revolutions per day of a circular orbit at ``altitude_km`` (two-body, WGS72).
    SGP4's mean elements differ from osculating ones by J2 terms, so the mean altitude
    of the propagated orbit is within a few km of ``altitude_km``."""
    a = WGS72_RADIUS_KM + altitude_km
    return math.sqrt(WGS72_MU_KM3_S2 / a ** 3) * DAY_S / (2 * math.pi)


def sun_synchronous_inclination(altitude_km: float) -> float:
    """Inclination (degrees) whose J2 nodal precession follows the mean Sun
    (360 degrees per 365.2422 days) for a circular orbit at ``altitude_km``."""
    a = WGS72_RADIUS_KM + altitude_km
    n = math.sqrt(WGS72_MU_KM3_S2 / a ** 3)
    node_rate = 2 * math.pi / (365.2422 * DAY_S)
    cos_i = -node_rate / (1.5 * n * WGS72_J2 * (WGS72_RADIUS_KM / a) ** 2)
    return math.degrees(math.acos(cos_i))


def walker_delta(total: int, planes: int, phasing: int, altitude_km: float,
                 inclination_deg: float, epoch: float, first_satnum: int = 90001,
                 prefix: str = "WALKER") -> list[Tle]:
    """A Walker-delta constellation ``i: total/planes/phasing`` of circular orbits.

    Plane ``p`` (0-based) has right ascension ``360 p / planes``; satellite ``s`` of the
    plane has mean anomaly ``360 s / per_plane + 360 phasing p / total``. Names are
    ``{prefix}_P{p+1}S{s+1}``, catalogue numbers count up from ``first_satnum``."""
    if total <= 0 or planes <= 0 or total % planes:
        raise ValueError(f"walker_delta: total {total} must be a positive multiple of "
                         f"planes {planes}")
    if not 0 <= phasing < planes:
        raise ValueError(f"walker_delta: phasing {phasing} must be in 0..{planes - 1}")
    per_plane = total // planes
    n = mean_motion_for_altitude(altitude_km)
    out = []
    for p in range(planes):
        for s in range(per_plane):
            out.append(make_tle(
                f"{prefix}_P{p + 1}S{s + 1}", first_satnum + p * per_plane + s, epoch,
                inclination_deg, 360.0 * p / planes, 0.0001, 0.0,
                360.0 * s / per_plane + 360.0 * phasing * p / total, n))
    return out


def format_tles(tles: Iterable[Tle]) -> str:
    """Element sets as 3-line text."""
    return "".join(f"{t.name}\n{t.line1}\n{t.line2}\n" for t in tles)


# -- time and frames ------------------------------------------------------------------


def _jd_fr(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UNIX seconds -> (whole Julian date at 0h, day fraction) keeping full precision."""
    t = np.asarray(t, dtype=float)
    days = np.floor(t / DAY_S)
    return UNIX_EPOCH_JD + days, (t - days * DAY_S) / DAY_S


def _unix_from_jd(jd: float, fr: float = 0.0) -> float:
    return ((jd - UNIX_EPOCH_JD) + fr) * DAY_S


def gmst82(jd: np.ndarray, fr: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (radians), IAU-82 (Vallado's ``gstime``), UT1=UTC."""
    tut1 = ((jd - 2451545.0) + fr) / 36525.0
    seconds = (-6.2e-6 * tut1 ** 3 + 0.093104 * tut1 ** 2
               + (876600.0 * 3600 + 8640184.812866) * tut1 + 67310.54841)
    return np.mod(np.radians(seconds / 240.0), 2 * math.pi)


def teme_to_ecef(r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """TEME positions ``r[..., 3]`` at UNIX times ``t`` (broadcast against ``r[..., 0]``)
    -> Earth-fixed (pseudo-Earth-fixed: polar motion ignored)."""
    jd, fr = _jd_fr(t)
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


# -- propagation ----------------------------------------------------------------------


class Propagator:
    """SGP4 for a fixed list of element sets, vectorised over satellites and times."""

    def __init__(self, tles: Sequence[Tle]) -> None:
        if not tles:
            raise ValueError("no element sets")
        self.tles = tuple(tles)
        self.satrecs = [t.satrec() for t in self.tles]
        self._array = SatrecArray(self.satrecs)

    def teme_grid(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TEME positions ``(n_sat, n_time, 3)`` km at UNIX ``times`` and the sgp4 error
        codes ``(n_sat, n_time)`` (0 = fine; positions are NaN where not)."""
        jd, fr = _jd_fr(times)
        err, r, _v = self._array.sgp4(jd, fr)
        r[err != 0] = np.nan
        return r, err

    def teme_at(self, sat: np.ndarray, times: np.ndarray) -> np.ndarray:
        """TEME positions ``(..., 3)`` of satellite ``sat[i]`` at ``times[i, ...]``
        (one vectorised sgp4 call per distinct satellite)."""
        sat = np.asarray(sat, dtype=int)
        times = np.asarray(times, dtype=float)
        out = np.full((*times.shape, 3), np.nan)
        for s in np.unique(sat):
            rows = sat == s
            jd, fr = _jd_fr(times[rows].ravel())
            err, r, _v = self.satrecs[s].sgp4_array(jd, fr)
            r[err != 0] = np.nan
            out[rows] = r.reshape((*times[rows].shape, 3))
        return out

    def teme_since(self, sat: int, minutes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(error codes, TEME positions km, velocities km/s) of satellite ``sat`` at
        ``minutes`` after its epoch (the form of Vallado's verification output)."""
        s = self.satrecs[sat]
        minutes = np.asarray(minutes, dtype=float)
        return s.sgp4_array(np.full(minutes.shape, s.jdsatepoch),
                            s.jdsatepochF + minutes / 1440.0)

    def ecef_grid(self, times: np.ndarray) -> np.ndarray:
        r, _ = self.teme_grid(times)
        return teme_to_ecef(r, times[None, :])


class Ephemeris:
    """Every satellite propagated once on a regular grid (positions and velocities);
    between grid points, cubic Hermite interpolation of the TEME position. For LEO at a
    60 s step the interpolation error is below a metre (tested against SGP4), far below
    what matters for a pass time (1 m is ~0.1 ms of satellite motion)."""

    def __init__(self, prop: Propagator, grid_t: np.ndarray) -> None:
        self.prop = prop
        self.t = np.asarray(grid_t, dtype=float)
        if len(self.t) < 2 or not (np.diff(self.t) > 0).all():
            raise ValueError("ephemeris grid must hold two or more increasing times")
        self.step = float(self.t[1] - self.t[0])
        if not np.allclose(np.diff(self.t), self.step):
            raise ValueError("ephemeris grid must be regular")
        jd, fr = _jd_fr(self.t)
        err, r, v = prop._array.sgp4(jd, fr)
        bad = err != 0
        r[bad] = np.nan
        v[bad] = np.nan
        self.r, self.v = r, v  # (n_sat, n_time, 3) km, km/s
        self._r_flat, self._v_flat = r.reshape(-1, 3), v.reshape(-1, 3)

    def teme(self, sat: np.ndarray, times: np.ndarray) -> np.ndarray:
        """TEME positions ``(..., 3)`` of satellites ``sat`` (broadcast against ``times``;
        a 1-d ``sat`` against the first axis of ``times``) at ``times`` within the grid."""
        times = np.asarray(times, dtype=float)
        sat = np.asarray(sat, dtype=int)
        sat = sat.reshape(sat.shape + (1,) * (times.ndim - sat.ndim))
        u = (times - self.t[0]) / self.step
        j = np.clip(np.floor(u).astype(int), 0, len(self.t) - 2)
        x = (u - j)[..., None]
        flat = (sat * len(self.t) + j).ravel()
        shape = (*times.shape, 3)
        r, v, h = self._r_flat, self._v_flat, self.step
        p0, p1 = r.take(flat, axis=0).reshape(shape), r.take(flat + 1, axis=0).reshape(shape)
        m0 = v.take(flat, axis=0).reshape(shape) * h
        m1 = v.take(flat + 1, axis=0).reshape(shape) * h
        x2, x3 = x * x, x * x * x
        return ((2 * x3 - 3 * x2 + 1) * p0 + (x3 - 2 * x2 + x) * m0
                + (-2 * x3 + 3 * x2) * p1 + (x3 - x2) * m1)


# -- windows: generic refinement of "margin(t) > 0" -----------------------------------


# margin(rows, times[rows, k]) -> values[rows, k]: positive inside a window.
Margin = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _refine_crossings(margin: Margin, rows: np.ndarray, lo: np.ndarray,
                      hi: np.ndarray) -> np.ndarray:
    """The time in each bracket ``[lo, hi]`` where ``margin`` changes sign, by the
    Illinois (modified regula falsi) method: it keeps a bracket, so it cannot leave it,
    and converges superlinearly; iterations stop when no estimate moves by more than
    ``_CROSSING_TOL_S``."""
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
        if moved < _CROSSING_TOL_S:
            break
        fc = f(c)
        flip = (fc > 0) != (fb > 0)
        a, fa = np.where(flip, b, a), np.where(flip, fb, fa / 2)
        b, fb = c, fc
    return c


def _refine_maxima(margin: Margin, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(time, value) of the maximum of ``margin`` in each bracket ``[lo, hi]`` (unimodal
    there): golden-section search down to ``_PEAK_TOL_S``, then a parabola through three
    samples around the best point."""
    a, b = lo.astype(float).copy(), hi.astype(float).copy()
    if len(rows) == 0:
        return a, a

    def f(t: np.ndarray) -> np.ndarray:
        return np.nan_to_num(margin(rows, np.clip(t, lo, hi)[:, None])[:, 0], nan=-1e9)

    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while np.max(b - a) > _PEAK_TOL_S:
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
class _Window:
    row: int
    start: float
    end: float
    peak_time: float
    peak: float


def _windows(margin: Margin, grid_t: np.ndarray, grid_f: np.ndarray, near: float,
             peaks: bool = True) -> list[_Window]:
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
    h_t, h_val = _refine_maxima(margin, h_rows, h_lo, h_hi)
    hit = h_val > 0
    h_rows, h_t, h_val, h_lo, h_hi = h_rows[hit], h_t[hit], h_val[hit], h_lo[hit], h_hi[hit]

    # Peaks of the runs: the best grid point, then refined around it.
    if peaks:
        masked = np.where(above, f, -np.inf)
        peak_idx = np.array([r_first[i] + int(np.argmax(masked[r, r_first[i]:r_last[i] + 1]))
                             for i, r in enumerate(r_rows)], dtype=int)
        p_lo = grid_t[np.maximum(peak_idx - 1, 0)]
        p_hi = grid_t[np.minimum(peak_idx + 1, n - 1)]
        p_t, p_val = _refine_maxima(margin, r_rows, p_lo, p_hi)
    else:
        p_t = p_val = np.full(len(r_rows), np.nan)
    # Crossings: starts of runs (unless at the grid start), ends (unless at grid end),
    # and both sides of hidden windows.
    s_need = r_first > 0
    e_need = r_last < n - 1
    rows_c = np.concatenate((r_rows[s_need], r_rows[e_need], h_rows, h_rows))
    lo_c = np.concatenate((grid_t[r_first[s_need] - 1], grid_t[r_last[e_need]], h_lo, h_t))
    hi_c = np.concatenate((grid_t[r_first[s_need]], grid_t[r_last[e_need] + 1], h_t, h_hi))
    cross = _refine_crossings(margin, rows_c, lo_c, hi_c)
    k1, k2, k3 = s_need.sum(), s_need.sum() + e_need.sum(), s_need.sum() + e_need.sum() + len(
        h_rows)
    starts = np.full(len(r_rows), grid_t[0])
    starts[s_need] = cross[:k1]
    ends = np.full(len(r_rows), grid_t[-1])
    ends[e_need] = cross[k1:k2]
    out = [_Window(int(r), float(a), float(b), float(pt), float(pv))
           for r, a, b, pt, pv in zip(r_rows, starts, ends, p_t, p_val, strict=True)]
    out += [_Window(int(r), float(a), float(b), float(pt), float(pv))
            for r, a, b, pt, pv in zip(h_rows, cross[k2:k3], cross[k3:], h_t, h_val,
                                       strict=True)]
    return [w for w in out if w.end > w.start]


def time_grid(start: float, end: float, step: float) -> np.ndarray:
    """``start`` .. ``end`` inclusive in equal steps of at most ``step`` seconds."""
    return _grid(start, end, step)


def _grid(start: float, end: float, step: float) -> np.ndarray:
    if not end > start:
        raise ValueError(f"end {end} must be after start {start}")
    if step <= 0:
        raise ValueError(f"step {step} must be positive")
    n = max(2, math.ceil((end - start) / step) + 1)
    return np.linspace(start, end, n)


# -- ground passes --------------------------------------------------------------------


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
    return passes_on(Ephemeris(prop, _grid(start, end, step)), stations)


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

        for w in _windows(margin, grid_t, el - mask, near):
            out.append(Pass(prop.tles[w.row].name, station.name, w.start, w.end,
                            w.peak + mask, w.peak_time))
    return sorted(out, key=lambda p: (p.aos, p.station, p.satellite))


def station_ranges(prop: Propagator, sat: int, station: Station,
                   times: np.ndarray) -> np.ndarray:
    """Slant ranges (km) from ``station`` to satellite ``sat`` at ``times``."""
    times = np.asarray(times, dtype=float)
    r = teme_to_ecef(prop.teme_at(np.full(len(times), sat), times), times)
    return look(station, r)[1]


# -- inter-satellite visibility -------------------------------------------------------


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
    return isl_windows_on(Ephemeris(prop, _grid(start, end, step)), max_range_km,
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

        for w in _windows(margin, grid_t, grid_f, near, peaks=False):
            a, b = pc[w.row]
            out.append(IslWindow(prop.tles[a].name, prop.tles[b].name, w.start, w.end))
    return sorted(out, key=lambda w: (w.start, w.satellite_a, w.satellite_b))


def isl_ranges(prop: Propagator, a: int, b: int, times: np.ndarray) -> np.ndarray:
    """Ranges (km) between satellites ``a`` and ``b`` at ``times``."""
    times = np.asarray(times, dtype=float)
    ra = prop.teme_at(np.full(len(times), a), times)
    rb = prop.teme_at(np.full(len(times), b), times)
    return np.linalg.norm(rb - ra, axis=-1)


# -- the example element sets in configs/tle ------------------------------------------

EXAMPLE_EPOCH = 1795392000.0  # 2026-11-23T00:00:00Z


def example_tle_files(epoch: float = EXAMPLE_EPOCH) -> dict[str, str]:
    """The generated files of ``configs/tle`` (file name -> text); regenerate them with
    ``python -m sim_link.orbit configs/tle``. None is a real satellite's element set."""
    iss = make_tle("ISS_SIM", 25544, epoch, 51.64, 120.0, 0.0005, 90.0, 270.0, 15.50,
                   bstar=3.0e-4, intl_designator="98067A")
    sso = make_tle("SSO550", 90000, epoch, sun_synchronous_inclination(550.0), 30.0,
                   0.0001, 0.0, 0.0, mean_motion_for_altitude(550.0), bstar=1.0e-4)
    walker = walker_delta(12, 3, 1, 550.0, 53.0, epoch)
    return {
        "iss_like.tle": "# ISS-like orbit (51.64 deg, ~420 km), for simulation only: not the\n"
                        "# real ISS element set.\n" + format_tles([iss]),
        "sso550.tle": "# Sun-synchronous 550 km smallsat (generated: circular, inclination "
                      "from J2),\n# for simulation.\n" + format_tles([sso]),
        "walker_12.tle": "# Walker-delta 53: 12/3/1 at 550 km, generated by\n"
                         "# sim_link.orbit.walker_delta(12, 3, 1, 550.0, 53.0, epoch), "
                         "for simulation.\n" + format_tles(walker),
    }


if __name__ == "__main__":
    import pathlib
    import sys

    target = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "configs/tle")
    target.mkdir(parents=True, exist_ok=True)
    for file_name, body in example_tle_files().items():
        (target / file_name).write_text(body, encoding="ascii")
        print(target / file_name)

"""Two-line element sets: parsing, checking, writing, and generated orbits.

:func:`parse_tle` reads two-line element sets (with or without a name line), checks the
fixed column layout and the mod-10 checksum of each line and raises :class:`TleError`
naming the line and the problem (column layout: CelesTrak's "NORAD Two-Line Element Set
Format" and Vallado et al., "Revisiting Spacetrack Report #3", AIAA 2006-6753, appendix).
Each set becomes an ``sgp4.api.Satrec`` built with the **WGS72** constants: TLEs are
fitted with WGS72 and Vallado's verification output (``tcppver.out``) is computed with it,
so WGS72 is the model under which the elements mean what they say.

:func:`make_tle` writes a well-formed set for simulation; :func:`walker_delta`,
:func:`mean_motion_for_altitude` and :func:`sun_synchronous_inclination` design orbits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sgp4.api import WGS72, Satrec

from sim_link.errors import LinkError
from sim_link.julian import DAY_S, unix_from_jd

# WGS72, the SGP4 gravity model.
WGS72_MU_KM3_S2 = 398_600.8
WGS72_RADIUS_KM = 6378.135
WGS72_J2 = 0.001082616


class TleError(LinkError):
    """A TLE is malformed; the message names the line and what is wrong."""



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
        return unix_from_jd(sat.jdsatepoch, sat.jdsatepochF)

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


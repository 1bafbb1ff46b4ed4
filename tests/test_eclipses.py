"""sim_link.sun and sim_link.eclipses against skyfield (DE421 from the skyfield-data
package: nothing is downloaded): the Sun's direction, shadow entry and exit of an
ISS-like, a Starlink-like and a dawn-dusk sun-synchronous orbit against ``is_sunlit``,
the conical model's nesting, the shadow fraction, and the plan file's eclipses."""

from __future__ import annotations

import importlib.resources
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from sim_link.eclipses import find_eclipses, shadow_angles, shadow_fraction
from sim_link.examples import EXAMPLE_EPOCH
from sim_link.plan import Contact, ContactPlan, Eclipse, EclipseTable, PlanError, plan_from_json
from sim_link.sun import sun_position_km
from sim_link.tle import (
    Tle,
    load_tles,
    make_tle,
    mean_motion_for_altitude,
    sun_synchronous_inclination,
)

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400.0


@pytest.fixture(scope="module")
def sky():
    """(skyfield loader's DE421, builtin timescale): all from installed packages."""
    from skyfield.api import Loader

    load = Loader(str(importlib.resources.files("skyfield_data") / "data"))
    return load("de421.bsp"), load.timescale(builtin=True)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _skyfield_transitions(sky, tle: Tle, start: float, end: float, step_s: float
                          ) -> list[tuple[float, bool]]:
    """(time, sunlit afterwards) of every change of skyfield's ``is_sunlit`` in
    [start, end], to its 1 ms search tolerance."""
    from skyfield.api import EarthSatellite
    from skyfield.searchlib import find_discrete

    eph, ts = sky
    sat = EarthSatellite(tle.line1, tle.line2, tle.name, ts)

    def sunlit(t):
        return sat.at(t).is_sunlit(eph)

    sunlit.step_days = step_s / DAY
    times, values = find_discrete(ts.from_datetime(_utc(start)), ts.from_datetime(_utc(end)),
                                  sunlit)
    return [(t.utc_datetime().timestamp(), bool(v)) for t, v in zip(times, values,
                                                                     strict=True)]


def _our_transitions(table: EclipseTable) -> list[tuple[float, bool]]:
    out = [(e.start, False) for e in table.eclipses if e.start > table.start]
    out += [(e.end, True) for e in table.eclipses if e.end < table.end]
    return sorted(out)


def _dawn_dusk(epoch: float, altitude_km: float = 550.0) -> Tle:
    """A sun-synchronous orbit whose plane faces the Sun at ``epoch`` (node 90 degrees
    east of the Sun's right ascension: 18:00 local time of the ascending node)."""
    sun = sun_position_km(np.array(epoch))
    raan = float(np.degrees(np.arctan2(sun[1], sun[0]))) + 90.0
    return make_tle("DAWN_DUSK", 90100, epoch, sun_synchronous_inclination(altitude_km),
                    raan, 0.0001, 0.0, 0.0, mean_motion_for_altitude(altitude_km))


def _noon_midnight(epoch: float, altitude_km: float = 550.0) -> Tle:
    """A sun-synchronous orbit whose plane contains the Sun (beta angle ~0)."""
    sun = sun_position_km(np.array(epoch))
    raan = float(np.degrees(np.arctan2(sun[1], sun[0])))
    return make_tle("NOON", 90101, epoch, sun_synchronous_inclination(altitude_km), raan,
                    0.0001, 0.0, 0.0, mean_motion_for_altitude(altitude_km))


ISS = load_tles(str(ROOT / "configs" / "tle" / "iss_like.tle"))[0]
STARLINK = load_tles(str(ROOT / "configs" / "tle" / "walker_12.tle"))[0]  # 550 km, 53 deg
SEASON = datetime(2026, 5, 3, tzinfo=UTC).timestamp()  # dawn-dusk 550 km: short eclipses
ONSET = datetime(2026, 5, 2, tzinfo=UTC).timestamp()  # ... their first day: grazing ones


# -- the Sun ------------------------------------------------------------------------------


def test_sun_direction_matches_de421_in_teme(sky) -> None:
    """The truncated-VSOP87 Sun against DE421's geometric Earth-to-Sun vector rotated
    into TEME by skyfield, over 2025-2030: within 1.5 arcseconds, distance 1e-5."""
    from skyfield.sgp4lib import TEME

    eph, ts = sky
    t = np.arange(datetime(2025, 1, 1, tzinfo=UTC).timestamp(),
                  datetime(2031, 1, 1, tzinfo=UTC).timestamp(), 0.47 * DAY)
    theirs = (eph["sun"] - eph["earth"]).at(ts.from_datetimes([_utc(x) for x in t])
                                           ).frame_xyz(TEME).km.T
    ours = sun_position_km(t)
    cos = np.einsum("ij,ij->i", ours, theirs) / (np.linalg.norm(ours, axis=1)
                                                 * np.linalg.norm(theirs, axis=1))
    worst = float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max())
    print(f"largest Sun direction difference to DE421: {worst * 3600:.1f} arcsec")
    assert worst * 3600 < 1.5, worst
    ratio = np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert np.abs(ratio - 1).max() < 1e-5


# -- boundaries against skyfield's is_sunlit ---------------------------------------------------


@pytest.mark.parametrize("tle, start", [
    (ISS, EXAMPLE_EPOCH),
    (STARLINK, EXAMPLE_EPOCH),
    (_dawn_dusk(SEASON), SEASON),
], ids=["iss-like", "starlink-like", "dawn-dusk-in-eclipse-season"])
def test_shadow_boundaries_within_a_second_of_skyfield(sky, tle: Tle, start: float) -> None:
    """Over a day, the same shadow entries and exits as skyfield's is_sunlit (none
    missed, none invented, same direction), each within 1 s."""
    table = find_eclipses([tle], start, start + DAY)
    ours = _our_transitions(table)
    theirs = _skyfield_transitions(sky, tle, start, start + DAY, step_s=10.0)
    assert len(ours) == len(theirs) >= 20
    assert [s for _, s in ours] == [s for _, s in theirs]
    worst = max(abs(a - b) for (a, _), (b, _) in zip(ours, theirs, strict=True))
    print(f"{tle.name}: {len(ours)} boundaries, largest difference {worst * 1000:.0f} ms")
    assert worst < 1.0, worst


def test_dawn_dusk_orbit_out_of_season_is_always_sunlit(sky) -> None:
    """The dawn-dusk orbit in November: no eclipse, like skyfield; sunlit throughout."""
    tle = _dawn_dusk(EXAMPLE_EPOCH)
    table = find_eclipses([tle], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    assert table.eclipses == ()
    assert table.satellites == ("DAWN_DUSK",)
    assert table.sunlit("DAWN_DUSK") == [(EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)]
    assert table.next_change("DAWN_DUSK", EXAMPLE_EPOCH) is None
    assert _skyfield_transitions(sky, tle, EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY, 10.0) == []


def test_grazing_eclipses_at_season_onset(sky) -> None:
    """The first day of the dawn-dusk orbit's eclipse season: eclipses of 38 s to 2.5
    min, whose boundaries move by ~1 s per 4 arcseconds of Sun direction. None missed or
    invented even with a 120 s grid; every boundary within 1 s of skyfield (measured:
    0.2 s with the 120 s grid, whose interpolated positions are less exact)."""
    tle = _dawn_dusk(ONSET)
    theirs = _skyfield_transitions(sky, tle, ONSET, ONSET + DAY, step_s=2.0)
    worst = 0.0
    for step in (60.0, 120.0):
        table = find_eclipses([tle], ONSET, ONSET + DAY, step=step)
        ours = _our_transitions(table)
        assert len(ours) == len(theirs) >= 8, step
        durations = [e.duration for e in table.eclipses]
        assert min(durations) < 60.0 and step > min(durations)
        for e in table.eclipses:
            pair = [b for b, _ in theirs if abs(b - e.start) < 10 or abs(b - e.end) < 10]
            errors = [abs(e.start - pair[0]), abs(e.end - pair[1])]
            assert max(errors) < 1.0, (e, pair)
            worst = max(worst, *errors)
    print(f"grazing eclipses from {min(durations):.0f} s: largest difference "
          f"{worst * 1000:.0f} ms")


# -- the conical model ---------------------------------------------------------------------------


def test_penumbra_contains_shadow_contains_umbra() -> None:
    table = find_eclipses([ISS, STARLINK], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    inner = [e for e in table.eclipses if e.penumbra_start > EXAMPLE_EPOCH
             and e.penumbra_end < EXAMPLE_EPOCH + DAY]
    assert len(inner) > 20
    for e in inner:
        assert e.umbra_start is not None and e.umbra_end is not None
        assert e.penumbra_start < e.start < e.umbra_start < e.umbra_end < e.end < e.penumbra_end
        # LEO crosses the penumbra in seconds (half of it either side of the boundary).
        for half in (e.start - e.penumbra_start, e.umbra_start - e.start,
                     e.end - e.umbra_end, e.penumbra_end - e.end):
            assert 2.0 < half < 20.0, e
        # At each boundary the angles say what the name says.
        r = np.array([_sgp4_position(ISS if e.satellite == ISS.name else STARLINK, t)
                      for t in (e.penumbra_start, e.start, e.umbra_start)])
        sun = sun_position_km(np.array([e.penumbra_start, e.start, e.umbra_start]))
        theta, rho_e, rho_s = shadow_angles(r, sun)
        assert np.allclose(theta - rho_e, [rho_s[0], 0.0, -rho_s[2]], atol=1e-4)


def _sgp4_position(tle: Tle, t: float) -> np.ndarray:
    """SGP4's TEME position (no interpolation) of ``tle`` at ``t``."""
    from sim_link.propagation import Propagator

    return Propagator([tle]).teme_at(np.array([0]), np.array([[t]]))[0, 0]


def test_boundaries_do_not_depend_on_the_grid() -> None:
    fine = find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY, step=20.0)
    coarse = find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY, step=120.0)
    assert len(fine.eclipses) == len(coarse.eclipses)
    for a, b in zip(fine.eclipses, coarse.eclipses, strict=True):
        assert abs(a.start - b.start) < 0.01 and abs(a.end - b.end) < 0.01
        assert abs(a.penumbra_start - b.penumbra_start) < 0.01


def test_shadow_fraction_is_plausible() -> None:
    """550 km: at most asin(R / (R + h)) / 180 deg = 37.2 % of the orbit in shadow (beta
    angle 0, the noon-midnight orbit), less at 53 degrees, none out of season."""
    limit = float(np.degrees(np.arcsin(6378.137 / (6378.137 + 550.0)))) / 180.0
    noon = find_eclipses([_noon_midnight(EXAMPLE_EPOCH)], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    fraction = shadow_fraction(noon, "NOON")
    assert 0.35 < fraction <= limit + 0.005, fraction
    starlink = find_eclipses([STARLINK], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    assert 0.25 < shadow_fraction(starlink, STARLINK.name) <= fraction + 0.005
    table = find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    lit = table.sunlit(ISS.name)
    total = sum(b - a for a, b in lit) + sum(e.duration for e in table.eclipses)
    assert total == pytest.approx(DAY, abs=1e-6)


def test_next_change_and_in_shadow() -> None:
    table = find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    first, second = table.eclipses[1], table.eclipses[2]
    before = first.start - 100.0
    assert not table.in_shadow(ISS.name, before)
    assert table.next_change(ISS.name, before) == ("enters", first.start)
    assert table.in_shadow(ISS.name, first.start + 1.0)
    assert table.next_change(ISS.name, first.start + 1.0) == ("leaves", first.end)
    assert table.next_change(ISS.name, first.end) == ("enters", second.start)
    assert table.next_change(ISS.name, EXAMPLE_EPOCH + DAY) is None


# -- the plan file ------------------------------------------------------------------------------


def _contact() -> Contact:
    return Contact("SAT1", "GS", EXAMPLE_EPOCH, EXAMPLE_EPOCH + 600, 1e6, 1e5,
                   ((EXAMPLE_EPOCH, 0.005),), 0.0, "S-band", 40.0)


def test_plan_with_eclipses_round_trips_as_version_2() -> None:
    table = find_eclipses([_renamed(ISS, "SAT1")], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    plan = ContactPlan((_contact(),), "2026-11-23T00:00:00Z", table)
    doc = json.loads(plan.to_json())
    assert doc["version"] == 2 and doc["eclipses"]["model"] == "conical"
    assert len(doc["eclipses"]["satellites"]["SAT1"]) == len(table.eclipses)
    again = plan_from_json(plan.to_json())
    assert again.eclipses == table
    assert again == plan
    # Without eclipses the file stays version 1, which older readers accept.
    assert json.loads(ContactPlan((_contact(),)).to_json())["version"] == 1
    assert plan_from_json(ContactPlan((_contact(),)).to_json()).eclipses is None


def _renamed(tle: Tle, name: str) -> Tle:
    return Tle(name, tle.line1, tle.line2)


def _doc() -> dict:
    e = Eclipse("SAT1", EXAMPLE_EPOCH + 100, EXAMPLE_EPOCH + 200, EXAMPLE_EPOCH + 95,
                EXAMPLE_EPOCH + 205, EXAMPLE_EPOCH + 105, EXAMPLE_EPOCH + 195)
    table = EclipseTable(EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY, ("SAT1", "SAT2"), (e,))
    return json.loads(ContactPlan((_contact(),), "x", table).to_json())


def _first(d: dict) -> dict:
    return d["eclipses"]["satellites"]["SAT1"][0]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(version=1), "unknown field"),
    (lambda d: d["eclipses"].update(model="cylindrical"), "model"),
    (lambda d: d["eclipses"].pop("start"), "missing"),
    (lambda d: d["eclipses"].update(end=EXAMPLE_EPOCH - 1), "after start"),
    (lambda d: d["eclipses"].update(satellites=[]), "satellites"),
    (lambda d: d["eclipses"]["satellites"].update(SAT2={}), "array"),
    (lambda d: d["eclipses"]["satellites"].update({"A-B": []}), "node name"),
    (lambda d: _first(d).update(end=EXAMPLE_EPOCH + 50), "start < end"),
    (lambda d: _first(d).update(penumbra=[EXAMPLE_EPOCH + 150, EXAMPLE_EPOCH + 205]),
     "penumbra start"),
    (lambda d: _first(d).update(umbra=[EXAMPLE_EPOCH + 50, EXAMPLE_EPOCH + 150]), "umbra"),
    (lambda d: _first(d).update(umbra=[EXAMPLE_EPOCH + 150]), "umbra"),
    (lambda d: _first(d).update(start="soon"), "finite number"),
    (lambda d: _first(d).update(extra=1), "unknown"),
    (lambda d: d["eclipses"]["satellites"]["SAT1"].append(dict(_first(d))), "overlap"),
    (lambda d: _first(d).update(penumbra=[EXAMPLE_EPOCH - 5, EXAMPLE_EPOCH + 205],
                                start=EXAMPLE_EPOCH - 1), "outside"),
])
def test_malformed_eclipses_are_refused_naming_the_field(edit, message: str) -> None:
    doc = _doc()
    edit(doc)
    with pytest.raises(PlanError, match=message) as info:
        plan_from_json(json.dumps(doc))
    assert "\n" not in str(info.value)


def test_bad_eclipse_search_input() -> None:
    with pytest.raises(ValueError, match="after start"):
        find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH)
    with pytest.raises(ValueError, match="positive"):
        find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY, step=0.0)
    with pytest.raises(ValueError, match="no element sets"):
        find_eclipses([], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    from sim_link.eclipses import eclipses_on
    from sim_link.propagation import Ephemeris, Propagator, time_grid

    eph = Ephemeris(Propagator([ISS]), time_grid(EXAMPLE_EPOCH, EXAMPLE_EPOCH + 3600, 60.0))
    with pytest.raises(ValueError, match="names for"):
        eclipses_on(eph, ["A", "B"])


def test_span_edges_are_not_changes() -> None:
    """An eclipse in progress at the start of the span is clipped, and its clipped start
    is not reported as a shadow entry."""
    table = find_eclipses([ISS], EXAMPLE_EPOCH, EXAMPLE_EPOCH + DAY)
    e = table.eclipses[1]
    mid = (e.start + e.end) / 2
    clipped = find_eclipses([ISS], mid, mid + 3 * 3600)
    first = clipped.eclipses[0]
    assert first.start == mid and first.penumbra_start == mid
    assert first.end == pytest.approx(e.end, abs=1e-3)
    assert clipped.next_change(ISS.name, mid) == ("leaves", first.end)
    assert clipped.in_shadow(ISS.name, mid)
    assert timedelta(seconds=first.end - mid) < timedelta(hours=1)


@pytest.mark.slow
def test_eclipse_benchmark_quick_run() -> None:
    """About 6 s: the rows of benchmarks/link_eclipses, the error row within its target."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "benchmarks.link_eclipses", "--quick",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [r["unit"] for r in rows] == ["ms/plan", "ms/boundary"]
    assert rows[0]["baseline"] > 0 and rows[0]["ours"] > 0
    error = rows[1]
    assert error["passed"] is True and error["ours"] < 1000.0
    assert 0.0 < error["baseline"] <= 502.0  # 1 s sampling: midpoints, vs a 1 ms search

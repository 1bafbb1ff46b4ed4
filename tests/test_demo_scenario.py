"""The demo's sky (``node/demo/scenario.py``): whatever the time of day or the season the demo
starts at, every satellite sees a station on each of its first orbits.

Before the plane choice, the orbits' geometry followed the wall clock: a demo started at
02:00 UTC on 7 December flew tracks on the far side of the pole from Svalbard, and its
satellites had their first pass 3.5 hours in (``test_demo`` failed at such times)."""

from __future__ import annotations

import datetime as dt

import pytest

from node.demo.scenario import (
    LINKS,
    LTDN_HOURS,
    PLANES,
    STATIONS,
    build,
    constellation,
    ground_passes_per_satellite,
)
from sim_link.contacts import build_plan

DEC_7 = dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp()
ORBIT_MIN = 95.6  # 550 km


def _starts(day: dt.datetime, every_hours: int) -> list[dt.datetime]:
    return [day + dt.timedelta(hours=h) for h in range(0, 24, every_hours)]


SEASONS = [dt.datetime(2027, m, 21, tzinfo=dt.UTC) for m in (3, 6, 9)]
STARTS = _starts(dt.datetime(2026, 12, 7, tzinfo=dt.UTC), 1) + [
    t for day in SEASONS for t in _starts(day, 3)]


@pytest.mark.parametrize("when", STARTS, ids=[t.strftime("%b%d-%H:%M") for t in STARTS])
def test_one_station_sees_each_satellite_on_each_orbit_at_any_start(when: dt.datetime) -> None:
    """``test_demo``'s sky (2 satellites, Svalbard, 4 hours): 3 passes each, the first within
    the first orbit."""
    start = when.timestamp()
    scenario = build(2, 1, start, 4)
    assert min(ground_passes_per_satellite(scenario).values()) >= 3
    for sat in scenario.satellites:
        first = min(c.start for c in scenario.plan.contacts
                    if {c.source, c.target} == {sat, "SVALBARD"})
        assert first - start < ORBIT_MIN * 60, (sat, scenario.plane)


def test_at_0200_utc_the_10_30_descending_plane_is_out_of_sight_and_the_other_is_flown() -> None:
    start = DEC_7 + 2 * 3600
    descending = build_plan(constellation(2, start), STATIONS[:1], LINKS, start, 4)
    passes = [c.start - start for c in descending.contacts if c.link_class == "S-band"]
    assert passes and min(passes) > 3 * 3600  # the failure: nothing for 3.5 hours
    chosen = build(2, 1, start, 4)
    assert chosen.ltdn_hours == PLANES[1] and chosen.plane == "10:30 ascending"


def test_a_tie_keeps_the_10_30_descending_plane() -> None:
    chosen = build(2, 1, DEC_7 + 8 * 3600, 4)  # both planes: 3 passes each
    assert chosen.ltdn_hours == LTDN_HOURS and chosen.plane == "10:30 descending"


@pytest.mark.parametrize("ltdn", PLANES)
@pytest.mark.parametrize("day", [*SEASONS, dt.datetime(2026, 12, 21, tzinfo=dt.UTC)],
                         ids=lambda day: day.strftime("%b%d"))
def test_both_planes_have_an_eclipse_on_every_orbit(ltdn: float, day: dt.datetime) -> None:
    start, hours = day.timestamp(), 6
    tles = constellation(3, start, ltdn_hours=ltdn)
    plan = build_plan(tles, [], LINKS, start, hours, isl=False)
    assert plan.eclipses is not None
    for tle in tles:
        assert len(plan.eclipses.of(tle.name)) >= int(hours * 60 // ORBIT_MIN), tle.name


@pytest.mark.parametrize(("args", "message"), [
    ((0, 1, 1.0), "satellites: 0 must be at least 1"),
    ((2, 0, 1.0), "stations: 0 must be 1..4"),
    ((2, 5, 1.0), "stations: 5 must be 1..4"),
    ((2, 1, 0.0), "hours: 0.0 must be in (0, 72]"),
    ((2, 1, 73.0), "hours: 73.0 must be in (0, 72]"),
])
def test_bad_sizes_are_refused_with_what_is_allowed(args: tuple[int, int, float],
                                                    message: str) -> None:
    with pytest.raises(ValueError) as caught:
        build(args[0], args[1], DEC_7, args[2])
    assert str(caught.value) == message

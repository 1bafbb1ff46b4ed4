"""What the demo flies: a constellation, its ground stations, and the plan between them.

The satellites are Earth-observation smallsats as they are usually flown: sun-synchronous
(the inclination that keeps the orbit's plane at a fixed local time, here 10:30 at the
descending node, or at the ascending node when that plane sees the stations more often in
the run (:func:`build`); either way every orbit has an eclipse), 550 km, launched together
and spread along the orbit as a *train* (``spacing_deg`` of mean anomaly apart: about 2,400
km at 20 degrees, inside the optical inter-satellite links' 5,000 km), one train per plane,
the planes ``plane_spacing_deg`` of right ascension apart. Element sets are generated
(:func:`sim_link.tle.make_tle`: real columns and checksums) at the demo's start.

The ground stations are polar ones first (Svalbard sees a sun-synchronous satellite on
most orbits, Kiruna on many), then mid-latitude ones; the link classes are the project's
defaults (S-band ground links, optical ISLs). :func:`build` computes the contact plan with
eclipses (:func:`sim_link.contacts.build_plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim_link.contacts import LinkClass, LinkConfig, build_plan
from sim_link.frames import Station
from sim_link.plan import ContactPlan
from sim_link.sun import sun_position_km
from sim_link.tle import Tle, make_tle, mean_motion_for_altitude, sun_synchronous_inclination

STATIONS = (
    Station("SVALBARD", 78.23, 15.41, 500, 5),
    Station("KIRUNA", 67.86, 20.96, 390, 5),
    Station("WEILHEIM", 47.88, 11.08, 660, 10),
    Station("WALLOPS", 37.94, -75.46, 10, 10),
)
"""Approximate public positions of real sites (as ``configs/stations.toml``)."""

LINKS = LinkConfig(
    classes={"S-band": LinkClass("S-band", "ground", 2_000_000, 64_000, 0.001),
             "optical": LinkClass("optical", "isl", 1_000_000_000, 1_000_000_000, 0.0,
                                  max_range_km=5_000, atmosphere_margin_km=100)},
    default_station_class="S-band", isl_class="optical")
"""The defaults of ``configs/links.toml``: 2 Mbit/s down, 64 kbit/s up; optical ISLs."""

ALTITUDE_KM = 550.0
LTDN_HOURS = 10.5
"""Local time at the descending node: a 10:30 sun-synchronous orbit, as many imagers."""
PLANES = (LTDN_HOURS, (LTDN_HOURS + 12.0) % 24.0)
"""The two 10:30 planes, by local time at the descending node: descending at 10:30, or
ascending at 10:30 (descending at 22:30). Both have an eclipse on every orbit."""


@dataclass(frozen=True)
class Scenario:
    """The satellites' element sets, the stations and the plan from ``start``."""

    tles: tuple[Tle, ...]
    stations: tuple[Station, ...]
    plan: ContactPlan
    start: float
    hours: float
    ltdn_hours: float = LTDN_HOURS  # which of :data:`PLANES` the satellites fly

    @property
    def satellites(self) -> list[str]:
        return [t.name for t in self.tles]

    @property
    def plane(self) -> str:
        """Which of :data:`PLANES` the satellites fly, in words."""
        return "10:30 descending" if self.ltdn_hours == PLANES[0] else "10:30 ascending"


def constellation(count: int, start: float, *, ltdn_hours: float = LTDN_HOURS,
                  per_plane: int = 3, spacing_deg: float = 20.0,
                  plane_spacing_deg: float = 15.0) -> list[Tle]:
    """``count`` sun-synchronous satellites at :data:`ALTITUDE_KM`, descending node at
    ``ltdn_hours`` local time, in trains of ``per_plane`` (module docstring), named
    ``SAT1``.., element sets at ``start``."""
    if count < 1:
        raise ValueError(f"satellites: {count} must be at least 1")
    inclination = sun_synchronous_inclination(ALTITUDE_KM)
    motion = mean_motion_for_altitude(ALTITUDE_KM)
    raan0 = descending_node_raan(start, ltdn_hours)
    out = []
    for k in range(count):
        plane, slot = divmod(k, per_plane)
        out.append(make_tle(f"SAT{k + 1}", 91001 + k, start, inclination,
                            raan0 + plane * plane_spacing_deg, 0.0001, 0.0,
                            slot * spacing_deg + plane * spacing_deg / 2, motion))
    return out


def descending_node_raan(t: float, local_time_hours: float) -> float:
    """The right ascension of the ascending node (degrees) that puts the descending node
    at ``local_time_hours`` mean solar time: the ascending node is 12 hours from it, and
    local time 12:00 is the Sun's right ascension (the geometric Sun of
    :func:`sim_link.sun.sun_position_km`; the equation of time is ignored: minutes)."""
    x, y, _ = sun_position_km(np.array([t]))[0]
    sun_ra = math.degrees(math.atan2(y, x))
    ascending_local = (local_time_hours + 12.0) % 24.0
    return (sun_ra + (ascending_local - 12.0) * 15.0) % 360.0


def build(satellites: int, stations: int, start: float, hours: float) -> Scenario:
    """The scenario of ``satellites`` over the first ``stations`` of :data:`STATIONS`, flying
    whichever of the two 10:30 planes (:func:`ground_passes_per_satellite`) gives every
    satellite more passes in the run.

    A sun-synchronous plane is fixed with respect to the Sun, so the Earth turns under it
    once a day and where its tracks cross the pole depends on the time of day: at 10:30
    descending, for several hours of each day (starts from about 23:00 to 05:00 UTC in
    December) some tracks run on the far side of the pole from Svalbard, out of its sight,
    and a satellite can fly two orbits without a pass. The plane ascending at 10:30 (LTAN
    10:30, also flown; the same plane turned 180 degrees about the pole) is then on the near
    side. The choice depends only on ``start`` and the scenario's size."""
    if not 1 <= stations <= len(STATIONS):
        raise ValueError(f"stations: {stations} must be 1..{len(STATIONS)}")
    if not 0 < hours <= 72:
        raise ValueError(f"hours: {hours} must be in (0, 72]")
    chosen = STATIONS[:stations]
    candidates = []
    for ltdn in PLANES:
        tles = tuple(constellation(satellites, start, ltdn_hours=ltdn))
        plan = build_plan(tles, chosen, LINKS, start, hours, isl=satellites > 1)
        candidates.append(Scenario(tles, chosen, plan, start, hours, ltdn))
    # max() keeps the first of equals: 10:30 descending unless the other plane does better
    return max(candidates, key=lambda sc: min(ground_passes_per_satellite(sc).values()))


def ground_passes_per_satellite(scenario: Scenario) -> dict[str, int]:
    """How many ground passes each satellite has in the scenario's plan."""
    stations = {s.name for s in scenario.stations}
    return {sat: sum(1 for c in scenario.plan.contacts
                     if sat in (c.source, c.target) and {c.source, c.target} & stations)
            for sat in scenario.satellites}

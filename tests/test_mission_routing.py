"""Who submits a certificate (node.mission.routing): the signer set's earliest way to a
ground station over the plan, relayed over ISL windows when that is quicker; the others
follow a fallback apart."""

from __future__ import annotations

import pytest

from node.mission.routing import stations_of, turns
from sim_link.plan import Contact, ContactPlan

A, B, C, D = (bytes([i]) * 20 for i in (1, 2, 3, 4))
NAMES = {A: "SAT1", B: "SAT2", C: "SAT3", D: "SAT4"}


def contact(source: str, target: str, start: float, end: float, *,
            station: bool = False) -> Contact:
    return Contact(source, target, start, end, 2e6, 64e3 if station else 2e6,
                   ((start, 0.01),), max_elevation_deg=40.0 if station else None)


PLAN = ContactPlan((
    contact("SAT1", "GS", 5000, 5600, station=True),
    contact("SAT2", "GS", 3000, 3600, station=True),
    contact("SAT3", "GS", 9000, 9600, station=True),
    contact("SAT3", "SAT4", 100, 200),  # SAT4 is no signer, but an ISL reaches it early
    contact("SAT4", "GS", 1000, 1600, station=True),
))


def test_the_relay_of_the_quickest_route_goes_first_then_the_others_by_their_own_way() -> None:
    line = turns(PLAN, [A, B, C], [A], NAMES, now=0.0, fallback=300.0)
    assert [t.signer for t in line] == [D, B, A, C]
    first = line[0]
    assert first.route is not None and first.route.source == "SAT3"
    assert [h.receiver for h in first.route.hops] == ["SAT4", "GS"]
    assert first.due == 0.0  # at once: its outbox sends at SAT4's pass
    down = first.route.arrival
    assert down == pytest.approx(1000.01, abs=0.1)
    assert [t.due for t in line[1:]] == pytest.approx([down + 300, down + 600, down + 900])


def test_without_the_isl_the_signer_with_the_next_pass_goes_first() -> None:
    plan = ContactPlan(tuple(c for c in PLAN.contacts if c.link != "SAT3-SAT4"))
    line = turns(plan, [A, B, C], [C], NAMES, now=0.0, fallback=60.0)
    assert [t.signer for t in line] == [B, A, C]
    assert stations_of(plan) == {"GS"}


def test_unknown_holders_come_last_by_address_and_no_plan_names_keeps_address_order() -> None:
    stranger = bytes([9]) * 20
    line = turns(PLAN, [A, B, stranger], [stranger], NAMES, now=0.0, fallback=60.0)
    assert [t.signer for t in line][-1] == stranger and line[-1].route is None
    nobody = turns(PLAN, [C, A], [A], {}, now=0.0, fallback=60.0)
    assert [t.signer for t in nobody] == [A, C] and nobody[0].due == 0.0

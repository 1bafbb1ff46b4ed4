"""Contact-graph routing (sim_link.routing): the earliest arrival of a bundle through a
contact plan, checked by hand on small plans and against an exhaustive search on random
ones."""

from __future__ import annotations

import random

import pytest

from sim_link.plan import Contact, ContactPlan
from sim_link.routing import RoutingError, earliest_arrival, first_to_reach


def contact(source: str, target: str, start: float, end: float, *, delay: float = 0.01,
            forward: float = 1e6, reverse: float = 1e6, station: bool = False) -> Contact:
    return Contact(source, target, start, end, forward, reverse, ((start, delay),),
                   max_elevation_deg=40.0 if station else None)


def test_a_satellite_with_its_own_pass_first_sends_there() -> None:
    plan = ContactPlan((contact("SAT1", "GS", 100, 400, delay=0.005, station=True),
                        contact("SAT1", "SAT2", 50, 60)))
    route = earliest_arrival(plan, "SAT1", 0, {"GS"})
    assert route is not None and route.arrival == pytest.approx(100.005)
    assert route.last_relay == "SAT1" and [h.receiver for h in route.hops] == ["GS"]


def test_an_isl_to_a_satellite_with_an_earlier_pass_wins() -> None:
    plan = ContactPlan((contact("SAT1", "GS", 1000, 1300, station=True),
                        contact("SAT1", "SAT2", 100, 200),
                        contact("SAT2", "GS", 300, 600, station=True)))
    route = earliest_arrival(plan, "SAT1", 0, {"GS"})
    assert route is not None and route.last_relay == "SAT2"
    assert [(h.sender, h.receiver) for h in route.hops] == [("SAT1", "SAT2"), ("SAT2", "GS")]
    assert route.hops[0].depart == 100 and route.arrival == pytest.approx(300.01)
    late = ContactPlan((contact("SAT1", "GS", 1000, 1300, station=True),
                        contact("SAT1", "SAT2", 700, 800),  # after SAT2's pass
                        contact("SAT2", "GS", 300, 600, station=True)))
    assert earliest_arrival(late, "SAT1", 0, {"GS"}).last_relay == "SAT1"  # type: ignore[union-attr]


def test_the_bundle_must_fit_in_what_is_left_of_a_contact_at_the_right_rate() -> None:
    # 1 MB at 64 kbit/s back from GS to SAT1 (reverse) takes 125 s; the contact lasts 100
    plan = ContactPlan((contact("SAT1", "GS", 0, 100, forward=2e6, reverse=64e3,
                                station=True),
                        contact("SAT1", "GS", 500, 800, forward=2e6, reverse=64e3,
                                station=True)))
    up = earliest_arrival(plan, "GS", 0, {"SAT1"}, size=1_000_000)
    assert up is not None and up.hops[0].depart == 500
    assert up.arrival == pytest.approx(500 + 125 + 0.01)
    down = earliest_arrival(plan, "SAT1", 0, {"GS"}, size=1_000_000)  # 4 s at 2 Mbit/s
    assert down is not None and down.arrival == pytest.approx(4.01)
    assert earliest_arrival(plan, "SAT1", 90, {"GS"}, size=1_000_000).hops[0].depart \
        == 90  # type: ignore[union-attr]
    assert earliest_arrival(plan, "SAT1", 97, {"GS"}, size=1_000_000).hops[0].depart \
        == 500  # type: ignore[union-attr]


def test_unreachable_and_already_there() -> None:
    plan = ContactPlan((contact("SAT1", "SAT2", 0, 10), contact("SAT3", "GS", 0, 10,
                                                               station=True)))
    assert earliest_arrival(plan, "SAT1", 0, {"GS"}) is None
    assert earliest_arrival(plan, "SAT1", 20, {"SAT2"}) is None  # the ISL is over
    here = earliest_arrival(plan, "GS", 5, {"GS"})
    assert here is not None and here.hops == () and here.latency == 0


def test_first_to_reach_picks_the_holder_with_the_earliest_route() -> None:
    plan = ContactPlan((contact("SAT1", "GS", 1000, 1300, station=True),
                        contact("SAT2", "GS", 300, 600, station=True),
                        contact("SAT3", "GS", 300, 600, station=True)))
    best = first_to_reach(plan, ["SAT3", "SAT1", "SAT2"], 0, {"GS"})
    assert best is not None and best.source == "SAT2"  # tie with SAT3: by name
    assert first_to_reach(plan, [], 0, {"GS"}) is None


@pytest.mark.parametrize("bad, says", [
    (dict(source="NOPE"), "not in the plan"),
    (dict(destinations={"NOPE"}), "not in the plan"),
    (dict(destinations=set()), "(none)"),
    (dict(size=-1), "must be >= 0"),
])
def test_bad_input_is_refused(bad: dict[str, object], says: str) -> None:
    plan = ContactPlan((contact("SAT1", "GS", 0, 10, station=True),))
    args: dict[str, object] = dict(source="SAT1", destinations={"GS"}, size=0) | bad
    with pytest.raises(RoutingError, match=says):
        earliest_arrival(plan, args["source"], 0, args["destinations"],  # type: ignore[arg-type]
                         size=args["size"])  # type: ignore[arg-type]


def _exhaustive(plan: ContactPlan, node: str, t: float, goal: str, size: int,
                seen: frozenset[str]) -> float:
    """The earliest arrival by trying every simple path (reference for small plans)."""
    if node == goal:
        return t
    best = float("inf")
    for c in plan.contacts:
        if node not in (c.source, c.target) or c.end <= t:
            continue
        other = c.target if c.source == node else c.source
        if other in seen:
            continue
        rate = c.rate_forward_bps if c.source == node else c.rate_reverse_bps
        depart = max(t, c.start)
        if depart + 8 * size / rate > c.end:
            continue
        arrive = depart + 8 * size / rate + c.delay_at(depart)
        best = min(best, _exhaustive(plan, other, arrive, goal, size, seen | {other}))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_matches_an_exhaustive_search_on_random_plans(seed: int) -> None:
    rng = random.Random(seed)
    names = ["GS", "SAT1", "SAT2", "SAT3", "SAT4"]
    contacts = []
    for _ in range(rng.randint(3, 12)):
        a, b = rng.sample(names, 2)
        start = rng.uniform(0, 1000)
        contacts.append(contact(a, b, start, start + rng.uniform(1, 200),
                                delay=rng.uniform(0, 0.5), forward=rng.choice([1e4, 1e6]),
                                reverse=rng.choice([1e4, 1e6])))
    plan = ContactPlan(tuple(contacts))
    source = rng.choice(sorted(plan.nodes()))
    goal = rng.choice(sorted(plan.nodes()))
    size = rng.choice([0, 10_000, 200_000])
    reference = _exhaustive(plan, source, 0.0, goal, size, frozenset({source}))
    route = earliest_arrival(plan, source, 0.0, {goal}, size=size)
    if reference == float("inf"):
        assert route is None
    else:
        assert route is not None and route.arrival == pytest.approx(reference)
        t = 0.0  # and the route it returns is one that can be flown as stated
        for hop in route.hops:
            assert hop.depart >= t and hop.contact.start <= hop.depart < hop.contact.end
            t = hop.arrive
        assert t == pytest.approx(route.arrival)

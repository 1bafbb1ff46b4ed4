"""Contact-graph routing: the earliest a bundle can reach a destination through a plan.

A satellite holding a certificate reaches the ground only at a ground-station pass, its own
or, over inter-satellite links, another satellite's. Which satellite should submit it?
The one through which it *arrives first*. This is the earliest-arrival problem of
Contact Graph Routing (CCSDS 734.2-B-1, the Schedule-Aware Bundle Routing contact-plan
procedures; Fraire, De Jonckère, Burleigh, "Routing in the Space Internet: A contact graph
routing tutorial", JNCA 2021, section 3): over the plan's contacts, a Dijkstra search
whose distance is the time the bundle arrives at a node, with waiting allowed at every
node (store-and-forward). Contacts are FIFO (a later departure never arrives earlier), so
the node-labelled search is exact.

A contact carries bytes both ways, source -> target at ``rate_forward_bps`` and back at
``rate_reverse_bps``. A bundle of ``size`` bytes that reaches node ``u`` at time ``t``
leaves on a contact ``c`` of ``u`` at ``max(t, c.start)``, occupies the link for
``8 * size / rate`` seconds, must have left the link by ``c.end`` (it is not fragmented),
and arrives at the other end ``delay_at(depart)`` later. A contact's capacity already used
by other traffic is not modelled (the plan holds no reservations).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sim_link.errors import LinkError
from sim_link.plan import Contact, ContactPlan


class RoutingError(LinkError):
    """Bad routing input (unknown node, negative size, ...)."""


@dataclass(frozen=True)
class Hop:
    """The bundle crossing ``contact`` from ``sender`` to ``receiver``."""

    contact: Contact
    sender: str
    receiver: str
    depart: float
    arrive: float


@dataclass(frozen=True)
class Route:
    """The earliest route found: its hops in order (empty when the source is already a
    destination) and the arrival time at the destination."""

    source: str
    destination: str
    start: float
    arrival: float
    hops: tuple[Hop, ...]

    @property
    def last_relay(self) -> str:
        """The node that hands the bundle to the destination (the source itself when the
        route has one hop or none): for a ground station, the satellite that submits."""
        return self.hops[-1].sender if self.hops else self.source

    @property
    def latency(self) -> float:
        return self.arrival - self.start


def earliest_arrival(plan: ContactPlan, source: str, start: float,
                     destinations: Collection[str], *, size: int = 0) -> Route | None:
    """The route by which a ``size``-byte bundle held by ``source`` at ``start`` first
    reaches any of ``destinations`` (module docstring); None when the plan never gets it
    there. Ties go to the route with fewer hops, then to names in sorted order, so every
    node computing it from the same plan picks the same route."""
    nodes = plan.nodes()
    if source not in nodes:
        raise RoutingError(f"node {source!r} is not in the plan")
    unknown = sorted(set(destinations) - nodes)
    if unknown or not destinations:
        raise RoutingError(f"destinations {unknown or '(none)'} are not in the plan")
    if size < 0:
        raise RoutingError(f"bundle size {size} must be >= 0")
    by_node = _contacts_by_node(plan.contacts)
    best: dict[str, tuple[float, int]] = {source: (start, 0)}
    came_by: dict[str, Hop] = {}
    queue: list[tuple[float, int, str]] = [(start, 0, source)]
    while queue:
        arrived, hops, node = heapq.heappop(queue)
        if (arrived, hops) != best.get(node):
            continue  # a better label was found after this one was queued
        if node in destinations:
            return Route(source, node, start, arrived, _path(came_by, source, node))
        for contact in by_node.get(node, ()):
            hop = _cross(contact, node, arrived, size)
            if hop is None:
                continue
            label = (hop.arrive, hops + 1)
            if label < best.get(hop.receiver, (float("inf"), 0)):
                best[hop.receiver] = label
                came_by[hop.receiver] = hop
                heapq.heappush(queue, (hop.arrive, hops + 1, hop.receiver))
    return None


def first_to_reach(plan: ContactPlan, holders: Iterable[str], start: float,
                   destinations: Collection[str], *, size: int = 0) -> Route | None:
    """Among ``holders`` (every node that holds the bundle at ``start``, e.g. every
    satellite that has a certificate), the earliest route to a destination; ties by hop
    count, then by the holder's name."""
    routes = [r for r in (earliest_arrival(plan, h, start, destinations, size=size)
                          for h in sorted(set(holders))) if r is not None]
    return min(routes, key=lambda r: (r.arrival, len(r.hops), r.source), default=None)


def _contacts_by_node(contacts: Iterable[Contact]) -> dict[str, list[Contact]]:
    out: dict[str, list[Contact]] = {}
    for c in contacts:
        out.setdefault(c.source, []).append(c)
        out.setdefault(c.target, []).append(c)
    return out


def _cross(contact: Contact, sender: str, ready: float, size: int) -> Hop | None:
    """``sender`` sending the bundle over ``contact`` once it holds it at ``ready``."""
    if contact.end <= ready:
        return None
    forward = contact.source == sender
    receiver = contact.target if forward else contact.source
    rate = contact.rate_forward_bps if forward else contact.rate_reverse_bps
    depart = max(ready, contact.start)
    sent = depart + 8 * size / rate
    if sent > contact.end:
        return None  # does not fit in what is left of the contact
    return Hop(contact, sender, receiver, depart, sent + contact.delay_at(depart))


def _path(came_by: dict[str, Hop], source: str, node: str) -> tuple[Hop, ...]:
    hops = []
    while node != source:
        hop = came_by[node]
        hops.append(hop)
        node = hop.sender
    return tuple(reversed(hops))

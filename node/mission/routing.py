"""Which satellite submits a certificate: the one through which it reaches the ground first
(issue #18: contact-graph routing on the plan).

The attestations of a task spread by gossip over the inter-satellite links, so the signers
hold the certificate when it forms, and any satellite an ISL window reaches can hold it
soon after. From the node's contact plan (``[link] plan``) and the names the satellites are
registered under (SatelliteRegistry, read verified), the route by which a certificate of
:data:`CERTIFICATE_BYTES` held by the signers first reaches a ground station
(:func:`sim_link.routing.first_to_reach`: directly at a signer's next pass, or relayed
over ISL windows to another satellite's pass). The route's last satellite (its *relay*)
submits first: the transaction goes out of its outbox at that pass. The other holders
follow, by their own next pass (their own outbox, no relay), each ``fallback`` plan seconds
after the one before it is due, in case the first did not land it (killed, a lost pass).
Holders the plan does not know come last, by address.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sim_link.plan import ContactPlan
from sim_link.routing import Route, earliest_arrival, first_to_reach

CERTIFICATE_BYTES = 2_048
"""About what a submitCertificate transaction of a few signatures weighs on the link."""


@dataclass(frozen=True)
class Turn:
    """A holder's place in line: its rank, the route it would take, when its turn starts."""

    signer: bytes
    rank: int
    route: Route | None
    due: float  # plan time from which it submits


def stations_of(plan: ContactPlan) -> set[str]:
    """The ground stations of ``plan``: a ground pass (a contact with an elevation) is
    stated satellite to station (:func:`sim_link.contacts.build_plan`)."""
    return {c.target for c in plan.contacts if c.max_elevation_deg is not None}


def turns(plan: ContactPlan, signers: Iterable[bytes], holders: Iterable[bytes],
          names: Mapping[bytes, str], now: float, fallback: float) -> list[Turn]:
    """The submitters' turns (module docstring): ``signers`` hold the certificate at
    ``now``; ``holders`` may also submit it (this node, whether or not it signed)."""
    stations = stations_of(plan)
    nodes = plan.nodes()
    by_name = {name: signer for signer, name in names.items() if name in nodes}
    known = [names[s] for s in signers if names.get(s) in nodes]
    best = first_to_reach(plan, known, now, stations, size=CERTIFICATE_BYTES) \
        if known and stations else None
    relay = by_name.get(best.last_relay) if best is not None else None
    candidates = sorted({*signers, *holders} - {relay})

    def own_way_down(signer: bytes) -> tuple[float, bytes, Route | None]:
        """Through its own outbox, so at its own next pass (no relay)."""
        name = names.get(signer)
        if name not in nodes or not stations:
            return (float("inf"), signer, None)
        own = ContactPlan(tuple(c for c in plan.contacts
                                if c.max_elevation_deg is not None and c.source == name))
        route = earliest_arrival(own, name, now, stations & own.nodes(),
                                 size=CERTIFICATE_BYTES) if own.contacts else None
        return (route.arrival if route else float("inf"), signer, route)

    ordered = sorted((own_way_down(s) for s in candidates), key=lambda r: (r[0], r[1]))
    line = ([] if relay is None else [(best.arrival, relay, best)]) + ordered  # type: ignore[union-attr]
    first = line[0][0] if line and line[0][0] != float("inf") else now
    return [Turn(signer, rank, route, now if rank == 0 else first + rank * fallback)
            for rank, (_, signer, route) in enumerate(line)]

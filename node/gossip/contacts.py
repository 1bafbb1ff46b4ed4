"""Dial a neighbour whenever the contact plan says its link is up (DESIGN.md, data flow 4).

Inter-satellite links come and go on a schedule both ends can compute from orbital elements
(:mod:`sim_link.contacts`). :func:`dial_on_contacts` follows one link of a
:class:`~sim_link.plan.ContactPlan`: at each window's start (AOS) it dials the neighbour's
multiaddr and keeps retrying until a connection is made or the window ends; every successful
:meth:`GossipNode.connect` runs the catch-up sync, so a node fetches exactly what it missed
while the link was down. Ground-station and emulator setups use the same code: the address is
wherever the link is reachable (the emulator's listening port in tests).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from node.gossip.host import GossipNode
from node.gossip.scoring import ScheduledLink
from sim_link.clock import PlanClock
from sim_link.plan import ContactPlan

log = logging.getLogger(__name__)


@dataclass
class ContactDials:
    """What :func:`dial_on_contacts` did, for status and tests."""

    connected: list[float] = field(default_factory=list)
    """Plan times of successful dials (one per window at most)."""
    failed_attempts: int = 0
    missed_windows: int = 0
    """Windows that ended before a dial succeeded."""
    synced: int = 0
    """Messages new to us fetched by the catch-up syncs after those dials."""


async def dial_on_contacts(gossip: GossipNode, plan: ContactPlan, link: str, addr: str,
                           clock: PlanClock, *, retry_s: float = 0.2,
                           dials: ContactDials | None = None) -> ContactDials:
    """Dial ``addr`` (a multiaddr with ``/p2p/<peer id>``) in every future window of ``link``
    (``retry_s`` wall seconds between attempts); return when the plan has no more windows.
    Cancel the task to stop following the plan.

    The node's peer scoring learns the link too: the neighbour is not penalised for being
    silent while the plan says its link is down (:class:`~node.gossip.scoring.ScheduledLink`)."""
    dials = dials if dials is not None else ContactDials()
    peer_id = addr.rsplit("/p2p/", 1)[-1]
    gossip.gossipsub.scorer.scheduled[peer_id] = ScheduledLink(plan, link, clock)
    for contact in plan.for_link(link):
        if contact.end <= clock.now():
            continue
        wait = clock.wall_at(contact.start) - clock.wall_now()
        if wait > 0:
            await asyncio.sleep(wait)
        while True:
            if clock.now() >= contact.end:
                dials.missed_windows += 1
                log.warning("link %s: no connection to %s in the window ending at %.0f",
                            link, peer_id, contact.end)
                break
            try:
                synced = await gossip.connect(addr)
            except Exception as exc:  # refused, reset, timed out: the link may lag the plan
                dials.failed_attempts += 1
                log.debug("link %s: dial %s failed: %r", link, addr, exc)
                await asyncio.sleep(retry_s)
                continue
            dials.connected.append(clock.now())
            dials.synced += synced
            break
    return dials

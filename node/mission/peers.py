"""Keeping the configured neighbours connected.

Each ``[gossip] peers`` entry is dialled whenever it is not connected: by the node with the
lower peer id at once, by the other after :data:`DIAL_GRACE` (so two nodes listing each other
rarely dial at the same moment, and either still reconnects alone). Every successful dial runs
the gossip store's catch-up sync both ways (:meth:`GossipNode.connect`), so a neighbour that
was down or unreachable fetches exactly what it missed.
"""

from __future__ import annotations

import asyncio
import logging

from node.gossip.config import GossipError
from node.gossip.host import GossipNode

log = logging.getLogger(__name__)

DIAL_EVERY = 1.0
"""Seconds between two looks at a neighbour's connection."""
DIAL_GRACE = 3.0
"""Seconds the higher peer id waits for the lower one to dial first."""
DIAL_TIMEOUT = 10.0


async def keep_peer(gossip: GossipNode, addr: str, connected: set[str]) -> None:
    """Keep ``addr`` (a multiaddr ending ``/p2p/<peer id>``) connected until cancelled;
    ``connected`` holds its peer id while it is."""
    peer = addr.rsplit("/p2p/", 1)[-1]
    loop = asyncio.get_running_loop()
    down_since: float | None = None
    while True:
        try:
            up = peer in await gossip.connected_peers()
        except GossipError:
            up = False
        if up:
            connected.add(peer)
            down_since = None
        else:
            connected.discard(peer)
            now = loop.time()
            down_since = now if down_since is None else down_since
            if gossip.peer_id < peer or now - down_since >= DIAL_GRACE:
                await _dial(gossip, addr, peer, connected)
        await asyncio.sleep(DIAL_EVERY)


async def _dial(gossip: GossipNode, addr: str, peer: str, connected: set[str]) -> None:
    try:
        async with asyncio.timeout(DIAL_TIMEOUT):
            synced = await gossip.connect(addr)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # refused, reset, timed out: it may be down
        log.debug("dial %s failed: %r", addr, exc)
        return
    connected.add(peer)
    log.info("connected to peer %s (%d message(s) caught up)", peer, synced)

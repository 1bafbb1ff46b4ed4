"""libp2p gossipsub transport for attestations (DESIGN.md, data flow 4).

* :mod:`node.gossip.host` -- :class:`GossipNode`, a py-libp2p gossipsub host run in its own
  trio thread behind an asyncio API, composed of :mod:`~node.gossip.config`
  (:class:`GossipConfig`), :mod:`~node.gossip.transport`, :mod:`~node.gossip.router`,
  :mod:`~node.gossip.cache`, :mod:`~node.gossip.bridge` (the one trio <-> asyncio bridge),
  :mod:`~node.gossip.bucket`, :mod:`~node.gossip.delivery` and :mod:`~node.gossip.sync`;
* :mod:`node.gossip.validator` -- :class:`AttestationValidator`, the topic validator;
* :mod:`node.gossip.store` -- :class:`GossipStore`, the durable message store behind delivery
  and catch-up;
* :mod:`node.gossip.service` -- :class:`AttestationService`: deliveries -> equivocation check,
  certificates, re-execution and co-signing.
"""

from node.gossip.config import TOPIC, GossipConfig, GossipError
from node.gossip.host import GossipNode
from node.gossip.service import AttestationService
from node.gossip.store import GossipStore
from node.gossip.validator import AttestationValidator

__all__ = ["TOPIC", "AttestationService", "AttestationValidator", "GossipConfig", "GossipError",
           "GossipNode", "GossipStore"]

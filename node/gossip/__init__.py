"""libp2p gossipsub transport for attestations (DESIGN.md, data flow 4).

* :mod:`node.gossip.host` -- :class:`GossipNode`, a py-libp2p gossipsub host run in its own
  trio thread behind an asyncio API (the one trio <-> asyncio bridge), :class:`GossipConfig`;
* :mod:`node.gossip.validator` -- :class:`AttestationValidator`, the topic validator.
"""

from node.gossip.host import TOPIC, GossipConfig, GossipError, GossipNode
from node.gossip.validator import AttestationValidator

__all__ = ["TOPIC", "AttestationValidator", "GossipConfig", "GossipError", "GossipNode"]

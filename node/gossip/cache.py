"""Message ids: ``sha256(data)`` everywhere, also in the gossip message cache.

Every node (py-libp2p and js-libp2p alike) must derive the same id from the same bytes
(:func:`node.attest.codec.message_id`); py-libp2p's default ``from || seqno`` differs from
js-libp2p's.
"""

from __future__ import annotations

from typing import Any

from libp2p.pubsub.mcache import CacheEntry, MessageCache

from node.attest.codec import message_id


def sha256_msg_id(msg: Any) -> bytes:
    """The pubsub ``msg_id_constructor``: ``sha256(msg.data)``."""
    return message_id(msg.data)


class Sha256MessageCache(MessageCache):
    """py-libp2p 0.8.1's gossip message cache keys messages by ``from || seqno`` whatever the
    pubsub ``msg_id_constructor`` is, so its IHAVEs advertise ids that no receiver's seen-cache
    (keyed by ``sha256(data)``) recognises and every IHAVE turns into an IWANT. Key it by the
    same id as everything else."""

    def put(self, msg: Any) -> None:
        mid = message_id(msg.data)
        if mid in self.msgs:
            return
        self.msgs[mid] = msg
        self.history[0].append(CacheEntry(mid, msg.topicIDs))

"""The gossipsub router and pubsub as we configure them (DESIGN.md, "facts learnt the hard
way").

Heartbeat 1 s (default 120 s); spam protection on with a raised limit (default 10 msg/s per
sender per topic, own publishes included); message id ``sha256(data)`` on every node, also in
the gossip message cache that IHAVE/IWANT use (:mod:`node.gossip.cache`); strict signing; a
topic validator that only accepts or rejects and also runs on our own publishes. A received
message is validated before it is marked seen, delivered or forwarded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from libp2p.pubsub.pubsub import Pubsub

from node.gossip.cache import Sha256MessageCache, sha256_msg_id
from node.gossip.config import GOSSIPSUB_PROTOCOLS, GossipConfig
from node.gossip.scoring import ScoredGossipSub


class CountingGossipSub(ScoredGossipSub):
    """GossipSub that counts the RPCs it drops (py-libp2p only logs them at debug level):
    ``dropped[(reason, "publish" | "control")]``, reason ``queue_full`` or ``oversized``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: Counter[tuple[str, str]] = Counter()

    def _handle_dropped_rpc(self, peer_id: Any, rpc: Any, reason: str) -> None:
        kind = "publish" if len(rpc.publish) else "control"
        self.dropped[(reason, kind)] += 1
        super()._handle_dropped_rpc(peer_id, rpc, reason)


def make_router(host: Any, cfg: GossipConfig,
                validator: Callable[[bytes], bool] | None) -> tuple[Pubsub, CountingGossipSub]:
    """``(pubsub, gossipsub)`` for ``host`` (on the trio loop, before the host runs);
    ``validator`` (``bytes -> bool``) becomes the topic validator when given."""
    gossipsub = CountingGossipSub(
        protocols=list(GOSSIPSUB_PROTOCOLS), degree=cfg.degree, degree_low=cfg.degree_low,
        degree_high=cfg.degree_high, heartbeat_interval=cfg.heartbeat_interval,
        heartbeat_initial_delay=0.1, gossip_window=cfg.gossip_window,
        gossip_history=cfg.gossip_history, spam_protection_enabled=True,
        max_messages_per_topic_per_second=cfg.spam_limit_per_second,
        min_mesh_diversity_ips=cfg.min_mesh_diversity_ips, scoring=cfg.scoring)
    gossipsub.mcache = Sha256MessageCache(cfg.gossip_window, cfg.gossip_history)
    pubsub = Pubsub(host, gossipsub, seen_ttl=cfg.seen_ttl, strict_signing=True,
                    msg_id_constructor=sha256_msg_id)
    if validator is not None:
        check = validator
        pubsub.set_topic_validator(cfg.topic, lambda _peer, msg: check(msg.data), False)
    return pubsub, gossipsub


def stop_timed_caches(pubsub: Any) -> None:
    """py-libp2p's seen-cache sweeps in a daemon thread of its own that Pubsub never stops."""
    seen = getattr(pubsub, "seen_messages", None)
    if seen is not None and hasattr(seen, "stop"):
        seen.stop()

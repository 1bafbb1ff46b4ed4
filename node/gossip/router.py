"""The gossipsub router and pubsub as we configure them (DESIGN.md, "facts learnt the hard
way").

Heartbeat 1 s (default 120 s); spam protection on with a raised limit (default 10 msg/s per
sender per topic, own publishes included); message id ``sha256(data)`` on every node, also in
the gossip message cache that IHAVE/IWANT use (:mod:`node.gossip.cache`); strict signing; a
topic validator that only accepts or rejects and also runs on our own publishes. A received
message is validated before it is marked seen, delivered or forwarded; one larger than
:data:`~node.gossip.config.MAX_MESSAGE_BYTES` (a bundle: than
:data:`node.gossip.bundle.MAX_BYTES`) is rejected there (it could be neither stored nor
served, so it must not be forwarded either).

Drops are counted, never silent: py-libp2p's outgoing queue drops (``queue_full`` /
``oversized``, logged at debug level only) and messages it accepts but does not forward (its
spam protection and equivocation checks) are counted in :attr:`CountingGossipSub.dropped`, and
``on_publish_dropped(peer_id)`` runs for every publish a peer missed so that the peer can be
asked to catch up from us. Accepted messages are handed to ``deliver`` directly
(:class:`OrbitalPubsub`), not through py-libp2p's lossy 32-deep subscription channel.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from libp2p.exceptions import ValidationError
from libp2p.pubsub.pubsub import Pubsub

from node.gossip import bundle
from node.gossip.cache import Sha256MessageCache, sha256_msg_id
from node.gossip.config import GOSSIPSUB_PROTOCOLS, MAX_MESSAGE_BYTES, GossipConfig
from node.gossip.scoring import ScoredGossipSub
from node.gossip.validator import Validator, Verdict, verdict_of

UNDECIDED_REMEMBERED = 4096
"""Most message ids :attr:`OrbitalPubsub.undecided` remembers."""


class CountingGossipSub(ScoredGossipSub):
    """GossipSub (with our peer scoring, :mod:`node.gossip.scoring`) that counts what it drops
    (py-libp2p only logs it at debug level):
    ``dropped[(reason, kind)]`` -- ``("queue_full" | "oversized", "publish" | "control")`` for
    outgoing RPCs, ``("spam" | "equivocation", "forward")`` for accepted messages it did not
    forward. ``on_publish_dropped(peer_id)`` runs (on the trio loop) for every outgoing RPC with
    publishes that a peer's queue dropped."""

    def __init__(self, *args: Any, on_publish_dropped: Callable[[str], None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dropped: Counter[tuple[str, str]] = Counter()
        self._dropped_lock = threading.Lock()  # bumped on the trio loop, read from asyncio
        self._on_publish_dropped = on_publish_dropped

    @property
    def dropped(self) -> dict[tuple[str, str], int]:
        with self._dropped_lock:
            return dict(self._dropped)

    def _count(self, reason: str, kind: str) -> None:
        with self._dropped_lock:
            self._dropped[(reason, kind)] += 1

    def _handle_dropped_rpc(self, peer_id: Any, rpc: Any, reason: str) -> None:
        if len(rpc.publish):
            self._count(reason, "publish")
            self._on_publish_dropped(str(peer_id))
        else:
            self._count(reason, "control")
        super()._handle_dropped_rpc(peer_id, rpc, reason)

    def _check_spam_protection(self, peer_id: Any, msg: Any) -> bool:
        ok = bool(super()._check_spam_protection(peer_id, msg))
        if not ok:
            self._count("spam", "forward")
        return ok

    def _check_equivocation(self, msg: Any) -> bool:
        ok = bool(super()._check_equivocation(msg))
        if not ok:
            self._count("equivocation", "forward")
        return ok


class OrbitalPubsub(Pubsub):
    """Pubsub that hands every accepted message on our topic to ``deliver(data)`` (on the trio
    loop, synchronously; it must never wait) instead of py-libp2p's 32-deep subscription
    channel, which drops when full after the message was marked seen and forwarded.

    A message our validator could not decide (:attr:`Verdict.IGNORE`) fails py-libp2p's
    validation (so it is neither marked seen nor forwarded) but its failure is not cached: a
    later copy is validated again. Its id stays in :attr:`undecided` (the newest
    :data:`UNDECIDED_REMEMBERED`, trio thread only) until a gossip copy is decided, so that
    peer scoring can tell "not now" from "invalid" (a copy decided by sync leaves its id
    there: harmless, the next gossip copy is validated again and removes it)."""

    def __init__(self, *args: Any, topic: str, deliver: Callable[[bytes], None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._topic = topic
        self._deliver = deliver
        self.undecided: OrderedDict[bytes, None] = OrderedDict()

    def note_verdict(self, msg_id: bytes, verdict: Verdict) -> None:
        if verdict is Verdict.IGNORE:
            self.undecided[msg_id] = None
            self.undecided.move_to_end(msg_id)
            while len(self.undecided) > UNDECIDED_REMEMBERED:
                self.undecided.popitem(last=False)
        else:
            self.undecided.pop(msg_id, None)

    def notify_subscriptions(self, publish_message: Any) -> None:
        if self._topic in publish_message.topicIDs:
            self._deliver(bytes(publish_message.data))

    async def validate_msg(self, msg_forwarder: Any, msg: Any) -> None:
        try:
            await super().validate_msg(msg_forwarder, msg)
        except ValidationError:
            msg_id = self._msg_id_constructor(msg)
            if msg_id in self.undecided:  # not invalid, only not decided yet
                self.validation_cache._remove(msg_id)
                self.router.scorer.excuse(msg_forwarder)  # no P4 for it (scoring.py)
            raise


def make_router(host: Any, cfg: GossipConfig, validator: Validator | None, *,
                deliver: Callable[[bytes], None], on_publish_dropped: Callable[[str], None],
                on_undecided: Callable[[str], None]
                ) -> tuple[OrbitalPubsub, CountingGossipSub]:
    """``(pubsub, gossipsub)`` for ``host`` (on the trio loop, before the host runs).

    ``validator``, when given, and the size limit make the topic validator; ``deliver`` takes
    every accepted message (:meth:`node.gossip.delivery.Delivery.offer`);
    ``on_publish_dropped`` see :class:`CountingGossipSub`; ``on_undecided(peer_id)`` runs (on
    the trio loop) when a message that peer forwarded could not be decided."""
    gossipsub = CountingGossipSub(
        protocols=list(GOSSIPSUB_PROTOCOLS), degree=cfg.degree, degree_low=cfg.degree_low,
        degree_high=cfg.degree_high, heartbeat_interval=cfg.heartbeat_interval,
        heartbeat_initial_delay=0.1, gossip_window=cfg.gossip_window,
        gossip_history=cfg.gossip_history, spam_protection_enabled=True,
        max_messages_per_topic_per_second=cfg.spam_limit_per_second,
        min_mesh_diversity_ips=cfg.min_mesh_diversity_ips, scoring=cfg.scoring,
        on_publish_dropped=on_publish_dropped)
    gossipsub.mcache = Sha256MessageCache(cfg.gossip_window, cfg.gossip_history)
    pubsub = OrbitalPubsub(host, gossipsub, seen_ttl=cfg.seen_ttl, strict_signing=True,
                           msg_id_constructor=sha256_msg_id, topic=cfg.topic, deliver=deliver)

    def check(forwarder: Any, msg: Any) -> bool:
        data = msg.data
        # a bundle is stored as its 250-byte attestations (node.gossip.bundle)
        if len(data) > (bundle.MAX_BYTES if bundle.is_bundle(data) else MAX_MESSAGE_BYTES):
            return False
        verdict = verdict_of(validator, data)
        pubsub.note_verdict(sha256_msg_id(msg), verdict)
        if verdict is Verdict.IGNORE:
            on_undecided(str(forwarder))
        return verdict is Verdict.ACCEPT

    pubsub.set_topic_validator(cfg.topic, check, False)
    return pubsub, gossipsub


def stop_timed_caches(pubsub: Any) -> None:
    """py-libp2p's seen-cache sweeps in a daemon thread of its own that Pubsub never stops."""
    seen = getattr(pubsub, "seen_messages", None)
    if seen is not None and hasattr(seen, "stop"):
        seen.stop()

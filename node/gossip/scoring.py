"""Gossipsub peer scoring for the attestation topic (gossipsub v1.1, "Peer Scoring"; issue #17
item 5).

py-libp2p 0.8.1 ships the score function (``libp2p.pubsub.score``) with every weight 0 and
every threshold at minus infinity, i.e. off. :func:`score_params` turns on what we rely on and
:class:`ContactAwareScorer` adds what py-libp2p lacks. Spec names first, py-libp2p's in
parentheses where they differ:

* **P4, invalid messages** -- every message our topic validator rejects (a forged or malformed
  attestation, a bundle with an invalid entry; not one it cannot decide on now,
  :attr:`~node.gossip.validator.Verdict.IGNORE`) costs the peer that sent it
  ``invalid_weight`` (py-libp2p's P4 is linear, the spec squares it), decaying by
  ``invalid_decay`` per heartbeat (1 s: half-life ~69 s).
* **P7, behaviour penalty** (py-libp2p's ``p5_behavior_*``) -- what py-libp2p detects: more
  than ``spam_limit_per_second`` messages per second from one peer (5 per excess message),
  GRAFT right after a PRUNE (10), IWANT/IHAVE spam (5), equivocation (100). Above
  ``behaviour_threshold`` each unit costs ``behaviour_weight``.
* **P3, mesh message deliveries** -- py-libp2p keeps a positive counter nothing feeds.
  :class:`ContactAwareScorer` implements the spec's deficit penalty, ``delivery_weight *
  deficit**2`` with ``deficit = expected - deliveries``, where a mesh peer's *deliveries* are
  the valid messages it sent us and the IDONTWANTs it sent us (gossipsub v1.2: a peer
  announces every message it received to its mesh, so in a sparse ISL topology a neighbour
  that never forwards to us -- everything it has came from us -- still shows it is alive; the
  spec's duplicate-window count is not observable in py-libp2p and IDONTWANT suppresses most
  duplicates anyway), and ``expected = min(delivery_threshold, messages the topic carried)
  - delivery_slack`` (both counts decayed by ``delivery_decay`` per heartbeat; the topic's as
  of the last heartbeat, and ``delivery_slack`` messages allowed to be still on their way), so a
  quiet topic costs nobody anything. It applies only after ``delivery_activation`` seconds in
  the mesh. Its largest value, ``delivery_weight * (delivery_threshold - delivery_slack)**2``,
  stays above the gossip threshold: silence alone only ranks mesh peers, it never gates or
  graylists.
* **Scheduled outages are not silence.** A peer whose link is down *by the contact plan*
  (:class:`ScheduledLink`, the same plan :func:`node.gossip.contacts.dial_on_contacts`
  follows) is exempt from P3 while the plan says its link is down, and for
  ``delivery_activation`` seconds after its next AOS (time to resume delivering).
* **Retained scores** (the spec's ``RetainScore``) -- py-libp2p forgets a peer's counters when
  it disconnects, so a graylisted peer could reconnect with a clean slate. Counters of a
  disconnected peer are kept (and keep decaying) for ``retain_score`` seconds.
* **Graylisting** -- below ``graylist_threshold`` every RPC from the peer is ignored and
  nothing is sent to it: its messages are dropped before validation and no message is
  forwarded to it (py-libp2p's ``allow_publish`` gate, which it applies in both directions),
  its GRAFTs are refused, and :class:`ScoredGossipSub` also ignores its control messages
  (IHAVE, IWANT, IDONTWANT, PRUNE), which py-libp2p would act on, and never picks it as a
  mesh, fanout or gossip peer (py-libp2p's selection ignores scores). Below
  ``gossip_threshold`` no IHAVE is sent to it and we do not GRAFT it. py-libp2p uses its
  one ``allow_publish`` gate both for accepting a
  peer's messages and for sending to it, where the spec has a graylist threshold (ignore) below
  a publish threshold (do not flood our publishes to it); a gate above the graylist threshold
  would stop validating the peer's messages, and so stop counting its invalid ones, before it
  could ever be graylisted. The gate is therefore the graylist threshold (the spec's
  ``publish_threshold`` is not used separately).

Thresholds: ``graylist < gossip <= 0``. With the defaults a peer is graylisted after 16
invalid messages within a minute or so, or after a couple of GRAFT floods or spam bursts;
honest peers normally score 0 (P1, P2 and P6 stay off).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.score import PeerScorer, ScoreParams, TopicScoreParams

from sim_link.clock import PlanClock
from sim_link.plan import ContactPlan


@dataclass(frozen=True)
class ScoringConfig:
    """Score weights and thresholds (see the module docstring); heartbeats are 1 s."""

    invalid_weight: float = 5.0        # P4, per invalid message
    invalid_cap: float = 1000.0
    invalid_decay: float = 0.99
    behaviour_weight: float = 4.0      # P7, per unit of py-libp2p's behaviour penalties
    behaviour_threshold: float = 1.0
    behaviour_decay: float = 0.99
    delivery_weight: float = 2.0       # P3 deficit: weight * deficit**2 (max 2 * 4**2 = 32)
    delivery_threshold: float = 6.0
    delivery_slack: float = 2.0        # deliveries that may still be in flight
    delivery_decay: float = 0.9
    delivery_activation: float = 10.0  # seconds in the mesh (or after AOS) before P3 counts
    gossip_threshold: float = -40.0
    graylist_threshold: float = -80.0
    retain_score: float = 600.0        # seconds a disconnected peer's counters are kept

    def __post_init__(self) -> None:
        if not self.graylist_threshold < self.gossip_threshold <= 0:
            raise ValueError("thresholds must satisfy graylist < gossip <= 0")
        if not 0 <= self.delivery_slack <= self.delivery_threshold:
            raise ValueError("delivery_slack must be between 0 and delivery_threshold")
        reach = self.delivery_threshold - self.delivery_slack
        if self.delivery_weight * reach ** 2 >= -self.gossip_threshold:
            raise ValueError("the P3 deficit penalty alone must not reach the gossip threshold")


def score_params(cfg: ScoringConfig) -> ScoreParams:
    """py-libp2p's :class:`ScoreParams` for ``cfg`` (its P3 counter decays; our scorer uses
    it as the delivery count, with py-libp2p's positive P3 weight left at 0)."""
    return ScoreParams(
        p3_mesh_message_deliveries=TopicScoreParams(weight=0.0, cap=0.0,
                                                    decay=cfg.delivery_decay),
        p4_invalid_messages=TopicScoreParams(weight=cfg.invalid_weight, cap=cfg.invalid_cap,
                                             decay=cfg.invalid_decay),
        p5_behavior_penalty_weight=cfg.behaviour_weight,
        p5_behavior_penalty_decay=cfg.behaviour_decay,
        p5_behavior_penalty_threshold=cfg.behaviour_threshold,
        publish_threshold=cfg.graylist_threshold, gossip_threshold=cfg.gossip_threshold,
        graylist_threshold=cfg.graylist_threshold,
        accept_px_threshold=0.0)


@dataclass(frozen=True)
class ScheduledLink:
    """The link of the contact plan a neighbour is reached by: it is in a scheduled outage
    while no window of ``link`` covers the plan's *now* (``clock``)."""

    plan: ContactPlan
    link: str
    clock: PlanClock

    def in_outage(self) -> bool:
        return self.plan.contact_at(self.link, self.clock.now()) is None


class ContactAwareScorer(PeerScorer):
    """py-libp2p's scorer plus the P3 deficit, the scheduled-outage exemption, retained
    scores and gates that use the whole score (see the module docstring). Runs on the host's
    trio thread. ``scheduled`` maps a peer id (base58) to its :class:`ScheduledLink`; entries
    are added from the asyncio thread (:func:`node.gossip.contacts.dial_on_contacts`), one dict
    write each."""

    def __init__(self, cfg: ScoringConfig, *,
                 is_connected: Callable[[ID], bool] = lambda _peer: True,
                 mesh: Callable[[], Mapping[str, set[ID]]] = dict,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(score_params(cfg))
        self.cfg = cfg
        self.scheduled: dict[str, ScheduledLink] = {}
        self.is_connected = is_connected
        self.mesh = mesh
        self._clock = clock
        self.mesh_since: dict[ID, dict[str, float]] = defaultdict(dict)
        self.quiet_until: dict[ID, float] = {}   # end of the last scheduled outage seen
        self.topic_traffic: dict[str, float] = defaultdict(float)
        self.expected: dict[str, float] = {}  # per topic, as of the last heartbeat
        self.gone_since: dict[ID, float] = {}
        self._excused: dict[ID, int] = {}

    def excuse(self, peer: ID) -> None:
        """The message ``peer`` forwarded, about to be counted invalid, was only undecided
        (:attr:`node.gossip.validator.Verdict.IGNORE`): py-libp2p reports it as invalid right
        after validation, with no await between, so the next report for ``peer`` is skipped."""
        self._excused[peer] = self._excused.get(peer, 0) + 1

    def on_invalid_message(self, peer: ID, topic: str) -> None:
        excused = self._excused.pop(peer, 0)
        if excused:
            if excused > 1:
                self._excused[peer] = excused - 1
            return
        super().on_invalid_message(peer, topic)

    # ---- events ------------------------------------------------------------------------

    def on_join_mesh(self, peer: ID, topic: str) -> None:
        super().on_join_mesh(peer, topic)
        self.mesh_since[peer].setdefault(topic, self._clock())
        self.gone_since.pop(peer, None)

    def on_leave_mesh(self, peer: ID, topic: str) -> None:
        super().on_leave_mesh(peer, topic)
        self.mesh_since[peer].pop(topic, None)

    def on_first_delivery(self, peer: ID, topic: str) -> None:
        super().on_first_delivery(peer, topic)
        self.topic_traffic[topic] += 1.0
        self.on_mesh_delivery(peer, topic)

    def on_mesh_delivery(self, peer: ID, topic: str) -> None:
        if topic in self.mesh_since.get(peer, {}):
            super().on_mesh_delivery(peer, topic)

    def remove_peer(self, peer: ID) -> None:
        """Disconnected: out of every mesh; counters retained (see :meth:`on_heartbeat`)."""
        self.mesh_since.pop(peer, None)
        self.remove_peer_ip(peer)
        self.gone_since.setdefault(peer, self._clock())

    def on_heartbeat(self, dt_seconds: float = 1.0) -> None:
        super().on_heartbeat(dt_seconds)
        cfg = self.cfg
        for topic in self.topic_traffic:
            self.topic_traffic[topic] *= cfg.delivery_decay
            self.expected[topic] = (min(cfg.delivery_threshold, self.topic_traffic[topic])
                                    - cfg.delivery_slack)
        now = self._clock()
        for peer, since in list(self.gone_since.items()):
            if self.is_connected(peer):
                del self.gone_since[peer]
            elif now - since > self.cfg.retain_score:
                del self.gone_since[peer]
                self.quiet_until.pop(peer, None)
                super().remove_peer(peer)
        self._follow_mesh(now)
        for peer in list(self.mesh_since):
            self._outage_check(peer, now)

    def _follow_mesh(self, now: float) -> None:
        """py-libp2p adds and removes mesh peers in places that do not tell the scorer:
        take the router's mesh as it is at each heartbeat."""
        current = {(peer, topic) for topic, peers in self.mesh().items() for peer in peers}
        for peer, topic in current:
            self.mesh_since[peer].setdefault(topic, now)
        for peer in list(self.mesh_since):
            topics = self.mesh_since[peer]
            for topic in [t for t in topics if (peer, t) not in current]:
                del topics[topic]
            if not topics:
                del self.mesh_since[peer]

    # ---- score -------------------------------------------------------------------------

    def _outage_check(self, peer: ID, now: float) -> bool:
        link = self.scheduled.get(str(peer))
        if link is not None and link.in_outage():
            self.quiet_until[peer] = now + self.cfg.delivery_activation
            return True
        return now < self.quiet_until.get(peer, 0.0)

    def delivery_penalty(self, peer: ID, topic: str) -> float:
        """The P3 deficit penalty (>= 0) of ``peer`` on ``topic`` now."""
        cfg = self.cfg
        joined = self.mesh_since.get(peer, {}).get(topic)
        now = self._clock()
        if joined is None or now - joined < cfg.delivery_activation:
            return 0.0
        if self._outage_check(peer, now):
            return 0.0
        deficit = self.expected.get(topic, 0.0) - self.mesh_message_deliveries[peer][topic]
        return cfg.delivery_weight * deficit ** 2 if deficit > 0 else 0.0

    def topic_score(self, peer: ID, topic: str) -> float:
        return super().topic_score(peer, topic) - self.delivery_penalty(peer, topic)

    def allow_publish(self, peer: ID, topics: list[str]) -> bool:
        """Accept messages from ``peer`` and send messages to it: not graylisted (see the
        module docstring). py-libp2p's single-topic gate leaves out the GRAFT-flood,
        IWANT/IHAVE-spam and equivocation penalties; ours uses the whole score."""
        return bool(topics) and not self.is_graylisted(peer, topics)

    def allow_gossip(self, peer: ID, topics: list[str]) -> bool:
        return bool(topics) and self.score(peer, topics) >= self.params.gossip_threshold


class ScoredGossipSub(GossipSub):
    """GossipSub with :class:`ContactAwareScorer`: ``scoring`` configures it; IDONTWANTs
    count as mesh deliveries (P3); a graylisted peer's control messages are ignored."""

    def __init__(self, *args: Any, scoring: ScoringConfig | None = None, **kwargs: Any) -> None:
        cfg = scoring or ScoringConfig()
        super().__init__(*args, score_params=score_params(cfg), **kwargs)
        self.scorer: ContactAwareScorer = ContactAwareScorer(
            cfg, is_connected=lambda peer: peer in self.peer_protocol,
            mesh=lambda: self.mesh)
        self.graylisted_rpcs = 0
        """Control messages ignored because their sender was graylisted."""

    async def handle_rpc(self, rpc: Any, sender_peer_id: ID) -> None:
        if self.scorer.is_graylisted(sender_peer_id, list(self.mesh)):
            self.graylisted_rpcs += 1
            return
        await super().handle_rpc(rpc, sender_peer_id)

    def _get_in_topic_gossipsub_peers_from_minus(self, topic: str, num_to_select: int,
                                                 minus: Iterable[ID],
                                                 backoff_check: bool = False) -> list[ID]:
        # py-libp2p picks mesh (backoff_check), fanout and gossip peers here without looking
        # at scores: never a graylisted peer, and no GRAFT below the gossip threshold
        floor = (self.scorer.cfg.gossip_threshold if backoff_check
                 else self.scorer.cfg.graylist_threshold)
        peers = self.pubsub.peer_topics.get(topic, ()) if self.pubsub is not None else ()
        low = {p for p in peers if self.scorer.score(p, [topic]) < floor}
        return super()._get_in_topic_gossipsub_peers_from_minus(
            topic, num_to_select, set(minus) | low, backoff_check)

    async def on_peer_subscribed(self, peer_id: ID, topic: str) -> None:
        if self.scorer.score(peer_id, [topic]) < self.scorer.cfg.gossip_threshold:
            return  # no event-driven GRAFT either
        await super().on_peer_subscribed(peer_id, topic)

    async def handle_idontwant(self, idontwant_msg: Any, sender_peer_id: ID) -> None:
        for topic in self.mesh:
            self.scorer.on_mesh_delivery(sender_peer_id, topic)
        await super().handle_idontwant(idontwant_msg, sender_peer_id)

    def peer_scores(self) -> dict[str, float]:
        """Score of every connected or retained peer on our mesh topics (trio thread)."""
        topics = list(self.mesh)
        peers = set(self.peer_protocol) | set(self.scorer.gone_since)
        return {str(p): self.scorer.score(p, topics) for p in peers}


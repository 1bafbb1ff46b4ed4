"""Peer scoring (node.gossip.scoring) with real py-libp2p hosts on 127.0.0.1: a peer sending
invalid attestations (P4) or flooding past the rate limit (P7) is graylisted -- its messages
ignored, nothing forwarded to it -- and stays graylisted when it reconnects; a neighbour whose
link is down by the contact plan (the link emulator stalls it) is not penalised for its
silence, while an observer that does not know the plan penalises the same silence (P3); the
scorer alone: a disconnected peer's score is retained for retain_score seconds, then
forgotten."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from node.attest import attest, encode
from node.gossip import GossipConfig, GossipNode
from node.gossip.contacts import dial_on_contacts
from node.gossip.scoring import ScoringConfig
from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan
from sim_link.proxy import LinkEmulator

from gossip_attestations import CHAIN_ID, CONTRACT, FORGER, attestation, make_validator, result

TIMEOUT = 30.0
GRAYLIST = ScoringConfig().graylist_threshold


@pytest.fixture
async def nodes() -> AsyncIterator[list[GossipNode]]:
    started: list[GossipNode] = []
    yield started
    await asyncio.gather(*(n.stop() for n in started), return_exceptions=True)


async def start(nodes: list[GossipNode], name: str, *, validate: bool = True,
                config: GossipConfig | None = None) -> GossipNode:
    node = await GossipNode.start(key_seed=f"scoring {name}",
                                  validator=make_validator() if validate else None,
                                  config=config)
    nodes.append(node)
    return node


async def meshed(a: GossipNode, b: GossipNode) -> None:
    async with asyncio.timeout(TIMEOUT):
        while b.peer_id not in await a.mesh_peers() or a.peer_id not in await b.mesh_peers():
            await asyncio.sleep(0.05)


async def score_of(node: GossipNode, peer: GossipNode) -> float:
    return (await node.peer_scores())[peer.peer_id]


async def until_graylisted(victim: GossipNode, attacker: GossipNode) -> None:
    async with asyncio.timeout(TIMEOUT):
        while (await victim.peer_scores()).get(attacker.peer_id, 0.0) >= GRAYLIST:
            await asyncio.sleep(0.05)


async def assert_ignored_both_ways(victim: GossipNode, attacker: GossipNode,
                                   honest: GossipNode, epoch: int) -> None:
    """A valid attestation from the attacker is not delivered by the victim; one the victim
    publishes reaches the honest peer but is not forwarded to the attacker."""
    from_attacker, from_victim = attestation(0, epoch=epoch), attestation(1, epoch=epoch + 1)
    await attacker.publish(from_attacker)
    await victim.publish(from_victim)
    async with asyncio.timeout(TIMEOUT):
        while from_victim not in honest.stored() or from_attacker not in attacker.stored():
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # what was going to arrive has arrived
    assert from_attacker not in victim.stored() and from_attacker not in honest.stored()
    assert from_victim not in attacker.stored()


@pytest.mark.slow
async def test_invalid_attestations_graylist_the_sender_and_reconnecting_does_not_wash_it(
        nodes: list[GossipNode]) -> None:
    victim, honest = await start(nodes, "victim"), await start(nodes, "honest")
    attacker = await start(nodes, "attacker", validate=False)  # publishes anything
    await honest.connect(victim.listen_addr + f"/p2p/{victim.peer_id}")
    await attacker.connect(victim.listen_addr + f"/p2p/{victim.peer_id}")
    await meshed(victim, honest)
    await meshed(victim, attacker)
    assert await score_of(victim, attacker) == 0.0

    for epoch in range(20):  # 20 forgeries x P4 weight 5 = -100 < -80
        await attacker.publish(encode(attest(result(epoch=epoch), FORGER, CHAIN_ID, CONTRACT)))
    await until_graylisted(victim, attacker)
    assert await score_of(victim, honest) == 0.0
    await assert_ignored_both_ways(victim, attacker, honest, epoch=100)
    assert victim.gossipsub.graylisted_rpcs > 0  # its control messages are ignored too

    # py-libp2p forgets a disconnected peer's score; ours is retained
    await attacker.stop()
    again = await start(nodes, "attacker", validate=False)  # same seed: same peer id
    assert again.peer_id == attacker.peer_id
    await again.connect(victim.listen_addr + f"/p2p/{victim.peer_id}", sync=False)
    assert await score_of(victim, again) < GRAYLIST
    assert again.peer_id not in await victim.mesh_peers()  # its GRAFTs are refused
    await assert_ignored_both_ways(victim, again, honest, epoch=200)


@pytest.mark.slow
async def test_flooding_past_the_rate_limit_graylists_the_sender(
        nodes: list[GossipNode]) -> None:
    strict = GossipConfig(spam_limit_per_second=20.0)
    victim = await start(nodes, "victim", config=strict)
    honest = await start(nodes, "honest", config=strict)
    flooder = await start(nodes, "flooder",
                          config=GossipConfig(publish_rate=1000.0, publish_burst=100))
    await honest.connect(victim.listen_addr + f"/p2p/{victim.peer_id}")
    await flooder.connect(victim.listen_addr + f"/p2p/{victim.peer_id}")
    await meshed(victim, flooder)
    await meshed(victim, honest)
    # valid attestations, far above 20/s: P7 (5 per excess message x weight 4)
    await asyncio.gather(*(flooder.publish(attestation(k % 3, epoch=1000 + k))
                           for k in range(80)))
    await until_graylisted(victim, flooder)
    assert await score_of(victim, honest) == 0.0
    # anti-entropy syncs from honest only: a sync is no way around the scores
    assert await victim.peers_in_good_standing() == {honest.peer_id}
    await assert_ignored_both_ways(victim, flooder, honest, epoch=5000)
    # nor does a sync bring in what the victim ignored: it neither syncs from the flooder
    # (asked to sync back, or spreading what a sync brought) nor answers the flooder's syncs
    assert await victim.sync_from(flooder.peer_id) == 0 and victim.sync_refused == 1
    assert attestation(0, epoch=5000) not in victim.stored()
    with pytest.raises(EOFError):  # closed unanswered (py-libp2p's StreamEOF)
        await flooder.sync_from(victim.peer_id, sync_back=True)
    assert victim.sync_serves_refused == 1 and victim.sync_refused == 1


T0 = 1_000_000.0
LINK = "SATS-SATV"
# quick P3 for the test: deliveries halve every heartbeat, counted after 2 s in the mesh
QUICK_P3 = GossipConfig(scoring=ScoringConfig(delivery_decay=0.5, delivery_activation=2.0))


def contact(start: float, end: float) -> Contact:
    return Contact("SATS", "SATV", T0 + start, T0 + end, 1e6, 1e6, ((T0 + start, 0.002),))


async def publish_steadily(node: GossipNode, first_epoch: int, stop: asyncio.Event) -> None:
    epoch = first_epoch
    while not stop.is_set():
        await node.publish(attestation(epoch % 3, epoch=epoch))
        epoch += 1
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_silence_during_a_scheduled_outage_is_not_penalised(
        nodes: list[GossipNode]) -> None:
    # publisher -> informed, publisher -> uninformed (direct); informed <-> silent and
    # uninformed <-> silent through link emulators that stall during the plan's LOS
    publisher = await start(nodes, "publisher", config=QUICK_P3)
    informed = await start(nodes, "informed", config=QUICK_P3)
    uninformed = await start(nodes, "uninformed", config=QUICK_P3)
    silent = await start(nodes, "silent", config=QUICK_P3)
    clock = PlanClock(T0 + 0.0, 1.0)  # plan time = wall time from now
    plan = ContactPlan((contact(-1, 8), contact(14, 600)), "isl")
    host, port = silent.listen_addr.split("/")[2], int(silent.listen_addr.split("/")[4])
    emus = [LinkEmulator(plan, LINK, ("127.0.0.1", 0), (host, port), clock, on_los="stall")
            for _ in range(2)]
    for emu in emus:
        await emu.start()
    stop = asyncio.Event()
    try:
        for node in (informed, uninformed):
            await node.connect(publisher.listen_addr + f"/p2p/{publisher.peer_id}")
        via = [f"/ip4/127.0.0.1/tcp/{emu.port}/p2p/{silent.peer_id}" for emu in emus]
        async with asyncio.TaskGroup() as group:
            # the informed node follows the plan for this link; the other just dials
            dialler = group.create_task(dial_on_contacts(informed, plan, LINK, via[0], clock))
            await uninformed.connect(via[1])
            for node in (informed, uninformed):
                await meshed(node, silent)
            traffic = group.create_task(publish_steadily(publisher, 1, stop))

            async with asyncio.timeout(TIMEOUT):  # silent delivers (IDONTWANTs) while up
                while clock.now() < T0 + 6:
                    assert await score_of(informed, silent) >= 0
                    assert await score_of(uninformed, silent) >= 0
                    await asyncio.sleep(0.25)
            while clock.now() < T0 + 12.5:  # LOS from 8: frozen, still connected, silent
                await asyncio.sleep(0.25)
            assert silent.peer_id in await uninformed.mesh_peers()
            assert silent.peer_id in await informed.mesh_peers()
            assert await score_of(uninformed, silent) < 0  # silence costs without the plan
            assert await score_of(informed, silent) == 0.0  # not during a scheduled outage

            inbox = silent.subscribe()
            while clock.now() < T0 + 22:  # AOS at 14: the stalled bytes flow, P3 resumes
                assert await score_of(informed, silent) >= 0
                await asyncio.sleep(0.25)
            assert await score_of(informed, silent) >= 0
            assert not inbox.empty()  # it hears the traffic again
            stop.set()
            await traffic
            dialler.cancel()
    finally:
        for emu in emus:
            await emu.stop()
    assert informed.gossipsub.scorer.scheduled[silent.peer_id].link == LINK
    assert dataclasses.asdict(QUICK_P3.scoring)["delivery_decay"] == 0.5


def test_scorer_retains_a_disconnected_peer_then_forgets_it_and_exempts_scheduled_outages(
) -> None:
    from libp2p.peer.id import ID

    from node.gossip.scoring import ContactAwareScorer, ScheduledLink

    now = [100.0]
    topic = "t"
    cfg = ScoringConfig(delivery_activation=2.0, retain_score=60.0)
    mesh: dict[str, set[ID]] = {topic: set()}
    connected: set[ID] = set()
    scorer = ContactAwareScorer(cfg, is_connected=connected.__contains__,
                                mesh=lambda: mesh, clock=lambda: now[0])
    bad, quiet, away = (ID(bytes([0x00, 0x01, k])) for k in (1, 2, 3))
    for _ in range(20):
        scorer.on_invalid_message(bad, topic)
    assert scorer.is_graylisted(bad, [topic]) and not scorer.allow_publish(bad, [topic])
    scorer.remove_peer(bad)  # disconnected: still graylisted ...
    now[0] += 30
    scorer.on_heartbeat()
    assert scorer.is_graylisted(bad, [topic])
    now[0] += 31
    scorer.on_heartbeat()  # ... until retain_score has passed
    assert not scorer.is_graylisted(bad, [topic]) and scorer.score(bad, [topic]) == 0.0

    # two silent mesh peers while the topic carries traffic; one's link is down by the plan
    plan = ContactPlan((contact(-100, -50), contact(50, 60)), "isl")  # down from T0 to 50
    clock = PlanClock(T0, 1.0, monotonic=lambda: now[0])
    scorer.scheduled[str(away)] = ScheduledLink(plan, LINK, clock)
    mesh[topic] |= {quiet, away}
    connected |= {quiet, away}
    scorer.on_heartbeat()
    for _ in range(10):
        scorer.on_first_delivery(ID(b"\x00\x01\x09"), topic)  # from someone else
        now[0] += 1
        scorer.on_heartbeat()
    assert scorer.delivery_penalty(quiet, topic) > 0
    assert scorer.score(quiet, [topic]) > cfg.gossip_threshold  # silence alone never gates
    assert scorer.delivery_penalty(away, topic) == 0.0


@pytest.mark.slow
async def test_what_the_validator_cannot_decide_costs_the_sender_nothing(
        nodes: list[GossipNode]) -> None:
    """Retry is not reject: 20 attestations (and a bundle) the victim cannot decide while its
    registry is down leave the sender's score at 0; 20 forgeries would graylist it."""
    from node.gossip.bundle import encode_bundle
    from node.gossip.validator import AttestationValidator

    from gossip_attestations import MODEL, SIGNERS

    class Down:
        up = False

        def is_active(self, address: bytes) -> bool:
            if not self.up:
                raise ConnectionError("registry unreachable")
            return bytes(address) in {s.address for s in SIGNERS}

    registry = Down()
    victim = await GossipNode.start(key_seed="scoring undecided victim",
                                    validator=AttestationValidator(registry, [MODEL], CHAIN_ID,
                                                                   CONTRACT))
    nodes.append(victim)
    sender = await start(nodes, "undecided sender", validate=False)
    await sender.connect(victim.listen_addr + f"/p2p/{victim.peer_id}")
    await meshed(victim, sender)
    batch = [attestation(k % 3, epoch=300 + k) for k in range(22)]
    for data in batch[:20]:
        await sender.publish(data)
    await sender.publish(encode_bundle(batch[20:]))
    undecided = victim.validator.attestations.undecided
    async with asyncio.timeout(TIMEOUT):
        while undecided["ConnectionError"] < 22:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    assert await score_of(victim, sender) == 0.0
    assert victim.validator.counts() == {"undecided": 1}
    registry.up = True  # decided later (catch-up), nothing lost
    await victim.sync_from(sender.peer_id)
    async with asyncio.timeout(TIMEOUT):
        while set(victim.stored()) != set(batch):
            await asyncio.sleep(0.05)
    assert await score_of(victim, sender) == 0.0

"""Gossip through the sim_link emulator: a satellite reaches its neighbour only inside the
contact plan's windows (the emulator resets connections at LOS); what was gossiped while the
link was down arrives when it returns, because the node dials at AOS and catches up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest

from node.gossip import GossipConfig, GossipNode
from node.gossip.contacts import dial_on_contacts
from sim_link.clock import PlanClock
from sim_link.plan import Contact, ContactPlan
from sim_link.proxy import LinkEmulator, LinkEvent

from gossip_attestations import attestation, make_validator

T0 = 1_000_000.0
SCALE = 30.0          # 60 plan seconds per 2 wall seconds
TIMEOUT = 20.0


def window(start: float, end: float) -> Contact:
    return Contact("SATB", "SATA", T0 + start, T0 + end, 1e6, 1e6, ((T0 + start, 0.004),))


@pytest.fixture
async def nodes() -> AsyncIterator[list[GossipNode]]:
    started: list[GossipNode] = []
    yield started
    await asyncio.gather(*(n.stop() for n in started))


async def next_event(events: asyncio.Queue[LinkEvent], kind: str) -> LinkEvent:
    async with asyncio.timeout(TIMEOUT):
        while (event := await events.get()).kind != kind:
            pass
    return event


@pytest.mark.slow
async def test_attestations_missed_during_los_arrive_after_aos(nodes: list[GossipNode]) -> None:
    a = await GossipNode.start(key_seed="link A", validator=make_validator())
    b = await GossipNode.start(key_seed="link B", validator=make_validator())
    nodes += [a, b]
    inbox = b.subscribe()
    # windows of 60 plan s (2 wall s), 90 plan s (3 wall s) apart
    plan = ContactPlan((window(30, 90), window(180, 240)), "isl")
    clock = PlanClock(T0, SCALE)
    host, port = a.listen_addr.split("/")[2], int(a.listen_addr.split("/")[4])
    emu = LinkEmulator(plan, "SATB-SATA", ("127.0.0.1", 0), (host, port), clock)
    events = emu.subscribe()
    await emu.start()
    try:
        via_link = f"/ip4/127.0.0.1/tcp/{emu.port}/p2p/{a.peer_id}"
        dialler = asyncio.create_task(dial_on_contacts(b, plan, "SATB-SATA", via_link, clock))

        await next_event(events, "aos")
        await next_event(events, "connect")
        async with asyncio.timeout(TIMEOUT):
            while b.peer_id not in await a.mesh_peers():
                await asyncio.sleep(0.05)
        first = attestation(0)
        await a.publish(first)
        async with asyncio.timeout(TIMEOUT):
            assert await inbox.get() == first  # over the link, inside the window

        await next_event(events, "los")
        async with asyncio.timeout(TIMEOUT):
            while a.peer_id in await b.connected_peers():
                await asyncio.sleep(0.05)  # the reset reached B's libp2p
        assert clock.now() < T0 + 180
        missed = [attestation(1), attestation(2)]
        for data in missed:
            await a.publish(data)  # nobody can hear: the link is down
        await a.publish(attestation(0, epoch=9))
        missed.append(attestation(0, epoch=9))
        assert inbox.empty() and b.delivered_count == 1

        dials = await asyncio.wait_for(dialler, TIMEOUT)  # AOS: dial, sync, plan finished
        assert len(dials.connected) == 2 and dials.missed_windows == 0
        assert T0 + 180 <= dials.connected[1] < T0 + 240
        got = set()
        async with asyncio.timeout(TIMEOUT):
            while len(got) < len(missed):
                got.add(await inbox.get())
        assert got == set(missed)
        assert b.delivered_count == 4 and inbox.empty()
        assert emu.counts["accepted"] >= 2
    finally:
        await emu.stop()


FAST = GossipConfig(publish_rate=200.0)


async def _burst_over_slow_link(nodes: list[GossipNode], config: GossipConfig, count: int,
                                recovery: float = 0.0
                                ) -> tuple[GossipNode, set[bytes], set[bytes]]:
    """Publish ``count`` attestations at once (paced at 200/s) from A to B over a 256 kbit/s
    link, a fifth of what that rate needs: once yamux's 256 KiB window is in flight, A's
    writes block and its per-peer queue fills. Return A, what was sent, what B delivered
    (waiting up to ``recovery`` seconds more, link up, for the rest to reach B's subscriber:
    B stores a message before it queues it, so waiting on B's store alone races the queue)."""
    a = await GossipNode.start(key_seed="slow A", validator=make_validator(), config=config)
    b = await GossipNode.start(key_seed="slow B", validator=make_validator(), config=config)
    nodes += [a, b]
    inbox = b.subscribe()
    clock = PlanClock(T0, 1.0)
    plan = ContactPlan((Contact("SATB", "SATA", T0 - 1, T0 + 3600, 256e3, 256e3,
                                ((T0 - 1, 0.002),)),), "slow")
    host, port = a.listen_addr.split("/")[2], int(a.listen_addr.split("/")[4])
    emu = LinkEmulator(plan, "SATB-SATA", ("127.0.0.1", 0), (host, port), clock)
    await emu.start()
    nodes_stop = emu.stop
    try:
        await b.connect(f"/ip4/127.0.0.1/tcp/{emu.port}/p2p/{a.peer_id}")
        async with asyncio.timeout(TIMEOUT):
            while b.peer_id not in await a.mesh_peers():
                await asyncio.sleep(0.05)
        sent = {attestation(i % 3, epoch=1000 + i) for i in range(count)}
        await asyncio.gather(*(a.publish(data) for data in sent))
        got: set[bytes] = set()
        with contextlib.suppress(TimeoutError):  # until all came, or nothing for 5 s
            while len(got) < count:
                got.add(await asyncio.wait_for(inbox.get(), 5.0))
        if recovery:  # B's application gets the rest once B synced it (stored, then queued)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(recovery):
                    while len(got) < count:
                        got.add(await inbox.get())
        return a, sent, got
    finally:
        await nodes_stop()


@pytest.mark.slow
async def test_a_slow_link_slows_the_publisher_instead_of_losing_messages(
        nodes: list[GossipNode]) -> None:
    a, sent, got = await _burst_over_slow_link(nodes, FAST, 800)
    assert got == sent
    assert not a.dropped_rpcs and a.backpressure_timeouts == 0


@pytest.mark.slow
async def test_without_backpressure_drops_are_counted_and_recovered_by_sync(
        nodes: list[GossipNode]) -> None:
    """The control for the test above: py-libp2p's 32-RPC queue drops what does not fit; the
    drops are counted, and the peer that missed them is asked to sync from A, so it still
    gets all of them (by that sync, or by gossipsub's IHAVE/IWANT if it comes first: in some
    runs every dropped publish came back through the gossip cache)."""
    unchecked = dataclasses.replace(FAST, queue_high_water=10**9)
    a, sent, got = await _burst_over_slow_link(nodes, unchecked, 800, recovery=90)
    assert a.dropped_rpcs.get(("queue_full", "publish"), 0) > 0
    assert got == sent

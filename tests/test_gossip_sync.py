"""Sync that always ends (issue #17 item 3): real py-libp2p hosts on 127.0.0.1, one of them
a liar that speaks the sync protocol wrongly (its own stream handler replaces the honest one).
Catch-up spreads by sync, without re-publishing."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio

from node.gossip import GossipConfig, GossipNode, sync
from node.gossip.config import GossipError

from gossip_attestations import attestation, make_validator, until

SHORT = GossipConfig(gossip_window=1, gossip_history=1)  # the gossip cache forgets at once


@pytest.fixture
async def nodes() -> AsyncIterator[list[GossipNode]]:
    started: list[GossipNode] = []
    yield started
    await asyncio.gather(*(n.stop() for n in started))


@dataclasses.dataclass
class Served:
    requests: int = 0
    in_flight: int = 0
    most_in_flight: int = 0
    backs: int = 0


async def liar(nodes: list[GossipNode], name: str,
               answer: Callable[[Any, Served, tuple[bytes, int, int, int]], Awaitable[None]]
               ) -> tuple[GossipNode, Served]:
    """A real host whose sync handler reads a request and lets ``answer`` reply."""
    node = await GossipNode.start(key_seed=f"liar {name}", validator=None)
    nodes.append(node)
    served = Served()

    async def handler(stream: Any) -> None:
        served.requests += 1
        served.in_flight += 1
        served.most_in_flight = max(served.most_in_flight, served.in_flight)
        try:
            request = sync.REQUEST.unpack(await sync.read_exactly(stream, sync.REQUEST.size))
            served.backs += request[3]
            await answer(stream, served, request)
        finally:
            served.in_flight -= 1
            await stream.close()

    async def install() -> None:
        node.host.set_stream_handler(sync.SYNC_PROTOCOL, handler)
    await node._call(install)
    return node, served


async def test_an_empty_page_claiming_more_ends_the_sync(nodes: list[GossipNode]) -> None:
    """``count=0, more=1`` made sync_from loop forever (582 requests in 5 s)."""
    async def empty_but_more(stream: Any, _s: Served, _r: object) -> None:
        await stream.write(sync.HEADER.pack(b"L" * 16, 0, 1))

    bad, served = await liar(nodes, "empty", empty_but_more)
    honest = await GossipNode.start(key_seed="honest empty", validator=make_validator())
    nodes.append(honest)
    assert await honest.connect(bad.listen_addr) == 0
    assert served.requests == 1 and honest.sync_stalled == 1
    assert await honest.sync_from(bad.peer_id) == 0
    assert served.requests == 2 and honest.sync_stalled == 2


async def test_a_store_id_that_keeps_changing_is_an_error(nodes: list[GossipNode]) -> None:
    """Every page claims a new store (which resets the cursor to 0): refused the second time,
    otherwise the same first page would be fetched forever."""
    one = attestation(0, epoch=60)

    async def new_store_every_time(stream: Any, _s: Served, _r: object) -> None:
        await stream.write(sync.HEADER.pack(os.urandom(16), 1, 1)
                           + sync.FRAME.pack(1, len(one)) + one)

    bad, served = await liar(nodes, "store id", new_store_every_time)
    honest = await GossipNode.start(key_seed="honest store id", validator=make_validator())
    nodes.append(honest)
    with pytest.raises(GossipError, match="store id twice"):
        await honest.connect(bad.listen_addr)
    assert served.requests == 2
    assert honest.stored() == [one]  # the first page was fine


async def test_a_silent_peer_times_out(nodes: list[GossipNode]) -> None:
    async def never(_stream: Any, _s: Served, _r: object) -> None:
        await trio.sleep_forever()

    bad, _ = await liar(nodes, "silent", never)
    honest = await GossipNode.start(key_seed="honest silent", validator=make_validator(),
                                    config=GossipConfig(sync_timeout=1.0))
    nodes.append(honest)
    with pytest.raises(GossipError, match="did not answer"):
        await honest.connect(bad.listen_addr)


async def test_endless_junk_pages_end_after_the_page_limit(nodes: list[GossipNode]) -> None:
    """A peer that always has 'more' (junk the validator rejects): one sync asks at most
    ``sync_max_pages`` pages, and junk does not earn a background continuation."""
    async def endless(stream: Any, _s: Served, request: tuple[bytes, int, int, int]) -> None:
        _, since, limit, _ = request
        frames = b"".join(sync.FRAME.pack(since + i, 5) + b"junk!" for i in range(1, limit + 1))
        await stream.write(sync.HEADER.pack(b"J" * 16, limit, 1) + frames)

    bad, served = await liar(nodes, "endless", endless)
    honest = await GossipNode.start(key_seed="honest endless", validator=make_validator(),
                                    config=GossipConfig(sync_page=4, sync_max_pages=3))
    nodes.append(honest)
    assert await honest.connect(bad.listen_addr) == 0
    assert served.requests == 3 and honest.sync_rejected == 12
    await asyncio.sleep(1.0)
    assert served.requests == 3  # nothing asked in the background


async def test_a_flood_of_sync_back_requests_runs_one_sync_at_a_time(
        nodes: list[GossipNode]) -> None:
    """Every request with the back flag spawned another unbounded sync; now a peer gets at
    most one running and one waiting, however often it asks."""
    async def slow_empty(stream: Any, _s: Served, _r: object) -> None:
        await trio.sleep(0.3)
        await stream.write(sync.HEADER.pack(b"S" * 16, 0, 0))

    bad, served = await liar(nodes, "flood", slow_empty)
    honest = await GossipNode.start(key_seed="honest flood", validator=make_validator())
    nodes.append(honest)
    await honest.connect(bad.listen_addr, sync=False)
    store_id = honest.store.store_id

    async def ask_back() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(sync.fetch_page, bad.host, honest.peer_id, store_id, 0, 8,
                                   True, 10.0)
    await bad._call(ask_back)
    await until(lambda: served.requests >= 1 and served.in_flight == 0, "the sync back")
    await asyncio.sleep(1.0)
    assert served.most_in_flight == 1
    assert served.requests <= 2  # one running, one waiting; the other 28 coalesced


@pytest.mark.slow
async def test_catch_up_spreads_by_sync_without_re_publishing(nodes: list[GossipNode]) -> None:
    """A holds 300 attestations; B, connected to C, dials A: connect() returns once B stored
    them (nothing re-published: B's gossip cache stays empty), and C fetches them from B
    because B asks its other peers to sync from it."""
    fast = dataclasses.replace(SHORT, publish_rate=1000.0, publish_burst=64)
    a = await GossipNode.start(key_seed="spread A", validator=make_validator(), config=fast)
    b = await GossipNode.start(key_seed="spread B", validator=make_validator(), config=SHORT)
    c = await GossipNode.start(key_seed="spread C", validator=make_validator(), config=SHORT)
    nodes += [a, b, c]
    sent = {attestation(i % 3, epoch=5000 + i) for i in range(300)}
    await asyncio.gather(*(a.publish(data) for data in sent))
    await until(lambda: len(a.store) == 300 and not a.gossipsub.mcache.msgs, "A's store")
    await c.connect(b.listen_addr)
    assert await b.connect(a.listen_addr) == 300
    assert set(b.stored()) == sent
    assert not b.gossipsub.mcache.msgs  # nothing re-published
    await until(lambda: set(c.stored()) == sent, "C to catch up from B", timeout=30)
    # by sync: the count moves just after the page is stored (an await later), so wait for it
    await until(lambda: c.synced_count == 300, "C's sync count", timeout=10)

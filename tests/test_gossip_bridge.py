"""The trio <-> asyncio bridge (issue #17 item 4): a real trio loop in its own thread, and real
py-libp2p hosts on 127.0.0.1. 5,000 concurrent calls complete (they used to kill the trio loop
with ``TrioInternalError``), cancelling the asyncio caller cancels the trio side, and stopping
with calls in flight leaves no pending future."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
import trio

from node.gossip import GossipConfig, GossipNode
from node.gossip.bridge import TrioBridge
from node.gossip.config import GossipError

from gossip_attestations import attestation, make_validator, until

CALLS = 5000


@pytest.fixture
async def bridge() -> AsyncIterator[TrioBridge]:
    b = TrioBridge("bridge-test", max_calls=64)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            b.serve_commands(nursery)
            b.set_ready()
            await trio.sleep_forever()

    b.start(main)
    await b.wait_ready(5.0)
    yield b
    await b.close()


async def test_five_thousand_concurrent_calls_complete_within_the_bound(
        bridge: TrioBridge) -> None:
    async def work(i: int) -> int:
        await trio.sleep(0.001)
        return i

    results = await asyncio.gather(*(bridge.call(lambda i=i: work(i)) for i in range(CALLS)))
    assert results == list(range(CALLS))
    assert bridge.most_in_flight == 64  # the bound held (and was reached)
    await until(lambda: bridge.in_flight == 0, "the last slot to be released")


async def test_cancelling_the_caller_cancels_the_trio_side(bridge: TrioBridge) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def long() -> None:
        started.set()
        try:
            await trio.sleep(60)
        except trio.Cancelled:
            cancelled.set()
            raise

    task = asyncio.create_task(bridge.call(long))
    await until(started.is_set, "the trio side to start")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(cancelled.is_set, "the trio side to be cancelled", timeout=5)
    await until(lambda: bridge.in_flight == 0, "the slot to be released", timeout=5)

    # a call cancelled while it waits for a slot never reaches trio
    ran = threading.Event()

    async def mark() -> None:
        ran.set()
    blockers = [asyncio.create_task(bridge.call(lambda: trio.sleep(60))) for _ in range(64)]
    await until(lambda: bridge.in_flight == 64, "the bound to fill")
    waiting = asyncio.create_task(bridge.call(mark))
    await asyncio.sleep(0.2)
    waiting.cancel()
    for t in blockers:
        t.cancel()
    await asyncio.gather(waiting, *blockers, return_exceptions=True)
    await until(lambda: bridge.in_flight == 0, "every slot released", timeout=5)
    assert not ran.is_set()


async def test_close_with_calls_in_flight_fails_them_all(bridge: TrioBridge) -> None:
    calls = [asyncio.create_task(bridge.call(lambda: trio.sleep(60))) for _ in range(200)]
    await until(lambda: bridge.in_flight == 64, "the bound to fill")
    await bridge.close()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert all(isinstance(r, GossipError) for r in results)
    assert bridge.in_flight == 0
    with pytest.raises(GossipError):
        await bridge.call(lambda: trio.sleep(0))


@pytest.mark.slow
async def test_five_thousand_concurrent_calls_into_a_host(tmp_path: object) -> None:
    fast = GossipConfig(publish_rate=1e6, publish_burst=10**6)
    a = await GossipNode.start(key_seed="bridge A", validator=make_validator(), config=fast)
    b = await GossipNode.start(key_seed="bridge B", validator=make_validator(), config=fast)
    try:
        await b.connect(a.listen_addr)
        peers = await asyncio.gather(*(a.connected_peers() for _ in range(CALLS)))
        assert all(p == {b.peer_id} for p in peers)
        sent = [attestation(i % 3, epoch=7000 + i) for i in range(CALLS)]
        ids = await asyncio.gather(*(a.publish(data) for data in sent))
        assert len(set(ids)) == CALLS
        await until(lambda: len(a.store) == CALLS, "A to store its own", timeout=120)
        assert a._bridge.most_in_flight <= a.config.max_bridge_calls
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_stop_with_calls_in_flight_leaves_no_pending_future() -> None:
    a = await GossipNode.start(key_seed="bridge stop", validator=make_validator())
    calls = [asyncio.create_task(a.mesh_peers()) for _ in range(500)]
    calls += [asyncio.create_task(a._call(lambda: trio.sleep(60))) for _ in range(50)]
    await asyncio.sleep(0)
    await a.stop()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    assert all(isinstance(r, (set, GossipError)) for r in results)
    assert any(isinstance(r, GossipError) for r in results)
    assert a._bridge.in_flight == 0

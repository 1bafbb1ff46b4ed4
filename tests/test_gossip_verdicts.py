"""Retry is not reject (issue #17 item 2), over real py-libp2p hosts on 127.0.0.1: a message
our validator cannot decide on now (the registry is unreachable) is neither rejected nor
stored, the sync cursor never passes it, and it is stored once the registry answers again."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from node.attest.codec import message_id
from node.gossip import AttestationValidator, GossipConfig, GossipNode
from node.gossip.config import GossipError, UndecidedError
from node.gossip.validator import Verdict, verdict_of

from gossip_attestations import (
    CHAIN_ID,
    CONTRACT,
    MODEL,
    SIGNERS,
    attestation,
    forgeries,
    make_validator,
    until,
)

SHORT = GossipConfig(gossip_window=1, gossip_history=1)  # the gossip cache forgets at once


class FlakyRegistry:
    """The registry view under test: the signers' set, or ``ConnectionError`` (an unreachable
    chain) while ``down`` or for an address in ``down_for``."""

    def __init__(self) -> None:
        self.active = {s.address for s in SIGNERS}
        self.down = False
        self.down_for: set[bytes] = set()
        self._lock = threading.Lock()

    def is_active(self, address: bytes) -> bool:
        with self._lock:
            if self.down or bytes(address) in self.down_for:
                raise ConnectionError("registry unreachable")
        return bytes(address) in self.active

    def restore(self) -> None:
        with self._lock:
            self.down, self.down_for = False, set()


def flaky_validator(registry: FlakyRegistry) -> AttestationValidator:
    return AttestationValidator(registry, [MODEL], CHAIN_ID, CONTRACT)


@pytest.fixture
async def nodes() -> AsyncIterator[list[GossipNode]]:
    started: list[GossipNode] = []
    yield started
    await asyncio.gather(*(n.stop() for n in started))


async def wait_mesh(a: GossipNode, b: GossipNode) -> None:
    async with asyncio.timeout(20):
        while b.peer_id not in await a.mesh_peers() or a.peer_id not in await b.mesh_peers():
            await asyncio.sleep(0.05)


def test_verdicts_separate_invalid_from_undecided() -> None:
    registry = FlakyRegistry()
    v = flaky_validator(registry)
    good = attestation(0)
    assert v.check(good) is Verdict.ACCEPT
    for forged in forgeries().values():
        assert v.check(forged) is Verdict.REJECT
    registry.down = True
    assert v.check(good) is Verdict.IGNORE and not v.validate(good)
    assert v.undecided == {"ConnectionError": 2}
    assert v.rejected == len(forgeries())  # the outage counted no rejection
    assert verdict_of(lambda _d: True, good) is Verdict.ACCEPT
    assert verdict_of(lambda _d: False, good) is Verdict.REJECT
    assert verdict_of(None, good) is Verdict.ACCEPT


async def test_publishing_while_undecided_is_a_typed_error(nodes: list[GossipNode]) -> None:
    registry = FlakyRegistry()
    a = await GossipNode.start(key_seed="verdict pub", validator=flaky_validator(registry))
    nodes.append(a)
    registry.down = True
    with pytest.raises(UndecidedError):
        await a.publish(attestation(0))
    assert issubclass(UndecidedError, GossipError)
    registry.restore()
    await a.publish(attestation(0))
    await until(lambda: a.delivered_count == 1, "our own publish stored")


async def test_gossip_while_the_registry_is_down_is_stored_once_it_is_back(
        nodes: list[GossipNode]) -> None:
    a = await GossipNode.start(key_seed="verdict A", validator=make_validator(), config=SHORT)
    registry = FlakyRegistry()
    vb = flaky_validator(registry)
    b = await GossipNode.start(key_seed="verdict B", validator=vb, config=SHORT)
    nodes += [a, b]
    await b.connect(a.listen_addr)
    await wait_mesh(a, b)
    registry.down = True
    data = attestation(1, epoch=41)
    await a.publish(data)
    await until(lambda: vb.undecided["ConnectionError"] >= 1, "B to try and fail to decide")
    assert message_id(data) in b.pubsub.undecided  # what peer scoring can consult
    await asyncio.sleep(1.0)
    assert b.stored() == [] and vb.rejected == 0  # not stored, not rejected
    registry.restore()
    await until(lambda: b.stored() == [data], "B to store it once the registry answers")
    assert vb.rejected == 0


async def test_the_sync_cursor_stops_before_an_undecided_message(
        nodes: list[GossipNode]) -> None:
    a = await GossipNode.start(key_seed="cursor A", validator=None, config=SHORT)
    nodes.append(a)
    sent = [attestation(i, epoch=50 + i) for i in range(3)]
    for data in sent:
        await a.publish(data)
    await until(lambda: len(a.store) == 3 and not a.gossipsub.mcache.msgs, "A's store")
    seqs = {data: seq for seq, data in a.store.since(0, 10)}

    registry = FlakyRegistry()
    registry.down_for = {SIGNERS[1].address}  # the middle one cannot be decided
    vb = flaky_validator(registry)
    b = await GossipNode.start(key_seed="cursor B", validator=vb, config=SHORT)
    nodes.append(b)
    assert await b.connect(a.listen_addr) == 2
    assert sorted(b.stored()) == sorted([sent[0], sent[2]])
    assert b.sync_undecided == 1 and b.sync_rejected == 0 and vb.rejected == 0
    assert b.store.cursor(a.peer_id) == (a.store.store_id, seqs[sent[0]])  # not past sent[1]

    registry.restore()  # the retry (after 1 s) stores it and moves the cursor to the end
    await until(lambda: len(b.store) == 3, "B to store the undecided one")
    await until(lambda: b.store.cursor(a.peer_id)[1] == seqs[sent[2]], "the cursor to move")
    assert sorted(b.stored()) == sorted(sent)

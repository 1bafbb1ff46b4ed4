"""Bounded memory (issue #17 item 6), over a real py-libp2p host and real SQLite: the
attestation service forgets certified, expired and least recent tasks, replays the store page
by page at start, and the subscriber queues are accounted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from contracts import eip712
from node.attest import Cosigner, attest, encode
from node.gossip import AttestationService, GossipNode, GossipStore
from node.gossip import service as service_module
from node.tasks import model as qmodel
from node.tasks.task import Task

from gossip_attestations import (
    CHAIN_ID,
    CONTRACT,
    INPUT,
    MODEL,
    OUTPUT,
    SIGNERS,
    make_validator,
    until,
)


def task_id(n: int) -> bytes:
    return n.to_bytes(32, "big")


def attestation_for(n: int, signer: int = 0) -> bytes:
    result = eip712.TaskResult(task_id(n), MODEL, INPUT, OUTPUT, 7)
    return encode(attest(result, SIGNERS[signer], CHAIN_ID, CONTRACT))


class CountingStore(GossipStore):
    """A real in-memory store that records the reads the service makes (the seam)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.reads: list[int] = []  # the limit of each since() call

    def since(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        self.reads.append(limit)
        return super().since(seq, limit)


@pytest.fixture
async def node() -> AsyncIterator[GossipNode]:
    n = await GossipNode.start(key_seed="memory", validator=make_validator())
    yield n
    await n.stop()


async def test_the_service_forgets_certified_and_least_recent_tasks(node: GossipNode) -> None:
    service = await AttestationService(node, CHAIN_ID, CONTRACT, max_tasks=3).start()
    try:
        for n in range(5):
            await node.publish(attestation_for(n))
        await until(lambda: sum(service.evicted.values()) == 2, "two evictions")
        assert set(service.attestations) == {task_id(n) for n in (2, 3, 4)}
        assert service.evicted == {"full": 2}

        service.forget(task_id(3))  # certified on chain
        assert task_id(3) not in service.attestations and service.evicted["certified"] == 1
        await node.publish(attestation_for(3, signer=1))  # a late co-signature
        await node.publish(attestation_for(5))
        await until(lambda: task_id(5) in service.attestations, "the next task")
        assert task_id(3) not in service.attestations  # ignored, not re-created
        assert node.subscriber_backlog == 0  # the service keeps up
    finally:
        await service.stop()


async def test_a_certified_task_leaves_the_cosigner_too(node: GossipNode) -> None:
    """The cosigner's input and signed result for a task grow by one entry per task unless
    the service's ``forget`` drops them with the task's attestations."""
    model = qmodel.load()
    cosigner = Cosigner(SIGNERS[0], model, CHAIN_ID, CONTRACT)
    service = await AttestationService(node, CHAIN_ID, CONTRACT, cosigner=cosigner).start()
    try:
        task = Task.create(model.model_hash, bytes(64 * 4), nonce=1)
        att = cosigner.run(task, epoch=7)  # (not published: the fixture's validator knows
        # only the test model)
        assert cosigner.signed == {task.task_id: att.result} and task.task_id in cosigner.inputs
        service.forget(task.task_id)
        assert cosigner.signed == {} and cosigner.inputs == {}
    finally:
        await service.stop()


async def test_the_service_forgets_expired_tasks(node: GossipNode) -> None:
    service = await AttestationService(node, CHAIN_ID, CONTRACT, task_ttl=0.3).start()
    try:
        await node.publish(attestation_for(10))
        await until(lambda: task_id(10) in service.attestations, "the first task")
        await asyncio.sleep(0.5)
        await node.publish(attestation_for(11))
        await until(lambda: task_id(11) in service.attestations, "the second task")
        assert task_id(10) not in service.attestations and service.evicted == {"expired": 1}
    finally:
        await service.stop()


async def test_replay_at_start_reads_the_store_page_by_page(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "REPLAY_PAGE", 16)
    store = CountingStore()
    store.add_many([attestation_for(100 + n % 7, signer=n % 3) for n in range(21)]
                   + [attestation_for(200 + n) for n in range(29)])
    assert len(store) == 50
    n = await GossipNode.start(key_seed="memory replay", validator=make_validator(),
                               store=store)
    try:
        store.reads.clear()
        service = await AttestationService(n, CHAIN_ID, CONTRACT).start()
        await service.stop()
        assert store.reads == [16, 16, 16, 16, 16]  # 4 pages (16+16+16+2), then empty
        assert sum(len(v) for v in service.attestations.values()) == 50
        assert len(service.attestations) == 7 + 29
    finally:
        await n.stop()

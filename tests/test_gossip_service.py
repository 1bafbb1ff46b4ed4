"""node/gossip/service.py over real py-libp2p hosts: a task run at one end of a 5-node line is
re-executed and co-signed by every node and reaches a k-of-n certificate everywhere; a lying
node's output never reaches a quorum and an equivocating one is caught by every node; a
restarted node keeps its certificate; and a certificate made by gossip is accepted by
TaskAttestations on anvil (registry checked on chain by every node's validator)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import eip712
from node.attest import (
    ChainRegistry,
    Cosigner,
    EquivocationDetector,
    StaticRegistry,
    attest,
    encode,
)
from node.attest.certificate import TaskTerms
from node.gossip import AttestationService, AttestationValidator, GossipConfig, GossipNode
from node.tasks import model as qmodel
from node.tasks.task import Task, run

from contracts_chain import Scenario, anvil_web3
from signers import SoftwareSigner, labelled_signer

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
INPUTS = (Path(qmodel.__file__).parent / "expected" / "digits-inputs.bin").read_bytes()
MODEL = qmodel.load()
TIMEOUT = 30.0
NAMES = "ABCDE"
SIGNERS = {name: labelled_signer(f"service-{name}") for name in NAMES}


def posted(task: Task, quorum: int) -> TaskTerms:
    return TaskTerms(task.task_id, task.model_hash, task.input_hash, quorum)


class Satellite:
    """One node: gossip host, store, validator, cosigner and service."""

    def __init__(self, name: str, signer: object, registry: object, tmp: Path,
                 chain_id: int = CHAIN_ID, contract: bytes = CONTRACT) -> None:
        self.name, self.signer, self.registry, self.tmp = name, signer, registry, tmp
        self.chain_id, self.contract = chain_id, contract
        self.gossip: GossipNode | None = None
        self.service: AttestationService | None = None

    async def start(self) -> Satellite:
        validator = AttestationValidator(self.registry, [MODEL.model_hash],  # type: ignore[arg-type]
                                         self.chain_id, self.contract)
        config = GossipConfig(store_path=str(self.tmp / f"{self.name}-gossip.sqlite"))
        self.gossip = await GossipNode.start(key_seed=f"service {self.name}",
                                             validator=validator, config=config)
        cosigner = Cosigner(self.signer, MODEL, self.chain_id, self.contract)
        detector = EquivocationDetector(self.tmp / f"{self.name}-equivocation.sqlite")
        self.service = await AttestationService(self.gossip, self.chain_id, self.contract,
                                                cosigner=cosigner, detector=detector).start()
        return self

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
            assert self.service.detector is not None
            self.service.detector.close()
        if self.gossip is not None:
            await self.gossip.stop()


@pytest.fixture
async def satellites() -> AsyncIterator[list[Satellite]]:
    started: list[Satellite] = []
    yield started
    for sat in started:
        await sat.stop()


async def line(sats: list[Satellite]) -> None:
    for left, right in itertools.pairwise(sats):
        assert left.gossip is not None and right.gossip is not None
        await right.gossip.connect(left.gossip.listen_addr)
    async with asyncio.timeout(TIMEOUT):
        for left, right in itertools.pairwise(sats):
            assert left.gossip is not None and right.gossip is not None
            while right.gossip.peer_id not in await left.gossip.mesh_peers():
                await asyncio.sleep(0.05)


async def five(satellites: list[Satellite], tmp_path: Path) -> list[Satellite]:
    registry = StaticRegistry([s.address for s in SIGNERS.values()])
    for name in NAMES:
        satellites.append(await Satellite(name, SIGNERS[name], registry, tmp_path).start())
    await line(satellites)
    return satellites


@pytest.mark.slow
async def test_task_run_at_one_end_is_certified_by_all_five(
        satellites: list[Satellite], tmp_path: Path) -> None:
    sats = await five(satellites, tmp_path)
    task = Task.create(MODEL.model_hash, INPUTS[: 64 * 8], nonce=1)
    for sat in sats:
        assert sat.service is not None and sat.service.cosigner is not None
        sat.service.cosigner.hold(task)  # every satellite got the input on its uplink
    first = sats[0].service
    assert first is not None
    await first.run_task(task, epoch=1)
    expected = run(task, MODEL).output_hash
    async with asyncio.timeout(TIMEOUT):
        certs = await asyncio.gather(*(s.service.certificate(posted(task, 5))  # type: ignore[union-attr]
                                       for s in sats))
    everyone = sorted((s.address for s in SIGNERS.values()), key=lambda a: int.from_bytes(a))
    for cert in certs:
        assert cert.result.output_hash == expected
        assert list(cert.signers) == everyone  # all five re-executed, agreed and co-signed
    for sat in sats[1:]:
        assert sat.service is not None
        assert [c.agreed for c in sat.service.considered] == [True]


@pytest.mark.slow
async def test_a_liar_never_reaches_quorum_and_an_equivocator_is_caught(
        satellites: list[Satellite], tmp_path: Path) -> None:
    sats = await five(satellites, tmp_path)
    task = Task.create(MODEL.model_hash, INPUTS[64 * 8: 64 * 12], nonce=2)
    for sat in sats[:4]:  # the honest four hold the input
        assert sat.service is not None and sat.service.cosigner is not None
        sat.service.cosigner.hold(task)
    honest = run(task, MODEL).result(task, 4)
    lie = eip712.TaskResult(task.task_id, task.model_hash, task.input_hash, os.urandom(32), 4)
    liar = sats[4]
    assert liar.gossip is not None
    await liar.gossip.publish(encode(attest(lie, liar.signer, CHAIN_ID, CONTRACT)))
    async with asyncio.timeout(TIMEOUT):
        certs = await asyncio.gather(*(s.service.certificate(posted(task, 4))  # type: ignore[union-attr]
                                       for s in sats))
    assert {c.result for c in certs} == {honest}
    assert all(liar.signer.address not in c.signers for c in certs)  # type: ignore[attr-defined]
    for sat in sats[:4]:
        assert sat.service is not None
        builder = sat.service.builder(posted(task, 4))
        assert builder.count(lie.output_hash) == 1  # the lie was seen, and stayed alone
    # ...then the liar also signs the honest output: equivocation, caught on every node
    await liar.gossip.publish(encode(attest(honest, liar.signer, CHAIN_ID, CONTRACT)))

    async def caught(sat: Satellite) -> None:
        assert sat.service is not None
        while not sat.service.evidence:
            await asyncio.sleep(0.02)
        (evidence,) = sat.service.evidence
        assert evidence.signer == liar.signer.address  # type: ignore[attr-defined]

    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*(caught(s) for s in sats))


@pytest.mark.slow
async def test_a_restarted_satellite_keeps_its_attestations(
        satellites: list[Satellite], tmp_path: Path) -> None:
    sats = await five(satellites, tmp_path)
    task = Task.create(MODEL.model_hash, INPUTS[:64], nonce=3)
    for sat in sats:
        assert sat.service is not None and sat.service.cosigner is not None
        sat.service.cosigner.hold(task)
    assert sats[0].service is not None
    await sats[0].service.run_task(task, epoch=2)
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*(s.service.certificate(posted(task, 5))  # type: ignore[union-attr]
                               for s in sats))
    middle = sats[2]
    await middle.stop()
    again = await Satellite("C", SIGNERS["C"], middle.registry, tmp_path).start()
    satellites[2] = again
    assert again.service is not None and again.service.cosigner is not None
    # from its store alone: the certificate, and its own signature remembered (not re-signed)
    async with asyncio.timeout(1.0):
        cert = await again.service.certificate(posted(task, 5))
    assert len(cert.signers) == 5
    assert task.task_id in again.service.cosigner.signed


@pytest.mark.slow
@pytest.mark.devnet
async def test_certificate_from_gossip_is_accepted_on_anvil(
        anvil: object, satellites: list[Satellite], tmp_path: Path) -> None:
    sc = Scenario(anvil_web3(anvil), satellites=4)
    contract = bytes.fromhex(sc.deployment.attestations[2:])
    registry = ChainRegistry(sc.registry)  # one snapshot, read off both event loops
    await asyncio.to_thread(registry.refresh)
    task = Task.create(MODEL.model_hash, INPUTS[64 * 20: 64 * 24], nonce=int.from_bytes(
        os.urandom(8)))
    sc.send(sc.attestations.functions.postTask(task.task_id, task.model_hash,
                                               task.input_hash, 3))
    for i, account in enumerate(sc.satellites):
        signer = SoftwareSigner(private_key=bytes(account.key))
        sat = await Satellite(f"anvil-{i}", signer, registry, tmp_path,
                              sc.chain_id, contract).start()
        assert sat.service is not None and sat.service.cosigner is not None
        sat.service.cosigner.hold(task)
        satellites.append(sat)
    await line(satellites)
    first = satellites[0].service
    assert first is not None
    await first.run_task(task, epoch=1)
    last = satellites[-1].service
    assert last is not None
    async with asyncio.timeout(TIMEOUT):
        cert = await last.certificate(posted(task, 3))
    receipt = sc.send(sc.attestations.functions.submitCertificate(*cert.to_contract_args()))
    assert receipt["status"] == 1
    assert sc.certified_output(task.task_id) == run(task, MODEL).output_hash

"""node/attest against TaskAttestations on both devnets (eth-tester in process, anvil):
attestations signed by registered satellites, gossiped in the compact encoding, verified
against the deployed SatelliteRegistry, assembled by CertificateBuilder and accepted by
``submitCertificate``; batch certificates; equivocation evidence accepted by
``reportEquivocation``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from contracts import eip712
from node.attest import (
    CertificateBuilder,
    ChainRegistry,
    EquivocationDetector,
    RegistryUnavailable,
    SignedAttestation,
    UnknownSigner,
    attest,
    batch_certificate,
    decode,
    encode,
    verify_attestation,
)
from node.attest.attestation import attestation_only_policy
from node.gossip.validator import AttestationValidator, Verdict
from wallet.audit import AuditLog
from wallet.onboard import OnboardSigner
from wallet.policy import PolicyLedger, parse_policy

from contracts_chain import Scenario, rand32
from signers import SoftwareSigner, labelled_signer


def key(account: LocalAccount) -> SoftwareSigner:
    """The satellite's key as a wallet Signer."""
    return SoftwareSigner(private_key=bytes(account.key))


def contract_address(sc: Scenario) -> bytes:
    return bytes.fromhex(sc.deployment.attestations[2:])


def gossip(sc: Scenario, account: LocalAccount, result: eip712.TaskResult) -> bytes:
    """What a satellite publishes: its attestation of ``result``, encoded."""
    return encode(attest(result, key(account), sc.chain_id, contract_address(sc)))


def receive(sc: Scenario, data: bytes, models: set[bytes]) -> SignedAttestation:
    """What a peer does with a gossip message before the application sees it."""
    att = decode(data)
    view = ChainRegistry(sc.registry)
    view.refresh()
    verify_attestation(att, view, models, chain_id=sc.chain_id, contract=contract_address(sc))
    return att


def test_gossiped_certificate_is_accepted(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    good, bad = sc.result(task), sc.result(task)
    builder = CertificateBuilder((*task, 3), sc.chain_id, sc.deployment.attestations)
    messages = [gossip(sc, a, good) for a in reversed(sc.satellites[:4])]
    messages += [gossip(sc, sc.satellites[4], bad), messages[0]]  # a dissenter, a duplicate
    for data in messages:
        builder.add(receive(sc, data, {task[1]}))
    assert builder.ready(good.output_hash) and not builder.ready(bad.output_hash)
    cert = builder.certificate(good.output_hash)
    assert len(cert.signers) == 4
    receipt = sc.send(sc.attestations.functions.submitCertificate(*cert.to_contract_args()))
    assert receipt["status"] == 1
    assert sc.certified_output(task[0]) == good.output_hash
    (event,) = sc.attestations.events.TaskCertified().process_receipt(receipt)
    assert event["args"]["signers"] == 4


def test_onboard_signed_attestation_counts_on_chain(sc: Scenario, tmp_path: Path) -> None:
    """One satellite signs through its on-board policy + audit path."""
    policy = parse_policy(attestation_only_policy(sc.chain_id,
                                                  sc.deployment.attestations).encode())
    audit = AuditLog(tmp_path / "audit.sqlite", labelled_signer("audit"))
    with audit:
        onboard = OnboardSigner(key(sc.satellites[0]), policy,
                                PolicyLedger(tmp_path / "ledger.sqlite"), audit)
        task = sc.post_task(quorum=2)
        result = sc.result(task)
        builder = CertificateBuilder((*task, 2), sc.chain_id, sc.deployment.attestations)
        assert builder.add(attest(result, onboard, sc.chain_id, sc.deployment.attestations))
        assert builder.add(decode(gossip(sc, sc.satellites[3], result)))
        sc.send(sc.attestations.functions.submitCertificate(
            *builder.certificate(result.output_hash).to_contract_args()))
        assert [e.kind for e in audit.entries()][-1] == "signed"
    assert sc.certified_output(task[0]) == result.output_hash


def test_chain_registry_view_follows_the_registry(sc: Scenario) -> None:
    extra = sc.add_satellites(1)[0]
    task = sc.post_task(quorum=1)
    data = gossip(sc, extra, sc.result(task))
    view = ChainRegistry(sc.registry)
    with pytest.raises(RegistryUnavailable):  # not read yet: undecided, not unknown
        verify_attestation(decode(data), view, {task[1]})
    view.refresh()
    assert verify_attestation(decode(data), view, {task[1]}) == bytes.fromhex(extra.address[2:])
    calls = view.calls
    assert not view.refresh()  # same block: no call
    assert view.calls == calls
    sc.send(sc.registry.functions.deactivate(extra.address))
    try:
        assert view.is_active(bytes.fromhex(extra.address[2:]))  # the snapshot, until...
        assert view.refresh()  # ...it is refreshed at the new block
        with pytest.raises(UnknownSigner):
            verify_attestation(decode(data), view, {task[1]})
        assert view.calls == calls + 1
    finally:
        sc.send(sc.registry.functions.reactivate(extra.address))
    assert not view.is_active(labelled_signer("stranger").address)


def test_batch_certificate_is_accepted(sc: Scenario) -> None:
    tasks = [sc.post_task(quorum=3) for _ in range(3)]
    results = [sc.result(t, epoch=5) for t in tasks]
    cert = batch_certificate(results, [key(a) for a in sc.satellites[1:4]], sc.chain_id,
                             sc.deployment.attestations)
    sc.send(sc.attestations.functions.submitBatchCertificate(*cert.to_contract_args()))
    for index, result in enumerate(results):
        sc.send(sc.attestations.functions.proveBatchMember(*cert.proof(index)))
        assert sc.certified_output(result.task_id) == result.output_hash


def test_equivocation_evidence_is_accepted(sc: Scenario, tmp_path: Path) -> None:
    task = sc.post_task(quorum=3)
    cheat = sc.satellites[2]
    with EquivocationDetector(tmp_path / "equivocation.sqlite") as detector:
        assert detector.observe(decode(gossip(sc, cheat, sc.result(task)))) is None
        evidence = detector.observe(decode(gossip(sc, cheat, sc.result(task, rand32()))))
        assert evidence is not None
    receipt = sc.send(sc.attestations.functions.reportEquivocation(
        *evidence.to_contract_args()))
    (event,) = sc.attestations.events.Equivocation().process_receipt(receipt)
    assert event["args"]["signer"] == cheat.address
    assert bytes(event["args"]["taskId"]) == task[0]
    assert sc.reverts(sc.attestations.functions.reportEquivocation(
        *evidence.to_contract_args())) == "AlreadyReported"


async def test_chain_registry_refresher_and_a_stale_snapshot(sc: Scenario) -> None:
    """One asyncio task refreshes the snapshot (web3 in a worker thread); readers on any
    thread never call the chain. A snapshot older than ``max_age`` (the chain unreachable
    that long) makes the gossip validator undecided, not rejecting."""
    member = sc.satellites[0]
    address = bytes.fromhex(member.address[2:])
    view = ChainRegistry(sc.registry, max_age=0.3)
    refresher = asyncio.create_task(view.run(interval=0.05))
    try:
        async with asyncio.timeout(10):
            while view.snapshot is None:
                await asyncio.sleep(0.01)
        calls = view.calls
        answers: list[bool] = []
        readers = [threading.Thread(target=lambda: answers.extend(
            view.is_active(address) for _ in range(1000))) for _ in range(4)]
        for t in readers:
            t.start()
        for t in readers:
            await asyncio.to_thread(t.join)
        assert answers == [True] * 4000
        assert view.calls - calls <= 1  # readers never reached the chain
    finally:
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)
    await asyncio.sleep(0.4)  # no refresher: the snapshot ages past max_age
    with pytest.raises(RegistryUnavailable):
        view.is_active(address)
    task = sc.post_task(quorum=1)
    validator = AttestationValidator(view, {task[1]})
    assert validator.check(gossip(sc, member, sc.result(task))) is Verdict.IGNORE
    assert validator.rejected == 0 and validator.undecided == {"RegistryUnavailable": 1}

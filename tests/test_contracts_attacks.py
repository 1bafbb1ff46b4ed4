"""The attacks on the attestation contracts issue #16 names, each a regression test on both
devnets (eth-tester and anvil, through :class:`contracts_chain.Scenario`), and what the fixes
must not break:

* front-running a batch: whoever saw one satellite's TaskBatch signature submitted it alone
  and the honest certificate for the same root was refused forever -- now the certificate
  with more (still-active) signers and operators replaces it;
* an equivocating signer still counted toward quorums -- now a report (also from a signed
  batch and a member proof) drops it from the registry's active set for good, for
  certificates and for batches already stored;
* a stored batch kept proving members after its signers were deactivated -- now its signers
  are re-checked at every proof;
* one operator registering k keys certified alone -- now a task has an operator quorum, and
  keys count once per operator.

Each test here fails on the contracts before the fix (the old ones refuse the honest batch,
accept the stale or equivocated signatures, or lack the operator quorum altogether).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from contracts_chain import DevChain, Scenario, result_tuple, revert_of


@dataclass
class Operators:
    """Two more operators beside the owner (operator 1, who registered ``sc.satellites``),
    each with three satellites of its own."""

    b: LocalAccount
    c: LocalAccount
    b_sats: list[LocalAccount]
    c_sats: list[LocalAccount]


@pytest.fixture(scope="module")
def ops(sc: Scenario, chain: DevChain) -> Operators:
    b, c = sc.add_operator(chain.accounts[1]), sc.add_operator(chain.accounts[2])
    return Operators(b, c, sc.register_under(b, 3, "B"), sc.register_under(c, 3, "C"))


def ascending(accounts: list[LocalAccount]) -> list[LocalAccount]:
    return sorted(accounts, key=lambda a: int(a.address, 16))


def fresh(sc: Scenario, count: int) -> list[LocalAccount]:
    """``count`` satellites of the owner registered for one test only (the test may get them
    deactivated or reported)."""
    return sc.register_under(sc.sender, count, "FRESH")


# -- front-running a batch ------------------------------------------------------------------

def test_a_front_run_batch_with_one_signature_is_replaced_by_the_honest_one(
        sc: Scenario) -> None:
    sats = fresh(sc, 3)
    results = [sc.result(sc.post_task(quorum=3), epoch=21) for _ in range(4)]
    signatures = sc.batch_signatures(results, sats, epoch=21)
    root, _ = sc.batch(results, sats, epoch=21)
    submit = sc.attestations.functions.submitBatchCertificate
    # the attacker saw one satellite's signature on gossip and submits it first
    front = sc.send(submit(root, 21, len(results), signatures[:1]))
    assert front["status"] == 1
    assert sc.reverts(sc.prove_member(results, 0)) == "QuorumNotReached"
    # the honest certificate (all three) still lands and replaces it
    receipt = sc.send(submit(root, 21, len(results), signatures))
    assert sc.attestations.functions.batchSupport(root).call() == [3, 1]
    (event,) = sc.attestations.events.BatchCertified().process_receipt(receipt)
    assert event["args"]["replaced"] and event["args"]["signers"] == 3
    assert event["args"]["signerList"] == [a.address for a in sats]
    assert tuple(sc.attestations.functions.batch(root).call()) == (21, 4, 3)
    for index, result in enumerate(results):
        sc.send(sc.prove_member(results, index))
        assert sc.certified_output(result.task_id) == result.output_hash


def test_a_weaker_or_equal_batch_cannot_replace_a_stored_one(sc: Scenario,
                                                             ops: Operators) -> None:
    sats = fresh(sc, 3)
    results = [sc.result(sc.post_task(quorum=2), epoch=22) for _ in range(2)]
    root, full = sc.batch(results, sats, epoch=22)
    sc.send(full)
    submit = sc.attestations.functions.submitBatchCertificate
    signatures = sc.batch_signatures(results, sats, epoch=22)
    assert sc.reverts(full) == "BatchNotStronger"  # the same again
    assert sc.reverts(submit(root, 22, 2, signatures[:2])) == "BatchNotStronger"
    # two operators but fewer signers is not comparable either: refused (submit the union)
    other = ascending([sats[0], ops.b_sats[0]])
    mixed = sc.batch_signatures(results, other, epoch=22)
    assert sc.reverts(submit(root, 22, 2, mixed)) == "BatchNotStronger"
    union = ascending([*sats, ops.b_sats[0]])
    sc.send(submit(root, 22, 2, sc.batch_signatures(results, union, epoch=22)))
    assert sc.attestations.functions.batchSupport(root).call() == [4, 2]
    assert sc.attestations.functions.batchSigners(root).call() == [a.address for a in union]


# -- equivocation ---------------------------------------------------------------------------

def test_an_equivocator_no_longer_counts_toward_a_certificate(sc: Scenario) -> None:
    sats = fresh(sc, 3)
    liar = sats[1]
    earlier = sc.post_task(quorum=1)
    a, b = sc.result(earlier), sc.result(earlier)
    sc.send(sc.attestations.functions.reportEquivocation(
        result_tuple(a), sc.sign(liar, a), result_tuple(b), sc.sign(liar, b)))
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    assert sc.reverts(sc.certify(result, sats)) == "SignerEquivocated"
    assert sc.registry.functions.isEquivocated(liar.address).call()
    assert not sc.registry.functions.isActive(liar.address).call()
    assert liar.address not in sc.registry.functions.activeSigners().call()
    # and no operator can bring it back
    assert sc.reverts(sc.registry.functions.reactivate(liar.address)) == "Equivocated"
    # the honest two plus another satellite certify
    sc.send(sc.certify(result, ascending([sats[0], sats[2], sc.satellites[0]])))
    assert sc.certified_output(task[0]) == result.output_hash


def test_equivocation_reported_from_a_batch_member_drops_the_signer_from_stored_batches(
        sc: Scenario) -> None:
    sats = fresh(sc, 3)
    liar = sats[2]
    tasks = [sc.post_task(quorum=3) for _ in range(3)]
    results = [sc.result(task, epoch=23) for task in tasks]
    _, call = sc.batch(results, sats, epoch=23)
    sc.send(call)
    sc.send(sc.prove_member(results, 0))  # provable while all three count
    # the liar also signed a different output for task 1, alone
    other = sc.result(tasks[1], epoch=23)
    report = sc.attestations.functions.reportClaimEquivocation
    receipt = sc.send(report(sc.batch_claim(liar, results, 1), sc.claim(liar, other)))
    (event,) = sc.attestations.events.Equivocation().process_receipt(receipt)
    assert event["args"]["signer"] == liar.address
    assert event["args"]["outputA"] == results[1].output_hash
    assert event["args"]["outputB"] == other.output_hash
    assert sc.attestations.functions.equivocated(liar.address).call()
    # the stored batch now has two signers that count: below the quorum of three
    root = sc.prove_member(results, 1).args[1]
    assert sc.attestations.functions.batchSupport(root).call() == [2, 1]
    assert sc.reverts(sc.prove_member(results, 1)) == "QuorumNotReached"
    assert sc.reverts(report(sc.batch_claim(liar, results, 1), sc.claim(liar, other))) == (
        "AlreadyReported")


def test_equivocation_between_two_signed_batches(sc: Scenario) -> None:
    (liar,) = fresh(sc, 1)
    task = sc.post_task(quorum=1)
    first = [sc.result(task, epoch=24), sc.result(sc.post_task(quorum=1), epoch=24)]
    second = [sc.result(sc.post_task(quorum=1), epoch=25), sc.result(sc.post_task(quorum=1),
                                                                      epoch=25),
              sc.result(task, epoch=25)]
    report = sc.attestations.functions.reportClaimEquivocation
    sc.send(report(sc.batch_claim(liar, first, 0), sc.batch_claim(liar, second, 2)))
    assert sc.registry.functions.isEquivocated(liar.address).call()


def test_batch_claims_that_prove_nothing_are_refused(sc: Scenario) -> None:
    a_sat, b_sat = fresh(sc, 2)
    task = sc.post_task(quorum=1)
    results = [sc.result(task, epoch=26), sc.result(sc.post_task(quorum=1), epoch=26)]
    other = sc.result(task, epoch=26)
    report = sc.attestations.functions.reportClaimEquivocation
    good = sc.batch_claim(a_sat, results, 0)
    # a proof that does not fit the batch: index out of range, or too long
    outside = (*good[:3], 2, good[4])
    assert sc.reverts(report(outside, sc.claim(a_sat, other))) == "BadMerkleProof"
    too_long = (*good[:4], [*good[4], b"\0" * 32])
    assert sc.reverts(report(too_long, sc.claim(a_sat, other))) == "BadMerkleProof"
    # a fitting proof at the wrong index leads to another root: a stranger's signature
    wrong_index = (*good[:3], 1, good[4])
    assert sc.reverts(report(wrong_index, sc.claim(a_sat, other))) == "NotEquivocation"
    # the proof of another member: recovers a stranger, not the same signer
    stranger = (good[0], good[1], good[2], 0, sc.batch_claim(a_sat, results, 1)[4])
    assert sc.reverts(report(stranger, sc.claim(a_sat, other))) == "NotEquivocation"
    # a single-result claim with a proof attached is malformed
    assert sc.reverts(report(good, (*sc.claim(a_sat, other)[:4], [b"\0" * 32]))) == "BadClaim"
    # two signers
    assert sc.reverts(report(good, sc.claim(b_sat, other))) == "NotEquivocation"
    # the same output twice
    assert sc.reverts(report(good, sc.claim(a_sat, results[0]))) == "NotEquivocation"
    assert not sc.registry.functions.isEquivocated(a_sat.address).call()


def test_only_the_attestations_contract_marks_equivocation(sc: Scenario) -> None:
    assert sc.registry.functions.attestations().call() == sc.deployment.attestations
    (sat,) = fresh(sc, 1)
    assert sc.reverts(sc.registry.functions.markEquivocated(sat.address)) == "NotAttestations"
    # only the owner binds the registry to an attestations contract
    rebind = sc.registry.functions.setAttestations(sc.chain.accounts[3].address)
    assert revert_of(lambda: rebind.call({"from": sc.chain.accounts[3].address}),
                     sc.registry.abi) == "NotOwner"
    assert not sc.registry.functions.isEquivocated(sat.address).call()


# -- stale batches --------------------------------------------------------------------------

def test_a_stored_batch_stops_proving_once_its_signers_are_deactivated(sc: Scenario) -> None:
    sats = fresh(sc, 3)
    results = [sc.result(sc.post_task(quorum=3), epoch=27) for _ in range(3)]
    root, call = sc.batch(results, sats, epoch=27)
    sc.send(call)
    sc.send(sc.registry.functions.deactivate(sats[0].address))
    assert sc.reverts(sc.prove_member(results, 0)) == "QuorumNotReached"
    assert sc.attestations.functions.batchSupport(root).call() == [2, 1]
    # a fresh certificate by active satellites replaces the stale one although it has no
    # more signers than were stored
    replacement = ascending([sats[1], sats[2], sc.satellites[0]])
    sc.send(sc.attestations.functions.submitBatchCertificate(
        root, 27, 3, sc.batch_signatures(results, replacement, epoch=27)))
    sc.send(sc.prove_member(results, 0))
    assert sc.certified_output(results[0].task_id) == results[0].output_hash
    # deactivating more of them stops it again; reactivation restores it
    sc.send(sc.registry.functions.deactivate(sats[1].address))
    assert sc.reverts(sc.prove_member(results, 1)) == "QuorumNotReached"
    sc.send(sc.registry.functions.reactivate(sats[1].address))
    sc.send(sc.prove_member(results, 1))
    assert sc.certified_output(results[1].task_id) == results[1].output_hash


# -- one operator, k keys -------------------------------------------------------------------

def test_one_operator_with_k_keys_cannot_certify_alone(sc: Scenario, ops: Operators) -> None:
    task = sc.post_task(quorum=3, operators=2)
    assert sc.attestations.functions.operatorQuorum(task[0]).call() == 2
    result = sc.result(task)
    assert sc.reverts(sc.certify(result, ops.b_sats)) == "OperatorQuorumNotReached"
    signers = ascending([*ops.b_sats[:2], ops.c_sats[0]])
    receipt = sc.send(sc.certify(result, signers))
    (event,) = sc.attestations.events.TaskCertified().process_receipt(receipt)
    assert event["args"]["signers"] == 3
    assert sc.certified_output(task[0]) == result.output_hash


def test_one_operator_with_k_keys_cannot_certify_a_batch_alone(sc: Scenario,
                                                               ops: Operators) -> None:
    results = [sc.result(sc.post_task(quorum=3, operators=2), epoch=28) for _ in range(2)]
    root, call = sc.batch(results, ops.c_sats, epoch=28)
    sc.send(call)
    assert sc.attestations.functions.batchSupport(root).call() == [3, 1]
    assert sc.reverts(sc.prove_member(results, 0)) == "OperatorQuorumNotReached"
    # another operator's satellite joins: the union replaces the batch and proves
    union = ascending([*ops.c_sats, ops.b_sats[1]])
    sc.send(sc.attestations.functions.submitBatchCertificate(
        root, 28, 2, sc.batch_signatures(results, union, epoch=28)))
    sc.send(sc.prove_member(results, 0))
    assert sc.certified_output(results[0].task_id) == results[0].output_hash


def test_operators_and_their_satellites_in_the_registry(sc: Scenario, ops: Operators) -> None:
    reg = sc.registry.functions
    assert reg.operatorId(sc.sender.address).call() == 1
    ids = {reg.operatorId(ops.b.address).call(), reg.operatorId(ops.c.address).call()}
    assert ids == {2, 3} and reg.operatorCount().call() >= 3
    assert reg.operatorOf(ops.b_sats[0].address).call() == [
        ops.b.address, reg.operatorId(ops.b.address).call()]
    assert reg.operatorOf(sc.satellites[0].address).call() == [sc.sender.address, 1]
    signers, operator_ids = reg.activeSignersWithOperators().call()
    assert signers == reg.activeSigners().call()
    assert signers == sorted(signers, key=lambda a: int(a, 16))
    by_signer = dict(zip(signers, operator_ids, strict=True))
    assert by_signer[ops.c_sats[2].address] == reg.operatorId(ops.c.address).call()
    assert by_signer[sc.satellites[1].address] == 1


def test_operator_quorum_must_be_between_one_and_the_signer_quorum(sc: Scenario) -> None:
    post = sc.attestations.functions.postTask
    task = (b"\x31" * 32, b"\x32" * 32, b"\x33" * 32)
    assert sc.reverts(post(*task, 2, 3)) == "BadOperatorQuorum"
    assert sc.reverts(post(*task, 2, 0)) == "ZeroQuorum"
    assert sc.reverts(post(*task, 0, 0)) == "ZeroQuorum"
    legacy = sc.post_task(quorum=2)
    assert sc.attestations.functions.operatorQuorum(legacy[0]).call() == 1

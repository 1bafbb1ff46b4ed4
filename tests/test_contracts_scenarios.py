"""The attestation contracts on both devnets: eth-tester (py-evm, Prague, in process) and
anvil (Prague) -- every scenario runs on each, through :class:`contracts_chain.Scenario`: a
3-of-5 certificate, every way a certificate is refused, batches with member proofs,
equivocation evidence, and the Python EIP-712 digest against the contract's for random
results. (tests/test_contracts_anvil.py adds anvil-only cases: registry lifecycle and
events, the domain separator after a chain-id change.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import eip712

from contracts_chain import (
    Scenario,
    high_s,
    result_tuple,
    task_digest,
)


def test_three_of_five_certificate_stores_the_output(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    receipt = sc.send(sc.certify(result, sc.satellites[1:4]))
    assert receipt["status"] == 1
    assert sc.certified_output(task[0]) == result.output_hash
    (event,) = sc.attestations.events.TaskCertified().process_receipt(receipt)
    assert event["args"]["signers"] == 3


def test_all_five_signers_certify_too(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    sc.send(sc.certify(result, sc.satellites))
    assert sc.certified_output(task[0]) == result.output_hash


def test_unregistered_signer_is_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    signers = sorted([*sc.satellites[:2], Account.create()], key=lambda a: int(a.address, 16))
    assert sc.reverts(sc.certify(result, signers)) == "SignerNotActive"


def test_deactivated_signer_is_refused_until_reactivated(sc: Scenario) -> None:
    extra = sc.add_satellites(3)
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    sc.send(sc.registry.functions.deactivate(extra[1].address))
    try:
        assert not sc.registry.functions.isActive(extra[1].address).call()
        assert sc.reverts(sc.certify(result, extra)) == "SignerNotActive"
    finally:
        sc.send(sc.registry.functions.reactivate(extra[1].address))
    sc.send(sc.certify(result, extra))
    assert sc.certified_output(task[0]) == result.output_hash


def test_duplicate_signer_is_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    a, b = sc.satellites[0], sc.satellites[1]
    assert sc.reverts(sc.certify(result, [a, b, b])) == "SignersNotAscending"


def test_unsorted_signers_are_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    assert sc.reverts(sc.certify(result, sc.satellites[2::-1])) == "SignersNotAscending"


def test_below_quorum_is_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    assert sc.reverts(sc.certify(result, sc.satellites[:2])) == "QuorumNotReached"


def test_short_and_long_signatures_are_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    good = sc.signatures(result, sc.satellites[:3])
    for bad in (good[1][:64], good[1] + b"\0"):
        call = sc.attestations.functions.submitCertificate(
            result_tuple(result), [good[0], bad, good[2]])
        assert sc.reverts(call) == "BadSignatureLength"


def test_high_s_signature_is_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    good = sc.signatures(result, sc.satellites[:3])
    call = sc.attestations.functions.submitCertificate(
        result_tuple(result), [good[0], high_s(good[1]), good[2]])
    assert sc.reverts(call) == "HighS"


def test_a_bad_v_is_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    good = sc.signatures(result, sc.satellites[:3])
    bad = good[2][:64] + bytes([good[2][64] - 27])  # 0/1 instead of 27/28
    call = sc.attestations.functions.submitCertificate(result_tuple(result), [*good[:2], bad])
    assert sc.reverts(call) == "BadSignatureV"


def test_a_refused_certificate_mined_anyway_changes_nothing(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    receipt = sc.send(sc.certify(result, sc.satellites[:2]), gas=500_000, check=False)
    assert receipt["status"] == 0
    assert sc.certified_output(task[0]) == bytes(32)


def test_signatures_for_another_chain_are_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    # Each signature recovers to some unrelated address: never registered, so not active,
    # or (a 1-in-2 chance per pair) out of order first.
    error = sc.reverts(sc.certify(result, sc.satellites[:3], chain_id=sc.chain_id + 1))
    assert error in ("SignerNotActive", "SignersNotAscending")


def test_signatures_for_another_contract_are_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    error = sc.reverts(sc.certify(result, sc.satellites[:3],
                                  verifying_contract=sc.deployment.registry))
    assert error in ("SignerNotActive", "SignersNotAscending")


def test_a_certificate_cannot_be_replayed_or_overwritten(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    result = sc.result(task)
    call = sc.certify(result, sc.satellites[:3])
    sc.send(call)
    assert sc.reverts(call) == "AlreadyCertified"
    other = sc.result(task)
    assert sc.reverts(sc.certify(other, sc.satellites[2:])) == "AlreadyCertified"
    assert sc.certified_output(task[0]) == result.output_hash


def test_unknown_and_mismatched_tasks_are_refused(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    unknown = sc.result((b"\x01" * 32, task[1], task[2]))
    assert sc.reverts(sc.certify(unknown, sc.satellites[:3])) == "TaskUnknown"
    wrong_model = sc.result((task[0], b"\x02" * 32, task[2]))
    assert sc.reverts(sc.certify(wrong_model, sc.satellites[:3])) == "TaskMismatch"


def test_batch_certificate_then_member_proofs(sc: Scenario) -> None:
    tasks = [sc.post_task(quorum=3) for _ in range(5)]
    results = [sc.result(task, epoch=7) for task in tasks]
    root, call = sc.batch(results, sc.satellites[:3], epoch=7)
    receipt = sc.send(call)
    assert receipt["status"] == 1
    assert tuple(sc.attestations.functions.batch(root).call()) == (7, 5, 3)
    assert sc.reverts(call) == "BatchNotStronger"
    for index, result in enumerate(results):
        sc.send(sc.prove_member(results, index))
        assert sc.certified_output(result.task_id) == result.output_hash
    assert sc.reverts(sc.prove_member(results, 2)) == "AlreadyCertified"


def test_batch_member_with_a_wrong_proof_or_small_batch_quorum_is_refused(sc: Scenario) -> None:
    tasks = [sc.post_task(quorum=3) for _ in range(3)] + [sc.post_task(quorum=5)]
    results = [sc.result(task, epoch=9) for task in tasks]
    root, call = sc.batch(results, sc.satellites[:3], epoch=9)
    sc.send(call)
    # a proof for member 0 used at index 1
    good = sc.prove_member(results, 0)
    result, _, proof, _ = good.args
    wrong_index = sc.attestations.functions.proveBatchMember(result, root, proof, 1)
    assert sc.reverts(wrong_index) == "BadMerkleProof"
    # three batch signers cannot certify a task whose quorum is five
    assert sc.reverts(sc.prove_member(results, 3)) == "QuorumNotReached"


def test_equivocation_is_accepted_once(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    a, b = sc.result(task), sc.result(task)
    liar = sc.satellites[4]
    call = sc.attestations.functions.reportEquivocation(
        result_tuple(a), sc.sign(liar, a), result_tuple(b), sc.sign(liar, b))
    receipt = sc.send(call)
    (event,) = sc.attestations.events.Equivocation().process_receipt(receipt)
    assert event["args"]["signer"] == liar.address
    assert sc.attestations.functions.equivocated(liar.address).call()
    assert sc.reverts(call) == "AlreadyReported"


def test_matching_outputs_are_not_equivocation(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    a = sc.result(task)
    signer = sc.satellites[0]
    call = sc.attestations.functions.reportEquivocation(
        result_tuple(a), sc.sign(signer, a), result_tuple(a), sc.sign(signer, a))
    assert sc.reverts(call) == "NotEquivocation"
    assert not sc.attestations.functions.equivocated(signer.address).call()


def test_two_signers_are_not_equivocation(sc: Scenario) -> None:
    task = sc.post_task(quorum=3)
    a, b = sc.result(task), sc.result(task)
    call = sc.attestations.functions.reportEquivocation(
        result_tuple(a), sc.sign(sc.satellites[0], a), result_tuple(b),
        sc.sign(sc.satellites[1], b))
    assert sc.reverts(call) == "NotEquivocation"


bytes32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task_id=bytes32, model=bytes32, inputs=bytes32, output=bytes32,
       epoch=st.integers(min_value=0, max_value=2**64 - 1))
def test_python_digest_equals_the_contracts(sc: Scenario, task_id: bytes, model: bytes,
                                            inputs: bytes, output: bytes, epoch: int) -> None:
    result = sc.result((task_id, model, inputs), output, epoch=epoch)
    on_chain = bytes(sc.attestations.functions.hashTaskResult(result_tuple(result)).call())
    assert on_chain == task_digest(result, sc.chain_id, sc.deployment.attestations)
    assert isinstance(result, eip712.TaskResult)


@pytest.mark.slow
def test_gas_benchmark_quick_run_reports_every_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gas", "--quick", "--json", "--chain", "eth-tester"],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = [row["capability"] for row in report["rows"]]
    assert "per additional signer (slope)" in names
    assert any(name.startswith("submitCertificate k=") for name in names)
    assert all(row["ours"] > 0 for row in report["rows"])
    assert report["chain"] == "eth-tester"

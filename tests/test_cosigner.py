"""node/attest/cosigner.py: a satellite re-executes a peer's task and co-signs only the same
output bytes; on a different output it signs its own; it never signs two results for a task."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import eip712
from node.attest import Cosigner, StaticRegistry, attest, verify_attestation
from node.tasks import model as qmodel
from node.tasks.task import Task, run

from signers import labelled_signer

CHAIN_ID = 31337
CONTRACT = bytes.fromhex("5FbDB2315678afecb367f032d93F642f64180aa3")
INPUTS = (Path(qmodel.__file__).parent / "expected" / "digits-inputs.bin").read_bytes()
PEER = labelled_signer("cosign-peer")
US = labelled_signer("cosign-us")


@pytest.fixture(scope="module")
def model() -> qmodel.Model:
    return qmodel.load()


@pytest.fixture
def task(model: qmodel.Model) -> Task:
    return Task.create(model.model_hash, INPUTS[: 64 * 4], nonce=5)


def peer_attestation(task: Task, model: qmodel.Model, output_hash: bytes | None = None,
                     epoch: int = 3, **changes: bytes):
    honest = run(task, model).result(task, epoch)
    fields = {"output_hash": output_hash or honest.output_hash, **changes}
    result = eip712.TaskResult(fields.get("task_id", task.task_id),
                               fields.get("model_hash", task.model_hash),
                               fields.get("input_hash", task.input_hash),
                               fields["output_hash"], epoch)
    return attest(result, PEER, CHAIN_ID, CONTRACT)


def cosigner(model: qmodel.Model, *tasks: Task) -> Cosigner:
    return Cosigner(US, model, CHAIN_ID, CONTRACT, {t.task_id: t for t in tasks})


def test_same_output_is_co_signed_exactly(model: qmodel.Model, task: Task) -> None:
    theirs = peer_attestation(task, model)
    outcome = cosigner(model, task).consider(theirs)
    assert outcome.agreed is True and outcome.attestation is not None
    assert outcome.attestation.result == theirs.result  # the very same TaskResult
    assert outcome.attestation.signer == US.address
    registry = StaticRegistry([US.address, PEER.address])
    assert verify_attestation(outcome.attestation, registry, [model.model_hash],
                              chain_id=CHAIN_ID, contract=CONTRACT) == US.address


def test_different_output_is_not_co_signed_ours_is(model: qmodel.Model, task: Task) -> None:
    liar = peer_attestation(task, model, output_hash=b"\xee" * 32)
    outcome = cosigner(model, task).consider(liar)
    assert outcome.agreed is False and outcome.attestation is not None
    assert outcome.attestation.result.output_hash == run(task, model).output_hash
    assert outcome.attestation.result.epoch == liar.result.epoch
    assert "output differs" in outcome.reason


@pytest.mark.parametrize("change, reason", [
    ({"model_hash": b"\x01" * 32}, "another model or input"),
    ({"input_hash": b"\x02" * 32}, "another model or input"),
])
def test_mismatched_task_fields_are_not_re_executed(model: qmodel.Model, task: Task,
                                                     change: dict, reason: str) -> None:
    outcome = cosigner(model, task).consider(peer_attestation(task, model, **change))
    assert outcome.attestation is None and outcome.agreed is None
    assert reason in outcome.reason


def test_without_the_input_nothing_is_signed(model: qmodel.Model, task: Task) -> None:
    outcome = cosigner(model).consider(peer_attestation(task, model))
    assert outcome.attestation is None and "not held" in outcome.reason


def test_other_domain_is_ignored(model: qmodel.Model, task: Task) -> None:
    result = run(task, model).result(task, 3)
    other = attest(result, PEER, CHAIN_ID + 1, CONTRACT)
    outcome = cosigner(model, task).consider(other)
    assert outcome.attestation is None and "another TaskAttestations domain" in outcome.reason


def test_a_task_is_signed_once(model: qmodel.Model, task: Task) -> None:
    us = cosigner(model, task)
    assert us.consider(peer_attestation(task, model)).attestation is not None
    again = us.consider(peer_attestation(task, model, epoch=4))
    assert again.attestation is None and "already signed" in again.reason


def test_a_certified_task_is_forgotten_and_a_late_attestation_not_re_executed(
        model: qmodel.Model, task: Task) -> None:
    us = cosigner(model, task)
    assert us.consider(peer_attestation(task, model)).attestation is not None
    us.forget(task.task_id)
    assert task.task_id not in us.inputs and task.task_id not in us.signed
    late = us.consider(peer_attestation(task, model, epoch=4))
    assert late.attestation is None and "not held" in late.reason
    us.forget(task.task_id)  # twice: nothing to drop, no error


def test_originator_runs_and_never_signs_two_results(model: qmodel.Model, task: Task) -> None:
    us = cosigner(model)
    att = us.run(task, epoch=9)
    assert att.result == run(task, model).result(task, 9)
    assert us.run(task, epoch=9).result == att.result  # the same result again is harmless
    with pytest.raises(ValueError, match="equivocation"):
        us.run(task, epoch=10)


def test_a_task_for_another_model_is_refused_by_run(model: qmodel.Model) -> None:
    foreign = Task.create(b"\x07" * 32, INPUTS[:64])
    us = cosigner(model, foreign)
    outcome = us.consider(attest(eip712.TaskResult(foreign.task_id, foreign.model_hash,
                                                   foreign.input_hash, b"\x00" * 32, 1),
                                 PEER, CHAIN_ID, CONTRACT))
    assert outcome.attestation is None and "not loaded" in outcome.reason

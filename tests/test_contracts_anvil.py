"""SatelliteRegistry and TaskAttestations on a real devnet (anvil, Prague): certificates,
every rejection by its custom error, batches with Merkle proofs, equivocation reports, and
the gas figures the benchmark targets (<= 6,000 gas per additional signer, <= 5,000 gas per
task in a batch of 64).

Satellite keys are made here (eth-account); the contracts come from the committed artifacts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError

from contracts import eip712, merkle
from contracts.build import load_artifact
from contracts.eip712 import SECP256K1_N, TaskBatch, TaskResult
from node.devnet import Anvil

pytestmark = pytest.mark.devnet

N_SATELLITES = 16


@dataclass(frozen=True)
class Satellite:
    """A satellite's signing key, made in the test."""

    key: bytes

    @property
    def address(self) -> bytes:
        return bytes.fromhex(Account.from_key(self.key).address[2:])

    @property
    def checksum(self) -> str:
        return to_checksum_address(self.address)

    def sign(self, digest: bytes) -> bytes:
        return bytes(Account.unsafe_sign_hash(digest, self.key).signature)


def make_satellites(n: int, label: str) -> list[Satellite]:
    """``n`` satellites with deterministic keys, sorted by address (the contract's order)."""
    sats = [Satellite(keccak(text=f"{label} {i}")) for i in range(n)]
    return sorted(sats, key=lambda s: s.address)


@dataclass
class Deployment:
    w3: Web3
    registry: Contract
    attest: Contract
    operator: str
    chain_id: int
    satellites: list[Satellite]
    """Registered and active (unless a test deactivates one and restores it), ascending."""
    counter: Iterator[int]

    @property
    def address(self) -> bytes:
        return bytes.fromhex(self.attest.address[2:])

    def send(self, fn: Any, sender: str | None = None) -> dict[str, Any]:
        tx_hash = fn.transact({"from": sender or self.operator})
        receipt = dict(self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10))
        assert receipt["status"] == 1
        return receipt

    def new_task(self, quorum: int = 3) -> TaskResult:
        """Post a fresh task; return a TaskResult for it with some output."""
        n = next(self.counter)
        result = TaskResult(keccak(text=f"task {n}"), keccak(text=f"model {n}"),
                            keccak(text=f"input {n}"), keccak(text=f"output {n}"), 7)
        self.send(self.attest.functions.postTask(
            result.task_id, result.model_hash, result.input_hash, quorum))
        return result

    def digest(self, result: TaskResult) -> bytes:
        return eip712.task_result_digest(result, self.chain_id, self.address)

    def sigs(self, result: TaskResult, sats: list[Satellite]) -> list[bytes]:
        digest = self.digest(result)
        return [s.sign(digest) for s in sats]

    def submit(self, result: TaskResult, sigs: list[bytes]) -> Any:
        return self.attest.functions.submitCertificate(result.as_tuple(), sigs)


def deploy(w3: Web3, name: str, *args: Any) -> Contract:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])


@pytest.fixture(scope="module")
def dep(anvil: Anvil) -> Deployment:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    w3.eth.default_account = w3.eth.accounts[0]  # eth_call's `from` (an operator)
    registry = deploy(w3, "SatelliteRegistry")
    attest = deploy(w3, "TaskAttestations", registry.address)
    d = Deployment(w3, registry, attest, w3.eth.accounts[0], w3.eth.chain_id,
                   make_satellites(N_SATELLITES, "orbital sat"), itertools.count())
    d.send(registry.functions.setAttestations(attest.address))
    for i, sat in enumerate(d.satellites):
        d.send(registry.functions.register(sat.checksum, f"SAT-{i}", 40000 + i))
    return d


def error_selector(contract: Contract, name: str) -> bytes:
    """The 4-byte selector of custom error ``name`` from the contract's ABI."""
    (entry,) = [e for e in contract.abi if e["type"] == "error" and e["name"] == name]
    types = ",".join(i["type"] for i in entry["inputs"])
    return keccak(text=f"{name}({types})")[:4]


def expect_error(contract: Contract, call: Any, name: str, *args: Any) -> None:
    """``call`` reverts with custom error ``name`` (and these arguments, if given)."""
    with pytest.raises(ContractCustomError) as info:
        call.call()
    data = info.value.data
    assert isinstance(data, str)
    raw = bytes.fromhex(data.removeprefix("0x"))
    assert raw[:4] == error_selector(contract, name), f"expected {name}, got {data}"
    if args:
        (entry,) = [e for e in contract.abi if e["type"] == "error" and e["name"] == name]
        assert raw[4:] == abi_encode([i["type"] for i in entry["inputs"]], list(args))


Reverts = Callable[..., None]


@pytest.fixture
def reverts(dep: Deployment) -> Reverts:
    """``reverts(fn, "Error", *args)`` against TaskAttestations (eth_call, then a real tx must
    fail the same way through web3's gas estimation)."""

    def check(fn: Any, name: str, *args: Any) -> None:
        expect_error(dep.attest, fn, name, *args)
        with pytest.raises(ContractCustomError):
            fn.transact({"from": dep.operator})

    return check


# -- registry -----------------------------------------------------------------------------

def test_registry_lifecycle_and_events(dep: Deployment) -> None:
    reg = dep.registry
    (sat,) = make_satellites(1, "lifecycle")
    receipt = dep.send(reg.functions.register(sat.checksum, "ORBITAL-LC", 59051))
    (event,) = reg.events.SatelliteRegistered().process_receipt(receipt)
    assert event["args"]["signer"] == sat.checksum
    assert event["args"]["name"] == "ORBITAL-LC" and event["args"]["noradId"] == 59051
    assert reg.functions.satellite(sat.checksum).call() == ["ORBITAL-LC", 59051, True, True]
    assert reg.functions.isActive(sat.checksum).call()
    receipt = dep.send(reg.functions.deactivate(sat.checksum))
    assert reg.events.SatelliteDeactivated().process_receipt(receipt)[0]["args"]["signer"] == (
        sat.checksum)
    assert not reg.functions.isActive(sat.checksum).call()
    assert reg.functions.isRegistered(sat.checksum).call()
    expect_error(reg, reg.functions.deactivate(sat.checksum), "AlreadyInactive", sat.checksum)
    receipt = dep.send(reg.functions.reactivate(sat.checksum))
    assert reg.events.SatelliteReactivated().process_receipt(receipt)
    expect_error(reg, reg.functions.reactivate(sat.checksum), "AlreadyActive", sat.checksum)
    expect_error(reg, reg.functions.register(sat.checksum, "X", 1), "AlreadyRegistered",
                 sat.checksum)
    (other,) = make_satellites(1, "never registered")
    expect_error(reg, reg.functions.deactivate(other.checksum), "NotRegistered", other.checksum)
    expect_error(reg, reg.functions.register("0x" + "00" * 20, "X", 1), "ZeroAddress")


def test_active_set_snapshot_follows_every_change(anvil: Anvil) -> None:
    """The code snapshot TaskAttestations reads (``activeSet``) always lists exactly the
    active satellites, ascending: insertions and removals at the front, middle and end."""
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    w3.eth.default_account = w3.eth.accounts[0]
    reg = deploy(w3, "SatelliteRegistry")
    assert reg.functions.activeSigners().call() == []
    sats = make_satellites(7, "snapshot")
    active: set[str] = set()

    def change(fn: Any, signer: Satellite, now_active: bool) -> None:
        receipt = w3.eth.wait_for_transaction_receipt(fn.transact(), timeout=10)
        assert receipt["status"] == 1
        (active.add if now_active else active.discard)(signer.checksum)
        listed = reg.functions.activeSigners().call()
        assert listed == sorted(active, key=lambda a: int(a, 16))
        assert all(reg.functions.isActive(a).call() for a in listed)

    for i in (3, 0, 6, 1, 5, 2, 4):  # middle, front, end, ...
        change(reg.functions.register(sats[i].checksum, f"S{i}", i), sats[i], True)
    for i in (0, 6, 3):  # front, end, middle
        change(reg.functions.deactivate(sats[i].checksum), sats[i], False)
    for i in (6, 0, 3):
        change(reg.functions.reactivate(sats[i].checksum), sats[i], True)
    for sat in sats:
        change(reg.functions.deactivate(sat.checksum), sat, False)
    assert reg.functions.activeSigners().call() == []


def test_registry_owner_and_operators(dep: Deployment) -> None:
    reg = dep.registry
    owner, stranger = dep.w3.eth.accounts[0], dep.w3.eth.accounts[3]
    assert reg.functions.owner().call() == owner
    assert reg.functions.isOperator(owner).call()
    (sat,) = make_satellites(1, "operator test")
    with pytest.raises(ContractCustomError) as info:
        reg.functions.register(sat.checksum, "X", 1).call({"from": stranger})
    assert bytes.fromhex(str(info.value.data)[2:]) == error_selector(reg, "NotOperator")
    with pytest.raises(ContractCustomError) as info:
        reg.functions.addOperator(stranger).call({"from": stranger})
    assert bytes.fromhex(str(info.value.data)[2:]) == error_selector(reg, "NotOwner")
    receipt = dep.send(reg.functions.addOperator(stranger))
    assert reg.events.OperatorAdded().process_receipt(receipt)[0]["args"]["operator"] == stranger
    dep.send(reg.functions.register(sat.checksum, "BY-OPERATOR", 2), sender=stranger)
    receipt = dep.send(reg.functions.removeOperator(stranger))
    assert reg.events.OperatorRemoved().process_receipt(receipt)
    assert not reg.functions.isOperator(stranger).call()
    expect_error(reg, reg.functions.removeOperator(owner), "CannotRemoveOwner")


def test_an_operator_deactivates_only_its_own_satellites(dep: Deployment) -> None:
    """One operator (trusted only as one of m) cannot silence another operator's satellites
    and so block the operator quorums they count toward; the owner still can."""
    reg = dep.registry
    alice, mallory = dep.w3.eth.accounts[4], dep.w3.eth.accounts[5]
    for operator in (alice, mallory):
        dep.send(reg.functions.addOperator(operator))
    (sat,) = make_satellites(1, "alice's own")
    dep.send(reg.functions.register(sat.checksum, "ALICE-1", 7), sender=alice)
    try:
        with pytest.raises(ContractCustomError) as info:
            reg.functions.deactivate(sat.checksum).call({"from": mallory})
        assert bytes.fromhex(str(info.value.data)[2:]) == (
            error_selector(reg, "NotItsOperator") + bytes(12) + sat.address)
        dep.send(reg.functions.deactivate(sat.checksum), sender=alice)
        assert not reg.functions.isActive(sat.checksum).call()
        with pytest.raises(ContractCustomError) as info:
            reg.functions.reactivate(sat.checksum).call({"from": mallory})
        assert bytes.fromhex(str(info.value.data)[2:])[:4] == error_selector(
            reg, "NotItsOperator")
        dep.send(reg.functions.reactivate(sat.checksum))  # the owner may
        assert reg.functions.isActive(sat.checksum).call()
        dep.send(reg.functions.deactivate(sat.checksum), sender=alice)  # leave the set as it was
    finally:
        for operator in (alice, mallory):
            dep.send(reg.functions.removeOperator(operator))


# -- tasks and certificates ---------------------------------------------------------------

def test_post_task_emits_and_only_operators_post(dep: Deployment, reverts: Reverts) -> None:
    result = TaskResult(keccak(text="posted"), keccak(text="m"), keccak(text="i"),
                        keccak(text="o"), 1)
    fn = dep.attest.functions.postTask(result.task_id, result.model_hash, result.input_hash, 2)
    receipt = dep.send(fn)
    (event,) = dep.attest.events.TaskPosted().process_receipt(receipt)
    assert event["args"]["taskId"] == result.task_id and event["args"]["quorum"] == 2
    assert event["args"]["poster"] == dep.operator
    assert dep.attest.functions.task(result.task_id).call() == [
        result.model_hash, result.input_hash, 2]
    reverts(fn, "TaskExists", result.task_id)
    reverts(dep.attest.functions.postTask(keccak(text="q0"), bytes(32), bytes(32), 0),
            "ZeroQuorum")
    stranger = dep.w3.eth.accounts[4]
    with pytest.raises(ContractCustomError) as info:
        dep.attest.functions.postTask(keccak(text="x"), bytes(32), bytes(32), 1).call(
            {"from": stranger})
    assert bytes.fromhex(str(info.value.data)[2:]) == error_selector(dep.attest, "NotOperator")


def test_happy_path_3_of_5(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=3)
    five = dep.satellites[:5]
    receipt = dep.send(dep.submit(result, dep.sigs(result, five[1:4])))
    (event,) = dep.attest.events.TaskCertified().process_receipt(receipt)
    assert event["args"]["taskId"] == result.task_id
    assert event["args"]["outputHash"] == result.output_hash
    assert event["args"]["epoch"] == result.epoch and event["args"]["signers"] == 3
    assert dep.attest.functions.certifiedOutput(result.task_id).call() == result.output_hash
    # replayed (same or another certificate for the task): refused
    reverts(dep.submit(result, dep.sigs(result, five[1:4])), "AlreadyCertified", result.task_id)
    reverts(dep.submit(result, dep.sigs(result, five)), "AlreadyCertified", result.task_id)


def test_more_than_quorum_accepted(dep: Deployment) -> None:
    result = dep.new_task(quorum=2)
    receipt = dep.send(dep.submit(result, dep.sigs(result, dep.satellites[:5])))
    assert dep.attest.events.TaskCertified().process_receipt(receipt)[0]["args"]["signers"] == 5


def test_unknown_and_mismatched_task(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=1)
    unknown = TaskResult(keccak(text="never posted"), result.model_hash, result.input_hash,
                         result.output_hash, 1)
    reverts(dep.submit(unknown, dep.sigs(unknown, dep.satellites[:1])), "TaskUnknown",
            unknown.task_id)
    wrong_model = TaskResult(result.task_id, keccak(text="other model"), result.input_hash,
                             result.output_hash, 1)
    reverts(dep.submit(wrong_model, dep.sigs(wrong_model, dep.satellites[:1])), "TaskMismatch",
            result.task_id)
    zero = TaskResult(result.task_id, result.model_hash, result.input_hash, bytes(32), 1)
    reverts(dep.submit(zero, dep.sigs(zero, dep.satellites[:1])), "ZeroOutputHash")


def test_unregistered_signer(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=1)
    (stranger,) = make_satellites(1, "not registered")
    reverts(dep.submit(result, dep.sigs(result, [stranger])), "SignerNotActive",
            stranger.checksum)


def test_deactivated_then_reactivated_signer(dep: Deployment, reverts: Reverts) -> None:
    sat = dep.satellites[2]
    result = dep.new_task(quorum=3)
    sigs = dep.sigs(result, dep.satellites[:3])
    dep.send(dep.registry.functions.deactivate(sat.checksum))
    try:
        reverts(dep.submit(result, sigs), "SignerNotActive", sat.checksum)
    finally:
        dep.send(dep.registry.functions.reactivate(sat.checksum))
    dep.send(dep.submit(result, sigs))
    assert dep.attest.functions.certifiedOutput(result.task_id).call() == result.output_hash


def test_duplicate_and_unsorted_signers(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=2)
    a, b = dep.sigs(result, dep.satellites[:2])
    reverts(dep.submit(result, [a, a]), "SignersNotAscending", 1)
    reverts(dep.submit(result, [b, a]), "SignersNotAscending", 1)
    dep.send(dep.submit(result, [a, b]))


def test_below_quorum(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=3)
    reverts(dep.submit(result, dep.sigs(result, dep.satellites[:2])), "QuorumNotReached", 2, 3)
    reverts(dep.submit(result, []), "QuorumNotReached", 0, 3)


def test_malformed_signatures(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=2)
    good, sig = dep.sigs(result, dep.satellites[:2])
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    reverts(dep.submit(result, [good, sig[:64]]), "BadSignatureLength", 1)
    reverts(dep.submit(result, [good, sig + b"\x00"]), "BadSignatureLength", 1)
    reverts(dep.submit(result, [good, r + sig[32:64] + bytes([v - 27])]), "BadSignatureV", 1)
    reverts(dep.submit(result, [good, r + sig[32:64] + b"\x1d"]), "BadSignatureV", 1)
    # the high-s twin of a valid signature recovers the same key: refused (EIP-2)
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    reverts(dep.submit(result, [good, twin]), "HighS", 1)
    reverts(dep.submit(result, [good, bytes(32) + sig[32:]]), "InvalidSignature", 1)
    # r not the x of a curve point
    reverts(dep.submit(result, [good, b"\xff" * 32 + sig[32:]]), "InvalidSignature", 1)
    dep.send(dep.submit(result, [good, sig]))


def test_wrong_domain_signatures_recover_strangers(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=1)
    sat = dep.satellites[0]
    for chain_id, contract in ((1, dep.address), (dep.chain_id, dep.registry.address)):
        sig = sat.sign(eip712.task_result_digest(result, chain_id, contract))
        with pytest.raises(ContractCustomError) as info:
            dep.submit(result, [sig]).call()
        raw = bytes.fromhex(str(info.value.data)[2:])
        assert raw[:4] == error_selector(dep.attest, "SignerNotActive")
        assert raw[16:] != sat.address  # somebody else recovered
    # signed for another epoch than submitted: also another digest
    sig = sat.sign(dep.digest(TaskResult(result.task_id, result.model_hash, result.input_hash,
                                         result.output_hash, result.epoch + 1)))
    expect_error(dep.attest, dep.submit(result, [sig]), "SignerNotActive")


def test_domain_separator_and_typehashes(dep: Deployment) -> None:
    assert dep.attest.functions.domainSeparator().call() == eip712.domain_separator(
        dep.chain_id, dep.address)
    assert dep.attest.functions.TASK_RESULT_TYPEHASH().call() == eip712.TASK_RESULT_TYPEHASH
    assert dep.attest.functions.TASK_BATCH_TYPEHASH().call() == eip712.TASK_BATCH_TYPEHASH
    batch = TaskBatch(keccak(text="root"), 3, 64)
    assert dep.attest.functions.hashTaskBatch(batch.root, 3, 64).call() == (
        eip712.task_batch_digest(batch, dep.chain_id, dep.address))


def test_domain_separator_follows_a_chain_id_change(dep: Deployment, anvil: Anvil) -> None:
    """Cached at deployment, recomputed when block.chainid differs (a fork): signatures made
    for the old chain id then no longer verify."""
    result = dep.new_task(quorum=1)
    (sig,) = dep.sigs(result, dep.satellites[:1])
    anvil.rpc("anvil_setChainId", 999)
    try:
        assert dep.attest.functions.domainSeparator().call() == eip712.domain_separator(
            999, dep.address)
        expect_error(dep.attest, dep.submit(result, [sig]), "SignerNotActive")
    finally:
        anvil.rpc("anvil_setChainId", dep.chain_id)
    assert dep.attest.functions.domainSeparator().call() == eip712.domain_separator(
        dep.chain_id, dep.address)
    dep.send(dep.submit(result, [sig]))


# -- batches ------------------------------------------------------------------------------

def _batch(dep: Deployment, count: int, quorum: int, epoch: int = 9) -> list[TaskResult]:
    results = []
    for _ in range(count):
        r = dep.new_task(quorum=quorum)
        results.append(TaskResult(r.task_id, r.model_hash, r.input_hash, r.output_hash, epoch))
    return results


def _certify_batch(dep: Deployment, results: list[TaskResult], sats: list[Satellite],
                   epoch: int = 9) -> tuple[bytes, list[bytes], dict[str, Any]]:
    leaves = [eip712.task_result_hash_struct(r) for r in results]
    root = merkle.merkle_root(leaves)
    digest = eip712.task_batch_digest(TaskBatch(root, epoch, len(leaves)), dep.chain_id,
                                      dep.address)
    sigs = [s.sign(digest) for s in sats]
    receipt = dep.send(dep.attest.functions.submitBatchCertificate(root, epoch, len(leaves), sigs))
    return root, leaves, receipt


def test_batch_certified_then_member_proven(dep: Deployment, reverts: Reverts) -> None:
    results = _batch(dep, 8, quorum=3)
    root, leaves, receipt = _certify_batch(dep, results, dep.satellites[:3])
    (event,) = dep.attest.events.BatchCertified().process_receipt(receipt)
    assert event["args"]["root"] == root and event["args"]["count"] == 8
    assert event["args"]["signers"] == 3 and event["args"]["epoch"] == 9
    assert dep.attest.functions.batch(root).call() == [9, 8, 3]
    assert dep.attest.functions.taskResultHashStruct(results[3].as_tuple()).call() == leaves[3]

    proof = merkle.merkle_proof(leaves, 3)
    assert merkle.verify(leaves[3], proof, 3, 8, root)
    prove = dep.attest.functions.proveBatchMember
    # a wrong proof, a wrong index, a proof of another member: refused
    reverts(prove(results[3].as_tuple(), root, merkle.merkle_proof(leaves, 4), 3),
            "BadMerkleProof")
    reverts(prove(results[3].as_tuple(), root, proof, 2), "BadMerkleProof")
    reverts(prove(results[3].as_tuple(), root, proof[:-1], 3), "BadMerkleProof")
    reverts(prove(results[3].as_tuple(), root, [*proof, root], 3), "BadMerkleProof")
    reverts(prove(results[3].as_tuple(), root, proof, 3 + 8), "BadMerkleProof")
    receipt = dep.send(prove(results[3].as_tuple(), root, proof, 3))
    (event,) = dep.attest.events.TaskCertified().process_receipt(receipt)
    assert event["args"]["taskId"] == results[3].task_id and event["args"]["signers"] == 3
    assert dep.attest.functions.certifiedOutput(results[3].task_id).call() == (
        results[3].output_hash)
    reverts(prove(results[3].as_tuple(), root, proof, 3), "AlreadyCertified", results[3].task_id)
    # the same batch certificate again is not stronger: refused
    digest = eip712.task_batch_digest(TaskBatch(root, 9, 8), dep.chain_id, dep.address)
    again = [s.sign(digest) for s in dep.satellites[:3]]
    reverts(dep.attest.functions.submitBatchCertificate(root, 9, 8, again),
            "BatchNotStronger", root, 3, 1, 3, 1)


def test_batch_rejections(dep: Deployment, reverts: Reverts) -> None:
    results = _batch(dep, 5, quorum=4)  # odd count: promotion at several levels
    root, leaves, _ = _certify_batch(dep, results, dep.satellites[:3])
    prove = dep.attest.functions.proveBatchMember
    reverts(prove(results[4].as_tuple(), keccak(text="no batch"), [], 4), "BatchUnknown",
            keccak(text="no batch"))
    reverts(prove(results[4].as_tuple(), root, merkle.merkle_proof(leaves, 4), 4),
            "QuorumNotReached", 3, 4)
    other_epoch = TaskResult(*results[0].as_tuple()[:4], 10)
    reverts(prove(other_epoch.as_tuple(), root, merkle.merkle_proof(leaves, 0), 0),
            "EpochMismatch", 9, 10)
    reverts(dep.attest.functions.submitBatchCertificate(keccak(text="r"), 1, 0, []),
            "EmptyBatch")
    reverts(dep.attest.functions.submitBatchCertificate(keccak(text="r"), 1, 4, []),
            "QuorumNotReached", 0, 1)
    (stranger,) = make_satellites(1, "batch stranger")
    digest = eip712.task_batch_digest(TaskBatch(keccak(text="r"), 1, 4), dep.chain_id,
                                      dep.address)
    reverts(dep.attest.functions.submitBatchCertificate(keccak(text="r"), 1, 4,
                                                        [stranger.sign(digest)]),
            "SignerNotActive", stranger.checksum)


def test_every_member_of_an_odd_batch_provable(dep: Deployment) -> None:
    results = _batch(dep, 7, quorum=2)
    root, leaves, _ = _certify_batch(dep, results, dep.satellites[:2])
    for i, result in enumerate(results):
        proof = merkle.merkle_proof(leaves, i)
        dep.send(dep.attest.functions.proveBatchMember(result.as_tuple(), root, proof, i))
        assert dep.attest.functions.certifiedOutput(result.task_id).call() == result.output_hash


# -- equivocation -------------------------------------------------------------------------

def fresh_satellite(dep: Deployment, label: str) -> Satellite:
    """A satellite registered for one test (equivocation removes it from the active set for
    good, so the module's shared satellites are not used)."""
    (sat,) = make_satellites(1, label)
    dep.send(dep.registry.functions.register(sat.checksum, label, 1))
    return sat


def test_equivocation_reported_once(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=1)
    sat = fresh_satellite(dep, "reported once")
    other = TaskResult(result.task_id, result.model_hash, result.input_hash,
                       keccak(text="a different output"), result.epoch)
    (sig_a,) = dep.sigs(result, [sat])
    (sig_b,) = dep.sigs(other, [sat])
    report = dep.attest.functions.reportEquivocation
    assert not dep.attest.functions.equivocated(sat.checksum).call()
    receipt = dep.send(report(result.as_tuple(), sig_a, other.as_tuple(), sig_b))
    (event,) = dep.attest.events.Equivocation().process_receipt(receipt)
    assert event["args"]["signer"] == sat.checksum
    assert event["args"]["taskId"] == result.task_id
    assert event["args"]["outputA"] == result.output_hash
    assert event["args"]["outputB"] == other.output_hash
    assert dep.attest.functions.equivocated(sat.checksum).call()
    assert dep.attest.functions.reported(sat.checksum, result.task_id).call()
    reverts(report(result.as_tuple(), sig_a, other.as_tuple(), sig_b), "AlreadyReported",
            sat.checksum, result.task_id)
    reverts(report(other.as_tuple(), sig_b, result.as_tuple(), sig_a), "AlreadyReported",
            sat.checksum, result.task_id)


def test_equivocation_rejections(dep: Deployment, reverts: Reverts) -> None:
    result = dep.new_task(quorum=1)
    a_sat, b_sat = dep.satellites[6], dep.satellites[7]
    other = TaskResult(result.task_id, result.model_hash, result.input_hash,
                       keccak(text="other output"), result.epoch)
    report = dep.attest.functions.reportEquivocation
    (sig_a,) = dep.sigs(result, [a_sat])
    # the same output twice (even in another epoch) is no equivocation
    again = TaskResult(*result.as_tuple()[:4], result.epoch + 1)
    (sig_again,) = dep.sigs(again, [a_sat])
    reverts(report(result.as_tuple(), sig_a, again.as_tuple(), sig_again), "NotEquivocation")
    # two signers
    (sig_b,) = dep.sigs(other, [b_sat])
    reverts(report(result.as_tuple(), sig_a, other.as_tuple(), sig_b), "NotEquivocation")
    # different tasks
    unrelated = dep.new_task(quorum=1)
    (sig_u,) = dep.sigs(unrelated, [a_sat])
    reverts(report(result.as_tuple(), sig_a, unrelated.as_tuple(), sig_u), "NotEquivocation")
    # malformed second signature
    (sig_a2,) = dep.sigs(other, [a_sat])
    reverts(report(result.as_tuple(), sig_a, other.as_tuple(), sig_a2[:64]),
            "BadSignatureLength", 1)
    # an unregistered signer cannot be reported
    (stranger,) = make_satellites(1, "equivocating stranger")
    (s1,) = dep.sigs(result, [stranger])
    (s2,) = dep.sigs(other, [stranger])
    reverts(report(result.as_tuple(), s1, other.as_tuple(), s2), "SignerNotRegistered",
            stranger.checksum)


def test_equivocation_by_deactivated_signer_still_reportable(dep: Deployment) -> None:
    result = dep.new_task(quorum=1)
    sat = fresh_satellite(dep, "deactivated liar")
    other = TaskResult(*result.as_tuple()[:3], keccak(text="liar"), result.epoch)
    (sig_a,) = dep.sigs(result, [sat])
    (sig_b,) = dep.sigs(other, [sat])
    dep.send(dep.registry.functions.deactivate(sat.checksum))
    dep.send(dep.attest.functions.reportEquivocation(result.as_tuple(), sig_a,
                                                     other.as_tuple(), sig_b))
    assert dep.attest.functions.equivocated(sat.checksum).call()
    assert dep.registry.functions.isEquivocated(sat.checksum).call()
    # an equivocated satellite is never re-activated
    expect_error(dep.registry, dep.registry.functions.reactivate(sat.checksum), "Equivocated",
                 sat.checksum)


# -- gas ----------------------------------------------------------------------------------

def _certificate_gas(dep: Deployment, k: int) -> int:
    result = dep.new_task(quorum=1)
    receipt = dep.send(dep.submit(result, dep.sigs(result, dep.satellites[:k])))
    return int(receipt["gasUsed"])


def test_gas_per_signer_and_per_batched_task(dep: Deployment) -> None:
    gas = {k: _certificate_gas(dep, k) for k in (1, 3, 5, 8, 16)}
    per_signer = (gas[16] - gas[1]) / 15
    count = 64
    root = keccak(text="gas batch")
    digest = eip712.task_batch_digest(TaskBatch(root, 1, count), dep.chain_id, dep.address)
    sigs = [s.sign(digest) for s in dep.satellites[:3]]
    receipt = dep.send(dep.attest.functions.submitBatchCertificate(root, 1, count, sigs))
    per_task = int(receipt["gasUsed"]) / count
    print(f"submitCertificate gas by k: {gas}; per additional signer {per_signer:.0f}; "
          f"submitBatchCertificate(64, k=3) {receipt['gasUsed']} = {per_task:.0f} per task")
    assert per_signer <= 6000
    assert per_task <= 5000

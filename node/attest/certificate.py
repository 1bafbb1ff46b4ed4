"""k-of-n certificates: attestations of one task gathered until ``quorum`` signers agree on
one output, then handed to ``TaskAttestations.submitCertificate`` (signatures ordered by
strictly ascending signer address, as the contract requires).

A :class:`CertificateBuilder` is given already *verified* attestations
(:func:`~node.attest.attestation.verify_attestation`); it still refuses ones for another
task, model, input, domain, and keeps at most one attestation per signer per output. A
signer that attests two outputs is counted in both groups here -- detecting that is
:class:`~node.attest.equivocation.EquivocationDetector`'s job -- and the contract only
counts the group it is given.

:func:`batch_certificate` signs a batch of results (Merkle root over their hashStruct
leaves, :mod:`contracts.merkle`) as ``TaskBatch`` for ``submitBatchCertificate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts import eip712, merkle
from node.attest.attestation import SignedAttestation, TypedDataSigner, as_address

SUBMIT_CERTIFICATE = "submitCertificate((bytes32,bytes32,bytes32,bytes32,uint64),bytes[])"
"""``TaskAttestations.submitCertificate``'s canonical signature (its selector is the first 4
bytes of its keccak256; a wallet policy may list it as is)."""


@dataclass(frozen=True)
class TaskTerms:
    """What a certificate is for: a posted task's id, model and input, and how many
    signers must agree (its quorum), as ``TaskAttestations`` knows them. (Not the
    runnable :class:`node.tasks.task.Task`, which holds the inputs themselves.)"""

    task_id: bytes
    model_hash: bytes
    input_hash: bytes
    quorum: int


@dataclass(frozen=True)
class Certificate:
    """``result`` signed by ``signers`` (ascending), ``signatures[i]`` by ``signers[i]``."""

    result: eip712.TaskResult
    signatures: tuple[bytes, ...]
    signers: tuple[bytes, ...]

    def to_contract_args(self) -> tuple[tuple[Any, ...], list[bytes]]:
        """``(result tuple, signatures)`` for ``TaskAttestations.submitCertificate``."""
        return self.result.as_tuple(), list(self.signatures)

    def calldata(self) -> bytes:
        """The ABI-encoded call ``submitCertificate(result, signatures)`` (the data of the
        transaction that submits this certificate)."""
        from eth_abi import encode
        from eth_utils import keccak

        return keccak(text=SUBMIT_CERTIFICATE)[:4] + encode(
            ["(bytes32,bytes32,bytes32,bytes32,uint64)", "bytes[]"], self.to_contract_args())


class CertificateBuilder:
    """Gathers attestations for one task, grouped by the exact TaskResult (output and epoch)."""

    def __init__(self, task: TaskTerms | tuple[bytes, bytes, bytes, int], chain_id: int,
                 contract: bytes | str) -> None:
        self.task = task if isinstance(task, TaskTerms) else TaskTerms(*task)
        if self.task.quorum < 1:
            raise ValueError("quorum must be at least 1")
        self.chain_id = chain_id
        self.contract = as_address(contract)
        self._groups: dict[eip712.TaskResult, dict[bytes, SignedAttestation]] = {}

    def _matches(self, att: SignedAttestation) -> bool:
        r = att.result
        return (r.task_id == self.task.task_id and r.model_hash == self.task.model_hash
                and r.input_hash == self.task.input_hash and att.chain_id == self.chain_id
                and att.contract == self.contract)

    def add(self, att: SignedAttestation) -> bool:
        """Count ``att``; False if it is for another task/domain or its signer already
        attested this exact result."""
        if not self._matches(att):
            return False
        group = self._groups.setdefault(att.result, {})
        if att.signer in group:
            return False
        group[att.signer] = att
        return True

    def results(self, output_hash: bytes | None = None) -> list[eip712.TaskResult]:
        """The distinct results seen (for ``output_hash`` only, when given)."""
        return [r for r in self._groups
                if output_hash is None or r.output_hash == output_hash]

    def count(self, output_hash: bytes) -> int:
        """Signers of the best-supported result with ``output_hash``."""
        return max((len(self._groups[r]) for r in self.results(output_hash)), default=0)

    def ready(self, output_hash: bytes) -> bool:
        """Whether ``quorum`` signers attested one result with ``output_hash``."""
        return self.count(output_hash) >= self.task.quorum

    def ready_outputs(self) -> list[bytes]:
        """Outputs that reached quorum (normally at most one)."""
        return sorted({r.output_hash for r in self._groups if len(self._groups[r])
                       >= self.task.quorum})

    def certificate(self, output_hash: bytes) -> Certificate:
        """The certificate for ``output_hash``: every signer of its best-supported result
        (ties: lowest epoch), ordered by ascending address. Raises ValueError below quorum."""
        if not self.ready(output_hash):
            raise ValueError(f"output 0x{output_hash.hex()} has {self.count(output_hash)} of "
                             f"{self.task.quorum} signatures")
        result = max(self.results(output_hash),
                     key=lambda r: (len(self._groups[r]), -r.epoch))
        group = self._groups[result]
        signers = tuple(sorted(group, key=lambda a: int.from_bytes(a, "big")))
        return Certificate(result, tuple(group[s].signature for s in signers), signers)


@dataclass(frozen=True)
class BatchCertificate:
    """A ``TaskBatch`` (Merkle root of ``results``) and signatures by ascending signer."""

    batch: eip712.TaskBatch
    results: tuple[eip712.TaskResult, ...]
    signatures: tuple[bytes, ...]
    signers: tuple[bytes, ...]

    def to_contract_args(self) -> tuple[bytes, int, int, list[bytes]]:
        """``(root, epoch, count, signatures)`` for ``submitBatchCertificate``."""
        return self.batch.root, self.batch.epoch, self.batch.count, list(self.signatures)

    def proof(self, index: int) -> tuple[tuple[Any, ...], bytes, list[bytes], int]:
        """``(result tuple, root, proof, index)`` for ``proveBatchMember``."""
        leaves = batch_leaves(self.results)
        return (self.results[index].as_tuple(), self.batch.root,
                merkle.merkle_proof(leaves, index), index)


def batch_leaves(results: Sequence[eip712.TaskResult]) -> list[bytes]:
    return [eip712.task_result_hash_struct(r) for r in results]


def batch_certificate(results: Sequence[eip712.TaskResult], signers: Sequence[Any],
                      chain_id: int, contract: bytes | str) -> BatchCertificate:
    """Sign the batch of ``results`` (all of one epoch) with each of ``signers`` (raw
    ``Signer`` or ``OnboardSigner``, as :func:`~node.attest.attestation.attest` takes) and
    order the signatures for the contract."""
    epochs = {r.epoch for r in results}
    if len(epochs) != 1:
        raise ValueError("a batch needs at least one result, all of one epoch")
    batch = eip712.TaskBatch(merkle.merkle_root(batch_leaves(results)), epochs.pop(),
                             len(results))
    contract_raw = as_address(contract)
    pairs = [(bytes(s.address), _sign_batch(batch, chain_id, contract_raw, s)) for s in signers]
    ordered = eip712.order_signatures(pairs)
    addresses = tuple(sorted((a for a, _ in pairs), key=lambda a: int.from_bytes(a, "big")))
    return BatchCertificate(batch, tuple(results), tuple(ordered), addresses)


def _sign_batch(batch: eip712.TaskBatch, chain_id: int, contract: bytes, signer: Any) -> bytes:
    if isinstance(signer, TypedDataSigner):
        document = eip712.task_batch_typed_data(batch, chain_id, contract)
        return bytes(signer.sign_typed_data(document).to_bytes())
    return eip712.sign_task_batch(batch, chain_id, contract, signer)

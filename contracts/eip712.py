"""The one definition of the attestation encodings: the EIP-712 domain of TaskAttestations
and the structs satellites sign (EIP-712, https://eips.ethereum.org/EIPS/eip-712).

A satellite that ran a task signs ::

    TaskResult(bytes32 taskId,bytes32 modelHash,bytes32 inputHash,bytes32 outputHash,uint64 epoch)

and a batch of results is signed through its Merkle root (see :mod:`contracts.merkle`) as ::

    TaskBatch(bytes32 root,uint64 epoch,uint32 count)

both under the domain ``{name: "OrbitalTaskAttestations", version: "1", chainId,
verifyingContract}`` where ``verifyingContract`` is the deployed TaskAttestations. The digest
signed is ``keccak256(0x19 0x01 || domainSeparator || hashStruct(message))``;
``hashStruct(s) = keccak256(typeHash || encodeData(s))`` with every field one 32-byte word.
``contracts/src/TaskAttestations.sol`` computes the same (its ``hashTaskResult`` view is tested
against :func:`task_result_digest`). The node and the contract tests import these; nothing else
defines them.

Signing is the caller's: :func:`sign_task_result` takes anything shaped like the wallet's
``Signer`` (``.address``, ``.sign_digest(digest) -> Signature`` with ``.to_bytes()``), without
importing the wallet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "OrbitalTaskAttestations"
DOMAIN_VERSION = "1"

EIP712_DOMAIN_TYPE = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TASK_RESULT_TYPE = (
    "TaskResult(bytes32 taskId,bytes32 modelHash,bytes32 inputHash,bytes32 outputHash,"
    "uint64 epoch)"
)
TASK_BATCH_TYPE = "TaskBatch(bytes32 root,uint64 epoch,uint32 count)"

EIP712_DOMAIN_TYPEHASH = keccak(text=EIP712_DOMAIN_TYPE)
TASK_RESULT_TYPEHASH = keccak(text=TASK_RESULT_TYPE)
TASK_BATCH_TYPEHASH = keccak(text=TASK_BATCH_TYPE)

EIP712_DOMAIN_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
TASK_RESULT_FIELDS: list[dict[str, str]] = [
    {"name": "taskId", "type": "bytes32"},
    {"name": "modelHash", "type": "bytes32"},
    {"name": "inputHash", "type": "bytes32"},
    {"name": "outputHash", "type": "bytes32"},
    {"name": "epoch", "type": "uint64"},
]
TASK_BATCH_FIELDS: list[dict[str, str]] = [
    {"name": "root", "type": "bytes32"},
    {"name": "epoch", "type": "uint64"},
    {"name": "count", "type": "uint32"},
]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2
"""Largest ``s`` the contract accepts (EIP-2 low-s)."""

Address = bytes | str
"""A 20-byte address, raw or as 0x-hex (any case)."""


def _address_bytes(address: Address) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x")) if isinstance(address, str) else address
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, not {len(raw)}")
    return raw


def _check_word(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes")


def _check_uint(name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be an integer in [0, 2**{bits})")


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


@dataclass(frozen=True)
class TaskResult:
    """What a satellite attests: running model ``model_hash`` on input ``input_hash`` for task
    ``task_id`` gave output ``output_hash``, in ``epoch``."""

    task_id: bytes
    """32 bytes: the task, as posted to TaskAttestations.postTask."""
    model_hash: bytes
    """32 bytes: hash of the model (weights and program) that was run."""
    input_hash: bytes
    """32 bytes: hash of the input."""
    output_hash: bytes
    """32 bytes: hash of the output (never zero: the contract refuses a zero output)."""
    epoch: int
    """uint64: the attestation epoch (for a batch member, the batch's epoch)."""

    def __post_init__(self) -> None:
        for name in ("task_id", "model_hash", "input_hash", "output_hash"):
            _check_word(name, getattr(self, name))
        _check_uint("epoch", self.epoch, 64)

    def as_tuple(self) -> tuple[bytes, bytes, bytes, bytes, int]:
        """The ABI tuple ``(taskId, modelHash, inputHash, outputHash, epoch)`` for web3 calls."""
        return (self.task_id, self.model_hash, self.input_hash, self.output_hash, self.epoch)

    def message(self) -> dict[str, Any]:
        """The EIP-712 ``message`` object (bytes32 as 0x-hex)."""
        return {
            "taskId": "0x" + self.task_id.hex(),
            "modelHash": "0x" + self.model_hash.hex(),
            "inputHash": "0x" + self.input_hash.hex(),
            "outputHash": "0x" + self.output_hash.hex(),
            "epoch": self.epoch,
        }


@dataclass(frozen=True)
class TaskBatch:
    """What satellites sign for a batch: ``count`` results whose Merkle root is ``root``
    (:func:`contracts.merkle.merkle_root` over :func:`task_result_hash_struct` leaves)."""

    root: bytes
    """32 bytes: Merkle root of the batch."""
    epoch: int
    """uint64: the epoch of every result in the batch."""
    count: int
    """uint32: number of leaves (>= 1)."""

    def __post_init__(self) -> None:
        _check_word("root", self.root)
        _check_uint("epoch", self.epoch, 64)
        _check_uint("count", self.count, 32)

    def message(self) -> dict[str, Any]:
        """The EIP-712 ``message`` object."""
        return {"root": "0x" + self.root.hex(), "epoch": self.epoch, "count": self.count}


class Signer(Protocol):
    """The wallet's signing interface (``wallet.keys.signer.Signer``), structurally."""

    @property
    def address(self) -> bytes: ...

    def sign_digest(self, digest: bytes) -> Any:
        """Returns a signature with ``.to_bytes()`` -> 65 bytes ``r || s || v``."""
        ...


def domain(chain_id: int, verifying_contract: Address) -> dict[str, Any]:
    """The EIP-712 domain object of TaskAttestations at ``verifying_contract``."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(_address_bytes(verifying_contract)),
    }


def domain_separator(chain_id: int, verifying_contract: Address) -> bytes:
    """hashStruct(EIP712Domain): what the contract's ``domainSeparator()`` returns."""
    _check_uint("chain_id", chain_id, 256)
    return keccak(
        EIP712_DOMAIN_TYPEHASH
        + keccak(text=DOMAIN_NAME)
        + keccak(text=DOMAIN_VERSION)
        + _word(chain_id)
        + bytes(12) + _address_bytes(verifying_contract)
    )


def _digest(separator: bytes, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + separator + struct_hash)


def task_result_hash_struct(result: TaskResult) -> bytes:
    """hashStruct(TaskResult): the Merkle leaf of ``result`` in a batch."""
    return keccak(
        TASK_RESULT_TYPEHASH
        + result.task_id + result.model_hash + result.input_hash + result.output_hash
        + _word(result.epoch)
    )


def task_result_digest(result: TaskResult, chain_id: int, contract: Address) -> bytes:
    """The 32-byte EIP-712 digest a satellite signs for ``result``."""
    return _digest(domain_separator(chain_id, contract), task_result_hash_struct(result))


def task_result_typed_data(result: TaskResult, chain_id: int, contract: Address) -> dict[str, Any]:
    """The full EIP-712 document for ``result`` (``eth_account.messages.encode_typed_data(
    full_message=...)`` and ``eth_signTypedData_v4`` accept it)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "TaskResult": TASK_RESULT_FIELDS},
        "primaryType": "TaskResult",
        "domain": domain(chain_id, contract),
        "message": result.message(),
    }


def task_batch_hash_struct(batch: TaskBatch) -> bytes:
    """hashStruct(TaskBatch)."""
    return keccak(TASK_BATCH_TYPEHASH + batch.root + _word(batch.epoch) + _word(batch.count))


def task_batch_digest(batch: TaskBatch, chain_id: int, contract: Address) -> bytes:
    """The 32-byte EIP-712 digest satellites sign for ``batch``."""
    return _digest(domain_separator(chain_id, contract), task_batch_hash_struct(batch))


def task_batch_typed_data(batch: TaskBatch, chain_id: int, contract: Address) -> dict[str, Any]:
    """The full EIP-712 document for ``batch``."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "TaskBatch": TASK_BATCH_FIELDS},
        "primaryType": "TaskBatch",
        "domain": domain(chain_id, contract),
        "message": batch.message(),
    }


def _signature_bytes(signer: Signer, digest: bytes) -> bytes:
    raw = signer.sign_digest(digest).to_bytes()
    if len(raw) != 65:
        raise ValueError(f"signer returned {len(raw)} signature bytes, expected 65")
    return bytes(raw)


def sign_task_result(result: TaskResult, chain_id: int, contract: Address, signer: Signer) -> bytes:
    """``signer``'s 65-byte signature (r || s || v) over ``result``'s digest."""
    return _signature_bytes(signer, task_result_digest(result, chain_id, contract))


def sign_task_batch(batch: TaskBatch, chain_id: int, contract: Address, signer: Signer) -> bytes:
    """``signer``'s 65-byte signature (r || s || v) over ``batch``'s digest."""
    return _signature_bytes(signer, task_batch_digest(batch, chain_id, contract))


def order_signatures(signed: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Signatures from ``(signer address, signature)`` pairs in the order the contract wants:
    strictly ascending signer address (duplicates refused here already)."""
    ordered = sorted(signed, key=lambda pair: int.from_bytes(_address_bytes(pair[0]), "big"))
    addresses = [_address_bytes(a) for a, _ in ordered]
    if len(set(addresses)) != len(addresses):
        raise ValueError("two signatures by the same signer")
    return [signature for _, signature in ordered]

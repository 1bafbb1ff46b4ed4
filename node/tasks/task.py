"""A task: run model ``model_hash`` on ``input``, and the hashes a satellite attests.

Derivations (all keccak256, all 32 bytes):

* ``model_hash  = keccak256(weights file bytes)`` (:func:`node.tasks.model.model_hash`);
* ``input_hash  = keccak256(input)``, the input being the concatenated 64-byte image records
  described in :mod:`node.tasks.model`;
* ``task_id     = keccak256(model_hash || input_hash || nonce)``, ``nonce`` a uint256 written
  as 32 bytes big-endian -- the same bytes as Solidity's
  ``keccak256(abi.encode(modelHash, inputHash, nonce))``. The nonce lets the same model and
  input be posted as distinct tasks;
* ``output_hash = keccak256(output)``, the output being :func:`node.tasks.model.infer`'s
  canonical bytes.

:func:`run` refuses a task whose ``model_hash`` is not the loaded model's
(:class:`WrongModelError`), so a node never attests an output of a different model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from node.chain.hashing import keccak256
from node.tasks import model as qmodel

if TYPE_CHECKING:
    from contracts.eip712 import TaskResult


class TaskError(ValueError):
    """A task cannot be run as given; the message says why."""


class WrongModelError(TaskError):
    """The task names a model other than the one loaded."""

    def __init__(self, wanted: bytes, loaded: bytes) -> None:
        self.wanted = wanted
        self.loaded = loaded
        super().__init__(f"task wants model 0x{wanted.hex()} but the loaded model is "
                         f"0x{loaded.hex()}; load the model whose weights hash to the task's "
                         f"modelHash")


class TaskInputError(TaskError):
    """The task's input is not valid for its model (length, pixel range, or hash)."""


def _check32(name: str, value: bytes) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise TaskError(f"{name} must be 32 bytes, got "
                        f"{len(value) if isinstance(value, bytes | bytearray) else type(value)}")


def derive_task_id(model_hash: bytes, input_hash: bytes, nonce: int) -> bytes:
    """``keccak256(model_hash || input_hash || nonce as uint256 big-endian)``."""
    _check32("model_hash", model_hash)
    _check32("input_hash", input_hash)
    if not isinstance(nonce, int) or not 0 <= nonce < 2**256:
        raise TaskError(f"nonce must be a uint256, got {nonce!r}")
    return keccak256(bytes(model_hash) + bytes(input_hash) + nonce.to_bytes(32, "big"))


@dataclass(frozen=True)
class Task:
    """Run the model whose weights hash to ``model_hash`` on ``input``."""

    task_id: bytes
    """32 bytes: the task's identifier (posted on-chain with ``postTask``)."""
    model_hash: bytes
    """32 bytes: keccak256 of the weights file that must be run."""
    input: bytes
    """The input records (64 bytes per image, pixels 0..16)."""

    def __post_init__(self) -> None:
        _check32("task_id", self.task_id)
        _check32("model_hash", self.model_hash)
        if not isinstance(self.input, bytes):
            raise TaskError(f"input must be bytes, got {type(self.input).__name__}")

    @property
    def input_hash(self) -> bytes:
        """keccak256 of the input."""
        return keccak256(self.input)

    @classmethod
    def create(cls, model_hash: bytes, input: bytes, nonce: int = 0) -> Task:
        """A task whose id is derived with :func:`derive_task_id`."""
        input = bytes(input)
        return cls(derive_task_id(model_hash, keccak256(input), nonce), bytes(model_hash),
                   input)

    @classmethod
    def from_posted(cls, task_id: bytes, model_hash: bytes, input_hash: bytes,
                    input: bytes) -> Task:
        """The task posted on-chain as ``(task_id, model_hash, input_hash)``, with its input
        obtained elsewhere (uplink, peer); refuse an input that does not hash to
        ``input_hash``."""
        _check32("input_hash", input_hash)
        computed = keccak256(bytes(input))
        if computed != input_hash:
            raise TaskInputError(f"input hashes to 0x{computed.hex()}, the task's inputHash "
                                 f"is 0x{bytes(input_hash).hex()}")
        return cls(bytes(task_id), bytes(model_hash), bytes(input))


@dataclass(frozen=True)
class TaskOutput:
    """The canonical output bytes of a run and their hash."""

    output: bytes
    output_hash: bytes
    """keccak256(output)."""

    def result(self, task: Task, epoch: int) -> TaskResult:
        """The EIP-712 ``TaskResult`` a satellite signs for this output."""
        from contracts.eip712 import TaskResult  # eth-utils: imported only when needed

        return TaskResult(task.task_id, task.model_hash, task.input_hash, self.output_hash,
                          epoch)


def run(task: Task, model: qmodel.Model) -> TaskOutput:
    """Run ``task`` on ``model`` (which must be the model the task names)."""
    if task.model_hash != model.model_hash:
        raise WrongModelError(task.model_hash, model.model_hash)
    try:
        output = qmodel.infer(model, task.input)
    except qmodel.ModelError as exc:
        raise TaskInputError(f"task 0x{task.task_id.hex()}: {exc}") from exc
    return TaskOutput(output, keccak256(output))

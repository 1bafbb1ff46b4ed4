"""Re-execute a peer's task and co-sign only the same bytes (DESIGN.md, data flow 4).

A satellite that holds a task's input and the task's model does not take a peer's word for the
output: :meth:`Cosigner.consider` runs the task itself (:func:`node.tasks.task.run`, bit-exact
integer inference) and signs the peer's exact ``TaskResult`` only when its own ``outputHash``
is the same. When it differs, the node signs *its own* result instead (same task, same epoch),
so a certificate can only form on an output a quorum computed independently; the disagreement
is reported, never hidden. A node signs at most one result per task (signing two outputs for
one task is what :mod:`node.attest.equivocation` reports as misbehaviour). The set kept in
memory only saves work: what makes it durable is the signer. An
:class:`~wallet.onboard.OnboardSigner` audits each ``TaskResult`` (task id, digest) before
signing it and refuses another result for a task its audit log holds, so after a restart the
node may sign the same result again (harmless: certificates count each signer once), never a
different one; :meth:`Cosigner.consider` reports that refusal instead of raising.

:meth:`Cosigner.run` is the originating side: run a task and sign its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import eip712
from node.attest.attestation import SignedAttestation, as_address, attest
from node.tasks import model as qmodel
from node.tasks.task import Task, run
from wallet.errors import PolicyDeniedError


@dataclass(frozen=True)
class Consideration:
    """What :meth:`Cosigner.consider` made of a peer's attestation."""

    attestation: SignedAttestation | None
    """Our signed attestation to publish, or None (nothing to sign)."""
    agreed: bool | None
    """True: our output equals the peer's; False: it differs (we signed ours); None: not
    re-executed (no input, other model or domain, or already signed this task)."""
    reason: str
    """One line saying what happened."""


class Cosigner:
    """Runs tasks whose input this node holds and co-signs matching results."""

    def __init__(self, signer: Any, model: qmodel.Model, chain_id: int,
                 contract: bytes | str, inputs: Mapping[bytes, Task] | None = None) -> None:
        self.signer = signer
        self.model = model
        self.chain_id = chain_id
        self.contract = as_address(contract)
        self.inputs: dict[bytes, Task] = dict(inputs or {})
        """Tasks whose input this node holds, by task id."""
        self.signed: dict[bytes, eip712.TaskResult] = {}
        """The one result signed per task id."""

    def hold(self, task: Task) -> None:
        """Remember ``task``'s input (uplinked, or fetched from a peer and hash-checked)."""
        self.inputs[task.task_id] = task

    def forget(self, task_id: bytes) -> None:
        """``task_id`` is certified on chain: drop its input and the result we signed (both
        grow by one entry per task otherwise). A later attestation for it finds no input
        and is not re-executed; the signer's audit log still refuses a second result."""
        self.inputs.pop(task_id, None)
        self.signed.pop(task_id, None)

    def run(self, task: Task, epoch: int) -> SignedAttestation:
        """Run ``task`` on our model and sign its result (the originating node)."""
        self.hold(task)
        result = run(task, self.model).result(task, epoch)
        return self._sign(result)

    def consider(self, att: SignedAttestation) -> Consideration:
        """Re-execute the task ``att`` attests (it must already have passed
        :func:`~node.attest.attestation.verify_attestation`) and co-sign on a match."""
        r = att.result
        if att.chain_id != self.chain_id or att.contract != self.contract:
            return Consideration(None, None, "attestation for another TaskAttestations domain")
        if r.task_id in self.signed:
            return Consideration(None, None, f"already signed task 0x{r.task_id.hex()}")
        task = self.inputs.get(r.task_id)
        if task is None:
            return Consideration(None, None, f"input of task 0x{r.task_id.hex()} not held")
        if r.model_hash != task.model_hash or r.input_hash != task.input_hash:
            return Consideration(None, None, f"attestation for task 0x{r.task_id.hex()} names "
                                             f"another model or input than the task")
        if r.model_hash != self.model.model_hash:
            return Consideration(None, None, f"task 0x{r.task_id.hex()} needs model "
                                             f"0x{r.model_hash.hex()}, not loaded")
        ours = run(task, self.model)
        try:
            if ours.output_hash == r.output_hash:
                return Consideration(self._sign(r), True, "same output: co-signed")
            mine = eip712.TaskResult(r.task_id, r.model_hash, r.input_hash, ours.output_hash,
                                     r.epoch)
            return Consideration(self._sign(mine), False,
                                 f"output differs: peer 0x{r.output_hash.hex()}, ours "
                                 f"0x{ours.output_hash.hex()}; signed ours")
        except PolicyDeniedError as exc:
            if exc.rule != "one_result_per_task":
                raise
            return Consideration(None, None, f"already signed another result for task "
                                             f"0x{r.task_id.hex()} (audit log)")

    def _sign(self, result: eip712.TaskResult) -> SignedAttestation:
        prior = self.signed.get(result.task_id)
        if prior is not None and prior != result:
            raise ValueError(f"refusing to sign a second result for task "
                             f"0x{result.task_id.hex()}: that would be equivocation")
        att = attest(result, self.signer, self.chain_id, self.contract)
        self.signed[result.task_id] = result
        return att

"""The on-board signing path: policy, audit log and key, in that order.

Every request becomes a :class:`~wallet.policy.SigningRequest` carrying the exact digest
to be signed. Under the wallet's lock (:class:`~wallet.walletlock.WalletLock`: ``flock`` on
the wallet's home, so two requests -- from two threads or two processes -- cannot together
slip under a rolling limit):

1. the policy decides (allow / deny / delay / needs approvals), remembering what the
   authenticated audit log holds (:mod:`wallet.policy.audited`: rolling window, time-locks);
2. the decision is appended to the audit log, durably;
3. only an allowed request reaches the key; the signature is checked (low-s, recovers
   to the key), appended to the audit log durably, and the spend recorded in the ledger;
4. only then is the signature released to the caller.

A clock that reads earlier than the audit log's last entry stops signing
(:class:`~wallet.audit.ClockBehindError`): setting the clock back must not re-open a
rolling window, mature a time-lock early or revive an expired command.

A refused request raises :class:`~wallet.errors.PolicyDeniedError` with the rule and the
reason; a time-locked one is queued in the ledger and says when it may be signed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wallet.audit import AuditLog
from wallet.errors import PolicyDeniedError
from wallet.keys.signer import Signature, Signer
from wallet.policy import Authorization as PolicyAuthorization
from wallet.policy import Decision, Policy, PolicyLedger, SigningRequest, format_time
from wallet.policy.audited import AuditedHistory
from wallet.policy.evaluation import PendingRequest
from wallet.transactions import (
    SignedTransaction,
    TransactionRequest,
    judgement_digest,
    signing_digest,
)
from wallet.transactions import sign_transaction as sign_with_authorizations
from wallet.walletlock import WalletLock


class OnboardSigner:
    """Signs only what the policy allows, and audits every decision and signature."""

    def __init__(self, signer: Signer, policy: Policy, ledger: PolicyLedger, audit: AuditLog,
                 clock: Callable[[], float] = time.time, lock: WalletLock | None = None) -> None:
        self.signer = signer
        self.policy = policy
        self.ledger = ledger
        self.audit = audit
        self.clock = clock
        self.lock = lock if lock is not None else WalletLock(Path(audit.path).parent)
        """Held from the policy's evaluation to the audit record (default: the directory
        holding the audit log, i.e. the wallet's home)."""

    @property
    def address(self) -> bytes:
        return self.signer.address

    def history(self) -> AuditedHistory:
        """What the policy remembers, derived from the authenticated audit log (and the
        ledger's sums, whichever is larger): edited ledger rows change nothing. Call it
        under the wallet lock."""
        return AuditedHistory(self.audit, self.ledger)

    def judge(self, request: TransactionRequest) -> Decision:
        """What the policy would decide for ``request`` now, from the same authenticated
        history signing uses (a dry run: nothing is audited, signed or time-locked)."""
        with self.ledger.signing_lock, self.lock.held():
            return self.policy.evaluate(
                transaction_signing_request(request, self.address, judgement_digest(request)),
                now=self.clock(), ledger=self.history())

    def pending_requests(self, include_closed: bool = False) -> list[PendingRequest]:
        """The time-locks, from the authenticated audit log (never from ledger rows)."""
        with self.lock.held():
            return self.history().pending_requests(include_closed)

    def sign_transaction(self, request: TransactionRequest,
                         approvals: frozenset[bytes] = frozenset()) -> SignedTransaction:
        """Sign ``request`` if the policy allows it. An EIP-7702 transaction is judged
        whole (every authorization tuple in it, named by its
        :func:`~wallet.transactions.judgement_digest`) before any of its authorizations is
        signed: only an allowed one has them signed by this key, then itself."""
        signed: list[SignedTransaction] = []

        def sign() -> tuple[bytes, Signature, dict[str, Any]]:
            signed.append(sign_with_authorizations(request, self.signer))
            done = signed[0].request
            extra = ({"authorizations": done.to_json()["authorizationList"]}
                     if done.authorizations else {})
            return signing_digest(done), signed[0].signature, extra

        self._guarded(transaction_signing_request(request, self.address,
                                                  judgement_digest(request)), approvals, sign)
        return signed[0]

    def sign_personal_message(self, message: bytes) -> Signature:
        """Sign an EIP-191 personal message if the policy allows it."""
        return self._guarded(SigningRequest.personal_message(sender=self.address,
                                                             message=message))

    def sign_typed_data(self, document: Mapping[str, Any]) -> Signature:
        """Sign an EIP-712 document if the policy allows its domain. A ``TaskResult`` is
        signed at most once per task: the task and the result's digest are audited
        (``task_result``) before it is signed, and a different result for a task the audit
        log already holds is refused (rule ``one_result_per_task``) -- across restarts and
        processes, since the record is the signed audit log, not memory. The same result
        again is signed again (harmless: certificates count each signer once)."""
        request = SigningRequest.typed_data(sender=self.address, document=document)
        task = _task_id(document)
        if task is None:
            return self._guarded(request)
        assert request.digest is not None
        with self.ledger.signing_lock, self.lock.held():
            digest = "0x" + request.digest.hex()
            for earlier in self.audit.payloads_of_kind("task_result"):
                if earlier.get("task_id") == task and earlier.get("digest") != digest:
                    raise PolicyDeniedError(
                        f"task {task}: this key already signed another result (digest "
                        f"{earlier.get('digest')}); a second one would be equivocation",
                        "one_result_per_task")
            self.audit.check_clock(self.clock())
            self.audit.append("task_result", {"task_id": task, "digest": digest},
                              now=self.clock())
            return self._guarded(request)

    def _guarded(self, request: SigningRequest, approvals: frozenset[bytes] = frozenset(),
                 sign: Callable[[], tuple[bytes, Signature, dict[str, Any]]] | None = None,
                 ) -> Signature:
        """Decide, audit, sign, audit, record -- then release (see the module docstring).
        ``sign`` (default: sign ``request.digest``) makes the signatures of an allowed
        request and returns (digest signed, signature, more for the audit entry)."""
        assert request.digest is not None
        with self.ledger.signing_lock, self.lock.held():
            now = self.clock()
            self.audit.check_clock(now)  # a clock set back never re-opens a window
            # The spending window and time-locks come from the authenticated audit log,
            # not from ledger.sqlite's rows alone (wallet.policy.audited).
            history = self.history()
            decision = self.policy.evaluate(request, now=now, ledger=history,
                                            approvals=approvals)
            if history.ledger_mismatches:  # ignored for the decision; told to the ground
                self.audit.append("ledger_mismatch", {"problems": history.ledger_mismatches},
                                  now=now)
            self.audit.append("policy_decision", {"request": request.to_payload(self.policy),
                                                  "decision": decision.to_payload()}, now=now)
            if decision.outcome == "delay":
                self.ledger.queue(decision, request.describe(self.policy))
            if not decision.allowed:
                raise PolicyDeniedError(_explain(decision), decision.rule)
            if sign is None:
                digest, signature, extra = (request.digest,
                                            self.signer.sign_digest(request.digest), {})
            else:
                digest, signature, extra = sign()
            self.audit.append("signed", {"request_id": request.request_id, "digest": digest,
                                         "signature": signature.to_bytes(), **extra}, now=now)
            self.ledger.record_signed(request, now)
        return signature


def _task_id(document: Mapping[str, Any]) -> str | None:
    """The ``taskId`` (lower-case 0x hex) of a ``TaskResult`` document, else None."""
    if not isinstance(document, Mapping) or document.get("primaryType") != "TaskResult":
        return None
    message = document.get("message")
    raw = message.get("taskId") if isinstance(message, Mapping) else None
    if isinstance(raw, bytes | bytearray):
        return "0x" + bytes(raw).hex()
    if isinstance(raw, str):
        return raw.lower() if raw.startswith("0x") else "0x" + raw.lower()
    if isinstance(raw, int) and not isinstance(raw, bool):
        return "0x" + raw.to_bytes(32, "big").hex() if 0 <= raw < 2**256 else None
    return None


def _explain(decision: Decision) -> str:
    if decision.outcome == "delay" and decision.not_before is not None:
        return f"{decision.reason} (time-locked until {format_time(decision.not_before)})"
    if decision.outcome == "needs_approvals":
        return f"{decision.reason} ({decision.approvals_missing} more approval(s) needed)"
    return decision.reason


def transaction_signing_request(request: TransactionRequest, sender: bytes,
                                digest: bytes | None) -> SigningRequest:
    """The policy's view of ``request`` signed by ``sender`` (``digest``: the signing hash,
    once known; ``None`` for a dry-run check)."""
    return SigningRequest.transaction(
        sender=sender, chain_id=request.chain_id, to=request.to, value=request.value,
        data=request.data, gas=request.gas, tx_type=request.tx_type, nonce=request.nonce,
        max_fee_per_gas=request.max_fee_per_gas,
        max_priority_fee_per_gas=request.max_priority_fee_per_gas, gas_price=request.gas_price,
        authorization_list=[PolicyAuthorization(a.chain_id, a.address, a.nonce)
                            for a in request.authorizations],
        digest=digest)

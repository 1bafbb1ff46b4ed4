"""The policy's memory derived from the signed audit log (issue #16 item 2).

``ledger.sqlite`` is a file like any other: a writer who deletes its ``spends`` rows
re-opens the rolling 24 h window, one who forges a matured row in ``pending`` (or deletes
a cancelled one) gets a time-locked request signed early or at all. So the on-board signer
does not believe it. :class:`AuditedHistory` rebuilds what the policy needs from the audit
log, whose entries are authenticated (:meth:`wallet.audit.AuditLog.authenticated_entries`:
every hash recomputed and linked, the last entry's signature and the anchored head
checked), under the wallet lock:

* a spend is a ``signed`` entry whose ``policy_decision`` (same ``request_id``) allowed a
  transaction: value + gas limit x max fee (or gas price), and the amount of an ERC-20 call
  it makes (to any contract, as :meth:`PolicyLedger.record_signed` counts it), dated by the
  ``signed`` entry;
* a time-lock is the first ``delay`` decision of a request (created, not before, cancel
  until), cancelled by a ``timelock_cancelled`` entry, used up by a later ``signed`` entry.

The ledger is still written and still counted: a spend counts as the larger of the two
sums, so the window survives an audit-log rotation (the new log begins empty) and an edited
ledger can only make the limit stricter. Time-locks are the audit log's only: a forged or
deleted ``pending`` row changes nothing, and a time-lock queued before a rotation is queued
again (fail closed). What the ledger says differently -- less spent than the log proves,
a time-lock row missing or with other times -- is collected in
:attr:`AuditedHistory.ledger_mismatches`, which the signer records in the audit log
(``ledger_mismatch``) so the ground sees that someone edited the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from wallet.audit import AuditLog
from wallet.policy.erc20 import TokenCallError, decode_token_call
from wallet.policy.evaluation import PendingRequest, PolicyHistory


@dataclass(frozen=True)
class _Spend:
    sender: bytes
    at: float
    ether: int
    token: bytes | None
    amount: int


def _hex(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _spend(request: dict[str, Any], at: float) -> _Spend | None:
    """What the limits count for the audited request payload (``SigningRequest.to_payload``)
    signed at ``at``; None for a request that is not a transaction."""
    if request.get("kind") != "transaction":
        return None
    sender = _hex(request.get("sender")) or b""
    price = request.get("max_fee_per_gas")
    if price is None:
        price = request.get("gas_price")
    ether = _int(request.get("value")) + _int(request.get("gas")) * _int(price)
    to, data = _hex(request.get("to")), _hex(request.get("data")) or b""
    token, amount = None, 0
    if to is not None:
        try:
            call = decode_token_call(data)
        except TokenCallError:
            call = None
        if call is not None:
            token, amount = to, call.amount
    return _Spend(sender, at, ether, token, amount)


class AuditedHistory:
    """:class:`~wallet.policy.evaluation.PolicyHistory` read from an authenticated audit log
    (module docstring); ``ledger``, when given, is counted too for spends (the larger sum)."""

    def __init__(self, audit: AuditLog, ledger: PolicyHistory | None = None) -> None:
        self._ledger = ledger
        self.ledger_mismatches: list[str] = []
        """Where ledger.sqlite disagrees with the audit log (module docstring)."""
        self._spends: list[_Spend] = []
        self._pending: dict[bytes, PendingRequest] = {}
        requests: dict[bytes, dict[str, Any]] = {}
        for entry in audit.authenticated_entries():
            if entry.kind not in ("policy_decision", "signed", "timelock_cancelled"):
                continue
            payload = json.loads(entry.payload)
            at = entry.time_ms / 1000
            if entry.kind == "policy_decision":
                decision = payload.get("decision") or {}
                request_id = _hex(decision.get("request_id"))
                if request_id is None:
                    continue
                if decision.get("outcome") == "allow":
                    requests[request_id] = payload.get("request") or {}
                elif decision.get("outcome") == "delay" and request_id not in self._pending:
                    self._pending[request_id] = PendingRequest(
                        request_id, float(decision["decided_at"]),
                        float(decision["not_before"]), float(decision["cancel_until"]),
                        str(decision.get("reason", "")))
                continue
            request_id = _hex(payload.get("request_id"))
            if request_id is None:
                continue
            pending = self._pending.get(request_id)
            if entry.kind == "timelock_cancelled":
                if pending is not None and pending.open:
                    self._pending[request_id] = replace(
                        pending, cancelled_at=at, cancel_reason=str(payload.get("reason", "")))
                continue
            request = requests.pop(request_id, None)  # signed
            if request is not None:
                spend = _spend(request, at)
                if spend is not None:
                    self._spends.append(spend)
            if pending is not None and pending.open:
                self._pending[request_id] = replace(pending, signed_at=at)

    def spent_since(self, sender: bytes, since: float, token: bytes | None = None) -> int:
        # A spend's audit time is truncated to the millisecond: count it if it may be after.
        audited = sum((s.ether if token is None else s.amount) for s in self._spends
                      if s.sender == sender and s.at + 0.001 > since
                      and (token is None or s.token == token))
        if self._ledger is None:
            return audited
        recorded = self._ledger.spent_since(sender, since, token=token)
        if recorded < audited:
            what = "ether" if token is None else f"token 0x{token.hex()}"
            self._mismatch(f"ledger.sqlite counts {recorded} {what} spent by 0x{sender.hex()} "
                           f"since {since:.0f}, the audit log proves {audited}: spends rows "
                           "were deleted or edited")
        return max(audited, recorded)

    def pending(self, request_id: bytes) -> PendingRequest | None:
        audited = self._pending.get(request_id)
        if audited is not None and self._ledger is not None:
            row = self._ledger.pending(request_id)
            if row is None or (row.not_before, row.cancelled_at is None) != (
                    audited.not_before, audited.cancelled_at is None):
                self._mismatch(f"ledger.sqlite's time-lock row of 0x{request_id.hex()} is "
                               f"{'missing' if row is None else 'not the audited one'}: "
                               "the pending table was edited")
        return audited

    def _mismatch(self, problem: str) -> None:
        if problem not in self.ledger_mismatches:
            self.ledger_mismatches.append(problem)

    def pending_requests(self, include_closed: bool = False) -> list[PendingRequest]:
        """The audited time-locks, oldest first (open ones only unless ``include_closed``)."""
        return sorted((p for p in self._pending.values() if include_closed or p.open),
                      key=lambda p: p.created)

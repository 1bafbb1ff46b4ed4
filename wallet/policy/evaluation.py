"""The evaluation: :class:`Policy`, its :meth:`Policy.evaluate` running the rules in their
documented order (:mod:`wallet.policy`), and the :class:`Decision` it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

from wallet.errors import MalformedRequestError, PolicyDeniedError
from wallet.policy.erc20 import TokenCall, TokenCallError, decode_token_call
from wallet.policy.request import (
    _GAS_PRICE_TYPES,
    _KNOWN_TX_TYPES,
    SUPPORTED_TX_TYPES,
    SigningRequest,
    _check_bytes,
)
from wallet.policy.rules import (
    CoSign,
    Destination,
    FeeCaps,
    Limits,
    MessageRules,
    TimeLock,
    TokenLimits,
)
from wallet.policy.units import format_address, format_duration, format_time, format_wei

WINDOW_SECONDS = 24 * 3600
"""Length of the rolling value window of ``[limits] per_24h``."""

Outcome = Literal["allow", "deny", "delay", "needs_approvals"]

TRANSACTION_RULES: tuple[str, ...] = (
    "chain_id", "tx_type", "destination", "calldata", "delegation", "fees",
    "per_transaction", "per_24h", "timelock", "cosign",
)
"""The rules of a transaction, in evaluation order."""


@dataclass(frozen=True)
class Decision:
    """The policy's answer to one request."""

    outcome: Outcome
    rule: str  # the rule that decided ("all" when every rule passed)
    reason: str  # one line naming the rule's values
    request_id: bytes
    decided_at: float  # the ``now`` of the evaluation (UNIX seconds)
    policy_sha256: str  # sha256 of the policy file that decided (Policy.sha256)
    not_before: float | None = None  # delay: earliest time the request may be signed
    cancel_until: float | None = None  # delay: cancellable while now < cancel_until
    approvals_required: int = 0  # co-signature rule applies: m of the m-of-n
    approvals: frozenset[bytes] = frozenset()  # operator approvals that counted

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def approvals_missing(self) -> int:
        return max(0, self.approvals_required - len(self.approvals))

    def require_allowed(self) -> None:
        """Raise :class:`PolicyDeniedError` unless the outcome is ``allow``."""
        if self.outcome != "allow":
            label = "" if self.outcome == "deny" else f"{self.outcome}: "
            raise PolicyDeniedError(label + self.reason, self.rule)

    def to_payload(self) -> dict[str, Any]:
        """JSON-compatible form for the audit log."""
        return {
            "outcome": self.outcome, "rule": self.rule, "reason": self.reason,
            "request_id": "0x" + self.request_id.hex(), "decided_at": self.decided_at,
            "policy_sha256": self.policy_sha256, "not_before": self.not_before,
            "cancel_until": self.cancel_until, "approvals_required": self.approvals_required,
            "approvals": sorted("0x" + a.hex() for a in self.approvals),
        }


@dataclass(frozen=True)
class PendingRequest:
    """A time-locked request (see :class:`TimeLock`), as :class:`PolicyLedger` keeps it."""

    request_id: bytes
    created: float  # when the request was first asked for
    not_before: float  # created + delay: the earliest it may be signed
    cancel_until: float  # created + cancel_window: cancellable while now < cancel_until
    summary: str = ""  # the request, in words
    cancelled_at: float | None = None
    cancel_reason: str = ""
    signed_at: float | None = None  # set by record_signed: a pending entry is used once

    @property
    def open(self) -> bool:
        """Neither cancelled nor signed."""
        return self.cancelled_at is None and self.signed_at is None


@runtime_checkable
class PolicyHistory(Protocol):
    """What :meth:`Policy.evaluate` needs to know about the past."""

    def spent_since(self, sender: bytes, since: float, token: bytes | None = None) -> int:
        """Sum of what ``sender`` signed at a time after ``since``: the values in wei, or
        with ``token``, the base units of the ERC-20 calls (:data:`TOKEN_FUNCTIONS`) to
        that token contract."""
        ...

    def pending(self, request_id: bytes) -> PendingRequest | None:
        """The time-lock entry of ``request_id``, if it was queued."""
        ...


# --------------------------------------------------------------------------- the policy

@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy. Build it with :func:`load_policy` (pinned) or
    :func:`parse_policy`."""

    chain_id: int  # EIP-155 chain id every transaction must carry
    limits: Limits
    fees: FeeCaps
    destinations: Mapping[bytes, Destination] = field(
        default_factory=lambda: MappingProxyType({}))
    allow_create: bool = False
    delegates: frozenset[bytes] = frozenset()  # EIP-7702 delegation targets
    timelock: TimeLock | None = None
    cosign: CoSign | None = None
    messages: MessageRules = MessageRules()  # noqa: RUF009 (frozen: safe to share)
    sha256: str = ""  # hex sha256 of the bytes this policy was parsed from
    source: str = ""  # where it was read from

    def evaluate(self, request: SigningRequest, *, now: float, ledger: PolicyHistory,
                 approvals: Iterable[bytes] = frozenset()) -> Decision:
        """Judge ``request`` at time ``now`` (UNIX seconds).

        ``ledger`` gives the signed values of the last 24 h and the time-lock entries;
        ``approvals`` are operator addresses whose approvals of ``request.request_id``
        the caller has verified (duplicates count once, addresses that are not
        configured operators do not count). Rules run in the module's documented order;
        the first that does not pass decides. Nothing is written.
        """
        if not isinstance(request, SigningRequest):
            raise MalformedRequestError(f"not a signing request: {request!r}")
        approved = frozenset(approvals)
        for address in approved:
            _check_bytes("approval", address, 20)
        return _Evaluation(self, request, float(now), ledger, approved).run()

    def token_call(self, request: SigningRequest) -> tuple[TokenLimits, TokenCall] | None:
        """The ERC-20 call ``request`` makes to a destination with a ``token`` section,
        decoded, with that section; ``None`` when it makes none. Raises
        :class:`TokenCallError` for calldata there that has a token function's selector
        but not its exact ABI encoding."""
        if request.kind != "transaction" or request.to is None:
            return None
        dest = self.destinations.get(request.to)
        if dest is None or dest.token is None:
            return None
        call = decode_token_call(request.data)
        return None if call is None else (dest.token, call)


@dataclass(frozen=True)
class _Amount:
    """One amount a transaction moves, with what limits it: the ether ``value`` (``[limits]``,
    ``[timelock]`` and ``[cosign]`` thresholds) or the tokens of an ERC-20 call (the
    destination's ``token`` section). The rules ``per_transaction``, ``per_24h``,
    ``timelock`` and ``cosign`` judge every amount the same way.

    The ether amount also carries the transaction's fee (gas limit x ``max_fee_per_gas``,
    or x ``gas_price``): ether that leaves the account as surely as the value. It counts
    toward the limits (``per_transaction``, ``per_24h``: :attr:`counted`), not toward the
    thresholds of the gates, which judge what is sent to someone."""

    label: str  # names the amount in reasons: "value", "transfer of"
    amount: int  # wei or token base units
    show: Callable[[int], str]  # writes an amount of this kind
    per_transaction: int
    per_24h: int
    timelock_threshold: int | None
    cosign_threshold: int | None
    token: bytes | None = None  # the token contract (per_24h is per sender and token)
    fee: int = 0  # wei, the most the transaction can pay in fees (ether amount only)
    fee_note: str = ""  # how the fee was computed: "gas 21000 x 50 gwei"

    @property
    def counted(self) -> int:
        """What counts toward the limits: the amount and the fee."""
        return self.amount + self.fee

    def describe(self) -> str:
        """"value 1 ether", or with a fee "value 1 ether + fee 0.00105 ether (gas 21000 x
        50 gwei)"."""
        text = f"{self.label} {self.show(self.amount)}"
        if self.fee:
            text += f" + fee {self.show(self.fee)} ({self.fee_note})"
        return text


class _Evaluation:
    """One run of the rules over one request."""

    def __init__(self, policy: Policy, request: SigningRequest, now: float,
                 ledger: PolicyHistory, approvals: frozenset[bytes]) -> None:
        self.policy = policy
        self.request = request
        self.now = now
        self.ledger = ledger
        self.approvals = approvals

    def decide(self, outcome: Outcome, rule: str, reason: str, **extra: Any) -> Decision:
        return Decision(outcome, rule, reason, self.request.request_id, self.now,
                        self.policy.sha256, **extra)

    def deny(self, rule: str, reason: str) -> Decision:
        return self.decide("deny", rule, reason)

    @cached_property
    def amounts(self) -> tuple[_Amount, ...]:
        """The ether value, then the token amount of an ERC-20 call to a token destination
        (read after the calldata rule, which denies calldata that does not decode)."""
        policy, request = self.policy, self.request
        lock, cosign = policy.timelock, policy.cosign
        amounts = [_Amount("value", request.value, format_wei, policy.limits.per_transaction,
                           policy.limits.per_24h, lock.threshold if lock else None,
                           cosign.threshold if cosign else None, fee=request.max_fee,
                           fee_note=f"gas {request.gas} x {format_wei(request.max_price)}")]
        found = policy.token_call(request)
        if found is not None:
            token, call = found
            amounts.append(_Amount(call.function.label, call.amount, token.format,
                                   token.per_transaction, token.per_24h,
                                   token.timelock_threshold, token.cosign_threshold,
                                   token=request.to))
        return tuple(amounts)

    def reaching(self, gate: Literal["timelock", "cosign"]) -> str | None:
        """"<amount> >= <gate> threshold <threshold>" for the first amount at or over its
        threshold of ``gate``; ``None`` when no amount reaches it."""
        name = {"timelock": "time-lock", "cosign": "co-signature"}[gate]
        for amount in self.amounts:
            threshold = (amount.timelock_threshold if gate == "timelock"
                         else amount.cosign_threshold)
            if threshold is not None and amount.amount >= threshold:
                return (f"{amount.label} {amount.show(amount.amount)} >= {name} threshold "
                        f"{amount.show(threshold)}")
        return None

    def run(self) -> Decision:
        kind = self.request.kind
        if kind == "personal_message":
            if not self.policy.messages.allow_personal:
                return self.deny("personal_message", "personal messages (EIP-191) are not "
                                 "allowed ([messages] allow_personal = false)")
            return self.decide("allow", "personal_message", "personal message allowed "
                               "([messages] allow_personal = true)")
        if kind == "typed_data":
            return self.typed_data()
        if kind == "authorization":
            return (self.chain_id() or self.delegation()
                    or self.decide("allow", "all", f"{self.request.describe()}: allowed"))
        return self.transaction()

    def typed_data(self) -> Decision:
        request = self.request
        assert request.domain is not None
        for rule in self.policy.messages.typed_data:
            if rule.matches(request.domain, request.primary_type):
                return self.decide("allow", "typed_data",
                                   f"{request.describe()} matches an allowed EIP-712 domain")
        return self.deny("typed_data", f"{request.describe()} matches no "
                         "[[messages.typed_data]] entry")

    def transaction(self) -> Decision:
        denial = (self.chain_id() or self.tx_type() or self.destination() or self.calldata()
                  or self.delegation() or self.fees() or self.per_transaction()
                  or self.per_24h())
        if denial is not None:
            return denial
        approvals_required, counted, approvals_note = self.cosign_status()
        gate_notes: list[str] = []
        timelock = self.timelock(approvals_required, counted, gate_notes)
        if timelock is not None:
            return timelock
        if approvals_note is not None:
            if len(counted) < approvals_required:
                return self.decide("needs_approvals", "cosign", approvals_note,
                                   approvals_required=approvals_required, approvals=counted)
            gate_notes.append(approvals_note)
        reason = f"{self.request.describe(self.policy)}: allowed by every rule"
        if gate_notes:
            reason += " (" + "; ".join(gate_notes) + ")"
        return self.decide("allow", "all", reason, approvals_required=approvals_required,
                           approvals=counted)

    # -- deny rules, in order; each returns None when it passes

    def chain_id(self) -> Decision | None:
        request = self.request
        pinned = self.policy.chain_id
        if request.kind == "authorization":
            chain = request.authorization_list[0].chain_id
            if chain == 0:
                return self.deny("chain_id", "authorization for chain id 0 is valid on every "
                                 f"chain (EIP-7702); only chain id {pinned} is allowed")
            if chain != pinned:
                return self.deny("chain_id", f"authorization chain id {chain} is not the "
                                 f"pinned chain id {pinned}")
            return None
        if request.chain_id is None:
            return self.deny("chain_id", "legacy transaction without a chain id (pre-EIP-155) "
                             f"is valid on every chain; only chain id {pinned} is allowed")
        if request.chain_id != pinned:
            return self.deny("chain_id", f"chain id {request.chain_id} is not the pinned "
                             f"chain id {pinned}")
        return None

    def tx_type(self) -> Decision | None:
        tx_type = self.request.tx_type
        if tx_type in SUPPORTED_TX_TYPES:
            return None
        name = _KNOWN_TX_TYPES.get(tx_type)
        what = f"type {tx_type} ({name})" if name else f"of unknown type {tx_type}"
        return self.deny("tx_type", f"transaction {what} is not signed by this wallet "
                         "(allowed: 0, 1, 2, 4)")

    def destination(self) -> Decision | None:
        to = self.request.to
        if to is None:
            if self.policy.allow_create:
                return None
            return self.deny("destination", "contract creation is not allowed "
                             "([destinations] allow_create = false)")
        if to not in self.policy.destinations:
            return self.deny("destination", f"destination {format_address(to)} is not in "
                             "the allowlist")
        return None

    def calldata(self) -> Decision | None:
        request = self.request
        if request.to is None:
            return None  # initcode, judged by allow_create
        dest = self.policy.destinations[request.to]
        data = request.data
        if not data:
            if dest.plain_transfers:
                return None
            return self.deny("calldata", f"plain transfer (empty calldata) to "
                             f"{dest.describe()} is not allowed (plain_transfers = false)")
        if not dest.selectors:
            return self.deny("calldata", f"{dest.describe()} accepts no calldata "
                             f"({len(data)} bytes given)")
        if len(data) < 4:
            return self.deny("calldata", f"calldata of {len(data)} bytes to "
                             f"{dest.describe()} holds no 4-byte function selector")
        if data[:4] not in dest.selectors:
            allowed = ", ".join(dest.selectors.values())
            return self.deny("calldata", f"selector 0x{data[:4].hex()} is not allowed for "
                             f"{dest.describe()} (allowed: {allowed})")
        try:
            self.policy.token_call(request)
        except TokenCallError as exc:
            return self.deny("calldata", f"malformed ERC-20 call to {dest.describe()}: {exc}")
        return None

    def delegation(self) -> Decision | None:
        pinned = self.policy.chain_id
        for auth in self.request.authorization_list:
            if auth.address not in self.policy.delegates:
                return self.deny("delegation", f"EIP-7702 delegation to "
                                 f"{format_address(auth.address)} is not in "
                                 "[delegation] allow_delegates")
            if auth.chain_id != pinned:
                what = ("chain id 0 (valid on every chain)" if auth.chain_id == 0
                        else f"chain id {auth.chain_id}")
                return self.deny("delegation", f"EIP-7702 authorization for {what}; only "
                                 f"chain id {pinned} is allowed")
        return None

    def fees(self) -> Decision | None:
        request, caps = self.request, self.policy.fees

        def over(name: str, value: int, cap: int | None, unit: str = "wei") -> Decision | None:
            if cap is None or value <= cap:
                return None
            shown = (f"{value}", f"{cap}") if unit == "gas" else (format_wei(value),
                                                                  format_wei(cap))
            return self.deny("fees", f"{name} {shown[0]} exceeds the cap {shown[1]}")

        denial = over("gas limit", request.gas, caps.max_gas, unit="gas")
        if denial is not None:
            return denial
        if request.tx_type in _GAS_PRICE_TYPES:
            assert request.gas_price is not None
            price = request.gas_price
            denial = over("gas_price", price, caps.max_gas_price)
        else:
            assert request.max_fee_per_gas is not None
            assert request.max_priority_fee_per_gas is not None
            price = request.max_fee_per_gas
            if request.max_priority_fee_per_gas > price:
                return self.deny("fees", "max_priority_fee_per_gas "
                                 f"{format_wei(request.max_priority_fee_per_gas)} exceeds "
                                 f"max_fee_per_gas {format_wei(price)} (invalid, EIP-1559)")
            denial = (over("max_fee_per_gas", price, caps.max_fee_per_gas)
                      or over("max_priority_fee_per_gas", request.max_priority_fee_per_gas,
                              caps.max_priority_fee_per_gas))
        if denial is not None:
            return denial
        return over(f"total fee (gas {request.gas} x {format_wei(price)})", request.gas * price,
                    caps.max_total_fee)

    def per_transaction(self) -> Decision | None:
        for each in self.amounts:
            if each.counted > each.per_transaction:
                total = f" = {each.show(each.counted)}" if each.fee else ""
                return self.deny("per_transaction", f"{each.describe()}{total} "
                                 f"exceeds the per-transaction limit "
                                 f"{each.show(each.per_transaction)}")
        return None

    def per_24h(self) -> Decision | None:
        for each in self.amounts:
            if each.counted == 0:
                continue
            since = self.now - WINDOW_SECONDS
            # ether asks without ``token``: a history that predates token amounts still works
            spent = (self.ledger.spent_since(self.request.sender, since) if each.token is None
                     else self.ledger.spent_since(self.request.sender, since, token=each.token))
            total = spent + each.counted
            if total > each.per_24h:
                return self.deny("per_24h", f"{each.describe()} + "
                                 f"{each.show(spent)} signed in the last 24 h = "
                                 f"{each.show(total)} exceeds the 24 h limit "
                                 f"{each.show(each.per_24h)}")
        return None

    # -- gates

    def cosign_status(self) -> tuple[int, frozenset[bytes], str | None]:
        """(approvals required, approvals that count, reason) — (0, {}, None) when the
        co-signature rule does not apply."""
        cosign, head = self.policy.cosign, self.reaching("cosign")
        if cosign is None or head is None:
            return 0, frozenset(), None
        counted = self.approvals & cosign.operators
        note = (f"{head}: approvals from {len(counted)} of "
                f"{len(cosign.operators)} operators, {cosign.required} required")
        ignored = len(self.approvals - cosign.operators)
        if ignored:
            note += f", {ignored} approval(s) from non-operators ignored"
        return cosign.required, counted, note

    def timelock(self, approvals_required: int, counted: frozenset[bytes],
                 notes: list[str]) -> Decision | None:
        lock, head, request = self.policy.timelock, self.reaching("timelock"), self.request
        if lock is None or head is None:
            return None
        pending = self.ledger.pending(request.request_id)
        extra = {"approvals_required": approvals_required, "approvals": counted}
        if pending is None:
            not_before = self.now + lock.delay
            cancel_until = self.now + lock.cancel_window
            return self.decide(
                "delay", "timelock", f"{head}: time-locked, signable from "
                f"{format_time(not_before)}"
                f" (delay {format_duration(lock.delay)}), cancellable until "
                f"{format_time(cancel_until)}", not_before=not_before,
                cancel_until=cancel_until, **extra)
        if pending.cancelled_at is not None:
            why = f" ({pending.cancel_reason})" if pending.cancel_reason else ""
            return self.deny("timelock", f"{head}: the request was cancelled at "
                             f"{format_time(pending.cancelled_at)}{why}")
        if pending.signed_at is not None:
            return self.deny("timelock", f"{head}: the time-locked request was already "
                             f"signed at {format_time(pending.signed_at)}; queue a new one")
        if self.now < pending.not_before:
            return self.decide(
                "delay", "timelock", f"{head}: queued at {format_time(pending.created)}, "
                f"signable from {format_time(pending.not_before)}",
                not_before=pending.not_before, cancel_until=pending.cancel_until, **extra)
        notes.append(f"time-lock elapsed at {format_time(pending.not_before)}")
        return None

"""The policy engine: the rules the on-board signer enforces before a key is used.

A policy is a TOML file (``configs/policy.example.toml`` exercises every rule). The
wallet config pins the sha256 of the file's bytes; :func:`load_policy` refuses a file
that changed (:class:`PolicyPinError`) until an operator reviews it and re-pins it with
``orbital wallet policy pin``, so whoever can write the file cannot loosen the policy.
The bytes are read once: the hash that is checked is the hash of what is parsed.

Every request to sign is a :class:`SigningRequest`, and :meth:`Policy.evaluate` returns
a :class:`Decision`: ``allow``, ``deny``, ``delay`` or ``needs_approvals``, with the rule
that decided and a one-line reason naming the values ("value 2 ether exceeds the
per-transaction limit 1 ether").

Order of the rules
------------------
Rules are checked in the fixed order below and the first that does not pass decides.
Every rule that can deny comes before the two gates, so **deny beats delay beats
needs_approvals**: a request that would be refused anyway never starts a time-lock, and
the time-lock runs while operator approvals are being gathered (a satellite sees the
ground a few minutes per orbit; waiting for one before starting the other would
double the wait). A ``delay`` decision still says how many approvals are missing.

Transactions (``kind = "transaction"``):

==  ===================  =====================================================================
 1  ``chain_id``         the transaction's chain id equals the pinned ``chain_id``; a
                         legacy transaction without one (pre-EIP-155) is valid on every
                         chain and is denied
 2  ``tx_type``          EIP-2718 type 0 (legacy), 1 (EIP-2930), 2 (EIP-1559) or 4
                         (EIP-7702); type 3 (EIP-4844 blobs) and unknown types are denied
 3  ``destination``      ``to`` is in ``[[destinations.allow]]``; contract creation
                         (``to`` empty) only with ``allow_create = true``
 4  ``calldata``         the first 4 bytes of calldata (the function selector, Solidity ABI
                         spec) are in the destination's ``selectors``; empty calldata only
                         where ``plain_transfers`` is true; at a destination with a
                         ``token`` section, an ERC-20 call (see below) must be exactly
                         its ABI encoding
 5  ``delegation``       every EIP-7702 authorization delegates to an address in
                         ``[delegation] allow_delegates``, for the pinned chain id (an
                         authorization for chain id 0 is valid on every chain: denied)
 6  ``fees``             gas limit, EIP-1559 ``max_fee_per_gas`` and
                         ``max_priority_fee_per_gas`` (and priority <= max fee), legacy
                         ``gas_price``, and ``gas * (max_fee_per_gas or gas_price)`` under
                         their caps
 7  ``per_transaction``  value + fee <= ``[limits] per_transaction``, the fee being the
                         most the transaction can pay, ``gas * (max_fee_per_gas or
                         gas_price)``; a token amount <= the token's ``per_transaction``
 8  ``per_24h``          value + fee + the values and fees this sender signed in the last
                         24 h (the window ``(now - 86400, now]``, read from the
                         :class:`PolicyHistory`) <= ``[limits] per_24h``; a token amount +
                         this sender's amounts of that token in the window <= the token's
                         ``per_24h``; checked for a non-zero amount only
 9  ``timelock``         value >= ``[timelock] threshold`` or a token amount >= the
                         token's ``timelock_threshold``: ``delay`` until ``not_before``,
                         cancellable until ``cancel_until`` (see :class:`PendingRequest`)
10  ``cosign``           value >= ``[cosign] threshold`` or a token amount >= the token's
                         ``cosign_threshold``: ``needs_approvals`` until ``required``
                         distinct configured operators have approved
==  ===================  =====================================================================

EIP-7702 authorizations signed on their own (``kind = "authorization"``, the tuple
``keccak256(0x05 || rlp([chain_id, address, nonce]))`` that delegates *this* key's
account): ``chain_id`` then ``delegation``. Messages: ``personal_message`` (EIP-191
version 0x45) is allowed only with ``[messages] allow_personal = true``; ``typed_data``
(EIP-712) only when its domain matches a ``[[messages.typed_data]]`` entry.

Fees are ether spent
--------------------
A transaction's fee leaves the account as surely as its value: the ether limits
(``per_transaction``, ``per_24h``) count value + gas limit x ``max_fee_per_gas`` (or
``gas_price`` for types 0 and 1), the most the transaction can pay, and
:class:`PolicyLedger` records that sum. A zero-value transaction is no way around the
24 h limit. The gates (``timelock``, ``cosign``) compare the value alone with their
thresholds.

Amounts and durations
---------------------
An amount is a TOML integer (wei) or a string ``"<decimal> <unit>"`` with exactly one
space and a unit among ``wei``, ``gwei`` (10^9 wei), ``ether`` (10^18 wei):
``"1.5 ether"``, ``"20 gwei"``, ``"21000 wei"``. No sign, exponent, underscore or
leading zero; the value must be a whole number of wei below 2^256. TOML floats are
refused (``1.5`` is not exact). :func:`format_wei` writes amounts back in that grammar.

A token amount (a destination's ``token`` section) has the same grammar with the token's
``symbol`` as its only unit, one symbol being 10^``decimals`` base units: ``"1000 USDC"``,
``"0.25 USDC"``, or a TOML integer of base units.

A duration is a TOML integer (seconds) or ``"<integer><unit>"`` with a unit among
``s``, ``m``, ``h``, ``d``: ``"90s"``, ``"30m"``, ``"6h"``, ``"2d"``.

ERC-20 tokens
-------------
A transfer of an ERC-20 token (EIP-20) is a call with value 0: the ether rules never see
its amount. A destination with a ``token`` section is a token contract whose amounts
count: the calls in :data:`TOKEN_FUNCTIONS` (``transfer``, ``transferFrom``, ``approve``
and ``increaseAllowance``, when listed in ``selectors``) are decoded strictly from the
calldata (Solidity ABI spec: 4 + 32 x n bytes, address words with 12 zero bytes of
padding) and their amount is judged by rules 7 to 10 beside, and independently of, the
ether value. An allowance is money the spender can move, so ``approve`` counts its
amount like a transfer, and the unlimited allowance 2^256-1 is denied by any limit it
exceeds. The 24 h window is per sender and token (:class:`PolicyLedger` records the
amount of every such call it signs). Another selector listed at a token destination
passes uncounted: list only functions that move no tokens, or none. At a token
destination without a ``token`` section, token amounts are limited by ``selectors`` alone.

Wiring (the on-board signer)
----------------------------
The engine is pure: :meth:`Policy.evaluate` reads the :class:`PolicyHistory` and writes
nothing. The caller, per request: evaluates; appends the decision to the audit log (with
the request's :meth:`SigningRequest.to_payload` for this policy); on
``delay`` calls :meth:`PolicyLedger.queue`; on ``allow`` signs, appends the signature to
the audit log and calls :meth:`PolicyLedger.record_signed`, and only then releases the
signature. Operator approvals arrive as a set of addresses whose signatures over
:attr:`SigningRequest.request_id` the caller has already verified.

Layout
------
One job per module; every public name is importable from :mod:`wallet.policy`:
:mod:`~wallet.policy.units` (amounts, durations, addresses, selectors),
:mod:`~wallet.policy.erc20` (ERC-20 calldata), :mod:`~wallet.policy.request`
(:class:`SigningRequest`), :mod:`~wallet.policy.rules` (the parsed rules),
:mod:`~wallet.policy.evaluation` (:class:`Policy`, :class:`Decision`),
:mod:`~wallet.policy.loading` (TOML, pinning), :mod:`~wallet.policy.ledger`
(:class:`PolicyLedger`).
"""

from wallet.policy.erc20 import (
    MAX_TOKEN_DECIMALS,
    TOKEN_FUNCTIONS,
    TokenCall,
    TokenCallError,
    TokenFunction,
    decode_abi_words,
    decode_token_call,
    format_token_amount,
    parse_token_amount,
)
from wallet.policy.evaluation import (
    TRANSACTION_RULES,
    WINDOW_SECONDS,
    Decision,
    Outcome,
    PendingRequest,
    Policy,
    PolicyHistory,
)
from wallet.policy.ledger import PolicyLedger
from wallet.policy.loading import (
    POLICY_VERSION,
    PolicyPinError,
    load_policy,
    parse_policy,
    pin_policy,
    policy_sha256,
)
from wallet.policy.request import (
    SUPPORTED_TX_TYPES,
    Authorization,
    RequestKind,
    SigningRequest,
)
from wallet.policy.rules import (
    CoSign,
    Destination,
    FeeCaps,
    Limits,
    MessageRules,
    TimeLock,
    TokenLimits,
    TypedDataDomain,
    TypedDataRule,
)
from wallet.policy.units import (
    MAX_UINT256,
    format_address,
    format_duration,
    format_time,
    format_wei,
    parse_address,
    parse_amount,
    parse_duration,
    parse_selector,
)

__all__ = [
    "MAX_TOKEN_DECIMALS", "MAX_UINT256", "POLICY_VERSION", "SUPPORTED_TX_TYPES",
    "TOKEN_FUNCTIONS", "TRANSACTION_RULES", "WINDOW_SECONDS", "Authorization", "CoSign",
    "Decision", "Destination", "FeeCaps", "Limits", "MessageRules", "Outcome",
    "PendingRequest", "Policy", "PolicyHistory", "PolicyLedger", "PolicyPinError",
    "RequestKind", "SigningRequest", "TimeLock", "TokenCall", "TokenCallError",
    "TokenFunction", "TokenLimits", "TypedDataDomain", "TypedDataRule", "decode_abi_words",
    "decode_token_call", "format_address", "format_duration", "format_time",
    "format_token_amount", "format_wei", "load_policy", "parse_address", "parse_amount",
    "parse_duration", "parse_policy", "parse_selector", "parse_token_amount", "pin_policy",
    "policy_sha256",
]

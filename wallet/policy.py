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
 7  ``per_transaction``  value <= ``[limits] per_transaction``; a token amount <= the
                         token's ``per_transaction``
 8  ``per_24h``          value + the values this sender signed in the last 24 h (the
                         window ``(now - 86400, now]``, read from the :class:`PolicyHistory`)
                         <= ``[limits] per_24h``; a token amount + this sender's amounts of
                         that token in the window <= the token's ``per_24h``; checked for a
                         non-zero amount only
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
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from os import PathLike
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NoReturn, Protocol, runtime_checkable

from eth_utils import is_checksum_address

from wallet.errors import MalformedRequestError, PolicyDeniedError, WalletError
from wallet.hashing import checksum_address, keccak256
from wallet.messages import personal_message_digest, typed_data_digest
from wallet.sqlite import open_durable, write_transaction

POLICY_VERSION = 1
"""The ``version`` a policy file must declare."""

WINDOW_SECONDS = 24 * 3600
"""Length of the rolling value window of ``[limits] per_24h``."""

MAX_UINT256 = 2**256 - 1

Outcome = Literal["allow", "deny", "delay", "needs_approvals"]
RequestKind = Literal["transaction", "personal_message", "typed_data", "authorization"]

TRANSACTION_RULES: tuple[str, ...] = (
    "chain_id", "tx_type", "destination", "calldata", "delegation", "fees",
    "per_transaction", "per_24h", "timelock", "cosign",
)
"""The rules of a transaction, in evaluation order."""

SUPPORTED_TX_TYPES: Mapping[int, str] = MappingProxyType({
    0: "legacy (EIP-155)", 1: "EIP-2930", 2: "EIP-1559", 4: "EIP-7702"})
"""EIP-2718 transaction types the policy can judge."""

_KNOWN_TX_TYPES = {**SUPPORTED_TX_TYPES, 3: "EIP-4844 blob"}
_GAS_PRICE_TYPES = frozenset({0, 1})  # priced by gas_price; 2, 3, 4 by the EIP-1559 fields


class PolicyPinError(WalletError):
    """The policy file's sha256 is not the pinned one: it changed since it was reviewed."""

    exit_code = 3


# --------------------------------------------------------------------------- formatting

_UNIT_DECIMALS = {"wei": 0, "gwei": 9, "ether": 18}
_DECIMAL_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))? ([A-Za-z][A-Za-z0-9]*)")
_DURATION = re.compile(r"(0|[1-9][0-9]*)([smhd])")
_DURATION_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SELECTOR_HEX = re.compile(r"0x[0-9a-fA-F]{8}")
_SIGNATURE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\([A-Za-z0-9_$,\[\]()]*\)")


def _format_units(amount: int, decimals: int, unit: str) -> str:
    """``amount`` base units written as ``"<decimal> <unit>"`` where one ``unit`` is
    10^``decimals`` base units, without trailing zeros ("1.5 ether", "1000 USDC")."""
    whole, fraction = divmod(amount, 10**decimals)
    if not fraction:
        return f"{whole} {unit}"
    return f"{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')} {unit}"


def _parse_units(value: object, units: Mapping[str, int], base: str, examples: str) -> int:
    """Base units from a TOML integer (base units) or a ``"<decimal> <unit>"`` string whose
    unit is a key of ``units`` (its number of decimals): the one grammar of every amount
    in a policy file (module docstring). ``base`` names the base unit and ``examples``
    shows valid amounts, in messages."""
    names = list(units)
    if isinstance(value, bool):
        raise MalformedRequestError(f"{value!r} is not an amount")
    if isinstance(value, float):
        raise MalformedRequestError(
            f"{value!r} is a float, which is not exact: write a string with a unit "
            f'("{value} {names[-1]}") or an integer number of {base}')
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        match = _DECIMAL_AMOUNT.fullmatch(value)
        if match is None or match.group(3) not in units:
            listed = (", ".join(names[:-1]) + " or " + names[-1]) if len(names) > 1 \
                else names[0]
            raise MalformedRequestError(
                f"amount {value!r} is not '<decimal> <unit>' with unit {listed} "
                f"(e.g. {examples})")
        whole, fraction, unit = match.groups()
        decimals = units[unit]
        fraction = (fraction or "").rstrip("0")
        if len(fraction) > decimals:
            raise MalformedRequestError(f"amount {value!r} is not a whole number of {base}")
        amount = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    else:
        raise MalformedRequestError(f"{value!r} is not an amount")
    if not 0 <= amount <= MAX_UINT256:
        raise MalformedRequestError(f"amount {value!r} is outside 0..2^256-1 {base}")
    return amount


def format_wei(wei: int) -> str:
    """``wei`` exactly, in the largest unit that keeps it readable: ``ether`` from
    0.001 ether, ``gwei`` from 0.001 gwei, else ``wei`` ("1.5 ether", "20 gwei",
    "21000 wei"). The result parses back with :func:`parse_amount`."""
    if isinstance(wei, bool) or not isinstance(wei, int) or wei < 0:
        raise ValueError(f"not an amount of wei: {wei!r}")
    unit = "ether" if wei >= 10**15 else "gwei" if wei >= 10**6 else "wei"
    return _format_units(wei, _UNIT_DECIMALS[unit], unit)


def parse_amount(value: object) -> int:
    """An amount in wei from a TOML integer or a ``"<decimal> <unit>"`` string (grammar in
    the module docstring); raises :class:`MalformedRequestError` saying what is wrong."""
    return _parse_units(value, _UNIT_DECIMALS, "wei", '"1.5 ether", "20 gwei"')


def parse_duration(value: object) -> int:
    """Seconds from a TOML integer or a ``"<integer><s|m|h|d>"`` string."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedRequestError(f"{value!r} is not a duration")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.fullmatch(value)
        if match is None:
            raise MalformedRequestError(
                f"duration {value!r} is not '<integer><unit>' with unit s, m, h or d "
                "(e.g. \"30m\", \"6h\")")
        seconds = int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
    if seconds < 0:
        raise MalformedRequestError(f"duration {value!r} is negative")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest unit that divides it ("6h", "90s")."""
    if seconds == int(seconds):
        whole = int(seconds)
        for unit, size in _DURATION_SECONDS.items():
            if whole and whole % size == 0:
                return f"{whole // size}{unit}"
    return f"{seconds:g}s"


def format_time(timestamp: float) -> str:
    """A UNIX timestamp as ISO 8601 UTC, to the second."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def parse_address(value: object) -> bytes:
    """20 bytes from ``0x`` + 40 hex digits; a mixed-case address must pass its EIP-55
    checksum (a wrong one is usually a typo)."""
    if not isinstance(value, str) or _ADDRESS.fullmatch(value) is None:
        raise MalformedRequestError(f"{value!r} is not an address (0x and 40 hex digits)")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise MalformedRequestError(
            f"address {value} fails its EIP-55 checksum: check it for a typo "
            f"(or write it in one case)")
    return bytes.fromhex(digits)


def format_address(address: bytes) -> str:
    """EIP-55 checksummed form of a 20-byte address."""
    return checksum_address(address)


def parse_selector(value: object) -> tuple[bytes, str]:
    """A function selector and how to show it, from ``"0x"`` + 8 hex digits or a canonical
    signature such as ``"transfer(address,uint256)"``, whose selector is the first 4
    bytes of its keccak256 (Solidity ABI spec, "Function Selector")."""
    if isinstance(value, str) and _SELECTOR_HEX.fullmatch(value):
        return bytes.fromhex(value[2:]), value.lower()
    if isinstance(value, str) and _SIGNATURE.fullmatch(value):
        return keccak256(value.encode())[:4], value
    raise MalformedRequestError(
        f"{value!r} is neither a selector (0x and 8 hex digits) nor a function signature "
        "without spaces (e.g. \"transfer(address,uint256)\")")


def policy_sha256(data: bytes) -> str:
    """Lower-case hex sha256 of a policy file's bytes: what the wallet config pins."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- ERC-20

MAX_TOKEN_DECIMALS = 255
"""EIP-20's optional ``decimals()`` returns a ``uint8``."""

_TOKEN_SYMBOL = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}")


class TokenCallError(MalformedRequestError):
    """Calldata carrying an ERC-20 selector is not a well-formed ABI encoding of the call."""


def parse_token_amount(value: object, symbol: str, decimals: int) -> int:
    """Base units of a token from a TOML integer (base units) or ``"<decimal> <symbol>"``,
    one ``symbol`` being 10^``decimals`` base units: the grammar of ether amounts with the
    token's symbol as the only unit ("1000 USDC", "0.25 USDC")."""
    return _parse_units(value, {symbol: decimals},
                        f"{symbol} base units ({decimals} decimals)",
                        f'"1000 {symbol}", "0.25 {symbol}"')


def format_token_amount(amount: int, symbol: str, decimals: int) -> str:
    """``amount`` base units as ``"<decimal> <symbol>"`` (parses back with
    :func:`parse_token_amount`); 2^256-1, the conventional unlimited allowance, is
    written ``"unlimited <symbol> (2^256-1 base units)"``."""
    if amount == MAX_UINT256:
        return f"unlimited {symbol} (2^256-1 base units)"
    return _format_units(amount, decimals, symbol)


def decode_abi_words(args: bytes, types: tuple[Literal["address", "uint256"], ...],
                     what: str) -> tuple[bytes | int, ...]:
    """Static arguments of ``types`` from their ABI encoding (Solidity ABI spec, "Formal
    Specification of the Encoding"): exactly one 32-byte word each, nothing more or less;
    a ``uint256`` is big-endian; an ``address`` (a ``uint160``) is left-padded with 12 zero
    bytes. ``what`` names the call in the :class:`TokenCallError` raised otherwise."""
    if len(args) != 32 * len(types):
        raise TokenCallError(
            f"{what}: {len(args)} bytes of arguments, not {32 * len(types)} "
            f"({len(types)} words of 32, Solidity ABI)")
    values: list[bytes | int] = []
    for i, kind in enumerate(types):
        word = args[32 * i:32 * (i + 1)]
        if kind == "address":
            if any(word[:12]):
                raise TokenCallError(f"{what}: argument {i + 1} is not an address (its 12 "
                                     "padding bytes are not zero)")
            values.append(word[12:])
        else:
            values.append(int.from_bytes(word, "big"))
    return tuple(values)


@dataclass(frozen=True)
class TokenFunction:
    """An ERC-20 (EIP-20) function whose amount the policy counts."""

    signature: str  # canonical, as hashed for the selector
    params: tuple[str, ...]  # argument names: addresses, then the uint256 amount
    label: str  # how a reason names the amount ("transfer of 1000 USDC")

    @cached_property
    def selector(self) -> bytes:
        return keccak256(self.signature.encode())[:4]


TOKEN_FUNCTIONS: tuple[TokenFunction, ...] = (
    # EIP-20: transfer(_to, _value), transferFrom(_from, _to, _value), approve(_spender,
    # _value). An allowance is money the spender can move: approve counts its amount.
    TokenFunction("transfer(address,uint256)", ("to", "amount"), "transfer of"),
    TokenFunction("transferFrom(address,address,uint256)", ("from", "to", "amount"),
                  "transferFrom of"),
    TokenFunction("approve(address,uint256)", ("spender", "amount"), "allowance of"),
    # Not EIP-20: OpenZeppelin's ERC20 (before 5.0) adds to an allowance with it.
    TokenFunction("increaseAllowance(address,uint256)", ("spender", "amount"),
                  "allowance increase of"),
)
"""The calls decoded and counted at a destination with a ``token`` section."""

_TOKEN_FUNCTIONS_BY_SELECTOR = MappingProxyType({f.selector: f for f in TOKEN_FUNCTIONS})


@dataclass(frozen=True)
class TokenCall:
    """An ERC-20 (EIP-20) call decoded from calldata: ``amount`` base units leave the
    sender's reach, to ``arguments["to"]`` or as an allowance of ``arguments["spender"]``."""

    function: TokenFunction
    arguments: Mapping[str, bytes]  # the address arguments, by name
    amount: int  # base units

    def describe(self, symbol: str, decimals: int) -> str:
        """'transfer of 1000 USDC to 0x...' (addresses EIP-55)."""
        parties = " ".join(f"{'for' if name == 'spender' else name} "
                           f"{format_address(address)}"
                           for name, address in self.arguments.items())
        return (f"{self.function.label} {format_token_amount(self.amount, symbol, decimals)} "
                f"{parties}")

    def to_payload(self) -> dict[str, Any]:
        return {"function": self.function.signature, "amount": str(self.amount),
                **{name: "0x" + address.hex() for name, address in self.arguments.items()}}


def decode_token_call(data: bytes) -> TokenCall | None:
    """The ERC-20 call in ``data`` when its selector is one of :data:`TOKEN_FUNCTIONS`,
    else ``None``; raises :class:`TokenCallError` when such a selector is followed by
    anything but the exact ABI encoding of the arguments (see :func:`decode_abi_words`)."""
    function = _TOKEN_FUNCTIONS_BY_SELECTOR.get(data[:4]) if len(data) >= 4 else None
    if function is None:
        return None
    types: tuple[Literal["address", "uint256"], ...] = (
        ("address",) * (len(function.params) - 1) + ("uint256",))
    *addresses, amount = decode_abi_words(data[4:], types, function.signature)
    assert isinstance(amount, int)
    return TokenCall(function, MappingProxyType(dict(zip(function.params[:-1], addresses,
                                                         strict=True))), amount)


# --------------------------------------------------------------------------- rules

@dataclass(frozen=True)
class Destination:
    """An allowed ``to`` address (``[[destinations.allow]]``)."""

    address: bytes  # 20 bytes
    label: str = ""  # shown in reasons and in the audit log
    selectors: Mapping[bytes, str] = field(default_factory=lambda: MappingProxyType({}))
    """Allowed 4-byte function selectors (Solidity ABI spec), each with how the policy
    wrote it. Empty: no calldata at all may be sent to this address."""
    plain_transfers: bool = True  # may calldata be empty (an ether transfer)?
    token: TokenLimits | None = None
    """The ``token`` section: this address is an ERC-20 token whose amounts count. None:
    token calls here are limited by ``selectors`` alone."""

    def describe(self) -> str:
        address = format_address(self.address)
        return f"{address} ({self.label})" if self.label else address


@dataclass(frozen=True)
class TokenLimits:
    """A destination's ``token`` section: the ERC-20 (EIP-20) token at that address, and its
    limits in base units (the amounts of :data:`TOKEN_FUNCTIONS` calls, per sender). The
    thresholds use ``[timelock]``'s delay and ``[cosign]``'s operators; ``None``: token
    amounts never start that gate."""

    symbol: str  # the unit of amounts in the policy file and in reasons
    decimals: int  # one symbol = 10^decimals base units (EIP-20 decimals())
    per_transaction: int
    per_24h: int  # over the rolling window (now - 24 h, now], per sender and token
    timelock_threshold: int | None = None
    cosign_threshold: int | None = None

    def format(self, amount: int) -> str:
        return format_token_amount(amount, self.symbol, self.decimals)


@dataclass(frozen=True)
class Limits:
    """Value limits (``[limits]``), in wei."""

    per_transaction: int
    per_24h: int  # over the rolling window (now - 24 h, now], per sender


@dataclass(frozen=True)
class FeeCaps:
    """Fee caps (``[fees]``), in wei; ``None`` leaves that field uncapped."""

    max_total_fee: int  # gas limit * (max_fee_per_gas or gas_price): the most a tx can burn
    max_gas: int | None = None  # gas limit, in gas
    max_fee_per_gas: int | None = None  # EIP-1559
    max_priority_fee_per_gas: int | None = None  # EIP-1559
    max_gas_price: int | None = None  # legacy and EIP-2930 gas_price


@dataclass(frozen=True)
class TimeLock:
    """``[timelock]``: a transaction with value >= ``threshold`` is signed only ``delay``
    seconds after it was first asked for, and may be cancelled for ``cancel_window``
    seconds after that first request (``cancel_window <= delay``)."""

    threshold: int
    delay: int
    cancel_window: int


@dataclass(frozen=True)
class CoSign:
    """``[cosign]``: a transaction with value >= ``threshold`` needs approvals from
    ``required`` distinct addresses among ``operators`` (m-of-n)."""

    threshold: int
    required: int
    operators: frozenset[bytes]


@dataclass(frozen=True)
class TypedDataDomain:
    """The EIP-712 domain fields the policy judges (others, like ``salt``, are ignored)."""

    name: str | None = None
    version: str | None = None
    chain_id: int | None = None
    verifying_contract: bytes | None = None

    def describe(self) -> str:
        contract = (format_address(self.verifying_contract)
                    if self.verifying_contract is not None else None)
        return (f"name {self.name!r}, version {self.version!r}, chainId {self.chain_id}, "
                f"verifyingContract {contract}")


@dataclass(frozen=True)
class TypedDataRule:
    """One ``[[messages.typed_data]]`` entry: EIP-712 documents under this domain may be
    signed. ``version`` and ``primary_types`` are optional narrowings."""

    name: str
    chain_id: int
    verifying_contract: bytes
    version: str | None = None
    primary_types: frozenset[str] | None = None

    def matches(self, domain: TypedDataDomain, primary_type: str | None) -> bool:
        return (domain.name == self.name and domain.chain_id == self.chain_id
                and domain.verifying_contract == self.verifying_contract
                and (self.version is None or domain.version == self.version)
                and (self.primary_types is None or primary_type in self.primary_types))


@dataclass(frozen=True)
class MessageRules:
    """``[messages]``: which off-chain messages may be signed."""

    allow_personal: bool = False  # EIP-191 personal_sign (version 0x45)
    typed_data: tuple[TypedDataRule, ...] = ()  # EIP-712 domains


# --------------------------------------------------------------------------- requests

@dataclass(frozen=True)
class Authorization:
    """An EIP-7702 authorization tuple: delegate the authority's account to ``address``'s
    code, for ``chain_id`` (0: every chain), at the authority's ``nonce``."""

    chain_id: int
    address: bytes
    nonce: int


def _check_uint(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT256:
        raise MalformedRequestError(f"signing request: {name} must be an integer in 0..2^256-1,"
                                    f" not {value!r}")


def _check_bytes(name: str, value: object, size: int | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        want = f"{size} bytes" if size is not None else "bytes"
        raise MalformedRequestError(f"signing request: {name} must be {want}, not {value!r}")


@dataclass(frozen=True)
class SigningRequest:
    """What the signer is asked to sign, as the policy sees it.

    Build one with :meth:`transaction`, :meth:`personal_message`, :meth:`typed_data` or
    :meth:`authorization`; the constructor checks every field and raises
    :class:`MalformedRequestError` for a request that is not well formed (a policy
    decision is only ever about a well-formed request).
    """

    kind: RequestKind
    sender: bytes  # 20-byte address of the key asked to sign
    chain_id: int | None = None  # EIP-155 chain id; None only for a pre-EIP-155 legacy tx
    to: bytes | None = None  # 20-byte destination; None: contract creation
    value: int = 0  # wei
    data: bytes = b""  # calldata (or initcode when creating a contract)
    gas: int = 0  # gas limit
    tx_type: int = 2  # EIP-2718 type
    nonce: int | None = None  # the sender's account nonce (binds request_id to one tx)
    max_fee_per_gas: int | None = None  # EIP-1559 (types 2, 3, 4)
    max_priority_fee_per_gas: int | None = None  # EIP-1559 (types 2, 3, 4)
    gas_price: int | None = None  # types 0 and 1
    authorization_list: tuple[Authorization, ...] = ()  # EIP-7702 (type 4)
    domain: TypedDataDomain | None = None  # EIP-712 (typed_data)
    primary_type: str | None = None  # EIP-712 (typed_data)
    digest: bytes | None = None
    """The 32 bytes that will be signed, when known (tx signing hash, EIP-191 or EIP-712
    digest): part of :attr:`request_id`, so approvals and a time-lock bind to them."""

    def __post_init__(self) -> None:
        kinds = ("transaction", "personal_message", "typed_data", "authorization")
        if self.kind not in kinds:
            raise MalformedRequestError(f"signing request: unknown kind {self.kind!r}")
        _check_bytes("sender", self.sender, 20)
        _check_bytes("digest", self.digest, 32, optional=True)
        _check_uint("chain_id", self.chain_id, optional=True)
        if self.kind == "transaction":
            self._check_transaction()
        elif self.kind == "authorization":
            if len(self.authorization_list) != 1:
                raise MalformedRequestError(
                    "signing request: an authorization request carries exactly one "
                    "authorization")
            self._check_authorizations()
        elif self.kind == "typed_data" and not isinstance(self.domain, TypedDataDomain):
            raise MalformedRequestError("signing request: typed data needs its EIP-712 domain")

    def _check_transaction(self) -> None:
        _check_bytes("to", self.to, 20, optional=True)
        _check_bytes("data", self.data, None)
        for name in ("value", "gas", "tx_type"):
            _check_uint(name, getattr(self, name))
        for name in ("nonce", "max_fee_per_gas", "max_priority_fee_per_gas", "gas_price"):
            _check_uint(name, getattr(self, name), optional=True)
        if self.tx_type not in _KNOWN_TX_TYPES:
            return  # well formed enough: the tx_type rule denies it by name
        if self.tx_type in _GAS_PRICE_TYPES:
            if self.gas_price is None or self.max_fee_per_gas is not None \
                    or self.max_priority_fee_per_gas is not None:
                raise MalformedRequestError(
                    f"signing request: a type {self.tx_type} transaction is priced by "
                    "gas_price alone")
        elif (self.gas_price is not None or self.max_fee_per_gas is None
              or self.max_priority_fee_per_gas is None):
            raise MalformedRequestError(
                f"signing request: a type {self.tx_type} transaction needs max_fee_per_gas "
                "and max_priority_fee_per_gas and no gas_price (EIP-1559)")
        if self.chain_id is None and self.tx_type != 0:
            raise MalformedRequestError(
                f"signing request: a type {self.tx_type} transaction must carry a chain id")
        if self.tx_type in (3, 4) and self.to is None:
            raise MalformedRequestError(
                f"signing request: a type {self.tx_type} transaction cannot create a contract")
        if self.tx_type == 4:
            if not self.authorization_list:
                raise MalformedRequestError(
                    "signing request: an EIP-7702 transaction needs a non-empty "
                    "authorization list")
            self._check_authorizations()
        elif self.authorization_list:
            raise MalformedRequestError(
                "signing request: only an EIP-7702 (type 4) transaction carries authorizations")

    def _check_authorizations(self) -> None:
        if not isinstance(self.authorization_list, tuple):
            raise MalformedRequestError("signing request: authorization_list must be a tuple")
        for i, auth in enumerate(self.authorization_list):
            if not isinstance(auth, Authorization):
                raise MalformedRequestError(f"signing request: authorization {i} is {auth!r}")
            _check_uint(f"authorization {i} chain_id", auth.chain_id)
            _check_bytes(f"authorization {i} address", auth.address, 20)
            _check_uint(f"authorization {i} nonce", auth.nonce)

    # -- constructors

    @classmethod
    def transaction(cls, *, sender: bytes, chain_id: int | None, to: bytes | None,
                    value: int = 0, data: bytes = b"", gas: int, tx_type: int = 2,
                    nonce: int | None = None, max_fee_per_gas: int | None = None,
                    max_priority_fee_per_gas: int | None = None, gas_price: int | None = None,
                    authorization_list: Iterable[Authorization] = (),
                    digest: bytes | None = None) -> SigningRequest:
        """A transaction of EIP-2718 type ``tx_type``."""
        return cls("transaction", sender, chain_id=chain_id, to=to, value=value, data=data,
                   gas=gas, tx_type=tx_type, nonce=nonce, max_fee_per_gas=max_fee_per_gas,
                   max_priority_fee_per_gas=max_priority_fee_per_gas, gas_price=gas_price,
                   authorization_list=tuple(authorization_list), digest=digest)

    @classmethod
    def personal_message(cls, *, sender: bytes, message: bytes) -> SigningRequest:
        """An EIP-191 personal message (version 0x45); the digest is computed here."""
        _check_bytes("message", message, None)
        return cls("personal_message", sender, digest=personal_message_digest(message))

    @classmethod
    def typed_data(cls, *, sender: bytes, document: Mapping[str, Any]) -> SigningRequest:
        """A full EIP-712 document ``{types, primaryType, domain, message}``; its domain and
        primary type are read here and its digest computed (invalid documents raise
        :class:`MalformedRequestError`)."""
        digest = typed_data_digest(document)
        raw = document.get("domain", {})
        if not isinstance(raw, Mapping):
            raise MalformedRequestError("EIP-712 document: domain is not an object")
        chain_id = raw.get("chainId")
        if isinstance(chain_id, str):
            try:
                chain_id = int(chain_id, 0)
            except ValueError:
                raise MalformedRequestError(
                    f"EIP-712 domain: chainId {chain_id!r} is not a number") from None
        contract = raw.get("verifyingContract")
        domain = TypedDataDomain(
            name=raw.get("name"), version=raw.get("version"), chain_id=chain_id,
            verifying_contract=_domain_contract(contract))
        primary = document.get("primaryType")
        return cls("typed_data", sender, chain_id=chain_id, domain=domain,
                   primary_type=primary if isinstance(primary, str) else None, digest=digest)

    @classmethod
    def authorization(cls, *, sender: bytes, authorization: Authorization,
                      digest: bytes | None = None) -> SigningRequest:
        """An EIP-7702 authorization tuple signed by ``sender``: it delegates the sender's
        own account, so it passes the same ``delegation`` rule as a type-4 transaction."""
        return cls("authorization", sender, chain_id=authorization.chain_id,
                   authorization_list=(authorization,), digest=digest)

    # -- identity

    def to_payload(self, policy: Policy | None = None) -> dict[str, Any]:
        """The request as JSON-compatible values (bytes as ``0x`` hex, amounts as decimal
        strings): what :attr:`request_id` hashes. With ``policy`` (what the audit log
        records), a call to one of its token destinations also carries ``token_call``: the
        decoded ERC-20 call with its ``symbol`` and ``decimals``, or ``{"error": ...}`` for
        calldata that does not decode."""
        def hx(value: bytes | None) -> str | None:
            return None if value is None else "0x" + value.hex()

        payload: dict[str, Any] = {"kind": self.kind, "sender": hx(self.sender),
                                   "chain_id": self.chain_id, "digest": hx(self.digest)}
        if self.kind == "transaction":
            payload.update({
                "tx_type": self.tx_type, "nonce": self.nonce, "to": hx(self.to),
                "value": str(self.value), "data": hx(self.data), "gas": self.gas,
                "max_fee_per_gas": _str_or_none(self.max_fee_per_gas),
                "max_priority_fee_per_gas": _str_or_none(self.max_priority_fee_per_gas),
                "gas_price": _str_or_none(self.gas_price)})
        if self.authorization_list:
            payload["authorization_list"] = [
                {"chain_id": a.chain_id, "address": hx(a.address), "nonce": a.nonce}
                for a in self.authorization_list]
        if self.domain is not None:
            payload["domain"] = {
                "name": self.domain.name, "version": self.domain.version,
                "chain_id": self.domain.chain_id,
                "verifying_contract": hx(self.domain.verifying_contract)}
            payload["primary_type"] = self.primary_type
        try:
            found = policy.token_call(self) if policy is not None else None
        except TokenCallError as exc:
            payload["token_call"] = {"error": str(exc)}
        else:
            if found is not None:
                token, call = found
                payload["token_call"] = {**call.to_payload(), "symbol": token.symbol,
                                         "decimals": token.decimals}
        return payload

    @cached_property
    def request_id(self) -> bytes:
        """keccak256(``b"orbital-policy-request/1\\x00"`` || canonical JSON of
        :meth:`to_payload`): names this exact request in the time-lock table, in operator
        approvals and in the audit log."""
        body = json.dumps(self.to_payload(), sort_keys=True, separators=(",", ":"))
        return keccak256(b"orbital-policy-request/1\x00" + body.encode())

    def describe(self, policy: Policy | None = None) -> str:
        """A short human description ("transfer of 1 ether to 0x... (treasury)")."""
        if self.kind == "personal_message":
            return "personal message"
        if self.kind == "typed_data":
            assert self.domain is not None
            return f"typed data {self.primary_type!r} ({self.domain.describe()})"
        if self.kind == "authorization":
            auth = self.authorization_list[0]
            return (f"EIP-7702 authorization delegating to {format_address(auth.address)} "
                    f"on chain {auth.chain_id}")
        value = format_wei(self.value)
        if self.to is None:
            return f"contract creation with value {value}"
        dest = policy.destinations.get(self.to) if policy is not None else None
        target = dest.describe() if dest is not None else format_address(self.to)
        if not self.data:
            return f"transfer of {value} to {target}"
        try:
            found = policy.token_call(self) if policy is not None else None
        except TokenCallError:
            found = None  # described by its selector below; the calldata rule denies it
        if found is not None:
            token, call = found
            return (f"{call.describe(token.symbol, token.decimals)} on {target} with value "
                    f"{value}")
        selector = self.data[:4]
        shown = dest.selectors.get(selector) if dest is not None else None
        return f"call {shown or '0x' + selector.hex()} on {target} with value {value}"


def _domain_contract(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes) and len(value) == 20:
        return value
    if isinstance(value, str):
        return parse_address(value.lower())  # requesters' checksums are not ours to judge
    raise MalformedRequestError(f"EIP-712 domain: verifyingContract {value!r} is not an address")


def _str_or_none(value: int | None) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- decisions

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
    messages: MessageRules = MessageRules()
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
    ``timelock`` and ``cosign`` judge every amount the same way."""

    label: str  # names the amount in reasons: "value", "transfer of"
    amount: int  # wei or token base units
    show: Callable[[int], str]  # writes an amount of this kind
    per_transaction: int
    per_24h: int
    timelock_threshold: int | None
    cosign_threshold: int | None
    token: bytes | None = None  # the token contract (per_24h is per sender and token)


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
                           cosign.threshold if cosign else None)]
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
            if each.amount > each.per_transaction:
                return self.deny("per_transaction", f"{each.label} {each.show(each.amount)} "
                                 f"exceeds the per-transaction limit "
                                 f"{each.show(each.per_transaction)}")
        return None

    def per_24h(self) -> Decision | None:
        for each in self.amounts:
            if each.amount == 0:
                continue
            since = self.now - WINDOW_SECONDS
            # ether asks without ``token``: a history that predates token amounts still works
            spent = (self.ledger.spent_since(self.request.sender, since) if each.token is None
                     else self.ledger.spent_since(self.request.sender, since, token=each.token))
            total = spent + each.amount
            if total > each.per_24h:
                return self.deny("per_24h", f"{each.label} {each.show(each.amount)} + "
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


# --------------------------------------------------------------------------- TOML

class _Table:
    """A TOML table being read: typed getters, and unknown keys refused at :meth:`done`."""

    def __init__(self, data: Mapping[str, Any], where: str, source: str) -> None:
        self.data = data
        self.where = where
        self.source = source
        self.known: list[str] = []

    def fail(self, key: str | None, problem: str) -> NoReturn:
        place = self.where if key is None else (f"{self.where}.{key}" if self.where else key)
        raise MalformedRequestError(f"policy {self.source}: {place or 'top level'}: {problem}")

    def raw(self, key: str, required: bool) -> Any:
        self.known.append(key)
        if key not in self.data:
            if required:
                self.fail(key, "is required")
            return None
        return self.data[key]

    def parsed(self, key: str, parse: Any, required: bool = False) -> Any:
        value = self.raw(key, required)
        if value is None:
            return None
        try:
            return parse(value)
        except MalformedRequestError as exc:
            self.fail(key, str(exc))

    def typed(self, key: str, kind: type, required: bool = False, default: Any = None) -> Any:
        value = self.raw(key, required)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"must be {kind.__name__}, not {type(value).__name__} {value!r}")
        return value

    def strings(self, key: str, required: bool = False) -> list[str] | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, f"must be a list of strings, not {value!r}")
        return value

    def table(self, key: str, required: bool = False) -> _Table | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, f"must be a table, not {value!r}")
        return _Table(value, f"{self.where}.{key}" if self.where else key, self.source)

    def tables(self, key: str) -> list[_Table]:
        value = self.raw(key, False)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(key, f"must be an array of tables ([[{self.where}.{key}]])")
        name = f"{self.where}.{key}" if self.where else key
        return [_Table(v, f"{name}[{i}]", self.source) for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - set(self.known))
        if unknown:
            self.fail(None, f"unknown key {unknown[0]!r} (known: {', '.join(self.known)})")


def _positive(table: _Table, key: str, value: int | None) -> int | None:
    if value is not None and value <= 0:
        table.fail(key, f"must be positive, not {value}")
    return value


def parse_policy(data: bytes, source: str = "<memory>") -> Policy:
    """Parse and validate a policy file's bytes (no pin check: see :func:`load_policy`).

    Raises :class:`MalformedRequestError` naming the file, the key and the problem for
    invalid TOML, an unknown key, a wrong type, a bad amount, address or duration, or an
    inconsistent rule.
    """
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MalformedRequestError(f"policy {source}: not valid TOML: {exc}") from None
    top = _Table(document, "", source)
    version = top.typed("version", int, required=True)
    if version != POLICY_VERSION:
        top.fail("version", f"is {version}; this wallet reads version {POLICY_VERSION}")
    chain_id = _positive(top, "chain_id", top.typed("chain_id", int, required=True))
    assert chain_id is not None

    destinations: dict[bytes, Destination] = {}
    token_tables: list[tuple[_Table, Destination]] = []
    allow_create = False
    section = top.table("destinations")
    if section is not None:
        allow_create = section.typed("allow_create", bool, default=False)
        for entry in section.tables("allow"):
            dest, token_table = _parse_destination(entry)
            if dest.address in destinations:
                entry.fail("address", f"{format_address(dest.address)} is listed twice")
            destinations[dest.address] = dest
            if token_table is not None:
                token_tables.append((token_table, dest))
        section.done()

    section = top.table("limits", required=True)
    assert section is not None
    limits = Limits(per_transaction=section.parsed("per_transaction", parse_amount, True),
                    per_24h=section.parsed("per_24h", parse_amount, True))
    section.done()

    section = top.table("fees", required=True)
    assert section is not None
    fees = FeeCaps(
        max_total_fee=section.parsed("max_total_fee", parse_amount, True),
        max_gas=_positive(section, "max_gas", section.typed("max_gas", int)),
        max_fee_per_gas=section.parsed("max_fee_per_gas", parse_amount),
        max_priority_fee_per_gas=section.parsed("max_priority_fee_per_gas", parse_amount),
        max_gas_price=section.parsed("max_gas_price", parse_amount))
    section.done()

    timelock = None
    section = top.table("timelock")
    if section is not None:
        threshold = section.parsed("threshold", parse_amount, True)
        delay = _positive(section, "delay", section.parsed("delay", parse_duration, True))
        window = section.parsed("cancel_window", parse_duration)
        window = delay if window is None else window
        assert delay is not None
        if window > delay:
            section.fail("cancel_window", f"{format_duration(window)} is longer than the "
                         f"delay {format_duration(delay)}: a request would be signable while "
                         "still cancellable")
        timelock = TimeLock(threshold=threshold, delay=delay, cancel_window=window)
        section.done()

    cosign = None
    section = top.table("cosign")
    if section is not None:
        threshold = section.parsed("threshold", parse_amount, True)
        required = _positive(section, "required", section.typed("required", int, True))
        operators = _addresses(section, "operators", required=True)
        assert required is not None
        if not operators:
            section.fail("operators", "lists no operator")
        if required > len(operators):
            section.fail("required", f"is {required} but only {len(operators)} operators "
                         "are listed")
        cosign = CoSign(threshold=threshold, required=required, operators=frozenset(operators))
        section.done()

    for table, dest in token_tables:  # the token gates borrow [timelock] and [cosign]
        assert dest.token is not None
        if dest.token.timelock_threshold is not None and timelock is None:
            table.fail("timelock_threshold", "needs a [timelock] section (its delay)")
        if dest.token.cosign_threshold is not None and cosign is None:
            table.fail("cosign_threshold", "needs a [cosign] section (its operators)")

    delegates: frozenset[bytes] = frozenset()
    section = top.table("delegation")
    if section is not None:
        delegates = frozenset(_addresses(section, "allow_delegates", required=True))
        section.done()

    messages = MessageRules()
    section = top.table("messages")
    if section is not None:
        allow_personal = section.typed("allow_personal", bool, default=False)
        rules = tuple(_parse_typed_data_rule(entry) for entry in section.tables("typed_data"))
        messages = MessageRules(allow_personal=allow_personal, typed_data=rules)
        section.done()
    top.done()

    return Policy(chain_id=chain_id, limits=limits, fees=fees,
                  destinations=MappingProxyType(destinations), allow_create=allow_create,
                  delegates=delegates, timelock=timelock, cosign=cosign, messages=messages,
                  sha256=policy_sha256(data), source=source)


def _addresses(table: _Table, key: str, required: bool = False) -> list[bytes]:
    values = table.strings(key, required) or []
    addresses: list[bytes] = []
    for value in values:
        try:
            address = parse_address(value)
        except MalformedRequestError as exc:
            table.fail(key, str(exc))
        if address in addresses:
            table.fail(key, f"{format_address(address)} is listed twice")
        addresses.append(address)
    return addresses


def _parse_destination(entry: _Table) -> tuple[Destination, _Table | None]:
    address = entry.parsed("address", parse_address, True)
    label = entry.typed("label", str, default="")
    selectors: dict[bytes, str] = {}
    for value in entry.strings("selectors") or []:
        try:
            selector, shown = parse_selector(value)
        except MalformedRequestError as exc:
            entry.fail("selectors", str(exc))
        if selector in selectors:
            entry.fail("selectors", f"{shown} is listed twice (as {selectors[selector]})")
        selectors[selector] = shown
    plain = entry.typed("plain_transfers", bool, default=not selectors)
    token_table = entry.table("token")
    token = _parse_token(token_table) if token_table is not None else None
    entry.done()
    return Destination(address=address, label=label, selectors=MappingProxyType(selectors),
                       plain_transfers=plain, token=token), token_table


def _parse_token(table: _Table) -> TokenLimits:
    symbol = table.typed("symbol", str, required=True)
    if _TOKEN_SYMBOL.fullmatch(symbol) is None or symbol.lower() in _UNIT_DECIMALS:
        table.fail("symbol", f"{symbol!r} is not a token symbol (a letter, then up to 15 "
                   "letters or digits; not wei, gwei or ether)")
    decimals = table.typed("decimals", int, required=True)
    if not 0 <= decimals <= MAX_TOKEN_DECIMALS:
        table.fail("decimals", f"is {decimals}, not in 0..{MAX_TOKEN_DECIMALS} "
                   "(EIP-20 decimals() is a uint8)")

    def amount(value: object) -> int:
        return parse_token_amount(value, symbol, decimals)

    token = TokenLimits(symbol=symbol, decimals=decimals,
                        per_transaction=table.parsed("per_transaction", amount, True),
                        per_24h=table.parsed("per_24h", amount, True),
                        timelock_threshold=table.parsed("timelock_threshold", amount),
                        cosign_threshold=table.parsed("cosign_threshold", amount))
    table.done()
    return token


def _parse_typed_data_rule(entry: _Table) -> TypedDataRule:
    name = entry.typed("name", str, required=True)
    chain_id = _positive(entry, "chain_id", entry.typed("chain_id", int, required=True))
    contract = entry.parsed("verifying_contract", parse_address, True)
    version = entry.typed("version", str)
    primary = entry.strings("primary_types")
    if primary is not None and not primary:
        entry.fail("primary_types", "is empty: leave it out to allow every primary type")
    entry.done()
    assert chain_id is not None
    return TypedDataRule(name=name, chain_id=chain_id, verifying_contract=contract,
                         version=version,
                         primary_types=frozenset(primary) if primary is not None else None)


def _normalise_pin(pinned_sha256: str) -> str:
    pin = pinned_sha256.strip().lower()
    pin = pin.removeprefix("sha256:").removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{64}", pin) is None:
        raise MalformedRequestError(f"policy pin {pinned_sha256!r} is not a sha256 "
                                    "(64 hex digits)")
    return pin


def _read(path: str | PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MalformedRequestError(f"cannot read policy file {path}: {exc.strerror}") from None


def load_policy(path: str | PathLike[str], pinned_sha256: str) -> Policy:
    """Read the policy at ``path``, check its sha256 against the pin (hex, optionally
    prefixed ``sha256:`` or ``0x``), then parse it.

    Raises :class:`PolicyPinError` if the file changed since it was pinned, and
    :class:`MalformedRequestError` if it cannot be read or parsed.
    """
    pin = _normalise_pin(pinned_sha256)
    data = _read(path)
    actual = policy_sha256(data)
    if actual != pin:
        raise PolicyPinError(
            f"policy file {path} changed (sha256 {actual}, pinned {pin}): review it and "
            "re-pin with `orbital wallet policy pin`")
    return parse_policy(data, str(path))


def pin_policy(path: str | PathLike[str]) -> str:
    """The sha256 to pin for the policy at ``path``; the file must parse (a policy that
    cannot be loaded is never pinned)."""
    data = _read(path)
    parse_policy(data, str(path))
    return policy_sha256(data)


# --------------------------------------------------------------------------- the ledger

_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS spends (
    id INTEGER PRIMARY KEY,
    request_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    value TEXT NOT NULL,          -- wei, decimal: amounts exceed SQLite's 64-bit integers
    signed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS spends_by_sender ON spends (sender, signed_at);
CREATE TABLE IF NOT EXISTS token_spends (
    id INTEGER PRIMARY KEY,
    request_id BLOB NOT NULL,
    sender BLOB NOT NULL,
    token BLOB NOT NULL,          -- the ERC-20 contract called (the transaction's `to`)
    amount TEXT NOT NULL,         -- base units, decimal
    signed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS token_spends_by_sender ON token_spends (sender, token, signed_at);
CREATE TABLE IF NOT EXISTS pending (
    request_id BLOB PRIMARY KEY,
    created REAL NOT NULL,
    not_before REAL NOT NULL,
    cancel_until REAL NOT NULL,
    summary TEXT NOT NULL,
    cancelled_at REAL,
    cancel_reason TEXT NOT NULL DEFAULT '',
    signed_at REAL
);
"""


class PolicyLedger:
    """The durable memory of the policy (SQLite, WAL, ``synchronous=FULL``): values signed
    per sender and token amounts signed per sender and token (for ``per_24h``), and
    time-locked requests. Implements :class:`PolicyHistory`. Thread-safe; several
    processes may share the file.

    The schema only ever grows by ``CREATE ... IF NOT EXISTS``: a file written before
    token amounts were counted (no ``token_spends`` table) opens and keeps its history;
    its past token transfers were not recorded and count as nothing.

    A spend dated after ``now`` (the clock was set back) still counts: a wrong clock can
    only make the rolling limit stricter.

    Evaluating, signing and :meth:`record_signed` are separate steps: two requests judged
    at once could both fit under ``per_24h`` and together exceed it. The signing path
    holds :attr:`signing_lock` from evaluation to ``record_signed`` (one process signs per
    ledger; the HSM session is serial anyway).
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = str(path)
        self.signing_lock = threading.RLock()
        """Held by the signing path across evaluate -> sign -> record_signed."""
        self._lock = threading.Lock()
        self._conn = open_durable(self.path)
        with self._transaction():
            for statement in _LEDGER_SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PolicyLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self._lock)

    # -- PolicyHistory

    def spent_since(self, sender: bytes, since: float, token: bytes | None = None) -> int:
        with self._lock:
            if token is None:
                rows = self._conn.execute(
                    "SELECT value FROM spends WHERE sender = ? AND signed_at > ?",
                    (sender, since)).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT amount FROM token_spends WHERE sender = ? AND token = ? "
                    "AND signed_at > ?", (sender, token, since)).fetchall()
        return sum(int(amount) for (amount,) in rows)

    def pending(self, request_id: bytes) -> PendingRequest | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending WHERE request_id = ?",
                (request_id,)).fetchone()
        return _pending_from_row(row) if row is not None else None

    # -- writes

    def queue(self, decision: Decision, summary: str = "") -> PendingRequest:
        """Record a ``delay`` decision's request as pending (at ``decision.decided_at``).
        Queueing a request that is already queued returns the existing entry unchanged:
        asking again never restarts or shortens a time-lock."""
        if decision.outcome != "delay" or decision.not_before is None \
                or decision.cancel_until is None:
            raise ValueError(f"only a delay decision can be queued, not {decision.outcome}")
        with self._transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO pending (request_id, created, not_before, cancel_until,"
                " summary) VALUES (?, ?, ?, ?, ?)",
                (decision.request_id, decision.decided_at, decision.not_before,
                 decision.cancel_until, summary or decision.reason))
        pending = self.pending(decision.request_id)
        assert pending is not None
        return pending

    def cancel(self, request_id: bytes, now: float, reason: str = "") -> PendingRequest:
        """Cancel a pending request; allowed while ``now < cancel_until``. Cancelling twice
        is harmless. Raises :class:`MalformedRequestError` for an unknown request and
        :class:`PolicyDeniedError` (rule ``timelock``) when the window has closed or the
        request was already signed."""
        with self._transaction():
            row = self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending WHERE request_id = ?",
                (request_id,)).fetchone()
            if row is None:
                raise MalformedRequestError(f"no pending request 0x{request_id.hex()}")
            pending = _pending_from_row(row)
            if pending.cancelled_at is not None:
                return pending
            if pending.signed_at is not None:
                raise PolicyDeniedError(f"request 0x{request_id.hex()} was already signed at "
                                        f"{format_time(pending.signed_at)}", "timelock")
            if now >= pending.cancel_until:
                raise PolicyDeniedError(
                    f"the cancel window of request 0x{request_id.hex()} closed at "
                    f"{format_time(pending.cancel_until)}", "timelock")
            self._conn.execute(
                "UPDATE pending SET cancelled_at = ?, cancel_reason = ? WHERE request_id = ?",
                (now, reason, request_id))
        cancelled = self.pending(request_id)
        assert cancelled is not None
        return cancelled

    def record_signed(self, request: SigningRequest, now: float) -> None:
        """Record that ``request`` was signed at ``now``: its value counts towards the
        sender's rolling 24 h total, so does the amount of an ERC-20 call it makes (one
        of :data:`TOKEN_FUNCTIONS`, to any contract: the ledger needs no policy to know
        it) towards the sender's total of that token, and its time-lock entry (if any) is
        used up. Call it before the signature is released (a crash then over-counts,
        never under-counts)."""
        try:
            call = decode_token_call(request.data) if request.to is not None else None
        except TokenCallError:
            call = None  # not a token call any policy counts (it denies them at token
            # destinations): nothing to add up
        with self._transaction():
            if request.kind == "transaction":
                self._conn.execute(
                    "INSERT INTO spends (request_id, sender, value, signed_at) "
                    "VALUES (?, ?, ?, ?)",
                    (request.request_id, request.sender, str(request.value), now))
                if call is not None:
                    self._conn.execute(
                        "INSERT INTO token_spends (request_id, sender, token, amount, "
                        "signed_at) VALUES (?, ?, ?, ?, ?)",
                        (request.request_id, request.sender, request.to, str(call.amount),
                         now))
            self._conn.execute(
                "UPDATE pending SET signed_at = ? WHERE request_id = ? AND signed_at IS NULL",
                (now, request.request_id))

    def pending_requests(self, include_closed: bool = False) -> list[PendingRequest]:
        """Pending requests, oldest first (open ones only unless ``include_closed``)."""
        where = "" if include_closed else " WHERE cancelled_at IS NULL AND signed_at IS NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending{where} ORDER BY created").fetchall()
        return [_pending_from_row(row) for row in rows]


_PENDING_COLUMNS = ("request_id, created, not_before, cancel_until, summary, cancelled_at, "
                    "cancel_reason, signed_at")


def _pending_from_row(row: tuple[Any, ...]) -> PendingRequest:
    request_id, created, not_before, cancel_until, summary, cancelled, why, signed = row
    return PendingRequest(bytes(request_id), created, not_before, cancel_until, summary,
                          cancelled, why, signed)


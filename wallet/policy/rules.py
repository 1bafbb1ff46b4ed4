"""The rules of a policy, as parsed from its file: destinations, limits, fee caps,
time-lock, co-signature and message rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from wallet.policy.erc20 import format_token_amount
from wallet.policy.units import format_address


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

"""ERC-20 (EIP-20) calldata: the token calls whose amounts the policy counts, decoded
strictly from their ABI encoding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from wallet.errors import MalformedRequestError
from wallet.hashing import keccak256
from wallet.policy.units import MAX_UINT256, _format_units, _parse_units, format_address

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

"""Units and literals of a policy file: ether amounts, durations, addresses, selectors
(the grammar is in :mod:`wallet.policy`'s docstring, "Amounts and durations").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from eth_utils import is_checksum_address

from wallet.errors import MalformedRequestError
from wallet.hashing import checksum_address, keccak256

MAX_UINT256 = 2**256 - 1


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

"""Strict reading of the signed JSON files operators exchange (command envelopes, signed
heads): one place for the rules, so that two parsers can never read two different things
from one file -- duplicate keys, floats, NaN and non-UTF-8 refused, size and nesting bounded,
objects with exactly the expected fields, hex of exactly the expected length, EIP-55
checksums honoured. Every refusal is a :class:`MalformedRequestError` naming the field."""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from typing import Any

from eth_utils import is_checksum_address

from wallet.errors import MalformedRequestError
from wallet.jsondepth import json_nesting_exceeds

_HEX_DIGITS = frozenset(string.hexdigits)


def load_document(data: str | bytes, what: str, *, max_bytes: int, max_depth: int) -> Any:
    """Parse ``data`` (a ``what``: "envelope", "signed head") under the rules above."""
    if len(data) > max_bytes:
        raise MalformedRequestError(f"{what}: larger than {max_bytes} bytes")
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRequestError(f"{what}: not UTF-8: {exc}") from None
    if json_nesting_exceeds(data, max_depth):
        raise MalformedRequestError(f"{what}: JSON nested deeper than {max_depth} levels")

    def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:  # two parsers could pick different values: ambiguous
                raise MalformedRequestError(f"{what}: duplicate JSON key {key!r}")
            result[key] = value
        return result

    def no_float(text: str) -> Any:
        raise MalformedRequestError(f"{what}: non-integer number {text}; write quantities "
                                    f"as integers or 0x-hex")

    try:
        return json.loads(data, object_pairs_hook=no_duplicate_keys, parse_float=no_float,
                          parse_constant=no_float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int too long
        raise MalformedRequestError(f"{what}: not valid JSON: {exc}") from None


def expect_object(value: Any, field: str, keys: Iterable[str]) -> dict[str, Any]:
    """``value`` as an object with exactly the fields ``keys``."""
    if not isinstance(value, dict):
        raise MalformedRequestError(f"{field}: expected an object, got {type(value).__name__}")
    wanted = set(keys)
    if missing := sorted(wanted - value.keys()):
        raise MalformedRequestError(f"{field}: missing field(s) {', '.join(missing)}")
    if unknown := sorted(value.keys() - wanted):
        raise MalformedRequestError(f"{field}: unknown field(s) {', '.join(unknown)}")
    return value


def expect_hex(value: Any, field: str, length: int) -> bytes:
    """0x-prefixed hex of exactly ``length`` bytes."""
    if not (isinstance(value, str) and value.startswith("0x")
            and set(value[2:]) <= _HEX_DIGITS):
        raise MalformedRequestError(
            f"{field}: expected 0x-prefixed hex of {length} bytes, got {value!r:.80}")
    if len(value) - 2 != 2 * length:
        raise MalformedRequestError(
            f"{field}: expected {length} bytes ({2 * length} hex digits), got "
            f"{len(value) - 2} hex digits")
    return bytes.fromhex(value[2:])


def expect_address(value: Any, field: str) -> bytes:
    """A 20-byte address; mixed case must pass its EIP-55 checksum."""
    raw = expect_hex(value, field, 20)
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise MalformedRequestError(f"{field}: {value} fails its EIP-55 checksum")
    return raw

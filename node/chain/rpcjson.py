"""Strict readers for values in Ethereum JSON-RPC objects.

The execution-apis specification (``src/schemas/base-types.yaml``) encodes every
number as a ``QUANTITY`` (``0x``-prefixed hex, no leading zeros) and every byte
string as ``DATA`` (``0x``-prefixed, two hex digits per byte). Everything handed to
the verifier comes from an untrusted source, so each reader checks the type, the
prefix, the digits and the size and raises :class:`MalformedInputError` naming the
field when any of them is wrong. Leading zeros in a quantity are tolerated (they
do not change the value, and the value is what gets hashed); everything else is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.chain.errors import MalformedInputError


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def field(obj: Mapping[str, Any], key: str, where: str = "") -> Any:
    """Return ``obj[key]``, or raise naming the missing field."""
    try:
        return obj[key]
    except KeyError:
        raise MalformedInputError("missing field", where=_path(where, key)) from None
    except TypeError:
        raise MalformedInputError(
            f"expected a JSON object, got {type(obj).__name__}", where=where or "input"
        ) from None


def parse_quantity(text: Any, where: str, bits: int = 256, key: str | None = None) -> int:
    """Decode a JSON-RPC ``QUANTITY`` of at most ``bits`` bits. ``where`` (and ``key``)
    name the field in errors; the path is only built when there is one."""
    if type(text) is str and text[:2] == "0x":
        digits = text[2:]
        if digits.isascii() and digits.isalnum():  # excludes signs, "_", spaces, non-ASCII
            try:
                value = int(digits, 16)
            except ValueError:
                pass
            else:
                if value.bit_length() <= bits:
                    return value
    return _quantity_error(text, _path(where, key) if key else where, bits)


def _quantity_error(text: Any, where: str, bits: int) -> int:
    if not isinstance(text, str):
        raise MalformedInputError(f"expected a hex string, got {type(text).__name__}",
                                  where=where)
    if not text.startswith(("0x", "0X")) or len(text) == 2:
        raise MalformedInputError(f"bad quantity {_clip(text)!r} (want 0x-prefixed hex)",
                                  where=where)
    digits = text[2:]
    if not (digits.isascii() and digits.isalnum()):
        raise MalformedInputError(f"bad hex {_clip(text)!r}", where=where)
    try:
        value = int(digits, 16)
    except ValueError:
        raise MalformedInputError(f"bad hex {_clip(text)!r}", where=where) from None
    if value.bit_length() > bits:
        raise MalformedInputError(f"quantity {_clip(text)} exceeds {bits} bits", where=where)
    return value  # "0X" prefix


def parse_data(text: Any, where: str, size: int | None = None,
               max_size: int | None = None, key: str | None = None) -> bytes:
    """Decode a JSON-RPC ``DATA`` string, optionally of exactly ``size`` bytes."""
    if type(text) is str and text[:2] == "0x" and (
            size is None or len(text) == 2 * size + 2):
        try:
            value = bytes.fromhex(text[2:])
        except ValueError:
            pass
        else:  # fromhex skips whitespace: the length tells
            if 2 * len(value) + 2 == len(text) and (max_size is None or len(value) <= max_size):
                return value
    return _data_error(text, _path(where, key) if key else where, size, max_size)


def _data_error(text: Any, where: str, size: int | None, max_size: int | None) -> bytes:
    if not isinstance(text, str):
        raise MalformedInputError(f"expected a hex string, got {type(text).__name__}",
                                  where=where)
    if not text.startswith(("0x", "0X")):
        raise MalformedInputError(f"bad data {_clip(text)!r} (want 0x-prefixed hex)",
                                  where=where)
    if len(text) % 2:
        raise MalformedInputError(f"odd number of hex digits in {_clip(text)!r}", where=where)
    try:
        value = bytes.fromhex(text[2:])
    except ValueError:
        value = b""
    if 2 * len(value) != len(text) - 2:  # fromhex failed, or skipped whitespace
        raise MalformedInputError(f"bad hex {_clip(text)!r}", where=where)
    if size is not None and len(value) != size:
        raise MalformedInputError(f"expected {size} bytes, got {len(value)}", where=where)
    if max_size is not None and len(value) > max_size:
        raise MalformedInputError(f"expected at most {max_size} bytes, got {len(value)}",
                                  where=where)
    return value  # "0X" prefix


def quantity(obj: Mapping[str, Any], key: str, where: str = "", bits: int = 256) -> int:
    """Read the ``QUANTITY`` field ``key`` of ``obj``."""
    return parse_quantity(field(obj, key, where), where, bits, key)


def data(obj: Mapping[str, Any], key: str, where: str = "", size: int | None = None,
         max_size: int | None = None) -> bytes:
    """Read the ``DATA`` field ``key`` of ``obj``."""
    return parse_data(field(obj, key, where), where, size, max_size, key)


def optional_quantity(obj: Mapping[str, Any], key: str, where: str = "",
                      bits: int = 256) -> int | None:
    """Read ``key`` as a ``QUANTITY`` if present (and not null), else ``None``."""
    value = obj.get(key)
    return None if value is None else parse_quantity(value, where, bits, key)


def optional_data(obj: Mapping[str, Any], key: str, where: str = "",
                  size: int | None = None) -> bytes | None:
    """Read ``key`` as ``DATA`` if present (and not null), else ``None``."""
    value = obj.get(key)
    return None if value is None else parse_data(value, where, size, key=key)


def array(obj: Mapping[str, Any], key: str, where: str = "") -> list[Any]:
    """Read the JSON array ``key`` of ``obj``."""
    value = field(obj, key, where)
    if not isinstance(value, list):
        raise MalformedInputError(f"expected a JSON array, got {type(value).__name__}",
                                  where=_path(where, key))
    return value


def obj_at(value: Any, where: str) -> Mapping[str, Any]:
    """Check that ``value`` is a JSON object."""
    if not isinstance(value, Mapping):
        raise MalformedInputError(f"expected a JSON object, got {type(value).__name__}",
                                  where=where or "input")
    return value


def to_hex(value: bytes | int) -> str:
    """Encode bytes as ``DATA`` or an int as ``QUANTITY``."""
    if isinstance(value, int):
        return hex(value)
    return "0x" + value.hex()


def _clip(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit] + "..."

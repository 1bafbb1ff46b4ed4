"""Recursive Length Prefix encoding (Yellow Paper, appendix B; execution-specs
``ethereum_rlp``).

An item is a byte string or a list of items. Integers are encoded as their
big-endian bytes without leading zeros (zero is the empty string). Decoding is
strict: it accepts exactly the canonical encoding of one item and nothing else, so
two different byte strings never decode to the same item.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeAlias

from node.chain.errors import MalformedInputError

Item: TypeAlias = "bytes | list[Item]"
Encodable: TypeAlias = "bytes | bytearray | int | Sequence[Encodable]"


def encode(item: Encodable) -> bytes:
    """RLP-encode ``item`` (bytes, a non-negative int, or a sequence of those)."""
    if isinstance(item, (bytes, bytearray)):
        n = len(item)
        if n == 1 and item[0] < 0x80:
            return bytes(item)
        return _prefix(n, 0x80) + item
    if isinstance(item, int):
        return encode(int_to_bytes(item))
    if isinstance(item, str):
        raise TypeError("RLP encodes bytes, not str: encode the text first")
    body = b"".join([encode(x) for x in item])
    return _prefix(len(body), 0xC0) + body


def encode_flat(values: Sequence[bytes | int]) -> bytes:
    """RLP-encode a list whose items are all strings or ints (a header, say): the same
    bytes as :func:`encode`, without its recursion."""
    parts = []
    for value in values:
        if type(value) is int:
            if value < 0:
                raise ValueError("RLP cannot encode negative integers")
            value = value.to_bytes((value.bit_length() + 7) // 8, "big")
        n = len(value)
        if n == 1 and value[0] < 0x80:
            parts.append(value)
        elif n < 56:
            parts.append(bytes((0x80 + n,)) + value)
        else:
            parts.append(_prefix(n, 0x80) + value)
    body = b"".join(parts)
    return _prefix(len(body), 0xC0) + body


def _prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(size),)) + size


def int_to_bytes(value: int) -> bytes:
    """Big-endian bytes of ``value`` with no leading zeros (``b""`` for zero)."""
    if value < 0:
        raise ValueError("RLP cannot encode negative integers")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode(data: bytes) -> Item:
    """Decode exactly one canonical RLP item that spans all of ``data``."""
    data = bytes(data)
    item, end = _decode_at(data, 0)
    if end != len(data):
        raise MalformedInputError(f"rlp: {len(data) - end} trailing bytes after the item")
    return item


MAX_DEPTH = 256
"""Deepest list nesting accepted. Ethereum's structures nest a handful of levels; a deeper
nest is refused as malformed instead of exhausting the interpreter's stack."""


def _decode_at(data: bytes, pos: int, depth: int = 0) -> tuple[Item, int]:
    """Decode the item starting at ``pos``; return it and the offset just past it."""
    if pos >= len(data):
        raise MalformedInputError("rlp: input ends before an item starts")
    first = data[pos]
    if first < 0x80:
        return data[pos : pos + 1], pos + 1
    if first < 0xB8:
        length, start = first - 0x80, pos + 1
        if length == 1 and start < len(data) and data[start] < 0x80:
            raise MalformedInputError("rlp: single byte below 0x80 must encode itself")
        return _take(data, start, length), start + length
    if first < 0xC0:
        length, start = _long_length(data, pos, first - 0xB7)
        return _take(data, start, length), start + length
    if first < 0xF8:
        length, start = first - 0xC0, pos + 1
    else:
        length, start = _long_length(data, pos, first - 0xF7)
    end = start + length
    if end > len(data):
        raise MalformedInputError(f"rlp: list of {length} bytes overruns the input")
    if depth >= MAX_DEPTH:
        raise MalformedInputError(f"rlp: lists nested deeper than {MAX_DEPTH} levels")
    items: list[Item] = []
    while start < end:
        item, start = _decode_at(data, start, depth + 1)
        items.append(item)
    if start != end:
        raise MalformedInputError("rlp: list items overrun the list's declared length")
    return items, end


def _long_length(data: bytes, pos: int, size: int) -> tuple[int, int]:
    start = pos + 1 + size
    if start > len(data):
        raise MalformedInputError("rlp: input ends inside a length prefix")
    raw = data[pos + 1 : start]
    if raw[0] == 0:
        raise MalformedInputError("rlp: length prefix has leading zeros")
    length = int.from_bytes(raw, "big")
    if length < 56:
        raise MalformedInputError("rlp: long form used for a length below 56")
    return length, start


def _take(data: bytes, start: int, length: int) -> bytes:
    end = start + length
    if end > len(data):
        raise MalformedInputError(f"rlp: string of {length} bytes overruns the input")
    return data[start:end]


def decode_int(raw: Item, what: str = "integer", bits: int = 256) -> int:
    """Decode an RLP string as a canonical unsigned integer of at most ``bits`` bits."""
    if not isinstance(raw, bytes):
        raise MalformedInputError(f"rlp: {what} must be a string, got a list")
    if raw[:1] == b"\x00":
        raise MalformedInputError(f"rlp: {what} has leading zero bytes")
    if len(raw) * 8 > bits:
        raise MalformedInputError(f"rlp: {what} exceeds {bits} bits")
    return int.from_bytes(raw, "big")


def decode_bytes(raw: Item, what: str = "string", size: int | None = None) -> bytes:
    """Check that an RLP item is a string (of exactly ``size`` bytes when given)."""
    if not isinstance(raw, bytes):
        raise MalformedInputError(f"rlp: {what} must be a string, got a list")
    if size is not None and len(raw) != size:
        raise MalformedInputError(f"rlp: {what} must be {size} bytes, got {len(raw)}")
    return raw


def decode_list(raw: Item, what: str = "list", length: int | None = None) -> list[Item]:
    """Check that an RLP item is a list (of exactly ``length`` items when given)."""
    if not isinstance(raw, list):
        raise MalformedInputError(f"rlp: {what} must be a list, got a string")
    if length is not None and len(raw) != length:
        raise MalformedInputError(f"rlp: {what} must have {length} items, got {len(raw)}")
    return raw


def decode_stream(data: bytes) -> Iterator[Item]:
    """Decode concatenated RLP items (for example an ``export``-ed ``chain.rlp``)."""
    data = bytes(data)
    pos = 0
    while pos < len(data):
        item, pos = _decode_at(data, pos)
        yield item

"""Simple Serialize (SSZ): encoding, strict decoding and Merkleization.

SSZ is the consensus layer's encoding (consensus-specs ``ssz/simple-serialize.md``). This
module implements the part of it a light client needs, and nothing else:

* **types** are objects that describe a shape -- :data:`uint64`, :data:`boolean`,
  :class:`ByteVector` (:data:`Bytes32`, :data:`Bytes48`, :data:`Bytes96`, ...),
  :class:`ByteList`, :class:`Bitvector`, :class:`Bitlist`, :class:`Vector`, :class:`List` --
  and :class:`Container` subclasses, which are frozen dataclasses whose fields are declared
  with :func:`ssz_field`;
* **values** are plain immutable Python: ``int`` for ``uintN``, ``bool`` for ``boolean``,
  ``bytes`` for byte vectors and lists, ``tuple[bool, ...]`` for bitfields, ``tuple`` for
  vectors and lists (``list`` is accepted on input), a container instance for a container.

Every type offers the same operations: ``encode(value) -> bytes`` ("Serialization"),
``decode(data) -> value`` ("Deserialization"), ``hash_tree_root(value) -> bytes``
("Merkleization"), ``default()`` ("Default values"), and ``from_json``/``to_json`` in the
Beacon-API JSON form (decimal strings for integers, ``0x`` hex for bytes and bitfields).
A container class has them as ``Cls.decode(data)``, ``value.encode()``,
``value.hash_tree_root()`` (computed once, then cached: values are immutable).

Decoding is strict: it accepts exactly the canonical encoding of one value, so any accepted
input re-encodes to itself. A fixed-size value must have exactly its size (a missing or
extra byte is an error); offsets must lie inside the data, never decrease, and the first
must point just past the fixed-size part; lists must fit their limit and divide evenly into
elements; a boolean is 0 or 1; a bitvector's padding bits are zero; a bitlist ends in its
delimiter bit. Every failure is an :class:`SszError` (a
:class:`~node.chain.errors.MalformedInputError`) whose one-line message names the place,
for example ``LightClientUpdate.finality_branch[3]: ...``.

Merkle branches are checked with :func:`is_valid_merkle_branch` (phase0
``beacon-chain.md``) and :func:`is_valid_normalized_merkle_branch` (Electra
``light-client/sync-protocol.md``); :func:`generalized_index` and :func:`merkle_proof`
compute indices and branches ("Generalized Merkle tree index", ``ssz/merkle-proofs.md``).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from itertools import pairwise
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

from node.chain.errors import MalformedInputError

T = TypeVar("T")

BYTES_PER_CHUNK = 32
"""Merkleization works on 32-byte chunks."""

BYTES_PER_LENGTH_OFFSET = 4
"""Offsets of variable-size parts are 4-byte little-endian integers."""

MAX_DEPTH = 64
"""Deepest Merkle tree supported (a limit of up to 2**64 chunks)."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _zero_hashes(depth: int) -> tuple[bytes, ...]:
    hashes = [b"\x00" * BYTES_PER_CHUNK]
    for _ in range(depth):
        hashes.append(_sha256(hashes[-1] + hashes[-1]))
    return tuple(hashes)


ZERO_HASHES: tuple[bytes, ...] = _zero_hashes(MAX_DEPTH)
"""``ZERO_HASHES[d]`` is the root of a tree of ``2**d`` zero chunks."""

_ZERO_CHUNK = ZERO_HASHES[0]


# ---------------------------------------------------------------------------------------
# Errors


class SszError(MalformedInputError):
    """Bytes, JSON or a Python value that is not a valid instance of an SSZ type.

    ``reason`` is what was wrong; ``where`` the path to it (``attested_header.beacon``,
    ``pubkeys[3]``), outermost first.
    """

    def __init__(self, reason: str, *, where: str = "") -> None:
        self.reason = reason
        super().__init__(reason, where=where)

    def within(self, step: str) -> Self:
        """The same error, located one step further out (a field name, ``[i]`` or a type)."""
        inner = self.where
        if inner and not inner.startswith("["):
            inner = "." + inner
        return type(self)(self.reason, where=step + inner)


class SszTypeError(SszError, TypeError):
    """A Python value of the wrong type was given for an SSZ type (a ``str`` for a
    ``uint64``, a minimal-preset committee where a mainnet one belongs)."""


# ---------------------------------------------------------------------------------------
# Merkleization helpers ("Merkleization" in simple-serialize.md)


def ceillog2(x: int) -> int:
    """The smallest ``d`` with ``2**d >= x`` (``x >= 1``)."""
    if x < 1:
        raise ValueError(f"ceillog2 needs a positive integer, got {x}")
    return (x - 1).bit_length()


def floorlog2(x: int) -> int:
    """The largest ``d`` with ``2**d <= x`` (``x >= 1``): the depth of generalized index ``x``."""
    if x < 1:
        raise ValueError(f"floorlog2 needs a positive integer, got {x}")
    return x.bit_length() - 1


def get_subtree_index(gindex: int) -> int:
    """The position of generalized index ``gindex`` among the nodes at its depth."""
    return gindex % (1 << floorlog2(gindex))


def pack(data: bytes) -> list[bytes]:
    """Split serialized basic values into 32-byte chunks, zero-padding the last one."""
    if len(data) % BYTES_PER_CHUNK:
        data += b"\x00" * (BYTES_PER_CHUNK - len(data) % BYTES_PER_CHUNK)
    return [data[i : i + BYTES_PER_CHUNK] for i in range(0, len(data), BYTES_PER_CHUNK)]


def _hash_layer(layer: list[bytes], level: int) -> list[bytes]:
    if len(layer) % 2:
        layer.append(ZERO_HASHES[level])
    joined = b"".join(layer)
    return [_sha256(joined[i : i + 64]) for i in range(0, len(joined), 64)]


def merkleize(chunks: Sequence[bytes], limit: int | None = None) -> bytes:
    """Root of the binary tree over ``chunks`` padded with zero chunks to a power of two
    of ``limit`` leaves (of ``len(chunks)`` leaves when ``limit`` is None).

    Missing subtrees are taken from :data:`ZERO_HASHES`, so a large limit costs one hash
    per level, not one per padding chunk.
    """
    count = len(chunks)
    if limit is None:
        limit = count
    elif count > limit:
        raise SszError(f"{count} chunks exceed the limit of {limit}")
    depth = ceillog2(limit) if limit > 1 else 0
    if depth > MAX_DEPTH:
        raise SszError(f"a limit of {limit} chunks is deeper than {MAX_DEPTH} levels")
    if count == 0:
        return ZERO_HASHES[depth]
    layer = list(chunks)
    for level in range(depth):
        layer = _hash_layer(layer, level)
    return layer[0]


def mix_in_length(root: bytes, length: int) -> bytes:
    """``hash(root + uint256(length))``: the root of a list or bitlist."""
    return _sha256(root + length.to_bytes(32, "little"))


# ---------------------------------------------------------------------------------------
# Shared checks


def _sequence(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise SszTypeError(f"{what} expects a tuple or list, got {type(value).__name__}")
    return value


def _byteslike(value: Any, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    raise SszTypeError(f"{what} expects bytes, got {type(value).__name__}")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _hex_from_json(obj: Any, what: str) -> bytes:
    if not isinstance(obj, str):
        raise SszTypeError(f"{what} expects a 0x-prefixed hex string, got {type(obj).__name__}")
    if not obj.startswith(("0x", "0X")):
        raise SszError(f"{what} expects a 0x-prefixed hex string, got {obj[:20]!r}")
    digits = obj[2:]
    if len(digits) % 2 or not _HEX_DIGITS.issuperset(digits):
        raise SszError(f"{what}: {obj[:20]!r} is not an even number of hex digits")
    return bytes.fromhex(digits)


def _offset_at(buf: bytes, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + BYTES_PER_LENGTH_OFFSET], "little")


def _check_offsets(offsets: Sequence[int], size: int, names: Sequence[str]) -> None:
    """Offsets (relative to the start of the value) must not decrease nor pass the end."""
    previous = 0
    for offset, name in zip(offsets, names, strict=True):
        if offset > size:
            raise SszError(f"offset {offset} points past the end of the data ({size} bytes)",
                           where=name)
        if offset < previous:
            raise SszError(f"offset {offset} is smaller than the previous offset {previous}",
                           where=name)
        previous = offset


def _each(fn: Callable[[Any], T], items: Iterable[Any]) -> list[T]:
    """``[fn(item) for item in items]``, an :class:`SszError` located at its ``[index]``."""
    out = []
    for index, item in enumerate(items):
        try:
            out.append(fn(item))
        except SszError as exc:
            raise exc.within(f"[{index}]") from None
    return out


def _join_with_offsets(fixed: list[bytes | None], variable: list[bytes]) -> bytes:
    """Serialize a fixed-size part (``None`` where an offset goes) followed by the
    variable-size parts ("Serialization", offsets of the variable-size parts)."""
    fixed_len = sum(BYTES_PER_LENGTH_OFFSET if part is None else len(part) for part in fixed)
    offset = fixed_len
    out: list[bytes] = []
    parts = iter(variable)
    for part in fixed:
        if part is None:
            if offset >= 1 << 32:
                raise SszError(f"serialization is longer than 2**32 bytes ({offset})")
            out.append(offset.to_bytes(BYTES_PER_LENGTH_OFFSET, "little"))
            offset += len(next(parts))
        else:
            out.append(part)
    out.extend(variable)
    return b"".join(out)


# ---------------------------------------------------------------------------------------
# Types


class SszType(ABC):
    """An SSZ type: how values of one shape are encoded, decoded and hashed.

    ``fixed_size`` is the encoded length of every value, or ``None`` for a variable-size
    type; ``min_size``/``max_size`` bound the encoded length; ``chunk_count`` is the
    number of leaves of its Merkle tree (before padding).
    """

    name: str
    fixed_size: int | None
    min_size: int
    max_size: int
    chunk_count: int
    is_basic: ClassVar[bool] = False  # uintN and boolean: packed together in vectors/lists
    has_length: ClassVar[bool] = False  # lists and bitlists: the root mixes in the length

    def is_fixed_size(self) -> bool:
        """Whether every value of this type has the same encoded length."""
        return self.fixed_size is not None

    # -- public operations ---------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        """The SSZ serialization of ``value``; raises :class:`SszError` (or
        :class:`SszTypeError`) if it is not a valid value of this type."""
        try:
            return self._encode(value)
        except SszError as exc:
            raise exc.within(self.name) from None

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The value whose canonical encoding is exactly ``data``; raises :class:`SszError`."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SszTypeError(f"decodes bytes, got {type(data).__name__}", where=self.name)
        buf = bytes(data)
        size = len(buf)
        if self.fixed_size is not None:
            if size != self.fixed_size:
                raise SszError(f"expected {self.fixed_size} bytes, got {size}", where=self.name)
        elif size < self.min_size:
            raise SszError(f"expected at least {self.min_size} bytes, got {size}",
                           where=self.name)
        elif size > self.max_size:
            raise SszError(f"{size} bytes exceed the largest encoding ({self.max_size} bytes)",
                           where=self.name)
        try:
            return self._decode(buf, 0, size)
        except SszError as exc:
            raise exc.within(self.name) from None

    def hash_tree_root(self, value: Any) -> bytes:
        """The 32-byte Merkle root of ``value`` ("Merkleization")."""
        try:
            return self._root(value)
        except SszError as exc:
            raise exc.within(self.name) from None

    def from_json(self, obj: Any) -> Any:
        """The value from its Beacon-API JSON form (integers may also be JSON numbers)."""
        try:
            return self._from_json(obj)
        except SszError as exc:
            raise exc.within(self.name) from None

    def to_json(self, value: Any) -> Any:
        """The Beacon-API JSON form of ``value`` (integers as decimal strings)."""
        try:
            return self._to_json(value)
        except SszError as exc:
            raise exc.within(self.name) from None

    @abstractmethod
    def default(self) -> Any:
        """The type's default value (zeros, empty lists)."""

    # -- implementation (``_decode`` gets the exact span of its value; a fixed-size type
    #    may rely on the caller for its length, a variable-size one checks it itself) ------

    @abstractmethod
    def _encode(self, value: Any) -> bytes: ...

    @abstractmethod
    def _decode(self, buf: bytes, start: int, end: int) -> Any: ...

    @abstractmethod
    def _from_json(self, obj: Any) -> Any: ...

    @abstractmethod
    def _to_json(self, value: Any) -> Any: ...

    def _chunks(self, value: Any) -> list[bytes]:
        """The leaves of the value's Merkle tree (the data part, for a list)."""
        return pack(self._encode(value))

    def _root(self, value: Any) -> bytes:
        return merkleize(self._chunks(value), self.chunk_count)

    def _child(self, value: Any, index: int) -> tuple[Any, SszType]:
        """The value and type at chunk ``index``, for walking a generalized index."""
        raise SszError(f"{self.name} has no composite parts to descend into")

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        """Chunk position and type of ``step`` (field name or element index)."""
        raise SszError(f"{self.name} has no parts (asked for {step!r})")

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SszType) and type(other) is type(self)
                and other._key() == self._key())

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def _key(self) -> tuple[Any, ...]:
        return (self.name,)


class Uint(SszType):
    """``uintN``: an unsigned integer of ``bits`` bits, little-endian."""

    is_basic = True

    def __init__(self, bits: int) -> None:
        if bits not in (8, 16, 32, 64, 128, 256):
            raise ValueError(f"no uint{bits} in SSZ")
        self.bits = bits
        self.name = f"uint{bits}"
        self.fixed_size = self.min_size = self.max_size = bits // 8
        self.chunk_count = 1

    def _check(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SszTypeError(f"{self.name} expects an int, got {type(value).__name__}")
        if not 0 <= value < 1 << self.bits:
            raise SszError(f"{value} is out of range for {self.name}")
        return value

    def _encode(self, value: Any) -> bytes:
        return self._check(value).to_bytes(self.bits // 8, "little")

    def _decode(self, buf: bytes, start: int, end: int) -> int:
        return int.from_bytes(buf[start:end], "little")

    def _root(self, value: Any) -> bytes:
        return self._encode(value).ljust(BYTES_PER_CHUNK, b"\x00")

    def _from_json(self, obj: Any) -> int:
        if isinstance(obj, str):
            if not (obj.isascii() and obj.isdigit()) or len(obj) > 78:
                raise SszError(f"{self.name} expects a decimal string, got {obj[:20]!r}")
            obj = int(obj)
        return self._check(obj)

    def _to_json(self, value: int) -> str:
        return str(self._check(value))

    def default(self) -> int:
        return 0


class Boolean(SszType):
    """``boolean``: one byte, 0x00 or 0x01."""

    is_basic = True
    name = "boolean"
    fixed_size = min_size = max_size = 1
    chunk_count = 1

    def _check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise SszTypeError(f"boolean expects a bool, got {type(value).__name__}")
        return value

    def _encode(self, value: Any) -> bytes:
        return b"\x01" if self._check(value) else b"\x00"

    def _decode(self, buf: bytes, start: int, end: int) -> bool:
        byte = buf[start]
        if byte > 1:
            raise SszError(f"boolean byte 0x{byte:02x} is neither 0x00 nor 0x01")
        return byte == 1

    def _root(self, value: Any) -> bytes:
        return self._encode(value).ljust(BYTES_PER_CHUNK, b"\x00")

    def _from_json(self, obj: Any) -> bool:
        return self._check(obj)

    def _to_json(self, value: bool) -> bool:
        return self._check(value)

    def default(self) -> bool:
        return False


_BYTES_ALIASES = frozenset((1, 4, 8, 20, 32, 48, 96))


class ByteVector(SszType):
    """``ByteVector[N]`` (``BytesN``): exactly ``length`` bytes."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError("a ByteVector holds at least one byte")
        self.length = length
        self.name = f"Bytes{length}" if length in _BYTES_ALIASES else f"ByteVector[{length}]"
        self.fixed_size = self.min_size = self.max_size = length
        self.chunk_count = (length + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
        self._pad = b"\x00" * (self.chunk_count * BYTES_PER_CHUNK - length)

    def _check(self, value: Any) -> bytes:
        data = _byteslike(value, self.name)
        if len(data) != self.length:
            raise SszError(f"{self.name} expects {self.length} bytes, got {len(data)}")
        return data

    def _encode(self, value: Any) -> bytes:
        return self._check(value)

    def _decode(self, buf: bytes, start: int, end: int) -> bytes:
        return buf[start:end]

    def _root(self, value: Any) -> bytes:
        data = self._check(value)
        if self.chunk_count == 1:
            return data + self._pad
        if self.chunk_count == 2:  # BLS keys: one hash, no chunk list
            return _sha256(data + self._pad)
        return merkleize(pack(data), self.chunk_count)

    def _from_json(self, obj: Any) -> bytes:
        return self._check(_hex_from_json(obj, self.name))

    def _to_json(self, value: bytes) -> str:
        return "0x" + self._check(value).hex()

    def default(self) -> bytes:
        return b"\x00" * self.length

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        return _packed_position(self, step, self.length, 1)

    def _key(self) -> tuple[Any, ...]:
        return (self.length,)


class ByteList(SszType):
    """``ByteList[N]``: at most ``limit`` bytes (``extra_data``, transactions)."""

    has_length = True

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.name = f"ByteList[{limit}]"
        self.fixed_size = None
        self.min_size = 0
        self.max_size = limit
        self.chunk_count = (limit + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK

    def _check(self, value: Any) -> bytes:
        data = _byteslike(value, self.name)
        if len(data) > self.limit:
            raise SszError(f"{len(data)} bytes exceed the limit of {self.limit}")
        return data

    def _encode(self, value: Any) -> bytes:
        return self._check(value)

    def _decode(self, buf: bytes, start: int, end: int) -> bytes:
        if end - start > self.limit:
            raise SszError(f"{end - start} bytes exceed the limit of {self.limit}")
        return buf[start:end]

    def _root(self, value: Any) -> bytes:
        data = self._check(value)
        return mix_in_length(merkleize(pack(data), self.chunk_count), len(data))

    def _from_json(self, obj: Any) -> bytes:
        return self._check(_hex_from_json(obj, self.name))

    def _to_json(self, value: bytes) -> str:
        return "0x" + self._check(value).hex()

    def default(self) -> bytes:
        return b""

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        return _packed_position(self, step, self.limit, 1)

    def _key(self) -> tuple[Any, ...]:
        return (self.limit,)


def _bits_check(value: Any, what: str) -> Sequence[bool]:
    bits = _sequence(value, what)
    for bit in bits:
        if not isinstance(bit, bool):
            raise SszTypeError(f"{what} expects bools, got {type(bit).__name__}")
    return bits


def _bits_to_int(bits: Sequence[bool]) -> int:
    """Bit ``i`` of the result is ``bits[i]`` (SSZ bitfields are little-endian)."""
    return int("".join("1" if bit else "0" for bit in reversed(bits)) or "0", 2)


def _int_to_bits(number: int, count: int) -> tuple[bool, ...]:
    text = bin(number)[2:].zfill(count)[::-1]
    return tuple(char == "1" for char in text[:count])


class Bitvector(SszType):
    """``Bitvector[N]``: exactly ``length`` bits, packed little-endian, padding bits zero."""

    def __init__(self, length: int) -> None:
        if length < 1:
            raise ValueError("a Bitvector holds at least one bit")
        self.length = length
        self.name = f"Bitvector[{length}]"
        self.fixed_size = self.min_size = self.max_size = (length + 7) // 8
        self.chunk_count = (length + 255) // 256

    def _check(self, value: Any) -> Sequence[bool]:
        bits = _bits_check(value, self.name)
        if len(bits) != self.length:
            raise SszError(f"{self.name} expects {self.length} bits, got {len(bits)}")
        return bits

    def _encode(self, value: Any) -> bytes:
        return _bits_to_int(self._check(value)).to_bytes(self.fixed_size or 0, "little")

    def _decode(self, buf: bytes, start: int, end: int) -> tuple[bool, ...]:
        number = int.from_bytes(buf[start:end], "little")
        if number >> self.length:
            raise SszError(f"{self.name} has non-zero padding bits above bit {self.length - 1}")
        return _int_to_bits(number, self.length)

    def _from_json(self, obj: Any) -> tuple[bool, ...]:
        data = _hex_from_json(obj, self.name)
        if len(data) != self.fixed_size:
            raise SszError(f"{self.name} expects {self.fixed_size} bytes, got {len(data)}")
        return self._decode(data, 0, len(data))

    def _to_json(self, value: Sequence[bool]) -> str:
        return "0x" + self._encode(value).hex()

    def default(self) -> tuple[bool, ...]:
        return (False,) * self.length

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        return _packed_position(self, step, self.length, 0)

    def _key(self) -> tuple[Any, ...]:
        return (self.length,)


class Bitlist(SszType):
    """``Bitlist[N]``: up to ``limit`` bits, followed by a 1 bit that marks the end."""

    has_length = True

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.name = f"Bitlist[{limit}]"
        self.fixed_size = None
        self.min_size = 1
        self.max_size = limit // 8 + 1
        self.chunk_count = (limit + 255) // 256

    def _check(self, value: Any) -> Sequence[bool]:
        bits = _bits_check(value, self.name)
        if len(bits) > self.limit:
            raise SszError(f"{len(bits)} bits exceed the limit of {self.limit}")
        return bits

    def _encode(self, value: Any) -> bytes:
        bits = self._check(value)
        number = _bits_to_int(bits) | (1 << len(bits))
        return number.to_bytes(len(bits) // 8 + 1, "little")

    def _decode(self, buf: bytes, start: int, end: int) -> tuple[bool, ...]:
        if end == start:
            raise SszError("empty bitlist: the delimiter bit is missing")
        if buf[end - 1] == 0:
            raise SszError("bitlist's last byte is zero: the delimiter bit is missing")
        number = int.from_bytes(buf[start:end], "little")
        count = number.bit_length() - 1
        if count > self.limit:
            raise SszError(f"{count} bits exceed the limit of {self.limit}")
        return _int_to_bits(number ^ (1 << count), count)

    def _chunks(self, value: Any) -> list[bytes]:
        bits = self._check(value)
        if not bits:
            return []
        return pack(_bits_to_int(bits).to_bytes((len(bits) + 7) // 8, "little"))

    def _root(self, value: Any) -> bytes:
        return mix_in_length(merkleize(self._chunks(value), self.chunk_count), len(value))

    def _from_json(self, obj: Any) -> tuple[bool, ...]:
        data = _hex_from_json(obj, self.name)
        if len(data) > self.max_size:
            raise SszError(f"{len(data)} bytes exceed the largest {self.name}")
        return self._decode(data, 0, len(data))

    def _to_json(self, value: Sequence[bool]) -> str:
        return "0x" + self._encode(value).hex()

    def default(self) -> tuple[bool, ...]:
        return ()

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        return _packed_position(self, step, self.limit, 0)

    def _key(self) -> tuple[Any, ...]:
        return (self.limit,)


def _packed_position(typ: SszType, step: str | int, length: int,
                     size: int) -> tuple[int, SszType | None]:
    """Chunk of element ``step`` of a packed sequence (``size`` 0 means bits)."""
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < length:
        raise SszError(f"{typ.name} has no element {step!r}")
    return (step // 256 if size == 0 else step * size // BYTES_PER_CHUNK), None


class _Sequence(SszType):
    """Common part of :class:`Vector` and :class:`List`: elements of one type."""

    elem: SszType
    count_limit: int

    def _check(self, value: Any) -> Sequence[Any]:
        return _sequence(value, self.name)

    def _encode(self, value: Any) -> bytes:
        parts = _each(self.elem._encode, self._check(value))
        if self.elem.fixed_size is not None:
            return b"".join(parts)
        return _join_with_offsets([None] * len(parts), parts)

    def _decode_items(self, buf: bytes, start: int, end: int, count: int) -> tuple[Any, ...]:
        elem = self.elem
        size = elem.fixed_size
        if size is not None and isinstance(elem, (Uint, ByteVector)):  # cannot fail
            decode = elem._decode
            return tuple(decode(buf, pos, pos + size) for pos in range(start, end, size))
        if size is not None:
            bounds = list(range(0, end - start + 1, size))
        elif count == 0:
            return ()
        else:
            offsets = [_offset_at(buf, start + 4 * i) for i in range(count)]
            _check_offsets(offsets, end - start, [f"[{i}]" for i in range(count)])
            bounds = [*offsets, end - start]
        spans = pairwise(bounds)
        return tuple(_each(lambda span: elem._decode(buf, start + span[0], start + span[1]), spans))

    def _first_offset_count(self, buf: bytes, start: int, end: int) -> int:
        """Number of variable-size elements, from the first offset."""
        size = end - start
        if size < BYTES_PER_LENGTH_OFFSET:
            raise SszError(f"expected at least {BYTES_PER_LENGTH_OFFSET} bytes, got {size}")
        first = _offset_at(buf, start)
        if first == 0 or first % BYTES_PER_LENGTH_OFFSET:
            raise SszError(f"first offset {first} is not a positive multiple of 4")
        if first > size:
            raise SszError(f"first offset {first} points past the end of the data ({size} bytes)")
        return first // BYTES_PER_LENGTH_OFFSET

    def _chunks(self, value: Any) -> list[bytes]:
        items = self._check(value)
        if self.elem.is_basic:
            return pack(self._encode(items))
        return _each(self.elem._root, items)

    def _from_json(self, obj: Any) -> tuple[Any, ...]:
        if not isinstance(obj, list):
            raise SszTypeError(f"{self.name} expects a JSON array, got {type(obj).__name__}")
        self._check_count(len(obj))
        return tuple(_each(self.elem._from_json, obj))

    def _to_json(self, value: Sequence[Any]) -> list[Any]:
        return _each(self.elem._to_json, self._check(value))

    @abstractmethod
    def _check_count(self, count: int) -> None: ...

    def _child(self, value: Any, index: int) -> tuple[Any, SszType]:
        if self.elem.is_basic:
            raise SszError(f"{self.name} packs basic values: no part to descend into")
        if index >= len(value):
            raise SszError(f"{self.name} has no element {index} (it has {len(value)})")
        return value[index], self.elem

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        if self.elem.is_basic:
            return _packed_position(self, step, self.count_limit, self.elem.fixed_size or 0)
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < self.count_limit:
            raise SszError(f"{self.name} has no element {step!r}")
        return step, self.elem

    def _key(self) -> tuple[Any, ...]:
        return (self.elem, self.count_limit)


def as_type(typ: SszType | type[Container]) -> SszType:
    """The :class:`SszType` of ``typ`` (a type, or a concrete :class:`Container` class)."""
    if isinstance(typ, SszType):
        return typ
    if isinstance(typ, type) and issubclass(typ, Container):
        return typ._schema()
    raise TypeError(f"not an SSZ type: {typ!r}")


class Vector(_Sequence):
    """``Vector[T, N]``: exactly ``length`` elements of type ``elem``."""

    def __init__(self, elem: SszType | type[Container], length: int) -> None:
        if length < 1:
            raise ValueError("a Vector holds at least one element")
        self.elem = as_type(elem)
        self.length = self.count_limit = length
        self.name = f"Vector[{self.elem.name}, {length}]"
        esize = self.elem.fixed_size
        if esize is not None:
            self.fixed_size = self.min_size = self.max_size = esize * length
        else:
            self.fixed_size = None
            self.min_size = length * (BYTES_PER_LENGTH_OFFSET + self.elem.min_size)
            self.max_size = length * (BYTES_PER_LENGTH_OFFSET + self.elem.max_size)
        if self.elem.is_basic:
            self.chunk_count = (length * (esize or 0) + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
        else:
            self.chunk_count = length

    def _check(self, value: Any) -> Sequence[Any]:
        items = _sequence(value, self.name)
        self._check_count(len(items))
        return items

    def _check_count(self, count: int) -> None:
        if count != self.length:
            raise SszError(f"{self.name} expects {self.length} elements, got {count}")

    def _decode(self, buf: bytes, start: int, end: int) -> tuple[Any, ...]:
        if self.fixed_size is None:
            count = self._first_offset_count(buf, start, end)
            if count != self.length:
                raise SszError(f"first offset implies {count} elements, expected {self.length}")
        return self._decode_items(buf, start, end, self.length)

    def default(self) -> tuple[Any, ...]:
        return tuple(self.elem.default() for _ in range(self.length))


class List(_Sequence):
    """``List[T, N]``: up to ``limit`` elements of type ``elem``."""

    has_length = True

    def __init__(self, elem: SszType | type[Container], limit: int) -> None:
        self.elem = as_type(elem)
        self.limit = self.count_limit = limit
        self.name = f"List[{self.elem.name}, {limit}]"
        self.fixed_size = None
        self.min_size = 0
        esize = self.elem.fixed_size
        if esize is not None:
            self.max_size = esize * limit
        else:
            self.max_size = limit * (BYTES_PER_LENGTH_OFFSET + self.elem.max_size)
        if self.elem.is_basic:
            self.chunk_count = (limit * (esize or 0) + BYTES_PER_CHUNK - 1) // BYTES_PER_CHUNK
        else:
            self.chunk_count = limit

    def _check(self, value: Any) -> Sequence[Any]:
        items = _sequence(value, self.name)
        self._check_count(len(items))
        return items

    def _check_count(self, count: int) -> None:
        if count > self.limit:
            raise SszError(f"{count} elements exceed the limit of {self.limit}")

    def _decode(self, buf: bytes, start: int, end: int) -> tuple[Any, ...]:
        size = end - start
        esize = self.elem.fixed_size
        if esize is not None:
            if size % esize:
                raise SszError(f"{size} bytes are not a whole number of {esize}-byte elements")
            count = size // esize
        elif size == 0:
            count = 0
        else:
            count = self._first_offset_count(buf, start, end)
        self._check_count(count)
        return self._decode_items(buf, start, end, count)

    def _root(self, value: Any) -> bytes:
        return mix_in_length(merkleize(self._chunks(value), self.chunk_count), len(value))

    def default(self) -> tuple[Any, ...]:
        return ()


boolean = Boolean()
uint8 = Uint(8)
uint16 = Uint(16)
uint32 = Uint(32)
uint64 = Uint(64)
uint128 = Uint(128)
uint256 = Uint(256)
Bytes1 = ByteVector(1)
Bytes4 = ByteVector(4)
Bytes8 = ByteVector(8)
Bytes20 = ByteVector(20)
Bytes32 = ByteVector(32)
Bytes48 = ByteVector(48)
Bytes96 = ByteVector(96)


# ---------------------------------------------------------------------------------------
# Containers


def ssz_field(typ: SszType | type[Container]) -> Any:
    """Declare a container field of SSZ type ``typ``: ``slot: int = ssz_field(uint64)``."""
    return field(metadata={"ssz": typ})


class ContainerType(SszType):
    """The SSZ type of a :class:`Container` class: its fields in declaration order."""

    def __init__(self, cls: type[Container], schema: Sequence[tuple[str, SszType]]) -> None:
        if not schema:
            raise TypeError(f"{cls.__name__}: a container needs at least one field")
        self.cls = cls
        self.fields: tuple[tuple[str, SszType], ...] = tuple(schema)
        self.names = tuple(name for name, _ in schema)
        self.fixed_len = sum(BYTES_PER_LENGTH_OFFSET if t.fixed_size is None else t.fixed_size
                             for _, t in schema)
        self._variable = tuple(i for i, (_, t) in enumerate(schema) if t.fixed_size is None)
        variable = [schema[i][1] for i in self._variable]
        self.fixed_size = None if variable else self.fixed_len
        self.min_size = self.fixed_len + sum(t.min_size for t in variable)
        self.max_size = self.fixed_len + sum(t.max_size for t in variable)
        self.chunk_count = len(schema)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.cls.__name__

    def _check(self, value: Any) -> Container:
        if type(value) is not self.cls:
            raise SszTypeError(f"expected {self.cls.__qualname__}, got {type(value).__qualname__}")
        return value

    def _encode(self, value: Any) -> bytes:
        self._check(value)
        parts = self._each_field(lambda name, typ: typ._encode(getattr(value, name)))
        if self.fixed_size is not None:
            return b"".join(parts)
        fixed = [None if typ.fixed_size is None else part
                 for part, (_, typ) in zip(parts, self.fields, strict=True)]
        variable = [parts[slot] for slot in self._variable]
        return _join_with_offsets(fixed, variable)

    def _each_field(self, fn: Callable[[str, SszType], T]) -> list[T]:
        """``fn(name, type)`` for each field, an :class:`SszError` located at the field."""
        out = []
        for name, typ in self.fields:
            try:
                out.append(fn(name, typ))
            except SszError as exc:
                raise exc.within(name) from None
        return out

    def _decode(self, buf: bytes, start: int, end: int) -> Container:
        size = end - start
        if self.fixed_size is None and size < self.fixed_len:
            raise SszError(f"expected at least {self.fixed_len} bytes, got {size}")
        values: list[Any] = []
        offsets: list[int] = []
        pos = start
        for name, typ in self.fields:
            fsize = typ.fixed_size
            if fsize is None:
                offsets.append(_offset_at(buf, pos))
                values.append(None)
                pos += BYTES_PER_LENGTH_OFFSET
                continue
            try:
                values.append(typ._decode(buf, pos, pos + fsize))
            except SszError as exc:
                raise exc.within(name) from None
            pos += fsize
        if offsets:
            if offsets[0] != self.fixed_len:
                raise SszError(f"first offset {offsets[0]} does not point just past the "
                               f"fixed-size part ({self.fixed_len} bytes)",
                               where=self.names[self._variable[0]])
            _check_offsets(offsets, size, [self.names[slot] for slot in self._variable])
            bounds = [*offsets, size]
            for i, slot in enumerate(self._variable):
                name, typ = self.fields[slot]
                try:
                    values[slot] = typ._decode(buf, start + bounds[i], start + bounds[i + 1])
                except SszError as exc:
                    raise exc.within(name) from None
        return self.cls(*values)

    def _chunks(self, value: Any) -> list[bytes]:
        self._check(value)
        return self._each_field(lambda name, typ: typ._root(getattr(value, name)))

    def _root(self, value: Any) -> bytes:
        self._check(value)
        root = value.__dict__.get("_ssz_root")
        if root is None:  # values are immutable: compute once
            root = merkleize(self._chunks(value), self.chunk_count)
            value.__dict__["_ssz_root"] = root
        return root

    def _from_json(self, obj: Any) -> Container:
        if not isinstance(obj, Mapping):
            raise SszTypeError(f"{self.name} expects a JSON object, got {type(obj).__name__}")
        missing = [name for name in self.names if name not in obj]
        if missing:
            raise SszError(f"missing field(s): {', '.join(missing)}")
        unknown = [str(key) for key in obj if key not in self.names]
        if unknown:
            raise SszError(f"unknown field(s): {', '.join(unknown)}")
        return self.cls(*self._each_field(lambda name, typ: typ._from_json(obj[name])))

    def _to_json(self, value: Any) -> dict[str, Any]:
        self._check(value)
        return dict(zip(self.names, self._each_field(
            lambda name, typ: typ._to_json(getattr(value, name))), strict=True))

    def default(self) -> Container:
        return self.cls(*(typ.default() for _, typ in self.fields))

    def _child(self, value: Any, index: int) -> tuple[Any, SszType]:
        if index >= len(self.fields):
            raise SszError(f"{self.name} has no field {index} (it has {len(self.fields)})")
        name, typ = self.fields[index]
        return getattr(value, name), typ

    def _child_type(self, step: str | int) -> tuple[int, SszType | None]:
        if step not in self.names:
            raise SszError(f"{self.name} has no field {step!r}")
        index = self.names.index(step)  # type: ignore[arg-type]
        return index, self.fields[index][1]

    def _key(self) -> tuple[Any, ...]:
        return (self.cls,)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(item) for item in value) if type(value) is list else value


@dataclass_transform(frozen_default=True, field_specifiers=(ssz_field,))
class Container:
    """Base of SSZ containers: subclasses are frozen dataclasses (made so automatically)
    whose fields are declared with :func:`ssz_field`, in the specification's order::

        class Checkpoint(Container):
            epoch: int = ssz_field(uint64)
            root: bytes = ssz_field(Bytes32)

    ``class X(Container, abstract=True)`` declares a family of containers without fixing
    every field's SSZ type (for example a light-client update, whose committee size
    depends on the preset): its concrete subclasses redeclare the fields with their types.
    An abstract container can be used in annotations and ``isinstance`` but not built.

    Fields are not checked when a container is built, but whenever it is encoded or hashed
    (so a decoded value is not checked twice); a ``list`` given for a sequence is stored
    as a ``tuple``.
    """

    ssz_type: ClassVar[ContainerType]
    _ssz_abstract: ClassVar[bool] = True

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)
        cls._ssz_abstract = abstract
        if abstract:
            return
        schema = []
        for spec in fields(cls):  # type: ignore[arg-type]
            typ = spec.metadata.get("ssz")
            if typ is None:
                raise TypeError(f"{cls.__name__}.{spec.name} has no SSZ type: "
                                "declare it with ssz_field(...)")
            schema.append((spec.name, as_type(typ)))
        cls.ssz_type = ContainerType(cls, schema)

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        if cls._ssz_abstract:
            raise TypeError(f"{cls.__qualname__} is abstract: use one of its concrete types")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        # Sequences are stored as tuples, so values stay immutable (and hashable) and the
        # cached root stays right; decoded values already are.
        for name, value in self.__dict__.items():
            if type(value) is list:
                object.__setattr__(self, name, _frozen(value))

    @classmethod
    def _schema(cls) -> ContainerType:
        if cls._ssz_abstract:
            raise TypeError(f"{cls.__qualname__} is abstract: it has no SSZ type")
        return cls.ssz_type

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        """Decode exactly one canonical encoding of this container (strict)."""
        return cls._schema().decode(data)  # type: ignore[no-any-return]

    @classmethod
    def default(cls) -> Self:
        """The container with every field at its default value."""
        return cls._schema().default()  # type: ignore[return-value]

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """Build from the Beacon-API JSON object (exactly the specification's field names)."""
        return cls._schema().from_json(obj)  # type: ignore[no-any-return]

    def encode(self) -> bytes:
        """The SSZ serialization."""
        return self._schema().encode(self)

    def to_json(self) -> dict[str, Any]:
        """The Beacon-API JSON object (integers as decimal strings, bytes as 0x hex)."""
        return self._schema().to_json(self)

    def hash_tree_root(self) -> bytes:
        """The 32-byte Merkle root, computed once and then cached."""
        return self._schema().hash_tree_root(self)


def hash_tree_root(value: Any, typ: SszType | type[Container] | None = None) -> bytes:
    """``hash_tree_root(value)`` of a container, or of any value given its ``typ``."""
    if typ is None:
        if not isinstance(value, Container):
            raise SszTypeError(f"the SSZ type of a {type(value).__name__} must be given")
        return value.hash_tree_root()
    return as_type(typ).hash_tree_root(value)


# ---------------------------------------------------------------------------------------
# Merkle branches and generalized indices (ssz/merkle-proofs.md; phase0 beacon-chain.md)


def _is_chunk(node: Any) -> bool:
    return isinstance(node, bytes) and len(node) == BYTES_PER_CHUNK


def is_valid_merkle_branch(leaf: bytes, branch: Sequence[bytes], depth: int, index: int,
                           root: bytes) -> bool:
    """Whether ``branch`` proves ``leaf`` at position ``index`` of a tree of ``depth``
    levels whose root is ``root`` (phase0 ``beacon-chain.md``, ``is_valid_merkle_branch``).

    ``branch[0]`` is the leaf's sibling, ``branch[-1]`` a child of the root. Stricter than
    the specification: the branch must have exactly ``depth`` nodes, every node must be 32
    bytes and ``index`` must lie inside the tree; anything else is simply not valid.
    """
    if depth < 0 or len(branch) != depth or not 0 <= index < 1 << depth:
        return False
    if not (_is_chunk(leaf) and _is_chunk(root) and all(_is_chunk(node) for node in branch)):
        return False
    value = leaf
    for node in branch:
        value = _sha256(node + value) if index & 1 else _sha256(value + node)
        index >>= 1
    return value == root


def is_valid_normalized_merkle_branch(leaf: bytes, branch: Sequence[bytes], gindex: int,
                                      root: bytes) -> bool:
    """Whether ``branch`` proves ``leaf`` at generalized index ``gindex`` under ``root``,
    where ``branch`` may be longer than the depth of ``gindex`` as long as its extra
    leading nodes are zero (Electra ``light-client/sync-protocol.md``,
    ``is_valid_normalized_merkle_branch``): a pre-Electra branch normalized to Electra's
    deeper state tree."""
    depth = floorlog2(gindex)
    extra = len(branch) - depth
    if extra < 0:
        return False
    if any(node != _ZERO_CHUNK for node in branch[:extra]):
        return False
    return is_valid_merkle_branch(leaf, branch[extra:], depth, get_subtree_index(gindex), root)


def normalize_merkle_branch(branch: Sequence[bytes], gindex: int) -> tuple[bytes, ...]:
    """Pad ``branch`` with leading zero nodes to the depth of ``gindex`` (Electra
    ``light-client/fork.md``, ``normalize_merkle_branch``)."""
    depth = floorlog2(gindex)
    if len(branch) > depth:
        raise SszError(f"a branch of {len(branch)} nodes is deeper than gindex {gindex} "
                       f"(depth {depth})")
    return (_ZERO_CHUNK,) * (depth - len(branch)) + tuple(branch)


def generalized_index(typ: SszType | type[Container], *path: str | int) -> int:
    """The generalized index of the node reached from the root of ``typ`` by ``path``
    (field names and element indices; ``"__len__"`` for a list's length), as
    ``get_generalized_index`` in ``ssz/merkle-proofs.md``."""
    current: SszType | None = as_type(typ)
    gindex = 1
    for step in path:
        if current is None:
            raise SszError(f"path {path!r} descends below a leaf")
        if step == "__len__":
            if not current.has_length:
                raise SszError(f"{current.name} has no length node")
            gindex = gindex * 2 + 1
            current = None
            continue
        position, child = current._child_type(step)
        if current.has_length:
            gindex *= 2
        depth = ceillog2(current.chunk_count) if current.chunk_count > 1 else 0
        gindex = (gindex << depth) + position
        current = child
    return gindex


def _tree_branch(chunks: list[bytes], depth: int, index: int, height: int) -> list[bytes]:
    """Siblings, bottom-up, of node ``index`` at ``height`` levels above the leaves of a
    tree of ``2**depth`` leaves (missing leaves are zero) up to its root."""
    layer = list(chunks)
    branch = []
    for level in range(depth):
        if level >= height:
            sibling = (index >> (level - height)) ^ 1
            branch.append(layer[sibling] if sibling < len(layer) else ZERO_HASHES[level])
        if level + 1 < depth:
            layer = _hash_layer(layer, level) if layer else []
    return branch


def merkle_proof(value: Any, gindex: int,
                 typ: SszType | type[Container] | None = None) -> tuple[bytes, ...]:
    """The Merkle branch of the node at ``gindex`` in ``value``'s tree, leaf side first,
    as :func:`is_valid_merkle_branch` takes it (``depth = floorlog2(gindex)``,
    ``index = get_subtree_index(gindex)``). ``typ`` defaults to the container's own type."""
    if typ is None:
        if not isinstance(value, Container):
            raise SszTypeError(f"the SSZ type of a {type(value).__name__} must be given")
        current: SszType = value._schema()
    else:
        current = as_type(typ)
    if not isinstance(gindex, int) or gindex < 1:
        raise SszError(f"generalized index must be a positive integer, got {gindex!r}")
    bits = bin(gindex)[3:]  # the path below the root, top-down
    segments: list[list[bytes]] = []  # outermost first, each bottom-up
    while bits:
        if current.is_basic:
            raise SszError(f"gindex {gindex} descends below the leaf {current.name}")
        chunks = current._chunks(value)
        if current.has_length:
            bit, bits = bits[0], bits[1:]
            if bit == "1":
                if bits:
                    raise SszError(f"gindex {gindex} descends below a list's length")
                segments.append([merkleize(chunks, current.chunk_count)])
                break
            segments.append([len(value).to_bytes(32, "little")])
        depth = ceillog2(current.chunk_count) if current.chunk_count > 1 else 0
        taken = min(depth, len(bits))
        index = int(bits[:taken], 2) if taken else 0
        bits = bits[taken:]
        segments.append(_tree_branch(chunks, depth, index, depth - taken))
        if bits:
            value, current = current._child(value, index)
    return tuple(node for segment in reversed(segments) for node in segment)


__all__ = [
    "BYTES_PER_CHUNK",
    "BYTES_PER_LENGTH_OFFSET",
    "ZERO_HASHES",
    "Bitlist",
    "Bitvector",
    "Boolean",
    "ByteList",
    "ByteVector",
    "Bytes1",
    "Bytes4",
    "Bytes8",
    "Bytes20",
    "Bytes32",
    "Bytes48",
    "Bytes96",
    "Container",
    "ContainerType",
    "List",
    "SszError",
    "SszType",
    "SszTypeError",
    "Uint",
    "Vector",
    "as_type",
    "boolean",
    "ceillog2",
    "floorlog2",
    "generalized_index",
    "get_subtree_index",
    "hash_tree_root",
    "is_valid_merkle_branch",
    "is_valid_normalized_merkle_branch",
    "merkle_proof",
    "merkleize",
    "mix_in_length",
    "normalize_merkle_branch",
    "pack",
    "ssz_field",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "uint128",
    "uint256",
]

"""Merkle-Patricia trie roots (Yellow Paper, appendix D; execution-specs ``trie.py``).

The trie maps byte keys to non-empty byte values. Keys are walked as nibbles
(half-bytes). A node is one of

* a *leaf* ``[hp(rest of key, leaf=True), value]``,
* an *extension* ``[hp(shared nibbles, leaf=False), child]``,
* a *branch* ``[child_0 .. child_15, value]``,

and a parent refers to a child by the child's RLP itself when that is shorter than
32 bytes, else by its keccak256. The root is always keccak256(rlp(root node)). This
module builds roots (for transactions, receipts and withdrawals, and to cross-check
proofs); :mod:`node.chain.proof` walks proofs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from node.chain import rlp
from node.chain.errors import MalformedInputError
from node.chain.hashing import keccak256

EMPTY_TRIE_ROOT = keccak256(rlp.encode(b""))
"""keccak256(rlp(b"")) = 0x56e81f...b421: the root of an empty trie."""


def nibbles(key: bytes) -> bytes:
    """Split ``key`` into its nibbles, high nibble first (one nibble per output byte)."""
    out = bytearray(2 * len(key))
    out[0::2] = bytes(b >> 4 for b in key)
    out[1::2] = bytes(b & 0x0F for b in key)
    return bytes(out)


def hex_prefix(path: bytes, is_leaf: bool) -> bytes:
    """Hex-prefix encode a nibble path (Yellow Paper, appendix C): the first nibble holds
    the leaf flag (2) and the odd-length flag (1)."""
    flag = 2 if is_leaf else 0
    if len(path) % 2:
        packed = bytes([(flag + 1) << 4 | path[0]])
        rest = path[1:]
    else:
        packed = bytes([flag << 4])
        rest = path
    return packed + bytes(rest[i] << 4 | rest[i + 1] for i in range(0, len(rest), 2))


def decode_hex_prefix(encoded: bytes) -> tuple[bytes, bool]:
    """Invert :func:`hex_prefix`: return (nibble path, is_leaf); reject bad flags."""
    if not encoded:
        raise MalformedInputError("trie: empty hex-prefix path")
    flag = encoded[0] >> 4
    if flag > 3:
        raise MalformedInputError(f"trie: bad hex-prefix flag {flag}")
    if not flag & 1 and encoded[0] & 0x0F:
        raise MalformedInputError("trie: even hex-prefix path with non-zero padding nibble")
    path = nibbles(encoded)[1 if flag & 1 else 2 :]
    return path, bool(flag & 2)


def _reference(node: rlp.Item) -> rlp.Item:
    """How a parent refers to ``node``: inline when its RLP is < 32 bytes, else its hash."""
    encoded = rlp.encode(node)
    return node if len(encoded) < 32 else keccak256(encoded)


def _build(items: list[tuple[bytes, bytes]], level: int) -> rlp.Item:
    """The node holding ``items`` (sorted (nibble key, value) pairs) below ``level``."""
    if len(items) == 1:
        key, value = items[0]
        return [hex_prefix(key[level:], True), value]
    first, last = items[0][0], items[-1][0]  # sorted: the common prefix of all is theirs
    end = level
    limit = min(len(first), len(last))
    while end < limit and first[end] == last[end]:
        end += 1
    if end > level:
        return [hex_prefix(first[level:end], False), _reference(_build(items, end))]
    branch: list[rlp.Item] = [b""] * 17
    start = 0
    if len(items[0][0]) == level:  # a key that ends here is the branch's own value
        branch[16] = items[0][1]
        start = 1
    i = start
    while i < len(items):
        nibble = items[i][0][level]
        j = i
        while j < len(items) and items[j][0][level] == nibble:
            j += 1
        branch[nibble] = _reference(_build(items[i:j], level + 1))
        i = j
    return branch


def trie_root(mapping: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> bytes:
    """Root of the trie holding ``mapping`` (empty values mean "absent")."""
    pairs = mapping if isinstance(mapping, Mapping) else dict(mapping)  # last write wins
    items = sorted((nibbles(k), v) for k, v in pairs.items() if v)
    if not items:
        return EMPTY_TRIE_ROOT
    return keccak256(rlp.encode(_build(items, 0)))


def secure_trie_root(mapping: Mapping[bytes, bytes]) -> bytes:
    """Root of a *secure* trie, whose keys are keccak256 of the given keys (state and
    storage tries, Yellow Paper §4.1)."""
    return trie_root({keccak256(k): v for k, v in mapping.items()})


def ordered_trie_root(values: Iterable[bytes]) -> bytes:
    """Root of the trie mapping rlp(index) -> value, as for transactions, receipts and
    withdrawals (Yellow Paper §4.3, EIP-2718, EIP-4895)."""
    return trie_root([(rlp.encode(i), v) for i, v in enumerate(values)])

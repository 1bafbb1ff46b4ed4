"""RLP against ethereum/tests ``RLPTests``, plus strictness the vectors do not cover."""

from __future__ import annotations

import functools
import sys
from typing import Any

import pytest
import rlp as pyrlp
from hypothesis import given, settings
from hypothesis import strategies as st

from node.chain import rlp
from node.chain.errors import MalformedInputError
from node.chain.transactions import decode_transaction

from vectors import ethereum_tests, hex_bytes, load_json

VALID = load_json(ethereum_tests("RLPTests", "rlptest.json"))
INVALID = load_json(ethereum_tests("RLPTests", "invalidRLPTest.json"))
RANDOM = {f"{path.stem}/{name}": case
          for path in sorted(ethereum_tests("RLPTests", "RandomRLPTests").glob("*.json"))
          for name, case in load_json(path).items()}


def as_item(value: Any) -> Any:
    """A vector's ``in`` as an RLP item: text is its UTF-8 bytes, an int (or a big int
    written ``"#<decimal>"``) its minimal big-endian bytes, lists recursively."""
    if isinstance(value, list):
        return [as_item(v) for v in value]
    if isinstance(value, int):
        return rlp.int_to_bytes(value)
    if value.startswith("#"):
        return rlp.int_to_bytes(int(value[1:]))
    return value.encode()


def as_encodable(value: Any) -> Any:
    """A vector's ``in`` as given to ``rlp.encode``: ints stay ints, so integer encoding
    is exercised too."""
    if isinstance(value, list):
        return [as_encodable(v) for v in value]
    if isinstance(value, str) and value.startswith("#"):
        return int(value[1:])
    return value if isinstance(value, int) else value.encode()


def test_vector_files_are_not_empty() -> None:
    assert len(VALID) > 20 and len(INVALID) > 20 and RANDOM


@pytest.mark.parametrize("name", sorted(VALID))
def test_encode_matches_vector(name: str) -> None:
    case = VALID[name]
    assert rlp.encode(as_encodable(case["in"])) == hex_bytes(case["out"])


@pytest.mark.parametrize("name", sorted(VALID))
def test_decode_matches_vector(name: str) -> None:
    case = VALID[name]
    assert rlp.decode(hex_bytes(case["out"])) == as_item(case["in"])


@pytest.mark.parametrize("name", sorted(INVALID))
def test_decode_rejects_invalid_vector(name: str) -> None:
    with pytest.raises(MalformedInputError):
        rlp.decode(hex_bytes(INVALID[name]["out"]))


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_decode_random_vector_and_reencode_identically(name: str) -> None:
    encoded = hex_bytes(RANDOM[name]["out"])
    assert rlp.encode(rlp.decode(encoded)) == encoded


@pytest.mark.parametrize("encoded, why", [
    (b"", "nothing to decode"),
    (b"\x80\x80", "trailing bytes after the item"),
    (b"\x81\x00", "single byte below 0x80 wrapped in a prefix"),
    (b"\x81\x7f", "single byte below 0x80 wrapped in a prefix"),
    (b"\xb8\x37" + b"a" * 55, "long form for a 55-byte string"),
    (b"\xb9\x00\x38" + b"a" * 56, "length of the length with a leading zero"),
    (b"\xf8\x37" + b"\x80" * 55, "long form for a 55-byte list"),
    (b"\xc2\x80", "list shorter than it declares"),
    (b"\xc1\x82\x00\x01", "item overruns its list"),
    (b"\x83ab", "string shorter than it declares"),
    (b"\xbb\xff\xff\xff\xff", "length prefix cut short"),
])
def test_decode_rejects_non_canonical_or_truncated(encoded: bytes, why: str) -> None:
    with pytest.raises(MalformedInputError):
        rlp.decode(encoded)


def nested_lists(depth: int) -> bytes:
    """The canonical RLP of ``[[[...[]...]]]``, ``depth`` lists around the empty one,
    built from the inside out in linear time."""
    prefixes, length = [], 1  # rlp([]) is the single byte 0xc0
    for _ in range(depth):
        if length < 56:
            prefix = bytes([0xC0 + length])
        else:
            size = length.to_bytes((length.bit_length() + 7) // 8, "big")
            prefix = bytes([0xF7 + len(size)]) + size
        prefixes.append(prefix)
        length += len(prefix)
    return b"".join(reversed(prefixes)) + b"\xc0"


def test_nested_lists_helper_builds_canonical_rlp() -> None:
    assert nested_lists(60) == pyrlp.encode(functools.reduce(lambda x, _: [x], range(60), []))


@pytest.mark.parametrize("decoder", [rlp.decode, decode_transaction], ids=["rlp", "transaction"])
def test_deeply_nested_rlp_never_escapes_as_recursion_error(decoder: Any) -> None:
    """Canonical RLP nesting lists deeper than the interpreter's recursion limit (a few KB
    by default) must be decoded, or refused as malformed -- never crash the caller with
    RecursionError. Untrusted raw transactions (eth_sendRawTransaction, debug_getRaw*)
    reach these decoders."""
    depth = max(3000, sys.getrecursionlimit() + 100)
    try:
        item = decoder(nested_lists(depth))
    except MalformedInputError:
        return
    except RecursionError:  # reported without its (huge) traceback
        pytest.fail(f"RecursionError escaped {decoder.__name__} at depth {depth}", pytrace=False)
    assert decoder is rlp.decode, "a nest of lists is not a transaction"
    for _ in range(depth):
        (item,) = item
    assert item == []


@pytest.mark.parametrize("raw, bits, expected", [
    (b"", 256, 0),
    (b"\x01", 8, 1),
    (b"\xff" * 8, 64, 2**64 - 1),
    (b"\x01" + b"\x00" * 31, 256, 2**248),
])
def test_decode_int_reads_canonical_integers(raw: bytes, bits: int, expected: int) -> None:
    assert rlp.decode_int(raw, "n", bits) == expected


@pytest.mark.parametrize("raw, bits", [
    (b"\x00", 256),  # zero is the empty string
    (b"\x00\x01", 256),  # leading zero
    (b"\x01" + b"\x00" * 8, 64),  # 2**64 does not fit
    (b"\x01" * 33, 256),
    ([b"\x01"], 256),  # a list is not an integer
])
def test_decode_int_rejects_non_canonical_or_oversized(raw: Any, bits: int) -> None:
    with pytest.raises(MalformedInputError):
        rlp.decode_int(raw, "n", bits)


def test_decode_bytes_and_list_check_shape_and_size() -> None:
    assert rlp.decode_bytes(b"ab", "s", 2) == b"ab"
    assert rlp.decode_list([b"a", b"b"], "l", 2) == [b"a", b"b"]
    for call in (lambda: rlp.decode_bytes(b"ab", "s", 3), lambda: rlp.decode_bytes([], "s"),
                 lambda: rlp.decode_list(b"", "l"), lambda: rlp.decode_list([b""], "l", 2)):
        with pytest.raises(MalformedInputError):
            call()


def test_decode_stream_reads_concatenated_items_and_rejects_a_cut_tail() -> None:
    items = [b"dog", [b"cat", [b""]], b"\x05"]
    stream = b"".join(rlp.encode(i) for i in items)
    assert list(rlp.decode_stream(stream)) == items
    with pytest.raises(MalformedInputError):
        list(rlp.decode_stream(stream + b"\x83ab"))


def test_encode_refuses_negative_integers() -> None:
    with pytest.raises(ValueError):
        rlp.encode(-1)


items = st.recursive(st.binary(max_size=80), lambda inner: st.lists(inner, max_size=6),
                     max_leaves=30)


@settings(max_examples=150, deadline=None)
@given(items)
def test_our_encoding_equals_pyrlp_and_decodes_back(item: Any) -> None:
    encoded = rlp.encode(item)
    assert encoded == pyrlp.encode(item)
    assert rlp.decode(encoded) == item


def test_encode_refuses_text() -> None:
    with pytest.raises(TypeError):
        rlp.encode("a")
    with pytest.raises(TypeError):
        rlp.encode([b"ok", "a"])

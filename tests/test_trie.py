"""Merkle-Patricia roots against ethereum/tests ``TrieTests`` and against py-trie."""

from __future__ import annotations

import bisect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from node.chain import rlp
from node.chain.errors import MalformedInputError
from node.chain.hashing import keccak256
from node.chain.trie import (
    EMPTY_TRIE_ROOT,
    decode_hex_prefix,
    hex_prefix,
    nibbles,
    ordered_trie_root,
    secure_trie_root,
    trie_root,
)

from vectors import ethereum_tests, load_json

ROOT_FILES = {
    "trietest.json": "plain",
    "trieanyorder.json": "plain",
    "trietest_secureTrie.json": "secure",
    "trieanyorder_secureTrie.json": "secure",
    "hex_encoded_securetrie_test.json": "secure",
}
ROOT_CASES = [pytest.param(file, name, id=f"{file.removesuffix('.json')}/{name}")
              for file in ROOT_FILES
              for name in load_json(ethereum_tests("TrieTests", file))]
NEXT_PREV = load_json(ethereum_tests("TrieTests", "trietestnextprev.json"))


def as_bytes(text: str | None) -> bytes | None:
    """A TrieTests key or value: hex when ``0x``-prefixed, else the text's bytes."""
    if text is None:
        return None
    return bytes.fromhex(text[2:]) if text.startswith("0x") else text.encode()


def final_contents(entries: Any) -> dict[bytes, bytes]:
    """Apply a test's ``in`` (a mapping, or an ordered list of [key, value|null]) to a dict;
    a null value deletes the key."""
    pairs = entries.items() if isinstance(entries, dict) else entries
    contents: dict[bytes, bytes] = {}
    for key, value in pairs:
        raw = as_bytes(value)
        if raw is None:
            contents.pop(as_bytes(key), None)
        else:
            contents[as_bytes(key)] = raw
    return contents


def test_every_trie_vector_file_is_covered() -> None:
    files = {p.name for p in ethereum_tests("TrieTests").glob("*.json")}
    assert files == set(ROOT_FILES) | {"trietestnextprev.json"}
    assert len(ROOT_CASES) >= 20


@pytest.mark.parametrize("file, name", ROOT_CASES)
def test_root_matches_vector(file: str, name: str) -> None:
    case = load_json(ethereum_tests("TrieTests", file))[name]
    contents = final_contents(case["in"])
    root = secure_trie_root(contents) if ROOT_FILES[file] == "secure" else trie_root(contents)
    assert "0x" + root.hex() == case["root"]


def neighbours(keys: list[bytes], probe: bytes) -> tuple[bytes, bytes]:
    """(greatest key < probe, least key > probe) in sorted ``keys``; b"" when none."""
    below = bisect.bisect_left(keys, probe)
    above = bisect.bisect_right(keys, probe)
    return (keys[below - 1] if below else b""), (keys[above] if above < len(keys) else b"")


@pytest.mark.parametrize("name", sorted(NEXT_PREV))
def test_next_prev_of_vector_keys(name: str) -> None:
    case = NEXT_PREV[name]
    keys = sorted(k.encode() for k in case["in"])
    for probe, prev, nxt in case["tests"]:
        assert neighbours(keys, probe.encode()) == (prev.encode(), nxt.encode()), probe


@pytest.mark.parametrize("name", sorted(NEXT_PREV))
def test_next_prev_trie_root_matches_py_trie(name: str) -> None:
    contents = {k.encode(): k.encode() for k in NEXT_PREV[name]["in"]}
    reference = HexaryTrie({})
    for key, value in contents.items():
        reference[key] = value
    assert trie_root(contents) == reference.root_hash


def test_empty_trie_root_and_empty_values_mean_absent() -> None:
    assert EMPTY_TRIE_ROOT.hex() == (
        "56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
    assert trie_root({}) == EMPTY_TRIE_ROOT == ordered_trie_root([])
    assert trie_root({b"a": b""}) == EMPTY_TRIE_ROOT
    assert trie_root({b"a": b"1", b"b": b""}) == trie_root({b"a": b"1"})


def test_ordered_trie_root_keys_values_by_rlp_of_index() -> None:
    values = [bytes([i]) * (i + 1) for i in range(200)]  # indices 0, 1..127, 128.. encode apart
    assert ordered_trie_root(values) == trie_root({rlp.encode(i): v for i, v in enumerate(values)})


@pytest.mark.parametrize("path, leaf, encoded", [
    (b"", False, b"\x00"),
    (b"", True, b"\x20"),
    (b"\x01\x02\x03\x04\x05", False, b"\x11\x23\x45"),
    (b"\x00\x01\x02\x03\x04\x05", False, b"\x00\x01\x23\x45"),
    (b"\x0f\x01\x0c\x0b\x08", True, b"\x3f\x1c\xb8"),
    (b"\x00\x0f\x01\x0c\x0b\x08", True, b"\x20\x0f\x1c\xb8"),
])
def test_hex_prefix_matches_yellow_paper_examples(path: bytes, leaf: bool, encoded: bytes) -> None:
    assert hex_prefix(path, leaf) == encoded
    assert decode_hex_prefix(encoded) == (path, leaf)


@pytest.mark.parametrize("encoded", [b"", b"\x40", b"\xf1", b"\x01\x23", b"\x21"])
def test_decode_hex_prefix_rejects_bad_flags_and_padding(encoded: bytes) -> None:
    with pytest.raises(MalformedInputError):
        decode_hex_prefix(encoded)


def test_nibbles_split_high_first() -> None:
    assert nibbles(b"\x12\xab") == b"\x01\x02\x0a\x0b"


def py_trie(contents: dict[bytes, bytes]) -> HexaryTrie:
    """The reference implementation's trie of ``contents``."""
    reference = HexaryTrie({})
    for key, value in contents.items():
        reference[key] = value
    return reference


# Short keys from a small alphabet make shared prefixes, extensions, branch values
# (one key a prefix of another) and embedded (< 32-byte) nodes common.
keys = st.binary(min_size=0, max_size=6).map(lambda b: bytes(x & 0x13 for x in b))
tries = st.dictionaries(keys, st.binary(min_size=1, max_size=70), max_size=40)


@settings(max_examples=150, deadline=None)
@given(tries)
def test_trie_root_equals_py_trie(contents: dict[bytes, bytes]) -> None:
    assert trie_root(contents) == py_trie(contents).root_hash


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.binary(min_size=20, max_size=20), st.binary(min_size=1, max_size=120),
                       max_size=30))
def test_secure_trie_root_equals_py_trie_over_hashed_keys(contents: dict[bytes, bytes]) -> None:
    reference = py_trie({keccak256(k): v for k, v in contents.items()})
    assert secure_trie_root(contents) == reference.root_hash


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=200), max_size=300))
def test_ordered_trie_root_equals_py_trie(values: list[bytes]) -> None:
    reference = py_trie({rlp.encode(i): v for i, v in enumerate(values)})
    assert ordered_trie_root(values) == reference.root_hash


def test_trie_root_of_pairs_with_a_repeated_key_keeps_the_last_value() -> None:
    assert trie_root([(b"a", b"1"), (b"a", b"2")]) == trie_root({b"a": b"2"})

"""Merkle-Patricia proofs (EIP-1186): the hive chain's real ``eth_getProof`` answers, every
way of corrupting them, and random tries cross-checked against py-trie."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import rlp as pyrlp
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from node.chain.errors import MalformedInputError, ProofError, VerificationError
from node.chain.hashing import EMPTY_KECCAK, keccak256
from node.chain.proof import (
    EMPTY_ACCOUNT,
    MAX_PROOF_NODES,
    Account,
    AccountProofData,
    StorageProofData,
    decode_account,
    parse_account_proof,
    verify_account_proof,
    verify_parsed_account_proof,
    verify_proof,
)
from node.chain.receipts import receipt_from_rpc
from node.chain.trie import EMPTY_TRIE_ROOT

from vectors import hex_bytes, hive_block, io_case, io_cases

STATE_ROOT = hive_block(54).header.state_root
WITH_STORAGE = io_case("eth_getProof", "get-account-proof-with-storage").result


def real_proof() -> dict[str, Any]:
    """A fresh copy of the hive ``get-account-proof-with-storage`` result."""
    return copy.deepcopy(WITH_STORAGE)


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


# --- helpers: EIP-1186 proofs from py-trie --------------------------------------------

def eip1186_proof(reference: HexaryTrie, key: bytes) -> list[bytes]:
    """``reference.get_proof(key)`` as ``eth_getProof`` serves it: each node RLP-encoded
    (with the independent ``rlp`` package), leaving out nodes embedded in their parent
    (RLP shorter than 32 bytes), which py-trie lists but geth and EIP-1186 proofs do not."""
    encoded = [pyrlp.encode(node) for node in reference.get_proof(key)]
    return [node for i, node in enumerate(encoded) if i == 0 or len(node) >= 32]


def py_trie(contents: dict[bytes, bytes]) -> HexaryTrie:
    reference = HexaryTrie({})
    for key, value in contents.items():
        reference[key] = value
    return reference


class SyntheticState:
    """A small state trie built with py-trie, answering ``eth_getProof`` like a client."""

    def __init__(self, accounts: dict[bytes, tuple[int, int, dict[int, int], bytes]]) -> None:
        self.accounts = accounts
        self.storage = {}
        self.state = HexaryTrie({})
        for address, (nonce, balance, slots, code) in accounts.items():
            storage = py_trie({keccak256(k.to_bytes(32, "big")): pyrlp.encode(v)
                               for k, v in slots.items() if v})
            self.storage[address] = storage
            self.state[keccak256(address)] = pyrlp.encode(
                [nonce, balance, storage.root_hash, keccak256(code)])

    @property
    def root(self) -> bytes:
        return self.state.root_hash

    def get_proof(self, address: bytes, slots: list[int]) -> dict[str, Any]:
        nonce, balance, values, code = self.accounts.get(address, (0, 0, {}, b""))
        storage = self.storage.get(address, HexaryTrie({}))
        return {
            "address": to_hex(address),
            "accountProof": [to_hex(n) for n in eip1186_proof(self.state, keccak256(address))],
            "balance": hex(balance), "nonce": hex(nonce), "codeHash": to_hex(keccak256(code)),
            "storageHash": to_hex(storage.root_hash),
            "storageProof": [{
                "key": hex(slot), "value": hex(values.get(slot, 0)),
                "proof": [to_hex(n) for n in
                          eip1186_proof(storage, keccak256(slot.to_bytes(32, "big")))],
            } for slot in slots],
        }


ALICE, BOB, NOBODY = b"\xa1" * 20, b"\xb0" * 20, b"\x00" * 19 + b"\x01"
SYNTHETIC = SyntheticState({
    ALICE: (7, 10**18, {0: 5, 1: 0x1234, 2**255: 1}, b"\x60\x00"),
    BOB: (0, 3, {}, b""),
    **{bytes([i]) * 20: (i, i * 1000, {}, b"") for i in range(2, 40)},
})


def rehash(proof: list[bytes], index: int, new_node: bytes) -> tuple[bytes, list[bytes]]:
    """Replace ``proof[index]`` and rewrite each parent's reference to it, so the proof is
    hash-consistent again; return the new root and proof. This reaches the verifier's
    structural checks, which a bare byte flip (caught by the first hash) never does."""
    proof = list(proof)
    old, proof[index] = proof[index], new_node
    for i in range(index - 1, -1, -1):
        parent = pyrlp.decode(proof[i])
        old_ref, new_ref = keccak256(old), keccak256(proof[i + 1])
        replaced = [new_ref if item == old_ref else item for item in parent]
        assert replaced != parent, "child reference not found in parent"
        old, proof[i] = proof[i], pyrlp.encode(replaced)
    return keccak256(proof[0]), proof


# --- the hive chain's eth_getProof answers --------------------------------------------

@pytest.mark.parametrize("case", io_cases("eth_getProof"), ids=lambda c: c.name)
def test_hive_get_proof_verifies_against_block_54_state_root(case: Any) -> None:
    result = case.result
    proven = verify_account_proof(STATE_ROOT, result)
    assert proven.exists
    assert proven.address == hex_bytes(result["address"])
    assert proven.account == Account(int(result["nonce"], 16), int(result["balance"], 16),
                                     hex_bytes(result["storageHash"]),
                                     hex_bytes(result["codeHash"]))
    assert [(s.key, s.value) for s in proven.storage] == [
        (int(e["key"], 16).to_bytes(32, "big"), int(e["value"], 16))
        for e in result["storageProof"]]


def test_hive_storage_proof_proves_slot_zero() -> None:
    proven = verify_account_proof(STATE_ROOT, real_proof())
    assert [(s.key, s.value) for s in proven.storage] == [(b"\x00" * 32, 0x38)]


@pytest.mark.parametrize("key", ["0x0", "0x00", "0x" + "00" * 32, "0X0"])
def test_storage_key_may_be_a_quantity_or_32_byte_data(key: str) -> None:
    result = real_proof()
    result["storageProof"][0]["key"] = key
    proven = verify_account_proof(STATE_ROOT, result)
    assert proven.storage[0].key == b"\x00" * 32 and proven.storage[0].value == 0x38


# --- byte flips: caught by the hash of the node ---------------------------------------

def _locate(result: dict[str, Any], where: str) -> list[str]:
    return result["accountProof"] if where == "account" else result["storageProof"][0]["proof"]


FLIP_TARGETS = [
    # (proof, node index, every byte or sampled)
    pytest.param("account", -1, True, id="account-leaf-every-byte"),
    pytest.param("storage", -1, True, id="storage-leaf-every-byte"),
    pytest.param("account", 0, False, id="account-root-branch-sampled"),
    pytest.param("account", 1, False, id="account-inner-branch-sampled"),
    pytest.param("storage", 0, False, id="storage-root-branch-sampled"),
    pytest.param("storage", 1, False, id="storage-inner-branch-sampled"),
]


@pytest.mark.parametrize("where, index, every", FLIP_TARGETS)
def test_proof_rejects_flipped_byte_in_node(where: str, index: int, every: bool) -> None:
    node = hex_bytes(_locate(WITH_STORAGE, where)[index])
    positions = range(len(node)) if every else sorted(
        {0, 1, 2, 3, len(node) - 1, len(node) - 2, *range(4, len(node), 7)})
    accepted = []
    for pos in positions:
        for mask in (0x01, 0x80, 0xFF):
            result = real_proof()
            bad = bytearray(node)
            bad[pos] ^= mask
            nodes = _locate(result, where)
            nodes[index] = to_hex(bytes(bad))
            try:
                verify_account_proof(STATE_ROOT, result)
            except ProofError:
                continue
            accepted.append((pos, mask))
    assert not accepted, f"flips accepted (position, mask): {accepted}"


# --- hash-consistent corruptions: the structural checks -------------------------------

def _edit_account_leaf(edit: Callable[[list[Any]], list[Any]]) -> tuple[bytes, dict[str, Any]]:
    """Apply ``edit`` to the decoded account leaf and re-hash the proof up to a new root."""
    result = real_proof()
    nodes = [hex_bytes(n) for n in result["accountProof"]]
    root, nodes = rehash(nodes, len(nodes) - 1, pyrlp.encode(edit(pyrlp.decode(nodes[-1]))))
    result["accountProof"] = [to_hex(n) for n in nodes]
    return root, result


def _raw_account_leaf(edit: Callable[[bytearray], None]) -> tuple[bytes, dict[str, Any]]:
    result = real_proof()
    nodes = [hex_bytes(n) for n in result["accountProof"]]
    raw = bytearray(nodes[-1])
    edit(raw)
    root, nodes = rehash(nodes, len(nodes) - 1, bytes(raw))
    result["accountProof"] = [to_hex(n) for n in nodes]
    return root, result


def _set(raw: bytearray, pos: int, value: int) -> None:
    raw[pos] = value


def _account_field(index: int, value: Any) -> Callable[[list[Any]], list[Any]]:
    def edit(leaf: list[Any]) -> list[Any]:
        account = pyrlp.decode(leaf[1])
        account[index] = value
        return [leaf[0], pyrlp.encode(account)]
    return edit


STRUCTURAL = {
    # RLP framing of the leaf node
    "rlp-list-prefix-says-string": lambda: _raw_account_leaf(lambda r: _set(r, 0, 0xB8)),
    "rlp-list-length-too-long": lambda: _raw_account_leaf(lambda r: _set(r, 1, r[1] + 1)),
    "rlp-list-length-too-short": lambda: _raw_account_leaf(lambda r: _set(r, 1, r[1] - 1)),
    "rlp-trailing-byte": lambda: _raw_account_leaf(lambda r: r.append(0)),
    "rlp-path-length-byte": lambda: _raw_account_leaf(lambda r: _set(r, 2, r[2] + 1)),
    # the leaf's hex-prefix path
    "path-flag-extension-not-leaf": lambda: _edit_account_leaf(
        lambda leaf: [bytes([leaf[0][0] & 0x1F]) + leaf[0][1:], leaf[1]]),
    "path-flag-invalid": lambda: _edit_account_leaf(
        lambda leaf: [bytes([0x40 | leaf[0][0] & 0x0F]) + leaf[0][1:], leaf[1]]),
    "path-other-key": lambda: _edit_account_leaf(
        lambda leaf: [leaf[0][:-1] + bytes([leaf[0][-1] ^ 1]), leaf[1]]),
    "path-one-nibble-short": lambda: _edit_account_leaf(
        lambda leaf: [leaf[0][:-1], leaf[1]]),
    "path-empty": lambda: _edit_account_leaf(lambda leaf: [b"", leaf[1]]),
    "path-as-list": lambda: _edit_account_leaf(lambda leaf: [[leaf[0]], leaf[1]]),
    # the leaf's value
    "value-empty": lambda: _edit_account_leaf(lambda leaf: [leaf[0], b""]),
    "value-not-an-account": lambda: _edit_account_leaf(lambda leaf: [leaf[0], b"\x01\x02"]),
    "value-as-list": lambda: _edit_account_leaf(lambda leaf: [leaf[0], [leaf[1]]]),
    "value-account-of-3-fields": lambda: _edit_account_leaf(
        lambda leaf: [leaf[0], pyrlp.encode(pyrlp.decode(leaf[1])[:3])]),
    "value-balance-changed": lambda: _edit_account_leaf(_account_field(1, 119)),
    "value-nonce-changed": lambda: _edit_account_leaf(_account_field(0, 1)),
    "value-storage-root-changed": lambda: _edit_account_leaf(_account_field(2, b"\x11" * 32)),
    "value-code-hash-changed": lambda: _edit_account_leaf(_account_field(3, EMPTY_KECCAK)),
    "value-nonce-leading-zero": lambda: _edit_account_leaf(_account_field(0, b"\x00")),
    "node-of-3-items": lambda: _edit_account_leaf(lambda leaf: [*leaf, b""]),
}


@pytest.mark.parametrize("name", sorted(STRUCTURAL))
def test_proof_rejects_rehashed_corruption_of_account_leaf(name: str) -> None:
    """Even with every hash fixed up to a (then untrusted) root, a changed leaf never
    proves the claimed account."""
    root, result = STRUCTURAL[name]()
    with pytest.raises(VerificationError):  # ProofError is a VerificationError
        verify_account_proof(root, result)


def test_proof_rejects_rehashed_change_of_child_reference_on_the_path() -> None:
    result = real_proof()
    nodes = [hex_bytes(n) for n in result["accountProof"]]
    path_ref = keccak256(nodes[1])
    branch = pyrlp.decode(nodes[0])
    slot = branch.index(path_ref)
    for pos in range(32):
        bad = bytearray(path_ref)
        bad[pos] ^= 0x01
        edited = [bytes(bad) if i == slot else item for i, item in enumerate(branch)]
        result["accountProof"][0] = to_hex(pyrlp.encode(edited))
        with pytest.raises(ProofError):
            verify_account_proof(keccak256(pyrlp.encode(edited)), result)


def test_rehashed_change_off_the_path_still_proves_the_same_account() -> None:
    """A sibling reference is not on the key's path: the proof is then a valid proof in a
    different trie, and it proves exactly the same account (the verifier is not over-strict)."""
    result = real_proof()
    nodes = [hex_bytes(n) for n in result["accountProof"]]
    branch = pyrlp.decode(nodes[0])
    path_ref = keccak256(nodes[1])
    slot = next(i for i, item in enumerate(branch[:16]) if item and item != path_ref)
    branch[slot] = b"\x42" * 32
    result["accountProof"][0] = to_hex(pyrlp.encode(branch))
    proven = verify_account_proof(keccak256(pyrlp.encode(branch)), result)
    assert proven.account.balance == 0x76 and proven.storage[0].value == 0x38


# --- wrong claims, wrong roots, wrong node lists --------------------------------------

@pytest.mark.parametrize("field, value", [
    ("balance", "0x77"),
    ("nonce", "0x1"),
    ("codeHash", to_hex(EMPTY_KECCAK)),
    ("storageHash", to_hex(EMPTY_TRIE_ROOT)),
])
def test_proof_rejects_changed_claimed_account_field(field: str, value: str) -> None:
    result = real_proof()
    result[field] = value
    with pytest.raises(VerificationError) as exc:
        verify_account_proof(STATE_ROOT, result)
    assert exc.value.field == field


def test_proof_rejects_changed_storage_value() -> None:
    result = real_proof()
    result["storageProof"][0]["value"] = "0x39"
    with pytest.raises(VerificationError) as exc:
        verify_account_proof(STATE_ROOT, result)
    assert exc.value.field == "proof.storageProof[0].value"
    assert (exc.value.claimed, exc.value.computed) == ("0x39", "0x38")


def test_proof_rejects_storage_value_claimed_for_another_key() -> None:
    result = real_proof()
    result["storageProof"][0]["key"] = "0x1"
    with pytest.raises(VerificationError):
        verify_account_proof(STATE_ROOT, result)


def test_proof_rejects_another_blocks_state_root() -> None:
    with pytest.raises(ProofError) as exc:
        verify_account_proof(hive_block(53).header.state_root, real_proof())
    assert exc.value.field == "accountProof"


def _half(node: str) -> str:
    """The first half of a hex node's bytes."""
    return node[: 2 + 2 * ((len(node) - 2) // 4)]


NODE_LIST_EDITS = {
    "drop-last": lambda nodes: nodes[:-1],
    "drop-first": lambda nodes: nodes[1:],
    "drop-middle": lambda nodes: [nodes[0], *nodes[2:]],
    "empty": lambda nodes: [],
    "append-copy-of-last": lambda nodes: [*nodes, nodes[-1]],
    "append-empty-node": lambda nodes: [*nodes, "0x"],
    "append-foreign-node": lambda nodes: [*nodes, to_hex(pyrlp.encode([b"\x20", b"x"]))],
    "prepend-copy-of-root": lambda nodes: [nodes[0], *nodes],
    "swap-first-two": lambda nodes: [nodes[1], nodes[0], *nodes[2:]],
    "reverse": lambda nodes: nodes[::-1],
    "truncate-leaf": lambda nodes: [*nodes[:-1], nodes[-1][:-2]],
    "truncate-root-node": lambda nodes: [_half(nodes[0]), *nodes[1:]],
    "oversized-node": lambda nodes: [nodes[0] + "00" * 700, *nodes[1:]],
    "huge-node": lambda nodes: [nodes[0] + "00" * 1_000_000, *nodes[1:]],
    "oversized-leaf": lambda nodes: [*nodes[:-1], nodes[-1] + "00" * 700],
}


@pytest.mark.parametrize("where", ["account", "storage"])
@pytest.mark.parametrize("edit", sorted(NODE_LIST_EDITS))
def test_proof_rejects_edited_node_list(edit: str, where: str) -> None:
    result = real_proof()
    nodes = _locate(result, where)
    nodes[:] = NODE_LIST_EDITS[edit](list(nodes))
    with pytest.raises(ProofError):
        verify_account_proof(STATE_ROOT, result)


def test_proof_rejects_more_nodes_than_a_key_can_need() -> None:
    result = real_proof()
    result["accountProof"] = result["accountProof"] * 30
    with pytest.raises(MalformedInputError):
        verify_account_proof(STATE_ROOT, result)
    with pytest.raises(ProofError):
        verify_proof(STATE_ROOT, b"\x00" * 32, [b"\xc0"] * (MAX_PROOF_NODES + 1))


# --- malformed JSON -------------------------------------------------------------------

def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda r: r.pop(key)


def _storage(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(r: dict[str, Any]) -> None:
        if value is _MISSING:
            r["storageProof"][0].pop(key)
        else:
            r["storageProof"][0][key] = value
    return edit


_MISSING = object()
MALFORMED = {
    **{f"missing-{k}": _without(k) for k in
       ("address", "accountProof", "balance", "nonce", "codeHash", "storageHash",
        "storageProof")},
    **{f"missing-storage-{k}": _storage(k, _MISSING) for k in ("key", "value", "proof")},
    "node-not-hex": lambda r: r["accountProof"].__setitem__(0, "0xzz"),
    "node-odd-length": lambda r: r["accountProof"].__setitem__(0, r["accountProof"][0] + "0"),
    "node-without-0x": lambda r: r["accountProof"].__setitem__(0, r["accountProof"][0][2:]),
    "node-as-number": lambda r: r["accountProof"].__setitem__(0, 5),
    "node-null": lambda r: r["accountProof"].__setitem__(0, None),
    "account-proof-as-string": lambda r: r.__setitem__("accountProof", "0x00"),
    "account-proof-as-object": lambda r: r.__setitem__("accountProof", {}),
    "storage-proof-as-object": lambda r: r.__setitem__("storageProof", {}),
    "storage-entry-as-list": lambda r: r["storageProof"].__setitem__(0, []),
    "storage-proof-nodes-as-string": _storage("proof", "0x"),
    "storage-key-not-hex": _storage("key", "0xg"),
    "storage-key-empty": _storage("key", "0x"),
    "storage-key-over-256-bits": _storage("key", "0x1" + "0" * 64),
    "storage-key-as-number": _storage("key", 0),
    "storage-value-as-number": _storage("value", 56),
    "storage-value-over-256-bits": _storage("value", "0x1" + "0" * 64),
    "address-19-bytes": lambda r: r.__setitem__("address", r["address"][:-2]),
    "address-21-bytes": lambda r: r.__setitem__("address", r["address"] + "00"),
    "balance-not-hex": lambda r: r.__setitem__("balance", "0xfg"),
    "balance-as-number": lambda r: r.__setitem__("balance", 118),
    "balance-without-0x": lambda r: r.__setitem__("balance", "76"),
    "nonce-over-64-bits": lambda r: r.__setitem__("nonce", "0x1" + "0" * 16),
    "code-hash-31-bytes": lambda r: r.__setitem__("codeHash", r["codeHash"][:-2]),
    "storage-hash-odd-length": lambda r: r.__setitem__("storageHash", r["storageHash"][:-1]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_proof_rejects_malformed_json(name: str) -> None:
    result = real_proof()
    MALFORMED[name](result)
    with pytest.raises(MalformedInputError):
        verify_account_proof(STATE_ROOT, result)


@pytest.mark.parametrize("result", [None, [], "0x", 5])
def test_proof_rejects_result_that_is_not_an_object(result: Any) -> None:
    with pytest.raises(MalformedInputError):
        verify_account_proof(STATE_ROOT, result)


# --- proofs of absence and multi-slot storage (py-trie built state) -------------------

def test_synthetic_state_proofs_verify() -> None:
    proven = verify_account_proof(SYNTHETIC.root, SYNTHETIC.get_proof(ALICE, [0, 1, 2**255]))
    assert proven.exists and proven.account.nonce == 7 and proven.account.balance == 10**18
    assert [s.value for s in proven.storage] == [5, 0x1234, 1]


def test_proof_of_absent_account_proves_the_empty_account() -> None:
    result = SYNTHETIC.get_proof(NOBODY, [0])
    assert result["accountProof"], "absence is shown by a non-empty path"
    proven = verify_account_proof(SYNTHETIC.root, result)
    assert not proven.exists and proven.account == EMPTY_ACCOUNT and proven.account.is_empty
    assert proven.storage[0].value == 0


def test_proof_of_absent_account_rejects_a_claimed_balance() -> None:
    result = SYNTHETIC.get_proof(NOBODY, [])
    result["balance"] = "0x1"
    with pytest.raises(VerificationError) as exc:
        verify_account_proof(SYNTHETIC.root, result)
    assert exc.value.field == "balance"


def test_proof_of_absent_storage_slot_proves_zero() -> None:
    result = SYNTHETIC.get_proof(ALICE, [3, 0x1234567])
    proven = verify_account_proof(SYNTHETIC.root, result)
    assert [s.value for s in proven.storage] == [0, 0]
    result["storageProof"][1]["value"] = "0x1"
    with pytest.raises(VerificationError) as exc:
        verify_account_proof(SYNTHETIC.root, result)
    assert exc.value.field == "proof.storageProof[1].value"


def test_proof_of_account_without_storage_has_empty_storage_proofs() -> None:
    result = SYNTHETIC.get_proof(BOB, [0])
    assert result["storageProof"][0]["proof"] == []
    assert verify_account_proof(SYNTHETIC.root, result).storage[0].value == 0


def test_proof_rejects_storage_values_swapped_between_slots() -> None:
    result = SYNTHETIC.get_proof(ALICE, [0, 1])
    first, second = result["storageProof"]
    first["value"], second["value"] = second["value"], first["value"]
    with pytest.raises(VerificationError) as exc:
        verify_account_proof(SYNTHETIC.root, result)
    assert exc.value.field == "proof.storageProof[0].value"


def test_proof_rejects_storage_proofs_swapped_between_slots() -> None:
    result = SYNTHETIC.get_proof(ALICE, [0, 1])
    first, second = result["storageProof"]
    first["proof"], second["proof"] = second["proof"], first["proof"]
    with pytest.raises(VerificationError):
        verify_account_proof(SYNTHETIC.root, result)


def test_decode_account_reads_the_four_fields() -> None:
    encoded = pyrlp.encode([3, 10**20, EMPTY_TRIE_ROOT, EMPTY_KECCAK])
    assert decode_account(encoded) == Account(3, 10**20, EMPTY_TRIE_ROOT, EMPTY_KECCAK)


# --- verify_proof against py-trie -----------------------------------------------------

def test_empty_proof_proves_absence_only_in_the_empty_trie() -> None:
    assert verify_proof(EMPTY_TRIE_ROOT, b"key", []) is None
    with pytest.raises(ProofError):
        verify_proof(STATE_ROOT, b"key", [])


def test_receipt_inclusion_proof_of_block_54_verifies() -> None:
    """Receipt (and transaction) tries hold leaves of any size: receipt 1 of block 54 has 10
    logs and encodes to well over 1 KB. A proof of it, against the header's receiptsRoot,
    must verify (DESIGN.md: certificate inclusion is verified through a receipt proof)."""
    receipts = [receipt_from_rpc(r) for r in
                io_case("eth_getBlockReceipts", "get-block-receipts-latest").result]
    reference = py_trie({pyrlp.encode(i): r.encoded for i, r in enumerate(receipts)})
    assert reference.root_hash == hive_block(54).header.receipts_root
    assert len(receipts[1].encoded) > 1000
    proof = eip1186_proof(reference, pyrlp.encode(1))
    assert verify_proof(reference.root_hash, pyrlp.encode(1), proof) == receipts[1].encoded


keys = st.binary(min_size=1, max_size=5).map(lambda b: bytes(x & 0x31 for x in b))
contents_st = st.dictionaries(keys, st.binary(min_size=1, max_size=80), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(contents_st, st.lists(keys, max_size=8))
def test_py_trie_proofs_verify_to_the_same_value(contents: dict[bytes, bytes],
                                                probes: list[bytes]) -> None:
    reference = py_trie(contents)
    for key in [*contents, *probes]:
        proof = eip1186_proof(reference, key)
        assert verify_proof(reference.root_hash, key, proof) == contents.get(key)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=40),
                       min_size=1, max_size=60), st.binary(min_size=32, max_size=32))
def test_py_trie_proofs_of_32_byte_keys_verify(contents: dict[bytes, bytes],
                                               absent: bytes) -> None:
    reference = py_trie(contents)
    for key in [*list(contents)[:5], absent]:
        proof = eip1186_proof(reference, key)
        assert verify_proof(reference.root_hash, key, proof) == contents.get(key)


def _corrupt(data: st.DataObject, proof: list[bytes], root: bytes) -> tuple[bytes, list[bytes]]:
    """One corruption of a proof (or of its root), drawn by hypothesis."""
    kind = data.draw(st.sampled_from(["flip", "drop", "add", "swap", "root", "truncate"]))
    proof = list(proof)
    if kind == "root":
        other = data.draw(st.binary(min_size=32, max_size=32).filter(lambda r: r != root))
        return other, proof
    if kind == "add":
        extra = data.draw(st.sampled_from(proof) | st.binary(max_size=100))
        proof.insert(data.draw(st.integers(0, len(proof))), extra)
        return root, proof
    if kind == "swap":
        distinct = [(i, j) for i in range(len(proof)) for j in range(i + 1, len(proof))
                    if proof[i] != proof[j]]
        if not distinct:
            kind = "flip"
        else:
            i, j = data.draw(st.sampled_from(distinct))
            proof[i], proof[j] = proof[j], proof[i]
            return root, proof
    index = data.draw(st.integers(0, len(proof) - 1))
    if kind == "drop":
        del proof[index]
    elif kind == "truncate":
        proof[index] = proof[index][: data.draw(st.integers(0, len(proof[index]) - 1))]
    else:
        node = bytearray(proof[index])
        pos = data.draw(st.integers(0, len(node) - 1))
        node[pos] ^= data.draw(st.integers(1, 255))
        proof[index] = bytes(node)
    return root, proof


@settings(max_examples=150, deadline=None)
@given(contents_st, keys, st.data())
def test_corrupted_py_trie_proof_is_rejected(contents: dict[bytes, bytes], probe: bytes,
                                             data: st.DataObject) -> None:
    reference = py_trie(contents)
    key = data.draw(st.sampled_from([*contents, probe]))
    root, proof = _corrupt(data, eip1186_proof(reference, key), reference.root_hash)
    with pytest.raises(ProofError):
        verify_proof(root, key, proof)


@settings(max_examples=150, deadline=None)
@given(contents_st, keys, st.data())
def test_rehashed_corruption_never_raises_anything_but_proof_error(
        contents: dict[bytes, bytes], probe: bytes, data: st.DataObject) -> None:
    """Corrupt one node and fix the hashes above it: the walk then reaches the corrupted
    node's structure. Whatever it finds, it must answer or raise ProofError -- no
    IndexError, TypeError, RecursionError..."""
    reference = py_trie(contents)
    key = data.draw(st.sampled_from([*contents, probe]))
    proof = eip1186_proof(reference, key)
    index = data.draw(st.integers(0, len(proof) - 1))
    node = bytearray(proof[index])
    for _ in range(data.draw(st.integers(1, 3))):
        node[data.draw(st.integers(0, len(node) - 1))] = data.draw(st.integers(0, 255))
    try:
        root, proof = rehash(proof, index, bytes(node))
    except (AssertionError, pyrlp.DecodingError):
        return  # the edit broke the parent's reference in a way rehash cannot follow
    try:
        value = verify_proof(root, key, proof)
    except ProofError:
        return
    assert value is None or (isinstance(value, bytes) and value)


# --- typed parse, then verify typed data (parse_account_proof, verify_parsed_...) -----

def test_parse_account_proof_decodes_every_field_and_node() -> None:
    parsed = parse_account_proof(real_proof())
    assert isinstance(parsed, AccountProofData)
    assert parsed.address == hex_bytes(WITH_STORAGE["address"])
    assert (parsed.nonce, parsed.balance) == (int(WITH_STORAGE["nonce"], 16),
                                              int(WITH_STORAGE["balance"], 16))
    assert parsed.storage_hash == hex_bytes(WITH_STORAGE["storageHash"])
    assert parsed.code_hash == hex_bytes(WITH_STORAGE["codeHash"])
    assert parsed.account_proof == tuple(hex_bytes(n) for n in WITH_STORAGE["accountProof"])
    entry = WITH_STORAGE["storageProof"][0]
    assert parsed.storage_proof == (StorageProofData(
        b"\x00" * 32, int(entry["value"], 16), tuple(hex_bytes(n) for n in entry["proof"])),)
    assert parsed.claimed == Account(parsed.nonce, parsed.balance, parsed.storage_hash,
                                     parsed.code_hash)


@pytest.mark.parametrize("key", ["0x1", "0x01", "0x" + "00" * 31 + "01"])
def test_parsed_storage_key_is_exactly_32_bytes(key: str) -> None:
    result = real_proof()
    result["storageProof"][0]["key"] = key
    assert parse_account_proof(result).storage_proof[0].key == b"\x00" * 31 + b"\x01"


def test_parse_refuses_a_storage_key_longer_than_32_bytes_even_of_zeros() -> None:
    result = real_proof()
    result["storageProof"][0]["key"] = "0x" + "00" * 33
    with pytest.raises(MalformedInputError, match="more than 32 bytes"):
        parse_account_proof(result)


@pytest.mark.parametrize("name", ["node-not-hex", "storage-key-not-hex", "missing-storageHash"])
def test_parse_refuses_malformed_json_before_any_verification(name: str) -> None:
    result = real_proof()
    MALFORMED[name](result)
    with pytest.raises(MalformedInputError):
        parse_account_proof(result)


def test_parse_checks_the_whole_answer_before_verifying_any_of_it() -> None:
    """A malformed storage entry is refused as malformed even when the account proof
    would also fail: nothing is verified until everything is read."""
    result = real_proof()
    result["storageProof"][0]["proof"] = ["0xzz"]
    with pytest.raises(MalformedInputError):
        verify_account_proof(hive_block(53).header.state_root, result)


def test_verify_parsed_equals_verify_account_proof() -> None:
    proven = verify_parsed_account_proof(STATE_ROOT, parse_account_proof(real_proof()))
    assert proven == verify_account_proof(STATE_ROOT, real_proof())


def test_verify_parsed_refuses_an_answer_that_omits_a_requested_slot() -> None:
    parsed = parse_account_proof(SYNTHETIC.get_proof(ALICE, [0, 1]))
    keys = [k.to_bytes(32, "big") for k in (0, 1, 2)]
    with pytest.raises(VerificationError, match=r"no proof for requested key 0x0+2"):
        verify_parsed_account_proof(SYNTHETIC.root, parsed, requested_slots=keys)
    proven = verify_parsed_account_proof(SYNTHETIC.root, parsed, requested_slots=keys[:2])
    assert [s.value for s in proven.storage] == [5, 0x1234]


def test_verify_parsed_refuses_an_answer_about_another_address() -> None:
    parsed = parse_account_proof(SYNTHETIC.get_proof(BOB, []))
    with pytest.raises(VerificationError) as exc:
        verify_parsed_account_proof(SYNTHETIC.root, parsed, requested_address=ALICE)
    assert exc.value.field == "proof.address"
    assert verify_parsed_account_proof(SYNTHETIC.root, parsed,
                                       requested_address=BOB).account.balance == 3


def test_verify_parsed_proves_absence_of_requested_slots() -> None:
    parsed = parse_account_proof(SYNTHETIC.get_proof(NOBODY, [7]))
    proven = verify_parsed_account_proof(SYNTHETIC.root, parsed, requested_address=NOBODY,
                                         requested_slots=[(7).to_bytes(32, "big")])
    assert not proven.exists and proven.storage[0].value == 0

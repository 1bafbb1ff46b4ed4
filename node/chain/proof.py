"""Verification of Merkle-Patricia proofs as returned by ``eth_getProof`` (EIP-1186).

A proof is the list of trie nodes on the path from the root to a key. Starting from
the trusted root hash, every node must hash to the reference its parent holds; the
key's nibbles choose the way down. The walk ends in the key's value, or proves the
key *absent* by reaching an empty branch slot or a leaf/extension whose path
diverges from the key. Every node must be used: extra nodes are refused, as are
missing ones.

Accounts live in the state trie at keccak256(address) as
``rlp([nonce, balance, storageRoot, codeHash])`` (Yellow Paper §4.1); storage slots
live in the account's storage trie at keccak256(slot as 32 bytes) as ``rlp(value)``.

An ``eth_getProof`` answer enters through one door: :func:`parse_account_proof` reads the
wire JSON into :class:`AccountProofData` (every field and node decoded, nothing trusted),
and :func:`verify_parsed_account_proof` verifies typed data only -- including that the
answer is about the requested address and covers every requested storage key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.chain import rlp
from node.chain.errors import MalformedInputError, ProofError, VerificationError
from node.chain.hashing import EMPTY_KECCAK, keccak256
from node.chain.rpcjson import array, data, obj_at, parse_data, parse_quantity, quantity
from node.chain.trie import EMPTY_TRIE_ROOT, decode_hex_prefix, nibbles

EMPTY_TRIE_NODE = rlp.encode(b"")
"""The root "node" of an empty trie; some clients (anvil) send it as the whole proof."""
MAX_PROOF_NODES = 64 + 1  # a 32-byte key has 64 nibbles; one node per nibble, plus a leaf
MAX_STATE_NODE_BYTES = 17 * 33 + 64
"""Largest node of a state or storage trie: a full branch of hashes (its leaves, accounts
and slot values, are smaller). Receipt and transaction tries have larger leaves."""


def verify_proof(root: bytes, key: bytes, proof: Sequence[bytes], field: str = "proof",
                 max_node_bytes: int | None = None) -> bytes | None:
    """Walk ``proof`` from ``root`` along ``key``; return the value, or ``None`` when the
    proof shows the key is absent. Raise :class:`ProofError` when the proof does not
    prove either against ``root``, or holds a node over ``max_node_bytes``."""
    if len(proof) > MAX_PROOF_NODES:
        raise ProofError(field, f"{len(proof)} nodes, more than a proof can need")
    path = nibbles(key)
    if not proof:
        if root == EMPTY_TRIE_ROOT:
            return None
        raise ProofError(field, "empty proof for a non-empty trie")
    expected: rlp.Item = root  # reference of the next node: a hash, or an inline node
    used = 0
    pos = 0
    while True:
        if isinstance(expected, bytes):
            if len(expected) != 32:
                raise ProofError(field, f"node {used}: reference of {len(expected)} bytes")
            if used == len(proof):
                raise ProofError(field, f"proof ends after {used} nodes, before the key's path")
            encoded = proof[used]
            if max_node_bytes is not None and len(encoded) > max_node_bytes:
                raise ProofError(field, f"node {used} is {len(encoded)} bytes, too big for a node")
            if keccak256(encoded) != expected:
                raise ProofError(field, f"node {used} does not hash to its parent's reference",
                                 claimed="0x" + expected.hex(), computed="0x" +
                                 keccak256(encoded).hex())
            used += 1
            if used == 1 and encoded == EMPTY_TRIE_NODE:  # the root of an empty trie
                return _finish(None, used, proof, field)
            node = _decode_node(encoded, field, used - 1)
        else:
            node = expected  # embedded node (its RLP is shorter than 32 bytes)
        if len(node) == 17:
            if pos == len(path):
                value = _string(node[16], field, used)
                return _finish(value or None, used, proof, field)
            child = node[path[pos]]
            pos += 1
            if child == b"":
                return _finish(None, used, proof, field)
            expected = child
            continue
        if len(node) != 2:
            raise ProofError(field, f"node {used - 1} has {len(node)} items (want 2 or 17)")
        try:
            segment, is_leaf = decode_hex_prefix(_string(node[0], field, used))
        except MalformedInputError as exc:
            raise ProofError(field, f"node {used - 1}: {exc}") from None
        if is_leaf:
            value = _string(node[1], field, used)
            if not value:
                raise ProofError(field, f"node {used - 1}: leaf with an empty value")
            found = path[pos:] == segment
            return _finish(value if found else None, used, proof, field)
        if not segment:
            raise ProofError(field, f"node {used - 1}: extension with an empty path")
        if path[pos : pos + len(segment)] != segment:
            return _finish(None, used, proof, field)
        pos += len(segment)
        expected = node[1]
        if expected == b"":
            raise ProofError(field, f"node {used - 1}: extension to nothing")


def _decode_node(encoded: bytes, field: str, index: int) -> list[rlp.Item]:
    try:
        node = rlp.decode(encoded)
    except MalformedInputError as exc:
        raise ProofError(field, f"node {index}: {exc}") from None
    if not isinstance(node, list):
        raise ProofError(field, f"node {index} is an RLP string, not a trie node")
    return node


def _string(item: rlp.Item, field: str, index: int) -> bytes:
    if not isinstance(item, bytes):
        raise ProofError(field, f"node {index - 1}: expected a string where a list is")
    return item


def _finish(value: bytes | None, used: int, proof: Sequence[bytes], field: str) -> bytes | None:
    if used != len(proof):
        raise ProofError(field, f"{len(proof) - used} proof nodes left over after the key's path")
    return value


@dataclass(frozen=True)
class Account:
    """An account as the state trie holds it (Yellow Paper §4.1)."""

    nonce: int
    balance: int  # in wei
    storage_root: bytes  # root of the account's storage trie
    code_hash: bytes  # keccak256 of the account's code

    @property
    def is_empty(self) -> bool:
        """True for the value an absent account reads as."""
        return self == EMPTY_ACCOUNT


EMPTY_ACCOUNT = Account(0, 0, EMPTY_TRIE_ROOT, EMPTY_KECCAK)


def decode_account(encoded: bytes) -> Account:
    """Decode a state-trie leaf value ``rlp([nonce, balance, storageRoot, codeHash])``."""
    items = rlp.decode_list(rlp.decode(encoded), "account", 4)
    return Account(
        nonce=rlp.decode_int(items[0], "account nonce", 64),
        balance=rlp.decode_int(items[1], "account balance"),
        storage_root=rlp.decode_bytes(items[2], "account storageRoot", 32),
        code_hash=rlp.decode_bytes(items[3], "account codeHash", 32),
    )


@dataclass(frozen=True)
class StorageSlot:
    """A proven storage slot: ``key`` as 32 bytes, ``value`` (0 when absent)."""

    key: bytes
    value: int


@dataclass(frozen=True)
class ProvenAccount:
    """What an ``eth_getProof`` result proves against a state root."""

    address: bytes
    account: Account
    exists: bool  # False when the proof shows the address absent from the state trie
    storage: tuple[StorageSlot, ...]


@dataclass(frozen=True)
class StorageProofData:
    """One ``storageProof`` entry of an ``eth_getProof`` answer, parsed but not verified."""

    key: bytes  # the slot, exactly 32 bytes (clients echo it as a quantity or as data)
    value: int  # the value the answer claims (0 for an absent slot)
    proof: tuple[bytes, ...]  # trie nodes from the storage root along keccak256(key)


@dataclass(frozen=True)
class AccountProofData:
    """An ``eth_getProof`` answer (EIP-1186) as typed data: every field decoded and every
    node list read, nothing verified yet (:func:`verify_parsed_account_proof` does that)."""

    address: bytes  # 20 bytes
    nonce: int
    balance: int  # in wei
    storage_hash: bytes  # the claimed storageRoot
    code_hash: bytes  # the claimed codeHash
    account_proof: tuple[bytes, ...]  # state-trie nodes from the root along keccak256(address)
    storage_proof: tuple[StorageProofData, ...]

    @property
    def claimed(self) -> Account:
        """The account the answer claims (for an absent one: the empty account)."""
        return Account(self.nonce, self.balance, self.storage_hash, self.code_hash)


def parse_account_proof(result: Mapping[str, Any], where: str = "proof") -> AccountProofData:
    """Read an ``eth_getProof`` result into :class:`AccountProofData`.

    Checks types and sizes only (EIP-1186 field names; QUANTITY/DATA per execution-apis):
    a 20-byte address, a 64-bit nonce, 32-byte hashes, hex node lists no longer than a proof
    can need, storage keys of at most 32 bytes (returned as exactly 32). Raises
    :class:`MalformedInputError` naming the field.
    """
    result = obj_at(result, where)
    address = data(result, "address", where, size=20)
    nonce = quantity(result, "nonce", where, bits=64)
    balance = quantity(result, "balance", where)
    storage_hash = data(result, "storageHash", where, size=32)
    code_hash = data(result, "codeHash", where, size=32)
    account_nodes = _proof_nodes(result, "accountProof", where)
    entries = []
    for i, raw in enumerate(array(result, "storageProof", where)):
        at = f"{where}.storageProof[{i}]"
        entry = obj_at(raw, at)
        entries.append(StorageProofData(
            key=_storage_key(entry.get("key"), f"{at}.key"),
            value=quantity(entry, "value", at),
            proof=tuple(_proof_nodes(entry, "proof", at))))
    return AccountProofData(address, nonce, balance, storage_hash, code_hash,
                            tuple(account_nodes), tuple(entries))


def verify_parsed_account_proof(state_root: bytes, parsed: AccountProofData, *,
                                requested_address: bytes | None = None,
                                requested_slots: Iterable[bytes] = (),
                                where: str = "proof") -> ProvenAccount:
    """Verify parsed ``eth_getProof`` data (EIP-1186) against ``state_root``.

    The account proof must prove the claimed nonce, balance, storageHash and codeHash
    (or, for an absent account, the empty account: 0, 0, the empty trie root and
    keccak256("")); each storage proof must prove its claimed value under the proven
    storage root. When the caller says what it asked for, the answer must be about
    ``requested_address`` and hold a proof for every one of ``requested_slots`` (32-byte
    keys): an answer that leaves a requested key out proves nothing about it.
    """
    if requested_address is not None and parsed.address != requested_address:
        raise VerificationError(f"{where}.address", parsed.address, requested_address,
                                reason=f"answer is about 0x{parsed.address.hex()}, "
                                       f"0x{requested_address.hex()} was requested")
    answered = {entry.key for entry in parsed.storage_proof}
    for slot in requested_slots:
        if slot not in answered:
            raise VerificationError(f"{where}.storageProof",
                                    reason=f"no proof for requested key 0x{slot.hex()}")
    leaf = verify_proof(state_root, keccak256(parsed.address), parsed.account_proof,
                        "accountProof", MAX_STATE_NODE_BYTES)
    try:
        proven = EMPTY_ACCOUNT if leaf is None else decode_account(leaf)
    except MalformedInputError as exc:
        raise ProofError("accountProof", f"proven leaf is not an account: {exc}") from None
    claimed = parsed.claimed
    for name, attr in (("nonce", "nonce"), ("balance", "balance"),
                       ("storageHash", "storage_root"), ("codeHash", "code_hash")):
        if getattr(claimed, attr) != getattr(proven, attr):
            raise VerificationError(name, getattr(claimed, attr), getattr(proven, attr))
    slots = tuple(_verify_storage(proven.storage_root, entry, f"{where}.storageProof[{i}]")
                  for i, entry in enumerate(parsed.storage_proof))
    return ProvenAccount(parsed.address, proven, leaf is not None, slots)


def verify_account_proof(state_root: bytes, result: Mapping[str, Any],
                         where: str = "proof") -> ProvenAccount:
    """Parse and verify an ``eth_getProof`` result (EIP-1186) against ``state_root``:
    :func:`parse_account_proof`, then :func:`verify_parsed_account_proof`."""
    return verify_parsed_account_proof(state_root, parse_account_proof(result, where),
                                       where=where)


def verify_storage_proof(storage_root: bytes, entry: Mapping[str, Any],
                         where: str = "storageProof") -> StorageSlot:
    """Verify one ``storageProof`` entry ``{key, value, proof}`` against ``storage_root``."""
    entry = obj_at(entry, where)
    parsed = StorageProofData(key=_storage_key(entry.get("key"), f"{where}.key"),
                              value=quantity(entry, "value", where),
                              proof=tuple(_proof_nodes(entry, "proof", where)))
    return _verify_storage(storage_root, parsed, where)


def _verify_storage(storage_root: bytes, entry: StorageProofData, where: str) -> StorageSlot:
    leaf = verify_proof(storage_root, keccak256(entry.key), entry.proof, f"{where}.proof",
                        MAX_STATE_NODE_BYTES)
    if leaf is None:
        proven = 0
    else:
        try:
            proven = rlp.decode_int(rlp.decode(leaf), "storage value")
        except MalformedInputError as exc:
            raise ProofError(f"{where}.proof", f"proven leaf is not a value: {exc}") from None
    if entry.value != proven:
        raise VerificationError(f"{where}.value", hex(entry.value), hex(proven))
    return StorageSlot(entry.key, proven)


def _storage_key(raw: Any, where: str) -> bytes:
    """A storage key as 32 bytes. Clients echo the requested key, as a quantity or as
    32-byte data; both denote the same slot."""
    if raw is None:
        raise MalformedInputError("missing field", where=where)
    if isinstance(raw, str) and len(raw) > 2 + 64:
        raise MalformedInputError(f"key of {len(raw) - 2} hex digits, more than 32 bytes",
                                  where=where)
    value = parse_quantity(raw, where)
    return value.to_bytes(32, "big")


def _proof_nodes(obj: Mapping[str, Any], key: str, where: str) -> list[bytes]:
    raw = array(obj, key, where)
    if len(raw) > MAX_PROOF_NODES:
        raise MalformedInputError(f"{len(raw)} proof nodes, more than a proof can need",
                                  where=f"{where}.{key}")
    return [parse_data(node, f"{where}.{key}[{i}]") for i, node in enumerate(raw)]

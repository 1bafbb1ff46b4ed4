"""Transactions of every envelope: decode from JSON-RPC or raw bytes, re-encode, hash,
and recover the sender.

=====  =====================  ==========================================================
type   name                   RLP payload (signature fields last)
=====  =====================  ==========================================================
--     legacy (EIP-155)       [nonce, gasPrice, gas, to, value, data, v, r, s]
0x01   access list, EIP-2930  [chainId, nonce, gasPrice, gas, to, value, data, accessList,
                              yParity, r, s]
0x02   fee market, EIP-1559   [chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to,
                              value, data, accessList, yParity, r, s]
0x03   blob, EIP-4844         [..EIP-1559 fields.., maxFeePerBlobGas, blobVersionedHashes,
                              yParity, r, s]  (``to`` may not be empty)
0x04   set code, EIP-7702     [..EIP-1559 fields.., authorizationList, yParity, r, s]
=====  =====================  ==========================================================

A typed transaction is encoded as ``type || rlp(payload)`` (EIP-2718) and a legacy one
as ``rlp(payload)``; its hash is keccak256 of that encoding, which is also what the
transactions trie holds (the canonical form, without EIP-4844 blob sidecars).

The sender is recovered with secp256k1 from the signature over the signing hash:
keccak256(rlp(first six fields)) for pre-EIP-155 legacy transactions,
keccak256(rlp(six fields + [chainId, 0, 0])) for EIP-155 ones, and
keccak256(type || rlp(payload without signature)) for typed ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import coincurve

from node.chain import rlp
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.hashing import keccak256
from node.chain.rpcjson import array, field, obj_at, parse_data, parse_quantity

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order of the secp256k1 group; EIP-2 requires s <= N // 2."""

LEGACY, ACCESS_LIST, FEE_MARKET, BLOB, SET_CODE = 0, 1, 2, 3, 4

# Kinds of field: how a value is read from JSON, checked and RLP-(de)coded.
U64, U256, ADDRESS, TO, BYTES, ACCESS, HASHES, AUTHS, PARITY = (
    "u64", "u256", "address", "to", "bytes", "access", "hashes", "auths", "parity")

_FEE_MARKET_BODY = (
    ("chainId", U256), ("nonce", U64), ("maxPriorityFeePerGas", U256),
    ("maxFeePerGas", U256), ("gas", U64), ("to", TO), ("value", U256), ("input", BYTES),
    ("accessList", ACCESS),
)
_TYPED_SIGNATURE = (("yParity", PARITY), ("r", U256), ("s", U256))

SCHEMAS: dict[int, tuple[tuple[str, str], ...]] = {
    LEGACY: (("nonce", U64), ("gasPrice", U256), ("gas", U64), ("to", TO), ("value", U256),
             ("input", BYTES), ("v", U256), ("r", U256), ("s", U256)),
    ACCESS_LIST: (("chainId", U256), ("nonce", U64), ("gasPrice", U256), ("gas", U64),
                  ("to", TO), ("value", U256), ("input", BYTES), ("accessList", ACCESS),
                  *_TYPED_SIGNATURE),
    FEE_MARKET: (*_FEE_MARKET_BODY, *_TYPED_SIGNATURE),
    BLOB: (*_FEE_MARKET_BODY[:5], ("to", ADDRESS), *_FEE_MARKET_BODY[6:],
           ("maxFeePerBlobGas", U256), ("blobVersionedHashes", HASHES), *_TYPED_SIGNATURE),
    SET_CODE: (*_FEE_MARKET_BODY[:5], ("to", ADDRESS), *_FEE_MARKET_BODY[6:],
               ("authorizationList", AUTHS), *_TYPED_SIGNATURE),
}
"""Field names (as in JSON-RPC) and kinds of each envelope, in RLP order."""

_AUTH_SCHEMA = (("chainId", U256), ("address", ADDRESS), ("nonce", U64),
                ("yParity", PARITY), ("r", U256), ("s", U256))
"""EIP-7702 authorization tuple [chain_id, address, nonce, y_parity, r, s]."""


@dataclass(frozen=True)
class Transaction:
    """A transaction of any envelope. ``values`` are its RLP payload's items in the
    order of ``SCHEMAS[tx_type]``, already decoded (ints, bytes, nested lists)."""

    tx_type: int
    values: tuple[Any, ...]

    def __getitem__(self, name: str) -> Any:
        """A field by its JSON-RPC name, e.g. ``tx["nonce"]``."""
        for (key, _kind), value in zip(SCHEMAS[self.tx_type], self.values, strict=True):
            if key == name:
                return value
        raise KeyError(name)

    @cached_property
    def encoded(self) -> bytes:
        """The canonical encoding (EIP-2718): what the transactions trie holds."""
        body = rlp.encode([_to_rlp(kind, v) for (_n, kind), v in
                           zip(SCHEMAS[self.tx_type], self.values, strict=True)])
        return body if self.tx_type == LEGACY else bytes([self.tx_type]) + body

    @cached_property
    def hash(self) -> bytes:
        """keccak256 of the canonical encoding."""
        return keccak256(self.encoded)

    @property
    def chain_id(self) -> int | None:
        """The chain id, or None for a pre-EIP-155 legacy transaction."""
        if self.tx_type != LEGACY:
            return self["chainId"]
        v = self["v"]
        if v in (27, 28):
            return None
        if v < 35:
            raise MalformedInputError(f"legacy transaction with invalid v={v} "
                                      "(want 27, 28 or chainId*2+35/36, EIP-155)")
        return (v - 35) // 2

    def signing_hash(self) -> bytes:
        """The digest the sender signed (EIP-155 / EIP-2718 typed payload)."""
        fields = [_to_rlp(kind, v) for (_n, kind), v in
                  zip(SCHEMAS[self.tx_type], self.values, strict=True)][:-3]
        if self.tx_type != LEGACY:
            return keccak256(bytes([self.tx_type]) + rlp.encode(fields))
        chain_id = self.chain_id
        if chain_id is not None:
            fields += [chain_id, b"", b""]
        return keccak256(rlp.encode(fields))

    @cached_property
    def sender(self) -> bytes:
        """The 20-byte address that signed this transaction (secp256k1 recovery)."""
        if self.tx_type == LEGACY:
            v = self["v"]
            parity = v - 27 if self.chain_id is None else (v - 35) % 2
        else:
            parity = self["yParity"]
        # Legacy transactions without EIP-155 may predate EIP-2's low-s rule (Frontier).
        return recover_address(self.signing_hash(), parity, self["r"], self["s"],
                               low_s=not (self.tx_type == LEGACY and self["v"] in (27, 28)))


def recover_address(digest: bytes, parity: int, r: int, s: int, low_s: bool = True) -> bytes:
    """Address (last 20 bytes of keccak256 of the public key) that signed ``digest``
    (SEC 1 §4.1.6 public-key recovery; EIP-2 low-s when ``low_s``)."""
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise MalformedInputError("signature r or s out of range")
    if low_s and s > SECP256K1_N // 2:
        raise MalformedInputError("signature s is in the upper half of the curve order (EIP-2)")
    if parity not in (0, 1):
        raise MalformedInputError(f"signature y parity {parity} is not 0 or 1")
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([parity])
    try:
        public = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except Exception as exc:  # coincurve raises a bare Exception on failed recovery
        raise MalformedInputError(f"signature does not recover a public key ({exc})") from None
    return keccak256(public.format(compressed=False)[1:])[12:]


# --- JSON-RPC ------------------------------------------------------------------------

def transaction_from_rpc(obj: Mapping[str, Any], where: str = "transaction") -> Transaction:
    """Build a :class:`Transaction` from a JSON-RPC transaction object (execution-apis
    ``src/schemas/transaction.yaml``), checking every field's type and size."""
    obj = obj_at(obj, where)
    tx_type = parse_quantity(obj.get("type", "0x0"), f"{where}.type", 8)
    if tx_type not in SCHEMAS:
        raise MalformedInputError(f"unsupported transaction type {tx_type:#x}",
                                  where=f"{where}.type")
    values = []
    for name, kind in SCHEMAS[tx_type]:
        raw = _json_field(obj, name, kind, tx_type, where)
        values.append(_from_json(kind, raw, f"{where}.{name}"))
    tx = Transaction(tx_type, tuple(values))
    if tx_type == LEGACY and obj.get("chainId") is not None:
        _check_legacy_chain_id(tx, parse_quantity(obj["chainId"], f"{where}.chainId"), where)
    return tx


def _check_legacy_chain_id(tx: Transaction, claimed: int, where: str) -> None:
    """A legacy transaction's ``chainId`` is not signed as a field: it is what ``v``
    encodes (EIP-155: v = chainId * 2 + 35 or 36). A transaction with v = 27 or 28 binds
    no chain, and geth and erigon omit the field for it; the schema's meaning, "Chain ID
    that this transaction is valid on" (execution-apis ``transaction.yaml``), would make
    any other claim say it is replay-protected when it is not. Only 0, which go-ethereum's
    ``Transaction.ChainId()`` and ethers give such a transaction, is accepted."""
    if tx.chain_id is None:
        if claimed != 0:
            raise VerificationError(f"{where}.chainId", claimed, None, reason=(
                f"chainId {claimed} claimed, but v={tx['v']} is not replay-protected "
                "(pre-EIP-155): the signature binds no chain"))
    elif claimed != tx.chain_id:
        raise VerificationError(f"{where}.chainId", claimed, tx.chain_id,
                                reason=f"chainId {claimed} but v encodes {tx.chain_id}")


def _json_field(obj: Mapping[str, Any], name: str, kind: str, tx_type: int, where: str) -> Any:
    if name == "input" and "input" not in obj and "data" in obj:
        return obj["data"]
    if name == "to" and kind == TO:
        return obj.get("to")  # null or absent: contract creation
    if name == "yParity" and obj.get("yParity") is None:
        # Older clients give typed transactions only ``v`` (equal to the y parity).
        return field(obj, "v", where)
    if name == "yParity" and obj.get("v") is not None:
        v = parse_quantity(obj["v"], f"{where}.v")
        if v != parse_quantity(obj["yParity"], f"{where}.yParity", 8):
            raise MalformedInputError(f"v ({v}) and yParity disagree", where=where)
    return field(obj, name, where)


def _from_json(kind: str, raw: Any, where: str) -> Any:
    if kind in (U64, U256, PARITY):
        value = parse_quantity(raw, where, 64 if kind == U64 else 256)
        if kind == PARITY and value > 1:
            raise MalformedInputError(f"y parity must be 0 or 1, got {value}", where=where)
        return value
    if kind == ADDRESS:
        return parse_data(raw, where, 20)
    if kind == TO:  # contract creation: null, absent or (some clients) "0x"
        return b"" if raw is None or raw == "0x" else parse_data(raw, where, 20)
    if kind == BYTES:
        return parse_data(raw, where)
    if kind == HASHES:
        return tuple(parse_data(h, f"{where}[{i}]", 32) for i, h in enumerate(_list(raw, where)))
    if kind == ACCESS:
        entries = []
        for i, entry in enumerate(_list(raw, where)):
            at = f"{where}[{i}]"
            entry = obj_at(entry, at)
            keys = tuple(parse_data(k, f"{at}.storageKeys[{j}]", 32)
                         for j, k in enumerate(array(entry, "storageKeys", at)))
            entries.append((parse_data(field(entry, "address", at), f"{at}.address", 20), keys))
        return tuple(entries)
    if kind == AUTHS:
        auths = []
        for i, entry in enumerate(_list(raw, where)):
            at = f"{where}[{i}]"
            entry = obj_at(entry, at)
            auths.append(tuple(
                _from_json(k, _json_field(entry, n, k, SET_CODE, at), f"{at}.{n}")
                for n, k in _AUTH_SCHEMA))
        return tuple(auths)
    raise AssertionError(kind)


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise MalformedInputError(f"expected a JSON array, got {type(raw).__name__}",
                                  where=where)
    return raw


# --- RLP -----------------------------------------------------------------------------

def _to_rlp(kind: str, value: Any) -> rlp.Encodable:
    if kind == ACCESS:
        return [[address, list(keys)] for address, keys in value]
    if kind == AUTHS:
        return [[_to_rlp(k, v) for (_n, k), v in zip(_AUTH_SCHEMA, auth, strict=True)]
                for auth in value]
    if kind == HASHES:
        return list(value)
    return value


def _from_rlp(kind: str, item: rlp.Item, name: str) -> Any:
    if kind in (U64, U256, PARITY):
        value = rlp.decode_int(item, name, 64 if kind == U64 else 256)
        if kind == PARITY and value > 1:
            raise MalformedInputError(f"rlp: {name} must be 0 or 1, got {value}")
        return value
    if kind == ADDRESS:
        return rlp.decode_bytes(item, name, 20)
    if kind == TO:
        value = rlp.decode_bytes(item, name)
        if len(value) not in (0, 20):
            raise MalformedInputError(f"rlp: {name} must be empty or 20 bytes, got {len(value)}")
        return value
    if kind == BYTES:
        return rlp.decode_bytes(item, name)
    if kind == HASHES:
        return tuple(rlp.decode_bytes(h, name, 32) for h in rlp.decode_list(item, name))
    if kind == ACCESS:
        entries = []
        for entry in rlp.decode_list(item, name):
            address, keys = rlp.decode_list(entry, "access list entry", 2)
            entries.append((rlp.decode_bytes(address, "access list address", 20),
                            tuple(rlp.decode_bytes(k, "storage key", 32)
                                  for k in rlp.decode_list(keys, "storage keys"))))
        return tuple(entries)
    if kind == AUTHS:
        return tuple(
            tuple(_from_rlp(k, v, f"authorization {n}") for (n, k), v in
                  zip(_AUTH_SCHEMA, rlp.decode_list(auth, "authorization", 6), strict=True))
            for auth in rlp.decode_list(item, name))
    raise AssertionError(kind)


def decode_transaction(encoded: bytes) -> Transaction:
    """Decode a canonical transaction encoding (EIP-2718): a legacy RLP list, or a type
    byte followed by the RLP payload of that type."""
    if not encoded:
        raise MalformedInputError("empty transaction")
    if encoded[0] >= 0xC0:
        tx_type, payload = LEGACY, encoded
    elif encoded[0] in SCHEMAS and encoded[0] != LEGACY:
        tx_type, payload = encoded[0], encoded[1:]
    else:
        raise MalformedInputError(f"unsupported transaction type {encoded[0]:#04x}")
    schema = SCHEMAS[tx_type]
    items = rlp.decode_list(rlp.decode(payload), "transaction", len(schema))
    values = tuple(_from_rlp(kind, item, name)
                   for (name, kind), item in zip(schema, items, strict=True))
    return Transaction(tx_type, values)


def transactions_from_block_rlp(items: Sequence[rlp.Item]) -> list[Transaction]:
    """Transactions as a block body holds them: legacy ones as RLP lists, typed ones as
    RLP strings holding ``type || payload`` (EIP-2718)."""
    out = []
    for item in items:
        encoded = rlp.encode(item) if isinstance(item, list) else item
        if isinstance(item, bytes) and (not item or item[0] >= 0xC0):
            raise MalformedInputError("rlp: typed transaction expected in a string item")
        out.append(decode_transaction(encoded))
    return out

"""Execution-layer block headers: every fork's shape, from JSON-RPC and from RLP.

A header's hash is ``keccak256(rlp(header))`` over its fields in the order below
(Yellow Paper §4.3; execution-specs ``forks/*/blocks.py``, class ``Header``). Forks
only ever append fields, so the shape of a header is the number of optional trailing
fields it carries:

=======================  ==============================  ==========
field (JSON-RPC name)    introduced by                   fork
=======================  ==============================  ==========
``baseFeePerGas``        EIP-1559                        London
``withdrawalsRoot``      EIP-4895                        Shanghai
``blobGasUsed``          EIP-4844                        Cancun
``excessBlobGas``        EIP-4844                        Cancun
``parentBeaconBlockRoot`` EIP-4788                       Cancun
``requestsHash``         EIP-7685                        Prague
``blockAccessListHash``  EIP-7928 (draft)                Amsterdam
``slotNumber``           EIP-7843 (draft)                Amsterdam
=======================  ==============================  ==========

A later field without all the earlier ones is malformed. A header whose fields do
not hash to the claimed ``hash`` raises :class:`VerificationError`; since the hash
is collision resistant, a wrong guess about a future fork's fields can only make a
genuine header fail, never make a forged one pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

from node.chain import rlp
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.hashing import keccak256
from node.chain.rpcjson import field, obj_at, parse_data, parse_quantity

EMPTY_OMMERS_HASH = keccak256(rlp.encode([]))
"""keccak256(rlp([])): the ``sha3Uncles`` of a block without ommers (always, after the
Merge, EIP-3675)."""


@dataclass(frozen=True)
class Header:
    """An execution-layer block header. Field order is the RLP order."""

    parent_hash: bytes  # keccak of the parent header
    ommers_hash: bytes  # keccak(rlp(ommer headers)); JSON ``sha3Uncles``
    coinbase: bytes  # 20-byte fee recipient; JSON ``miner``
    state_root: bytes  # root of the state trie after this block
    transactions_root: bytes  # root of the trie of this block's transactions
    receipts_root: bytes  # root of the trie of this block's receipts
    logs_bloom: bytes  # 256-byte bloom of all logs (Yellow Paper §4.3.1)
    difficulty: int  # 0 after the Merge (EIP-3675)
    number: int
    gas_limit: int
    gas_used: int
    timestamp: int
    extra_data: bytes
    mix_hash: bytes  # prevRandao after the Merge (EIP-4399)
    nonce: bytes  # 8 bytes; zero after the Merge
    base_fee_per_gas: int | None = None  # EIP-1559
    withdrawals_root: bytes | None = None  # EIP-4895
    blob_gas_used: int | None = None  # EIP-4844
    excess_blob_gas: int | None = None  # EIP-4844
    parent_beacon_block_root: bytes | None = None  # EIP-4788
    requests_hash: bytes | None = None  # EIP-7685
    block_access_list_hash: bytes | None = None  # EIP-7928 (draft)
    slot_number: int | None = None  # EIP-7843 (draft)

    @cached_property
    def rlp(self) -> bytes:
        """The header's RLP encoding: its fields in order, trailing absent ones omitted."""
        values = [getattr(self, spec.attr) for spec in _SPECS]
        while values[-1] is None:
            values.pop()
        return rlp.encode_flat(values)

    @cached_property
    def hash(self) -> bytes:
        """keccak256(rlp(header)) -- the block hash."""
        return keccak256(self.rlp)

    @property
    def fork(self) -> str:
        """The newest fork whose header shape this is."""
        for spec in reversed(_SPECS[_FIRST_OPTIONAL:]):
            if getattr(self, spec.attr) is not None:
                return spec.fork
        return "frontier"


@dataclass(frozen=True)
class _FieldSpec:
    json: str  # JSON-RPC name
    attr: str  # Header attribute
    size: int | None  # exact byte length of a DATA field; None for a QUANTITY
    bits: int  # bit width of a QUANTITY
    fork: str  # fork that introduced it ("" for the original fields)


_SPECS: tuple[_FieldSpec, ...] = (
    _FieldSpec("parentHash", "parent_hash", 32, 0, ""),
    _FieldSpec("sha3Uncles", "ommers_hash", 32, 0, ""),
    _FieldSpec("miner", "coinbase", 20, 0, ""),
    _FieldSpec("stateRoot", "state_root", 32, 0, ""),
    _FieldSpec("transactionsRoot", "transactions_root", 32, 0, ""),
    _FieldSpec("receiptsRoot", "receipts_root", 32, 0, ""),
    _FieldSpec("logsBloom", "logs_bloom", 256, 0, ""),
    _FieldSpec("difficulty", "difficulty", None, 256, ""),
    _FieldSpec("number", "number", None, 64, ""),
    _FieldSpec("gasLimit", "gas_limit", None, 64, ""),
    _FieldSpec("gasUsed", "gas_used", None, 64, ""),
    _FieldSpec("timestamp", "timestamp", None, 64, ""),
    _FieldSpec("extraData", "extra_data", -1, 0, ""),
    _FieldSpec("mixHash", "mix_hash", 32, 0, ""),
    _FieldSpec("nonce", "nonce", 8, 0, ""),
    _FieldSpec("baseFeePerGas", "base_fee_per_gas", None, 256, "london"),
    _FieldSpec("withdrawalsRoot", "withdrawals_root", 32, 0, "shanghai"),
    _FieldSpec("blobGasUsed", "blob_gas_used", None, 64, "cancun"),
    _FieldSpec("excessBlobGas", "excess_blob_gas", None, 64, "cancun"),
    _FieldSpec("parentBeaconBlockRoot", "parent_beacon_block_root", 32, 0, "cancun"),
    _FieldSpec("requestsHash", "requests_hash", 32, 0, "prague"),
    _FieldSpec("blockAccessListHash", "block_access_list_hash", 32, 0, "amsterdam"),
    _FieldSpec("slotNumber", "slot_number", None, 64, "amsterdam"),
)
_FIRST_OPTIONAL = 15
assert [f.name for f in fields(Header)] == [s.attr for s in _SPECS]


def _parse(spec: _FieldSpec, value: Any, where: str) -> bytes | int:
    if spec.size is None:
        return parse_quantity(value, where, spec.bits, spec.json)
    return parse_data(value, where, None if spec.size < 0 else spec.size, key=spec.json)


def header_from_rpc(block: Mapping[str, Any], where: str = "block") -> Header:
    """Build a :class:`Header` from an ``eth_getBlockBy*`` result (execution-apis
    ``src/schemas/block.yaml``), checking the types and sizes of every field and that
    the optional fields form a fork shape (no gaps)."""
    block = obj_at(block, where)
    values: list[Any] = [_parse(s, field(block, s.json, where), where)
                         for s in _SPECS[:_FIRST_OPTIONAL]]
    missing: str | None = None
    for spec in _SPECS[_FIRST_OPTIONAL:]:
        raw = block.get(spec.json)
        if raw is None:
            missing = missing or spec.json
            values.append(None)
            continue
        if missing is not None:
            raise MalformedInputError(
                f"{spec.json} ({spec.fork}) present but {missing} is missing", where=where)
        values.append(_parse(spec, raw, where))
    return Header(*values)


def header_from_rlp(encoded: bytes) -> Header:
    """Decode an RLP header of any fork shape (15 to 23 fields)."""
    items = rlp.decode_list(rlp.decode(encoded), "header")
    if not _FIRST_OPTIONAL <= len(items) <= len(_SPECS):
        raise MalformedInputError(
            f"rlp: header has {len(items)} fields, expected {_FIRST_OPTIONAL}..{len(_SPECS)}")
    values: list[Any] = []
    for spec, item in zip(_SPECS, items, strict=False):
        if spec.size is None:
            values.append(rlp.decode_int(item, spec.json, spec.bits))
        else:
            values.append(rlp.decode_bytes(item, spec.json, None if spec.size < 0 else spec.size))
    values.extend([None] * (len(_SPECS) - len(values)))
    return Header(*values)


def verify_header(block: Mapping[str, Any], where: str = "block") -> Header:
    """Build the header from ``block`` and check keccak256(rlp(header)) == ``block.hash``.

    Raises :class:`VerificationError` (field ``hash``) when it does not.
    """
    header = header_from_rpc(block, where)
    claimed = parse_data(field(block, "hash", where), f"{where}.hash", 32)
    if header.hash != claimed:
        raise VerificationError("hash", claimed, header.hash)
    return header


def header_to_rpc(header: Header) -> dict[str, str]:
    """The JSON-RPC fields of a header (the inverse of :func:`header_from_rpc`)."""
    out: dict[str, str] = {}
    for spec in _SPECS:
        value = getattr(header, spec.attr)
        if value is not None:
            out[spec.json] = hex(value) if spec.size is None else "0x" + value.hex()
    out["hash"] = "0x" + header.hash.hex()
    return out

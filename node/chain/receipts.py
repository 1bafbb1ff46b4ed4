"""Receipts and logs: decode from JSON-RPC, re-encode, rebuild blooms.

A receipt is ``rlp([status, cumulativeGasUsed, logsBloom, logs])`` with each log
``[address, [topics], data]`` (Yellow Paper §4.3.1). Before Byzantium the first item
is the post-transaction state root instead of the status (EIP-658). A typed
transaction's receipt is ``type || rlp(...)`` (EIP-2718); the receipts trie maps
rlp(index) to that encoding.

The bloom is recomputed from the logs, never trusted: each address and topic sets
three bits, chosen by the low 11 bits of the first three byte pairs of its keccak256
(Yellow Paper §4.3.1, function M3:2048).

A JSON-RPC receipt also carries fields the trie does not commit to but that follow from
the transaction and the header; the derivations are here: the price paid per gas
(:func:`effective_gas_price`, EIP-1559), the address a creation deploys to
(:func:`contract_address`, Yellow Paper §7) and the price of blob gas when it is the
minimum (:data:`MIN_BASE_FEE_PER_BLOB_GAS`, EIP-4844).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from node.chain import rlp
from node.chain.errors import MalformedInputError
from node.chain.hashing import keccak256
from node.chain.rpcjson import (
    array,
    data,
    obj_at,
    parse_data,
    parse_quantity,
    quantity,
)
from node.chain.transactions import ACCESS_LIST, LEGACY, Transaction

BLOOM_BYTES = 256
MAX_TOPICS = 4  # LOG0..LOG4
MIN_BASE_FEE_PER_BLOB_GAS = 1
"""EIP-4844: the blob gas price of a block without excess blob gas. Above that the price
is fake_exponential(1, excessBlobGas, update fraction), and the fraction is a parameter
of the fork and chain (Cancun 3338477; Prague 5007716, EIP-7691; later forks from the
chain's blob schedule, EIP-7840 and EIP-7892) that no header field carries."""


@dataclass(frozen=True)
class Log:
    """One log entry: emitting contract, up to four topics, and data."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


@dataclass(frozen=True)
class Receipt:
    """A transaction receipt as the receipts trie commits to it."""

    tx_type: int  # EIP-2718 type of the transaction (0 = legacy)
    outcome: bytes | int  # status 0/1 (EIP-658), or a 32-byte post-state root before it
    cumulative_gas_used: int
    logs_bloom: bytes
    logs: tuple[Log, ...]

    @cached_property
    def encoded(self) -> bytes:
        """The consensus encoding held by the receipts trie (EIP-2718)."""
        body = rlp.encode([
            self.outcome, self.cumulative_gas_used, self.logs_bloom,
            [[log.address, list(log.topics), log.data] for log in self.logs],
        ])
        return body if self.tx_type == 0 else bytes([self.tx_type]) + body


def bloom_bits(item: bytes) -> Iterable[int]:
    """The three bloom bit positions (0..2047) that ``item`` sets (Yellow Paper M3:2048)."""
    digest = keccak256(item)
    for i in (0, 2, 4):
        yield ((digest[i] << 8) | digest[i + 1]) & 2047


def logs_bloom(logs: Iterable[Log]) -> bytes:
    """The 2048-bit bloom of ``logs``: address and topics of each (Yellow Paper §4.3.1)."""
    bloom = 0
    for log in logs:
        for item in (log.address, *log.topics):
            for bit in bloom_bits(item):
                bloom |= 1 << bit
    return bloom.to_bytes(BLOOM_BYTES, "big")


def or_blooms(blooms: Iterable[bytes]) -> bytes:
    """Bitwise OR of blooms: a block's logsBloom from its receipts' blooms."""
    combined = 0
    for bloom in blooms:
        combined |= int.from_bytes(bloom, "big")
    return combined.to_bytes(BLOOM_BYTES, "big")


def log_from_rpc(obj: Mapping[str, Any], where: str) -> Log:
    """A log from a JSON-RPC log object (execution-apis ``src/schemas/receipt.yaml``)."""
    obj = obj_at(obj, where)
    topics = array(obj, "topics", where)
    if len(topics) > MAX_TOPICS:
        raise MalformedInputError(f"{len(topics)} topics, at most {MAX_TOPICS}",
                                  where=f"{where}.topics")
    return Log(
        address=data(obj, "address", where, size=20),
        topics=tuple(parse_data(t, f"{where}.topics[{i}]", 32) for i, t in enumerate(topics)),
        data=data(obj, "data", where),
    )


def receipt_from_rpc(obj: Mapping[str, Any], where: str = "receipt") -> Receipt:
    """A :class:`Receipt` from an ``eth_getTransactionReceipt`` / ``eth_getBlockReceipts``
    object: ``status`` (EIP-658), or before Byzantium the post-state ``root``. Should a
    client send both, the root is used; a wrong choice can only fail the receiptsRoot
    check, never pass a forged receipt."""
    obj = obj_at(obj, where)
    tx_type = parse_quantity(obj.get("type", "0x0"), f"{where}.type", 8)
    outcome: bytes | int
    status = obj.get("status")
    root = obj.get("root")
    if root in ("0x", "0x" + "00" * 32):  # some clients fill it after Byzantium
        root = None
    if root is not None:  # before Byzantium the state root is what was committed
        outcome = parse_data(root, f"{where}.root", 32)
    elif status is not None:
        outcome = parse_quantity(status, f"{where}.status", 8)
        if outcome > 1:
            raise MalformedInputError(f"status must be 0 or 1, got {outcome}",
                                      where=f"{where}.status")
    else:
        raise MalformedInputError("need status (EIP-658) or root", where=where)
    logs = tuple(log_from_rpc(log, f"{where}.logs[{i}]")
                 for i, log in enumerate(array(obj, "logs", where)))
    return Receipt(
        tx_type=tx_type,
        outcome=outcome,
        cumulative_gas_used=quantity(obj, "cumulativeGasUsed", where, bits=64),
        logs_bloom=data(obj, "logsBloom", where, size=BLOOM_BYTES),
        logs=logs,
    )


# --- fields derived from the transaction and the header ------------------------------

def effective_gas_price(tx: Transaction, base_fee: int | None) -> int | None:
    """The wei per gas ``tx`` paid in a block with ``base_fee`` (EIP-1559): its
    ``gasPrice`` for legacy and EIP-2930 transactions, otherwise
    min(maxFeePerGas, baseFee + maxPriorityFeePerGas). None when a fee-market transaction
    sits in a block without a base fee (no valid block holds one)."""
    if tx.tx_type in (LEGACY, ACCESS_LIST):
        return tx["gasPrice"]
    if base_fee is None:
        return None
    return min(tx["maxFeePerGas"], base_fee + tx["maxPriorityFeePerGas"])


def contract_address(sender: bytes, nonce: int) -> bytes:
    """The address a contract creation by ``sender`` with ``nonce`` deploys to:
    keccak256(rlp([sender, nonce]))[12:] (Yellow Paper §7, CREATE)."""
    return keccak256(rlp.encode([sender, nonce]))[12:]

"""Verify a whole block from JSON-RPC: its header hash and every root its body allows.

Given an ``eth_getBlockBy*`` result (and optionally its ``eth_getBlockReceipts``),
rebuild from the untrusted body what the header commits to and compare:

* ``hash`` -- keccak256(rlp(header)) (Yellow Paper §4.3);
* ``sha3Uncles`` -- for a block without ommers, keccak256(rlp([])) (EIP-3675);
* ``transactionsRoot`` -- ordered trie of the transactions' canonical encodings
  (EIP-2718), when the block carries full transaction objects; each object's ``hash``
  and ``from`` are recomputed too;
* ``blobGasUsed`` -- GAS_PER_BLOB times the blobs the transactions carry (EIP-4844);
* ``withdrawalsRoot`` -- ordered trie of the withdrawals (EIP-4895);
* with receipts: each receipt's bloom from its logs, ``receiptsRoot``, the header's
  ``logsBloom`` and ``gasUsed``, and that each receipt belongs to this block at its
  index.

What the data given does not allow to check is listed as skipped, never as verified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.chain.errors import MalformedInputError, VerificationError
from node.chain.header import EMPTY_OMMERS_HASH, Header, verify_header
from node.chain.receipts import Receipt, logs_bloom, or_blooms, receipt_from_rpc
from node.chain.rpcjson import array, obj_at, optional_quantity, parse_data, parse_quantity
from node.chain.transactions import BLOB, Transaction, transaction_from_rpc
from node.chain.trie import ordered_trie_root
from node.chain.withdrawals import withdrawal_from_rpc

GAS_PER_BLOB = 2**17  # EIP-4844


@dataclass(frozen=True)
class BlockReport:
    """What :func:`verify_block` checked. Only fields named in ``verified`` are."""

    header: Header
    verified: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (field, why it could not be checked)
    transactions: tuple[Transaction, ...]  # empty unless the block had full objects
    receipts: tuple[Receipt, ...]


def verify_block(block: Mapping[str, Any], receipts: Sequence[Any] | None = None,
                 where: str = "block") -> BlockReport:
    """Verify ``block`` (and ``receipts`` when given); raise on the first mismatch."""
    block = obj_at(block, where)
    header = verify_header(block, where)
    verified = ["hash"]
    skipped: list[tuple[str, str]] = []

    uncles = array(block, "uncles", where) if "uncles" in block else None
    if uncles == []:
        _expect("sha3Uncles", header.ommers_hash, EMPTY_OMMERS_HASH)
        verified.append("sha3Uncles")
    else:
        skipped.append(("sha3Uncles", "needs the ommer headers"))

    raw_txs = array(block, "transactions", where)
    tx_hashes, txs = _transactions(raw_txs, header, where)
    if txs is not None:
        _expect("transactionsRoot", header.transactions_root,
                ordered_trie_root(tx.encoded for tx in txs))
        verified += ["transactionsRoot", "transactions.hash", "transactions.from"]
        if header.blob_gas_used is not None:
            blobs = sum(len(tx["blobVersionedHashes"]) for tx in txs if tx.tx_type == BLOB)
            _expect("blobGasUsed", header.blob_gas_used, blobs * GAS_PER_BLOB)
            verified.append("blobGasUsed")
    else:
        skipped.append(("transactionsRoot", "the block lists only transaction hashes "
                                            "(fetch it with full transactions)"))

    if header.withdrawals_root is not None:
        withdrawals = [withdrawal_from_rpc(w, f"{where}.withdrawals[{i}]")
                       for i, w in enumerate(array(block, "withdrawals", where))]
        _expect("withdrawalsRoot", header.withdrawals_root,
                ordered_trie_root(w.encoded for w in withdrawals))
        verified.append("withdrawalsRoot")
    elif block.get("withdrawals") is not None:
        raise MalformedInputError("withdrawals present in a block without withdrawalsRoot",
                                  where=where)

    proven_receipts: tuple[Receipt, ...] = ()
    if receipts is not None:
        proven_receipts = _verify_receipts(receipts, header, tx_hashes, txs)
        verified += ["receipts.logsBloom", "receiptsRoot", "logsBloom", "gasUsed"]
    else:
        skipped.append(("receiptsRoot", "no receipts given"))
    if header.requests_hash is not None:
        skipped.append(("requestsHash", "execution requests are not served over JSON-RPC"))
    return BlockReport(header, tuple(verified), tuple(skipped), tuple(txs or ()),
                       proven_receipts)


def _expect(name: str, claimed: object, computed: object) -> None:
    if claimed != computed:
        raise VerificationError(name, claimed, computed)


def _transactions(raw: list[Any], header: Header, where: str
                  ) -> tuple[list[bytes], list[Transaction] | None]:
    """The block's transaction hashes, and its transactions when given as objects."""
    if all(isinstance(t, str) for t in raw):
        hashes = [parse_data(t, f"{where}.transactions[{i}]", 32) for i, t in enumerate(raw)]
        return hashes, (None if raw else [])
    txs = []
    for i, obj in enumerate(raw):
        at = f"{where}.transactions[{i}]"
        tx = transaction_from_rpc(obj, at)
        _expect(f"transactions[{i}].hash", parse_data(obj.get("hash"), f"{at}.hash", 32),
                tx.hash)
        if obj.get("from") is not None:
            try:
                sender = tx.sender
            except MalformedInputError as exc:
                raise VerificationError(f"transactions[{i}].from",
                                        reason=f"signature is invalid: {exc}") from None
            _expect(f"transactions[{i}].from", parse_data(obj["from"], f"{at}.from", 20), sender)
        _check_position(obj, i, header, at, "transactions")
        txs.append(tx)
    return [tx.hash for tx in txs], txs


def _check_position(obj: Mapping[str, Any], index: int, header: Header, where: str,
                    what: str) -> None:
    """An object that says where it sits (blockHash, blockNumber, transactionIndex)
    must sit exactly there."""
    block_hash = obj.get("blockHash")
    if block_hash is not None:
        _expect(f"{what}[{index}].blockHash", parse_data(block_hash, f"{where}.blockHash", 32),
                header.hash)
    number = optional_quantity(obj, "blockNumber", where, bits=64)
    if number is not None:
        _expect(f"{what}[{index}].blockNumber", number, header.number)
    position = optional_quantity(obj, "transactionIndex", where, bits=64)
    if position is not None:
        _expect(f"{what}[{index}].transactionIndex", position, index)


def _verify_receipts(raw: Sequence[Any], header: Header, tx_hashes: list[bytes],
                     txs: list[Transaction] | None) -> tuple[Receipt, ...]:
    if not isinstance(raw, list):
        raise MalformedInputError(f"expected a JSON array of receipts, got {type(raw).__name__}",
                                  where="receipts")
    if len(raw) != len(tx_hashes):
        raise VerificationError("receipts.length", len(raw), len(tx_hashes),
                                reason=f"{len(raw)} receipts for {len(tx_hashes)} transactions")
    receipts = []
    previous_gas = 0
    log_index = 0
    for i, obj in enumerate(raw):
        at = f"receipts[{i}]"
        receipt = receipt_from_rpc(obj, at)
        _expect(f"{at}.logsBloom", receipt.logs_bloom, logs_bloom(receipt.logs))
        tx_hash = obj.get("transactionHash")
        if tx_hash is not None:
            _expect(f"{at}.transactionHash", parse_data(tx_hash, f"{at}.transactionHash", 32),
                    tx_hashes[i])
        _check_position(obj, i, header, at, "receipts")
        if txs is not None:
            _expect(f"{at}.type", receipt.tx_type, txs[i].tx_type)
        if receipt.cumulative_gas_used < previous_gas:
            raise VerificationError(f"{at}.cumulativeGasUsed", receipt.cumulative_gas_used,
                                    previous_gas, reason="cumulative gas decreases")
        gas_used = optional_quantity(obj, "gasUsed", at, bits=64)
        if gas_used is not None:
            _expect(f"{at}.gasUsed", gas_used, receipt.cumulative_gas_used - previous_gas)
        previous_gas = receipt.cumulative_gas_used
        for j, log in enumerate(obj["logs"]):
            if isinstance(log, Mapping) and log.get("logIndex") is not None:
                claimed = parse_quantity(log["logIndex"], f"{at}.logs[{j}].logIndex", 64)
                _expect(f"{at}.logs[{j}].logIndex", claimed, log_index)
            log_index += 1
        receipts.append(receipt)
    _expect("receiptsRoot", header.receipts_root, ordered_trie_root(r.encoded for r in receipts))
    _expect("logsBloom", header.logs_bloom, or_blooms(r.logs_bloom for r in receipts))
    _expect("gasUsed", header.gas_used, previous_gas)
    return tuple(receipts)

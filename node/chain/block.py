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

Beside the roots, the JSON carries fields no root commits to but that follow from what
was verified, and a client reads them as readily; each one present is compared:

* where an object sits -- ``blockHash``, ``blockNumber``, ``blockTimestamp`` and
  ``transactionIndex`` of transactions, receipts and logs, a receipt's and a log's
  ``transactionHash``, a log's block-wide ``logIndex``, and ``removed`` (false: a log
  of a block being verified was not reorganised away);
* from the transaction at the receipt's index (needs full transaction objects): the
  receipt's ``type``, ``from`` (the recovered sender), ``to`` (null for a creation),
  ``contractAddress`` (Yellow Paper §7; null unless a creation), ``effectiveGasPrice``
  (EIP-1559) and ``blobGasUsed`` (EIP-4844); a fee-market transaction's ``gasPrice``
  (its effective price once included, execution-apis ``transaction.yaml``);
* from the header: a receipt's ``gasUsed`` (from the cumulative gas) and
  ``blobGasPrice`` when the block has no excess blob gas (EIP-4844: the minimum; above
  it the price needs the fork's update fraction, which no header carries).

A legacy transaction's claimed ``chainId`` is checked against its ``v`` by
:func:`~node.chain.transactions.transaction_from_rpc` (EIP-155).

``verified`` names what was compared (``receipts.effectiveGasPrice``,
``receipts.logs.blockHash``: a name appears when at least one value was), ``compared``
how many values of each; what the data given does not allow to check is listed in
``skipped`` with the reason, never as verified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.chain.errors import MalformedInputError, VerificationError
from node.chain.header import EMPTY_OMMERS_HASH, Header, verify_header
from node.chain.receipts import (
    MIN_BASE_FEE_PER_BLOB_GAS,
    Receipt,
    contract_address,
    effective_gas_price,
    logs_bloom,
    or_blooms,
    receipt_from_rpc,
)
from node.chain.rpcjson import (
    array,
    obj_at,
    optional_data,
    optional_quantity,
    parse_data,
    parse_quantity,
)
from node.chain.transactions import BLOB, FEE_MARKET, Transaction, transaction_from_rpc
from node.chain.trie import ordered_trie_root
from node.chain.withdrawals import withdrawal_from_rpc

GAS_PER_BLOB = 2**17  # EIP-4844
NEEDS_FULL_TRANSACTIONS = ("the block lists only transaction hashes "
                           "(fetch it with full transactions)")


@dataclass(frozen=True)
class BlockReport:
    """What :func:`verify_block` checked. Only fields named in ``verified`` are."""

    header: Header
    verified: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (field, why it could not be checked)
    transactions: tuple[Transaction, ...]  # empty unless the block had full objects
    receipts: tuple[Receipt, ...]
    compared: tuple[tuple[str, int], ...] = ()  # (derived field, how many values compared)


class FieldChecks:
    """A tally of derived fields: each compared value under the name the report gives
    its field (``receipts.from``), and the fields the data does not allow to check."""

    def __init__(self) -> None:
        self.compared: dict[str, int] = {}
        self.skipped: dict[str, str] = {}

    def expect(self, name: str, field: str, claimed: object, computed: object) -> None:
        """Compare one value; raise :class:`VerificationError` naming ``field`` if the
        claim differs from what was computed."""
        _expect(field, claimed, computed)
        self.compared[name] = self.compared.get(name, 0) + 1

    def count(self, name: str) -> None:
        """One value of ``name`` was checked elsewhere (by a hash or a signature)."""
        self.compared[name] = self.compared.get(name, 0) + 1

    def skip(self, name: str, why: str) -> None:
        """``name`` is claimed but cannot be checked from the data given."""
        self.skipped.setdefault(name, why)


def verify_block(block: Mapping[str, Any], receipts: Sequence[Any] | None = None,
                 where: str = "block") -> BlockReport:
    """Verify ``block`` (and ``receipts`` when given); raise on the first mismatch."""
    block = obj_at(block, where)
    header = verify_header(block, where)
    verified = ["hash"]
    skipped: list[tuple[str, str]] = []
    checks = FieldChecks()

    uncles = array(block, "uncles", where) if "uncles" in block else None
    if uncles == []:
        _expect("sha3Uncles", header.ommers_hash, EMPTY_OMMERS_HASH)
        verified.append("sha3Uncles")
    else:
        skipped.append(("sha3Uncles", "needs the ommer headers"))

    raw_txs = array(block, "transactions", where)
    tx_hashes, txs = _transactions(raw_txs, header, where, checks)
    if txs is not None:
        _expect("transactionsRoot", header.transactions_root,
                ordered_trie_root(tx.encoded for tx in txs))
        verified += ["transactionsRoot", "transactions.hash", "transactions.from"]
        if header.blob_gas_used is not None:
            blobs = sum(len(tx["blobVersionedHashes"]) for tx in txs if tx.tx_type == BLOB)
            _expect("blobGasUsed", header.blob_gas_used, blobs * GAS_PER_BLOB)
            verified.append("blobGasUsed")
    else:
        skipped.append(("transactionsRoot", NEEDS_FULL_TRANSACTIONS))

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
        proven_receipts = _verify_receipts(receipts, header, tx_hashes, txs, checks)
        verified += ["receipts.logsBloom", "receiptsRoot", "logsBloom", "gasUsed"]
    else:
        skipped.append(("receiptsRoot", "no receipts given"))
    if header.requests_hash is not None:
        skipped.append(("requestsHash", "execution requests are not served over JSON-RPC"))
    verified += list(checks.compared)
    skipped += list(checks.skipped.items())
    return BlockReport(header, tuple(verified), tuple(skipped), tuple(txs or ()),
                       proven_receipts, tuple(checks.compared.items()))


def _expect(name: str, claimed: object, computed: object) -> None:
    if claimed != computed:
        raise VerificationError(name, claimed, computed)


def _transactions(raw: list[Any], header: Header, where: str, checks: FieldChecks
                  ) -> tuple[list[bytes], list[Transaction] | None]:
    """The block's transaction hashes, and its transactions when given as objects."""
    if all(isinstance(t, str) for t in raw):
        hashes = [parse_data(t, f"{where}.transactions[{i}]", 32) for i, t in enumerate(raw)]
        return hashes, (None if raw else [])
    txs = []
    for i, obj in enumerate(raw):
        at = f"{where}.transactions[{i}]"
        tx = transaction_from_rpc(obj, at)  # checks a legacy chainId against v (EIP-155)
        _expect(f"transactions[{i}].hash", parse_data(obj.get("hash"), f"{at}.hash", 32),
                tx.hash)
        if obj.get("from") is not None:
            _expect(f"transactions[{i}].from", parse_data(obj["from"], f"{at}.from", 20),
                    _sender(tx, f"transactions[{i}].from"))
        if obj.get("chainId") is not None:  # typed: signed, in the hash; legacy: from v
            checks.count("transactions.chainId")
        gas_price = optional_quantity(obj, "gasPrice", at)
        if gas_price is not None and tx.tx_type >= FEE_MARKET:  # else signed: in the hash
            checks.expect("transactions.gasPrice", f"transactions[{i}].gasPrice", gas_price,
                          _effective_gas_price(tx, header, f"transactions[{i}].gasPrice",
                                               gas_price))
        _check_position(obj, i, header, at, f"transactions[{i}]", "transactions", checks)
        txs.append(tx)
    return [tx.hash for tx in txs], txs


def _sender(tx: Transaction, field: str) -> bytes:
    """The recovered sender; a signature that recovers none cannot match any claim."""
    try:
        return tx.sender
    except MalformedInputError as exc:
        raise VerificationError(field, reason=f"signature is invalid: {exc}") from None


def _effective_gas_price(tx: Transaction, header: Header, field: str, claimed: int) -> int:
    price = effective_gas_price(tx, header.base_fee_per_gas)
    if price is None:
        raise VerificationError(field, claimed, None, reason=(
            f"claims {claimed}, but a type-{tx.tx_type} transaction cannot pay a fee-market "
            "price in a block without baseFeePerGas (EIP-1559)"))
    return price


def _check_position(obj: Mapping[str, Any], index: int, header: Header, where: str,
                    field: str, name: str, checks: FieldChecks,
                    numeric_timestamp: bool = False) -> None:
    """An object that says where it sits (blockHash, blockNumber, blockTimestamp,
    transactionIndex) must sit exactly there. ``where`` locates malformed values,
    ``field`` prefixes the names of mismatches, ``name`` the names in the report."""
    block_hash = obj.get("blockHash")
    if block_hash is not None:
        checks.expect(f"{name}.blockHash", f"{field}.blockHash",
                      parse_data(block_hash, f"{where}.blockHash", 32), header.hash)
    number = optional_quantity(obj, "blockNumber", where, bits=64)
    if number is not None:
        checks.expect(f"{name}.blockNumber", f"{field}.blockNumber", number, header.number)
    timestamp = obj.get("blockTimestamp")
    if timestamp is not None:
        if not (numeric_timestamp and type(timestamp) is int):
            timestamp = parse_quantity(timestamp, f"{where}.blockTimestamp", 64)
        checks.expect(f"{name}.blockTimestamp", f"{field}.blockTimestamp", timestamp,
                      header.timestamp)
    position = optional_quantity(obj, "transactionIndex", where, bits=64)
    if position is not None:
        checks.expect(f"{name}.transactionIndex", f"{field}.transactionIndex", position, index)


def check_receipt_fields(obj: Mapping[str, Any], index: int, header: Header, tx_hash: bytes,
                         tx: Transaction | None, checks: FieldChecks, *,
                         first_log_index: int | None = None, where: str = "receipt") -> None:
    """Compare every field of the JSON-RPC receipt ``obj`` that follows from the verified
    ``header``, the hash ``tx_hash`` of the transaction at ``index`` and, when given, the
    transaction ``tx`` itself (see the module docstring); ``first_log_index`` is the
    block-wide index of its first log, when known. Fields that need ``tx`` are listed in
    ``checks.skipped`` when it is None. The receipt's own consensus fields (status,
    cumulative gas, logs, bloom) are not checked here."""
    obj = obj_at(obj, where)
    claimed_hash = obj.get("transactionHash")
    if claimed_hash is not None:
        checks.expect("receipts.transactionHash", f"{where}.transactionHash",
                      parse_data(claimed_hash, f"{where}.transactionHash", 32), tx_hash)
    _check_position(obj, index, header, where, where, "receipts", checks,
                    numeric_timestamp=True)  # anvil sends it (not in the schema) as a number
    if tx is not None:
        _check_from_transaction(obj, tx, header, where, checks)
    else:  # a null to or contractAddress is a claim too (a creation, or none)
        claimed = [key for key in ("from", "effectiveGasPrice", "blobGasUsed")
                   if obj.get(key) is not None]
        claimed += [key for key in ("to", "contractAddress") if key in obj]
        for key in claimed:
            checks.skip(f"receipts.{key}", NEEDS_FULL_TRANSACTIONS)
    blob_gas_price = optional_quantity(obj, "blobGasPrice", where)
    if blob_gas_price is not None:
        field = f"{where}.blobGasPrice"
        if header.excess_blob_gas is None:
            raise VerificationError(field, blob_gas_price, None, reason=(
                f"claims {blob_gas_price}, but the block predates blob gas "
                "(no excessBlobGas, EIP-4844)"))
        if header.excess_blob_gas == 0:
            checks.expect("receipts.blobGasPrice", field, blob_gas_price,
                          MIN_BASE_FEE_PER_BLOB_GAS)
        else:
            checks.skip("receipts.blobGasPrice",
                        f"excessBlobGas {header.excess_blob_gas} > 0: the price needs the "
                        "fork's blob base fee update fraction (EIP-4844, EIP-7691), which "
                        "the block does not carry")
    logs = array(obj, "logs", where)
    for j, log in enumerate(logs):
        at = f"{where}.logs[{j}]"
        log = obj_at(log, at)
        _check_position(log, index, header, at, at, "receipts.logs", checks)
        log_tx_hash = log.get("transactionHash")
        if log_tx_hash is not None:
            checks.expect("receipts.logs.transactionHash", f"{at}.transactionHash",
                          parse_data(log_tx_hash, f"{at}.transactionHash", 32), tx_hash)
        log_index = optional_quantity(log, "logIndex", at, bits=64)
        if log_index is not None:
            if first_log_index is None:
                checks.skip("receipts.logs.logIndex", "needs the receipts before it")
            else:
                checks.expect("receipts.logs.logIndex", f"{at}.logIndex", log_index,
                              first_log_index + j)
        removed = log.get("removed")
        if removed is not None:
            if not isinstance(removed, bool):
                raise MalformedInputError(
                    f"expected a JSON boolean, got {type(removed).__name__}",
                    where=f"{at}.removed")
            checks.expect("receipts.logs.removed", f"{at}.removed", removed, False)


def _check_from_transaction(obj: Mapping[str, Any], tx: Transaction, header: Header,
                            where: str, checks: FieldChecks) -> None:
    """The receipt fields that follow from its transaction ``tx``."""
    checks.expect("receipts.type", f"{where}.type",  # the receipts trie commits to it too
                  parse_quantity(obj.get("type", "0x0"), f"{where}.type", 8), tx.tx_type)
    sender = None
    if obj.get("from") is not None:
        sender = _sender(tx, f"{where}.from")
        checks.expect("receipts.from", f"{where}.from",
                      parse_data(obj["from"], f"{where}.from", 20), sender)
    creation = tx["to"] == b""
    if "to" in obj:
        checks.expect("receipts.to", f"{where}.to", _address_or_null(obj, "to", where),
                      None if creation else tx["to"])
    if "contractAddress" in obj:
        created = None
        if creation:
            created = contract_address(sender or _sender(tx, f"{where}.contractAddress"),
                                       tx["nonce"])
        checks.expect("receipts.contractAddress", f"{where}.contractAddress",
                      _address_or_null(obj, "contractAddress", where), created)
    price = optional_quantity(obj, "effectiveGasPrice", where)
    if price is not None:
        field = f"{where}.effectiveGasPrice"
        checks.expect("receipts.effectiveGasPrice", field, price,
                      _effective_gas_price(tx, header, field, price))
    blob_gas = optional_quantity(obj, "blobGasUsed", where, bits=64)
    if blob_gas is not None:
        blobs = len(tx["blobVersionedHashes"]) if tx.tx_type == BLOB else 0
        checks.expect("receipts.blobGasUsed", f"{where}.blobGasUsed", blob_gas,
                      blobs * GAS_PER_BLOB)


def _address_or_null(obj: Mapping[str, Any], key: str, where: str) -> bytes | None:
    """An address field whose null is a claim of its own (no recipient, nothing created)."""
    return optional_data(obj, key, where, size=20)


def _verify_receipts(raw: Sequence[Any], header: Header, tx_hashes: list[bytes],
                     txs: list[Transaction] | None, checks: FieldChecks
                     ) -> tuple[Receipt, ...]:
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
        check_receipt_fields(obj, i, header, tx_hashes[i], None if txs is None else txs[i],
                             checks, first_log_index=log_index, where=at)
        if receipt.cumulative_gas_used < previous_gas:
            raise VerificationError(f"{at}.cumulativeGasUsed", receipt.cumulative_gas_used,
                                    previous_gas, reason="cumulative gas decreases")
        gas_used = optional_quantity(obj, "gasUsed", at, bits=64)
        if gas_used is not None:
            checks.expect("receipts.gasUsed", f"{at}.gasUsed", gas_used,
                          receipt.cumulative_gas_used - previous_gas)
        previous_gas = receipt.cumulative_gas_used
        log_index += len(receipt.logs)
        receipts.append(receipt)
    _expect("receiptsRoot", header.receipts_root, ordered_trie_root(r.encoded for r in receipts))
    _expect("logsBloom", header.logs_bloom, or_blooms(r.logs_bloom for r in receipts))
    _expect("gasUsed", header.gas_used, previous_gas)
    return tuple(receipts)

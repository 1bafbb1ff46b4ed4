"""Whole blocks: body roots of ethereum/tests ValidBlocks, and every way a block or its
receipts can be tampered with (each error must name the field)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from node.chain import rlp
from node.chain.block import GAS_PER_BLOB, verify_block
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.hashing import keccak256
from node.chain.header import header_from_rlp, header_from_rpc, header_to_rpc
from node.chain.receipts import Log, logs_bloom, or_blooms, receipt_from_rpc
from node.chain.transactions import transaction_from_rpc, transactions_from_block_rlp
from node.chain.trie import ordered_trie_root
from node.chain.withdrawals import withdrawal_from_rpc

from vectors import hex_bytes, hive_latest, io_case, valid_block_tests

VALID_BLOCKS = valid_block_tests()


# --- ethereum/tests ValidBlocks: roots rebuilt from the block RLP ---------------------

@pytest.mark.parametrize("name", sorted(VALID_BLOCKS))
def test_valid_blocks_body_roots_rebuild_from_block_rlp(name: str) -> None:
    for block in VALID_BLOCKS[name]["blocks"]:
        header_item, tx_items, ommers, *rest = rlp.decode(hex_bytes(block["rlp"]))
        header = header_from_rlp(rlp.encode(header_item))
        txs = transactions_from_block_rlp(tx_items)
        assert ordered_trie_root(tx.encoded for tx in txs) == header.transactions_root
        senders = [tx.sender for tx in txs]  # every signature recovers
        assert len(senders) == len(block["transactions"])
        for sender, claimed in zip(senders, block["transactions"], strict=True):
            assert "sender" not in claimed or sender == hex_bytes(claimed["sender"])
        assert keccak256(rlp.encode(ommers)) == header.ommers_hash
        (withdrawals,) = rest
        assert ordered_trie_root(rlp.encode(w) for w in withdrawals) == header.withdrawals_root
        assert [withdrawal_from_rpc(w).encoded for w in block["withdrawals"]] == [
            rlp.encode(w) for w in withdrawals]
        if header.blob_gas_used is not None:
            blobs = sum(len(tx["blobVersionedHashes"]) for tx in txs if tx.tx_type == 3)
            assert blobs * GAS_PER_BLOB == header.blob_gas_used


# --- tampering with a real block (hive block 54, Prague, with receipts) ---------------

BLOCK = hive_latest()
RECEIPTS = io_case("eth_getBlockReceipts", "get-block-receipts-latest").result
SHANGHAI = io_case("eth_getBlockByNumber", "get-block-shanghai-fork").result  # 1 withdrawal


def fresh() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return copy.deepcopy(BLOCK), copy.deepcopy(RECEIPTS)


def with_header(block: dict[str, Any], receipts: list[dict[str, Any]] | None = None,
                **changes: Any) -> dict[str, Any]:
    """``block`` with header fields changed, its ``hash`` recomputed and every
    ``blockHash`` in its transactions (and ``receipts``) updated: a well-formed, correctly
    hashed block whose body no longer matches its header."""
    header = dataclasses.replace(header_from_rpc(block), **changes)
    fields = header_to_rpc(header)
    for item in [*block["transactions"], *(receipts or [])]:
        item["blockHash"] = fields["hash"]
        for log in item.get("logs", []):
            log["blockHash"] = fields["hash"]
    return {**block, **fields}


def test_untampered_block_and_receipts_verify_everything() -> None:
    report = verify_block(*fresh())
    assert set(report.verified) >= {"hash", "sha3Uncles", "transactionsRoot", "transactions.hash",
                                     "transactions.from", "blobGasUsed", "withdrawalsRoot",
                                     "receipts.logsBloom", "receiptsRoot", "logsBloom",
                                     "gasUsed"}
    assert [f for f, _why in report.skipped] == ["requestsHash"]
    assert len(report.transactions) == len(report.receipts) == 4


def test_block_with_transaction_hashes_only_lists_transactions_root_as_skipped() -> None:
    report = verify_block(copy.deepcopy(SHANGHAI))
    assert "transactionsRoot" not in report.verified
    assert "transactionsRoot" in dict(report.skipped)
    assert "withdrawalsRoot" in report.verified


def _tx(index: int, field: str, value: Any) -> Callable[[dict, list], None]:
    return lambda block, receipts: block["transactions"][index].__setitem__(field, value)


def _receipt(index: int, field: str, value: Any) -> Callable[[dict, list], None]:
    return lambda block, receipts: receipts[index].__setitem__(field, value)


def _log(index: int, log: int, field: str, value: Any) -> Callable[[dict, list], None]:
    return lambda block, receipts: receipts[index]["logs"][log].__setitem__(field, value)


def _swap_transactions(block: dict, receipts: list) -> None:
    txs = block["transactions"]
    txs[0], txs[1] = txs[1], txs[0]


def _swap_transactions_keeping_positions(block: dict, receipts: list) -> None:
    txs = block["transactions"]
    txs[0], txs[1] = txs[1], txs[0]
    txs[0]["transactionIndex"], txs[1]["transactionIndex"] = "0x0", "0x1"


def _resign(index: int, **fields: Any) -> Callable[[dict, list], None]:
    """Change signature fields and fix up the claimed hash, to reach the sender check."""
    def edit(block: dict, receipts: list) -> None:
        tx = block["transactions"][index]
        tx.update(fields)
        tx["hash"] = "0x" + transaction_from_rpc(tx).hash.hex()
    return edit


def _drop_receipt(block: dict, receipts: list) -> None:
    receipts.pop()


def _swap_receipts(block: dict, receipts: list) -> None:
    receipts[0], receipts[1] = receipts[1], receipts[0]


def _drop_receipt_gas_used(index: int, cumulative: str) -> Callable[[dict, list], None]:
    def edit(block: dict, receipts: list) -> None:
        receipts[index].pop("gasUsed")
        receipts[index]["cumulativeGasUsed"] = cumulative
    return edit


def _strip_receipt_positions(block: dict, receipts: list) -> None:
    for r in receipts:
        for key in ("transactionHash", "blockHash", "blockNumber", "transactionIndex"):
            r.pop(key)


OTHER_ADDRESS = "0x" + "11" * 20
TAMPERING = {
    "tx-value": (_tx(0, "value", "0x1"), "transactions[0].hash"),
    "tx-nonce": (_tx(2, "nonce", "0x0"), "transactions[2].hash"),
    "tx-input": (_tx(1, "input", "0x00"), "transactions[1].hash"),
    "tx-claimed-hash": (_tx(3, "hash", "0x" + "00" * 32), "transactions[3].hash"),
    "tx-from": (_tx(1, "from", OTHER_ADDRESS), "transactions[1].from"),
    "tx-signature-r-zero": (_resign(2, r="0x0"), "transactions[2].from"),
    "tx-block-hash": (_tx(0, "blockHash", "0x" + "00" * 32), "transactions[0].blockHash"),
    "tx-block-number": (_tx(0, "blockNumber", "0x35"), "transactions[0].blockNumber"),
    "tx-index": (_tx(1, "transactionIndex", "0x2"), "transactions[1].transactionIndex"),
    "tx-swapped": (_swap_transactions, "transactions[0].transactionIndex"),
    "tx-swapped-positions-fixed": (_swap_transactions_keeping_positions, "transactionsRoot"),
    "tx-dropped": (lambda b, r: b["transactions"].pop(), "transactionsRoot"),
    "receipts-count": (_drop_receipt, "receipts.length"),
    "receipts-swapped": (_swap_receipts, "receipts[0].transactionHash"),
    "receipt-log-data": (_log(1, 0, "data", "0x" + "00" * 32), "receiptsRoot"),
    "receipt-log-topic": (_log(1, 0, "topics", ["0x" + "00" * 32]), "receipts[1].logsBloom"),
    "receipt-log-address": (_log(3, 0, "address", OTHER_ADDRESS), "receipts[3].logsBloom"),
    "receipt-log-dropped": (lambda b, r: r[1]["logs"].pop(), "receipts[1].logsBloom"),
    "receipt-log-index": (_log(1, 1, "logIndex", "0x5"), "receipts[1].logs[1].logIndex"),
    "receipt-status": (_receipt(0, "status", "0x0"), "receiptsRoot"),
    "receipt-bloom": (_receipt(0, "logsBloom", "0x" + "ff" * 256), "receipts[0].logsBloom"),
    "receipt-type": (_receipt(2, "type", "0x2"), "receipts[2].type"),
    "receipt-tx-hash": (_receipt(2, "transactionHash", "0x" + "00" * 32),
                        "receipts[2].transactionHash"),
    "receipt-block-hash": (_receipt(2, "blockHash", "0x" + "00" * 32), "receipts[2].blockHash"),
    "receipt-block-number": (_receipt(2, "blockNumber", "0x1"), "receipts[2].blockNumber"),
    "receipt-index": (_receipt(2, "transactionIndex", "0x0"), "receipts[2].transactionIndex"),
    "receipt-gas-used": (_receipt(1, "gasUsed", "0x1"), "receipts[1].gasUsed"),
    "receipt-cumulative-gas-decreases": (_receipt(1, "cumulativeGasUsed", "0x1"),
                                         "receipts[1].cumulativeGasUsed"),
    "receipt-cumulative-gas": (_drop_receipt_gas_used(3, "0x52f72"), "receiptsRoot"),
    "receipt-positions-stripped-then-status": (
        lambda b, r: [_strip_receipt_positions(b, r), r[1].update(status="0x0")], "receiptsRoot"),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampered_block_names_the_field(name: str) -> None:
    edit, field = TAMPERING[name]
    block, receipts = fresh()
    edit(block, receipts)
    with pytest.raises(VerificationError) as exc:
        verify_block(block, receipts)
    assert exc.value.field == field
    assert str(exc.value).startswith(field)


def test_mismatch_message_shows_both_values() -> None:
    block, receipts = fresh()
    block["transactions"][1]["from"] = OTHER_ADDRESS
    with pytest.raises(VerificationError) as exc:
        verify_block(block, receipts)
    real = BLOCK["transactions"][1]["from"]
    assert exc.value.claimed == hex_bytes(OTHER_ADDRESS) and exc.value.computed == hex_bytes(real)
    assert OTHER_ADDRESS in str(exc.value) and real in str(exc.value)


def test_tampered_withdrawal_names_withdrawals_root() -> None:
    block = copy.deepcopy(SHANGHAI)
    block["withdrawals"][0]["amount"] = "0x65"
    with pytest.raises(VerificationError) as exc:
        verify_block(block)
    assert exc.value.field == "withdrawalsRoot"


def test_dropped_withdrawal_names_withdrawals_root() -> None:
    block = copy.deepcopy(SHANGHAI)
    block["withdrawals"] = []
    with pytest.raises(VerificationError) as exc:
        verify_block(block)
    assert exc.value.field == "withdrawalsRoot"


def test_header_claiming_blob_gas_its_transactions_do_not_use_names_blob_gas_used() -> None:
    block = with_header(copy.deepcopy(BLOCK), blob_gas_used=GAS_PER_BLOB)
    with pytest.raises(VerificationError) as exc:
        verify_block(block)
    assert exc.value.field == "blobGasUsed"
    assert (exc.value.claimed, exc.value.computed) == (GAS_PER_BLOB, 0)


def test_header_claiming_ommers_of_a_block_without_uncles_names_sha3_uncles() -> None:
    block = with_header(copy.deepcopy(BLOCK), ommers_hash=b"\x11" * 32)
    with pytest.raises(VerificationError) as exc:
        verify_block(block)
    assert exc.value.field == "sha3Uncles"


@pytest.mark.parametrize("field, changes", [
    ("receiptsRoot", {"receipts_root": b"\x11" * 32}),
    ("logsBloom", {"logs_bloom": b"\xff" * 256}),
    ("gasUsed", {"gas_used": 0x52F72}),
])
def test_header_not_matching_its_receipts_names_the_field(field: str, changes: Any) -> None:
    block, receipts = fresh()
    with pytest.raises(VerificationError) as exc:
        verify_block(with_header(block, receipts, **changes), receipts)
    assert exc.value.field == field


MALFORMED = {
    "receipts-not-a-list": lambda b, r: {"receipts": {}},
    "receipt-status-2": lambda b, r: r[0].update(status="0x2"),
    "receipt-root-31-bytes": lambda b, r: r[0].update(root="0x" + "11" * 31),
    "receipt-neither-status-nor-root": lambda b, r: r[0].pop("status"),
    "receipt-five-topics": lambda b, r: r[1]["logs"][0].update(topics=["0x" + "00" * 32] * 5),
    "receipt-topic-31-bytes": lambda b, r: r[1]["logs"][0].update(topics=["0x" + "00" * 31]),
    "receipt-bloom-255-bytes": lambda b, r: r[0].update(logsBloom="0x" + "00" * 255),
    "receipt-logs-not-a-list": lambda b, r: r[0].update(logs={}),
    "receipt-not-an-object": lambda b, r: r.__setitem__(0, "0x00"),
    "receipt-missing-cumulative-gas": lambda b, r: r[0].pop("cumulativeGasUsed"),
    "transactions-not-a-list": lambda b, r: b.update(transactions={}),
    "transaction-not-an-object": lambda b, r: b["transactions"].__setitem__(0, 5),
    "transaction-missing-hash": lambda b, r: b["transactions"][0].pop("hash"),
    "transaction-hash-31-bytes": lambda b, r: b["transactions"][0].update(hash="0x" + "00" * 31),
    "transactions-mixed": lambda b, r: b["transactions"].__setitem__(0, "0x" + "00" * 32),
    "uncles-not-a-list": lambda b, r: b.update(uncles="0x"),
    "withdrawals-missing": lambda b, r: b.pop("withdrawals"),
    "withdrawal-amount-over-64-bits": lambda b, r: b["withdrawals"].append(
        {"index": "0x0", "validatorIndex": "0x0", "address": OTHER_ADDRESS,
         "amount": "0x1" + "0" * 16}),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_block_or_receipts_are_refused(name: str) -> None:
    block, receipts = fresh()
    replaced = MALFORMED[name](block, receipts)
    if isinstance(replaced, dict):
        receipts = replaced["receipts"]
    with pytest.raises(MalformedInputError):
        verify_block(block, receipts)


@pytest.mark.parametrize("filler", ["0x", "0x" + "00" * 32])
def test_receipt_root_filler_beside_status_is_ignored(filler: str) -> None:
    """Some clients send an empty or zero ``root`` beside ``status`` after Byzantium."""
    block, receipts = fresh()
    for receipt in receipts:
        receipt["root"] = filler
    assert "receiptsRoot" in verify_block(block, receipts).verified


def test_receipt_with_a_real_root_beside_status_is_checked_as_pre_byzantium() -> None:
    """A 32-byte root is what a pre-Byzantium receipt commits to: used, it cannot match a
    post-Byzantium receiptsRoot, so a status beside it is never trusted instead."""
    block, receipts = fresh()
    receipts[0]["root"] = "0x" + "11" * 32
    with pytest.raises(VerificationError) as err:
        verify_block(block, receipts)
    assert err.value.field == "receiptsRoot"


def test_withdrawals_in_a_block_without_withdrawals_root_are_malformed() -> None:
    block = copy.deepcopy(io_case("eth_getBlockByNumber", "get-block-london-fork").result)
    verify_block(block)
    block["withdrawals"] = []
    with pytest.raises(MalformedInputError):
        verify_block(block)


# --- receipts and blooms --------------------------------------------------------------

def test_block_logs_bloom_is_the_or_of_its_receipts_blooms() -> None:
    receipts = [receipt_from_rpc(r) for r in RECEIPTS]
    assert or_blooms(r.logs_bloom for r in receipts) == hex_bytes(BLOCK["logsBloom"])
    assert all(logs_bloom(r.logs) == r.logs_bloom for r in receipts)


def test_bloom_of_no_logs_is_empty_and_each_item_sets_at_most_three_bits() -> None:
    assert logs_bloom([]) == b"\x00" * 256
    bloom = logs_bloom([Log(b"\x01" * 20, (), b"")])
    assert 1 <= bin(int.from_bytes(bloom, "big")).count("1") <= 3


def test_receipt_encoding_prefixes_the_transaction_type() -> None:
    legacy = receipt_from_rpc(RECEIPTS[0])
    typed = dataclasses.replace(legacy, tx_type=2)
    assert legacy.encoded[0] >= 0xC0
    assert typed.encoded == b"\x02" + legacy.encoded

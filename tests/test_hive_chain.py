"""The execution-apis hive chain (``chain.rlp``, blocks 1..54 from London to Prague/Osaka)
and the JSON-RPC answers a real client gave about it."""

from __future__ import annotations

from typing import Any

import pytest

from node.chain import rlp
from node.chain.block import verify_block
from node.chain.hashing import keccak256
from node.chain.header import EMPTY_OMMERS_HASH, header_from_rlp, header_to_rpc, verify_header
from node.chain.receipts import logs_bloom, receipt_from_rpc
from node.chain.transactions import transactions_from_block_rlp
from node.chain.trie import EMPTY_TRIE_ROOT, ordered_trie_root

from vectors import (
    ChainBlock,
    hex_bytes,
    hive_block,
    hive_chain,
    hive_genesis,
    io_case,
    io_cases,
)

BLOCK_CASES = [c for m in ("eth_getBlockByNumber", "eth_getBlockByHash") for c in io_cases(m)]


def test_hive_chain_holds_blocks_1_to_54_linked_to_the_genesis() -> None:
    chain = hive_chain()
    assert [b.header.number for b in chain] == list(range(1, 55))
    parent = verify_header(hive_genesis()).hash
    for block in chain:
        assert block.header.parent_hash == parent, f"block {block.header.number}"
        parent = block.header.hash
    assert parent == hex_bytes(io_case("eth_getBlockByNumber", "get-latest").result["hash"])


@pytest.mark.parametrize("number", range(1, 55))
def test_hive_block_body_rebuilds_its_header_roots(number: int) -> None:
    block = hive_block(number)
    header = block.header
    txs = transactions_from_block_rlp(block.transactions)
    assert ordered_trie_root(tx.encoded for tx in txs) == header.transactions_root
    assert keccak256(rlp.encode(block.ommers)) == header.ommers_hash
    if header.withdrawals_root is None:
        assert block.withdrawals is None
    else:
        assert ordered_trie_root(rlp.encode(w) for w in block.withdrawals) == (
            header.withdrawals_root)


def test_hive_chain_has_ommers_before_the_merge_and_none_after() -> None:
    with_ommers = [b.header.number for b in hive_chain() if b.ommers]
    assert with_ommers and max(with_ommers) < 36  # HIVE_MERGE_BLOCK_ID
    assert all(b.header.ommers_hash == EMPTY_OMMERS_HASH for b in hive_chain()[35:])


def test_hive_ommer_headers_decode_and_are_not_in_the_chain() -> None:
    chain_hashes = {b.header.hash for b in hive_chain()}
    for block in hive_chain():
        for ommer in block.ommers:
            header = header_from_rlp(rlp.encode(ommer))
            assert header.number < block.header.number and header.hash not in chain_hashes


# --- eth_getBlockBy* ------------------------------------------------------------------

@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: c.name)
def test_hive_get_block_result_verifies(case: Any) -> None:
    if case.result is None:  # not found: nothing to verify, but say so explicitly
        assert "notfound" in case.name or "empty" in case.name
        return
    report = verify_block(case.result)
    number = report.header.number
    if number:
        assert report.header == hive_block(number).header
    assert "hash" in report.verified and "sha3Uncles" in report.verified


def block_json_from_chain(block: ChainBlock) -> dict[str, Any]:
    """An ``eth_getBlockByNumber(N, false)``-shaped object built from ``chain.rlp``:
    the header's fields, the transaction hashes, ommer hashes and withdrawals."""
    txs = transactions_from_block_rlp(block.transactions)
    out: dict[str, Any] = {
        **header_to_rpc(block.header),
        "transactions": ["0x" + tx.hash.hex() for tx in txs],
        "uncles": ["0x" + keccak256(rlp.encode(o)).hex() for o in block.ommers],
    }
    if block.withdrawals is not None:
        out["withdrawals"] = [
            {"index": _quantity(i), "validatorIndex": _quantity(v), "address": "0x" + a.hex(),
             "amount": _quantity(gwei)}
            for i, v, a, gwei in block.withdrawals]
    return out


def _quantity(raw: bytes) -> str:
    return hex(int.from_bytes(raw, "big"))


def block_jsons(number: int) -> list[dict[str, Any]]:
    """Every JSON form of block ``number`` available: the client's own answers with full
    transactions (from the .io files) and the one built from chain.rlp."""
    found = [c.result for c in BLOCK_CASES if c.result is not None and
             int(c.result["number"], 16) == number and
             all(isinstance(t, dict) for t in c.result["transactions"])]
    if number == 0:
        return [hive_genesis(), *found]
    return [*found, block_json_from_chain(hive_block(number))]


RECEIPT_CASES = [c for c in io_cases("eth_getBlockReceipts") if c.result is not None]


@pytest.mark.parametrize("case", RECEIPT_CASES, ids=lambda c: c.name)
def test_hive_block_receipts_rebuild_receipts_root_bloom_and_gas(case: Any) -> None:
    receipts = case.result
    number = int(receipts[0]["blockNumber"], 16) if receipts else 0
    if not receipts:
        assert case.params[0] in ("0x0", "earliest")
    forms = block_jsons(number)
    assert forms
    for block in forms:
        report = verify_block(block, receipts)
        assert {"receiptsRoot", "logsBloom", "gasUsed", "receipts.logsBloom"} <= set(
            report.verified)
        assert len(report.receipts) == len(receipts)


def test_block_json_built_from_chain_rlp_verifies_for_every_block() -> None:
    for block in hive_chain():
        report = verify_block(block_json_from_chain(block))
        expected = {"hash"} | ({"withdrawalsRoot"} if block.withdrawals is not None else set())
        assert expected <= set(report.verified)


@pytest.mark.parametrize("case", [c for c in io_cases("debug_getRawReceipts") if "result" in
                                  c.response], ids=lambda c: c.name)
def test_hive_raw_receipts_rebuild_receipts_root(case: Any) -> None:
    number = int(case.params[0], 16)
    root = ordered_trie_root(hex_bytes(r) for r in case.result)
    if number == 0:
        assert root == EMPTY_TRIE_ROOT
    else:
        assert root == hive_block(number).header.receipts_root


@pytest.mark.parametrize("case", [c for c in io_cases("debug_getRawBlock") if "result" in
                                  c.response], ids=lambda c: c.name)
def test_hive_raw_block_is_the_chain_rlp_block(case: Any) -> None:
    number = int(case.params[0], 16)
    header_item, txs, ommers, *_ = rlp.decode(hex_bytes(case.result))
    header = header_from_rlp(rlp.encode(header_item))
    if number == 0:
        assert header.hash == verify_header(hive_genesis()).hash and not txs and not ommers
    else:
        assert header == hive_block(number).header
        assert txs == hive_block(number).transactions and ommers == hive_block(number).ommers


# --- eth_getTransactionReceipt --------------------------------------------------------

def block_receipts(number: int) -> list[bytes] | None:
    """The consensus encodings of block ``number``'s receipts, when the vectors hold them."""
    for case in RECEIPT_CASES:
        if case.result and int(case.result[0]["blockNumber"], 16) == number:
            return [receipt_from_rpc(r).encoded for r in case.result]
    for case in io_cases("debug_getRawReceipts"):
        if "result" in case.response and int(case.params[0], 16) == number:
            return [hex_bytes(r) for r in case.result]
    return None


TX_RECEIPT_CASES = [c for c in io_cases("eth_getTransactionReceipt") if c.result is not None]


def test_some_transaction_receipts_can_be_found_in_their_blocks_receipts() -> None:
    found = [c for c in TX_RECEIPT_CASES
             if block_receipts(int(c.result["blockNumber"], 16)) is not None]
    assert len(found) >= 3


@pytest.mark.parametrize("case", TX_RECEIPT_CASES, ids=lambda c: c.name)
def test_hive_transaction_receipt_matches_its_block(case: Any) -> None:
    obj = case.result
    receipt = receipt_from_rpc(obj)
    assert logs_bloom(receipt.logs) == receipt.logs_bloom
    block = hive_block(int(obj["blockNumber"], 16))
    assert hex_bytes(obj["blockHash"]) == block.header.hash
    index = int(obj["transactionIndex"], 16)
    txs = transactions_from_block_rlp(block.transactions)
    assert hex_bytes(obj["transactionHash"]) == txs[index].hash
    assert receipt.tx_type == txs[index].tx_type
    assert receipt.cumulative_gas_used <= block.header.gas_used
    if index == len(txs) - 1:
        assert receipt.cumulative_gas_used == block.header.gas_used
    all_receipts = block_receipts(block.header.number)
    if all_receipts is not None:
        assert all_receipts[index] == receipt.encoded
        assert ordered_trie_root(all_receipts) == block.header.receipts_root
    elif len(txs) == 1:
        assert ordered_trie_root([receipt.encoded]) == block.header.receipts_root

"""The verifier against a real client: anvil (Prague) on 127.0.0.1.

Every envelope is sent (see tests/devnet_scenario.py), then headers, roots, receipts
and proofs fetched from anvil's RPC are verified through the API and through the
``orbital verify`` command, and a reorg made on anvil is caught by the header store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.chain.anchor import Anchor, AnchorSource
from node.chain.block import verify_block
from node.chain.errors import VerificationError
from node.chain.forks import ANVIL
from node.chain.header import Header, verify_header
from node.chain.header_rules import calculate_base_fee_per_gas
from node.chain.header_store import HeaderStore
from node.chain.proof import EMPTY_ACCOUNT, verify_account_proof
from node.chain.transactions import BLOB, transaction_from_rpc
from node.chain.trie import ordered_trie_root
from node.devnet import CHAIN_ID, DEV_PRIVATE_KEYS

from devnet_scenario import Scenario, mine_every_envelope

pytestmark = pytest.mark.devnet


@pytest.fixture(scope="module")
def scenario(anvil_rpc: Any) -> Scenario:
    return mine_every_envelope(anvil_rpc, DEV_PRIVATE_KEYS, CHAIN_ID)


def _block(rpc: Any, number: int, full: bool = True) -> dict[str, Any]:
    return rpc("eth_getBlockByNumber", hex(number), full)


def test_block_with_every_envelope_verifies_all_roots(anvil_rpc: Any, scenario: Scenario) -> None:
    block = _block(anvil_rpc, scenario.block_number)
    receipts = anvil_rpc("eth_getBlockReceipts", hex(scenario.block_number))
    report = verify_block(block, receipts)
    assert scenario.tx_types == (0, 0, 1, 2, 4)
    assert {"hash", "transactionsRoot", "transactions.hash", "transactions.from",
            "withdrawalsRoot", "receiptsRoot", "logsBloom", "gasUsed"} <= set(report.verified)
    assert report.header.fork == "prague"
    assert [tx.chain_id for tx in report.transactions] == [None] + [CHAIN_ID] * 4
    assert sum(len(r.logs) for r in report.receipts) == 3  # three calls into the logger


def test_blob_transaction_hash_and_sender_verify(anvil_rpc: Any, scenario: Scenario) -> None:
    block = _block(anvil_rpc, scenario.blob_block_number)
    (obj,) = block["transactions"]
    tx = transaction_from_rpc(obj)
    assert tx.tx_type == BLOB
    assert "0x" + tx.hash.hex() == obj["hash"]
    assert "0x" + tx.sender.hex() == obj["from"].lower()
    assert len(tx["blobVersionedHashes"]) == 1


def test_blob_block_root_from_anvil_is_refused(anvil_rpc: Any, scenario: Scenario) -> None:
    """anvil 1.7.1 commits to the blob transaction's network form (DESIGN.md): the
    verifier must refuse the root rather than serve it as verified."""
    block = _block(anvil_rpc, scenario.blob_block_number)
    with pytest.raises(VerificationError) as err:
        verify_block(block)
    assert err.value.field == "transactionsRoot"
    network_form = bytes.fromhex(
        anvil_rpc("eth_getRawTransactionByHash", block["transactions"][0]["hash"])[2:])
    assert network_form[0] == BLOB
    assert ordered_trie_root([network_form]).hex() == block["transactionsRoot"][2:]


def test_each_receipt_matches_the_block_receipts(anvil_rpc: Any, scenario: Scenario) -> None:
    block = _block(anvil_rpc, scenario.block_number, full=False)
    receipts = anvil_rpc("eth_getBlockReceipts", hex(scenario.block_number))
    singles = [anvil_rpc("eth_getTransactionReceipt", h) for h in block["transactions"]]
    assert singles == receipts
    verify_block(block, singles)  # hashes only: receipts still rebuild receiptsRoot


def test_contract_and_delegated_eoa_proofs_verify(anvil_rpc: Any, scenario: Scenario) -> None:
    header = verify_header(_block(anvil_rpc, scenario.block_number, full=False))
    logger = verify_account_proof(header.state_root, anvil_rpc(
        "eth_getProof", scenario.contract, list(scenario.storage_keys), hex(header.number)))
    assert logger.exists and logger.account.nonce == 1 and logger.account.balance == 3
    assert [s.value for s in logger.storage] == [0xBEEF, 7, 0xBEEF]
    eoa = verify_account_proof(header.state_root, anvil_rpc(
        "eth_getProof", scenario.delegated_eoa, list(scenario.storage_keys), hex(header.number)))
    code = anvil_rpc("eth_getCode", scenario.delegated_eoa, hex(header.number))
    assert code == "0xef0100" + scenario.contract[2:].lower()  # EIP-7702 delegation
    assert [s.value for s in eoa.storage] == [0x7702, 0x7702, 0]  # last slot proven absent


def test_absent_account_proof_verifies_as_empty(anvil_rpc: Any, scenario: Scenario) -> None:
    header = verify_header(_block(anvil_rpc, scenario.block_number, full=False))
    nobody = "0x" + "ab" * 20
    proven = verify_account_proof(header.state_root, anvil_rpc(
        "eth_getProof", nobody, ["0x" + "00" * 32], hex(header.number)))
    assert not proven.exists
    assert proven.account == EMPTY_ACCOUNT
    assert proven.storage[0].value == 0


def test_proof_against_another_blocks_state_root_is_refused(anvil_rpc: Any,
                                                            scenario: Scenario) -> None:
    genesis = verify_header(_block(anvil_rpc, 0, full=False))
    proof = anvil_rpc("eth_getProof", scenario.contract, [], hex(scenario.block_number))
    with pytest.raises(VerificationError):
        verify_account_proof(genesis.state_root, proof)


def _anchor(header: Header) -> Anchor:
    return Anchor(header.number, header.hash, AnchorSource.USER, "the test's own anvil")


def test_headers_link_back_to_genesis_from_the_head(anvil_rpc: Any, scenario: Scenario,
                                                    tmp_path: Path) -> None:
    head = int(anvil_rpc("eth_blockNumber"), 16)
    headers = [verify_header(_block(anvil_rpc, n, full=False)) for n in range(head + 1)]
    with HeaderStore(tmp_path / "headers.sqlite", ANVIL) as store:
        store.add_anchor(_anchor(headers[-1]), headers[-1])
        statuses = [i.status for i in store.add_many(headers[-2::-1])]
        assert statuses == ["anchored"] * head
        assert store.head is not None and store.head.hash == headers[-1].hash
        assert all(store.get(h.hash) == h for h in headers)
        assert "excessBlobGas" not in store.not_checked


def test_reorg_on_anvil_is_made_by_the_newer_anchor(anvil_rpc: Any, scenario: Scenario,
                                                     tmp_path: Path) -> None:
    base = int(anvil_rpc("eth_blockNumber"), 16)
    checkpoint = verify_header(_block(anvil_rpc, base, full=False))
    snapshot = anvil_rpc("evm_snapshot")
    anvil_rpc("evm_mine")
    anvil_rpc("evm_mine")
    old = [verify_header(_block(anvil_rpc, base + i, full=False)) for i in (1, 2)]
    assert anvil_rpc("evm_revert", snapshot) is True
    anvil_rpc("evm_setNextBlockTimestamp", hex(old[0].timestamp + 7))  # the branches differ
    # anvil's evm_revert does not rewind its base-fee state: set the EIP-1559 value the
    # checkpoint implies, or the new branch breaks the rule (as the chain anvil serves would)
    anvil_rpc("anvil_setNextBlockBaseFeePerGas", hex(calculate_base_fee_per_gas(
        checkpoint.gas_limit, checkpoint.gas_used, checkpoint.base_fee_per_gas or 0)))
    for _ in range(3):
        anvil_rpc("evm_mine")
    new = [verify_header(_block(anvil_rpc, base + i, full=False)) for i in (1, 2, 3)]
    assert new[0].hash != old[0].hash
    with HeaderStore(tmp_path / "headers.sqlite", ANVIL) as store:
        store.add_anchor(_anchor(checkpoint), checkpoint)
        assert [i.status for i in store.add_many(old)] == ["linked"] * 2
        assert store.add_anchor(_anchor(old[-1]), old[-1]).reorg is None
        assert [i.status for i in store.add_many(new)] == ["linked"] * 3  # not yet trusted
        assert store.head == old[-1]
        reorg = store.add_anchor(_anchor(new[-1]), new[-1]).reorg
        assert reorg is not None
        assert reorg.depth == 2 and reorg.ancestor_number == base
        assert reorg.removed == tuple(h.hash for h in old)
        assert reorg.added == tuple(h.hash for h in new)
        assert store.by_number(base + 1) == new[0]
        assert store.reorg_count() == 1


def _orbital(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "node.cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_orbital_verify_cli_on_anvil_data(anvil_rpc: Any, scenario: Scenario,
                                          tmp_path: Path) -> None:
    number = hex(scenario.block_number)
    files = {
        "block.json": _block(anvil_rpc, scenario.block_number),
        "receipts.json": anvil_rpc("eth_getBlockReceipts", number),
        "proof.json": anvil_rpc("eth_getProof", scenario.contract,
                                list(scenario.storage_keys), number),
    }
    for name, value in files.items():
        (tmp_path / name).write_text(json.dumps(value))
    block, receipts, proof = (str(tmp_path / n) for n in files)
    trusted = ("--trusted", f"{scenario.block_number}:{files['block.json']['hash']}")

    ok = _orbital("verify", "header", block, *trusted)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == (f"verified {scenario.block_number} "
                                         f"{files['block.json']['hash']}")
    ok = _orbital("verify", "block", block, "--receipts", receipts, "--json", *trusted)
    assert ok.returncode == 0, ok.stderr
    assert "receiptsRoot" in json.loads(ok.stdout)["checked"]
    ok = _orbital("verify", "proof", "--block", block, proof, *trusted)
    assert ok.returncode == 0, ok.stderr
    assert "= 0xbeef" in ok.stdout

    tampered = files["receipts.json"]
    tampered[2]["logs"][0]["data"] = "0x" + "00" * 31 + "08"
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    bad = _orbital("verify", "block", block, "--receipts", str(tmp_path / "tampered.json"),
                   *trusted)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "receiptsRoot mismatch" in bad.stderr

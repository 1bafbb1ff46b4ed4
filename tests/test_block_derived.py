"""Fields of a block's JSON that no root commits to but that follow from verified data
(issue #13, point 5): each one present is compared -- on the hive chain's answers, on the
example captured from anvil and on a live anvil -- or listed as not checked with the
reason; tampered one at a time, each is refused naming the field and both values."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import node.examples
from node.chain.block import (
    GAS_PER_BLOB,
    NEEDS_FULL_TRANSACTIONS,
    BlockReport,
    FieldChecks,
    check_receipt_fields,
    verify_block,
)
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.header import header_from_rpc, header_to_rpc, verify_header
from node.chain.receipts import MIN_BASE_FEE_PER_BLOB_GAS, contract_address, effective_gas_price
from node.chain.transactions import BLOB, transaction_from_rpc, transactions_from_block_rlp

from vectors import hex_bytes, hive_block, hive_latest, io_case, io_cases

EXAMPLES = Path(node.examples.__file__).parent
HIVE = (hive_latest(), io_case("eth_getBlockReceipts", "get-block-receipts-latest").result)
"""Block 54 (Prague): four EIP-155 legacy transactions, three of them creations, 11 logs."""
HIVE_1 = (io_case("eth_getBlockByHash", "get-block-by-hash").result,
          io_case("eth_getBlockReceipts", "get-block-receipts-by-hash").result)
"""Block 1 (Frontier rules): four pre-EIP-155 creations by one sender, receipts with root."""
ANVIL = (json.loads((EXAMPLES / "block.json").read_text()),
         json.loads((EXAMPLES / "receipts.json").read_text()))
"""anvil 1.7.1 (Prague): legacy, legacy/155 creation, 2930, 1559, 7702; 3 logs."""
DATA = {"hive": HIVE, "hive-1": HIVE_1, "anvil": ANVIL}

DERIVED_RECEIPT_FIELDS = ("from", "to", "contractAddress", "effectiveGasPrice",
                          "blobGasUsed", "blobGasPrice")
LOG_FIELDS = ("blockHash", "blockNumber", "blockTimestamp", "transactionHash",
              "transactionIndex", "logIndex", "removed")
OTHER_ADDRESS = "0x" + "11" * 20
ZERO_HASH = "0x" + "00" * 32


def fresh(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    block, receipts = DATA[name]
    return copy.deepcopy(block), copy.deepcopy(receipts)


def show(value: object) -> str:
    """How a VerificationError message writes a value."""
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


# --- the real data verifies, with the derived fields checked --------------------------

def test_hive_block_54_checks_every_derived_field_it_carries() -> None:
    report = verify_block(*fresh("hive"))
    compared = dict(report.compared)
    for key in ("from", "to", "contractAddress", "effectiveGasPrice", "type", "gasUsed",
                "transactionHash", "blockHash", "blockNumber", "transactionIndex"):
        assert compared[f"receipts.{key}"] == 4, key
    for key in LOG_FIELDS:
        assert compared[f"receipts.logs.{key}"] == 11, key
    for key in ("blockHash", "blockNumber", "blockTimestamp", "transactionIndex", "chainId"):
        assert compared[f"transactions.{key}"] == 4, key
    assert set(compared) <= set(report.verified)
    assert [f for f, _why in report.skipped] == ["requestsHash"]


def test_hive_block_1_derives_the_addresses_of_four_creations() -> None:
    block, receipts = fresh("hive-1")
    report = verify_block(block, receipts)
    sender = hex_bytes(block["transactions"][0]["from"])
    assert [hex_bytes(r["contractAddress"]) for r in receipts] == [
        contract_address(sender, nonce) for nonce in range(4)]
    assert dict(report.compared)["receipts.contractAddress"] == 4
    assert dict(report.compared)["receipts.effectiveGasPrice"] == 4  # = gasPrice, no base fee
    assert "receipts.blobGasPrice" not in report.verified
    assert report.skipped == ()


def test_anvil_example_checks_fee_market_prices_blob_gas_price_and_timestamps() -> None:
    block, receipts = fresh("anvil")
    report = verify_block(block, receipts)
    compared = dict(report.compared)
    for key in ("from", "to", "contractAddress", "effectiveGasPrice", "blobGasPrice",
                "blockTimestamp"):
        assert compared[f"receipts.{key}"] == 5, key
    for key in LOG_FIELDS:
        assert compared[f"receipts.logs.{key}"] == 3, key
    assert compared["transactions.gasPrice"] == 2  # the 1559 and 7702 ones
    assert compared["transactions.chainId"] == 4  # every one but the pre-EIP-155 transfer
    assert [f for f, _why in report.skipped] == ["requestsHash"]
    fee_market = [tx for tx in report.transactions if tx.tx_type >= 2]
    base_fee = report.header.base_fee_per_gas
    assert all(effective_gas_price(tx, base_fee) < tx["maxFeePerGas"] for tx in fee_market)


RECEIPT_CASES = [c for c in io_cases("eth_getBlockReceipts") if c.result]


@pytest.mark.parametrize("case", RECEIPT_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("form", ["full", "hashes"])
def test_no_derived_field_of_hive_receipts_passes_unlisted(case: Any, form: str) -> None:
    """Every derived field the receipts carry is either verified or listed as not checked,
    never both and never neither."""
    number = int(case.result[0]["blockNumber"], 16)
    (block,) = [c.result for c in (*io_cases("eth_getBlockByNumber"),
                                   *io_cases("eth_getBlockByHash"))
                if c.result and int(c.result["number"], 16) == number
                and isinstance(c.result["transactions"][0], dict)][:1]
    block = copy.deepcopy(block)
    if form == "hashes":
        block["transactions"] = [tx["hash"] for tx in block["transactions"]]
    report = verify_block(block, case.result)
    skipped = dict(report.skipped)
    carried = {f"receipts.{k}" for r in case.result for k in DERIVED_RECEIPT_FIELDS if k in r}
    carried |= {f"receipts.logs.{k}" for r in case.result for log in r["logs"]
                for k in LOG_FIELDS if k in log}
    assert carried
    for name in carried:
        assert (name in report.verified) != (name in skipped), name
    if form == "hashes":
        assert {n for n in carried if not n.startswith("receipts.logs.")} <= set(skipped)
        assert all(skipped[n] == NEEDS_FULL_TRANSACTIONS for n in carried if n in skipped)


def test_block_with_hashes_only_lists_the_transaction_derived_receipt_fields() -> None:
    block, receipts = fresh("hive")
    block["transactions"] = [tx["hash"] for tx in block["transactions"]]
    report = verify_block(block, receipts)
    assert {f for f, _why in report.skipped} == {
        "transactionsRoot", "requestsHash", "receipts.from", "receipts.to",
        "receipts.contractAddress", "receipts.effectiveGasPrice"}
    assert not {"receipts.from", "receipts.to", "receipts.effectiveGasPrice"} & set(
        report.verified)
    assert {f"receipts.logs.{k}" for k in LOG_FIELDS} <= set(report.verified)


def with_header(block: dict[str, Any], receipts: list[dict[str, Any]],
                **changes: Any) -> dict[str, Any]:
    """``block`` with header fields changed and its hash (and every blockHash) updated."""
    fields = header_to_rpc(dataclasses.replace(header_from_rpc(block), **changes))
    for item in [*block["transactions"], *receipts]:
        item["blockHash"] = fields["hash"]
        for log in item.get("logs", []):
            log["blockHash"] = fields["hash"]
    return {**block, **fields}


def test_blob_gas_price_above_the_minimum_is_listed_as_not_checked() -> None:
    """With excess blob gas the price needs the fork's update fraction: not derivable."""
    block, receipts = fresh("anvil")
    block = with_header(block, receipts, excess_blob_gas=10 * GAS_PER_BLOB)
    report = verify_block(block, receipts)
    assert "receipts.blobGasPrice" not in report.verified
    assert "update fraction" in dict(report.skipped)["receipts.blobGasPrice"]


def test_blob_gas_price_in_a_block_before_blobs_is_refused() -> None:
    block, receipts = fresh("hive-1")
    receipts[2]["blobGasPrice"] = "0x1"
    with pytest.raises(VerificationError) as exc:
        verify_block(block, receipts)
    assert exc.value.field == "receipts[2].blobGasPrice"
    assert exc.value.claimed == 1 and "no excessBlobGas" in str(exc.value)


# --- single receipts (eth_getTransactionReceipt) against chain.rlp ---------------------

TX_RECEIPT_CASES = [c for c in io_cases("eth_getTransactionReceipt") if c.result]


def _single(obj: dict[str, Any]) -> tuple[int, Any, Any]:
    block = hive_block(int(obj["blockNumber"], 16))
    index = int(obj["transactionIndex"], 16)
    return index, block.header, transactions_from_block_rlp(block.transactions)[index]


@pytest.mark.parametrize("case", TX_RECEIPT_CASES, ids=lambda c: c.name)
def test_hive_transaction_receipt_derived_fields_match_chain_rlp(case: Any) -> None:
    index, header, tx = _single(case.result)
    checks = FieldChecks()
    check_receipt_fields(case.result, index, header, tx.hash, tx, checks,
                         first_log_index=0 if index == 0 else None)
    for key in ("from", "to", "contractAddress", "effectiveGasPrice", "transactionHash"):
        assert checks.compared[f"receipts.{key}"] == 1, key
    if tx.tx_type == BLOB:
        assert checks.compared["receipts.blobGasUsed"] == checks.compared[
            "receipts.blobGasPrice"] == 1
    if case.result["logs"]:
        assert checks.compared["receipts.logs.removed"] == len(case.result["logs"])
        assert ("receipts.logs.logIndex" in checks.compared) == (index == 0)
        assert ("receipts.logs.logIndex" in checks.skipped) == (index != 0)


def test_hive_blob_receipt_with_tampered_blob_fields_is_refused() -> None:
    obj = io_case("eth_getTransactionReceipt", "get-blob-tx").result
    index, header, tx = _single(obj)
    assert len(tx["blobVersionedHashes"]) == 1 and header.excess_blob_gas == 0
    for key, value, computed in [("blobGasUsed", 2 * GAS_PER_BLOB, GAS_PER_BLOB),
                                 ("blobGasPrice", 2, MIN_BASE_FEE_PER_BLOB_GAS)]:
        tampered = {**obj, key: hex(value)}
        with pytest.raises(VerificationError) as exc:
            check_receipt_fields(tampered, index, header, tx.hash, tx, FieldChecks())
        assert exc.value.field == f"receipt.{key}"
        assert (exc.value.claimed, exc.value.computed) == (value, computed)


def test_receipt_without_its_transaction_lists_the_fields_that_need_it() -> None:
    obj = io_case("eth_getTransactionReceipt", "get-blob-tx").result
    index, header, tx = _single(obj)
    checks = FieldChecks()
    check_receipt_fields(obj, index, header, tx.hash, None, checks)
    assert set(checks.skipped) == {"receipts.from", "receipts.to", "receipts.contractAddress",
                                   "receipts.effectiveGasPrice", "receipts.blobGasUsed",
                                   "receipts.logs.logIndex"}  # no first_log_index given
    assert checks.compared["receipts.blobGasPrice"] == 1  # from the header alone


def test_fee_market_price_in_a_block_without_base_fee_is_refused() -> None:
    """No valid block holds one; the receipt's price cannot be what it paid."""
    real = io_case("eth_getTransactionReceipt", "get-dynamic-fee").result
    index, header, tx = _single(real)
    obj = {key: value for key, value in real.items()
           if key not in ("blockHash", "blockNumber")}  # they name the real block
    without_base_fee = dataclasses.replace(header, base_fee_per_gas=None)
    with pytest.raises(VerificationError) as exc:
        check_receipt_fields({**obj, "logs": []}, index, without_base_fee, tx.hash, tx,
                             FieldChecks())
    assert exc.value.field == "receipt.effectiveGasPrice"
    assert "without baseFeePerGas" in str(exc.value)


# --- tampering, one derived field at a time -------------------------------------------

def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict, list], None]:
    """Set ``block[...]`` (path starts with "tx") or ``receipts[...]`` (starts with "r")."""
    def edit(block: dict, receipts: list) -> None:
        kind, *rest = path
        target: Any = block["transactions"] if kind == "tx" else receipts
        for key in rest[:-1]:
            target = target[key]
        target[rest[-1]] = value
    return edit


def _hive(i: int, key: str) -> Any:
    return HIVE[1][i][key]


H_CREATED = [hex_bytes(r["contractAddress"]) if r["contractAddress"] else None
             for r in HIVE[1]]
TAMPERING: dict[str, tuple[str, Callable[[dict, list], None], str, object, object]] = {
    # name: (data, edit, field, claimed, computed)
    "effective-gas-price-legacy": ("hive", _set(("r", 0, "effectiveGasPrice"), "0x1a21397"),
                                   "receipts[0].effectiveGasPrice", 0x1A21397, 0x1A21398),
    "effective-gas-price-1559-is-max-fee": (
        "anvil", _set(("r", 3, "effectiveGasPrice"), "0xee6b2800"),
        "receipts[3].effectiveGasPrice", 0xEE6B2800, 0x77359400),
    "effective-gas-price-7702": ("anvil", _set(("r", 4, "effectiveGasPrice"), "0x77359401"),
                                 "receipts[4].effectiveGasPrice", 0x77359401, 0x77359400),
    "effective-gas-price-2930": ("anvil", _set(("r", 2, "effectiveGasPrice"), "0x77359400"),
                                 "receipts[2].effectiveGasPrice", 0x77359400, 0xEE6B2800),
    "tx-gas-price-1559": ("anvil", _set(("tx", 3, "gasPrice"), "0xee6b2800"),
                          "transactions[3].gasPrice", 0xEE6B2800, 0x77359400),
    "from": ("hive", _set(("r", 1, "from"), OTHER_ADDRESS), "receipts[1].from",
             hex_bytes(OTHER_ADDRESS), hex_bytes(_hive(1, "from"))),
    "to-of-a-call": ("hive", _set(("r", 3, "to"), OTHER_ADDRESS), "receipts[3].to",
                     hex_bytes(OTHER_ADDRESS), hex_bytes(_hive(3, "to"))),
    "to-of-a-creation": ("hive", _set(("r", 0, "to"), _hive(3, "to")), "receipts[0].to",
                         hex_bytes(_hive(3, "to")), None),
    "to-null-for-7702": ("anvil", _set(("r", 4, "to"), None), "receipts[4].to", None,
                         hex_bytes(ANVIL[1][4]["to"])),
    "contract-address-of-a-call": ("hive", _set(("r", 3, "contractAddress"), OTHER_ADDRESS),
                                   "receipts[3].contractAddress", hex_bytes(OTHER_ADDRESS),
                                   None),
    "contract-address-null-for-a-creation": (
        "hive", _set(("r", 0, "contractAddress"), None), "receipts[0].contractAddress", None,
        H_CREATED[0]),
    "contract-address-of-another-nonce": (
        "hive-1", _set(("r", 2, "contractAddress"), HIVE_1[1][1]["contractAddress"]),
        "receipts[2].contractAddress", hex_bytes(HIVE_1[1][1]["contractAddress"]),
        hex_bytes(HIVE_1[1][2]["contractAddress"])),
    "blob-gas-used-of-a-legacy-tx": ("hive", _set(("r", 0, "blobGasUsed"), "0x20000"),
                                     "receipts[0].blobGasUsed", GAS_PER_BLOB, 0),
    "blob-gas-price": ("anvil", _set(("r", 2, "blobGasPrice"), "0x2"),
                       "receipts[2].blobGasPrice", 2, MIN_BASE_FEE_PER_BLOB_GAS),
    "receipt-block-timestamp": ("anvil", _set(("r", 1, "blockTimestamp"), 1795409267),
                                "receipts[1].blockTimestamp", 1795409267, 1795409266),
    "tx-block-timestamp": ("hive", _set(("tx", 2, "blockTimestamp"), "0x21d"),
                           "transactions[2].blockTimestamp", 0x21D, 0x21C),
    "log-block-hash": ("hive", _set(("r", 1, "logs", 0, "blockHash"), ZERO_HASH),
                       "receipts[1].logs[0].blockHash", hex_bytes(ZERO_HASH),
                       hex_bytes(HIVE[0]["hash"])),
    "log-block-number": ("hive", _set(("r", 1, "logs", 4, "blockNumber"), "0x35"),
                         "receipts[1].logs[4].blockNumber", 0x35, 0x36),
    "log-block-timestamp": ("hive", _set(("r", 3, "logs", 0, "blockTimestamp"), "0x0"),
                            "receipts[3].logs[0].blockTimestamp", 0, 0x21C),
    "log-transaction-hash": ("hive", _set(("r", 1, "logs", 9, "transactionHash"),
                                          _hive(3, "transactionHash")),
                             "receipts[1].logs[9].transactionHash",
                             hex_bytes(_hive(3, "transactionHash")),
                             hex_bytes(_hive(1, "transactionHash"))),
    "log-transaction-index": ("hive", _set(("r", 3, "logs", 0, "transactionIndex"), "0x1"),
                              "receipts[3].logs[0].transactionIndex", 1, 3),
    "log-index": ("hive", _set(("r", 3, "logs", 0, "logIndex"), "0x0"),
                  "receipts[3].logs[0].logIndex", 0, 10),
    "log-removed": ("hive", _set(("r", 1, "logs", 2, "removed"), True),
                    "receipts[1].logs[2].removed", True, False),
    "log-removed-anvil": ("anvil", _set(("r", 4, "logs", 0, "removed"), True),
                          "receipts[4].logs[0].removed", True, False),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampered_derived_field_is_refused_naming_it_and_both_values(name: str) -> None:
    data, edit, field, claimed, computed = TAMPERING[name]
    block, receipts = fresh(data)
    verify_block(copy.deepcopy(block), copy.deepcopy(receipts))  # untampered: verifies
    edit(block, receipts)
    with pytest.raises(VerificationError) as exc:
        verify_block(block, receipts)
    assert exc.value.field == field
    assert (exc.value.claimed, exc.value.computed) == (claimed, computed)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(field)
    assert f"claimed {show(claimed)}, computed {show(computed)}" in message


# --- chainId of legacy transactions (EIP-155) -----------------------------------------

def test_pre_eip155_transaction_claiming_a_chain_id_is_refused() -> None:
    """v = 27/28 binds no chain: geth and erigon omit chainId; a claim would say the
    transaction is replay-protected when it is not."""
    block, receipts = fresh("anvil")
    assert int(block["transactions"][0]["v"], 16) == 28 and "chainId" not in block[
        "transactions"][0]
    block["transactions"][0]["chainId"] = "0x7a69"
    with pytest.raises(VerificationError) as exc:
        verify_block(block, receipts)
    assert exc.value.field == "block.transactions[0].chainId"
    assert (exc.value.claimed, exc.value.computed) == (31337, None)
    assert "chainId 31337 claimed, but v=28 is not replay-protected" in str(exc.value)


def test_pre_eip155_transaction_with_chain_id_zero_is_accepted() -> None:
    """0 is how go-ethereum's types and ethers write "no chain id"."""
    block, receipts = fresh("hive-1")
    for tx in block["transactions"]:
        tx["chainId"] = "0x0"
    report = verify_block(block, receipts)
    assert dict(report.compared)["transactions.chainId"] == 4
    assert all(tx.chain_id is None for tx in report.transactions)


def test_eip155_transaction_claiming_another_chain_id_is_refused() -> None:
    block, receipts = fresh("hive")
    block["transactions"][1]["chainId"] = "0x1"
    with pytest.raises(VerificationError) as exc:
        verify_block(block, receipts)
    assert exc.value.field == "block.transactions[1].chainId"
    assert (exc.value.claimed, exc.value.computed) == (1, 0xC72DD9D5E883E)


def test_legacy_transaction_alone_checks_its_chain_id_against_v() -> None:
    obj = copy.deepcopy(HIVE_1[0]["transactions"][1])
    assert transaction_from_rpc({**obj, "chainId": "0x0"}).chain_id is None
    with pytest.raises(VerificationError) as exc:
        transaction_from_rpc({**obj, "chainId": "0x1"})
    assert exc.value.field == "transaction.chainId"


# --- wrong types ----------------------------------------------------------------------

MALFORMED: dict[str, tuple[str, Callable[[dict, list], None]]] = {
    "effective-gas-price-number": ("hive", _set(("r", 0, "effectiveGasPrice"), 27399064)),
    "effective-gas-price-not-hex": ("hive", _set(("r", 0, "effectiveGasPrice"), "0xg")),
    "from-19-bytes": ("hive", _set(("r", 0, "from"), "0x" + "11" * 19)),
    "to-number": ("hive", _set(("r", 3, "to"), 5)),
    "to-empty-data": ("hive", _set(("r", 0, "to"), "0x")),
    "contract-address-empty-data": ("hive", _set(("r", 3, "contractAddress"), "0x")),
    "contract-address-21-bytes": ("hive", _set(("r", 0, "contractAddress"), "0x" + "11" * 21)),
    "blob-gas-used-not-hex": ("anvil", _set(("r", 0, "blobGasUsed"), "0xzz")),
    "blob-gas-price-without-0x": ("anvil", _set(("r", 0, "blobGasPrice"), "1")),
    "receipt-block-timestamp-text": ("anvil", _set(("r", 0, "blockTimestamp"), "soon")),
    "receipt-block-timestamp-bool": ("anvil", _set(("r", 0, "blockTimestamp"), True)),
    "log-removed-string": ("hive", _set(("r", 1, "logs", 0, "removed"), "false")),
    "log-removed-number": ("hive", _set(("r", 1, "logs", 0, "removed"), 0)),
    "log-block-hash-31-bytes": ("hive", _set(("r", 1, "logs", 0, "blockHash"),
                                             "0x" + "00" * 31)),
    "log-block-number-number": ("hive", _set(("r", 1, "logs", 0, "blockNumber"), 54)),
    "log-block-timestamp-number": ("hive", _set(("r", 1, "logs", 0, "blockTimestamp"), 540)),
    "log-transaction-hash-number": ("hive", _set(("r", 1, "logs", 0, "transactionHash"), 1)),
    "log-transaction-index-empty": ("hive", _set(("r", 1, "logs", 0, "transactionIndex"),
                                                 "0x")),
    "log-index-negative": ("hive", _set(("r", 1, "logs", 0, "logIndex"), "-0x1")),
    "tx-block-timestamp-number": ("hive", _set(("tx", 0, "blockTimestamp"), 540)),
    "tx-gas-price-number": ("anvil", _set(("tx", 3, "gasPrice"), 2000000000)),
    "tx-chain-id-number": ("anvil", _set(("tx", 1, "chainId"), 31337)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_derived_field_of_the_wrong_type_is_malformed(name: str) -> None:
    data, edit = MALFORMED[name]
    block, receipts = fresh(data)
    edit(block, receipts)
    with pytest.raises(MalformedInputError):
        verify_block(block, receipts)


# --- what `orbital verify block --json` shows -----------------------------------------

def test_cli_json_lists_the_derived_fields_as_checked(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli.main import build_parser, main  # imports the header store: only here

    paths = []
    for name, value in zip(("block.json", "receipts.json"), fresh("anvil"), strict=True):
        (tmp_path / name).write_text(json.dumps(value))
        paths.append(str(tmp_path / name))
    argv = ["verify", "block", paths[0], "--receipts", paths[1], "--json"]
    trust = ["--trusted", f"1:{ANVIL[0]['hash']}"]  # the block itself is the anchor
    try:  # a CLI that takes trust anchors needs one; an older one has no such option
        build_parser().parse_args([*argv, *trust])
    except SystemExit:
        trust = []
    capsys.readouterr()
    assert main([*argv, *trust]) == 0
    out = json.loads(capsys.readouterr().out)
    report = verify_block(*fresh("anvil"))
    assert out["checked"] == list(report.verified)
    assert {"receipts.effectiveGasPrice", "receipts.contractAddress", "receipts.blobGasPrice",
            "receipts.logs.removed", "transactions.gasPrice"} <= set(out["checked"])
    assert [item["field"] for item in out["notChecked"]] == ["requestsHash"]


# --- a live anvil ---------------------------------------------------------------------

@pytest.mark.devnet
def test_live_anvil_blocks_verify_with_every_derived_field_checked(anvil_rpc: Any) -> None:
    from node.devnet import CHAIN_ID, DEV_PRIVATE_KEYS

    from devnet_scenario import mine_every_envelope

    scenario = mine_every_envelope(anvil_rpc, DEV_PRIVATE_KEYS, CHAIN_ID)
    number = hex(scenario.block_number)
    report: BlockReport = verify_block(anvil_rpc("eth_getBlockByNumber", number, True),
                                       anvil_rpc("eth_getBlockReceipts", number))
    compared = dict(report.compared)
    for key in ("from", "to", "contractAddress", "effectiveGasPrice", "blobGasPrice"):
        assert compared[f"receipts.{key}"] == 5, key
    assert compared["receipts.logs.removed"] == 3
    assert [f for f, _why in report.skipped] == ["requestsHash"]

    # The blob block's transactionsRoot is refused (anvil bug, see test_devnet_verify), but
    # its receipt's fields still derive from the transaction and the verified header.
    blob_block = anvil_rpc("eth_getBlockByNumber", hex(scenario.blob_block_number), True)
    header = verify_header(blob_block)
    (obj,) = blob_block["transactions"]
    tx = transaction_from_rpc(obj)
    checks = FieldChecks()
    check_receipt_fields(anvil_rpc("eth_getTransactionReceipt", obj["hash"]), 0, header,
                         hex_bytes(obj["hash"]), tx, checks, first_log_index=0)
    assert tx.tx_type == BLOB and tx.hash == hex_bytes(obj["hash"])
    assert checks.compared["receipts.blobGasUsed"] == checks.compared[
        "receipts.blobGasPrice"] == 1
    assert checks.skipped == {}

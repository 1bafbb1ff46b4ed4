"""Transactions against ethereum/tests ``TransactionTests`` and the hive chain's
JSON-RPC transactions of every envelope."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from node.chain import rlp
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.transactions import (
    SECP256K1_N,
    Transaction,
    decode_transaction,
    transaction_from_rpc,
    transactions_from_block_rlp,
)

from vectors import (
    ethereum_tests,
    hex_bytes,
    hive_block,
    io_case,
    io_cases,
    json_files,
    load_json,
)

FORKS = ["Frontier", "Homestead", "EIP150", "EIP158", "Byzantium", "Constantinople",
         "ConstantinopleFix", "Istanbul", "Berlin", "London", "Paris", "Shanghai", "Cancun"]
"""Forks of TransactionTests, oldest first: each case is judged by its newest fork."""

ENCODING_EXCEPTIONS = {
    "ADDRESS_TOO_LONG", "ADDRESS_TOO_SHORT", "EC_RECOVERY_FAIL", "GASLIMIT_OVERFLOW",
    "GASPRICE_OVERFLOW", "INVALID_SIGNATURE_VRS", "NONCE_OVERFLOW", "PRIORITY_OVERFLOW",
    "RLP_ERROR_EOF", "RLP_ERROR_SIZE", "RLP_ERROR_SIZE_LEADING_ZEROS",
    "RLP_INVALID_ACCESS_LIST_ADDRESS_TOO_LONG", "RLP_INVALID_ACCESS_LIST_ADDRESS_TOO_SHORT",
    "RLP_INVALID_ACCESS_LIST_STORAGE_TOO_LONG", "RLP_INVALID_ACCESS_LIST_STORAGE_TOO_SHORT",
    "RLP_INVALID_DATA", "RLP_INVALID_GASLIMIT", "RLP_INVALID_HEADER", "RLP_INVALID_NONCE",
    "RLP_INVALID_SIGNATURE_R", "RLP_INVALID_SIGNATURE_S", "RLP_INVALID_TO",
    "RLP_LEADING_ZEROS_BASEFEE", "RLP_LEADING_ZEROS_DATA_SIZE", "RLP_LEADING_ZEROS_GASLIMIT",
    "RLP_LEADING_ZEROS_GASPRICE", "RLP_LEADING_ZEROS_NONCE", "RLP_LEADING_ZEROS_NONCE_SIZE",
    "RLP_LEADING_ZEROS_PRIORITY_FEE", "RLP_LEADING_ZEROS_R", "RLP_LEADING_ZEROS_S",
    "RLP_LEADING_ZEROS_V", "RLP_LEADING_ZEROS_VALUE", "RLP_TOO_FEW_ELEMENTS",
    "RLP_TOO_MANY_ELEMENTS", "TYPE_NOT_SUPPORTED", "VALUE_OVERFLOW",
}
"""Exceptions about the encoding itself (RLP shape, sizes, types, signature ranges): the
decoder (or ``.sender``) must raise MalformedInputError."""


def _fee_cap(tx: Transaction) -> int:
    return tx["gasPrice"] if tx.tx_type in (0, 1) else tx["maxFeePerGas"]


def _not_chain_1(tx: Transaction) -> bool:
    try:
        return tx.chain_id != 1
    except MalformedInputError:  # a legacy v (0..26, 29..34) that encodes no chain id at all
        return True


SEMANTIC: dict[str, Callable[[Transaction, dict[str, Any]], bool]] = {
    "INTRINSIC_GAS_TOO_LOW": lambda tx, r: tx["gas"] < int(r["intrinsicGas"], 16),
    "GASLIMIT_PRICE_PRODUCT_OVERFLOW": lambda tx, r: tx["gas"] * _fee_cap(tx) >= 2**256,
    "PRIORITY_GREATER_THAN_MAX_FEE_PER_GAS_2":
        lambda tx, r: tx["maxPriorityFeePerGas"] > tx["maxFeePerGas"],
    "NONCE_TOO_BIG": lambda tx, r: tx["nonce"] >= 2**64 - 1,  # EIP-2681
    "INVALID_CHAINID": lambda tx, r: _not_chain_1(tx),
    "INITCODE_SIZE_EXCEEDED": lambda tx, r: tx["to"] == b"" and len(tx["input"]) > 49152,
}
"""Exceptions a decoder cannot and should not raise (they depend on gas rules, the chain
id, fork limits): decoding succeeds, re-encodes identically, and the named reason holds."""


def _cases() -> dict[str, tuple[dict[str, Any], str, dict[str, Any]]]:
    cases = {}
    for path in json_files(ethereum_tests("TransactionTests")):
        for name, case in load_json(path).items():
            fork = max(case["result"], key=FORKS.index)
            cases[f"{path.parent.name}/{name}"] = (case, fork, case["result"][fork])
    return cases


CASES = _cases()


def exception_name(result: dict[str, Any]) -> str | None:
    exception = result.get("exception")
    return None if exception is None else exception.removeprefix("TransactionException.")


def is_frontier_high_s(case: dict[str, Any], result: dict[str, Any]) -> bool:
    """Valid in Frontier, refused from Homestead on by EIP-2's low-s rule only."""
    return (exception_name(result) == "INVALID_SIGNATURE_VRS"
            and "hash" in case["result"].get("Frontier", {}))


VALID = sorted(k for k, (_c, _f, r) in CASES.items() if exception_name(r) is None)
FRONTIER_HIGH_S = sorted(k for k, (c, _f, r) in CASES.items() if is_frontier_high_s(c, r))
ENCODING = sorted(k for k, (c, _f, r) in CASES.items()
                  if exception_name(r) in ENCODING_EXCEPTIONS and not is_frontier_high_s(c, r))
SEMANTIC_CASES = sorted(k for k, (_c, _f, r) in CASES.items() if exception_name(r) in SEMANTIC)


def test_every_transaction_case_is_classified() -> None:
    """A new exception name in the vectors must be classified here, never skipped."""
    unknown = {exception_name(r) for _c, _f, r in CASES.values()} - {None} - set(
        SEMANTIC) - ENCODING_EXCEPTIONS
    assert not unknown, f"unclassified TransactionTests exceptions: {unknown}"
    assert len(VALID) + len(FRONTIER_HIGH_S) + len(ENCODING) + len(SEMANTIC_CASES) == len(CASES)
    assert len(CASES) > 200 and len(VALID) > 40


@pytest.mark.parametrize("name", VALID)
def test_valid_transaction_reencodes_and_recovers_hash_and_sender(name: str) -> None:
    case, _fork, result = CASES[name]
    raw = hex_bytes(case["txbytes"])
    tx = decode_transaction(raw)
    assert tx.encoded == raw
    assert tx.hash == hex_bytes(result["hash"])
    assert tx.sender == hex_bytes(result["sender"])


@pytest.mark.parametrize("name", FRONTIER_HIGH_S)
def test_pre_eip155_high_s_transaction_decodes_as_frontier_did(name: str) -> None:
    """Pre-EIP-155 legacy transactions (v 27/28) may come from Frontier blocks, where s in
    the upper half was valid: the fork-agnostic decoder recovers them as Frontier did."""
    case, _fork, _result = CASES[name]
    frontier = case["result"]["Frontier"]
    tx = decode_transaction(hex_bytes(case["txbytes"]))
    assert tx.tx_type == 0 and tx["v"] in (27, 28) and tx["s"] > SECP256K1_N // 2
    assert tx.hash == hex_bytes(frontier["hash"])
    assert tx.sender == hex_bytes(frontier["sender"])


@pytest.mark.parametrize("name", ENCODING)
def test_badly_encoded_transaction_is_malformed(name: str) -> None:
    case, _fork, _result = CASES[name]
    with pytest.raises(MalformedInputError):
        decode_transaction(hex_bytes(case["txbytes"])).sender  # noqa: B018


@pytest.mark.parametrize("name", SEMANTIC_CASES)
def test_semantically_invalid_transaction_decodes_and_shows_its_reason(name: str) -> None:
    case, _fork, result = CASES[name]
    raw = hex_bytes(case["txbytes"])
    tx = decode_transaction(raw)
    assert tx.encoded == raw
    assert SEMANTIC[exception_name(result)](tx, result)


def _legacy_with_v(v: int) -> Transaction:
    valid = CASES[next(k for k in VALID if k.startswith("ttData/"))]
    tx = decode_transaction(hex_bytes(valid[0]["txbytes"]))
    assert tx.tx_type == 0
    return Transaction(0, (*tx.values[:6], v, *tx.values[7:]))


@pytest.mark.parametrize("v", [0, 1, 26, 29, 34])
def test_legacy_transaction_with_impossible_v_is_malformed(v: int) -> None:
    tx = decode_transaction(_legacy_with_v(v).encoded)
    with pytest.raises(MalformedInputError):
        tx.sender  # noqa: B018


def test_signing_hash_of_legacy_transaction_with_impossible_v_is_malformed() -> None:
    """v=29 encodes no chain id; ``chain_id`` computes (29 - 35) // 2 = -3 and
    ``signing_hash`` feeds it to RLP, which raises a bare ValueError."""
    tx = decode_transaction(_legacy_with_v(29).encoded)
    with pytest.raises(MalformedInputError):
        tx.signing_hash()


def test_decode_transaction_rejects_empty_and_unknown_types() -> None:
    for raw in (b"", b"\x05\xc0", b"\x7f\xc0", b"\x80"):
        with pytest.raises(MalformedInputError):
            decode_transaction(raw)


# --- the hive chain: every envelope, from RLP and from JSON-RPC -----------------------

TX_CASES = [c for m in ("eth_getTransactionByHash", "eth_getTransactionByBlockHashAndIndex",
                        "eth_getTransactionByBlockNumberAndIndex")
            for c in io_cases(m) if c.result is not None]


def test_hive_transactions_cover_every_envelope() -> None:
    assert {int(c.result["type"], 16) for c in TX_CASES} == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("case", TX_CASES, ids=lambda c: c.name)
def test_hive_json_transaction_hashes_recovers_sender_and_equals_block_body(case: Any) -> None:
    obj = case.result
    tx = transaction_from_rpc(obj)
    assert tx.hash == hex_bytes(obj["hash"])
    assert tx.sender == hex_bytes(obj["from"])
    block = hive_block(int(obj["blockNumber"], 16))
    assert block.header.hash == hex_bytes(obj["blockHash"])
    in_body = transactions_from_block_rlp(block.transactions)[int(obj["transactionIndex"], 16)]
    assert in_body == tx and in_body.encoded == tx.encoded


def test_debug_get_raw_transaction_decodes_to_the_requested_hash() -> None:
    case = io_case("debug_getRawTransaction", "get-tx")
    tx = decode_transaction(hex_bytes(case.result))
    assert tx.hash == hex_bytes(case.params[0])
    assert tx.encoded == hex_bytes(case.result)


def test_every_hive_block_body_transaction_reencodes_and_has_a_sender() -> None:
    count = 0
    for number in range(1, 55):
        for item, tx in zip(hive_block(number).transactions,
                            transactions_from_block_rlp(hive_block(number).transactions),
                            strict=True):
            assert tx.encoded == (rlp.encode(item) if isinstance(item, list) else item)
            assert len(tx.sender) == 20
            count += 1
    assert count > 100


def test_block_body_rejects_typed_transaction_as_list_or_legacy_as_string() -> None:
    legacy = hive_block(1).transactions[0]
    typed = hive_block(27).transactions[0]
    assert isinstance(legacy, list) and isinstance(typed, bytes)
    for items in ([rlp.encode(legacy)], [rlp.decode(typed[1:])], [b""]):
        with pytest.raises(MalformedInputError):
            transactions_from_block_rlp(items)


def _by_type(tx_type: int) -> dict[str, Any]:
    return copy.deepcopy(next(c.result for c in TX_CASES if int(c.result["type"], 16) == tx_type))


def test_typed_transaction_json_with_only_v_reads_v_as_y_parity() -> None:
    obj = _by_type(2)
    del obj["yParity"]
    assert transaction_from_rpc(obj).hash == hex_bytes(obj["hash"])


def test_transaction_json_with_data_instead_of_input_is_accepted() -> None:
    obj = _by_type(1)
    obj["data"] = obj.pop("input")
    assert transaction_from_rpc(obj).hash == hex_bytes(obj["hash"])


@pytest.mark.parametrize("spelling", [None, "0x"], ids=["null", "empty"])
def test_contract_creation_json_to_may_be_null_or_empty(spelling: str | None) -> None:
    obj = dict(io_case("eth_getTransactionByHash", "get-legacy-create").result, to=spelling)
    assert obj["input"] != "0x"
    assert transaction_from_rpc(obj).hash == hex_bytes(obj["hash"])


@pytest.mark.parametrize("tx_type, field, value", [
    (2, "value", "0x3"),
    (2, "nonce", "0x91"),
    (3, "blobVersionedHashes", ["0x01" + "00" * 31]),
    (4, "authorizationList", []),
    (1, "accessList", []),
    (0, "input", "0x00"),
])
def test_tampered_transaction_json_changes_the_hash(tx_type: int, field: str, value: Any) -> None:
    obj = _by_type(tx_type)
    obj[field] = value
    assert transaction_from_rpc(obj).hash != hex_bytes(obj["hash"])


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        if value is None:
            obj.pop(field, None)
        else:
            obj[field] = value
    return edit


MALFORMED_JSON = {
    "unknown-type": (2, _set("type", "0x5")),
    "type-over-8-bits": (2, _set("type", "0x102")),
    "y-parity-2": (2, lambda o: o.update(yParity="0x2", v="0x2")),
    "v-and-y-parity-disagree": (2, _set("v", "0x0")),
    "no-v-no-y-parity": (2, lambda o: [o.pop("v"), o.pop("yParity")]),
    "nonce-over-64-bits": (2, _set("nonce", "0x1" + "0" * 16)),
    "gas-over-64-bits": (0, _set("gas", "0x1" + "0" * 16)),
    "value-over-256-bits": (0, _set("value", "0x1" + "0" * 64)),
    "to-19-bytes": (2, _set("to", "0x" + "11" * 19)),
    "blob-to-null": (3, _set("to", None)),
    "blob-hash-31-bytes": (3, _set("blobVersionedHashes", ["0x" + "01" * 31])),
    "blob-hashes-not-a-list": (3, _set("blobVersionedHashes", "0x01")),
    "access-list-not-a-list": (1, _set("accessList", {})),
    "access-list-entry-without-keys": (1, _set("accessList", [{"address": "0x" + "11" * 20}])),
    "access-list-key-31-bytes": (1, _set("accessList", [{"address": "0x" + "11" * 20,
                                                          "storageKeys": ["0x" + "00" * 31]}])),
    "authorization-without-address": (4, lambda o: o["authorizationList"][0].pop("address")),
    "authorization-y-parity-2": (4, lambda o: o["authorizationList"][0].update(yParity="0x2")),
    "authorization-not-an-object": (4, _set("authorizationList", ["0x00"])),
    "missing-r": (0, _set("r", None)),
    "missing-gas": (1, _set("gas", None)),
    "input-odd-length": (0, _set("input", "0x0")),
    "input-not-hex": (0, _set("input", "0xzz")),
    "chain-id-as-number": (2, _set("chainId", 1)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_JSON))
def test_malformed_transaction_json_is_refused(name: str) -> None:
    tx_type, edit = MALFORMED_JSON[name]
    obj = _by_type(tx_type)
    edit(obj)
    with pytest.raises(MalformedInputError):
        transaction_from_rpc(obj)


def test_legacy_json_chain_id_must_match_v() -> None:
    obj = copy.deepcopy(io_case("eth_getBlockByNumber", "get-latest").result["transactions"][0])
    assert transaction_from_rpc(obj).chain_id == int(obj["chainId"], 16)
    obj["chainId"] = "0x1"
    with pytest.raises(VerificationError) as exc:
        transaction_from_rpc(obj)
    assert exc.value.field == "transaction.chainId"


@pytest.mark.parametrize("obj", [None, [], "0x00"])
def test_transaction_json_that_is_not_an_object_is_refused(obj: Any) -> None:
    with pytest.raises(MalformedInputError):
        transaction_from_rpc(obj)

"""Consensus header rules (node.chain.header_rules) and fork schedules (node.chain.forks).

The hive chain and ethereum/tests ValidBlocks pass every rule; each rule refuses a genuine
header mutated (and re-hashed, so it still links) to break just that rule, naming the rule,
the header and both values; the blob formulas are pinned by hand-computed cases across the
Osaka (EIP-7918) and BPO (EIP-7892) boundaries; the built-in schedules match the values
checked against their sources; config files are read strictly.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from eth._utils.calculations import fake_exponential as pyevm_fake_exponential
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas
from hypothesis import given
from hypothesis import strategies as st

from node.chain.beacon.config import NETWORKS as BEACON_NETWORKS
from node.chain.errors import HeaderRuleError, MalformedInputError, VerificationError
from node.chain.forks import (
    HOODI,
    KNOWN_UNTIL,
    MAINNET,
    SEPOLIA,
    BlobSchedule,
    ChainConfig,
    TimeFork,
    chain_config_from_forkenv,
    chain_config_from_genesis,
    load_chain_config,
)
from node.chain.hashing import keccak256
from node.chain.header import Header, verify_header
from node.chain.header_rules import (
    GAS_LIMIT_MAXIMUM,
    GAS_LIMIT_MINIMUM,
    INITIAL_BASE_FEE,
    RULES,
    calculate_base_fee_per_gas,
    check_gas_limit,
    fake_exponential,
    validate_header,
)

from vectors import (
    blockchain_test_header_to_rpc,
    execution_apis,
    hive_chain,
    hive_genesis,
    load_json,
    valid_block_tests,
)

GAS_PER_BLOB = 2**17
GENESIS_PATH = execution_apis("genesis.json")
FORKENV_PATH = execution_apis("forkenv.json")
HIVE = load_chain_config(GENESIS_PATH)
HIVE_HEADERS: tuple[Header, ...] = (verify_header(hive_genesis()),
                                    *(block.header for block in hive_chain()))
"""The genesis and blocks 1..54: ``HIVE_HEADERS[n]`` is block n."""


def header(number: int) -> Header:
    found = HIVE_HEADERS[number]
    assert found.number == number
    return found


def relink(parent: Header, child: Header, **changes: Any) -> Header:
    """``child`` with ``changes``, pointing at ``parent``'s (possibly new) hash."""
    return dataclasses.replace(child, parent_hash=parent.hash, **changes)


def pair(block: int, parent_changes: dict[str, Any] | None = None, /,
         **child_changes: Any) -> tuple[Header, Header]:
    """Hive block ``block`` and its parent, mutated and re-hashed so that they still link."""
    parent = dataclasses.replace(header(block - 1), **(parent_changes or {}))
    return parent, relink(parent, header(block), **child_changes)


def shown(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def assert_refused(child: Header, parent: Header, config: ChainConfig | None, rule: str,
                   claimed: object, computed: object) -> HeaderRuleError:
    with pytest.raises(HeaderRuleError) as info:
        validate_header(child, parent, config)
    error = info.value
    assert (error.rule, error.number, error.block_hash) == (rule, child.number, child.hash)
    assert (error.claimed, error.computed) == (claimed, computed)
    text = str(error)
    assert "\n" not in text
    assert f"header {child.number} 0x{child.hash.hex()} breaks {rule}:" in text
    assert shown(claimed) in text and shown(computed) in text, text
    assert isinstance(error, VerificationError)  # the CLI's exit 1, never "malformed"
    return error


# --- (a) the hive chain: genesis.json and forkenv.json, and no config ---------------------

def test_hive_genesis_and_forkenv_give_the_same_config() -> None:
    from_forkenv = load_chain_config(FORKENV_PATH)
    assert from_forkenv == HIVE
    assert chain_config_from_genesis(load_json(GENESIS_PATH)) == HIVE
    assert chain_config_from_forkenv(load_json(FORKENV_PATH)) == HIVE


def test_hive_config_holds_the_schedule_of_its_files() -> None:
    assert HIVE.chain_id == 3503995874084926
    assert HIVE.london_block == 27 and HIVE.merge_block == 36 and HIVE.merged_from == 36
    assert HIVE.terminal_total_difficulty == 4732352 and HIVE.known_until is None
    assert [(f.name, f.time) for f in HIVE.time_forks] == [
        ("shanghai", 390), ("cancun", 420), ("prague", 450), ("osaka", 480), ("bpo1", 510),
        ("bpo2", 540)]
    assert HIVE.blob_schedule_at(419) is None
    assert HIVE.blob_schedule_at(420) == BlobSchedule(3, 6, 3338477)
    assert HIVE.blob_schedule_at(510) == BlobSchedule(10, 15, 8346193)
    assert HIVE.blob_schedule_at(10**9) == BlobSchedule(14, 21, 11684671)
    assert HIVE.last_fork == "bpo2"
    forks = [HIVE.fork_at(h.number, h.timestamp) for h in HIVE_HEADERS]
    assert forks[26:28] == ["berlin", "london"] and forks[36] == "paris"
    assert forks[39] == "shanghai" and forks[42] == "cancun" and forks[54] == "bpo2"


@pytest.mark.parametrize("number", range(1, 55))
def test_hive_pair_passes_every_rule_with_the_config(number: int) -> None:
    child, parent = header(number), header(number - 1)
    report = validate_header(child, parent, HIVE)
    assert validate_header(child, parent, load_chain_config(FORKENV_PATH)) == report
    expected = {"number", "parentHash", "timestamp", "gasUsed", "fork-order", "fork-shape",
                "extraData", "gasLimit-bounds", "gasLimit-minimum", "gasLimit-maximum"}
    if number >= 27:
        expected.add("baseFeePerGas")
    if number >= 36:
        expected |= {"difficulty", "nonce", "sha3Uncles"}
        assert report.not_checked == ()
    else:
        assert report.not_checked == (
            ("difficulty", "proof-of-work difficulty (calculate_block_difficulty) not checked"),
            ("ethash-seal", "proof-of-work seal not checked"))
    if number >= 42:
        expected |= {"blobGasUsed-granularity", "blobGasUsed-max", "excessBlobGas"}
    assert set(report.checked) == expected and len(report.checked) == len(expected)
    assert set(report.checked) <= set(RULES)


@pytest.mark.parametrize("number", range(1, 55))
def test_hive_pair_passes_without_a_config_which_checks_less(number: int) -> None:
    report = validate_header(header(number), header(number - 1))
    missing = dict(report.not_checked)
    assert "fork-shape" not in report.checked and "fork-shape" in missing
    assert "unknown" in missing["fork-shape"] and "genesis/forkenv" in missing["fork-shape"]
    assert ("baseFeePerGas" in report.checked) == (number >= 27)  # London by shape
    assert ("nonce" in report.checked) == (number >= 36)  # the Merge by difficulty 0
    if number >= 42:
        assert "excessBlobGas" in missing and "blobGasUsed-max" in missing
        assert "blobGasUsed-granularity" in report.checked
    assert set(report.checked) | set(missing) <= set(RULES)
    assert not set(report.checked) & set(missing)


def test_reports_are_shared_between_headers_with_the_same_outcome() -> None:
    assert validate_header(header(50), header(49), HIVE) is validate_header(
        header(51), header(50), HIVE)


# --- (b) ethereum/tests ValidBlocks (Cancun) ----------------------------------------------

CANCUN_AT_GENESIS = chain_config_from_genesis({
    "chainId": 1, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
    "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0,
    "berlinBlock": 0, "londonBlock": 0, "terminalTotalDifficulty": 0, "shanghaiTime": 0,
    "cancunTime": 0,
    "blobSchedule": {"cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}},
}, name="Cancun")
"""The ``network: Cancun`` of the BlockchainTests: every fork up to Cancun at genesis."""


def _valid_block_pairs() -> dict[str, list[tuple[Header, Header]]]:
    pairs = {}
    for name, test in valid_block_tests().items():
        assert test["network"] == "Cancun"
        headers = [verify_header(blockchain_test_header_to_rpc(test["genesisBlockHeader"]))]
        headers += [verify_header(blockchain_test_header_to_rpc(block["blockHeader"]))
                    for block in test["blocks"]]
        by_hash = {h.hash: h for h in headers}
        found = [(by_hash[h.parent_hash], h) for h in headers if h.parent_hash in by_hash]
        if found:
            pairs[name] = found
    return pairs


VALID_BLOCK_PAIRS = _valid_block_pairs()


def test_every_valid_block_has_its_parent_in_its_test() -> None:
    assert sum(len(found) for found in VALID_BLOCK_PAIRS.values()) == 902


@pytest.mark.parametrize("name", sorted(VALID_BLOCK_PAIRS))
def test_valid_block_passes_every_rule(name: str) -> None:
    for parent, child in VALID_BLOCK_PAIRS[name]:
        report = validate_header(child, parent, CANCUN_AT_GENESIS)
        assert report.not_checked == ()
        assert {"baseFeePerGas", "excessBlobGas", "blobGasUsed-max", "fork-shape",
                "difficulty"} <= set(report.checked)
        assert "excessBlobGas" in dict(validate_header(child, parent).not_checked)


# --- (c) every rule refuses a genuine header mutated to break it --------------------------

MUTATIONS: list[tuple[str, int, dict[str, Any], dict[str, Any], str, object, object]] = [
    # (id, block, parent changes, child changes, rule, claimed, computed)
    ("number", 50, {}, {"number": 51}, "number", 51, 50),
    ("timestamp-equal", 50, {}, {"timestamp": 490}, "timestamp", 490, 490),
    ("timestamp-earlier", 50, {}, {"timestamp": 1}, "timestamp", 1, 490),
    ("extraData-33", 50, {}, {"extra_data": b"\x01" * 33}, "extraData", 33, 32),
    ("extraData-33-pow", 30, {}, {"extra_data": b"\x01" * 33}, "extraData", 33, 32),
    ("gasUsed", 50, {}, {"gas_used": 200_000_001}, "gasUsed", 200_000_001, 200_000_000),
    ("gasLimit-up", 50, {}, {"gas_limit": 200_195_312}, "gasLimit-bounds", 200_195_312,
     200_000_000),
    ("gasLimit-down", 50, {}, {"gas_limit": 199_804_688}, "gasLimit-bounds", 199_804_688,
     200_000_000),
    ("gasLimit-pow", 20, {}, {"gas_limit": 100_097_657}, "gasLimit-bounds", 100_097_657,
     100_000_000),
    # London: the parent's limit counts twice (EIP-1559), so 2 x 100M +- 195311 is allowed
    ("gasLimit-london", 27, {}, {"gas_limit": 200_195_312}, "gasLimit-bounds", 200_195_312,
     200_000_000),
    ("gasLimit-minimum", 11, {"gas_limit": 5000}, {"gas_limit": 4999, "gas_used": 0},
     "gasLimit-minimum", 4999, 5000),
    ("gasLimit-maximum", 11, {"gas_limit": GAS_LIMIT_MAXIMUM}, {"gas_limit": 2**63},
     "gasLimit-maximum", 2**63, GAS_LIMIT_MAXIMUM),
    ("baseFee", 50, {}, {"base_fee_per_gas": 46694600}, "baseFeePerGas", 46694600, 46694599),
    ("baseFee-london", 27, {}, {"base_fee_per_gas": INITIAL_BASE_FEE + 1}, "baseFeePerGas",
     INITIAL_BASE_FEE + 1, INITIAL_BASE_FEE),
    ("difficulty", 50, {}, {"difficulty": 1}, "difficulty", 1, 0),
    ("back-to-pow", 37, {}, {"difficulty": 131072}, "difficulty", 131072, 0),
    ("nonce", 50, {}, {"nonce": bytes(7) + b"\x01"}, "nonce", bytes(7) + b"\x01", bytes(8)),
    ("sha3Uncles", 50, {}, {"ommers_hash": keccak256(b"ommer")}, "sha3Uncles",
     keccak256(b"ommer"), keccak256(bytes.fromhex("c0"))),
    ("fork-order", 50, {}, {"requests_hash": None}, "fork-order", "cancun", "prague"),
    ("fork-order-london", 28, {}, {"base_fee_per_gas": None}, "fork-order", "frontier",
     "london"),
    ("blobGasUsed-granularity", 50, {}, {"blob_gas_used": GAS_PER_BLOB + 1},
     "blobGasUsed-granularity", GAS_PER_BLOB + 1, GAS_PER_BLOB),
    ("excessBlobGas", 50, {}, {"excess_blob_gas": 1}, "excessBlobGas", 1, 0),
]


@pytest.mark.parametrize("config", [HIVE, None], ids=["config", "no-config"])
@pytest.mark.parametrize(("number", "parent_changes", "child_changes", "rule", "claimed",
                          "computed"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_mutated_hive_header_breaks_exactly_its_rule(
        config: ChainConfig | None, number: int, parent_changes: dict[str, Any],
        child_changes: dict[str, Any], rule: str, claimed: object, computed: object) -> None:
    parent, child = pair(number, parent_changes, **child_changes)
    if config is None and rule in ("excessBlobGas",):
        assert rule in dict(validate_header(child, parent).not_checked)  # no schedule
        return
    assert_refused(child, parent, config, rule, claimed, computed)
    validate_header(header(number), header(number - 1), config)  # the genuine pair passes


def test_parent_hash_that_is_not_the_parent_is_refused() -> None:
    parent, child = header(49), dataclasses.replace(header(50), parent_hash=header(48).hash)
    assert_refused(child, parent, HIVE, "parentHash", header(48).hash, header(49).hash)


def test_gas_limit_bounds_are_strict_as_check_gas_limit() -> None:
    delta = 200_000_000 // 1024
    for limit, ok in ((200_000_000 + delta - 1, True), (200_000_000 + delta, False),
                      (200_000_000 - delta + 1, True), (200_000_000 - delta, False)):
        assert check_gas_limit(limit, 200_000_000) is ok
        parent, child = pair(50, gas_limit=limit)
        if ok:
            validate_header(child, parent, HIVE)
        else:
            error = assert_refused(child, parent, HIVE, "gasLimit-bounds", limit, 200_000_000)
            assert f"gasLimit {limit} is outside parent's 200000000 +/- {delta - 1}" in str(error)
    assert not check_gas_limit(4999, 5000) and check_gas_limit(5000, 5000)
    for limit in (GAS_LIMIT_MINIMUM, GAS_LIMIT_MAXIMUM):  # the extremes themselves pass
        parent, child = pair(11, {"gas_limit": limit}, gas_limit=limit, gas_used=0)
        validate_header(child, parent, HIVE)


def test_london_transition_without_a_config_is_recognised_by_shape() -> None:
    parent, child = pair(27, gas_limit=200_195_312)
    error = assert_refused(child, parent, None, "gasLimit-bounds", 200_195_312, 200_000_000)
    assert "London transition" in str(error)
    parent, child = pair(27, base_fee_per_gas=7)
    assert_refused(child, parent, None, "baseFeePerGas", 7, INITIAL_BASE_FEE)


def test_the_merge_block_from_the_config_catches_a_difficulty_the_shape_cannot() -> None:
    # Block 36 is the first proof-of-stake block (HIVE_MERGE_BLOCK_ID); its parent has a
    # difficulty, so without the config a non-zero difficulty looks like proof of work.
    parent, child = pair(36, difficulty=131968)
    assert_refused(child, parent, HIVE, "difficulty", 131968, 0)
    report = validate_header(child, parent)
    assert ("ethash-seal", "proof-of-work seal not checked") in report.not_checked
    assert "difficulty" in dict(report.not_checked)


def test_fork_shape_against_the_schedule() -> None:
    # Cancun starts at 420 (block 42): block 42 without the Cancun fields ...
    parent, child = pair(42, blob_gas_used=None, excess_blob_gas=None,
                         parent_beacon_block_root=None)
    error = assert_refused(child, parent, HIVE, "fork-shape", "shanghai", "cancun")
    assert "blobGasUsed" in str(error)
    assert "fork-shape" in dict(validate_header(child, parent).not_checked)
    # ... and block 41 (timestamp 410) with them
    parent, child = pair(41, blob_gas_used=0, excess_blob_gas=0,
                         parent_beacon_block_root=bytes(32))
    error = assert_refused(child, parent, HIVE, "fork-shape", "cancun", "shanghai")
    assert "cancun starts at timestamp 420, this header's is 410" in str(error)
    # London starts at block 27: block 26 with a base fee
    parent, child = pair(26, base_fee_per_gas=INITIAL_BASE_FEE)
    error = assert_refused(child, parent, HIVE, "fork-shape", "london", "frontier")
    assert "london starts at block 27, this is block 26" in str(error)


def test_blob_gas_used_max_is_the_blob_schedule_at_the_header() -> None:
    for number, fork_max in ((50, 9), (52, 15), (54, 21)):  # osaka, bpo1, bpo2
        parent, child = pair(number, blob_gas_used=fork_max * GAS_PER_BLOB)
        validate_header(child, parent, HIVE)
        parent, child = pair(number, blob_gas_used=(fork_max + 1) * GAS_PER_BLOB)
        assert_refused(child, parent, HIVE, "blobGasUsed-max", (fork_max + 1) * GAS_PER_BLOB,
                       fork_max * GAS_PER_BLOB)


def test_dao_fork_blocks_must_say_so() -> None:
    genesis = copy.deepcopy(load_json(GENESIS_PATH))
    genesis["config"].update(daoForkBlock=2, daoForkSupport=True)
    config = chain_config_from_genesis(genesis)
    parent, child = pair(5)
    assert_refused(child, parent, config, "extraData-dao", b"", b"dao-hard-fork")
    parent, child = pair(5, extra_data=b"dao-hard-fork")
    assert "extraData-dao" in validate_header(child, parent, config).checked
    parent, child = pair(12)  # after the 10 blocks from 2
    assert "extraData-dao" not in validate_header(child, parent, config).checked
    genesis["config"]["daoForkSupport"] = False  # geth: opposing the fork, no rule
    assert chain_config_from_genesis(genesis).dao_fork_block is None


def test_clique_extra_data_is_not_checked_before_the_merge() -> None:
    genesis = copy.deepcopy(load_json(GENESIS_PATH))
    genesis["config"]["clique"] = {"period": 5, "epoch": 30000}
    config = chain_config_from_genesis(genesis)
    parent, child = pair(20, extra_data=bytes(97))  # 32 vanity + 65 seal
    report = validate_header(child, parent, config)
    assert "extraData" in dict(report.not_checked) and "clique-seal" in dict(report.not_checked)
    parent, child = pair(40, extra_data=bytes(97))  # after the Merge the 32-byte rule holds
    assert_refused(child, parent, config, "extraData", 97, 32)
    # without a config, a pre-Merge difficulty below ethash's minimum is not taken for ethash
    parent, child = pair(20, {"difficulty": 2}, difficulty=1, extra_data=bytes(97))
    assert "extraData" in dict(validate_header(child, parent).not_checked)


# --- the blob formulas: EIP-4844, EIP-7691, EIP-7892 (BPO), EIP-7918 (Osaka) --------------

def test_osaka_reserve_price_keeps_the_excess_growing() -> None:
    # Parent 49 (Osaka: target 6, max 9) used 8 blobs with excess 0 and base fee 53346790:
    # a blob costs 2**17 * 1 wei < 2**13 * 53346790, so EIP-7918 adds 8 blobs * 3/9.
    parent_changes = {"blob_gas_used": 8 * GAS_PER_BLOB}
    parent, child = pair(50, parent_changes, excess_blob_gas=8 * GAS_PER_BLOB * 3 // 9)
    assert child.excess_blob_gas == 349525
    validate_header(child, parent, HIVE)
    parent, child = pair(50, parent_changes, excess_blob_gas=2 * GAS_PER_BLOB)  # EIP-4844's
    assert_refused(child, parent, HIVE, "excessBlobGas", 262144, 349525)


def test_prague_has_no_reserve_price() -> None:
    parent_changes = {"blob_gas_used": 8 * GAS_PER_BLOB}  # Prague: target 6
    parent, child = pair(47, parent_changes, excess_blob_gas=2 * GAS_PER_BLOB)
    validate_header(child, parent, HIVE)
    parent, child = pair(47, parent_changes, excess_blob_gas=349525)
    assert_refused(child, parent, HIVE, "excessBlobGas", 349525, 262144)


def test_bpo_fork_block_uses_its_own_target() -> None:
    # Block 51 is BPO1's first (target 10): the parent's 7 blobs are below it; with
    # Osaka's target 6 the reserve price would have added 7 blobs * 3/9.
    parent_changes = {"blob_gas_used": 7 * GAS_PER_BLOB}
    parent, child = pair(51, parent_changes)
    validate_header(child, parent, HIVE)
    parent, child = pair(51, parent_changes, excess_blob_gas=305834)
    assert_refused(child, parent, HIVE, "excessBlobGas", 305834, 0)


def test_bpo_fork_block_prices_the_parent_with_its_own_fraction() -> None:
    # Parent 50: excess 1e8, 12 blobs, base fee 46694599 (reserve 2**13 * that = 3.8e11).
    # With BPO1's fraction 8346193 a blob costs 2**17 * e**11.98 = 2.1e10 < 3.8e11: reserve
    # price, + 12 blobs * 5/15. With Osaka's 5007716 it would cost 2**17 * e**19.97 = 6e13:
    # EIP-4844's + 12 - 10 blobs (EIP-7918: "the new baseFeeUpdateFraction").
    parent_changes = {"excess_blob_gas": 100_000_000, "blob_gas_used": 12 * GAS_PER_BLOB}
    parent, child = pair(51, parent_changes, excess_blob_gas=100_000_000 + 524288)
    validate_header(child, parent, HIVE)
    parent, child = pair(51, parent_changes, excess_blob_gas=100_000_000 + 2 * GAS_PER_BLOB)
    assert_refused(child, parent, HIVE, "excessBlobGas", 100_262_144, 100_524_288)


def test_cancun_excess_after_a_full_parent() -> None:
    parent_changes = {"excess_blob_gas": 10 * GAS_PER_BLOB, "blob_gas_used": 6 * GAS_PER_BLOB}
    parent, child = pair(44, parent_changes, excess_blob_gas=13 * GAS_PER_BLOB)  # + 6 - 3
    validate_header(child, parent, HIVE)


def test_base_fee_rises_when_the_parent_is_above_its_target() -> None:
    # parent 49: limit 200M (target 100M), base fee 53346790, now 150M used:
    # + 53346790 * 50M / 100M / 8 = + 3334174
    parent, child = pair(50, {"gas_used": 150_000_000}, base_fee_per_gas=56_680_964)
    validate_header(child, parent, HIVE)
    parent, child = pair(50, {"gas_used": 100_000_001}, base_fee_per_gas=53346791)  # + >= 1
    validate_header(child, parent, HIVE)


@given(limit=st.integers(2, 2**63 - 1), used_fraction=st.fractions(0, 1),
       base_fee=st.integers(0, 2**128))
def test_base_fee_formula_matches_py_evm(limit: int, used_fraction: Any, base_fee: int) -> None:
    used = int(limit * used_fraction)
    parent = SimpleNamespace(gas_limit=limit, gas_used=used, base_fee_per_gas=base_fee)
    assert calculate_base_fee_per_gas(limit, used, base_fee) == (
        calculate_expected_base_fee_per_gas(parent))


@given(factor=st.integers(1, 10**6), numerator=st.integers(0, 4 * 10**8),
       denominator=st.integers(3 * 10**6, 2 * 10**7))  # excess blob gas, update fractions
def test_fake_exponential_matches_py_evm(factor: int, numerator: int, denominator: int) -> None:
    assert fake_exponential(factor, numerator, denominator) == pyevm_fake_exponential(
        factor, numerator, denominator)


# --- the schedule's limits: known_until, forks not listed, forks not implemented ----------

def test_after_known_until_the_blob_rules_are_not_checked_rather_than_guessed() -> None:
    config = dataclasses.replace(HIVE, name="dated", known_until=495)
    assert validate_header(header(49), header(48), config).not_checked == ()
    parent, child = pair(50, excess_blob_gas=12345)  # wrong, but unknowable here
    report = validate_header(child, parent, config)
    why = dict(report.not_checked)
    assert set(why) == {"fork-shape", "blobGasUsed-max", "excessBlobGas"}
    assert "known only up to 1970-01-01 (495)" in why["excessBlobGas"]
    parent, child = pair(50, blob_gas_used=GAS_PER_BLOB + 1)  # fork-independent: still refused
    assert_refused(child, parent, config, "blobGasUsed-granularity", GAS_PER_BLOB + 1,
                   GAS_PER_BLOB)


def test_a_header_showing_a_fork_the_config_does_not_list_is_not_checked_with_old_rules() -> None:
    amsterdam = {"block_access_list_hash": keccak256(b"bal"), "slot_number": 4500,
                 "excess_blob_gas": 777}
    parent, child = pair(54, **amsterdam)
    report = validate_header(child, parent, HIVE)
    why = dict(report.not_checked)
    assert set(why) == {"fork-shape", "blobGasUsed-max", "excessBlobGas"}
    assert "amsterdam" in why["excessBlobGas"] and "bpo2" in why["excessBlobGas"]
    assert "baseFeePerGas" in report.checked
    # a config that lists Amsterdam later refuses the early fields
    later = dataclasses.replace(HIVE, time_forks=(*HIVE.time_forks, TimeFork("amsterdam", 600)))
    assert_refused(child, parent, later, "fork-shape", "amsterdam", "prague")
    # from Amsterdam's time on its rules are not implemented: not checked, with the reason
    now = dataclasses.replace(HIVE, time_forks=(*HIVE.time_forks, TimeFork("amsterdam", 540)))
    why = dict(validate_header(child, parent, now).not_checked)
    assert "not implemented" in why["excessBlobGas"] and "amsterdam" in why["excessBlobGas"]


def test_genesis_with_unknown_timestamp_forks_stops_the_rules_there() -> None:
    genesis = copy.deepcopy(load_json(GENESIS_PATH))
    genesis["config"].update(amsterdamTime=530, bogotaTime=560)
    config = chain_config_from_genesis(genesis)
    assert [f.name for f in config.time_forks][-3:] == ["amsterdam", "bpo2", "bogota"]
    assert config.blob_schedule_at(520) is not None and config.blob_schedule_at(530) is None
    assert "excessBlobGas" in validate_header(header(52), header(51), config).checked
    assert "excessBlobGas" in dict(validate_header(header(53), header(52), config).not_checked)


# --- (d) the built-in networks ------------------------------------------------------------

@pytest.mark.parametrize(("name", "config"), [("mainnet", MAINNET), ("sepolia", SEPOLIA),
                                              ("hoodi", HOODI)])
def test_built_in_networks_load_by_name(name: str, config: ChainConfig) -> None:
    assert load_chain_config(name) is config and config.name == name
    assert config.known_until == KNOWN_UNTIL == 1787184000  # 2026-08-20, the geth snapshot
    assert config.last_fork == "bpo2"


def test_mainnet_schedule() -> None:
    assert MAINNET.chain_id == 1
    assert dict(MAINNET.block_forks) == {
        "homestead": 1_150_000, "dao_fork": 1_920_000, "tangerine_whistle": 2_463_000,
        "spurious_dragon": 2_675_000, "byzantium": 4_370_000, "constantinople": 7_280_000,
        "petersburg": 7_280_000, "istanbul": 9_069_000, "muir_glacier": 9_200_000,
        "berlin": 12_244_000, "london": 12_965_000, "arrow_glacier": 13_773_000,
        "gray_glacier": 15_050_000}
    assert MAINNET.terminal_total_difficulty == 58_750_000_000_000_000_000_000
    assert MAINNET.merge_block == 15_537_394
    assert {f.name: f.time for f in MAINNET.time_forks} == {
        "shanghai": 1681338455, "cancun": 1710338135, "prague": 1746612311,
        "osaka": 1764798551, "bpo1": 1765290071, "bpo2": 1767747671}
    assert MAINNET.fork_at(15_537_393, 1663224162) == "gray_glacier"
    assert MAINNET.fork_at(15_537_394, 1663224179) == "paris"
    assert MAINNET.blob_schedule_at(1710338135) == BlobSchedule(3, 6, 3338477)
    assert MAINNET.blob_schedule_at(1746612311) == BlobSchedule(6, 9, 5007716)
    assert MAINNET.blob_schedule_at(1764798551) == BlobSchedule(6, 9, 5007716)
    assert MAINNET.era_at(1764798551).reserve_price
    assert not MAINNET.era_at(1764798550).reserve_price
    assert MAINNET.blob_schedule_at(1765290071) == BlobSchedule(10, 15, 8346193)
    assert MAINNET.blob_schedule_at(1767747671) == BlobSchedule(14, 21, 11684671)
    assert MAINNET.blob_schedule_at(KNOWN_UNTIL + 1) is None  # not known that far


def test_sepolia_schedule() -> None:
    assert SEPOLIA.chain_id == 11155111 and SEPOLIA.london_block == 0
    assert SEPOLIA.terminal_total_difficulty == 17_000_000_000_000_000
    assert SEPOLIA.merge_block == 1_450_409
    assert {f.name: f.time for f in SEPOLIA.time_forks} == {
        "shanghai": 1677557088, "cancun": 1706655072, "prague": 1741159776,
        "osaka": 1760427360, "bpo1": 1761017184, "bpo2": 1761607008}
    assert SEPOLIA.blob_schedule_at(1761607008) == BlobSchedule(14, 21, 11684671)


def test_hoodi_schedule() -> None:
    assert HOODI.chain_id == 560048 and HOODI.merged_from == 0
    assert {f.name: f.time for f in HOODI.time_forks} == {
        "shanghai": 0, "cancun": 0, "prague": 1742999832, "osaka": 1761677592,
        "bpo1": 1762365720, "bpo2": 1762955544}
    assert HOODI.fork_at(1, 1742213412) == "cancun"
    assert HOODI.blob_schedule_at(1742213412) == BlobSchedule(3, 6, 3338477)
    assert HOODI.blob_schedule_at(1762365720) == BlobSchedule(10, 15, 8346193)


EL_CL_FORKS = (("shanghai", "capella"), ("cancun", "deneb"), ("prague", "electra"),
               ("osaka", "fulu"))


@pytest.mark.parametrize("config", [MAINNET, SEPOLIA, HOODI], ids=lambda c: c.name)
def test_built_in_schedule_agrees_with_the_beacon_network_config(config: ChainConfig) -> None:
    """Each execution fork activates at the first slot of its consensus fork's epoch:
    genesis_time + epoch * 32 * 12 (EIP-6953); the BPO forks at the BLOB_SCHEDULE epochs,
    with the same maximum. node/chain/beacon/config.py came from consensus-layer sources."""
    beacon = BEACON_NETWORKS[config.name]
    epoch_seconds = beacon.preset.slots_per_epoch * beacon.seconds_per_slot
    epochs = {fork.name: fork.epoch for fork in beacon.forks}
    for el, cl in EL_CL_FORKS:
        if epochs[cl] > 0:  # forks at genesis have EL time 0
            assert config.time_of(el) == beacon.genesis_time + epochs[cl] * epoch_seconds, el
    bpos = [f for f in config.time_forks if f.name.startswith("bpo")]
    assert [(f.time, f.blobs.max) for f in bpos if f.blobs] == [
        (beacon.genesis_time + entry.epoch * epoch_seconds, entry.max_blobs_per_block)
        for entry in beacon.blob_schedule]
    # a consensus fork this config does not list (Gloas/Amsterdam) is after known_until
    if beacon.forks[-1].scheduled and beacon.forks[-1].name == "gloas":
        assert beacon.genesis_time + beacon.forks[-1].epoch * epoch_seconds > KNOWN_UNTIL


# --- config files: read strictly, refused with one line naming the key --------------------

def _genesis(**changes: Any) -> dict[str, Any]:
    genesis = copy.deepcopy(load_json(GENESIS_PATH))
    for key, value in changes.items():
        if value is None:
            del genesis["config"][key]
        else:
            genesis["config"][key] = value
    return genesis


def _blob_schedule(**changes: Any) -> dict[str, Any]:
    schedule = copy.deepcopy(load_json(GENESIS_PATH)["config"]["blobSchedule"])
    schedule.update(changes)
    return {k: v for k, v in schedule.items() if v is not None}


BAD_GENESIS = [
    ("hex-string", _genesis(londonBlock="0x1b"), "londonBlock"),
    ("negative", _genesis(cancunTime=-1), "cancunTime"),
    ("float", _genesis(terminalTotalDifficulty=1.5), "terminalTotalDifficulty"),
    ("bool", _genesis(pragueTime=True), "pragueTime"),
    ("no-chain-id", _genesis(chainId=None), "chainId"),
    ("block-order", _genesis(berlinBlock=30), "berlinBlock"),
    ("time-order", _genesis(pragueTime=400), "pragueTime"),
    ("bpo-gap", _genesis(bpo1Time=None), "bpo2Time"),
    ("unknown-block-fork", _genesis(fooBlock=5), "fooBlock"),
    ("missing-blob-entry", _genesis(blobSchedule=_blob_schedule(prague=None)),
     "blobSchedule.prague"),
    ("missing-blob-field", _genesis(blobSchedule=_blob_schedule(
        cancun={"target": 3, "baseFeeUpdateFraction": 3338477})), "blobSchedule.cancun.max"),
    ("target-above-max", _genesis(blobSchedule=_blob_schedule(
        bpo1={"target": 16, "max": 15, "baseFeeUpdateFraction": 8346193})),
     "blobSchedule.bpo1"),
    ("zero-fraction", _genesis(blobSchedule=_blob_schedule(
        osaka={"target": 6, "max": 9, "baseFeeUpdateFraction": 0})), "blobSchedule.osaka"),
    ("blob-schedule-list", _genesis(blobSchedule=[1]), "blobSchedule"),
    ("spurious-dragon-split", _genesis(eip158Block=7), "eip158Block"),
    ("time-without-london", _genesis(londonBlock=None, arrowGlacierBlock=None,
                                     grayGlacierBlock=None), "Time is set but London"),
    ("config-not-object", {"config": [1, 2]}, "config must be an object"),
]


def _forkenv(**changes: Any) -> dict[str, Any]:
    env = dict(load_json(FORKENV_PATH))
    for key, value in changes.items():
        if value is None:
            del env[key]
        else:
            env[key] = value
    return env


BAD_FORKENV = [
    ("not-decimal", _forkenv(HIVE_FORK_LONDON="27a"), "HIVE_FORK_LONDON"),
    ("hex", _forkenv(HIVE_SHANGHAI_TIMESTAMP="0x186"), "HIVE_SHANGHAI_TIMESTAMP"),
    ("float", _forkenv(HIVE_MERGE_BLOCK_ID=36.0), "HIVE_MERGE_BLOCK_ID"),
    ("no-chain-id", _forkenv(HIVE_CHAIN_ID=None), "HIVE_CHAIN_ID"),
    ("blob-part-missing", _forkenv(HIVE_OSAKA_BLOB_MAX=None), "HIVE_OSAKA_BLOB_MAX"),
    ("blob-entry-missing", _forkenv(HIVE_BPO1_BLOB_MAX=None, HIVE_BPO1_BLOB_TARGET=None,
                                    HIVE_BPO1_BLOB_BASE_FEE_UPDATE_FRACTION=None),
     "HIVE_BPO1_BLOB_*"),
    ("unknown-fork", _forkenv(HIVE_FORK_FOO="5"), "HIVE_FORK_FOO"),
    ("time-order", _forkenv(HIVE_OSAKA_TIMESTAMP="440"), "HIVE_OSAKA_TIMESTAMP"),
    ("bad-blob-values", _forkenv(HIVE_CANCUN_BLOB_TARGET="7"), "HIVE_CANCUN_BLOB_*"),
]


@pytest.mark.parametrize(("content", "key"), [c[1:] for c in BAD_GENESIS + BAD_FORKENV],
                         ids=[c[0] for c in BAD_GENESIS] + [f"forkenv-{c[0]}"
                                                            for c in BAD_FORKENV])
def test_bad_config_file_is_refused_naming_the_key(tmp_path: Path, content: Any,
                                                   key: str) -> None:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(content))
    with pytest.raises(MalformedInputError) as info:
        load_chain_config(path)
    message = str(info.value)
    assert "\n" not in message and key in message and str(path) in message, message


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "neither a geth genesis"),
    ('{"alloc": {}}', "neither a geth genesis"),
])
def test_unreadable_config_file_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "chain.json"
    path.write_text(text)
    with pytest.raises(MalformedInputError, match=expected):
        load_chain_config(str(path))


def test_missing_config_file_or_unknown_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedInputError, match=r"cannot read .*mainnet, sepolia, hoodi"):
        load_chain_config("holesky")
    with pytest.raises(MalformedInputError, match="cannot read"):
        load_chain_config(tmp_path / "absent.json")


def test_config_section_alone_and_other_spellings_are_read() -> None:
    genesis = load_json(GENESIS_PATH)
    assert chain_config_from_genesis(genesis["config"]) == HIVE
    besu = copy.deepcopy(genesis["config"])
    besu["mergeNetSplitBlock"] = besu.pop("mergeNetsplitBlock")
    assert chain_config_from_genesis(besu) == HIVE


def test_genesis_without_a_blob_entry_for_osaka_inherits_prague() -> None:
    genesis = _genesis(blobSchedule=_blob_schedule(osaka=None))
    config = chain_config_from_genesis(genesis)
    assert config.blob_schedule_at(480) == BlobSchedule(6, 9, 5007716)
    assert config.era_at(480).reserve_price
    for number in range(48, 51):
        validate_header(header(number), header(number - 1), config)


# --- (e) wrong types ----------------------------------------------------------------------

def test_validate_header_wants_headers_and_a_config() -> None:
    with pytest.raises(TypeError, match="two Headers"):
        validate_header({"number": 50}, header(49))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="two Headers"):
        validate_header(header(50), header(49).rlp)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ChainConfig or None"):
        validate_header(header(50), header(49), "mainnet")  # type: ignore[arg-type]


def test_loaders_want_objects_and_names() -> None:
    with pytest.raises(TypeError, match="network name or a path"):
        load_chain_config(1)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError, match="expected a JSON object"):
        chain_config_from_genesis([1])  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError, match="expected a JSON object"):
        chain_config_from_forkenv("HIVE_CHAIN_ID=1")  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError, match="chainId"):
        chain_config_from_genesis({"chainId": "1"})
    with pytest.raises(MalformedInputError, match="HIVE_CHAIN_ID"):
        chain_config_from_forkenv({"HIVE_CHAIN_ID": 1.5})


def test_config_types_are_checked_on_construction() -> None:
    with pytest.raises(TypeError):
        BlobSchedule(3.0, 6, 3338477)  # type: ignore[arg-type]
    with pytest.raises(MalformedInputError):
        BlobSchedule(7, 6, 3338477)
    with pytest.raises(TypeError):
        dataclasses.replace(HIVE, chain_id="1")
    with pytest.raises(TypeError):
        dataclasses.replace(HIVE, block_forks=[("london", 0)])
    with pytest.raises(TypeError):
        dataclasses.replace(HIVE, block_forks=(("shanghai", 0),))
    with pytest.raises(TypeError):
        dataclasses.replace(HIVE, time_forks=(("cancun", 0),))
    with pytest.raises(MalformedInputError, match="activation order"):
        dataclasses.replace(HIVE, time_forks=tuple(reversed(HIVE.time_forks)))
    with pytest.raises(MalformedInputError, match="out of order"):
        dataclasses.replace(HIVE, block_forks=tuple(reversed(HIVE.block_forks)))
    with pytest.raises(TypeError):
        dataclasses.replace(HIVE, known_until=-1)

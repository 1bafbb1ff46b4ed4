"""Header hashing of every fork shape: ethereum/tests ValidBlocks, the hive chain, and
every way a header's JSON can be wrong."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from node.chain import rlp
from node.chain.errors import MalformedInputError, VerificationError
from node.chain.hashing import keccak256
from node.chain.header import (
    EMPTY_OMMERS_HASH,
    Header,
    header_from_rlp,
    header_from_rpc,
    header_to_rpc,
    verify_header,
)

from vectors import (
    blockchain_test_header_to_rpc,
    hex_bytes,
    hive_chain,
    hive_genesis,
    hive_latest,
    io_case,
    io_cases,
    valid_block_tests,
)

VALID_BLOCKS = valid_block_tests()


# --- ethereum/tests BlockchainTests/ValidBlocks ---------------------------------------

def test_valid_blocks_are_all_there() -> None:
    assert len(VALID_BLOCKS) >= 400


@pytest.mark.parametrize("name", sorted(VALID_BLOCKS))
def test_valid_blocks_header_hashes_from_json_and_from_rlp(name: str) -> None:
    test = VALID_BLOCKS[name]
    genesis = verify_header(blockchain_test_header_to_rpc(test["genesisBlockHeader"]))
    genesis_rlp = rlp.decode(hex_bytes(test["genesisRLP"]))
    assert header_from_rlp(rlp.encode(genesis_rlp[0])) == genesis
    assert genesis.hash == hex_bytes(test["genesisBlockHeader"]["hash"])
    for block in test["blocks"]:
        from_json = verify_header(blockchain_test_header_to_rpc(block["blockHeader"]))
        header_rlp = rlp.encode(rlp.decode(hex_bytes(block["rlp"]))[0])
        from_rlp = header_from_rlp(header_rlp)
        assert from_rlp == from_json
        assert from_rlp.hash == keccak256(header_rlp) == hex_bytes(block["blockHeader"]["hash"])
        assert from_rlp.rlp == header_rlp
        assert from_rlp.fork == "cancun"


# --- the hive chain -------------------------------------------------------------------

@pytest.mark.parametrize("number", range(1, 55))
def test_hive_header_reencodes_identically_and_round_trips_through_json(number: int) -> None:
    header = hive_chain()[number - 1].header
    assert header_from_rlp(header.rlp) == header
    assert verify_header(header_to_rpc(header)) == header


def test_hive_genesis_header_hashes() -> None:
    genesis = verify_header(hive_genesis())
    assert genesis.number == 0 and genesis.fork == "frontier"
    assert genesis.hash == hex_bytes(hive_genesis()["hash"])


@pytest.mark.parametrize("case", [c for c in io_cases("debug_getRawHeader") if "result" in
                                  c.response], ids=lambda c: c.name)
def test_debug_get_raw_header_decodes_to_the_chain_header(case: Any) -> None:
    header = header_from_rlp(hex_bytes(case.result))
    number = int(case.params[0], 16)
    if number == 0:
        assert header == header_from_rpc(hive_genesis())
    else:
        assert header == hive_chain()[number - 1].header


@pytest.mark.parametrize("case, fork", [
    ("get-block-london-fork", "london"),
    ("get-block-merge-fork", "london"),  # the Merge changed no header field
    ("get-block-shanghai-fork", "shanghai"),
    ("get-block-cancun-fork", "cancun"),
    ("get-block-prague-fork", "prague"),
    ("get-latest", "prague"),  # Osaka changed no header field either
])
def test_fork_blocks_have_their_forks_header_shape(case: str, fork: str) -> None:
    assert verify_header(io_case("eth_getBlockByNumber", case).result).fork == fork


def test_every_fork_boundary_of_the_hive_chain_has_the_expected_shape() -> None:
    forks = [block.header.fork for block in hive_chain()]
    assert forks.index("london") == 27 - 1  # HIVE_FORK_LONDON
    assert forks.index("shanghai") == 39 - 1
    assert forks.index("cancun") == 42 - 1
    assert forks.index("prague") == 45 - 1
    assert forks[-1] == "prague"


def test_empty_ommers_hash_is_keccak_of_empty_list() -> None:
    assert EMPTY_OMMERS_HASH.hex() == (
        "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347")


# --- every field is committed to ------------------------------------------------------

BASE = hive_latest()  # block 54, Prague: every field up to requestsHash
HEADER_FIELDS = [k for k in header_to_rpc(verify_header(BASE)) if k != "hash"]


QUANTITIES = {"difficulty", "number", "gasLimit", "gasUsed", "timestamp", "baseFeePerGas",
              "blobGasUsed", "excessBlobGas"}


def tampered(field: str, value: str) -> str:
    """The same-shaped value, changed: a quantity plus one, data with its last byte flipped
    (empty data becomes one byte)."""
    if field in QUANTITIES:
        return hex(int(value, 16) + 1)
    if value == "0x":
        return "0x01"
    raw = bytearray(hex_bytes(value))
    raw[-1] ^= 1
    return "0x" + raw.hex()


def test_every_header_field_of_a_prague_block_is_tested() -> None:
    assert len(HEADER_FIELDS) == 21
    assert "requestsHash" in HEADER_FIELDS


@pytest.mark.parametrize("field", HEADER_FIELDS)
def test_header_rejects_each_changed_field(field: str) -> None:
    block = copy.deepcopy(BASE)
    block[field] = tampered(field, block[field])
    with pytest.raises(VerificationError) as exc:
        verify_header(block)
    assert exc.value.field == "hash"
    assert exc.value.claimed == hex_bytes(BASE["hash"])
    assert exc.value.computed != exc.value.claimed


def test_header_rejects_changed_hash() -> None:
    block = copy.deepcopy(BASE)
    block["hash"] = tampered("hash", block["hash"])
    with pytest.raises(VerificationError) as exc:
        verify_header(block)
    assert exc.value.computed == hex_bytes(BASE["hash"])


def test_header_rejects_dropped_last_fork_field_as_a_mismatch() -> None:
    block = copy.deepcopy(BASE)
    del block["requestsHash"]  # a well-formed Cancun shape, but not this block's
    with pytest.raises(VerificationError):
        verify_header(block)


OPTIONAL = ["baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas",
            "parentBeaconBlockRoot"]


@pytest.mark.parametrize("how", ["deleted", "null"])
@pytest.mark.parametrize("missing", OPTIONAL)
def test_header_rejects_fork_shape_gap(missing: str, how: str) -> None:
    block = copy.deepcopy(BASE)
    if how == "deleted":
        del block[missing]
    else:
        block[missing] = None
    with pytest.raises(MalformedInputError, match=missing):
        header_from_rpc(block)


def test_header_rejects_future_field_without_its_predecessor() -> None:
    block = copy.deepcopy(BASE)
    block["slotNumber"] = "0x1"  # Amsterdam, without blockAccessListHash
    with pytest.raises(MalformedInputError, match="blockAccessListHash"):
        header_from_rpc(block)


def test_header_of_a_future_fork_shape_hashes_its_extra_fields() -> None:
    header = dataclasses.replace(verify_header(BASE), block_access_list_hash=b"\x01" * 32,
                                 slot_number=7)
    assert header.fork == "amsterdam"
    assert header_from_rlp(header.rlp) == header
    assert verify_header(header_to_rpc(header)) == header


MALFORMED = [
    ("stateRoot", "0x" + "11" * 20),  # 20 bytes
    ("parentHash", "0x" + "11" * 33),
    ("logsBloom", "0x" + "00" * 255),
    ("logsBloom", "0x" + "00" * 257),
    ("miner", "0x" + "11" * 19),
    ("nonce", "0x" + "00" * 7),
    ("mixHash", "0x"),
    ("number", "0x1" + "0" * 16),  # 2**64
    ("gasLimit", "0x1" + "0" * 16),
    ("gasUsed", "0x1" + "0" * 16),
    ("timestamp", "0x1" + "0" * 16),
    ("blobGasUsed", "0x1" + "0" * 16),
    ("difficulty", "0x1" + "0" * 64),  # 2**256
    ("baseFeePerGas", "0x1" + "0" * 64),
    ("number", "0x"),
    ("number", "36"),
    ("number", "0xg"),
    ("number", "0x-1"),
    ("number", "0x 1"),
    ("stateRoot", "0x" + "zz" * 32),
    ("stateRoot", "0x" + "1" * 63),  # odd length
    ("stateRoot", "11" * 32),  # no 0x
    ("extraData", "0x0"),
    ("number", 54),
    ("number", None),
    ("gasLimit", 1.5),
    ("stateRoot", ["0x" + "11" * 32]),
    ("stateRoot", {"value": "0x" + "11" * 32}),
    ("miner", True),
    ("hash", "0x" + "11" * 31),
    ("hash", None),
]


@pytest.mark.parametrize("field, value", MALFORMED, ids=lambda v: str(v)[:24])
def test_header_rejects_malformed_field(field: str, value: Any) -> None:
    block = copy.deepcopy(BASE)
    block[field] = value
    with pytest.raises(MalformedInputError, match=field):
        verify_header(block)


@pytest.mark.parametrize("field", ["parentHash", "stateRoot", "number", "extraData", "nonce",
                                   "hash"])
def test_header_rejects_missing_field(field: str) -> None:
    block = copy.deepcopy(BASE)
    del block[field]
    with pytest.raises(MalformedInputError, match=field):
        verify_header(block)


@pytest.mark.parametrize("block", [None, [], "0x00", 54])
def test_header_rejects_json_that_is_not_an_object(block: Any) -> None:
    with pytest.raises(MalformedInputError):
        verify_header(block)


def test_header_accepts_quantities_with_leading_zeros_and_upper_case_hex() -> None:
    block = copy.deepcopy(BASE)
    block["number"] = "0x0036"
    block["stateRoot"] = block["stateRoot"].upper().replace("0X", "0x")
    assert verify_header(block).number == 54


# --- RLP headers ----------------------------------------------------------------------

LATEST = hive_chain()[-1].header


def _fields(header: Header) -> list[Any]:
    return rlp.decode(header.rlp)


@pytest.mark.parametrize("count", [0, 14, 24])
def test_header_from_rlp_rejects_wrong_field_count(count: int) -> None:
    items = (_fields(LATEST) + [b"\x01"] * 10)[:count]
    with pytest.raises(MalformedInputError):
        header_from_rlp(rlp.encode(items))


@pytest.mark.parametrize("index, value", [
    (0, b"\x11" * 31),  # parentHash of 31 bytes
    (6, b"\x00" * 255),  # logsBloom
    (8, b"\x00\x36"),  # number with a leading zero
    (8, b"\x01" + b"\x00" * 8),  # number of 2**64
    (8, [b"\x36"]),  # number as a list
    (14, b"\x00" * 9),  # nonce of 9 bytes
    (16, b"\x11" * 20),  # withdrawalsRoot of 20 bytes
])
def test_header_from_rlp_rejects_malformed_field(index: int, value: Any) -> None:
    items = _fields(LATEST)
    items[index] = value
    with pytest.raises(MalformedInputError):
        header_from_rlp(rlp.encode(items))


@pytest.mark.parametrize("encoded", [b"", b"\x80", rlp.encode(b"\x01" * 40), LATEST.rlp[:-1],
                                     LATEST.rlp + b"\x00"])
def test_header_from_rlp_rejects_bad_rlp(encoded: bytes) -> None:
    with pytest.raises(MalformedInputError):
        header_from_rlp(encoded)

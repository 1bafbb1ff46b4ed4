"""Where the shared test vectors live, and small readers for them.

The vectors (``ethereum/tests`` and ``ethereum/execution-apis``) are used in place from
``../shared/vectors`` next to the repository (override with ``ORBITAL_VECTORS``); they are
never copied into the project. A missing directory or file raises
:class:`VectorsMissingError`, so the tests that need it fail (at collection, for the
parametrized ones) with a message saying where they looked -- they never skip.

Everything here is read once and cached: callers must not mutate what they get (take a
``copy.deepcopy`` before tampering).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.chain import rlp
from node.chain.header import Header, header_from_rlp

if TYPE_CHECKING:
    from node.chain.forks import ChainConfig


class VectorsMissingError(RuntimeError):
    """The shared test vectors are not where the tests look for them."""


def vectors_dir() -> Path:
    """The root of the shared vectors: ``$ORBITAL_VECTORS`` or ``<repo>/../shared/vectors``."""
    override = os.environ.get("ORBITAL_VECTORS")
    root = (Path(override) if override
            else Path(__file__).resolve().parents[1].parent / "shared" / "vectors")
    if not root.is_dir():
        raise VectorsMissingError(
            f"test vectors not found at {root}: check out the shared vectors there or set "
            f"ORBITAL_VECTORS to their directory")
    return root


def vector_path(*parts: str) -> Path:
    """A file or directory under the vectors root; raise if it is not there."""
    path = vectors_dir().joinpath(*parts)
    if not path.exists():
        raise VectorsMissingError(f"test vector {path} is missing (vectors root: {vectors_dir()})")
    return path


def ethereum_tests(*parts: str) -> Path:
    """A path under ``ethereum-tests/`` (ethereum/tests)."""
    return vector_path("ethereum-tests", *parts)


def execution_apis(*parts: str) -> Path:
    """A path under ``execution-apis/tests/`` (ethereum/execution-apis)."""
    return vector_path("execution-apis", "tests", *parts)


@cache
def load_json(path: Path) -> Any:
    """A JSON vector file, parsed once."""
    return json.loads(path.read_text())


def json_files(directory: Path) -> list[Path]:
    """Every ``*.json`` below ``directory``, sorted; raise when there is none."""
    files = sorted(directory.rglob("*.json"))
    if not files:
        raise VectorsMissingError(f"no JSON vectors under {directory}")
    return files


def hex_bytes(text: str) -> bytes:
    """``0x``-prefixed hex (as the vector files write it) to bytes."""
    return bytes.fromhex(text.removeprefix("0x"))


# --- execution-apis .io files --------------------------------------------------------

@dataclass(frozen=True)
class IoCase:
    """One execution-apis ``.io`` file: a JSON-RPC request and the response a client gave."""

    path: Path
    comment: str
    request: dict[str, Any]
    response: dict[str, Any]

    @property
    def name(self) -> str:
        """``method/case`` (without ``.io``), for test ids."""
        return f"{self.path.parent.name}/{self.path.stem}"

    @property
    def params(self) -> list[Any]:
        return self.request["params"]

    @property
    def result(self) -> Any:
        return self.response["result"]


def read_io(path: Path) -> IoCase:
    """Parse a ``.io`` file: ``//`` comment lines, one ``>>`` request, one ``<<`` response."""
    comments, requests, responses = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("//"):
            comments.append(line[2:].strip())
        elif line.startswith(">>"):
            requests.append(json.loads(line[2:]))
        elif line.startswith("<<"):
            responses.append(json.loads(line[2:]))
        elif line.strip():
            raise ValueError(f"{path}: unexpected line {line[:40]!r}")
    if len(requests) != 1 or len(responses) != 1:
        raise ValueError(f"{path}: expected one request and one response, got "
                         f"{len(requests)} and {len(responses)}")
    return IoCase(path, " ".join(comments), requests[0], responses[0])


@cache
def io_case(method: str, case: str) -> IoCase:
    """``execution-apis/tests/<method>/<case>.io``."""
    return read_io(execution_apis(method, f"{case}.io"))


@cache
def io_cases(method: str) -> tuple[IoCase, ...]:
    """Every ``.io`` case of ``method``, sorted by name; raise when there is none."""
    files = sorted(execution_apis(method).glob("*.io"))
    if not files:
        raise VectorsMissingError(f"no .io cases for {method}")
    return tuple(read_io(f) for f in files)


# --- the hive chain (execution-apis/tests/chain.rlp) ---------------------------------

@dataclass(frozen=True)
class ChainBlock:
    """One block of ``chain.rlp``: ``[header, transactions, ommers(, withdrawals)]``."""

    header: Header
    transactions: list[rlp.Item]
    ommers: list[rlp.Item]
    withdrawals: list[rlp.Item] | None


@cache
def hive_chain() -> tuple[ChainBlock, ...]:
    """The 54 blocks of the execution-apis test chain, decoded with our own RLP code."""
    blocks = []
    for item in rlp.decode_stream(execution_apis("chain.rlp").read_bytes()):
        assert isinstance(item, list), "chain.rlp holds a block that is not an RLP list"
        header = header_from_rlp(rlp.encode(item[0]))
        blocks.append(ChainBlock(header, item[1], item[2], item[3] if len(item) > 3 else None))
    return tuple(blocks)


def hive_block(number: int) -> ChainBlock:
    """Block ``number`` (1..54) of the hive chain."""
    block = hive_chain()[number - 1]
    assert block.header.number == number
    return block


def hive_header(number: int) -> Header:
    """Header ``number`` (0..54) of the hive chain; 0 is the genesis, from its JSON."""
    if number == 0:
        from node.chain.header import verify_header
        return verify_header(hive_genesis(), "genesis")
    return hive_block(number).header


@cache
def hive_chain_config() -> ChainConfig:
    """The hive chain's fork schedule, from its ``genesis.json``."""
    from node.chain.forks import load_chain_config
    return load_chain_config(str(execution_apis("genesis.json")))


def child_of(parent: Header, config: ChainConfig | None = None, **changes: Any) -> Header:
    """A child of ``parent`` that obeys every consensus rule: the next number and 12 s
    later, the same gas limit, no gas or blob gas used, the EIP-1559 base fee and the
    EIP-4844 excess blob gas computed from the parent (``config`` gives the blob schedule;
    without one a blob-shaped child keeps the parent's excess, which is then not checked);
    ``changes`` override any field after that (which may break a rule on purpose)."""
    import dataclasses

    from node.chain.header_rules import calculate_base_fee_per_gas, calculate_excess_blob_gas

    timestamp = parent.timestamp + 12
    fields: dict[str, Any] = dict(number=parent.number + 1, parent_hash=parent.hash,
                                  timestamp=timestamp, gas_used=0)
    if parent.base_fee_per_gas is not None:
        fields["base_fee_per_gas"] = calculate_base_fee_per_gas(
            parent.gas_limit, parent.gas_used, parent.base_fee_per_gas)
    if parent.excess_blob_gas is not None:
        era = config.era_at(timestamp) if config is not None else None
        fields["blob_gas_used"] = 0
        fields["excess_blob_gas"] = (
            parent.excess_blob_gas if era is None or era.blobs is None else
            calculate_excess_blob_gas(parent, era.blobs, era.reserve_price))
    return dataclasses.replace(dataclasses.replace(parent, **fields), **changes)


def hive_genesis() -> dict[str, Any]:
    """The genesis block JSON (``eth_getBlockByNumber/get-genesis``)."""
    return io_case("eth_getBlockByNumber", "get-genesis").result


def hive_latest() -> dict[str, Any]:
    """Block 54 as JSON with full transactions (``eth_getBlockByNumber/get-latest``)."""
    return io_case("eth_getBlockByNumber", "get-latest").result


# --- ethereum/tests BlockchainTests --------------------------------------------------

BLOCKCHAIN_TEST_HEADER_NAMES = {
    "uncleHash": "sha3Uncles",
    "coinbase": "miner",
    "transactionsTrie": "transactionsRoot",
    "receiptTrie": "receiptsRoot",
    "bloom": "logsBloom",
}
"""``blockHeader`` fields of BlockchainTests whose JSON-RPC name differs (the rest --
parentHash, stateRoot, difficulty, number, gasLimit, gasUsed, timestamp, extraData,
mixHash, nonce, baseFeePerGas, withdrawalsRoot, blobGasUsed, excessBlobGas,
parentBeaconBlockRoot, hash -- are spelt the same)."""


def blockchain_test_header_to_rpc(header: dict[str, str]) -> dict[str, str]:
    """A BlockchainTests ``blockHeader`` with its fields renamed as in JSON-RPC."""
    return {BLOCKCHAIN_TEST_HEADER_NAMES.get(k, k): v for k, v in header.items()}


@cache
def valid_block_tests() -> dict[str, dict[str, Any]]:
    """Every test of ``BlockchainTests/ValidBlocks``, by ``<dir>/<file>/<test name>``."""
    root = ethereum_tests("BlockchainTests", "ValidBlocks")
    tests = {}
    for path in json_files(root):
        for name, test in load_json(path).items():
            tests[f"{path.parent.name}/{path.stem}/{name}"] = test
    return tests

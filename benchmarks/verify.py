"""How fast the chain verification core checks what an untrusted upstream sends.

Run from the repository root::

    python -m benchmarks.verify            # full run (about a minute)
    python -m benchmarks.verify --quick    # small sizes, for the smoke test
    python -m benchmarks.verify --check    # exit 1 if a target is missed
    python -m benchmarks.verify --json     # results as JSON instead of the table

What is measured, all in one process pinned to one core, each figure the best of
several runs (``time.perf_counter``; the JSON also has the median run):

* **Headers.** The timed path is the one a JSON-RPC block takes: JSON dict ->
  :func:`node.chain.header.verify_header` (parse and check every field, RLP-encode,
  keccak, compare with ``hash``), then, for "hash+link", -> ``HeaderStore.add_many``
  in batches of 1,000 into a real SQLite file in a temporary directory. Inputs: the 54
  real headers of ``execution-apis/tests/chain.rlp`` (Frontier to Prague shapes), and a
  deterministic pseudo-random linked chain of Prague-shaped headers whose parent hashes
  were computed beforehand with our own code. Baseline for hashing: the ``rlp`` package
  plus ``eth-hash``, reading the same dicts with ``int``/``bytes.fromhex`` and no checks.
  Target (the issue): >= 20,000 headers/s hashed and linked.
* **Proofs.** ``eth_getProof`` results verified against a state root with
  :func:`node.chain.proof.verify_account_proof` (JSON in, every field checked). Inputs:
  the real ``get-account-proof-with-storage`` case (account + one storage slot) against
  block 54's verified ``stateRoot``, and proofs of present and absent accounts in a
  10,000-account secure trie built with py-trie. Baseline: the ``trie`` package
  (py-trie 4.0.0), ``HexaryTrie.get_from_proof``, on the same JSON -- its timed work
  includes hex-decoding and ``rlp.decode`` of the proof nodes (it wants decoded nodes),
  decoding the account and comparing the claimed fields. Target: >= 2x the baseline.
* **receiptsRoot of a 200-receipt block.** 200 synthetic receipts (types 0/2/3, 0-5 logs
  of 1-4 topics and 32-256 bytes of data, correct blooms): ours is
  ``receipt_from_rpc`` for each JSON receipt + ``ordered_trie_root``; baseline is
  py-trie ``HexaryTrie`` filled with ``rlp.encode(index) -> encoded receipt``, given the
  encoded receipts (decoding JSON is not part of its work). A second row times our
  ``ordered_trie_root`` alone on the same encoded receipts.

Every input is cross-checked before it is timed (our hashes and roots against the
``rlp``/``trie`` packages), so the benchmark measures correct work. Both sides hash with
the same C Keccak (eth-hash is pointed at its ``pysha3`` backend unless
``ETH_HASH_BACKEND`` says otherwise), so the ratios compare the code, not the hash.
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import rlp as pyrlp
from eth_hash.auto import keccak as eth_keccak
from trie import HexaryTrie

from benchmarks.common import (
    Row,
    Target,
    as_json,
    benchmark_parser,
    environment,
    interleaved,
    measured,
    pin_to_one_core,
    render,
    timed,
)
from node.chain import rlp
from node.chain.anchor import Anchor, AnchorSource
from node.chain.forks import MAINNET, ChainConfig, load_chain_config
from node.chain.hashing import EMPTY_KECCAK
from node.chain.header import (
    EMPTY_OMMERS_HASH,
    Header,
    header_from_rlp,
    header_to_rpc,
    verify_header,
)
from node.chain.header_rules import (
    calculate_base_fee_per_gas,
    calculate_excess_blob_gas,
    validate_header,
)
from node.chain.header_store import HeaderStore
from node.chain.proof import verify_account_proof
from node.chain.receipts import logs_bloom, receipt_from_rpc
from node.chain.trie import EMPTY_TRIE_ROOT, ordered_trie_root, secure_trie_root

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")  # read at eth-hash's first hash

VECTORS = (Path(os.environ.get("ORBITAL_VECTORS")
                or Path(__file__).resolve().parents[2] / "shared" / "vectors")
           / "execution-apis" / "tests")  # ORBITAL_VECTORS as in tests/vectors.py
HEADERS_PER_S = Target("ours", 20_000)
TWICE_THE_BASELINE = Target("ratio", 2.0)
LINK_BATCH = 1_000
SYNTHETIC_START = 1_746_612_311  # mainnet Prague activation: the synthetic chain is Prague-era


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    headers: int = 20_000  # synthetic Prague headers in the linked chain
    accounts: int = 10_000  # accounts in the synthetic state trie
    proofs: int = 1_000  # proofs of present accounts, and as many of absent ones
    real_proof_loops: int = 1_000  # verifications of the real eth_getProof case per run
    receipts: int = 200
    receipt_loops: int = 20  # receiptsRoot computations per run
    repeats: int = 5


QUICK = Sizes(headers=1_000, accounts=500, proofs=100, real_proof_loops=100,
              receipt_loops=2, repeats=2)


# -- inputs ------------------------------------------------------------------------------

def _rpc_result(path: Path) -> Any:
    """The ``result`` of the response line (``<< ...``) of an execution-apis ``.io`` case."""
    for line in path.read_text().splitlines():
        if line.startswith("<< "):
            return json.loads(line[3:])["result"]
    raise ValueError(f"{path}: no response line")


def real_headers(vectors: Path) -> list[dict[str, str]]:
    """The 54 headers of ``chain.rlp`` as JSON-RPC dicts."""
    blocks = rlp.decode_stream((vectors / "chain.rlp").read_bytes())
    return [header_to_rpc(header_from_rlp(rlp.encode(block[0]))) for block in blocks]


def synthetic_headers(count: int, seed: int = 1) -> list[dict[str, str]]:
    """A linked chain of ``count`` Prague-shaped mainnet-era headers with pseudo-random
    contents that obey every consensus rule of :mod:`node.chain.header_rules` under the
    mainnet schedule (gas limit drifting within parent/1024, base fee and excess blob gas
    computed from the parent)."""
    rng = random.Random(seed)
    schedule = MAINNET.era_at(SYNTHETIC_START)
    assert schedule.blobs is not None
    parent: Header | None = None
    out = []
    gas_limit, base_fee, excess = 36_000_000, 10**9, 0
    for i in range(count):
        if parent is not None:
            gas_limit = parent.gas_limit + rng.randrange(-(parent.gas_limit // 1024) + 1,
                                                         parent.gas_limit // 1024)
            base_fee = calculate_base_fee_per_gas(parent.gas_limit, parent.gas_used,
                                                  parent.base_fee_per_gas)
            excess = calculate_excess_blob_gas(parent, schedule.blobs, False)
        header = Header(
            parent_hash=parent.hash if parent else rng.randbytes(32),
            ommers_hash=EMPTY_OMMERS_HASH, coinbase=rng.randbytes(20),
            state_root=rng.randbytes(32), transactions_root=rng.randbytes(32),
            receipts_root=rng.randbytes(32), logs_bloom=rng.randbytes(256), difficulty=0,
            number=22_500_000 + i, gas_limit=gas_limit, gas_used=rng.randrange(gas_limit),
            timestamp=SYNTHETIC_START + 12 * i, extra_data=rng.randbytes(rng.randrange(33)),
            mix_hash=rng.randbytes(32), nonce=bytes(8), base_fee_per_gas=base_fee,
            withdrawals_root=rng.randbytes(32),
            blob_gas_used=131_072 * rng.randrange(schedule.blobs.max + 1),
            excess_blob_gas=excess, parent_beacon_block_root=rng.randbytes(32),
            requests_hash=rng.randbytes(32),
        )
        out.append(header_to_rpc(header))
        parent = header
    return out


def _synthetic_receipt(rng: random.Random, index: int, cumulative: int) -> dict[str, Any]:
    tx_type = rng.choices((0, 2, 3), weights=(3, 6, 1))[0]
    failed = rng.random() < 0.05
    gas = rng.randrange(21_000, 400_000)
    logs = [] if failed else [{
        "address": _hex(rng.randbytes(20)),
        "topics": [_hex(rng.randbytes(32)) for _ in range(rng.randint(1, 4))],
        "data": _hex(rng.randbytes(32 * rng.randint(1, 8))),
        "logIndex": hex(index * 8 + j), "removed": False,
    } for j in range(rng.randint(0, 5))]
    receipt = {
        "type": hex(tx_type), "status": "0x0" if failed else "0x1",
        "transactionIndex": hex(index), "transactionHash": _hex(rng.randbytes(32)),
        "from": _hex(rng.randbytes(20)), "to": _hex(rng.randbytes(20)),
        "contractAddress": None, "gasUsed": hex(gas),
        "cumulativeGasUsed": hex(cumulative + gas),
        "effectiveGasPrice": hex(rng.randrange(10**9, 10**11)),
        "logs": logs, "logsBloom": _hex(_independent_bloom(logs)),
    }
    if tx_type == 3:
        receipt |= {"blobGasUsed": hex(131_072 * rng.randint(1, 6)), "blobGasPrice": "0x1"}
    return receipt


def synthetic_receipts(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """``count`` receipts of one block, as ``eth_getBlockReceipts`` returns them."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(count):
        cumulative = int(out[-1]["cumulativeGasUsed"], 16) if out else 0
        out.append(_synthetic_receipt(rng, i, cumulative))
    return out


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text[2:])


@dataclass(frozen=True)
class State:
    """A synthetic state trie (built by py-trie) and eth_getProof results against it."""

    root: bytes
    present: list[dict[str, Any]]
    absent: list[dict[str, Any]]


def synthetic_state(accounts: int, proofs: int, seed: int = 2) -> State:
    """A secure trie of ``accounts`` accounts (about one in four a contract)."""
    rng = random.Random(seed)
    trie = HexaryTrie({})
    leaves: dict[bytes, bytes] = {}
    fields: dict[bytes, tuple[int, int, bytes, bytes]] = {}
    with trie.squash_changes() as batch:
        for _ in range(accounts):
            address = rng.randbytes(20)
            contract = rng.random() < 0.25
            account = (rng.randrange(2_000), rng.randrange(10**22),
                       rng.randbytes(32) if contract else EMPTY_TRIE_ROOT,
                       rng.randbytes(32) if contract else EMPTY_KECCAK)
            fields[address] = account
            leaves[address] = batch[eth_keccak(address)] = pyrlp.encode(list(account))
    assert trie.root_hash == secure_trie_root(leaves), "py-trie and ours disagree on the root"

    def result(address: bytes, account: tuple[int, int, bytes, bytes]) -> dict[str, Any]:
        nodes = [pyrlp.encode(node) for node in trie.get_proof(eth_keccak(address))]
        # py-trie lists inline (< 32 byte) nodes separately; eth_getProof does not.
        nodes = nodes[:1] + [node for node in nodes[1:] if len(node) >= 32]
        return {"address": _hex(address), "accountProof": [_hex(n) for n in nodes],
                "nonce": hex(account[0]), "balance": hex(account[1]),
                "storageHash": _hex(account[2]), "codeHash": _hex(account[3]),
                "storageProof": []}

    present = [result(a, fields[a]) for a in rng.sample(sorted(fields), proofs)]
    empty = (0, 0, EMPTY_TRIE_ROOT, EMPTY_KECCAK)
    absent = [result(rng.randbytes(20), empty) for _ in range(proofs)]
    return State(trie.root_hash, present, absent)


# -- baselines ---------------------------------------------------------------------------

_HEADER_FIELDS = (  # (JSON-RPC name, is a quantity), in RLP order
    ("parentHash", False), ("sha3Uncles", False), ("miner", False), ("stateRoot", False),
    ("transactionsRoot", False), ("receiptsRoot", False), ("logsBloom", False),
    ("difficulty", True), ("number", True), ("gasLimit", True), ("gasUsed", True),
    ("timestamp", True), ("extraData", False), ("mixHash", False), ("nonce", False),
    ("baseFeePerGas", True), ("withdrawalsRoot", False), ("blobGasUsed", True),
    ("excessBlobGas", True), ("parentBeaconBlockRoot", False), ("requestsHash", False),
)


def baseline_verify_header(block: Mapping[str, str]) -> None:
    """keccak(rlp(header)) == hash with the ``rlp`` package and ``eth-hash``."""
    values: list[int | bytes] = []
    for name, is_quantity in _HEADER_FIELDS:
        text = block.get(name)
        if text is None:
            break
        values.append(int(text, 16) if is_quantity else _unhex(text))
    if eth_keccak(pyrlp.encode(values)) != _unhex(block["hash"]):
        raise AssertionError(f"baseline: header {block['number']} does not hash to its hash")


def baseline_verify_account_proof(state_root: bytes, result: Mapping[str, Any]) -> None:
    """Check an eth_getProof result with ``HexaryTrie.get_from_proof``."""
    nodes = [pyrlp.decode(_unhex(n)) for n in result["accountProof"]]
    leaf = HexaryTrie.get_from_proof(state_root, eth_keccak(_unhex(result["address"])), nodes)
    if leaf:
        nonce, balance, storage_root, code_hash = pyrlp.decode(leaf)
        proven = (int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"),
                  storage_root, code_hash)
    else:
        proven = (0, 0, EMPTY_TRIE_ROOT, EMPTY_KECCAK)
    claimed = (int(result["nonce"], 16), int(result["balance"], 16),
               _unhex(result["storageHash"]), _unhex(result["codeHash"]))
    if proven != claimed:
        raise AssertionError("baseline: account does not match its proof")
    for entry in result["storageProof"]:
        slot = int(entry["key"], 16).to_bytes(32, "big")
        nodes = [pyrlp.decode(_unhex(n)) for n in entry["proof"]]
        leaf = HexaryTrie.get_from_proof(proven[2], eth_keccak(slot), nodes)
        value = int.from_bytes(pyrlp.decode(leaf), "big") if leaf else 0
        if value != int(entry["value"], 16):
            raise AssertionError("baseline: storage slot does not match its proof")


def baseline_receipts_root(encoded: list[bytes]) -> bytes:
    """The receipts root built by py-trie from the encoded receipts."""
    trie = HexaryTrie({})
    with trie.squash_changes() as batch:
        for index, receipt in enumerate(encoded):
            batch[pyrlp.encode(index)] = receipt
    return trie.root_hash


def _independent_bloom(logs: list[dict[str, Any]]) -> bytes:
    """The logs bloom (Yellow Paper §4.3.1), written apart from node.chain.receipts."""
    bits = 0
    for log in logs:
        for item in (log["address"], *log["topics"]):
            digest = eth_keccak(_unhex(item))
            for i in (0, 2, 4):
                bits |= 1 << ((digest[i] << 8 | digest[i + 1]) & 2047)
    return bits.to_bytes(256, "big")


def _independent_receipt_encoding(receipt: Mapping[str, Any]) -> bytes:
    logs = [[_unhex(log["address"]), [_unhex(t) for t in log["topics"]], _unhex(log["data"])]
            for log in receipt["logs"]]
    body = pyrlp.encode([int(receipt["status"], 16), int(receipt["cumulativeGasUsed"], 16),
                         _unhex(receipt["logsBloom"]), logs])
    tx_type = int(receipt["type"], 16)
    return body if tx_type == 0 else bytes([tx_type]) + body


# -- measurements ------------------------------------------------------------------------

def _hash_all(blocks: list[dict[str, str]]) -> None:
    for block in blocks:
        verify_header(block)


def _baseline_hash_all(blocks: list[dict[str, str]]) -> None:
    for block in blocks:
        baseline_verify_header(block)


def _verify_headers(blocks: list[dict[str, str]]) -> list[Header]:
    return [verify_header(b) for b in blocks]


def _link_forward(headers: list[Header], store: HeaderStore) -> None:
    """Today's path before anchoring: from the first header (anchored), each header after it
    links forward from its parent -- stored as linked, not anchored (rules checked)."""
    store.add_anchor(Anchor(headers[0].number, headers[0].hash, AnchorSource.USER), headers[0])
    for start in range(1, len(headers), LINK_BATCH):
        store.add_many(headers[start:start + LINK_BATCH])


def _link_backward(headers: list[Header], store: HeaderStore) -> None:
    """The node's path: the newest header is the anchor, its ancestors are fetched and
    linked backward in batches, newest first, each pair rule-checked: all verified."""
    newest = headers[-1]
    store.add_anchor(Anchor(newest.number, newest.hash, AnchorSource.USER), newest)
    older = headers[-2::-1]
    for start in range(0, len(older), LINK_BATCH):
        store.add_many(older[start:start + LINK_BATCH])


def _rules(headers: list[Header], config: ChainConfig) -> None:
    for parent, child in pairwise(headers):
        validate_header(child, parent, config)


def _fresh_stores(directory: Path, config: ChainConfig) -> Callable[[], HeaderStore]:
    """A factory of empty stores (a new SQLite file each)."""
    own = Path(tempfile.mkdtemp(dir=directory))
    names = (own / f"headers-{i}.sqlite" for i in range(10**6))
    return lambda: HeaderStore(next(names), config)


def measure_headers(name: str, blocks: list[dict[str, str]], config: ChainConfig,
                    repeats: int, directory: Path) -> list[Row]:
    new_store = _fresh_stores(directory, config)
    with new_store() as store:  # warm up, and check that the whole chain anchors
        _link_backward(_verify_headers(blocks), store)
        first = verify_header(blocks[0])
        assert store.get(first.hash) == first, "chain did not link back to its first header"
        assert "excessBlobGas" not in store.not_checked, store.not_checked
    _baseline_hash_all(blocks)  # cross-checks every hash with the rlp package
    verified = _verify_headers(blocks)  # their rlp and hash are cached
    stores: list[HeaderStore] = []

    def store_for_run() -> HeaderStore:  # untimed: close the last run's store, open a new one
        if stores:
            stores.pop().close()
        stores.append(new_store())
        return stores[-1]

    hashed, baseline = interleaved([lambda: _hash_all(blocks),
                                    lambda: _baseline_hash_all(blocks)], repeats)
    rules = timed(lambda: _rules(verified, config), repeats)
    forward = timed(lambda store: _link_forward(_verify_headers(blocks), store), repeats,
                    store_for_run)
    backward = timed(lambda store: _link_backward(_verify_headers(blocks), store), repeats,
                     store_for_run)
    for store in stores:
        store.close()
    n = len(blocks)
    return [
        measured(f"headers {name}: hash", "headers/s", n, hashed, baseline, HEADERS_PER_S),
        measured(f"headers {name}: rules only", "headers/s", n - 1, rules),
        measured(f"headers {name}: hash+link forward (linked, NOT anchored)", "headers/s", n,
                 forward),
        measured(f"headers {name}: hash+rules+link backward from an anchor", "headers/s", n,
                 backward, forward, target=HEADERS_PER_S),
    ]


def measure_proofs(name: str, state_root: bytes, results: list[dict[str, Any]],
                   loops: int, repeats: int) -> Row:
    for result in results:  # both verifiers accept every proof before they are timed
        verify_account_proof(state_root, result)
        baseline_verify_account_proof(state_root, result)

    def ours() -> None:
        for _ in range(loops):
            for result in results:
                verify_account_proof(state_root, result)

    def theirs() -> None:
        for _ in range(loops):
            for result in results:
                baseline_verify_account_proof(state_root, result)

    mine, baseline = interleaved([ours, theirs], repeats)
    return measured(name, "proofs/s", loops * len(results), mine, baseline, TWICE_THE_BASELINE)


def measure_receipts(receipts: list[dict[str, Any]], loops: int, repeats: int) -> list[Row]:
    encoded = [_independent_receipt_encoding(r) for r in receipts]
    ours = [receipt_from_rpc(r) for r in receipts]
    assert encoded == [r.encoded for r in ours], "receipt encodings disagree with the rlp package"
    assert all(r.logs_bloom == logs_bloom(r.logs) for r in ours), "receipt blooms disagree"
    root = baseline_receipts_root(encoded)
    assert ordered_trie_root(encoded) == root, "receiptsRoot disagrees with py-trie"

    def from_json() -> None:
        for _ in range(loops):
            ordered_trie_root([receipt_from_rpc(r, f"receipts[{i}]").encoded
                               for i, r in enumerate(receipts)])

    def trie_only() -> None:
        for _ in range(loops):
            ordered_trie_root(encoded)

    def theirs() -> None:
        for _ in range(loops):
            baseline_receipts_root(encoded)

    json_to_root, only_trie, baseline = interleaved([from_json, trie_only, theirs], repeats)
    n = len(receipts)
    return [
        measured(f"receiptsRoot, {n} receipts: JSON -> root", "ms/block", loops,
                 json_to_root, baseline),
        measured(f"receiptsRoot, {n} receipts: trie only", "ms/block", loops,
                 only_trie, baseline),
    ]


def _stages(sizes: Sizes, vectors: Path) -> Iterator[list[Row]]:
    real = real_headers(vectors)
    synthetic = synthetic_headers(sizes.headers)
    with tempfile.TemporaryDirectory(prefix="orbital-bench-") as directory:
        yield measure_headers(f"real chain.rlp ({len(real)})", real,
                              load_chain_config(str(vectors / "genesis.json")),
                              sizes.repeats * 20, Path(directory))
        yield measure_headers(f"synthetic Prague ({len(synthetic):,})", synthetic, MAINNET,
                              sizes.repeats, Path(directory))

    latest = _rpc_result(vectors / "eth_getBlockByNumber" / "get-latest.io")
    state_root = verify_header(latest).state_root  # trust the root only once it hashes
    assert latest["hash"] == real[-1]["hash"], "get-latest is not chain.rlp's last block"
    proof = _rpc_result(vectors / "eth_getProof" / "get-account-proof-with-storage.io")
    yield [measure_proofs("proof real: account + 1 slot", state_root, [proof],
                          sizes.real_proof_loops, 2 * sizes.repeats)]
    state = synthetic_state(sizes.accounts, sizes.proofs)
    yield [
        measure_proofs(f"proof {sizes.accounts:,} accounts: present", state.root,
                       state.present, 1, sizes.repeats),
        measure_proofs(f"proof {sizes.accounts:,} accounts: absent", state.root,
                       state.absent, 1, sizes.repeats),
    ]
    yield measure_receipts(synthetic_receipts(sizes.receipts), sizes.receipt_loops,
                           sizes.repeats)


def run(sizes: Sizes = Sizes(), vectors: Path = VECTORS,
        progress: Callable[[str], None] | None = None) -> list[Row]:
    """Measure everything; return the rows of the table."""
    rows: list[Row] = []
    for stage in _stages(sizes, vectors):
        rows += stage
        if progress:
            progress(f"measured: {', '.join(row.capability for row in stage)}")
    return rows


NOTES = (
    "figures are the best of several runs (ours and baseline taking turns) on one pinned "
    "core; --json adds the median run",
    "header baseline: rlp package + eth-hash on the same dicts, no field checks; rules: "
    "header_rules.validate_header on every pair (fork schedule known: blob gas checked); "
    "link forward: the first header anchored, the rest HeaderStore.add_many in batches of "
    "1,000 oldest first (stored linked, NOT anchored, rules checked); link backward: the "
    "newest anchored, the rest in batches of 1,000 newest first (all verified) -- its "
    "baseline column is the forward path in the same run; both from the dicts, into a SQLite "
    "WAL file (synchronous=NORMAL: atomic commits, no fsync per batch)",
    "proof baseline: py-trie HexaryTrie.get_from_proof, incl. hex and rlp decoding of "
    "the nodes and the account; it does not refuse unused proof nodes, ours does",
    "receipts baseline: py-trie HexaryTrie (squash_changes) given the encoded receipts; "
    "decoding the JSON is ours alone in the first row, the second row gives both the same input",
    "ratio = speed-up of ours over the baseline (> 1: ours faster)",
)


def _eth_hash_backend() -> str:
    eth_keccak(b"")
    hasher = getattr(eth_keccak, "hasher", None)
    owner = getattr(hasher, "__self__", None)
    return type(owner).__name__ if owner is not None else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("benchmarks.verify", __doc__)
    parser.add_argument("--vectors", type=Path, default=VECTORS,
                        help="execution-apis/tests directory (default: %(default)s)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    cpu = pin_to_one_core()
    backend = _eth_hash_backend()
    say = None if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    rows = run(sizes, args.vectors, say)
    if args.json:
        print(json.dumps(as_json(rows, sizes=asdict(sizes), statistic="best",
                                 eth_hash_backend=backend, **environment(cpu)), indent=2))
    else:
        mode = "quick" if args.quick else "full"
        print(render(rows, (*NOTES, f"keccak: safe-pysha3 (ours), eth-hash {backend} "
                                    f"(baselines); pinned to CPU {cpu}; {mode} run")))
    failed = [row.capability for row in rows if row.passed is False]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())

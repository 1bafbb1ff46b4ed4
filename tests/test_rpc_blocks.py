"""Blocks, transactions, receipts and logs served only when proven (issue #14, point 4).

Against a real anvil (Prague): every envelope (tests/devnet_scenario.py), then ~50 blocks
in which six contracts emit LOG0..LOG4 with topics from a small pool (some blocks empty,
one transaction reverting). Headers are anchored at anvil's head in a real HeaderStore.

* honest answers equal anvil's JSON, and web3 8 parses them to what it parses from anvil;
* every lie -- a block, a transaction, a receipt, a log altered, dropped or moved, a header
  of another block or one that does not link -- is refused with a typed error and
  penalized;
* eth_getLogs is complete: equal to anvil's own eth_getLogs for address and topic filters
  (OR lists, nulls, empty lists), whatever the upstream's eth_getLogs says;
* the range bound, unanchored blocks, caching, batching, the per-transaction receipt
  fallback.

Differences from anvil, each deliberate and pinned here: no ``totalDifficulty`` (no
post-Merge header commits to it); ``size`` is the block's RLP length as go-ethereum computes
it (anvil 1.7.1 reports one byte less); receipts carry no ``blockTimestamp`` (anvil sends a
number, outside the schema) and ``blobGasPrice`` only for blob transactions
(execution-apis ``receipt.yaml``); a filter's trailing null topics need that many topics
(go-ethereum), where anvil lets them match shorter logs. The same rendering equals
go-ethereum's answers exactly on the execution-apis hive chain.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.providers.async_base import AsyncBaseProvider

from node.chain import rlp
from node.chain.anchor import Anchor, AnchorSource
from node.chain.errors import MalformedInputError
from node.chain.forks import ANVIL
from node.chain.hashing import keccak256
from node.chain.header import Header, header_from_rpc, header_to_rpc, verify_header
from node.chain.header_store import HeaderStore
from node.chain.transactions import transaction_from_rpc
from node.chain.trie import ordered_trie_root
from node.devnet import CHAIN_ID, DEV_PRIVATE_KEYS, Anvil
from node.rpc.blocks import (
    BlockNotAnchoredError,
    LogFilter,
    LogRangeError,
    UpstreamLieError,
    VerifiedBlocks,
)
from node.rpc.upstream_api import AlwaysReachable, Answer, DirectUpstream

from devnet_scenario import LOG_TOPIC, Scenario, mine_every_envelope
from vectors import hive_chain_config, hive_header, io_case

OTHER_ADDRESS = "0x" + "11" * 20
ZERO_HASH = "0x" + "00" * 32
TOPICS = tuple("0x" + keccak256(f"orbital topic {i}".encode()).hex() for i in range(4))
"""The pool the emitters' topics are drawn from (so OR lists and positions both matter)."""
NEVER_EMITTED = "0x" + keccak256(b"never emitted").hex()
LOGS_BLOCKS = 50


# --- the devnet --------------------------------------------------------------------------

def emitter_initcode(k: int) -> bytes:
    """A contract emitting LOG``k``: topics are calldata words 1..k, data is the calldata
    after byte 160 (less calldata underflows the size: out of gas, status 0)."""
    runtime = b"".join(bytes([0x60, 32 * (i + 1), 0x35]) for i in reversed(range(k)))
    runtime += bytes.fromhex("60a03603" "8060a0600037" "6000") + bytes([0xA0 + k, 0x00])
    # codecopy(0, 12, len(runtime)); return(0, len(runtime))
    return (bytes.fromhex("61") + len(runtime).to_bytes(2, "big")
            + bytes.fromhex("80600c6000396000f3") + runtime)


@dataclass(frozen=True)
class Devnet:
    envelopes: Scenario  # block 1: every envelope; block 2: the blob transaction
    emitters: dict[str, str]  # "k0".."k4", "k2b" -> address (lowercase)
    first: int  # the first block of the logs range
    last: int  # its last block (the anchored head)
    reverted: str  # a transaction whose receipt has status 0


@pytest.fixture(scope="module")
def devnet(anvil: Anvil) -> Devnet:
    rpc = anvil.rpc
    envelopes = mine_every_envelope(rpc, DEV_PRIVATE_KEYS, CHAIN_ID)
    senders = anvil.accounts[5:]
    deploys = {name: rpc("eth_sendTransaction", {"from": senders[0],
                                                 "data": "0x" + emitter_initcode(k).hex()})
               for name, k in (("k0", 0), ("k1", 1), ("k2", 2), ("k2b", 2), ("k3", 3),
                               ("k4", 4))}
    emitters = {name: anvil.receipt(h)["contractAddress"].lower() for name, h in deploys.items()}
    targets = [*emitters.values(), envelopes.contract.lower()]
    rng = random.Random(14)
    first = int(rpc("eth_blockNumber"), 16) + 1
    sent, reverted = [], ""
    with anvil.mining_on_request():
        for n in range(LOGS_BLOCKS):
            for _ in range(0 if n % 5 == 4 else rng.randint(1, 3)):  # every fifth block empty
                words = [rng.choice(TOPICS) for _ in range(5)]
                payload = "0x" + "".join(w[2:] for w in words) + rng.randbytes(32).hex()
                sent.append(rpc("eth_sendTransaction", {
                    "from": rng.choice(senders), "to": rng.choice(targets), "data": payload,
                    "gas": hex(200_000)}))
            if n == 7:  # too little calldata: out of gas
                reverted = rpc("eth_sendTransaction", {"from": senders[1], "to": emitters["k2"],
                                                       "data": "0x01", "gas": hex(100_000)})
            rpc("evm_mine")
    assert all(anvil.receipt(h)["status"] == "0x1" for h in sent)
    assert anvil.receipt(reverted)["status"] == "0x0"
    return Devnet(envelopes, emitters, first, int(rpc("eth_blockNumber"), 16), reverted)


@pytest.fixture(scope="module")
def store(anvil: Anvil, devnet: Devnet, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[HeaderStore]:
    """anvil's chain anchored at its head (the test's own anvil is the trusted source)."""
    headers = [verify_header(anvil.rpc("eth_getBlockByNumber", hex(n), False))
               for n in range(devnet.last + 1)]
    with HeaderStore(tmp_path_factory.mktemp("headers") / "headers.sqlite", ANVIL) as s:
        head = headers[-1]
        s.add_anchor(Anchor(head.number, head.hash, AnchorSource.USER, "test anvil"), head)
        assert {i.status for i in s.add_many(headers[-2::-1])} == {"anchored"}
        yield s


# --- an upstream that can lie ------------------------------------------------------------

Tamper = Callable[[str, list[Any], Any], Any]


class Liar(AlwaysReachable):
    """anvil behind the Upstream interface, answering ``tamper(method, params, result)``
    (given a copy) instead of the truth; ``missing`` methods answer "Method not found".
    Records every batch and every penalty."""

    def __init__(self, url: str, tamper: Tamper | None = None,
                 missing: tuple[str, ...] = ()) -> None:
        self.inner = DirectUpstream(url, "liar")
        self.tamper = tamper
        self.missing = set(missing)
        self.batches: list[list[tuple[str, list[Any]]]] = []
        self.penalties: list[str] = []

    @property
    def calls(self) -> list[str]:
        return [method for batch in self.batches for method, _ in batch]

    async def call(self, method: str, params: Any) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Any) -> list[Answer]:
        calls = [(m, list(p)) for m, p in calls]
        self.batches.append(calls)
        asked = [(m, p) for m, p in calls if m not in self.missing]
        answers = iter(await self.inner.batch(asked) if asked else [])
        out = []
        for method, params in calls:
            if method in self.missing:
                out.append(Answer(None, "liar", {"code": -32601, "message": "Method not found"}))
                continue
            answer = next(answers)
            result = answer.result
            if self.tamper is not None and answer.error is None:
                result = self.tamper(method, params, copy.deepcopy(result))
            out.append(Answer(result, answer.upstream, answer.error))
        return out

    def penalize(self, answer: Answer, what: str) -> None:
        assert answer.upstream == "liar"
        self.penalties.append(what)


def only(method: str, change: Callable[[Any], Any]) -> Tamper:
    """Tamper with the answers to ``method`` only (``change`` may edit in place)."""
    def tamper(m: str, params: list[Any], result: Any) -> Any:
        if m != method:
            return result
        changed = change(result)
        return result if changed is None else changed
    return tamper


@pytest.fixture
async def liar(anvil: Anvil) -> AsyncIterator[Liar]:
    upstream = Liar(anvil.url)
    yield upstream
    await upstream.inner.close()


@pytest.fixture
def node(liar: Liar, store: HeaderStore) -> VerifiedBlocks:
    """The verified node over an (honest unless told otherwise) upstream."""
    return VerifiedBlocks(liar, store)


def h32(text: str) -> bytes:
    return bytes.fromhex(text[2:])


def anvil_receipt(receipt: dict[str, Any]) -> dict[str, Any]:
    """anvil's receipt less what the node deliberately does not serve (module docstring)."""
    out = {k: v for k, v in receipt.items() if k != "blockTimestamp"}
    if out["type"] != "0x3":
        out.pop("blobGasPrice", None)
    return out


def anvil_block(block: dict[str, Any]) -> dict[str, Any]:
    """anvil's block less totalDifficulty, with go-ethereum's size (one byte more)."""
    out = {k: v for k, v in block.items() if k != "totalDifficulty"}
    out["size"] = hex(int(out["size"], 16) + 1)
    return out


def rlp_block_size(block: dict[str, Any]) -> int:
    """len(rlp([header, transactions, ommers, withdrawals])), from anvil's own raw
    transactions (an oracle independent of the node's encoder)."""
    header = rlp.decode(header_from_rpc(block).rlp)
    txs = [rlp.decode(raw) if raw[0] >= 0xC0 else raw for raw in (
        h32(t["raw"]) if "raw" in t else transaction_from_rpc(t).encoded
        for t in block["transactions"])]
    return len(rlp.encode([header, txs, [], []]))


# --- honest answers equal anvil's --------------------------------------------------------

@pytest.mark.devnet
async def test_blocks_equal_anvils_with_full_transactions_and_hashes(
        node: VerifiedBlocks, anvil: Anvil, devnet: Devnet, liar: Liar) -> None:
    blob_block = devnet.envelopes.blob_block_number
    for number in range(devnet.last + 1):
        if number == blob_block:
            continue
        for full in (True, False):
            theirs = anvil.rpc("eth_getBlockByNumber", hex(number), full)
            assert await node.block(number, full) == anvil_block(theirs)
        by_hash = await node.block(h32(theirs["hash"]), True)
        assert int(by_hash["size"], 16) == rlp_block_size(by_hash)
    assert liar.penalties == []
    assert set(liar.calls) == {"eth_getBlockByHash"}  # hashes-only answers come from full


@pytest.mark.devnet
async def test_anvils_blob_block_is_refused_as_its_transactions_root_is_wrong(
        node: VerifiedBlocks, devnet: Devnet, liar: Liar) -> None:
    """anvil 1.7.1 builds that root from the blob transaction's network form (DESIGN.md):
    no root check passes it, so the node refuses it and blames the upstream."""
    with pytest.raises(UpstreamLieError) as err:
        await node.block(devnet.envelopes.blob_block_number, False)
    assert err.value.field == "transactionsRoot"
    assert len(liar.penalties) == 1 and "transactionsRoot" in liar.penalties[0]


@pytest.mark.devnet
async def test_transactions_and_receipts_equal_anvils(
        node: VerifiedBlocks, anvil: Anvil, devnet: Devnet, liar: Liar) -> None:
    numbers = [devnet.envelopes.block_number, *range(devnet.first, devnet.last + 1)]
    seen_types = set()
    for number in numbers:
        block = anvil.rpc("eth_getBlockByNumber", hex(number), False)
        for tx_hash in block["transactions"]:
            assert await node.transaction(h32(tx_hash)) == anvil.rpc(
                "eth_getTransactionByHash", tx_hash)
            theirs = anvil.rpc("eth_getTransactionReceipt", tx_hash)
            assert await node.receipt(h32(tx_hash)) == anvil_receipt(theirs)
            seen_types.add(theirs["type"])
        assert await node.block_receipts(number) == [
            anvil_receipt(r) for r in anvil.rpc("eth_getBlockReceipts", hex(number))]
    assert seen_types == {"0x0", "0x1", "0x2", "0x4"}
    assert (await node.receipt(h32(devnet.reverted)))["status"] == "0x0"
    assert liar.penalties == []


@pytest.mark.devnet
async def test_blob_transaction_rendered_like_anvil_once_its_block_verifies(
        anvil: Anvil, devnet: Devnet) -> None:
    """The blob envelope's own fields (maxFeePerBlobGas, blobVersionedHashes, blobGasUsed,
    blobGasPrice) rendered from a block whose transactionsRoot is rebuilt correctly: the
    test corrects anvil's root (the node is given a header that commits to the canonical
    form) -- the rendering is what is compared. anvil's transaction also carries its
    sidecar (blobs, commitments, proofs), which no block commits to: not served."""
    raw = anvil.rpc("eth_getBlockByNumber", hex(devnet.envelopes.blob_block_number), True)
    (tx,) = raw["transactions"]
    header = dataclasses.replace(header_from_rpc(raw), transactions_root=ordered_trie_root(
        [transaction_from_rpc(tx).encoded]))
    fixed = {**raw, **header_to_rpc(header)}
    fixed["transactions"] = [{**tx, "blockHash": fixed["hash"]}]
    receipts = anvil.rpc("eth_getBlockReceipts", raw["hash"])
    receipts = [{**r, "blockHash": fixed["hash"]} for r in receipts]
    answers = {("eth_getBlockByHash", fixed["hash"]): fixed,
               ("eth_getBlockReceipts", fixed["hash"]): receipts}
    node = VerifiedBlocks(Recorded(answers), Headers([header]))
    served = await node.block(header.number, True)
    sidecar = ("blobs", "commitments", "cellProofs")  # anvil serves the network form
    assert _without(served, "size") == _without(
        {**raw, **header_to_rpc(header),
         "transactions": [_without(fixed["transactions"][0], *sidecar)]},
        "size", "totalDifficulty")
    (receipt,) = await node.block_receipts(header.number)
    assert receipt == anvil_receipt(receipts[0])
    assert receipt["blobGasUsed"] == "0x20000" and receipt["blobGasPrice"] == "0x1"


# --- eth_getLogs: complete ---------------------------------------------------------------

def log_filters(d: Devnet) -> dict[str, dict[str, Any]]:
    e = d.emitters
    t0, t1, t2, t3 = TOPICS
    return {
        "everything": {},
        "one-address": {"address": e["k2"]},
        "address-list": {"address": [e["k2b"], e["k3"], OTHER_ADDRESS]},
        "topic0": {"topics": [t0]},
        "topic0-or": {"topics": [[t0, t1]]},
        "null-then-topic": {"topics": [None, t2]},
        "empty-list-then-or": {"topics": [[], [t1, t3]]},
        "or-list-holding-null": {"topics": [[t0, None], t3]},
        "three-positions": {"topics": [t0, None, [t1, t2]]},
        "address-and-fourth-topic": {"address": e["k4"], "topics": [None, None, None, [t0, t2]]},
        "logger-event": {"topics": ["0x" + LOG_TOPIC.hex()]},
        "nobody": {"address": OTHER_ADDRESS},
        "never-emitted": {"topics": [NEVER_EMITTED]},
    }


def ranged(query: dict[str, Any], low: int, high: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter for the node (numbers) and for anvil (hex)."""
    return ({**query, "fromBlock": low, "toBlock": high},
            {**query, "fromBlock": hex(low), "toBlock": hex(high)})


@pytest.mark.devnet
async def test_logs_equal_anvils_own_get_logs_for_every_filter(
        node: VerifiedBlocks, anvil: Anvil, devnet: Devnet, liar: Liar) -> None:
    counts = {}
    for name, query in log_filters(devnet).items():
        ours, theirs = ranged(query, devnet.envelopes.block_number, devnet.last)
        expected = anvil.rpc("eth_getLogs", theirs)
        assert await node.logs(ours) == expected, name
        counts[name] = len(expected)
    assert counts["everything"] > 50
    assert 0 < counts["topic0"] < counts["topic0-or"] < counts["everything"]
    assert counts["nobody"] == counts["never-emitted"] == 0
    assert all(counts[n] > 0 for n in ("one-address", "address-list", "null-then-topic",
                                       "empty-list-then-or", "or-list-holding-null",
                                       "three-positions", "address-and-fourth-topic"))
    assert "eth_getLogs" not in liar.calls and liar.penalties == []


@pytest.mark.devnet
async def test_logs_of_one_block_by_hash(node: VerifiedBlocks, anvil: Anvil,
                                         devnet: Devnet) -> None:
    block = anvil.rpc("eth_getBlockByNumber", hex(devnet.envelopes.block_number), False)
    for query in ({}, {"topics": [None, "0x" + "00" * 12 + anvil.accounts[2][2:]]}):
        query = {**query, "blockHash": block["hash"]}
        expected = anvil.rpc("eth_getLogs", query)
        assert expected and await node.logs(query) == expected


@pytest.mark.devnet
async def test_trailing_null_topics_need_that_many_topics_as_in_go_ethereum(
        node: VerifiedBlocks, anvil: Anvil, devnet: Devnet) -> None:
    """[T, null] selects logs with T first and at least two topics (go-ethereum, Nethermind,
    Besu); anvil also returns shorter logs -- the single difference, pinned."""
    ours, theirs = ranged({"topics": [TOPICS[0], None]}, devnet.first, devnet.last)
    anvils = anvil.rpc("eth_getLogs", theirs)
    shorter = [log for log in anvils if len(log["topics"]) < 2]
    assert shorter, "the devnet has LOG1 logs with the topic"
    assert await node.logs(ours) == [log for log in anvils if len(log["topics"]) >= 2]


@pytest.mark.devnet
async def test_upstream_omitting_logs_from_its_get_logs_cannot_make_the_node_omit_them(
        anvil: Anvil, devnet: Devnet, store: HeaderStore) -> None:
    liar = Liar(anvil.url, only("eth_getLogs", lambda logs: logs[::2]))
    try:
        ours, theirs = ranged({"topics": [[TOPICS[0], TOPICS[1]]]}, devnet.first, devnet.last)
        assert len((await liar.call("eth_getLogs", [theirs])).result) < len(
            anvil.rpc("eth_getLogs", theirs))  # the liar does omit logs
        assert await VerifiedBlocks(liar, store).logs(ours) == anvil.rpc("eth_getLogs", theirs)
    finally:
        await liar.inner.close()


@pytest.mark.devnet
async def test_a_log_dropped_from_the_receipts_is_refused_not_omitted(
        anvil: Anvil, devnet: Devnet, store: HeaderStore) -> None:
    def drop_last_log(receipts: list[dict[str, Any]]) -> None:
        for receipt in reversed(receipts):
            if receipt["logs"]:
                receipt["logs"].pop()
                receipt["logsBloom"] = "0x" + "00" * 256  # the emitters log once per call
                return
    liar = Liar(anvil.url, only("eth_getBlockReceipts", drop_last_log))
    try:
        with pytest.raises(UpstreamLieError) as err:
            await VerifiedBlocks(liar, store).logs({"fromBlock": devnet.first,
                                                    "toBlock": devnet.last})
        assert "receiptsRoot" in str(err.value) or "logsBloom" in str(err.value)
        assert len(liar.penalties) == 1
    finally:
        await liar.inner.close()


@pytest.mark.devnet
async def test_logs_fetch_only_bloom_candidates_in_batches(
        liar: Liar, store: HeaderStore, devnet: Devnet) -> None:
    node = VerifiedBlocks(liar, store, batch_blocks=4)
    k3 = devnet.emitters["k3"]
    query = LogFilter(devnet.first, devnet.last, addresses=(h32(k3),))
    candidates = [store.by_number(n) for n in range(devnet.first, devnet.last + 1)]
    candidates = [h for h in candidates if h is not None and query.may_match(h.logs_bloom)]
    assert 4 < len(candidates) < LOGS_BLOCKS  # the bloom leaves blocks out
    logs = await node.logs(query)
    assert logs and all(log["address"] == k3 for log in logs)
    assert len(liar.batches) == -(-len(candidates) // 4)
    fetched = [p[0] for batch in liar.batches for m, p in batch if m == "eth_getBlockByHash"]
    assert fetched == ["0x" + h.hash.hex() for h in candidates]
    assert all(len(batch) <= 8 for batch in liar.batches)


@pytest.mark.devnet
async def test_upstream_without_get_block_receipts_answers_one_receipt_per_transaction(
        anvil: Anvil, devnet: Devnet, store: HeaderStore) -> None:
    liar = Liar(anvil.url, missing=("eth_getBlockReceipts",))
    try:
        node = VerifiedBlocks(liar, store)
        ours, theirs = ranged({"address": devnet.emitters["k3"]}, devnet.first, devnet.last)
        assert await node.logs(ours) == anvil.rpc("eth_getLogs", theirs)
        number = devnet.envelopes.block_number
        assert await node.block_receipts(number) == [
            anvil_receipt(r) for r in anvil.rpc("eth_getBlockReceipts", hex(number))]
        assert "eth_getTransactionReceipt" in liar.calls and liar.penalties == []
    finally:
        await liar.inner.close()


# --- bounds and blocks not anchored ------------------------------------------------------

@pytest.mark.devnet
async def test_range_over_the_bound_is_refused_naming_it(
        liar: Liar, store: HeaderStore, devnet: Devnet) -> None:
    node = VerifiedBlocks(liar, store, max_log_range=10)
    assert isinstance(await node.logs({"fromBlock": devnet.first, "toBlock": devnet.first + 9}),
                      list)
    with pytest.raises(LogRangeError, match=r"spans 11 blocks, over the bound of 10 "
                                            r"\(max_log_range\)"):
        await node.logs({"fromBlock": devnet.first, "toBlock": devnet.first + 10})
    with pytest.raises(LogRangeError, match="fromBlock 9 > toBlock 8"):
        await node.logs({"fromBlock": 9, "toBlock": 8})


@pytest.mark.devnet
async def test_range_reaching_past_the_anchored_head_names_the_missing_block(
        node: VerifiedBlocks, liar: Liar, devnet: Devnet) -> None:
    head = devnet.last
    with pytest.raises(BlockNotAnchoredError,
                       match=f"block {head + 1} is not anchored: beyond the anchored head "
                             f"{head}") as err:
        await node.logs({"fromBlock": head - 3, "toBlock": head + 2})
    assert err.value.number == head + 1
    with pytest.raises(BlockNotAnchoredError, match="beyond the anchored head"):
        await node.block(head + 1, False)
    with pytest.raises(BlockNotAnchoredError, match="beyond the anchored head"):
        await node.block_receipts(head + 1)
    with pytest.raises(BlockNotAnchoredError, match="unknown: no anchored header"):
        await node.block(b"\x12" * 32, True)
    with pytest.raises(BlockNotAnchoredError, match="unknown"):
        await node.logs({"blockHash": "0x" + "12" * 32})
    assert liar.calls == []


@pytest.mark.devnet
async def test_a_gap_below_the_anchor_is_named_as_not_back_filled(
        liar: Liar, store: HeaderStore, devnet: Devnet, tmp_path: Path) -> None:
    with HeaderStore(tmp_path / "partial.sqlite", ANVIL) as partial:
        head = store.head
        assert head is not None
        partial.add_anchor(Anchor(head.number, head.hash, AnchorSource.USER, "test"), head)
        partial.add_many(store.by_number(n) for n in range(head.number - 1, head.number - 4, -1))
        node = VerifiedBlocks(liar, partial)
        assert isinstance(await node.logs({"fromBlock": head.number - 3,
                                           "toBlock": head.number}), list)
        with pytest.raises(BlockNotAnchoredError, match=f"block {head.number - 5} is not "
                           f"anchored: below the anchored head {head.number}, but not "
                           "back-filled yet"):
            await node.logs({"fromBlock": head.number - 5, "toBlock": head.number})


def test_filters_are_read_strictly() -> None:
    for bad, message in (
            ({"blockHash": ZERO_HASH, "fromBlock": 1}, "cannot specify both blockHash"),
            ({"fromBlock": "latest", "toBlock": 5}, "must be resolved to a number"),
            ({"fromBlock": 1}, "both fromBlock and toBlock"),
            ({"fromBlock": 1, "toBlock": 2, "topics": [None] * 5}, "at most 4"),
            ({"fromBlock": 1, "toBlock": 2, "address": "0x12"}, "expected 20 bytes"),
            ({"fromBlock": 1, "toBlock": 2, "topics": ["0x12"]}, "expected 32 bytes"),
            ({"fromBlock": -1, "toBlock": 2}, "not a uint64")):
        with pytest.raises(MalformedInputError, match=message):
            LogFilter.from_rpc(bad)
    parsed = LogFilter.from_rpc({"fromBlock": "0x1", "toBlock": 2, "address": OTHER_ADDRESS,
                                 "topics": [None, [], [ZERO_HASH, None], [ZERO_HASH]]})
    assert (parsed.from_block, parsed.to_block) == (1, 2)
    assert parsed.addresses == (h32(OTHER_ADDRESS),)
    assert parsed.topics == (None, None, None, (bytes(32),))


# --- unproven transactions are null --------------------------------------------------------

@pytest.mark.devnet
async def test_pending_and_unknown_transactions_are_null(
        node: VerifiedBlocks, anvil: Anvil, liar: Liar) -> None:
    assert await node.transaction(b"\x34" * 32) is None
    assert await node.receipt(b"\x34" * 32) is None
    with anvil.mining_on_request():
        pending = anvil.rpc("eth_sendTransaction", {"from": anvil.accounts[9],
                                                    "to": OTHER_ADDRESS, "value": "0x1"})
        assert anvil.rpc("eth_getTransactionByHash", pending)["blockHash"] is None
        assert await node.transaction(h32(pending)) is None  # no mempool here
        assert await node.receipt(h32(pending)) is None
        anvil.rpc("evm_mine")
    assert anvil.rpc("eth_getTransactionReceipt", pending) is not None
    assert await node.receipt(h32(pending)) is None  # mined beyond the anchored head
    assert await node.transaction(h32(pending)) is None
    assert liar.penalties == []


# --- caching -------------------------------------------------------------------------------

@pytest.mark.devnet
async def test_repeated_reads_need_no_upstream_traffic(
        node: VerifiedBlocks, liar: Liar, anvil: Anvil, devnet: Devnet) -> None:
    number = devnet.envelopes.block_number
    first = await node.block(number, True)
    receipts = await node.block_receipts(number)
    logs = await node.logs({"fromBlock": devnet.first, "toBlock": devnet.last,
                            "topics": [TOPICS[1]]})
    calls = len(liar.calls)
    assert await node.block(number, False) == {
        **first, "transactions": [t["hash"] for t in first["transactions"]]}
    assert await node.block_receipts(number) == receipts
    for tx in first["transactions"]:  # located through the verified block
        assert await node.transaction(h32(tx["hash"])) == tx
        assert await node.receipt(h32(tx["hash"])) in receipts
    assert await node.logs({"fromBlock": devnet.first, "toBlock": devnet.last,
                            "topics": [TOPICS[1]]}) == logs
    assert len(liar.calls) == calls


@pytest.mark.devnet
async def test_an_empty_blocks_receipts_need_no_receipts_call(
        node: VerifiedBlocks, liar: Liar, devnet: Devnet, anvil: Anvil) -> None:
    """Its anchored header's empty transactionsRoot and receiptsRoot prove there are none."""
    empty = devnet.first + 4  # every fifth block of the range is empty
    assert anvil.rpc("eth_getBlockByNumber", hex(empty), False)["transactions"] == []
    assert await node.block_receipts(empty) == []
    assert liar.calls == ["eth_getBlockByHash"]


@pytest.mark.devnet
async def test_concurrent_receipts_of_one_block_download_it_once(
        node: VerifiedBlocks, liar: Liar, anvil: Anvil, devnet: Devnet) -> None:
    """Sixteen receipt lookups at once (the outbox's) in the same block: one block and one
    receipts download, however they interleave; every answer equals anvil's."""
    number = devnet.envelopes.block_number
    hashes = anvil.rpc("eth_getBlockByNumber", hex(number), False)["transactions"]
    assert len(hashes) >= 4
    asked = (hashes * 4)[:16]
    receipts = await asyncio.gather(*(node.receipt(h32(h)) for h in asked))
    assert [r["transactionHash"] for r in receipts] == asked
    assert [anvil_receipt(r) for r in receipts] == \
        [anvil_receipt(anvil.rpc("eth_getTransactionReceipt", h)) for h in asked]
    assert liar.calls.count("eth_getBlockByHash") == 1
    assert liar.calls.count("eth_getBlockReceipts") == 1


@pytest.mark.devnet
async def test_the_cache_is_bounded_least_recently_used_first_out(
        liar: Liar, store: HeaderStore, devnet: Devnet) -> None:
    node = VerifiedBlocks(liar, store, cache_blocks=2)
    a, b, c = devnet.first, devnet.first + 1, devnet.first + 2
    for number in (a, b, a, c):  # b is the least recently used when c arrives
        await node.block(number, False)
    assert len(liar.calls) == 3
    await node.block(a, False)
    await node.block(c, False)
    assert len(liar.calls) == 3
    await node.block(b, False)
    assert len(liar.calls) == 4


# --- lies ----------------------------------------------------------------------------------

Rpc = Callable[..., Any]


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Any, Rpc], None]:
    def change(result: Any, rpc: Rpc) -> None:
        for key in path[:-1]:
            result = result[key]
        result[path[-1]] = value
    return change


def _rehashed_tx(result: dict[str, Any], rpc: Rpc) -> None:
    """A transaction altered with its hash made consistent and no sender claimed: only
    the root can tell."""
    tx = result["transactions"][0]
    tx["value"] = "0x1"
    tx["hash"] = "0x" + transaction_from_rpc(tx).hash.hex()
    del tx["from"]


def _swap_txs(result: dict[str, Any], rpc: Rpc) -> None:
    txs = result["transactions"]
    txs[0], txs[1] = txs[1], txs[0]


def _another_block(result: dict[str, Any], rpc: Rpc) -> Any:
    return rpc("eth_getBlockByNumber", "0x3", True)


def _not_linking(result: dict[str, Any], rpc: Rpc) -> Any:
    """A block that hashes right but to a header whose parent is not the anchored one."""
    header = dataclasses.replace(header_from_rpc(result), parent_hash=b"\x77" * 32)
    fixed = {**result, **header_to_rpc(header)}
    for tx in fixed["transactions"]:
        tx["blockHash"] = fixed["hash"]
    return fixed


def _hashes_only(result: dict[str, Any], rpc: Rpc) -> None:
    result["transactions"] = [t["hash"] for t in result["transactions"]]


def _add_withdrawal(result: dict[str, Any], rpc: Rpc) -> None:
    result["withdrawals"].append({"index": "0x0", "validatorIndex": "0x1",
                                  "address": OTHER_ADDRESS, "amount": "0x64"})


def _drop_log(receipt_at: int, fix_bloom: bool) -> Callable[[Any, Rpc], None]:
    """Drop the first log of a receipt; with ``fix_bloom`` a careful liar: the receipt's
    bloom and the later logs' indexes made consistent (the emitters log once per call)."""
    def change(result: Any, rpc: Rpc) -> None:
        receipt = result[receipt_at] if isinstance(result, list) else result
        receipt["logs"].pop(0)
        if fix_bloom:
            receipt["logsBloom"] = "0x" + "00" * 256
            for later in result[receipt_at + 1:] if isinstance(result, list) else ():
                for log in later["logs"]:
                    log["logIndex"] = hex(int(log["logIndex"], 16) - 1)
    return change


def _pop(path: tuple[Any, ...]) -> Callable[[Any, Rpc], None]:
    def change(result: Any, rpc: Rpc) -> None:
        for key in path:
            result = result[key]
        result.pop()
    return change


def _add_log(result: list[dict[str, Any]], rpc: Rpc) -> None:
    """A log added to the last receipt, its bloom and log index consistent."""
    log = copy.deepcopy(result[4]["logs"][0])
    log["data"] = "0x" + "42" * 32
    log["logIndex"] = "0x3"
    result[4]["logs"].append(log)


def _other_receipts(result: list[dict[str, Any]], rpc: Rpc) -> Any:
    return rpc("eth_getBlockReceipts", "0x3")


def _claim_block_3(result: dict[str, Any], rpc: Rpc) -> None:
    other = rpc("eth_getBlockByNumber", "0x3", False)
    result["blockHash"], result["blockNumber"] = other["hash"], other["number"]


def _bump(path: tuple[Any, ...]) -> Callable[[Any, Rpc], None]:
    def change(result: Any, rpc: Rpc) -> None:
        for key in path[:-1]:
            result = result[key]
        result[path[-1]] = hex(int(result[path[-1]], 16) + 1)
    return change


# Block 1 holds: 0 legacy transfer, 1 legacy/155 creation, 2 EIP-2930 call (log 0),
# 3 EIP-1559 call (log 1), 4 EIP-7702 call (log 2). (id, method lied about, change,
# action, words in the error)
LIES: list[tuple[str, str, Callable[[Any, Rpc], Any], str, str]] = [
    ("tx-altered", "eth_getBlockByHash", _set(("transactions", 0, "value"), "0x1"), "block",
     "transactions[0].hash mismatch"),
    ("tx-altered-rehashed", "eth_getBlockByHash", _rehashed_tx, "block", "transactionsRoot"),
    ("tx-dropped", "eth_getBlockByHash", _pop(("transactions",)), "block",
     "transactionsRoot"),
    ("txs-swapped", "eth_getBlockByHash", _swap_txs, "block", "transactionIndex"),
    ("tx-sender", "eth_getBlockByHash", _set(("transactions", 2, "from"), OTHER_ADDRESS),
     "block", "transactions[2].from"),
    ("tx-effective-price", "eth_getBlockByHash", _bump(("transactions", 3, "gasPrice")),
     "block", "gasPrice"),
    ("tx-timestamp", "eth_getBlockByHash", _bump(("transactions", 1, "blockTimestamp")),
     "block", "blockTimestamp"),
    ("hashes-for-full", "eth_getBlockByHash", _hashes_only, "block", "full transaction"),
    ("another-block", "eth_getBlockByHash", _another_block, "block", "is anchored as"),
    ("not-linking", "eth_getBlockByHash", _not_linking, "block", "is anchored as"),
    ("header-field", "eth_getBlockByHash", _set(("stateRoot",), ZERO_HASH), "block",
     "hash mismatch"),
    ("withdrawal-added", "eth_getBlockByHash", _add_withdrawal, "block", "withdrawalsRoot"),
    ("ommer-listed", "eth_getBlockByHash", _set(("uncles",), [ZERO_HASH]), "block",
     "sha3Uncles"),
    ("block-for-hashes", "eth_getBlockByHash", _set(("transactions", 0, "value"), "0x1"),
     "block-hashes", "transactions[0].hash"),
    ("block-under-a-receipt", "eth_getBlockByHash", _rehashed_tx, "receipt",
     "transactionsRoot"),
    ("status", "eth_getBlockReceipts", _set((0, "status"), "0x0"), "receipts",
     "receiptsRoot"),
    ("log-data", "eth_getBlockReceipts", _set((2, "logs", 0, "data"), ZERO_HASH), "receipts",
     "receiptsRoot"),
    ("log-dropped", "eth_getBlockReceipts", _drop_log(2, fix_bloom=False), "receipts",
     "receipts[2].logsBloom"),
    ("log-dropped-bloom-fixed", "eth_getBlockReceipts", _drop_log(2, fix_bloom=True),
     "receipts", "receiptsRoot"),
    ("log-added", "eth_getBlockReceipts", _add_log, "receipts", "receiptsRoot"),
    ("receipt-dropped", "eth_getBlockReceipts", _pop(()), "receipts", "receipts.length"),
    ("receipts-of-another-block", "eth_getBlockReceipts", _other_receipts, "receipts", ""),
    ("receipt-gas-used", "eth_getBlockReceipts", _bump((0, "gasUsed")), "receipts",
     "receipts[0].gasUsed"),
    ("receipt-from", "eth_getBlockReceipts", _set((1, "from"), OTHER_ADDRESS), "receipts",
     "receipts[1].from"),
    ("contract-address", "eth_getBlockReceipts", _set((1, "contractAddress"), OTHER_ADDRESS),
     "receipts", "receipts[1].contractAddress"),
    ("effective-price", "eth_getBlockReceipts", _bump((3, "effectiveGasPrice")), "receipts",
     "receipts[3].effectiveGasPrice"),
    ("log-index", "eth_getBlockReceipts", _set((3, "logs", 0, "logIndex"), "0x0"), "receipts",
     "logIndex"),
    ("log-block-number", "eth_getBlockReceipts", _bump((2, "logs", 0, "blockNumber")),
     "receipts", "blockNumber"),
    ("log-removed", "eth_getBlockReceipts", _set((4, "logs", 0, "removed"), True), "receipts",
     "removed"),
    ("receipts-under-logs", "eth_getBlockReceipts", _drop_log(3, fix_bloom=True), "logs",
     "receiptsRoot"),
    ("receipts-under-a-receipt", "eth_getBlockReceipts", _set((3, "status"), "0x0"),
     "receipt", "receiptsRoot"),
    ("claimed-index", "eth_getTransactionByHash", _set(("transactionIndex",), "0x0"), "tx",
     "is not transaction 0"),
    ("claimed-block", "eth_getTransactionByHash", _claim_block_3, "tx", "of block 3"),
    ("claimed-number", "eth_getTransactionByHash", _bump(("blockNumber",)), "tx",
     "blockNumber"),
    ("claimed-value", "eth_getTransactionByHash", _set(("value",), "0x5"), "tx", "hashes to"),
    ("claimed-sender", "eth_getTransactionByHash", _set(("from",), OTHER_ADDRESS), "tx",
     "transaction.from"),
    ("claimed-price", "eth_getTransactionByHash", _bump(("gasPrice",)), "tx",
     "transaction.gasPrice"),
    ("claimed-status", "eth_getTransactionReceipt", _set(("status",), "0x0"), "receipt",
     "differs from receipt 3"),
    ("claimed-log-dropped", "eth_getTransactionReceipt", _drop_log(0, fix_bloom=True),
     "receipt", "differs from receipt 3"),
    ("claimed-receipt-sender", "eth_getTransactionReceipt", _set(("from",), OTHER_ADDRESS),
     "receipt", "receipts[3].from"),
    ("claimed-receipt-index", "eth_getTransactionReceipt", _set(("transactionIndex",), "0x1"),
     "receipt", "is not transaction 1"),
]


@pytest.mark.devnet
@pytest.mark.parametrize(("method", "change", "action", "words"),
                         [pytest.param(*case[1:], id=case[0]) for case in LIES])
async def test_every_lie_is_refused_and_penalized(
        anvil: Anvil, devnet: Devnet, store: HeaderStore, method: str,
        change: Callable[[Any, Rpc], Any], action: str, words: str) -> None:
    liar = Liar(anvil.url, only(method, lambda result: change(result, anvil.rpc)))
    number = devnet.envelopes.block_number
    block = anvil.rpc("eth_getBlockByNumber", hex(number), False)
    tx_hash = h32(block["transactions"][3])
    node = VerifiedBlocks(liar, store)
    try:
        with pytest.raises(UpstreamLieError) as err:
            match action:
                case "block":
                    await node.block(number, True)
                case "block-hashes":
                    await node.block(h32(block["hash"]), False)
                case "receipts":
                    await node.block_receipts(number)
                case "logs":
                    await node.logs({"fromBlock": number, "toBlock": number})
                case "tx":
                    await node.transaction(tx_hash)
                case "receipt":
                    await node.receipt(tx_hash)
        assert words in str(err.value)
        assert str(err.value).startswith("upstream liar lied about ")
        assert "\n" not in str(err.value)
        assert len(liar.penalties) == 1 and words in liar.penalties[0]
    finally:
        await liar.inner.close()


@pytest.mark.devnet
async def test_a_lie_in_one_receipt_of_the_per_transaction_fallback_is_refused(
        anvil: Anvil, devnet: Devnet, store: HeaderStore) -> None:
    def lie(result: dict[str, Any]) -> None:
        if result["transactionIndex"] == "0x2":
            result["cumulativeGasUsed"] = hex(int(result["cumulativeGasUsed"], 16) - 1)
    liar = Liar(anvil.url, only("eth_getTransactionReceipt", lie),
                missing=("eth_getBlockReceipts",))
    try:
        with pytest.raises(UpstreamLieError, match=r"the receipts of block 1 .*: "
                                                   r"receipts\[2\]\.gasUsed mismatch"):
            await VerifiedBlocks(liar, store).block_receipts(devnet.envelopes.block_number)
        assert len(liar.penalties) == 1
    finally:
        await liar.inner.close()


@pytest.mark.devnet
async def test_nothing_from_a_lie_is_cached(anvil: Anvil, devnet: Devnet,
                                            store: HeaderStore) -> None:
    liar = Liar(anvil.url, only("eth_getBlockByHash", lambda r: _rehashed_tx(r, anvil.rpc)))
    node = VerifiedBlocks(liar, store)
    number = devnet.envelopes.block_number
    try:
        for _ in range(2):
            with pytest.raises(UpstreamLieError):
                await node.block(number, False)
        assert liar.calls == ["eth_getBlockByHash"] * 2
        liar.tamper = None  # the upstream turns honest (or the pool moved on)
        assert await node.block(number, True) == anvil_block(
            anvil.rpc("eth_getBlockByNumber", hex(number), True))
    finally:
        await liar.inner.close()


# --- what an unchanged client (web3 8) reads -----------------------------------------------

class NodeProvider(AsyncBaseProvider):
    """web3's view of the verified node: JSON-RPC methods answered by VerifiedBlocks."""

    def __init__(self, node: VerifiedBlocks) -> None:
        super().__init__()
        self.node = node

    async def make_request(self, method: Any, params: Any) -> Any:
        return {"jsonrpc": "2.0", "id": 1, "result": await self._answer(method, list(params))}

    async def is_connected(self, show_traceback: bool = False) -> bool:
        return True

    async def _answer(self, method: str, params: list[Any]) -> Any:
        def block(ref: str) -> int | bytes:
            return h32(ref) if len(ref) == 66 else int(ref, 16)
        match method:
            case "eth_chainId":
                return hex(CHAIN_ID)
            case "eth_getBlockByNumber" | "eth_getBlockByHash":
                return await self.node.block(block(params[0]), params[1])
            case "eth_getTransactionByHash":
                return await self.node.transaction(h32(params[0]))
            case "eth_getTransactionReceipt":
                return await self.node.receipt(h32(params[0]))
            case "eth_getBlockReceipts":
                return await self.node.block_receipts(block(params[0]))
            case "eth_getLogs":
                return await self.node.logs(params[0])
        raise AssertionError(f"web3 called {method}")


def _without(value: Any, *keys: str) -> dict[str, Any]:
    return {k: v for k, v in dict(value).items() if k not in keys}


@pytest.mark.devnet
async def test_web3_parses_the_nodes_answers_as_it_parses_anvils(
        node: VerifiedBlocks, anvil: Anvil, devnet: Devnet) -> None:
    ours = AsyncWeb3(NodeProvider(node))
    theirs = AsyncWeb3(AsyncHTTPProvider(anvil.url))
    try:
        number = devnet.envelopes.block_number
        for full in (True, False):
            block = await ours.eth.get_block(number, full_transactions=full)
            assert _without(block, "size") == _without(
                await theirs.eth.get_block(number, full_transactions=full),
                "size", "totalDifficulty")
        assert block.transactions
        for tx_hash in block.transactions:
            assert await ours.eth.get_transaction(tx_hash) == \
                await theirs.eth.get_transaction(tx_hash)
            receipt = await ours.eth.get_transaction_receipt(tx_hash)
            assert _without(receipt) == _without(
                await theirs.eth.get_transaction_receipt(tx_hash), "blobGasPrice",
                "blockTimestamp")
            assert receipt.status == 1 and receipt.gasUsed > 0
        assert [_without(r) for r in await ours.eth.get_block_receipts(number)] == [
            _without(r, "blobGasPrice", "blockTimestamp")
            for r in await theirs.eth.get_block_receipts(number)]
        query = {"fromBlock": devnet.first, "toBlock": devnet.last,
                 "address": [AsyncWeb3.to_checksum_address(devnet.emitters["k4"])],
                 "topics": [None, [TOPICS[0], TOPICS[2]]]}
        logs = await ours.eth.get_logs(query)  # type: ignore[arg-type]
        assert logs and logs == await theirs.eth.get_logs(query)  # type: ignore[arg-type]
    finally:
        await theirs.provider.disconnect()


# --- go-ethereum's answers on the hive chain (no devnet) -----------------------------------

class Recorded(AlwaysReachable):
    """An upstream answering from recorded results keyed by the method and its string
    parameters (a block hash, an index)."""

    def __init__(self, answers: dict[tuple[str, str], Any]) -> None:
        self.answers = answers
        self.penalties: list[str] = []

    async def call(self, method: str, params: Any) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Any) -> list[Answer]:
        return [Answer(copy.deepcopy(self.answers.get(
            (m, *[x for x in p if isinstance(x, str)]))), "recorded") for m, p in calls]

    def penalize(self, answer: Answer, what: str) -> None:
        self.penalties.append(what)


class Headers:
    """Anchored headers held in memory: the interface without a HeaderStore."""

    def __init__(self, headers: list[Header]) -> None:
        self.by_hash = {h.hash: h for h in headers}

    def get(self, block_hash: bytes) -> Header | None:
        return self.by_hash.get(block_hash)

    def by_number(self, number: int) -> Header | None:
        return next((h for h in self.by_hash.values() if h.number == number), None)


GETH_BLOCKS = {1: ("eth_getBlockByHash/get-block-by-hash",
                   "eth_getBlockReceipts/get-block-receipts-by-hash"),
               54: ("eth_getBlockByNumber/get-latest",
                    "eth_getBlockReceipts/get-block-receipts-latest")}
GETH_SINGLES = ("eth_getTransactionByHash/get-legacy-create",
                "eth_getTransactionByHash/get-legacy-input",
                "eth_getTransactionReceipt/get-legacy-contract",
                "eth_getTransactionReceipt/get-legacy-input")


def _case(name: str) -> Any:
    """A recorded result (a copy: the cases are cached)."""
    return copy.deepcopy(io_case(*name.split("/")).result)


@pytest.fixture(scope="module")
def hive_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeaderStore]:
    path = tmp_path_factory.mktemp("hive") / "headers.sqlite"
    with HeaderStore(path, hive_chain_config()) as s:
        head = hive_header(54)
        s.add_anchor(Anchor(54, head.hash, AnchorSource.USER, "hive chain"), head)
        s.add_many(hive_header(n) for n in range(53, -1, -1))
        yield s


@pytest.fixture
def geth() -> Recorded:
    answers = {}
    for block_case, receipts_case in GETH_BLOCKS.values():
        block = _case(block_case)
        answers[("eth_getBlockByHash", block["hash"])] = block
        answers[("eth_getBlockReceipts", block["hash"])] = _case(receipts_case)
    for name in GETH_SINGLES:
        result = _case(name)
        answers[(name.split("/")[0], result["transactionHash" if "Receipt" in name
                                            else "hash"])] = result
    return Recorded(answers)


async def test_rendering_equals_go_ethereums_on_the_hive_chain(
        geth: Recorded, hive_store: HeaderStore) -> None:
    """Pre-Byzantium receipts (root), pre-EIP-155 and EIP-155 legacy transactions,
    creations, a Prague block: byte for byte what go-ethereum answered."""
    node = VerifiedBlocks(geth, hive_store)
    for number, (block_case, receipts_case) in GETH_BLOCKS.items():
        block = _case(block_case)
        assert await node.block(number, True) == block
        assert await node.block(h32(block["hash"]), False) == {
            **block, "transactions": [t["hash"] for t in block["transactions"]]}
        assert await node.block_receipts(number) == _case(receipts_case)
    for name in GETH_SINGLES:
        result = _case(name)
        if "Receipt" in name:
            assert await node.receipt(h32(result["transactionHash"])) == result
        else:
            assert await node.transaction(h32(result["hash"])) == result
    logs = await node.logs({"fromBlock": 54, "toBlock": 54})
    assert logs == [log for r in _case(GETH_BLOCKS[54][1]) for log in r["logs"]]
    assert geth.penalties == []


async def test_a_lie_on_the_hive_chain_is_refused(hive_store: HeaderStore) -> None:
    block = _case(GETH_BLOCKS[54][0])
    receipts = _case(GETH_BLOCKS[54][1])
    next(r for r in receipts if r["logs"])["logs"][0]["data"] = "0x" + "42" * 32
    upstream = Recorded({("eth_getBlockByHash", block["hash"]): block,
                         ("eth_getBlockReceipts", block["hash"]): receipts})
    with pytest.raises(UpstreamLieError, match="receiptsRoot mismatch"):
        await VerifiedBlocks(upstream, hive_store).block_receipts(54)
    assert len(upstream.penalties) == 1


# --- ommers (before the Merge), on a block made for the test ------------------------------

def _block_with_ommers(ommers: list[Header]) -> tuple[Header, dict[str, Any]]:
    """Block 2 of the hive chain rebuilt empty with ``ommers`` (its hash changes, and the
    test anchors it)."""
    empty_root = ordered_trie_root([])
    header = dataclasses.replace(
        hive_header(2), ommers_hash=keccak256(rlp.encode([rlp.decode(o.rlp) for o in ommers])),
        transactions_root=empty_root, receipts_root=empty_root, gas_used=0,
        logs_bloom=bytes(256))
    block = {**header_to_rpc(header), "transactions": [],
             "uncles": ["0x" + o.hash.hex() for o in ommers]}
    return header, block


async def test_ommers_are_fetched_and_hashed_to_sha3_uncles() -> None:
    ommers = [dataclasses.replace(hive_header(1), extra_data=b"ommer %d" % i) for i in (0, 1)]
    header, block = _block_with_ommers(ommers)
    answers = {("eth_getBlockByHash", block["hash"]): block,
               ("eth_getBlockReceipts", block["hash"]): []}
    for i, ommer in enumerate(ommers):
        answers[("eth_getUncleByBlockHashAndIndex", block["hash"], hex(i))] = \
            header_to_rpc(ommer)
    node = VerifiedBlocks(Recorded(answers), Headers([header]))
    served = await node.block(header.number, True)
    assert served["uncles"] == block["uncles"] and served["sha3Uncles"] == block["sha3Uncles"]
    assert int(served["size"], 16) == len(rlp.encode([
        rlp.decode(header.rlp), [], [rlp.decode(o.rlp) for o in ommers]]))
    assert await node.block_receipts(header.number) == []

    forged = dataclasses.replace(ommers[1], extra_data=b"forged")  # hashes right, not listed
    liar = Recorded({**answers, ("eth_getUncleByBlockHashAndIndex", block["hash"], "0x1"):
                      header_to_rpc(forged)})
    with pytest.raises(UpstreamLieError, match=r"lied about ommer 1 of block 2: uncles"):
        await VerifiedBlocks(liar, Headers([header])).block(header.number, False)
    assert len(liar.penalties) == 1

    swapped = {**block, "uncles": block["uncles"][::-1]}  # both genuine, listed out of order
    liar = Recorded({**answers, ("eth_getBlockByHash", block["hash"]): swapped,
                      ("eth_getUncleByBlockHashAndIndex", block["hash"], "0x0"):
                      header_to_rpc(ommers[1]),
                      ("eth_getUncleByBlockHashAndIndex", block["hash"], "0x1"):
                      header_to_rpc(ommers[0])})
    with pytest.raises(UpstreamLieError, match="the ommers of block 2: sha3Uncles mismatch"):
        await VerifiedBlocks(liar, Headers([header])).block(header.number, False)
    assert len(liar.penalties) == 1


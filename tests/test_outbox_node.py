"""The outbox through a running node (issue #15 point 1): a replacement with a 10 % fee bump
replaces, with less it is refused "replacement transaction underpriced" (a JSON-RPC error);
``eth_getTransactionByHash`` answers a queued transaction in its pending form, out of
contact too, and the verified form once mined; a transaction whose nonce another one took is
dropped with the reason; ``orbital node outbox list|show|drop`` against the running node's
file, including a drop while the node is broadcasting that very entry. And in process, with a
trust source that also names a finalized block: entries become final at the finalized
anchor, go back to sent when a reorg removes their block (and are mined again), and expire
after ``VerifiedNode.max_age``.

Every test is a real anvil, a real node process or :class:`VerifiedNode` over real sockets,
real SQLite files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from node.chain.anchor import Anchor, AnchorSource
from node.chain.header_store import HeaderStore
from node.chain.rpcjson import parse_data
from node.cli.node import OUTBOX_STATES
from node.demo.liar import LyingUpstream
from node.devnet import Anvil
from node.outbox.store import STATES, InvalidTransition, Outbox
from node.rpc.heads import TrustedHeads
from node.rpc.upstream_api import DirectUpstream
from node.rpc.verified_node import VerifiedNode
from node.testing.node_process import REPO, NodeProcess, NodeRpcError, start_node

pytestmark = [pytest.mark.devnet, pytest.mark.slow]
GWEI = 10**9


def passthrough(method: str, params: list[Any], result: Any) -> Any:
    return result


@pytest.fixture
def link(anvil: Anvil) -> Iterator[LyingUpstream]:
    """The node's link to anvil; ``.down = True`` is out of contact."""
    anvil.rpc("evm_mine")
    with LyingUpstream(anvil.url, passthrough) as proxy:
        yield proxy


@pytest.fixture
def node(link: LyingUpstream, tmp_path: Path) -> Iterator[NodeProcess]:
    process = start_node([link.url], tmp_path / "data", "--refresh", "0.3")
    try:
        yield process
    finally:
        assert process.stop() == 0


def transfer(account: Any, nonce: int, *, fee: int = 10 * GWEI, tip: int = GWEI,
             value: int = 1, to: str = "0x" + "42" * 20) -> str:
    signed = account.sign_transaction({
        "nonce": nonce, "gas": 21000, "value": value, "type": 2,
        "to": Web3.to_checksum_address(to), "chainId": 31337,
        "maxFeePerGas": fee, "maxPriorityFeePerGas": tip})
    return "0x" + signed.raw_transaction.hex()


def nonce_of(anvil: Anvil, address: str) -> int:
    return int(anvil.rpc("eth_getTransactionCount", address, "latest"), 16)


def wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return got


def states(node: NodeProcess) -> dict[str, dict[str, Any]]:
    return {e["hash"]: e for e in node.rpc("orbital_outbox")}


def mined_hashes(anvil: Anvil, first: int, sender: str) -> list[str]:
    last = int(anvil.rpc("eth_blockNumber"), 16)
    return [tx["hash"] for n in range(first, last + 1)
            for tx in anvil.rpc("eth_getBlockByNumber", hex(n), True)["transactions"]
            if tx["from"].lower() == sender.lower()]


def outbox_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli.main", "node", "outbox", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


# -- replacement ---------------------------------------------------------------------------

def test_a_ten_percent_bump_replaces_and_less_is_refused(anvil: Anvil, link: LyingUpstream,
                                                         node: NodeProcess) -> None:
    sender = Account.from_key(anvil.private_keys[7])
    nonce = int(node.rpc("eth_getTransactionCount", sender.address, "latest"), 16)
    first_block = int(anvil.rpc("eth_blockNumber"), 16) + 1
    link.down = True  # queued, not mined, so there is something to replace
    old = node.rpc("eth_sendRawTransaction", transfer(sender, nonce, fee=10 * GWEI, tip=GWEI))
    for fee, tip in ((10 * GWEI, GWEI),  # same caps, another value: a different hash
                     (11 * GWEI - 1, 11 * GWEI // 10),  # maxFee short of 10 % by 1 wei
                     (20 * GWEI, 11 * GWEI // 10 - 1)):  # tip short of 10 % by 1 wei
        with pytest.raises(NodeRpcError) as refused:
            node.rpc("eth_sendRawTransaction", transfer(sender, nonce, fee=fee, tip=tip,
                                                        value=2))
        assert refused.value.code == -32000
        assert "replacement transaction underpriced" in refused.value.error_message
    new = node.rpc("eth_sendRawTransaction",
                   transfer(sender, nonce, fee=11 * GWEI, tip=11 * GWEI // 10, value=3))
    entries = states(node)
    assert entries[old]["state"] == "dropped" and entries[old]["reason"] == f"replaced by {new}"
    assert entries[new]["state"] == "queued"
    assert len([e for e in entries.values() if e["from"] == sender.address.lower()]) == 2

    link.down = False
    wait(lambda: states(node)[new]["state"] == "included", "the replacement was not included")
    assert mined_hashes(anvil, first_block, sender.address) == [new]  # only one ever mined
    assert nonce_of(anvil, sender.address) == nonce + 1
    assert states(node)[old]["state"] == "dropped"
    assert node.rpc("eth_getTransactionByHash", old) is None


# -- eth_getTransactionByHash --------------------------------------------------------------

def test_get_transaction_by_hash_queued_form_then_verified_form(anvil: Anvil,
                                                                link: LyingUpstream,
                                                                node: NodeProcess) -> None:
    sender = Account.from_key(anvil.private_keys[8])
    nonce = int(node.rpc("eth_getTransactionCount", sender.address, "latest"), 16)
    link.down = True
    raw = transfer(sender, nonce, fee=9 * GWEI, tip=2 * GWEI, value=12345)
    tx_hash = node.rpc("eth_sendRawTransaction", raw)
    queued = node.rpc("eth_getTransactionByHash", tx_hash)  # out of contact: from the outbox
    assert queued["blockHash"] is None and queued["blockNumber"] is None
    assert queued["transactionIndex"] is None and queued["blockTimestamp"] is None
    assert (queued["hash"], queued["from"], queued["nonce"], queued["value"]) == (
        tx_hash, sender.address.lower(), hex(nonce), hex(12345))
    assert (queued["maxFeePerGas"], queued["maxPriorityFeePerGas"], queued["gasPrice"]) == (
        hex(9 * GWEI), hex(2 * GWEI), hex(9 * GWEI))

    link.down = False
    wait(lambda: states(node)[tx_hash]["state"] == "included", "not included")
    mined = node.rpc("eth_getTransactionByHash", tx_hash)
    theirs = anvil.rpc("eth_getTransactionByHash", tx_hash)
    assert mined["blockHash"] == theirs["blockHash"] is not None
    assert mined["transactionIndex"] == theirs["transactionIndex"]
    assert mined["gasPrice"] == theirs["gasPrice"]  # now the effective price
    # nothing invented: the queued form's keys are the mined form's, block fields aside
    assert set(queued) == set(mined) and all(
        queued[k] == mined[k] for k in mined
        if k not in ("blockHash", "blockNumber", "blockTimestamp", "transactionIndex",
                     "gasPrice"))
    with pytest.raises(NodeRpcError) as bad:
        node.rpc("eth_getTransactionByHash", "0x1234")
    assert bad.value.code == -32602
    assert node.rpc("eth_getTransactionByHash", "0x" + "ab" * 32) is None


def test_a_nonce_taken_by_another_transaction_drops_the_entry(anvil: Anvil,
                                                              link: LyingUpstream,
                                                              node: NodeProcess) -> None:
    sender = Account.from_key(anvil.private_keys[9])
    nonce = int(node.rpc("eth_getTransactionCount", sender.address, "latest"), 16)
    link.down = True
    ours = node.rpc("eth_sendRawTransaction", transfer(sender, nonce, value=1))
    theirs = anvil.rpc("eth_sendRawTransaction", transfer(sender, nonce, value=2))  # elsewhere
    assert anvil.receipt(theirs)["status"] == "0x1"
    link.down = False
    entry = wait(lambda: (e := states(node)[ours])["state"] == "dropped" and e,
                 "the entry was not dropped")
    assert entry["reason"] == f"nonce taken by another transaction (verified nonce {nonce + 1})"
    assert node.rpc("eth_getTransactionByHash", ours) is None
    assert anvil.rpc("eth_getTransactionByHash", ours) is None  # never sent after all


# -- orbital node outbox -------------------------------------------------------------------

def test_outbox_cli_lists_shows_and_drops_while_the_node_runs(anvil: Anvil,
                                                              link: LyingUpstream,
                                                              node: NodeProcess) -> None:
    assert OUTBOX_STATES == STATES  # the parser's list (kept light) is the store's
    sender = Account.from_key(anvil.private_keys[3])
    nonce = int(node.rpc("eth_getTransactionCount", sender.address, "latest"), 16)
    first_block = int(anvil.rpc("eth_blockNumber"), 16) + 1
    data_dir = str(node.data_dir)
    link.down = True
    hashes = [node.rpc("eth_sendRawTransaction", transfer(sender, nonce + i, value=7 + i))
              for i in range(3)]

    listed = outbox_cli("list", "--data-dir", data_dir, "--state", "queued")
    assert listed.returncode == 0, listed.stderr
    assert all(h in listed.stdout for h in hashes)
    as_json = json.loads(outbox_cli("list", "--outbox", f"{data_dir}/outbox.sqlite",
                                    "--json").stdout)
    assert {e["hash"] for e in as_json} >= set(hashes)
    shown = json.loads(outbox_cli("show", "--data-dir", data_dir, hashes[1]).stdout)
    assert shown["state"] == "queued" and shown["transaction"]["value"] == hex(8)
    assert shown["transaction"]["blockHash"] is None

    dropped = outbox_cli("drop", "--data-dir", data_dir, hashes[2])
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith(f"dropped {hashes[2]} (was queued")
    for args, message in (
            (("drop", "--data-dir", data_dir, hashes[2]), f"cannot drop {hashes[2]}: it is "
                                                          "dropped"),
            (("drop", "--data-dir", data_dir, "0x" + "00" * 32), "no outbox entry 0x00"),
            (("show", "--data-dir", data_dir, "0x" + "00" * 32), "no outbox entry 0x00"),
            (("drop", "--data-dir", data_dir, "0xzz"), "bad transaction hash '0xzz'"),
            (("drop", "--data-dir", data_dir, hashes[2][2:]), "bad transaction hash"),
            (("list", "--data-dir", data_dir + "/nowhere"), "no outbox at")):
        done = outbox_cli(*args)
        assert done.returncode == 2, (args, done.stdout)
        assert message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    assert outbox_cli("list", "--data-dir", data_dir, "--state", "lost").returncode == 2

    link.down = False
    wait(lambda: all(states(node)[h]["state"] == "included" for h in hashes[:2]),
         "the first two were not included")
    drop_included = outbox_cli("drop", "--data-dir", data_dir, hashes[0])
    assert drop_included.returncode == 2 and "it is included" in drop_included.stderr
    time.sleep(1.0)  # a few more passes: the dropped one is never sent
    assert mined_hashes(anvil, first_block, sender.address) == hashes[:2]
    assert states(node)[hashes[2]]["state"] == "dropped"
    assert nonce_of(anvil, sender.address) == nonce + 2


def test_dropping_an_entry_the_node_is_broadcasting(anvil: Anvil, tmp_path: Path) -> None:
    """The drop lands between the node reading the entry and the upstream's answer (the link
    is slow): the drop stands, nothing is corrupted, and since the upstream did take it, it
    is mined and the node records it included."""
    sender = Account.from_key(anvil.private_keys[4])
    with LyingUpstream(anvil.url, passthrough) as slow:
        node = start_node([slow.url], tmp_path / "data", "--refresh", "0.3")
        try:
            nonce = int(node.rpc("eth_getTransactionCount", sender.address, "latest"), 16)
            slow.delay = 1.5
            raw = transfer(sender, nonce, value=99)
            answer: dict[str, Any] = {}
            sending = threading.Thread(target=lambda: answer.update(
                hash=node.rpc("eth_sendRawTransaction", raw)))
            sending.start()
            box = tmp_path / "data" / "outbox.sqlite"
            with Outbox(box) as outbox:
                wait(lambda: outbox.entries("queued"), "the entry never appeared", 20)
                (entry,) = outbox.entries("queued")
            dropped = outbox_cli("drop", "--outbox", str(box), "0x" + entry.hash.hex())
            assert dropped.returncode == 0, dropped.stderr
            sending.join(60)
            assert answer["hash"] == "0x" + entry.hash.hex()
            slow.delay = 0
            got = wait(lambda: (e := states(node)[answer["hash"]])["state"] == "included"
                       and e, "acknowledged, so mined and then seen included")
            assert got["sentAt"] is not None
            assert anvil.receipt(answer["hash"])["status"] == "0x1"
            assert nonce_of(anvil, sender.address) == nonce + 1
            with Outbox(box) as outbox:  # the file is sound
                assert outbox._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            assert node.stop() == 0


# -- in process: finality, reorgs, expiry --------------------------------------------------

class AnvilHeads:
    """A trust source for this test: anvil's latest block, and as finalized the block
    ``final`` (or none). Only what it anchors is trusted; the node verifies the rest."""

    mode = "test"

    def __init__(self, anvil: Anvil) -> None:
        self.anvil = anvil
        self.final: int | None = None

    def _anchor(self, tag: str) -> Anchor:
        block = self.anvil.rpc("eth_getBlockByNumber", tag, False)
        return Anchor(int(block["number"], 16), parse_data(block["hash"], "hash", 32),
                      AnchorSource.USER, f"anvil {tag}")

    async def heads(self) -> TrustedHeads:
        final = None if self.final is None else self._anchor(hex(self.final))
        return TrustedHeads(self._anchor("latest"), final)


async def test_final_reorged_and_expired_entries(anvil: Anvil, tmp_path: Path) -> None:
    from node.chain.forks import load_chain_config
    from node.chain.header_rules import calculate_base_fee_per_gas

    sender = Account.from_key(anvil.private_keys[5])
    heads = AnvilHeads(anvil)
    anvil.rpc("evm_mine")  # state proofs are asked at the head: not genesis
    now = [time.time()]
    with HeaderStore(tmp_path / "headers.sqlite", load_chain_config("anvil")) as store, \
            Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DirectUpstream(anvil.url) as upstream:
            node = VerifiedNode(upstream, heads, store, 31337, outbox=outbox,
                                clock=lambda: now[0], max_age=3600.0)
            assert node.max_age == 3600.0 and VerifiedNode.max_age == 86_400.0
            await node.refresh()
            send = node.methods()["eth_sendRawTransaction"].handler
            nonce = nonce_of(anvil, sender.address)
            snapshot = anvil.rpc("evm_snapshot")
            first = await send([transfer(sender, nonce, value=1)])
            await node.refresh()  # anvil mined it: the receipt is verified
            entry = outbox.get(parse_data(first, "hash", 32))
            assert entry.state == "included"
            mined_at, mined_in = entry.block_number, entry.block_hash

            anvil.rpc("evm_revert", snapshot)  # a reorg: its block is replaced
            parent = anvil.rpc("eth_getBlockByNumber", "latest", False)
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(calculate_base_fee_per_gas(
                int(parent["gasLimit"], 16), int(parent["gasUsed"], 16),
                int(parent["baseFeePerGas"], 16))))  # anvil keeps the reverted fee otherwise
            for _ in range(2):
                anvil.rpc("evm_mine")
            await node.refresh()  # put back (sent), broadcast again, mined again
            assert outbox.get(entry.hash).state in ("sent", "included")
            await node.refresh()  # the block that holds it is anchored now
            again = outbox.get(entry.hash)
            assert again.state == "included", again
            assert again.block_hash != mined_in and again.block_number > mined_at
            assert anvil.receipt(first)["status"] == "0x1"

            heads.final = again.block_number - 1  # finality below it: still included
            await node.refresh()
            assert outbox.get(entry.hash).state == "included"
            heads.final = again.block_number
            await node.refresh()
            assert outbox.get(entry.hash).state == "final"
            with pytest.raises(InvalidTransition, match="it is final"):
                outbox.drop(entry.hash)

            upstream.url = "http://127.0.0.1:9/"  # out of contact: nothing answers
            old = await send([transfer(sender, nonce + 1, value=2)])
            queued = outbox.get(parse_data(old, "hash", 32))
            assert queued.state == "queued"
            now[0] = queued.queued_at + 3599
            await node.flush_outbox()
            assert outbox.get(parse_data(old, "hash", 32)).state == "queued"
            now[0] += 2
            await node.flush_outbox()  # expiry needs no contact
            expired = outbox.get(parse_data(old, "hash", 32))
            assert expired.state == "expired" and expired.reason.startswith("queued before")


async def test_an_entry_mined_below_the_kept_history_is_found_not_dropped(
        anvil: Anvil, tmp_path: Path) -> None:
    """Out of contact longer than the history it keeps (8 blocks here), the node anchors a
    head far above the block that holds its transaction: it links the anchored chain back
    to that block and verifies the receipt, instead of calling the nonce taken."""
    from node.chain.forks import load_chain_config

    sender = Account.from_key(anvil.private_keys[6])
    anvil.rpc("evm_mine")
    with HeaderStore(tmp_path / "headers.sqlite", load_chain_config("anvil")) as store, \
            Outbox(tmp_path / "outbox.sqlite") as outbox:
        async with DirectUpstream(anvil.url) as upstream:
            node = VerifiedNode(upstream, AnvilHeads(anvil), store, 31337, outbox=outbox,
                                history=8)
            await node.refresh()
            sent = await node.methods()["eth_sendRawTransaction"].handler(
                [transfer(sender, nonce_of(anvil, sender.address), value=3)])
            mined_at = int(anvil.receipt(sent)["blockNumber"], 16)
            anvil.rpc("anvil_mine", hex(40))  # the outage: 40 blocks, history 8
            await node.refresh()
            entry = outbox.get(parse_data(sent, "hash", 32))
            assert entry.state == "included", entry
            assert entry.block_number == mined_at
            assert store.canonical_hash(mined_at) == entry.block_hash
            assert entry.block_hash == parse_data(
                anvil.rpc("eth_getBlockByNumber", hex(mined_at), False)["hash"], "hash", 32)


class ClaimsMined(DirectUpstream):
    """anvil through one lie: transaction ``target`` is said to be transaction 0 of block
    ``claimed`` (a real block that does not hold it)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "liar")
        self.target: str | None = None
        self.claimed: dict[str, Any] | None = None
        self.block_reads: list[int] = []

    async def batch(self, calls: Any) -> list[Any]:
        answers = await super().batch(calls)
        for i, (method, params) in enumerate(calls):
            if method == "eth_getBlockByNumber" and params[0] not in (
                    "latest", "safe", "finalized", "earliest", "pending"):
                self.block_reads.append(int(params[0], 16))
            if method in ("eth_getTransactionByHash", "eth_getTransactionReceipt") \
                    and params[0] == self.target and self.claimed is not None:
                answers[i] = replace(answers[i], result={
                    **(answers[i].result or {}), "hash": self.target,
                    "transactionHash": self.target, "blockHash": self.claimed["hash"],
                    "blockNumber": self.claimed["number"], "transactionIndex": "0x0"})
        return answers


@pytest.mark.parametrize("how_far", ["within", "beyond"])
async def test_a_lying_upstream_placing_our_transaction_in_an_old_block(
        anvil: Anvil, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, how_far: str) -> None:
    """An upstream says a transaction still in the mempool was mined in an old block, below
    the history the node keeps. Within LINK_BACK_LIMIT (16 here) the node links the anchored
    chain back to that block, finds the transaction is not in it, penalises the upstream and
    keeps the entry 'sent'; beyond the limit it does not even link back (an upstream cannot
    make it download thousands of headers per lie). Either way nothing is 'included', and
    the lie does not stop the flush of the other entries (it failed the whole pass)."""
    import node.rpc.verified_node as verified_node
    from node.chain.forks import load_chain_config

    monkeypatch.setattr(verified_node, "LINK_BACK_LIMIT", 16)
    sender = Account.from_key(anvil.private_keys[7])
    anvil.rpc("anvil_setBalance", sender.address, hex(10**18))
    anvil.rpc("evm_mine")
    old = anvil.rpc("eth_getBlockByNumber", "latest", False)
    anvil.rpc("anvil_mine", hex(10 if how_far == "within" else 40))
    anvil.rpc("evm_setAutomine", False)
    try:
        with HeaderStore(tmp_path / "headers.sqlite", load_chain_config("anvil")) as store, \
                Outbox(tmp_path / "outbox.sqlite") as outbox:
            async with ClaimsMined(anvil.url) as upstream:
                node = VerifiedNode(upstream, AnvilHeads(anvil), store, 31337, outbox=outbox,
                                    history=4)
                await node.refresh()
                sent = await node.methods()["eth_sendRawTransaction"].handler(
                    [transfer(sender, nonce_of(anvil, sender.address), value=5)])
                upstream.target, upstream.claimed = sent, old
                upstream.block_reads.clear()
                await node.refresh()
                entry = outbox.get(parse_data(sent, "hash", 32))
                assert entry.state == "sent", entry
                old_number = int(old["number"], 16)
                if how_far == "within":
                    assert store.canonical_hash(old_number) == parse_data(old["hash"], "hash",
                                                                          32)
                    assert upstream.lies, "the lie was not penalised"
                else:
                    assert store.canonical_hash(old_number) is None
                    assert not [n for n in upstream.block_reads if n <= old_number + 1]
                assert "outbox flush failed" not in caplog.text
    finally:
        anvil.rpc("evm_setAutomine", True)
        anvil.rpc("evm_mine")

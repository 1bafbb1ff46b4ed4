"""The outbox against a real anvil (issue #15): 1,000 transactions from several senders queued
while offline, flushed in passes too short for all of them; and a SIGKILL of a process holding
queued transactions mid-flush, then a restart: every accepted transaction mined exactly once,
no duplicate nonce, each sender's nonce order kept.

``receipts`` here is anvil's own ``eth_getTransactionReceipt`` (unverified): the node's
verified path (``VerifiedBlocks.receipt``) is wired in by the node, not by the outbox, whose
contract is only "a callable returning a receipt or None".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import coincurve
import pytest
from test_outbox import sign_tx

from node.devnet import Anvil
from node.outbox import Outbox, admit, flush
from node.rpc.upstream_api import AlwaysReachable, Answer, DirectUpstream

pytestmark = [pytest.mark.devnet, pytest.mark.slow]
GWEI = 10**9


def keys(anvil: Anvil, count: int) -> list[coincurve.PrivateKey]:
    return [coincurve.PrivateKey(bytes.fromhex(k.removeprefix("0x")))
            for k in anvil.private_keys[:count]]


def signed_batch(anvil: Anvil, senders: Sequence[coincurve.PrivateKey], per_sender: int,
                 to: bytes) -> list[bytes]:
    """``per_sender`` transfers from each sender, nonces from its current one, interleaved."""
    starts = [int(anvil.rpc("eth_getTransactionCount",
                            "0x" + _address(k).hex(), "latest"), 16) for k in senders]
    return [sign_tx(k, nonce=start + i, maxFeePerGas=50 * GWEI, maxPriorityFeePerGas=GWEI,
                    chainId=anvil.chain_id, to=to, value=1)
            for i in range(per_sender) for k, start in zip(senders, starts, strict=True)]


def _address(key: coincurve.PrivateKey) -> bytes:
    from node.chain.hashing import keccak256
    return keccak256(key.public_key.format(compressed=False)[1:])[12:]


def anvil_receipts(upstream: DirectUpstream):
    """anvil's receipt, unverified (see the module docstring)."""
    async def receipts(tx_hash: bytes) -> dict[str, Any] | None:
        answer = await upstream.call("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        return answer.value("eth_getTransactionReceipt")
    return receipts


class Recording(AlwaysReachable):
    """A :class:`DirectUpstream` that remembers every raw transaction sent, in order."""

    def __init__(self, inner: DirectUpstream) -> None:
        self.inner = inner
        self.sent: list[str] = []

    async def call(self, method: str, params: Sequence[Any]) -> Answer:
        return (await self.batch([(method, params)]))[0]

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Answer]:
        self.sent.extend(p[0] for m, p in calls if m == "eth_sendRawTransaction")
        return await self.inner.batch(calls)

    def penalize(self, answer: Answer, what: str) -> None:
        self.inner.penalize(answer, what)


def mined_by(anvil: Anvil, first_block: int, senders: set[str]) -> list[dict[str, Any]]:
    """Every transaction from ``senders`` in blocks ``first_block``..latest."""
    last = int(anvil.rpc("eth_blockNumber"), 16)
    out = []
    for n in range(first_block, last + 1):
        block = anvil.rpc("eth_getBlockByNumber", hex(n), True)
        out += [tx for tx in block["transactions"] if tx["from"].lower() in senders]
    return out


def check_exactly_once(anvil: Anvil, raws: Sequence[bytes], first_block: int) -> None:
    hashes = {"0x" + admit(r, chain_id=anvil.chain_id, verified_nonce=0).hash.hex()
              for r in raws}
    senders = {"0x" + admit(r, chain_id=anvil.chain_id, verified_nonce=0).sender.hex()
               for r in raws}
    mined = mined_by(anvil, first_block, senders)
    assert sorted(tx["hash"] for tx in mined) == sorted(hashes)  # each once, nothing else
    pairs = [(tx["from"], int(tx["nonce"], 16)) for tx in mined]
    assert len(set(pairs)) == len(pairs)  # no duplicate nonce


async def flush_until_done(anvil: Anvil, box: Outbox, upstream: Any, receipts: Any, *,
                           budget: float, max_passes: int = 200) -> int:
    """Contacts until the outbox is empty; the chain makes a block between contacts, as a
    real one does (under :meth:`Anvil.mining_on_request`)."""
    for passes in range(1, max_passes + 1):
        if passes > 1:
            anvil.rpc("evm_mine")
        report = await flush(box, upstream, budget_seconds=budget, receipts=receipts,
                             batch_size=25)
        if report.complete and report.remaining == 0 and report.awaiting == 0:
            return passes
    stuck = sorted((e.sender.hex()[:8], e.nonce, e.attempts, e.last_error)
                   for e in box.entries("sent") + box.entries("queued"))
    raise AssertionError(f"outbox not empty after {max_passes} passes: {box.counts()}, "
                         f"report {report.to_json()}, stuck {stuck[:5]}..{stuck[-3:]}")


async def test_thousand_queued_offline_flush_in_passes(anvil: Anvil, tmp_path: Path) -> None:
    senders = keys(anvil, 5)
    raws = signed_batch(anvil, senders, 200, to=b"\x42" * 20)
    first_block = int(anvil.rpc("eth_blockNumber"), 16) + 1
    with Outbox(tmp_path / "outbox.sqlite") as box:
        nonces: dict[bytes, int] = {}
        for raw in raws:  # offline: only admission and the durable add
            sender = admit(raw, chain_id=anvil.chain_id, verified_nonce=0).sender
            verified = nonces.setdefault(sender, int(anvil.rpc(
                "eth_getTransactionCount", "0x" + sender.hex(), "latest"), 16))
            box.add(admit(raw, chain_id=anvil.chain_id, verified_nonce=verified))
        assert box.counts()["queued"] == 1000
        for sender, start in nonces.items():
            assert box.pending_nonce(sender, start) == start + 200

        async with DirectUpstream(anvil.url) as direct:
            upstream = Recording(direct)
            with anvil.mining_on_request():
                passes = await flush_until_done(anvil, box, upstream, anvil_receipts(direct),
                                                budget=0.4)
        assert passes > 1, "the budget was meant to be too short for one pass"
        assert box.counts()["included"] == 1000

    # nonce order kept: each sender's first broadcasts come in ascending nonce order
    first_seen: dict[bytes, list[int]] = {}
    seen: set[str] = set()
    for raw_hex in upstream.sent:
        if raw_hex in seen:
            continue
        seen.add(raw_hex)
        a = admit(bytes.fromhex(raw_hex[2:]), chain_id=anvil.chain_id, verified_nonce=0)
        first_seen.setdefault(a.sender, []).append(a.nonce)
    for order in first_seen.values():
        assert order == sorted(order) and len(order) == 200
    check_exactly_once(anvil, raws, first_block)


CHILD = textwrap.dedent("""
    import asyncio, sys
    from node.outbox import Outbox, admit, flush
    from node.rpc.upstream_api import DirectUpstream

    async def main(db, raws_file, url, chain_id, verified):
        box = Outbox(db)
        for line in open(raws_file):
            entry = box.add(admit(bytes.fromhex(line.strip()), chain_id=chain_id,
                                  verified_nonce=verified))
            print("accepted", entry.hash.hex(), flush=True)
        print("queued", flush=True)
        async with DirectUpstream(url) as up:
            async def receipts(h):
                return (await up.call("eth_getTransactionReceipt", ["0x" + h.hex()])).result
            for n in range(10**6):
                await flush(box, up, budget_seconds=0.05, receipts=receipts, batch_size=5)
                print("pass", n, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
""")


async def test_sigkill_with_queued_transactions_then_restart(anvil: Anvil,
                                                             tmp_path: Path) -> None:
    key = keys(anvil, 7)[6]  # a sender the other test does not use
    raws = signed_batch(anvil, [key], 120, to=b"\x43" * 20)
    verified = admit(raws[0], chain_id=anvil.chain_id, verified_nonce=0).nonce
    first_block = int(anvil.rpc("eth_blockNumber"), 16) + 1
    src = tmp_path / "raws.txt"
    src.write_text("".join(r.hex() + "\n" for r in raws))
    db = tmp_path / "outbox.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with anvil.mining_on_request():  # blocks only between the passes
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), str(src), anvil.url, str(anvil.chain_id),
             str(verified)], stdout=subprocess.PIPE, env=env, text=True)
        accepted: set[str] = set()
        assert child.stdout is not None
        try:
            for line in child.stdout:
                word, *rest = line.split()
                if word == "accepted":
                    accepted.add(rest[0])
                if word == "pass" and rest == ["1"]:  # killed while flushing its third pass
                    break
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert len(accepted) == len(raws)

        with Outbox(db) as box:  # restart: the store resumes
            assert {e.hash.hex() for e in box.entries()} == accepted
            assert box.counts()["queued"] + box.counts()["sent"] > 0, "all flushed before the kill"
            async with DirectUpstream(anvil.url) as up:
                await flush_until_done(anvil, box, up, anvil_receipts(up), budget=2.0)
            assert box.counts()["included"] == len(raws)
    check_exactly_once(anvil, raws, first_block)
